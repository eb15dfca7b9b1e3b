"""GatewayHealth: the gateway's board cells follow the messages it exchanges with core (no engine)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.health import BOARD_COUNTERS, GATEWAY_SLOTS, CounterWriter, Histogram
from titan.messages import (
    ACK,
    CANCELED,
    DENIED,
    EXPIRED,
    FAILED,
    FILL,
    REJECTED,
    UNKNOWN,
    OrderRequest,
    ReconcileRequest,
    ReconcileSnapshot,
    VenueReport,
    VenueStatus,
)
from titan.metrics import gather, health_body
from titan.procs.gateway import LOCAL_LIMIT_MS, GatewayHealth
from titan.shm.board import StatusBoard

GW = "gateway.bybit"
NOW_MS = 1_800_000_000_000


@pytest.fixture
def board() -> Iterator[StatusBoard]:
    b = StatusBoard.create(f"/titan-opsgaps-{uuid.uuid4().hex[:8]}-board", ["core", GW], BOARD_COUNTERS)
    try:
        yield b
    finally:
        b.close()
        b.unlink()


def order(coid: str = "c1") -> OrderRequest:
    return OrderRequest(
        coid=coid,
        signal_id="s1",
        leg=0,
        venue="bybit",
        account="main",
        symbol="BTC/USDT",
        venue_symbol="BTCUSDT",
        side="BUY",
        order_type="MARKET",
        tif="IOC",
        qty="0.01",
        price=None,
        reduce_only=False,
        t_signal_ms=0,
        t_core_in=0,
        t_core_out=1,
    )


def report(
    kind: str,
    coid: str = "c1",
    *,
    qty: str = "",
    cum_qty: str = "",
    leaves_qty: str = "",
    reason_code: str = "",
    t_gw_in: int = 0,
    t_gw_out: int = 0,
) -> VenueReport:
    return VenueReport(
        coid=coid,
        venue="bybit",
        kind=kind,
        qty=qty,
        cum_qty=cum_qty,
        leaves_qty=leaves_qty,
        reason_code=reason_code,
        t_gw_in=t_gw_in,
        t_gw_out=t_gw_out,
    )


def cell(board: StatusBoard, name: str) -> int:
    return board.read(GW).counters[GATEWAY_SLOTS[name]]


def test_outcomes_sessions_and_limits_reach_the_board(board: StatusBoard) -> None:
    health = GatewayHealth(CounterWriter(board, GW))
    health.flush()
    assert cell(board, "session_up") == 0 and cell(board, "orders_sent") == 0
    health.report(VenueStatus("bybit", "UP", "DOWN", 0, "", 0), NOW_MS)
    for _ in range(3):
        health.order_in(order())
    health.report(report(ACK, t_gw_in=1_000_000, t_gw_out=3_000_000), NOW_MS)
    health.report(report(FILL, qty="0.004", cum_qty="0.004", leaves_qty="0.006"), NOW_MS)  # partial
    health.report(report(FILL, qty="0.006", cum_qty="0.01", leaves_qty="0"), NOW_MS)
    health.report(report(REJECTED, coid="c2"), NOW_MS)
    health.report(report(DENIED, coid="c3", reason_code="RATE_LIMITED"), NOW_MS)
    health.report(report(UNKNOWN, coid="c4"), NOW_MS)
    health.report(report(CANCELED, coid="c5"), NOW_MS)
    health.report(report(EXPIRED, coid="c6"), NOW_MS)
    health.report(report(FILL, coid="", qty="1", leaves_qty="0"), NOW_MS)  # unattributed: no order
    assert cell(board, "filled") == 0, "nothing reaches the board before flush"
    health.flush()
    assert cell(board, "session_up") == 1 and cell(board, "private_stream_up") == 0
    assert cell(board, "orders_sent") == 3
    assert (
        cell(board, "filled"),
        cell(board, "rejected"),
        cell(board, "unknown"),
        cell(board, "canceled"),
    ) == (
        1,
        2,
        1,
        2,
    )
    assert cell(board, "limited_until_ms") == NOW_MS + LOCAL_LIMIT_MS
    venue = Histogram.from_counters(board.read(GW).counters, 0)
    assert venue.count == 1 and venue.sum_us == 2000  # c1's first answer (ACK) after 2 ms; its fills add none
    health.order_in(order("p1"))  # paper: a market order's first answer is its FILL
    health.report(report(FILL, coid="p1", leaves_qty="0", t_gw_in=1_000_000, t_gw_out=1_500_000), NOW_MS)
    health.flush()
    assert Histogram.from_counters(board.read(GW).counters, 0).count == 2
    # A venue cooldown (VenueStatus) replaces the local estimate, and the stream comes up.
    health.report(VenueStatus("bybit", "UP", "UP", NOW_MS + 30_000, "RATE_LIMITED", 0), NOW_MS)
    health.flush()
    assert cell(board, "orders_sent") == 4
    assert cell(board, "limited_until_ms") == NOW_MS + 30_000 and cell(board, "private_stream_up") == 1


def test_reconciling_is_up_until_every_snapshot_came_back(board: StatusBoard) -> None:
    health = GatewayHealth(CounterWriter(board, GW))
    req = ReconcileRequest("bybit", "start", [], ["BTC/USDT"], 0, 0)
    snap = ReconcileSnapshot("bybit", "start", True, "", [], [], None, 0)
    health.order_in(req)
    health.order_in(req)
    health.flush()
    assert cell(board, "reconciling") == 1
    health.report(snap, NOW_MS)
    health.flush()
    assert cell(board, "reconciling") == 1
    health.report(snap, NOW_MS)
    health.report(snap, NOW_MS)  # a stray snapshot never drives it negative
    health.flush()
    assert cell(board, "reconciling") == 0


def test_health_body_shows_the_gateway_cells(board: StatusBoard) -> None:
    health = GatewayHealth(CounterWriter(board, GW))
    health.report(VenueStatus("bybit", "UP", "UP", 2**62, "IP_BAN", 0), NOW_MS)
    health.order_in(order())
    health.report(report(FILL, leaves_qty="0"), NOW_MS)
    health.flush()
    facts = gather(
        board=board,
        restarts={},
        rings={},
        ticker=None,
        pairs=[],
        venues=["bybit"],
        heartbeat_timeout_ms=3000,
        stale_ms=5000,
        started=True,
        nats_url="nats://127.0.0.1:1",
        nats_embedded=True,
    )
    _, body = health_body(facts)
    bybit = body["venues"]["bybit"]
    assert bybit["session_up"] and bybit["private_stream_up"] and bybit["rate_limited"]
    assert bybit["orders"]["orders_sent"] == 1 and bybit["orders"]["filled"] == 1


def test_a_restarted_gateway_continues_counters_and_resets_gauges(board: StatusBoard) -> None:
    first = GatewayHealth(CounterWriter(board, GW))
    first.session(True, True)
    first.order_in(order())
    first.order_in(ReconcileRequest("bybit", "start", [], [], 0, 0))
    first.flush()
    second = GatewayHealth(CounterWriter(board, GW))  # a new process on the same row
    second.order_in(order())
    second.flush()
    assert cell(board, "orders_sent") == 2
    assert cell(board, "session_up") == 0 and cell(board, "reconciling") == 0


def test_a_small_board_without_histogram_room_still_counts() -> None:
    small = StatusBoard.create(f"/titan-opsgaps-{uuid.uuid4().hex[:8]}-board", [GW])  # 16 cells
    try:
        health = GatewayHealth(CounterWriter(small, GW))
        health.order_in(order())
        health.report(report(ACK, t_gw_in=1_000, t_gw_out=2_000_000), NOW_MS)
        health.report(report(FILL, leaves_qty="0"), NOW_MS)
        health.flush()
        assert small.read(GW).counters[GATEWAY_SLOTS["filled"]] == 1
    finally:
        small.close()
        small.unlink()


KINDS = [ACK, FILL, REJECTED, DENIED, FAILED, UNKNOWN, CANCELED, EXPIRED]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.booleans()), max_size=40))
def test_outcome_counts_equal_the_reports_of_each_kind(events: list[tuple[str, bool]]) -> None:
    b = StatusBoard.create(f"/titan-opsgaps-{uuid.uuid4().hex[:8]}-board", [GW], BOARD_COUNTERS)
    try:
        health = GatewayHealth(CounterWriter(b, GW))
        for kind, done in events:
            health.report(report(kind, leaves_qty="0" if done else "0.5"), NOW_MS)
        health.flush()
        c = b.read(GW).counters
        assert c[GATEWAY_SLOTS["filled"]] == sum(1 for k, d in events if k == FILL and d)
        assert c[GATEWAY_SLOTS["rejected"]] == sum(1 for k, _ in events if k in (REJECTED, DENIED, FAILED))
        assert c[GATEWAY_SLOTS["unknown"]] == sum(1 for k, _ in events if k == UNKNOWN)
        assert c[GATEWAY_SLOTS["canceled"]] == sum(1 for k, _ in events if k in (CANCELED, EXPIRED))
    finally:
        b.close()
        b.unlink()
