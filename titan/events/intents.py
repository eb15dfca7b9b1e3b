"""Intent payload validation (nats.md §4) with upstream's exact error strings.

Validates the *raw* parsed payload (upstream re-serialised a typed struct first and broke
``stop_loss``, ``child_fills`` and the ``timestamp`` alias on the signed path) and produces a
normalised :class:`NatsIntent` with exact decimals. Error strings become DLQ reasons after
``"Invalid intent: "``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, TypeGuard

import msgspec

from titan.canonical import JsonError, parse_json
from titan.symbols import SymbolError, normalize_symbol

INTENT_TYPES: tuple[str, ...] = ("BUY_SETUP", "SELL_SETUP", "CLOSE_LONG", "CLOSE_SHORT", "CLOSE")
CLOSE_TYPES = frozenset({"CLOSE_LONG", "CLOSE_SHORT", "CLOSE"})
INTENT_STATUSES: tuple[str, ...] = ("PENDING", "VALIDATED", "REJECTED", "EXECUTED", "EXPIRED")
ACTIVE_STATUSES = frozenset({"PENDING", "VALIDATED"})
MAX_SIGNAL_ID_LEN = 128

ERR_NOT_OBJECT = "Payload must be a JSON object"
ERR_DIRECTION = "direction must be -1, 0, or 1"
ERR_TYPE = 'type must be one of: ["BUY_SETUP", "SELL_SETUP", "CLOSE_LONG", "CLOSE_SHORT", "CLOSE"]'
ERR_STATUS = 'status must be one of: ["PENDING", "VALIDATED", "REJECTED", "EXECUTED", "EXPIRED"]'
ERR_SIZE_TYPE = "size must be a number"
ERR_SIZE_REQUIRED = "size is required"
ERR_T_SIGNAL_TYPE = "t_signal must be a number"
ERR_T_SIGNAL_REQUIRED = "t_signal is required"


class IntentError(ValueError):
    """A payload that fails §4; ``str(err)`` is the exact upstream (or documented ours) text."""


class NatsIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A validated intent from NATS, normalised. Money is Decimal; times are epoch ms."""

    signal_id: str
    symbol: str  # canonical BASE/QUOTE
    symbol_as_given: str  # for the shadow-fill subject (§9.3)
    direction: int
    type: str
    status: str
    size: Decimal
    t_signal: int
    entry_zone: tuple[Decimal, ...] = ()
    stop_loss: Decimal = Decimal(0)
    take_profits: tuple[Decimal, ...] = ()
    exchange: str | None = None  # lower-cased venue
    policy_hash: str | None = None
    causation_id: str | None = None
    ttl_ms: int | None = None
    account: str = "main"
    source: str | None = None
    correlation_id: str | None = None
    position_mode: str | None = None
    regime_state: int | None = None
    phase: int | None = None
    confidence: float | None = None  # not money: a score
    velocity: float | None = None
    leverage: Decimal | None = None
    max_slippage_bps: Decimal | None = None
    parent_strategy: str | None = None
    partition_key: str | None = None
    env: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def executable(self) -> bool:
        """Only PENDING/VALIDATED intents execute; others are stored for audit (§4)."""
        return self.status in ACTIVE_STATUSES


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_decimal(value: int | float) -> Decimal:
    """Exact decimal of a parsed JSON number: the shortest round-trip digits, never binary noise."""
    if isinstance(value, int):
        return Decimal(value)
    if value.is_integer() and abs(value) < 2**53:
        return Decimal(int(value))
    return Decimal(repr(value))


def _schema(detail: str) -> IntentError:
    return IntentError(f"Schema mismatch: {detail}")


def _opt_str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _schema(f"{key}: expected a string")
    return value


def _opt_number(payload: dict[str, Any], key: str) -> float | int | None:
    value = payload.get(key)
    if value is None:
        return None
    if not is_number(value):
        raise _schema(f"{key}: expected a number")
    return value


def _opt_int(payload: dict[str, Any], key: str) -> int | None:
    value = _opt_number(payload, key)
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        raise _schema(f"{key}: invalid type: floating point `{value!r}`, expected an integer")
    return int(value)


def _number_list(payload: dict[str, Any], key: str) -> tuple[Decimal, ...]:
    value = payload.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(is_number(v) for v in value):
        raise _schema(f"{key}: expected an array of numbers")
    return tuple(to_decimal(v) for v in value)


