"""Risk states, halt/armed interlocks and breakers (§5, §6)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan.risk.decision import BookTop, decide_order, impact_bps
from titan.risk.policy import RiskState
from titan.risk.state import (
    HaltMode,
    HaltState,
    RiskControl,
    RiskControlState,
    parse_halt_file,
    render_halt_file,
    slippage_bps,
)

D = Decimal


def test_effective_state_is_the_max_of_sources() -> None:
    control = RiskControl(heartbeat_required=True, started_ms=0)
    assert control.effective_state(5_000) is RiskState.NORMAL
    assert control.effective_state(5_001) is RiskState.DEFENSIVE  # heartbeat older than 5000 ms
    control.on_heartbeat(5_001)
    assert control.effective_state(5_002) is RiskState.NORMAL
    control.on_state_event(RiskState.EMERGENCY)
    assert control.effective_state(5_002) is RiskState.EMERGENCY
    status = control.status(5_002)
    assert status.mode == "Emergency" and status.unsafe_actions == ["Do NOT Restart without Audit"]
    assert RiskControl(heartbeat_required=False).effective_state(10**9) is RiskState.NORMAL


def test_escalate_only_state_events() -> None:
    control = RiskControl(RiskControlState(current_state=RiskState.DEFENSIVE), escalate_only_events=True)
    assert not control.on_state_event(RiskState.NORMAL)
    assert control.current_state is RiskState.DEFENSIVE


@pytest.mark.parametrize(
    ("fill", "expected", "bps"),
    [("100.5", "100", 50), ("99.49", "100", 51), ("100", "0", 0), ("1.00019", "1", 1)],
)
def test_slippage_bps_truncates(fill: str, expected: str, bps: int) -> None:
    assert slippage_bps(D(fill), D(expected)) == bps


def test_slippage_breaker() -> None:
    control = RiskControl()
    assert not control.on_fill(1, D("100.5"), D(100), max_slippage_bps=D(100))  # 50 bps: fine
    assert control.on_fill(1, D("101.5"), D(100), max_slippage_bps=D(100))  # 150 bps → Cautious
    assert control.breaker_state is RiskState.CAUTIOUS
    assert control.on_fill(-1, D("97.9"), D(100), max_slippage_bps=D(100))  # 210 bps → Defensive
    assert control.persisted().breaker_state is RiskState.DEFENSIVE
    assert control.persisted().breaker_state is RiskState.DEFENSIVE  # journaled, restored from it
    restored = RiskControl(control.persisted())
    assert restored.effective_state(0) is RiskState.DEFENSIVE
    assert restored.reset_breaker() and restored.effective_state(0) is RiskState.NORMAL


def test_adverse_selection_rule_needs_more_than_ten_samples() -> None:
    control = RiskControl()
    for _ in range(10):
        control.on_fill(1, D("100.3"), D(100), max_slippage_bps=D(100))  # 30 bps adverse each
    assert control.breaker_state is RiskState.NORMAL
    control.on_fill(1, D(100), D(100), max_slippage_bps=D(100))
    assert control.persisted().breaker_state is RiskState.CAUTIOUS


def test_halt_file_round_trip_and_legacy_text() -> None:
    halt = HaltState(HaltMode.SOFT, "ops", "alice", 17)
    assert parse_halt_file(render_halt_file(halt)) == halt
    assert parse_halt_file(b"maintenance\n") == HaltState(HaltMode.HARD, "maintenance")
    control = RiskControl()
    assert not control.armed  # default DISARMED
    assert control.set_halt(halt) and control.persisted().halt == halt


def test_order_decision() -> None:
    assert impact_bps(D(0)) == 0
    assert decide_order(1, D(500), D(100), False).tif == "POST_ONLY"
    assert decide_order(1, D(1_000_000), D(100), False).tif == "IOC"  # 21 bps
    assert not decide_order(1, D(10_000_000), D(100), False).feasible
    assert decide_order(1, D(500), None, False).order_type == "MARKET"  # never a limit at 0
    snipe = decide_order(1, D(500), D(100), False, book=BookTop(D(99), D(101), D(9), D(1)))
    assert snipe.order_type == "MARKET" and snipe.tag == "IMBALANCE_SNIPE_BUY"
    wide = decide_order(1, D(500), D(100), False, book=BookTop(D(99), D(101), D(1), D(1)))
    assert wide.tag == "WIDE_SPREAD_MAKER"
    halted = decide_order(-1, D(500), D(100), True, soft_halted=True)
    assert halted.reduce_only and halted.tif == "POST_ONLY"


@pytest.mark.parametrize(
    ("velocity", "side", "expected"),
    [
        (D("0.0051"), 1, ("MARKET", "IOC", None)),
        (D("0.003"), 1, ("LIMIT", "IOC", D(101))),  # a buy crosses at the top of the zone
        (D("0.003"), -1, ("LIMIT", "IOC", D(100))),  # a sell at its bottom
        (D("0.001"), 1, ("LIMIT", "POST_ONLY", D(100))),  # not above 0.001: the maker default
        (None, 1, ("LIMIT", "POST_ONLY", D(100))),
    ],
)
def test_velocity_picks_the_order_type(
    velocity: D | None, side: int, expected: tuple[str, str, D | None]
) -> None:
    d = decide_order(side, D(500), D(100), False, velocity=velocity, zone=(D(100), D(101)))
    assert (d.order_type, d.tif, d.price) == expected


def test_velocity_never_beats_infeasible_impact_or_a_halt() -> None:
    assert not decide_order(1, D(10_000_000), D(100), False, velocity=D(1), zone=(D(100),)).feasible
    halted = decide_order(1, D(500), D(100), True, soft_halted=True, velocity=D(1), zone=(D(100),))
    assert halted.tif == "POST_ONLY" and halted.reduce_only
