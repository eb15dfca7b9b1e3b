"""The hot path's shortcuts give exactly what the general code gives (core CPU work, issue #4)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from decimal import Decimal, getcontext, localcontext, setcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.engine.engine import Prepared
from titan.engine.events import report_after_sent, report_event, rfc3339
from titan.events.payloads import FillEvent, OrderReportEvent, TradeClosedEvent
from titan.messages import OrderRequest, Reply, Stages
from titan.risk.checks import Approval, CheckConfig, CheckInputs, RiskIntent, TickerView, still_valid
from titan.risk.decision import DAILY_VOLUME, SIGMA, impact_bps
from titan.risk.dedupe import HashedIds, SeenIds
from titan.risk.policy import RiskState, load_policy
from titan.risk.state import RiskControl, adverse_bps, slippage_bps
from titan.routing.coid import client_order_id
from titan.routing.router import InstrumentMeta, Leg, RouteTarget, SplitResult, split_quantity
from titan.state.decimals import MONEY_CONTEXT, money_enter, plain
from titan.state.fsm import LegFsm, LegProgress, LegState, intent_status
from titan.state.journal import BufferedJournal, JournalWriter, scan_journal
from titan.state.records import CashRecord, FillRecord, IntentAccepted, LegPlan, LegTransitionRecord
from titan.state.replay import CoreState, TrackedLeg, status_of
from titan.state.shadow import Fill, Position, TradeRecord

D = Decimal
POLICY = load_policy(Path(__file__).resolve().parents[2] / "config" / "risk_policy.json")


@given(st.text(max_size=80), st.sampled_from(["bybit", "binance", "mexc", "paper"]), st.integers(0, 99))
def test_client_order_id_matches_the_spec_formula(signal_id: str, venue: str, leg: int) -> None:
    digest = base64.b32encode(hashlib.sha256(signal_id.encode("utf-8")).digest()).decode()[:20].lower()
    coid = client_order_id(signal_id, venue, leg)
    assert coid[2:22] == digest and coid.startswith("te") and len(coid) == 26


@given(st.integers(0, 4_102_444_800_000))
def test_rfc3339_matches_datetime(ms: int) -> None:
    t = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
    assert rfc3339(ms) == t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@given(st.decimals(min_value=D("0.0001"), max_value=D("1e9"), places=4, allow_nan=False))
def test_memoised_impact_is_the_exact_formula(notional: Decimal) -> None:
    direct = MONEY_CONTEXT.multiply(
        MONEY_CONTEXT.multiply(D("0.7"), SIGMA),
        MONEY_CONTEXT.divide(notional, DAILY_VOLUME).sqrt(MONEY_CONTEXT),
    )
    expected = MONEY_CONTEXT.multiply(direct, D(10_000))
    first, again = impact_bps(notional), impact_bps(notional)
    assert str(first) == str(again) == str(expected)


metas = st.builds(
    lambda step, min_steps, notional, max_steps: InstrumentMeta(
        "paper",
        "BTC/USDT",
        D("0.1"),
        step,
        step * min_steps,
        notional,
        None if max_steps is None else step * max_steps,
    ),
    st.sampled_from([D("0.001"), D("0.01"), D(1), D("0.0005")]),
    st.integers(1, 5),
    st.sampled_from([D(0), D(5), D(100)]),
    st.one_of(st.none(), st.integers(1, 50)),
)


@given(
    metas, st.decimals(min_value=D("0.0001"), max_value=D(100), places=5), st.sampled_from([None, D(50000)])
)
def test_one_venue_split_equals_the_general_algorithm(
    meta: InstrumentMeta, quantity: Decimal, price: Decimal | None
) -> None:
    target = [RouteTarget("paper", D(1))]
    fast = split_quantity(quantity, target, {"paper": meta}, price)
    general = split_quantity(quantity, target, {"paper": meta}, price, caps={})  # caps={}: no shortcut
    assert fast == general


@settings(max_examples=60)
@given(st.lists(st.integers(1, 40), max_size=300), st.integers(1, 12))
def test_hashed_ids_are_a_fifo_set_under_collisions(digests: list[int], capacity: int) -> None:
    table = HashedIds(capacity)  # tiny table: digests 1..40 collide and wrap around
    model: list[int] = []
    for d in digests:
        assert table.add(d) == (d not in model)
        if d not in model:
            model.append(d)
            model = model[-capacity:]
        assert len(table) == len(model)
        assert all(table.contains(x) for x in model)
        assert not any(table.contains(x) for x in range(1, 41) if x not in model)


@settings(max_examples=60)
@given(st.lists(st.integers(0, 60), max_size=300), st.integers(1, 20), st.integers(1, 20))
def test_seen_ids_remember_the_last_capacity_ids_across_both_tiers(
    keys: list[int], capacity: int, exact: int
) -> None:
    seen: SeenIds[str] = SeenIds(capacity, exact=exact)
    model: list[str] = []
    for k in keys:
        key = f"sig-{k}"
        assert seen.add(key) == (key not in model)
        if key not in model:
            model = [*model, key][-capacity:]
        assert len(seen) == len(model)
        assert all(m in seen for m in model)
        assert not any(f"sig-{x}" in seen for x in range(61) if f"sig-{x}" not in model)


@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(49_000, 51_000)), max_size=250))
def test_adverse_counter_equals_counting_the_window(fills: list[tuple[int, int]]) -> None:
    control = RiskControl()
    for side, price in fills:
        control.on_fill(side, D(price), D(50_000), D(10_000))
    window = list(control._adverse)
    assert control._adverse_count == sum(window)
    expected = [adverse_bps(s, D(p), D(50_000)) > RiskControl.ADVERSE_BPS for s, p in fills][-100:]
    assert window == expected


def _row(bid: str = "49999", ask: str = "50001", at: int = 1_000, size: str = "1") -> TickerView:
    return TickerView(D(bid), D(ask), at, D(size), D(size))


INTENT = RiskIntent("s", "scavenger", "BTC/USDT", "BUY_SETUP", 1, D("0.002"), 1_000, (D(50000),))
CONFIG = CheckConfig()


@pytest.mark.parametrize(
    ("now", "now_ms", "now_ns", "valid"),
    [
        ({"bybit": _row()}, 1_100, 1_000 + 50_000_000, True),
        ({"bybit": _row(at=2_000)}, 1_100, 1_000 + 50_000_000, True),  # a newer row, same book
        ({"bybit": _row(bid="49998")}, 1_100, 1_000, False),  # the book moved
        ({"bybit": _row(size="2")}, 1_100, 1_000, False),  # sizes moved (order decision)
        ({}, 1_100, 1_000, False),  # the row is gone
        ({"bybit": _row(), "mexc": _row()}, 1_100, 1_000, False),  # another venue appeared
        ({"bybit": _row()}, 1_100, 1_000 + 201_000_000, False),  # stale now (200 ms default)
        ({"bybit": _row()}, 1_000 + 5_001, 1_000, False),  # past the intent's freshness window
    ],
)
def test_still_valid_covers_the_market_and_the_clock(
    now: dict[str, TickerView], now_ms: int, now_ns: int, valid: bool
) -> None:
    before = {"bybit": _row()}
    assert still_valid(INTENT, CONFIG, POLICY, before, now, now_ms, now_ns) is valid


def test_buffered_journal_writes_a_message_s_records_at_once(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with JournalWriter(path) as writer:
        writer.append(CashRecord("main", D(1)), 1, 1)
    writer = JournalWriter(path)
    journal = BufferedJournal(writer)
    assert journal.append(CashRecord("main", D(2)), 2, 2) == 2
    assert journal.append(LegTransitionRecord("c", LegState.SENT, 3, 3), 3, 3) == 3
    assert journal.pending and len(scan_journal(path).entries) == 1  # nothing written yet
    assert journal.write() == 3 and not journal.pending
    assert [e.seq for e in scan_journal(path).entries] == [1, 2, 3]
    assert journal.append(CashRecord("main", D(4)), 4, 4) == 4 and journal.write() == 4
    writer.close()
    assert [e.seq for e in scan_journal(path).entries] == [1, 2, 3, 4]


@given(
    st.lists(
        st.tuples(st.sampled_from(list(LegState)), st.sampled_from([D(0), D("0.001"), D(1)])), max_size=3
    ),
    st.sampled_from([D(0), D("0.001"), D(1)]),
)
def test_status_of_tracked_legs_is_intent_status(
    legs: list[tuple[LegState, Decimal]], target: Decimal
) -> None:
    tracked = [
        TrackedLeg(LegFsm("s", f"c{k}", "BTC/USDT", state=state), "s", "paper", k, "main", 1, D(1), filled)
        for k, (state, filled) in enumerate(legs)
    ]
    assert status_of(tracked, target) is intent_status([LegProgress(s, f) for s, f in legs], target)


@pytest.mark.parametrize("to", [LegState.FILLED, LegState.PARTIAL_FILL, LegState.ACKED, LegState.REJECTED])
@pytest.mark.parametrize("reason", [None, "post only would cross"])
def test_report_after_sent_is_the_full_report(to: LegState, reason: str | None) -> None:
    state = CoreState()
    plan = LegPlan("c0", 0, "paper", D("0.002"), "LIMIT", "POST_ONLY", D(50000), "BTCUSDT")
    accepted = IntentAccepted(
        "s", "main", "BTC/USDT", 1, D("0.002"), D(0), D(50000), (plan,), t_signal_ms=5, correlation_id="k"
    )
    state.apply(accepted, 10)
    leg = state.legs["c0"]  # updated in place (and left in memory once the intent finishes)
    state.apply(LegTransitionRecord("c0", to, 20, 20, reason, via_sent=True, venue_order_id="v1"), 20)
    filled = to in (LegState.FILLED, LegState.PARTIAL_FILL)
    if filled:
        state.apply(
            FillRecord(Fill("main", "paper", "BTC/USDT", 1, D("0.001"), D(50000), D(0), "t1", 20)), 20
        )
    engine: Any = SimpleNamespace(state=state)
    last_fill = (D("0.001"), D(50000)) if filled else None
    sent = report_event(engine, leg, accepted, None, 30, sent_only=True)
    assert sent.status == "SENT" and sent.seq == 2
    assert report_after_sent(sent, leg, last_fill) == report_event(engine, leg, accepted, last_fill, 30)


def test_rfc3339_of_consecutive_seconds_and_back() -> None:
    for ms in (1_000, 1_999, 2_000, 1_500, 86_400_000 * 365 + 7, 0):
        t = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
        assert rfc3339(ms) == t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# Built with positional arguments on the hot path (a call with over 15 keywords goes through a dict):
# a field moved or inserted must show here, so the positional calls are changed with it.
_POSITIONAL_FIELDS: dict[type[msgspec.Struct], tuple[str, ...]] = {
    OrderReportEvent: (
        "signal_id",
        "client_order_id",
        "venue",
        "account",
        "symbol",
        "venue_symbol",
        "leg",
        "side",
        "order_type",
        "time_in_force",
        "post_only",
        "reduce_only",
        "price",
        "quantity",
        "status",
        "prev_status",
        "seq",
        "venue_order_id",
        "venue_status",
        "filled_qty",
        "avg_fill_price",
        "last_fill_qty",
        "last_fill_price",
        "fee_total",
        "fee_asset",
        "reason_code",
        "reason",
        "venue_error_code",
        "intent_status",
        "t_signal",
        "t_ingress",
        "t_sent",
        "t_ack",
        "t_exchange",
        "ts",
        "correlation_id",
    ),
    FillEvent: (
        "venue",
        "account",
        "symbol",
        "trade_id",
        "signal_id",
        "client_order_id",
        "venue_order_id",
        "side",
        "price",
        "qty",
        "fee",
        "fee_currency",
        "status",
        "cum_qty",
        "avg_price",
        "leaves_qty",
        "is_maker",
        "leg",
        "t_signal",
        "t_ingress",
        "t_decision",
        "t_ack",
        "t_exchange",
        "ts",
        "correlation_id",
    ),
    TradeClosedEvent: (
        "trade_id",
        "signal_id",
        "symbol",
        "side",
        "entry_price",
        "exit_price",
        "size",
        "pnl",
        "pnl_pct",
        "fee",
        "fee_asset",
        "opened_at",
        "closed_at",
        "close_reason",
        "venue",
        "partial",
        "ts",
        "metadata",
        "correlation_id",
    ),
    OrderRequest: (
        "coid",
        "signal_id",
        "leg",
        "venue",
        "account",
        "symbol",
        "venue_symbol",
        "side",
        "order_type",
        "tif",
        "qty",
        "price",
        "reduce_only",
        "t_signal_ms",
        "t_core_in",
        "t_core_out",
    ),
    CheckInputs: (
        "intent",
        "policy",
        "config",
        "now_ms",
        "now_mono_ns",
        "effective_state",
        "armed",
        "halt",
        "duplicate_signal_id",
        "duplicate_causation_id",
        "registered_venues",
        "reconciling_venues",
        "cooldown_until_ms",
        "instruments",
        "tickers",
        "positions",
        "working_signed_qty",
        "open_intents",
        "daily_pnl",
        "equity",
        "gross_exposure",
        "constraints",
    ),
    IntentAccepted: (
        "signal_id",
        "account",
        "symbol",
        "side",
        "quantity",
        "unallocated",
        "reference_price",
        "legs",
        "reduce_only",
        "causation_id",
        "source",
        "t_signal_ms",
        "t_ingress_ms",
        "t_mono_ns",
        "correlation_id",
        "dedupe_ids",
        "entry_zone",
        "close_reason",
    ),
    TradeRecord: (
        "trade_id",
        "signal_id",
        "account",
        "venue",
        "symbol",
        "side",
        "entry_price",
        "exit_price",
        "size",
        "pnl",
        "pnl_pct",
        "fee",
        "fee_asset",
        "opened_at_ms",
        "closed_at_ms",
        "close_reason",
        "partial",
    ),
    RiskIntent: (
        "signal_id",
        "source",
        "symbol",
        "intent_type",
        "direction",
        "size",
        "t_signal_ms",
        "entry_zone",
        "exchange",
        "policy_hash",
        "ttl_ms",
        "causation_id",
        "account",
        "status",
        "flatten",
        "velocity",
    ),
    Fill: (
        "account",
        "venue",
        "symbol",
        "side",
        "qty",
        "price",
        "fee",
        "trade_id",
        "ts_ms",
        "fee_asset",
        "signal_id",
        "client_order_id",
        "source",
        "close_reason",
    ),
    LegPlan: ("coid", "leg", "venue", "qty", "order_type", "tif", "price", "venue_symbol"),
    Position: (
        "account",
        "venue",
        "symbol",
        "side",
        "size",
        "entry_price",
        "fees_paid",
        "funding_paid",
        "realized_pnl",
        "opened_at_ms",
        "signal_id",
        "position_id",
        "close_seq",
        "last_mark_price",
        "last_update_ts",
        "unrealized_pnl",
    ),
    Approval: (
        "targets",
        "legs",
        "side",
        "quantity",
        "unallocated",
        "reference_price",
        "decision",
        "reduce_only",
    ),
    SplitResult: ("legs", "unallocated"),
    Leg: ("index", "venue", "qty"),
    Prepared: (
        "intent",
        "risk",
        "notional",
        "prepared_ns",
        "t_ingress_ms",
        "approval",
        "epoch",
        "tickers",
        "effective_state",
        "halt",
        "armed",
        "cooling",
        "day",
    ),
    Stages: (
        "t_read",
        "t_ring",
        "t_core_in",
        "t_order_out",
        "t_gw_in",
        "t_gw_out",
        "t_report_in",
        "t_core_out",
    ),
    Reply: ("conn", "req", "fields", "stages"),
    LegFsm: ("signal_id", "client_order_id", "symbol", "state", "transitions", "illegal_count"),
    TrackedLeg: (
        "fsm",
        "signal_id",
        "venue",
        "leg",
        "account",
        "side",
        "qty",
        "filled_qty",
        "filled_notional",
        "fee_total",
        "venue_order_id",
        "plan",
    ),
}


@pytest.mark.parametrize("cls", list(_POSITIONAL_FIELDS))
def test_hot_structs_keep_the_field_order_their_positional_calls_use(cls: type[msgspec.Struct]) -> None:
    assert cls.__struct_fields__ == _POSITIONAL_FIELDS[cls]


def _plain_reference(value: Decimal) -> str:
    return "0" if value.is_zero() else format(value.normalize(MONEY_CONTEXT), "f")


@given(
    st.decimals(allow_nan=False, allow_infinity=False) | st.sampled_from([D("-0"), D("0E+3"), D("-0.000")])
)
def test_plain_fast_path_is_the_normalized_text(value: Decimal) -> None:
    assert plain(value) == _plain_reference(value)


@pytest.mark.parametrize(
    "text",
    [
        "100",
        "1E+2",
        "0.00100",
        "-2.50",
        "1" * 40,
        "0." + "1" * 40,
        "1e-9",
        "123456789.000000000000000000000001",
    ],
)
def test_plain_examples(text: str) -> None:
    assert plain(D(text)) == _plain_reference(D(text))


@given(
    st.lists(
        st.tuples(st.sampled_from([1, -1]), st.decimals(min_value=D(90), max_value=D(110), places=3)),
        max_size=60,
    )
)
def test_on_fill_breaker_follows_slippage_bps_and_adverse_bps(fills: list[tuple[int, Decimal]]) -> None:
    control, state = RiskControl(), RiskState.NORMAL
    window: list[bool] = []
    limit = D(50)
    for side, price in fills:
        before = state
        bps = slippage_bps(price, D(100))
        if bps > limit:
            if bps > 2 * limit:
                state = max(state, RiskState.DEFENSIVE)
            elif state == RiskState.NORMAL:
                state = RiskState.CAUTIOUS
        window = [*window, adverse_bps(side, price, D(100)) > RiskControl.ADVERSE_BPS][-100:]
        if len(window) > 10 and sum(window) * 20 > len(window) and state == RiskState.NORMAL:
            state = RiskState.CAUTIOUS
        assert control.on_fill(side, price, D(100), limit) == (state != before)
        assert control.breaker_state == state


@given(st.decimals(allow_nan=False, allow_infinity=False), st.decimals(allow_nan=False, allow_infinity=False))
def test_money_enter_computes_what_localcontext_does_and_restores(a: Decimal, b: Decimal) -> None:
    def ops() -> list[str]:
        out = [str(a + b), str(a * b), str(-a), str(abs(b))]
        if b:
            out.append(str(a / b))
        return out

    before = getcontext()
    with localcontext(MONEY_CONTEXT):
        expected = ops()
    saved = money_enter()
    try:
        got = ops()
    finally:
        setcontext(saved)
    assert got == expected and getcontext() is before


def test_money_enter_is_undone_after_an_exception() -> None:
    before = getcontext()
    with pytest.raises(ZeroDivisionError):
        saved = money_enter()
        try:
            D(1) / D(0)
        finally:
            setcontext(saved)
    assert getcontext() is before and before.prec == 28
