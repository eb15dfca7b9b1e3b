"""Intake from wire intents, drift (§16), reconciliation fills (§17), idempotency windows, views."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from titan.messages import Intent
from titan.risk.checks import Approval, CheckConfig, CheckInputs, run_checks
from titan.risk.dedupe import CausationWindow, SeenIds
from titan.risk.drift import detect_drift
from titan.risk.intake import IntakeError, risk_intent
from titan.risk.policy import load_policy
from titan.routing.router import InstrumentMeta
from titan.state.reconcile import position_correction
from titan.state.records import CashRecord, FillRecord
from titan.state.replay import CoreState
from titan.state.shadow import Fill, ShadowBook

D = Decimal
T0 = 1_800_000_000_000


def wire_intent(**changes: object) -> Intent:
    base = Intent(
        "sig-9", "hunter", "btcusdt", 1, "BUY_SETUP", T0, size="0.010", entry_zone=["50000", "50100"]
    )
    return msgspec.structs.replace(base, **changes)


def test_risk_intent_from_wire() -> None:
    intent = risk_intent(wire_intent(exchange=" Bybit "))
    assert intent.symbol == "BTC/USDT" and intent.size == D("0.010") and intent.exchange == "bybit"
    assert intent.entry_zone == (D(50000), D(50100))
    assert risk_intent(wire_intent(size=""), size=D("0.5")).size == D("0.5")


@pytest.mark.parametrize("changes", [{"symbol": "???"}, {"size": "abc"}, {"entry_zone": ["NaN"]}])
def test_unusable_wire_intent(changes: dict[str, object]) -> None:
    with pytest.raises(IntakeError):
        risk_intent(wire_intent(**changes))


def test_drift_latency_and_spread() -> None:
    late = detect_drift("s", "BTC/USDT", "bybit", 1, D(100), T0 + 2001, T0)
    assert [r.drift_class for r in late] == ["ClassBLatency"] and late[0].actual == 2001
    assert detect_drift("s", "BTC/USDT", "bybit", 1, D(100), T0 + 2000, T0) == []
    spread = detect_drift("s", "BTC/USDT", "bybit", 1, D("100.3"), T0, T0, (D(99), D(100)))
    assert [r.drift_class for r in spread] == ["ClassASpread"] and spread[0].deviation_bps == 30
    assert detect_drift("s", "BTC/USDT", "bybit", -1, D("99.9"), T0, T0, (D(99), D(100))) == []


def test_reconciliation_fills_make_shadow_equal_venue() -> None:
    book = ShadowBook()
    book.set_cash("main", D(1000))
    book.apply_fill(Fill("main", "bybit", "BTC/USDT", 1, D("0.5"), D(100), D(0), "t1", T0))
    book.apply_fill(Fill("main", "bybit", "BTC/USDT", -1, D("0.1"), D(90), D(0), "t2", T0))  # a loss today
    shadow = book.positions[("main", "bybit", "BTC/USDT")]
    fills, report = position_correction(
        "main", "bybit", "BTC/USDT", shadow, D("-0.2"), D(105), D(110), D("0.001"), T0, "42"
    )
    assert report is not None and report.drift_class == "ClassPPosition"
    daily_before = book.daily_pnl(T0)
    for f in fills:
        book.apply_fill(f)
    position = book.positions[("main", "bybit", "BTC/USDT")]
    assert position.signed_size == D("-0.2") and position.entry_price == D(105)
    assert book.daily_pnl(T0) == daily_before  # adjustments do not count toward daily loss
    within_a_step = position_correction(
        "main", "bybit", "BTC/USDT", position, D("-0.2005"), D(105), D(110), D("0.001"), T0, "43"
    )
    assert within_a_step == ([], None)


def test_seen_ids_are_bounded() -> None:
    seen: SeenIds[str] = SeenIds(capacity=3)
    assert all(seen.add(x) for x in "abcd")
    assert "a" not in seen and "d" in seen and len(seen) == 3
    assert not seen.add("d")


def test_causation_window_ttl() -> None:
    window = CausationWindow(ttl_ms=5000)
    window.record("c1", T0)
    assert window.is_duplicate("c1", T0 + 5000)
    assert not window.is_duplicate("c1", T0 + 5001)
    assert not window.is_duplicate(None, T0)
    window.record("c2", T0 + 6000)
    assert len(window) == 1  # c1 pruned


def test_core_state_views_feed_the_checks() -> None:
    state = CoreState()
    state.apply(CashRecord("main", D(10000)), T0)
    state.apply(FillRecord(Fill("main", "bybit", "BTC/USDT", 1, D("0.5"), D(50000), D(0), "t", T0)), T0)
    views = state.check_views("main", "BTC/USDT", T0)
    assert views.positions == {"bybit": D("0.5")} and views.equity == D(10000)
    policy = load_policy("config/risk_policy.json")
    inputs = CheckInputs(
        intent=risk_intent(wire_intent(intent_type="CLOSE_LONG", direction=0, exchange="bybit")),
        policy=policy,
        config=CheckConfig(),
        now_ms=T0,
        now_mono_ns=0,
        registered_venues=("bybit",),
        instruments={"bybit": InstrumentMeta("bybit", "BTC/USDT", D("0.1"), D("0.001"), D("0.001"))},
        **msgspec.structs.asdict(views),
    )
    # No ticker row at all: stale, so the close is denied until market data flows.
    assert not isinstance(run_checks(inputs), Approval)
