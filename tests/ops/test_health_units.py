"""titan.health conventions and titan.metrics rendering, on a real status board (no engine)."""

from __future__ import annotations

import io
import itertools
import logging
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from titan.config import load_config
from titan.health import (
    BUCKETS_US,
    CORE_SLOTS,
    GATEWAY_SLOTS,
    HIST_WORDS,
    INGRESS_HISTOGRAMS,
    INGRESS_SLOTS,
    REASON_CODES,
    SUPERVISOR,
    SUPERVISOR_SLOTS,
    CounterWriter,
    Histogram,
    LatencyRecorder,
    reason_cell,
    record_replies,
    stage_latencies_us,
    supervisor_halt,
)
from titan.messages import Stages
from titan.metrics import Facts, gather, health_body, render_metrics
from titan.procs.common import RedactingFormatter
from titan.procs.supervisor import sim_overrides
from titan.shm.board import ProcState, StatusBoard


def facts_of(board: StatusBoard, started: bool = True) -> Facts:
    return gather(
        board=board,
        restarts={},
        rings={},
        ticker=None,
        pairs=[],
        venues=["paper"],
        heartbeat_timeout_ms=3000,
        stale_ms=5000,
        started=started,
        nats_url="nats://127.0.0.1:1",
        nats_embedded=True,
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counter_writer_sets_gauges_and_adds_counters_and_survives_restart(board: StatusBoard) -> None:
    w = CounterWriter(board, "core")
    w.set(CORE_SLOTS["armed"], 1)
    w.add(CORE_SLOTS["intents_total"], 5)
    w.set(CORE_SLOTS["open_orders"], 7)
    w.set(CORE_SLOTS["open_orders"], 2)
    c = board.read("core").counters
    assert (c[CORE_SLOTS["armed"]], c[CORE_SLOTS["intents_total"]], c[CORE_SLOTS["open_orders"]]) == (1, 5, 2)
    again = CounterWriter(board, "core")  # a restarted process continues from the board
    again.add(CORE_SLOTS["intents_total"])
    assert board.read("core").counters[CORE_SLOTS["intents_total"]] == 6


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=3_000_000), max_size=200))
def test_histogram_counts_every_sample_once(values: list[int]) -> None:
    b = StatusBoard.create(f"/titan-opstest-h{uuid.uuid4().hex[:10]}", ["ingress"], 256)
    try:
        rec = LatencyRecorder(CounterWriter(b, "ingress"), INGRESS_HISTOGRAMS)
        for v in values:
            rec.observe(0, v)
        rec.flush()
        h = Histogram.from_counters(b.read("ingress").counters, 0)
        assert h.count == len(values) == sum(h.buckets)
        assert h.sum_us == sum(max(0, v) for v in values)
        cum = h.cumulative()
        assert cum[-1] == ("+Inf", len(values))
        assert all(a[1] <= b_[1] for a, b_ in itertools.pairwise(cum))
        for bound, n in cum[:-1]:
            assert n == sum(1 for v in values if max(0, v) <= int(bound))
    finally:
        b.close()
        b.unlink()


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, None), ([3], 0.5, 5.0), ([3, 3, 3, 400], 0.5, 5.0), ([3, 400, 400, 400], 0.99, 500.0)],
)
def test_quantile_is_the_bucket_upper_bound(values: list[int], q: float, expected: float | None) -> None:
    buckets = [0] * (len(BUCKETS_US) + 1)
    for v in values:
        buckets[next((k for k, b in enumerate(BUCKETS_US) if v <= b), len(BUCKETS_US))] += 1
    assert Histogram(buckets, sum(values), len(values)).quantile(q) == expected


def test_stage_latencies_from_stamps() -> None:
    us = 1000
    st_ = Stages(
        t_read=1_000 * us,
        t_ring=1_010 * us,
        t_core_in=1_030 * us,
        t_order_out=1_040 * us,
        t_gw_in=1_060 * us,
        t_gw_out=1_100 * us,
        t_report_in=1_120 * us,
        t_core_out=1_125 * us,
    )
    total, ingress, core, gateway, ring = stage_latencies_us(st_, 1_135 * us)
    assert (total, ingress, core, gateway) == (135, 10, 15, 40)
    assert ring == 20 + 20 + 20 + 10  # ring→core, core→gateway, gateway→core, core→ingress
    assert stage_latencies_us(Stages(), 5) == (-1, -1, -1, -1, -1)
    denied = Stages(t_read=1_000 * us, t_ring=1_002 * us, t_core_in=1_005 * us, t_core_out=1_006 * us)
    assert stage_latencies_us(denied, 1_010 * us) == (10, 2, 1, -1, 7)


def test_record_replies_fills_every_ingress_histogram(board: StatusBoard) -> None:
    rec = LatencyRecorder(CounterWriter(board, "ingress"), INGRESS_HISTOGRAMS)
    full = Stages(1, 2, 3, 4, 5, 6, 7, 8)
    assert record_replies(rec, [(10_000, [full, full]), (20_000, [full])]) == 3
    rec.flush()
    c = board.read("ingress").counters
    assert [Histogram.from_counters(c, k).count for k in range(len(INGRESS_HISTOGRAMS))] == [3] * 5


def test_supervisor_halt_flag(board: StatusBoard) -> None:
    assert supervisor_halt(board) == ""
    w = CounterWriter(board, SUPERVISOR)
    w.set(SUPERVISOR_SLOTS["halt_proc"], board.names().index("gateway.paper") + 1)
    w.set(SUPERVISOR_SLOTS["halt"], 1)
    assert "gateway.paper" in supervisor_halt(board)
    code, body = health_body(facts_of(board))
    assert code == 503 and body["status"] == "halted" and body["halt"] == "HARD_HALT"
    assert "gateway.paper" in body["halt_reason"]


