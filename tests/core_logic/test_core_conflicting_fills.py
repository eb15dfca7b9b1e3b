"""R5 through core (Core Rig): a conflicting duplicate fill (same trade id, another quantity) is
applied once and published as a drift event; drift events and conflicts are counted on the board,
/health and /metrics. Helpers shared with test_core_reliability."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.core.fakes import MemJournal, Rig
from tests.ops.test_health_units import facts_of
from titan.events.payloads import DriftEvent, FillEvent
from titan.health import CORE_SLOTS
from titan.messages import (
    FILL_CONFLICT,
    OperatorCommand,
    OrderRequest,
    ReconcileSnapshot,
    VenueReport,
)
from titan.metrics import health_body, render_metrics
from titan.procs.core import BoardPublisher
from titan.shm.board import StatusBoard
from titan.state.fsm import IntentStatus
from titan.state.records import FillRecord

D = Decimal


def position(rig: Rig, venue: str = "paper", symbol: str = "BTC/USDT") -> Decimal:
    return sum(
        (
            p.signed_size
            for p in rig.engine.state.shadow.iter_positions()
            if (p.venue, p.symbol) == (venue, symbol)
        ),
        D(0),
    )


def cash(rig: Rig) -> Decimal:
    return rig.engine.state.shadow.cash[rig.settings.account]


def confirmed(rig: Rig, sid: str, **kw: Any) -> OrderRequest:
    """PREPARE + CONFIRM one intent; its single order (not filled yet)."""
    n = len(rig.out.new_orders())
    prep = rig.prepare(rig.intent(sid, **kw))
    assert prep.get("prepared"), prep
    rig.confirm(sid)
    (order,) = rig.out.new_orders()[n:]
    return order


def status_of(rig: Rig, sid: str) -> IntentStatus:
    outcome = rig.engine.state.outcome(sid)
    assert outcome is not None, sid
    return outcome.status


def ready(rig: Rig, balances: dict[str, str | None]) -> None:
    for venue, balance in balances.items():
        rig.engine.on_report(ReconcileSnapshot(venue, "start", True, "", [], [], balance, 0))
    assert rig.engine.ready


def op(kind: str, **args: Any) -> OperatorCommand:
    return OperatorCommand(
        ref=0, kind=kind, actor="ops", reason="test", args=args, command_id="cmd", t_read=0
    )


def fill_records(rig: Rig, trade_id: str) -> list[FillRecord]:
    return [
        e.record
        for e in rig.journal.entries
        if isinstance(e.record, FillRecord) and e.record.fill.trade_id == trade_id
    ]


# --- R5: conflicting duplicate fill -----------------------------------------------------------


def test_R5_conflicting_duplicate_through_core_is_applied_once_with_one_drift_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    order = confirmed(rig, "r5", notional="1000")  # 0.02
    rig.fill(order, qty="0.008", trade="1")
    pos, money = position(rig), cash(rig)
    with caplog.at_level(logging.WARNING, logger="titan.core.engine"):
        rig.fill(order, qty="0.010", trade="1")  # same trade id, another quantity: a live leg
        rig.fill(order, qty="0.008", trade="1")  # the exact duplicate: silently dropped
    assert (position(rig), cash(rig)) == (pos, money)  # as after the first fill
    assert len(fill_records(rig, f"{order.coid}-1")) == 1
    assert len(rig.out.of(FillEvent)) == 1
    (drift,) = rig.out.of(DriftEvent)
    assert (drift.signal_id, drift.symbol, drift.venue, drift.drift_class) == (
        "r5",
        "BTC/USDT",
        "paper",
        "ClassPPosition",
    )
    assert (drift.expected, drift.actual) == (D("0.008"), D("0.010"))
    assert rig.engine.counters.drift_events == 1 and rig.engine.counters.conflicting_fills == 1
    (line,) = [r.getMessage() for r in caplog.records if "conflicting duplicate" in r.getMessage()]
    assert f"{order.coid}-1" in line and "qty 0.008 applied" in line and "this one 0.01" in line
    # The order finishes normally; a conflict on the finished order (late path) is caught too.
    rig.fill(order, qty="0.012", trade="2")
    assert position(rig) == D("0.02") and status_of(rig, "r5") is IntentStatus.EXECUTED
    rig.fill(order, qty="0.02", trade="2")
    assert position(rig) == D("0.02") and len(rig.out.of(DriftEvent)) == 2
    assert rig.out.of(DriftEvent)[-1].actual == D("0.02") and rig.engine.counters.conflicting_fills == 2
    assert rig.engine.counters.illegal_reports == 0


def test_R5_conflict_reported_by_the_gateway_is_a_drift_event_and_changes_nothing() -> None:
    rig = Rig()
    order = confirmed(rig, "g5")
    rig.fill(order, trade="7")
    pos, money, n_journal = position(rig), cash(rig), len(rig.journal.entries)
    rig.report(
        order, FILL_CONFLICT, trade_id=f"{order.coid}-7", qty="0.005", price="50001", cum_qty=order.qty
    )
    assert (position(rig), cash(rig), len(rig.journal.entries)) == (pos, money, n_journal)
    (drift,) = rig.out.of(DriftEvent)
    assert (drift.signal_id, drift.drift_class, drift.expected, drift.actual) == (
        "g5",
        "ClassPPosition",
        D(order.qty),
        D("0.005"),
    )
    assert rig.engine.counters.conflicting_fills == 1 and rig.engine.counters.illegal_reports == 0
    # An unknown order (not ours any more, not in memory): still published, never applied.
    rig.engine.on_report(VenueReport("te-gone", "paper", FILL_CONFLICT, trade_id="x-1", qty="2", cum_qty="1"))
    assert len(rig.out.of(DriftEvent)) == 2 and position(rig) == pos
    assert (rig.out.of(DriftEvent)[-1].expected, rig.out.of(DriftEvent)[-1].actual) == (D(1), D(2))


def test_R5_conflict_after_a_restart_is_caught_from_the_replayed_journal() -> None:
    live = Rig()
    order = confirmed(live, "rs5")
    live.fill(order, trade="1")
    restarted = Rig(journal=MemJournal(), start=False)
    restarted.engine.restore(live.journal.entries)
    restarted.engine.start(True, None, first_start=False)
    before = position(restarted)
    restarted.fill(order, qty="0.004", trade="1")
    assert position(restarted) == before == D(order.qty)
    (drift,) = restarted.out.of(DriftEvent)
    assert (drift.expected, drift.actual) == (D(order.qty), D("0.004"))


@pytest.fixture
def board() -> Iterator[StatusBoard]:
    b = StatusBoard.create(f"/tb{uuid.uuid4().hex[:8]}", ["core", "gateway.paper"], counters=256)
    try:
        yield b
    finally:
        b.close()
        b.unlink()


def metric_samples(text: str) -> dict[str, float]:
    return {
        s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples if not s.labels
    }


def test_drift_and_conflicts_are_counted_on_the_board_health_and_metrics(board: StatusBoard) -> None:
    rig = Rig()
    order = confirmed(rig, "m5")
    rig.fill(order, trade="1")
    rig.fill(order, qty="0.5", trade="1")
    ctx = SimpleNamespace(board=board, layout=SimpleNamespace(venues=("paper",)))
    publisher = BoardPublisher(ctx, rig.engine)  # type: ignore[arg-type]  # a stand-in: board and venues only
    publisher.publish()
    publisher.publish()  # counters are added once, not per publish
    assert board.read("core").counters[CORE_SLOTS["drift_events"]] == 1
    assert board.read("core").counters[CORE_SLOTS["conflicting_fills"]] == 1

    _, body = health_body(facts_of(board))
    assert body["core"]["drift_events"] == 1 and body["core"]["conflicting_fills"] == 1
    m = metric_samples(render_metrics(lambda: facts_of(board)).decode())
    assert m["titan_reconciliation_drift_detected_total"] == 1


def test_applied_fill_quantities_kept_are_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from titan.engine import engine as engine_module
    from titan.state.shadow import Fill

    monkeypatch.setattr(engine_module, "FILL_QTY_KEPT", 3)
    rig = Rig()
    for i in range(5):
        rig.engine._remember_fill(Fill("main", "paper", "BTC/USDT", 1, D(i + 1), D(1), D(0), f"t{i}", 0))
    rig.engine._remember_fill(Fill("main", "paper", "BTC/USDT", 1, D(9), D(1), D(0), "t3", 0))  # known key
    assert list(rig.engine.fill_qty) == [("paper", "t2"), ("paper", "t3"), ("paper", "t4")]
    assert rig.engine.fill_qty[("paper", "t3")] == D(9) and len(rig.engine._fill_qty_order) == 3


def test_conflicts_of_one_order_in_one_ms_are_distinct_drift_events_downstream() -> None:
    from titan.events.payloads import msg_id

    rig = Rig()
    order = confirmed(rig, "burst", notional="1000")
    rig.fill(order, qty="0.008", trade="1")
    rig.fill(order, qty="0.004", trade="2")
    rig.fill(order, qty="0.016", trade="1")  # a replay burst at 2x: the same ms, the same signal
    rig.fill(order, qty="0.008", trade="2")
    ids = [msg_id(d) for d in rig.out.of(DriftEvent)]
    assert len(ids) == 2 and len(set(ids)) == 2  # JetStream dedupes by Nats-Msg-Id: both must survive
