"""Pre-trade checks (§3): one denial per reason code, first failure wins, approvals carry legs."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from titan.risk.checks import (
    Approval,
    CheckConfig,
    CheckInputs,
    Constraints,
    Denial,
    RiskIntent,
    StalenessConfig,
    TickerView,
    check_leg_at_gateway,
    run_checks,
)
from titan.risk.policy import RiskState, load_policy
from titan.risk.reasons import ReasonCode
from titan.risk.state import HaltMode
from titan.routing.router import InstrumentMeta

D = Decimal
NOW_MS = 1_800_000_000_000
NOW_NS = 5_000_000_000_000
MS = 1_000_000
POLICY = load_policy(Path(__file__).resolve().parents[2] / "config" / "risk_policy.json")


def meta(venue: str, min_notional: str = "0") -> InstrumentMeta:
    return InstrumentMeta(venue, "BTC/USDT", D("0.1"), D("0.001"), D("0.001"), D(min_notional))


def ticker(age_ms: int = 10, bid: str = "49990", ask: str = "50010") -> TickerView:
    return TickerView(D(bid), D(ask), NOW_NS - age_ms * MS, D(1), D(1))


BASE_INTENT = RiskIntent(
    signal_id="sig-1",
    source="hunter",  # → binance by the default fallback
    symbol="BTC/USDT",
    intent_type="BUY_SETUP",
    direction=1,
    size=D("0.01"),
    t_signal_ms=NOW_MS - 10,
    entry_zone=(D(50000), D(50100)),
    policy_hash=POLICY.policy_hash,
)
BASE = CheckInputs(
    intent=BASE_INTENT,
    policy=POLICY,
    config=CheckConfig(),
    now_ms=NOW_MS,
    now_mono_ns=NOW_NS,
    registered_venues=("binance", "bybit", "mexc"),
    instruments={"binance": meta("binance"), "bybit": meta("bybit")},
    tickers={"binance": ticker(), "bybit": ticker()},
    equity=D(10000),
)

Mutation = Callable[[CheckInputs], CheckInputs]


def inputs(**changes: Any) -> Mutation:
    return lambda base: msgspec.structs.replace(base, **changes)


def intent(**changes: Any) -> Mutation:
    return lambda base: msgspec.structs.replace(base, intent=msgspec.structs.replace(base.intent, **changes))


def config(**changes: Any) -> Mutation:
    return lambda base: msgspec.structs.replace(base, config=msgspec.structs.replace(base.config, **changes))


def policy(**changes: Any) -> Mutation:
    return lambda base: msgspec.structs.replace(base, policy=msgspec.structs.replace(base.policy, **changes))


def both(*mutations: Mutation) -> Mutation:
    def apply(base: CheckInputs) -> CheckInputs:
        for mutation in mutations:
            base = mutation(base)
        return base

    return apply


# One denial per code, listed in check order.
DENIALS: list[tuple[ReasonCode, Mutation]] = [
    (ReasonCode.SYSTEM_HALTED, inputs(halt=HaltMode.HARD)),
    (ReasonCode.SYSTEM_DISARMED, inputs(armed=False)),
    (ReasonCode.INVALID_INTENT, intent(intent_type="FORCE_SYNC")),
    (ReasonCode.INTENT_NOT_ACTIVE, intent(status="EXECUTED")),
    (ReasonCode.DUPLICATE_SIGNAL_ID, inputs(duplicate_signal_id=True)),
    (ReasonCode.DUPLICATE_CAUSATION_ID, inputs(duplicate_causation_id=True)),
    (ReasonCode.POLICY_HASH_MISMATCH, intent(policy_hash="9a673e76")),
    (ReasonCode.UNKNOWN_SYMBOL, inputs(instruments={})),
    (ReasonCode.UNKNOWN_VENUE, intent(exchange="Kraken")),
    (ReasonCode.NO_ROUTE, inputs(instruments={"mexc": meta("mexc")})),
    (ReasonCode.VENUE_RECONCILING, inputs(reconciling_venues=frozenset({"binance"}))),
    (ReasonCode.VENUE_COOLDOWN, inputs(cooldown_until_ms={"binance": NOW_MS + 2000})),
    (ReasonCode.MARKET_DATA_STALE, inputs(tickers={"binance": ticker(age_ms=250)})),
    (ReasonCode.RISK_STATE_EMERGENCY, inputs(effective_state=RiskState.EMERGENCY)),
    (ReasonCode.RISK_STATE_DEFENSIVE, inputs(effective_state=RiskState.DEFENSIVE)),
    (ReasonCode.REDUCE_ONLY_NO_POSITION, intent(intent_type="CLOSE_LONG", direction=0)),
    (ReasonCode.SYMBOL_NOT_WHITELISTED, intent(symbol="DOGE/USDT")),
    (ReasonCode.INVALID_SIZE, intent(size=D(0))),
    (ReasonCode.CONSTRAINT_REDUCE_ONLY, both(config(constraints_enabled=True), inputs(constraints=None))),
    (ReasonCode.CONSTRAINT_MAX_ORDER_NOTIONAL, both(config(constraints_enabled=True), inputs(
        constraints=Constraints(expires_ms=NOW_MS + 1, max_order_notional=D(10))))),
    (ReasonCode.CONSTRAINT_MAX_LEVERAGE, both(config(constraints_enabled=True), inputs(
        constraints=Constraints(expires_ms=NOW_MS + 1, max_leverage=D("0.01"))))),
    (ReasonCode.NO_PRICE, both(intent(entry_zone=()), inputs(tickers={"binance": ticker(bid="0", ask="0")}))),
    (ReasonCode.MAX_OPEN_ORDERS, inputs(open_intents=5)),
    (ReasonCode.DAILY_LOSS_LIMIT, inputs(daily_pnl=D(-1000))),  # equality triggers
    (ReasonCode.EQUITY_UNKNOWN, inputs(equity=None)),
    (ReasonCode.MAX_POSITION_NOTIONAL, inputs(positions={"bybit": D("1.5")})),
    (ReasonCode.MAX_ACCOUNT_LEVERAGE, inputs(equity=D(4))),
    (ReasonCode.IMPACT_TOO_HIGH, both(
        policy(max_position_notional=D(10**9), max_account_leverage=D(10**6)), intent(size=D(200)))),
    (ReasonCode.INTENT_EXPIRED, intent(t_signal_ms=NOW_MS - 5001)),
    (ReasonCode.BELOW_MIN_QTY, intent(size=D("0.0009"))),
    (ReasonCode.BELOW_MIN_NOTIONAL, inputs(instruments={"binance": meta("binance", min_notional="1000")})),
]  # fmt: skip


def test_base_inputs_are_approved() -> None:
    result = run_checks(BASE)
    assert isinstance(result, Approval)
    assert [(leg.venue, leg.qty) for leg in result.legs] == [("binance", D("0.01"))]
    assert result.side == 1 and result.reference_price == D(50000) and not result.reduce_only
    assert result.decision.order_type == "LIMIT" and result.decision.tif == "POST_ONLY"


@pytest.mark.parametrize(("code", "mutation"), DENIALS, ids=[c.value for c, _ in DENIALS])
def test_each_check_denies_with_its_code(code: ReasonCode, mutation: Mutation) -> None:
    result = run_checks(mutation(BASE))
    assert isinstance(result, Denial)
    assert result.code is code
    assert result.text and "?" not in result.text  # every template field was supplied


def test_every_check_code_has_a_denial_case() -> None:
    fastpath_or_gateway = {
        ReasonCode.EXECUTION_DISABLED_BY_OPERATOR, ReasonCode.ENGINE_NOT_READY, ReasonCode.PREPARE_NOT_FOUND,
        ReasonCode.STALE_SIGNAL, ReasonCode.ALREADY_CONFIRMED, ReasonCode.POLICY_MISSING,
        ReasonCode.RATE_LIMITED, ReasonCode.VENUE_REJECTED,
    }  # fmt: skip
    assert {code for code, _ in DENIALS} | fastpath_or_gateway == set(ReasonCode)


def test_first_failure_wins_in_check_order() -> None:
    # Apply the mutations from the last check to the first: each new (earlier) one must win.
    # (Some mutations replace whole inputs the later checks rely on, so they are tested alone.)
    # Constraint notional/leverage need a price, so NO_PRICE is tested alone too; a reduce-only
    # intent passes Defensive by design.
    alone = {
        ReasonCode.NO_ROUTE,
        ReasonCode.UNKNOWN_SYMBOL,
        ReasonCode.IMPACT_TOO_HIGH,
        ReasonCode.NO_PRICE,
        ReasonCode.REDUCE_ONLY_NO_POSITION,
    }
    ordered = [(c, m) for c, m in DENIALS if c not in alone]
    state = BASE
    for code, mutation in reversed(ordered):
        state = mutation(state)
        result = run_checks(state)
        assert isinstance(result, Denial) and result.code is code, code


def test_texts_match_upstream_formats() -> None:
    notional = run_checks(inputs(positions={"bybit": D("0.995")})(BASE))
    assert isinstance(notional, Denial)
    assert notional.text == (
        "Position cap exceeded for BTC/USDT: Curr 49750.00 + Add 500.00 > Limit 50000.00"
    )
    leverage = run_checks(inputs(equity=D(0))(BASE))
    assert isinstance(leverage, Denial)
    assert leverage.text == "Account Leverage Limit Exceeded: 999.00x > 10.00x"
    stale = run_checks(inputs(tickers={})(BASE))
    assert isinstance(stale, Denial) and stale.venue == "binance"
    assert stale.text.startswith("Market Data Stale: BTC/USDT on binance")


def test_position_notional_is_strict_and_signed() -> None:
    at_limit = inputs(positions={"bybit": D("0.99")})(BASE)  # (0.99 + 0.01) · 50000 = 50000, not >
    assert isinstance(run_checks(at_limit), Approval)
    # A short position plus a buy reduces |S + q|: upstream added them regardless of side.
    short = inputs(positions={"bybit": D("-0.995")})(BASE)
    assert isinstance(run_checks(short), Approval)
    working = inputs(working_signed_qty=D("0.995"))(BASE)
    assert isinstance(run_checks(working), Denial)


@pytest.mark.parametrize(
    ("venue", "age_ms", "ceiling", "stale"),
    [("binance", 200, 5000, False), ("binance", 201, 5000, True), ("mexc", 1200, 5000, False),
     ("mexc", 1600, 5000, True), ("mexc", 1200, 1000, True), ("mexc", 1200, 0, False)],
)  # fmt: skip
def test_staleness_per_venue_with_policy_ceiling(venue: str, age_ms: int, ceiling: int, stale: bool) -> None:
    state = both(
        intent(exchange=venue),
        policy(max_staleness_ms=ceiling),
        inputs(instruments={venue: meta(venue)}, tickers={venue: ticker(age_ms=age_ms)}),
    )(BASE)
    result = run_checks(state)
    assert isinstance(result, Denial) == stale
    if stale:
        assert isinstance(result, Denial) and result.code is ReasonCode.MARKET_DATA_STALE


def test_staleness_zero_config_disables_venue() -> None:
    cfg = config(staleness=StalenessConfig(per_venue_ms={"binance": 0}))
    assert isinstance(
        run_checks(both(cfg, inputs(tickers={"binance": ticker(age_ms=10**6)}))(BASE)), Approval
    )


def close_long(position: str, **extra: Any) -> CheckInputs:
    return both(
        intent(intent_type="CLOSE_LONG", direction=0), inputs(positions={"binance": D(position)}, **extra)
    )(BASE)


def test_reduce_only_capped_at_position_and_sells() -> None:
    result = run_checks(close_long("0.004"))
    assert isinstance(result, Approval)
    assert result.side == -1 and result.reduce_only and result.quantity == D("0.004")
    assert [(leg.venue, leg.qty) for leg in result.legs] == [("binance", D("0.004"))]


def test_reduce_only_wrong_direction_is_denied() -> None:
    result = run_checks(close_long("-0.004"))
    assert isinstance(result, Denial) and result.code is ReasonCode.REDUCE_ONLY_NO_POSITION


@pytest.mark.parametrize(
    ("changes", "allowed"),
    [
        ({"effective_state": RiskState.EMERGENCY}, True),
        ({"effective_state": RiskState.DEFENSIVE}, True),
        ({"halt": HaltMode.SOFT}, True),
        ({"halt": HaltMode.HARD}, False),
        ({"open_intents": 99, "daily_pnl": D(-5000)}, True),  # caps do not block closes
    ],
)
def test_reduce_only_passes_states_that_block_opens(changes: dict[str, Any], allowed: bool) -> None:
    assert isinstance(run_checks(close_long("0.01", **changes)), Approval) == allowed


def test_emergency_can_block_closes_by_config() -> None:
    state = both(config(emergency_allow_reduce_only=False))(
        close_long("0.01", effective_state=RiskState.EMERGENCY)
    )
    result = run_checks(state)
    assert isinstance(result, Denial) and result.text == "Risk state Emergency: all blocked"


def test_close_of_non_whitelisted_symbol_with_position_passes() -> None:
    result = run_checks(both(intent(symbol="DOGE/USDT"))(close_long("5")))
    assert isinstance(result, Approval) and result.quantity == D("0.01")


def test_ttl_lowers_freshness_and_expired_text() -> None:
    result = run_checks(intent(ttl_ms=100, t_signal_ms=NOW_MS - 101)(BASE))
    assert isinstance(result, Denial) and result.text == "Latency 101 ms"


def test_weighted_fanout_splits_across_healthy_venues_only() -> None:
    from titan.routing.router import RoutingConfig

    weights = config(routing=RoutingConfig(weights={"binance": D(1), "bybit": D(1)}))
    result = run_checks(weights(BASE))
    assert isinstance(result, Approval)
    assert [(leg.venue, leg.qty) for leg in result.legs] == [("binance", D("0.005")), ("bybit", D("0.005"))]
    cooled = run_checks(both(weights, inputs(cooldown_until_ms={"bybit": NOW_MS + 1}))(BASE))
    assert isinstance(cooled, Approval) and [leg.venue for leg in cooled.legs] == ["binance"]


def test_gateway_leg_recheck() -> None:
    fresh = ticker()
    assert check_leg_at_gateway("bybit", "BTC/USDT", NOW_NS, NOW_MS, fresh, 200, None, None) is None
    limited = check_leg_at_gateway("bybit", "BTC/USDT", NOW_NS, NOW_MS, fresh, 200, None, "create")
    assert limited is not None and limited.code is ReasonCode.RATE_LIMITED
    assert limited.text == "Rate limit create on bybit"
    cooling = check_leg_at_gateway("bybit", "BTC/USDT", NOW_NS, NOW_MS, fresh, 200, NOW_MS + 5, None)
    assert cooling is not None and cooling.code is ReasonCode.VENUE_COOLDOWN
    stale = check_leg_at_gateway("bybit", "BTC/USDT", NOW_NS, NOW_MS, ticker(age_ms=300), 200, None, None)
    assert stale is not None and stale.code is ReasonCode.MARKET_DATA_STALE
