"""Order (leg) state machine (risk-and-state.md §13) and intent status aggregation (§14)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Final

import msgspec

from titan.state.decimals import ZERO


class LegState(StrEnum):
    RECEIVED = "RECEIVED"
    VALIDATED = "VALIDATED"
    ACCEPTED = "ACCEPTED"
    SENT = "SENT"
    UNKNOWN = "UNKNOWN"
    ACKED = "ACKED"
    PARTIAL_FILL = "PARTIAL_FILL"
    PENDING_CANCEL = "PENDING_CANCEL"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    DENIED = "DENIED"
    FAILED = "FAILED"
    RECONCILED = "RECONCILED"


class LegStates:
    """:class:`LegState`'s members as plain class attributes: on hot paths, reading an Enum class's
    attribute costs ~0.1 µs more than a plain class's (CPython 3.11 does not specialise it)."""

    RECEIVED: Final = LegState.RECEIVED
    VALIDATED: Final = LegState.VALIDATED
    ACCEPTED: Final = LegState.ACCEPTED
    SENT: Final = LegState.SENT
    UNKNOWN: Final = LegState.UNKNOWN
    ACKED: Final = LegState.ACKED
    PARTIAL_FILL: Final = LegState.PARTIAL_FILL
    PENDING_CANCEL: Final = LegState.PENDING_CANCEL
    FILLED: Final = LegState.FILLED
    CANCELED: Final = LegState.CANCELED
    EXPIRED: Final = LegState.EXPIRED
    REJECTED: Final = LegState.REJECTED
    DENIED: Final = LegState.DENIED
    FAILED: Final = LegState.FAILED
    RECONCILED: Final = LegState.RECONCILED


S = LegStates
_FINISHED: Final = frozenset({S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED, S.DENIED, S.FAILED})
TERMINAL_STATES: Final = _FINISHED | {S.RECONCILED}

LEGAL_TRANSITIONS: Final[dict[LegState, frozenset[LegState]]] = {
    S.RECEIVED: frozenset({S.VALIDATED, S.DENIED}),
    S.VALIDATED: frozenset({S.ACCEPTED, S.DENIED}),
    S.ACCEPTED: frozenset({S.SENT, S.DENIED, S.FAILED}),
    S.SENT: frozenset({S.ACKED, S.PARTIAL_FILL, S.FILLED, S.REJECTED, S.CANCELED, S.EXPIRED, S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.ACKED, S.PARTIAL_FILL, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED}),
    S.ACKED: frozenset({S.PARTIAL_FILL, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIAL_FILL: frozenset({S.PARTIAL_FILL, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.FILLED, S.PARTIAL_FILL, S.ACKED}),
    **{state: frozenset({S.RECONCILED}) for state in _FINISHED},
    S.RECONCILED: frozenset(),
}


class Transition(msgspec.Struct, frozen=True, gc=False):
    from_state: LegState = msgspec.field(name="from")
    to_state: LegState = msgspec.field(name="to")
    t_mono_ns: int = 0
    t_wall_ms: int = 0
    reason: str | None = None


class LegFsm(msgspec.Struct, gc=False):
    """One leg's state with its transition history; JSON shape of §13 via ``msgspec.json``."""

    signal_id: str
    client_order_id: str
    symbol: str
    state: LegState = S.RECEIVED
    transitions: list[Transition] = msgspec.field(default_factory=list)
    illegal_count: int = 0

    def can(self, to: LegState) -> bool:
        return to in LEGAL_TRANSITIONS[self.state]

    def advance(self, to: LegState, t_mono_ns: int, t_wall_ms: int, reason: str | None = None) -> bool:
        """Apply a transition with its own timestamp; an illegal one is refused and counted."""
        if not self.can(to):
            self.illegal_count += 1
            return False
        self.transitions.append(Transition(self.state, to, t_mono_ns, t_wall_ms, reason))
        self.state = to
        return True

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def total_latency_ms(self) -> float:
        """Last − first transition, from the monotonic stamps."""
        if len(self.transitions) < 2:
            return 0.0
        return (self.transitions[-1].t_mono_ns - self.transitions[0].t_mono_ns) / 1e6


def illegal_transition_message(coid: str, from_state: LegState, to: LegState, reason: str | None) -> str:
    """The log line for an illegal transition (a bug when it happens)."""
    return f"Illegal FSM transition for {coid}: {from_state} → {to} (reason: {reason})"


class IntentStatus(StrEnum):
    PENDING = "PENDING"
    VALIDATED = "VALIDATED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    EXECUTED = "EXECUTED"
    PARTIALLY_COMPLETED = "PARTIALLY_COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED_WITH_EXPOSURE = "FAILED_WITH_EXPOSURE"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class LegProgress(msgspec.Struct, frozen=True, gc=False):
    state: LegState
    filled_qty: Decimal = ZERO


_FAILED_LEG: Final = frozenset({S.REJECTED, S.FAILED, S.DENIED})


def intent_status(legs: Iterable[LegProgress], target_qty: Decimal) -> IntentStatus:
    """Parent status over its legs (§14); ``target_qty`` = Q − unallocated.

    An intent denied before any leg is REJECTED (EXPIRED for freshness): the caller knows that case.
    """
    legs = list(legs)
    if not legs:
        return IntentStatus.PENDING
    filled = sum((leg.filled_qty for leg in legs), ZERO)
    if target_qty > 0 and filled >= target_qty:
        return IntentStatus.EXECUTED
    if not all(leg.state in TERMINAL_STATES for leg in legs):
        return IntentStatus.PARTIALLY_FILLED if filled > 0 else IntentStatus.PENDING
    failed = any(leg.state in _FAILED_LEG for leg in legs)
    if filled > 0:
        return IntentStatus.FAILED_WITH_EXPOSURE if failed else IntentStatus.PARTIALLY_COMPLETED
    if failed:
        return IntentStatus.REJECTED
    if all(leg.state is S.EXPIRED for leg in legs):
        return IntentStatus.EXPIRED
    return IntentStatus.CANCELLED
