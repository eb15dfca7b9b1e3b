"""Risk states, global halt, armed interlock and the slippage / adverse-selection breakers (§5, §6).

Pure state with an injected clock. What must survive a restart is exposed as
:class:`RiskControlState` (journal it on every change) and the two interlock files are parsed and
rendered here; reading and writing the files is the caller's job.
"""

from __future__ import annotations

import json
from collections import deque
from decimal import ROUND_DOWN, Decimal, localcontext, setcontext
from enum import StrEnum
from typing import Final

import msgspec

from titan.risk.policy import RiskState
from titan.state.decimals import MONEY_CONTEXT, money_enter

ARMED_FILE: Final = "execution.armed"
HALT_FILE: Final = "system.halt"


class HaltMode(StrEnum):
    OPEN = "OPEN"
    SOFT = "SOFT_HALT"
    HARD = "HARD_HALT"


class HaltState(msgspec.Struct, frozen=True):
    """Content of ``system.halt`` (nats.md §10.2): ``{state, reason, actor, ts}``."""

    state: HaltMode = HaltMode.OPEN
    reason: str = ""
    actor: str = ""
    ts: int = 0


def parse_halt_file(content: bytes) -> HaltState:
    """A JSON halt file, or a legacy plain-text one (its text is the reason; reads as HARD)."""
    text = content.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        try:
            return msgspec.convert(doc, HaltState)
        except msgspec.ValidationError:
            pass
    return HaltState(state=HaltMode.HARD, reason=text.strip())


def render_halt_file(halt: HaltState) -> bytes:
    return msgspec.json.encode(halt)


def slippage_bps(fill_price: Decimal, expected_price: Decimal) -> int:
    """``trunc(abs(fill − expected) / expected · 10⁴)``; 0 without an expected price."""
    if expected_price <= 0:
        return 0
    with localcontext(MONEY_CONTEXT):
        return int((abs(fill_price - expected_price) / expected_price * 10_000).to_integral_value(ROUND_DOWN))


def adverse_bps(side: int, fill_price: Decimal, expected_price: Decimal) -> Decimal:
    """Signed adverse selection: positive when a buy filled above / a sell below the expectation."""
    if expected_price <= 0:
        return Decimal(0)
    with localcontext(MONEY_CONTEXT):
        return side * (fill_price - expected_price) / expected_price * 10_000


class RiskControlState(msgspec.Struct, frozen=True):
    """The persisted part of risk control: journal it whenever it changes."""

    current_state: RiskState = RiskState.NORMAL
    breaker_state: RiskState = RiskState.NORMAL
    armed: bool = False
    halt: HaltState = HaltState()


_ACTIONS: Final[dict[RiskState, tuple[list[str], list[str]]]] = {
    RiskState.NORMAL: (["Monitor Logs"], []),
    RiskState.CAUTIOUS: (["Monitor Slippage", "Check Market Volatility"], []),
    RiskState.DEFENSIVE: (
        ["Investigate Cause", "Manual Reset Required to Resume Opening"],
        ["Do NOT Force Open Positions"],
    ),
    RiskState.EMERGENCY: (
        ["ALL TRADING HALTED", "Investigate IMMEDIATELY"],
        ["Do NOT Restart without Audit"],
    ),
}


class RiskStatus(msgspec.Struct, frozen=True):
    """HTTP ``/status`` body: the effective state and why."""

    mode: str
    reasons: list[str]
    actions: list[str]
    unsafe_actions: list[str]