def test_health_body_ok_only_when_everything_is_ready(board: StatusBoard) -> None:
    import time

    for name in board.names():
        board.set_state(name, ProcState.READY)
        board.beat(name, time.monotonic_ns())
    assert health_body(facts_of(board))[0] == 200
    assert health_body(facts_of(board, started=False))[0] == 503
    board.set_state("core", ProcState.FAILED)
    code, body = health_body(facts_of(board))
    assert code == 503 and "core is failed" in body["problems"]


def test_metrics_render_board_values(board: StatusBoard) -> None:
    core = CounterWriter(board, "core")
    core.set(CORE_SLOTS["risk_state"], 2)
    core.set(CORE_SLOTS["armed"], 1)
    cell = reason_cell("MARKET_DATA_STALE")
    assert cell is not None
    core.add(cell, 3)
    ing = CounterWriter(board, "ingress")
    ing.set(INGRESS_SLOTS["activeConnections"], 4)
    ing.add(INGRESS_SLOTS["messagesReceived"], 9)
    rec = LatencyRecorder(ing, INGRESS_HISTOGRAMS)
    rec.observe(0, 30)
    rec.observe(2, 7)
    rec.flush()
    gw = CounterWriter(board, "gateway.paper")
    gw.add(GATEWAY_SLOTS["filled"], 11)
    board.add_restart("core")
    m = samples(render_metrics(lambda: facts_of(board)).decode())
    assert m[("titan_execution_risk_state", ())] == 2
    assert m[("titan_execution_armed", ())] == 1
    assert m[("titan_execution_rejections_total", (("reason", "MARKET_DATA_STALE"),))] == 3
    assert m[("titan_execution_active_connections", ())] == 4
    assert m[("titan_execution_fastpath_messages_received_total", ())] == 9
    assert m[("titan_execution_latency_us_count", ())] == 1
    assert m[("titan_execution_latency_us_bucket", (("le", "50"),))] == 1
    assert m[("titan_execution_latency_us_bucket", (("le", "25"),))] == 0
    assert m[("titan_execution_stage_latency_us_count", (("stage", "core"),))] == 1
    assert m[("titan_execution_orders_total", (("outcome", "filled"), ("venue", "paper")))] == 11
    assert m[("titan_execution_process_restarts_total", (("process", "core"),))] == 1


def test_reason_cells_cover_the_closed_set() -> None:
    cells = [reason_cell(c) for c in REASON_CODES]
    assert None not in cells and len(set(cells)) == len(cells)
    assert reason_cell("NOT_A_CODE") is None
    assert len(BUCKETS_US) + 3 == HIST_WORDS


def test_ingress_counter_names_match_the_convention() -> None:
    from titan.procs.ingress import COUNTER_NAMES

    assert {n: k for k, n in enumerate(COUNTER_NAMES)} == {
        n: k for n, k in INGRESS_SLOTS.items() if n in COUNTER_NAMES
    }


@pytest.mark.parametrize("as_json", [False, True])
def test_log_redaction_masks_secrets(as_json: bool) -> None:
    from titan.procs.common import JsonLogFormatter

    inner = JsonLogFormatter("core") if as_json else logging.Formatter("%(message)s")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(inner, ["s3cr3t-value", "other-secret"]))
    log = logging.getLogger(f"titan.test.redact.{as_json}")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connect failed with key %s and %s", "s3cr3t-value", "other-secret")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "s3cr3t-value" not in out and "other-secret" not in out and "********" in out


def test_sim_overrides_point_children_at_the_simulator() -> None:
    cfg = load_config(None, env={"BINANCE_API_KEY": "mine", "BINANCE_API_SECRET": "mine-s"})
    urls = {
        "bybit": "http://127.0.0.1:4001",
        "binance": "http://127.0.0.1:4002",
        "mexc": "http://127.0.0.1:4003",
    }
    env = sim_overrides(cfg, urls)
    assert env["TITAN__VENUES__BYBIT__REST_URL"] == "http://127.0.0.1:4001"
    assert env["TITAN__VENUES__BYBIT__WS_PUBLIC_URL"] == "ws://127.0.0.1:4001/v5/public/linear"
    assert env["TITAN__VENUES__BYBIT__WS_PRIVATE_URL"] == "ws://127.0.0.1:4001/v5/private"
    assert env["TITAN__VENUES__BINANCE__WS_PUBLIC_URL"] == "ws://127.0.0.1:4002/public"
    assert env["TITAN__VENUES__MEXC__WS_PRIVATE_URL"] == "ws://127.0.0.1:4003/edge"
    bybit = next(a for a in cfg.sim.accounts if a.venue == "bybit")
    assert env["TITAN__VENUES__BYBIT__API_KEY"] == bybit.api_key
    assert "TITAN__VENUES__BINANCE__API_KEY" not in env  # the venue section has its own keys


def test_record_replies_samples_evenly_past_the_cap(board: StatusBoard) -> None:
    from titan.health import MAX_REPLIES_PER_FLUSH

    rec = LatencyRecorder(CounterWriter(board, "ingress"), INGRESS_HISTOGRAMS)
    stamps = [Stages(1, 2, 3, 0, 0, 0, 0, 4)] * (3 * MAX_REPLIES_PER_FLUSH)
    taken = record_replies(rec, [(10, stamps)])
    assert taken == MAX_REPLIES_PER_FLUSH
    assert record_replies(rec, [(10, stamps[:5])]) == 5