def _required_string(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if value is None:
        raise IntentError(f"{key} is required")
    if not isinstance(value, str) or not value.strip():
        raise IntentError(f"{key} must be a non-empty string")
    return value


def validate_intent_payload(payload: object, correlation_id: str | None = None) -> NatsIntent:
    """Validate a parsed payload (§4 steps 1–5) and normalise it; raises :class:`IntentError`."""
    if not isinstance(payload, dict):
        raise IntentError(ERR_NOT_OBJECT)
    p: dict[str, Any] = dict(payload)
    # Step 2: the `timestamp` alias fills t_signal only when t_signal is absent.
    if "t_signal" in p:
        p.pop("timestamp", None)
    elif "timestamp" in p:
        p["t_signal"] = p.pop("timestamp")

    signal_id = _required_string(p, "signal_id")
    symbol_raw = _required_string(p, "symbol")
    direction_raw = p.get("direction")
    if (
        not is_number(direction_raw)
        or not math.isfinite(direction_raw)
        or math.trunc(direction_raw) not in (-1, 0, 1)
    ):
        raise IntentError(ERR_DIRECTION)
    intent_type = p.get("type")
    if intent_type not in INTENT_TYPES:
        raise IntentError(ERR_TYPE)
    status = p.get("status")
    if status not in INTENT_STATUSES:
        raise IntentError(ERR_STATUS)
    size_raw = p.get("size")
    if size_raw is None:
        raise IntentError(ERR_SIZE_REQUIRED)
    if not is_number(size_raw):
        raise IntentError(ERR_SIZE_TYPE)
    t_signal_raw = p.get("t_signal")
    if t_signal_raw is None:
        raise IntentError(ERR_T_SIGNAL_REQUIRED)
    if not is_number(t_signal_raw):
        raise IntentError(ERR_T_SIGNAL_TYPE)

    # Step 5: typed decode; ours adds the documented contract checks.
    if isinstance(direction_raw, float) and not direction_raw.is_integer():
        raise _schema(f"direction: invalid type: floating point `{direction_raw!r}`, expected i32")
    direction = int(direction_raw)
    if isinstance(t_signal_raw, float) and not t_signal_raw.is_integer():
        raise _schema(f"t_signal: invalid type: floating point `{t_signal_raw!r}`, expected i64")
    if len(signal_id) > MAX_SIGNAL_ID_LEN:
        raise _schema(f"signal_id longer than {MAX_SIGNAL_ID_LEN} characters")
    if direction == 0 and intent_type not in CLOSE_TYPES:
        raise _schema("direction 0 is only valid for CLOSE types")
    try:
        symbol = normalize_symbol(symbol_raw)
    except SymbolError as exc:
        raise _schema(f"symbol: {exc}") from None
    stop_loss = _opt_number(p, "stop_loss")
    child_fills = p.get("child_fills")
    if child_fills is not None and (
        not isinstance(child_fills, list) or not all(isinstance(c, str) for c in child_fills)
    ):
        raise _schema("child_fills: expected an array of strings")
    metadata = p.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _schema("metadata: expected an object")
    account = "main"
    if metadata is not None and metadata.get("account") is not None:
        if not isinstance(metadata["account"], str) or not metadata["account"]:
            raise _schema("metadata.account: expected a non-empty string")
        account = metadata["account"]
    exchange = _opt_str(p, "exchange")
    confidence = _opt_number(p, "confidence")
    leverage = _opt_number(p, "leverage")
    velocity = _opt_number(p, "velocity")
    slippage = _opt_number(p, "max_slippage_bps")
    ttl_ms = _opt_int(p, "ttl_ms")
    if ttl_ms is not None and ttl_ms <= 0:
        raise _schema("ttl_ms must be > 0")
    return NatsIntent(
        signal_id=signal_id,
        symbol=symbol,
        symbol_as_given=symbol_raw,
        direction=direction,
        type=intent_type,
        status=status,
        size=to_decimal(size_raw),
        t_signal=int(t_signal_raw),
        entry_zone=_number_list(p, "entry_zone"),
        stop_loss=Decimal(0) if stop_loss is None else to_decimal(stop_loss),
        take_profits=_number_list(p, "take_profits"),
        exchange=None if exchange is None else exchange.lower(),
        policy_hash=_opt_str(p, "policy_hash"),
        causation_id=_opt_str(p, "causation_id"),
        ttl_ms=ttl_ms,
        account=account,
        source=_opt_str(p, "source"),
        correlation_id=correlation_id,
        position_mode=_opt_str(p, "position_mode"),
        regime_state=_opt_int(p, "regime_state"),
        phase=_opt_int(p, "phase"),
        confidence=None if confidence is None else float(confidence),
        velocity=None if velocity is None else float(velocity),
        leverage=None if leverage is None else to_decimal(leverage),
        max_slippage_bps=None if slippage is None else to_decimal(slippage),
        parent_strategy=_opt_str(p, "parent_strategy"),
        partition_key=_opt_str(p, "partition_key"),
        env=_opt_str(p, "env"),
        metadata=metadata,
    )


def validate_intent_bytes(data: bytes) -> NatsIntent:
    """Step 1 on raw bytes: ``Invalid JSON: <detail>``, then :func:`validate_intent_payload`."""
    try:
        payload = parse_json(data)
    except JsonError as exc:
        raise IntentError(f"Invalid JSON: {exc}") from None
    return validate_intent_payload(payload)