class RiskControl:
    """Effective risk state = max(current_state, breaker state, Defensive on a stale Brain heartbeat)."""

    ADVERSE_BPS: Final = Decimal(20)
    ADVERSE_WINDOW: Final = 100

    def __init__(
        self,
        persisted: RiskControlState | None = None,
        *,
        heartbeat_required: bool = False,
        heartbeat_timeout_ms: int = 5_000,
        started_ms: int = 0,
        escalate_only_events: bool = False,
    ) -> None:
        p = persisted or RiskControlState()
        self.current_state = p.current_state
        self.breaker_state = p.breaker_state
        self.armed = p.armed
        self.halt = p.halt
        self.heartbeat_required = heartbeat_required
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        # No heartbeat yet counts from start, so a fresh engine is not Defensive for 5 s.
        self.last_heartbeat_ms = started_ms
        self.escalate_only_events = escalate_only_events
        self._adverse: deque[bool] = deque(maxlen=self.ADVERSE_WINDOW)
        self._adverse_count = 0  # how many of ``_adverse`` are True (kept as it slides)

    def persisted(self) -> RiskControlState:
        return RiskControlState(self.current_state, self.breaker_state, self.armed, self.halt)

    # --- inputs ---------------------------------------------------------------------------------

    def on_heartbeat(self, now_ms: int) -> None:
        self.last_heartbeat_ms = max(self.last_heartbeat_ms, now_ms)

    def heartbeat_stale(self, now_ms: int) -> bool:
        return self.heartbeat_required and now_ms - self.last_heartbeat_ms > self.heartbeat_timeout_ms

    def on_state_event(self, state: RiskState) -> bool:
        """``titan.evt.risk.state.v1``; returns True when the persisted state changed."""
        if self.escalate_only_events and state < self.current_state:
            return False
        changed = state != self.current_state
        self.current_state = state
        return changed

    def set_armed(self, armed: bool) -> bool:
        changed = armed != self.armed
        self.armed = armed
        return changed

    def set_halt(self, halt: HaltState) -> bool:
        changed = halt.state != self.halt.state
        self.halt = halt
        return changed

    def reset_breaker(self) -> bool:
        """Operator reset of the breaker state (``Manual Reset Required to Resume Opening``)."""
        changed = self.breaker_state != RiskState.NORMAL
        self.breaker_state = RiskState.NORMAL
        self._adverse.clear()
        self._adverse_count = 0
        return changed

    def on_fill(
        self, side: int, fill_price: Decimal, expected_price: Decimal | None, max_slippage_bps: Decimal
    ) -> bool:
        """Feed one fill to the slippage breaker and the SRE adverse-selection rule (§5, §6).

        Returns True when the breaker state changed (journal it).
        """
        if expected_price is None or expected_price <= 0:
            return False
        before = self.breaker_state
        # slippage_bps and adverse_bps, inlined under one money context (same arithmetic).
        saved = money_enter()  # ``with localcontext(MONEY_CONTEXT)`` without a copy per call
        try:
            move = fill_price - expected_price
            bps = int((abs(move) / expected_price * 10_000).to_integral_value(ROUND_DOWN))
            adverse = side * move / expected_price * 10_000 > self.ADVERSE_BPS
        finally:
            setcontext(saved)
        if bps > max_slippage_bps:
            if bps > 2 * max_slippage_bps:
                if self.breaker_state < RiskState.DEFENSIVE:
                    self.breaker_state = RiskState.DEFENSIVE
            elif self.breaker_state == RiskState.NORMAL:
                self.breaker_state = RiskState.CAUTIOUS
        window = self._adverse
        if len(window) == window.maxlen and window[0]:
            self._adverse_count -= 1  # the oldest sample slides out
        window.append(adverse)
        self._adverse_count += adverse
        samples = len(window)
        if (
            samples > 10
            and self._adverse_count * 20 > samples  # > 5 %
            and self.breaker_state == RiskState.NORMAL
        ):
            self.breaker_state = RiskState.CAUTIOUS
        return self.breaker_state != before

    # --- outputs --------------------------------------------------------------------------------

    def effective_state(self, now_ms: int) -> RiskState:
        current, breaker = self.current_state, self.breaker_state
        state = current if current >= breaker else breaker  # max(), first of equals (same member)
        if self.heartbeat_required and now_ms - self.last_heartbeat_ms > self.heartbeat_timeout_ms:
            state = max(state, RiskState.DEFENSIVE)  # heartbeat_stale(), inlined
        return state

    def reasons(self, now_ms: int) -> list[str]:
        out: list[str] = []
        if self.current_state != RiskState.NORMAL:
            out.append(f"current_state {self.current_state.label}")
        if self.breaker_state != RiskState.NORMAL:
            out.append(f"breaker {self.breaker_state.label}")
        if self.heartbeat_stale(now_ms):
            out.append(f"brain heartbeat older than {self.heartbeat_timeout_ms} ms")
        return out

    def status(self, now_ms: int) -> RiskStatus:
        state = self.effective_state(now_ms)
        actions, unsafe = _ACTIONS[state]
        return RiskStatus(state.label, self.reasons(now_ms), list(actions), list(unsafe))
