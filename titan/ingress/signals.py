"""Typed FastPath signals (fastpath.md §5) and their validation beyond types.

Numbers on the wire are JavaScript doubles, so the structs hold floats exactly as signed; money is
turned into exact decimal strings (the double's shortest representation) only when mapping to the
engine's :class:`titan.messages.Intent`.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from titan.messages import Intent

Source = Literal["scavenger", "hunter", "sentinel", "brain"]
SIGNAL_TYPES: Final = frozenset({"PREPARE", "CONFIRM", "ABORT", "PING"})
MAX_SIGNAL_ID_CHARS: Final = 128
_CONTROL_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1


class EntryZone(msgspec.Struct):
    min: float
    max: float


class LatencyProfile(msgspec.Struct):
    t0_market_data: float | None = None
    t1_signal_generated: float | None = None
    t2_brain_ingress: float | None = None
    t3_brain_decision: float | None = None
    t4_execution_ingress: float | None = None


class PrepareSignal(msgspec.Struct, kw_only=True):
    """IntentSignal (§5.1). Unknown keys are signed but ignored."""

    signal_type: Literal["PREPARE"]
    signal_id: str
    source: Source
    symbol: str
    direction: Literal["LONG", "SHORT"]
    entry_zone: EntryZone
    stop_loss: float
    take_profits: list[float]
    confidence: float
    leverage: float
    timestamp: float
    position_size: float | None = None
    velocity: float | None = None
    trap_type: str | None = None
    type: str | None = None
    t_analysis: float | None = None
    t_decision: float | None = None
    t_ingress: float | None = None
    t_exchange: float | None = None
    max_slippage_bps: float | None = None
    fill_feasibility: float | None = None
    expected_impact_bps: float | None = None
    latency_profile: LatencyProfile | None = None
    ttl_ms: float | None = None
    partition_key: str | None = None
    causation_id: str | None = None
    env: str | None = None
    subject: str | None = None
    metadata: Any = None


class ConfirmSignal(msgspec.Struct, kw_only=True):
    signal_type: Literal["CONFIRM"]
    signal_id: str
    timestamp: float
    source: Source | None = None


class AbortSignal(msgspec.Struct, kw_only=True):
    signal_type: Literal["ABORT"]
    signal_id: str
    timestamp: float
    source: Source | None = None


class PingSignal(msgspec.Struct, kw_only=True):
    signal_type: Literal["PING"]
    timestamp: float


Signal = PrepareSignal | ConfirmSignal | AbortSignal | PingSignal
SIGNAL_STRUCTS: Final[dict[str, type[Signal]]] = {
    "PREPARE": PrepareSignal,
    "CONFIRM": ConfirmSignal,
    "ABORT": AbortSignal,
    "PING": PingSignal,
}


class SignalHead(msgspec.Struct):
    """The fields needed before full validation (replay check, dispatch, echo); any types."""

    signal_type: Any = None
    timestamp: Any = None
    signal_id: Any = None


def _check_signal_id(signal_id: str) -> str | None:
    if not signal_id.strip():
        return "signal_id is empty"
    if len(signal_id) > MAX_SIGNAL_ID_CHARS:
        return f"signal_id longer than {MAX_SIGNAL_ID_CHARS} characters"
    if _CONTROL_CHARS.search(signal_id) is not None:
        return "signal_id contains control characters"
    return None


def _finite(*values: float | None) -> bool:
    for v in values:  # noqa: SIM110 - cheaper than all() over a generator on the hot path
        if v is not None and not math.isfinite(v):
            return False
    return True


def check_signal(signal: Signal) -> str | None:
    """Value rules of §5.1 that types cannot express; None when valid, else a reason for INVALID_SIGNAL."""
    if isinstance(signal, PingSignal):
        return None
    problem = _check_signal_id(signal.signal_id)
    if problem is not None or not isinstance(signal, PrepareSignal):
        return problem
    s = signal
    if not _finite(
        s.entry_zone.min, s.entry_zone.max, s.stop_loss, s.confidence, s.leverage, s.position_size
    ):
        return "non-finite number"
    if not s.symbol.strip():
        return "symbol is empty"
    if not (s.entry_zone.min > 0 and s.entry_zone.max > 0):
        return "entry_zone.min and entry_zone.max must be > 0"
    if s.entry_zone.min > s.entry_zone.max:
        return "entry_zone.min > entry_zone.max"
    if s.stop_loss < 0:
        return "stop_loss must be ≥ 0"
    for tp in s.take_profits:
        if not (tp > 0 and math.isfinite(tp)):
            return "take_profits must be > 0"
    if not 0 <= s.confidence <= 100:
        return "confidence must be within 0..100 (≤ 1 is read as a fraction)"
    if s.leverage <= 0:
        return "leverage must be > 0"
    if s.position_size is not None and s.position_size < 0:
        return "position_size must be ≥ 0"
    if s.ttl_ms is not None and not (math.isfinite(s.ttl_ms) and s.ttl_ms > 0):
        return "ttl_ms must be > 0"
    return None


def decimal_text(x: float) -> str:
    """Exact plain-notation decimal of the double's shortest representation (``1e-07`` → ``0.0000001``)."""
    if x.is_integer():
        return str(int(x))
    if 1e-4 <= abs(x) < 1e16:
        return repr(x)  # repr is already plain notation here (it switches to exponents outside)
    return format(Decimal(repr(x)), "f")


def to_intent(signal: PrepareSignal) -> Intent:
    """FastPath → internal intent (§5.1 mapping, as upstream's ExecutionClient)."""
    long = signal.direction == "LONG"
    size = signal.position_size
    return Intent(
        signal_id=signal.signal_id,
        source=signal.source,
        symbol=signal.symbol,
        direction=1 if long else -1,
        intent_type="BUY_SETUP" if long else "SELL_SETUP",
        t_signal_ms=int(signal.timestamp),
        position_size=decimal_text(size) if size is not None and size > 0 else "",
        entry_zone=[decimal_text(signal.entry_zone.min), decimal_text(signal.entry_zone.max)],
        stop_loss=decimal_text(signal.stop_loss),
        take_profits=[decimal_text(tp) for tp in signal.take_profits],
        confidence=signal.confidence,
        leverage=signal.leverage,
        velocity=signal.velocity,
        ttl_ms=int(signal.ttl_ms) if signal.ttl_ms is not None else None,
        causation_id=signal.causation_id,
        max_slippage_bps=signal.max_slippage_bps,
    )
