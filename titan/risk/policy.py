"""Risk policy file and its hash (risk-and-state.md §2).

The policy document is read twice from the same bytes: once with exact decimals for the checks,
once as JavaScript would see it (every number a double) for the hash, so the hash equals Brain's
TypeScript ``getCanonicalRiskPolicy().hash``.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Final

import msgspec

from titan.canonical import JsonError, canonical_json, parse_json
from titan.symbols import SymbolError, normalize_symbol


class RiskState(IntEnum):
    """Risk states (§5); the value is the gauge ``titan_execution_risk_state``."""

    NORMAL = 0
    CAUTIOUS = 1
    DEFENSIVE = 2
    EMERGENCY = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> RiskState:
        """``Normal``/``Cautious``/``Defensive``/``Emergency`` (case-insensitive)."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown risk state {text!r}") from None


class PolicyError(ValueError):
    """The policy file is unusable; the message names the offending key."""


class RiskPolicy(msgspec.Struct, frozen=True):
    """The active policy with exact values, plus the hash of the document it came from."""

    max_position_notional: Decimal
    max_account_leverage: Decimal
    max_daily_loss: Decimal
    max_open_orders_per_symbol: int
    symbol_whitelist: tuple[str, ...]  # canonical symbols, file order
    max_slippage_bps: Decimal
    max_staleness_ms: int
    max_correlation: Decimal
    correlation_penalty: Decimal
    min_confidence_score: Decimal
    min_stop_distance_multiplier: Decimal
    version: int
    last_updated: int
    current_state: RiskState
    policy_hash: str


# (camelCase key, snake_case alias or None, default or None when required)
_FIELDS: Final[tuple[tuple[str, str | None, object], ...]] = (
    ("maxPositionNotional", "max_position_notional", None),
    ("maxAccountLeverage", "max_account_leverage", None),
    ("maxDailyLoss", "max_daily_loss", None),
    ("maxOpenOrdersPerSymbol", "max_open_orders_per_symbol", None),
    ("symbolWhitelist", "symbol_whitelist", None),
    ("maxSlippageBps", "max_slippage_bps", Decimal(100)),
    ("maxStalenessMs", "max_staleness_ms", 5000),
    ("maxCorrelation", None, Decimal("0.7")),
    ("correlationPenalty", None, Decimal("0.5")),
    ("minConfidenceScore", None, Decimal("0.7")),
    ("minStopDistanceMultiplier", None, Decimal("1.5")),
    ("version", None, 0),
    ("lastUpdated", None, 0),
)

REQUIRED_KEYS: Final[tuple[str, ...]] = tuple(k for k, _, d in _FIELDS if d is None)


def _lookup(doc: dict[str, object], key: str, alias: str | None) -> tuple[bool, object]:
    if key in doc:
        if alias is not None and alias in doc and doc[alias] != doc[key]:
            raise PolicyError(f"risk policy: both '{key}' and '{alias}' given with different values")
        return True, doc[key]
    if alias is not None and alias in doc:
        return True, doc[alias]
    return False, None


def _decimal(key: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PolicyError(f"risk policy: '{key}' must be a number")
    return Decimal(value)


def _integer(key: str, value: object) -> int:
    number = _decimal(key, value)
    if number != number.to_integral_value():
        raise PolicyError(f"risk policy: '{key}' must be an integer")
    return int(number)


def _whitelist(key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise PolicyError(f"risk policy: '{key}' must be a list of symbols")
    try:
        return tuple(normalize_symbol(str(s)) for s in value)
    except SymbolError as exc:
        raise PolicyError(f"risk policy: '{key}': {exc}") from None


def parse_policy(text: bytes | str) -> RiskPolicy:
    """Parse a policy document; a missing required key raises :class:`PolicyError` naming it."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        as_js = parse_json(data)  # as JavaScript reads it (doubles), duplicate keys refused
        exact = json.loads(data, parse_float=Decimal)
    except (JsonError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"risk policy: invalid JSON: {exc}") from None
    if not isinstance(exact, dict):
        raise PolicyError("risk policy: document must be a JSON object")
    values: dict[str, object] = {}
    for key, alias, default in _FIELDS:
        found, value = _lookup(exact, key, alias)
        if not found:
            if default is None:
                raise PolicyError(f"risk policy: missing required key '{key}'")
            value = default
        values[key] = value
    state_raw = exact.get("current_state", "Normal")
    if not isinstance(state_raw, str):
        raise PolicyError("risk policy: 'current_state' must be a string")
    try:
        state = RiskState.parse(state_raw)
    except ValueError as exc:
        raise PolicyError(f"risk policy: 'current_state': {exc}") from None
    open_orders = _integer("maxOpenOrdersPerSymbol", values["maxOpenOrdersPerSymbol"])
    staleness = _integer("maxStalenessMs", values["maxStalenessMs"])
    if open_orders < 0 or staleness < 0:
        raise PolicyError("risk policy: 'maxOpenOrdersPerSymbol' and 'maxStalenessMs' must be ≥ 0")
    return RiskPolicy(
        max_position_notional=_decimal("maxPositionNotional", values["maxPositionNotional"]),
        max_account_leverage=_decimal("maxAccountLeverage", values["maxAccountLeverage"]),
        max_daily_loss=_decimal("maxDailyLoss", values["maxDailyLoss"]),
        max_open_orders_per_symbol=open_orders,
        symbol_whitelist=_whitelist("symbolWhitelist", values["symbolWhitelist"]),
        max_slippage_bps=_decimal("maxSlippageBps", values["maxSlippageBps"]),
        max_staleness_ms=staleness,
        max_correlation=_decimal("maxCorrelation", values["maxCorrelation"]),
        correlation_penalty=_decimal("correlationPenalty", values["correlationPenalty"]),
        min_confidence_score=_decimal("minConfidenceScore", values["minConfidenceScore"]),
        min_stop_distance_multiplier=_decimal(
            "minStopDistanceMultiplier", values["minStopDistanceMultiplier"]
        ),
        version=_integer("version", values["version"]),
        last_updated=_integer("lastUpdated", values["lastUpdated"]),
        current_state=state,
        policy_hash=policy_hash(as_js),
    )


def load_policy(path: str | Path) -> RiskPolicy:
    """Read and parse the policy file at ``path`` (config ``risk.policy_path`` / ``RISK_POLICY_PATH``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"risk policy: cannot read {path}: {exc.strerror}") from None
    try:
        return parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"{exc} ({path})") from None


def canonical_policy_json(document: object) -> bytes:
    """Canonical JSON (fastpath.md §6: JavaScript numbers, recursive key sort) of a parsed document."""
    try:
        return canonical_json(document)
    except JsonError as exc:
        raise PolicyError(f"risk policy: {exc}") from None


def policy_hash(document: object) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of the document as loaded (§2.2)."""
    return hashlib.sha256(canonical_policy_json(document)).hexdigest()
