"""The one closed set of reason codes (risk-and-state.md §3/§4, fastpath.md §11 business codes).

Replies and reject events carry the code; DLQ messages carry ``"❌ RISK REJECTION: " + text``
(``INTENT_EXPIRED`` has its own unprefixed DLQ text); metric labels use the code. The README table
is generated from this module by :func:`reason_table_markdown`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import msgspec

DLQ_PREFIX: Final = "❌ RISK REJECTION: "


class ReasonCode(StrEnum):
    # Interlocks (check 0) and engine/business outcomes of fastpath.md §11.
    SYSTEM_HALTED = "SYSTEM_HALTED"
    SYSTEM_DISARMED = "SYSTEM_DISARMED"
    EXECUTION_DISABLED_BY_OPERATOR = "EXECUTION_DISABLED_BY_OPERATOR"
    ENGINE_NOT_READY = "ENGINE_NOT_READY"
    PREPARE_NOT_FOUND = "PREPARE_NOT_FOUND"
    STALE_SIGNAL = "STALE_SIGNAL"
    ALREADY_CONFIRMED = "ALREADY_CONFIRMED"
    # Check 1: intent validity.
    INVALID_INTENT = "INVALID_INTENT"
    INTENT_NOT_ACTIVE = "INTENT_NOT_ACTIVE"
    DUPLICATE_SIGNAL_ID = "DUPLICATE_SIGNAL_ID"
    DUPLICATE_CAUSATION_ID = "DUPLICATE_CAUSATION_ID"
    # Checks 2–20.
    POLICY_MISSING = "POLICY_MISSING"
    POLICY_HASH_MISMATCH = "POLICY_HASH_MISMATCH"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNKNOWN_VENUE = "UNKNOWN_VENUE"
    NO_ROUTE = "NO_ROUTE"
    VENUE_RECONCILING = "VENUE_RECONCILING"
    VENUE_COOLDOWN = "VENUE_COOLDOWN"
    MARKET_DATA_STALE = "MARKET_DATA_STALE"
    RISK_STATE_EMERGENCY = "RISK_STATE_EMERGENCY"
    RISK_STATE_DEFENSIVE = "RISK_STATE_DEFENSIVE"
    REDUCE_ONLY_NO_POSITION = "REDUCE_ONLY_NO_POSITION"
    SYMBOL_NOT_WHITELISTED = "SYMBOL_NOT_WHITELISTED"
    INVALID_SIZE = "INVALID_SIZE"
    CONSTRAINT_REDUCE_ONLY = "CONSTRAINT_REDUCE_ONLY"
    CONSTRAINT_MAX_ORDER_NOTIONAL = "CONSTRAINT_MAX_ORDER_NOTIONAL"
    CONSTRAINT_MAX_LEVERAGE = "CONSTRAINT_MAX_LEVERAGE"
    NO_PRICE = "NO_PRICE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    EQUITY_UNKNOWN = "EQUITY_UNKNOWN"
    MAX_POSITION_NOTIONAL = "MAX_POSITION_NOTIONAL"
    MAX_ACCOUNT_LEVERAGE = "MAX_ACCOUNT_LEVERAGE"
    IMPACT_TOO_HIGH = "IMPACT_TOO_HIGH"
    INTENT_EXPIRED = "INTENT_EXPIRED"
    BELOW_MIN_QTY = "BELOW_MIN_QTY"
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"
    # Gateway, per leg.
    RATE_LIMITED = "RATE_LIMITED"
    VENUE_REJECTED = "VENUE_REJECTED"


class ReasonInfo(msgspec.Struct, frozen=True):
    """Display template (``str.format`` fields) and where the code comes from."""

    template: str
    origin: str  # "upstream" (exact upstream Display string), "ours" or "fastpath"
    summary: str


# Templates use ``{x:.2f}`` where upstream used Rust ``{:.2}``.
REASONS: Final[dict[ReasonCode, ReasonInfo]] = {
    ReasonCode.SYSTEM_HALTED: ReasonInfo("System halted ({mode})", "ours", "global halt (check 0)"),
    ReasonCode.SYSTEM_DISARMED: ReasonInfo("System disarmed", "ours", "armed interlock off (check 0)"),
    ReasonCode.EXECUTION_DISABLED_BY_OPERATOR: ReasonInfo(
        "Execution disabled by operator", "fastpath", "disarmed at FastPath CONFIRM"
    ),
    ReasonCode.ENGINE_NOT_READY: ReasonInfo(
        "Engine not ready", "ours", "core starting or reconciling, not accepting intents"
    ),
    ReasonCode.PREPARE_NOT_FOUND: ReasonInfo(
        "No prepared intent '{signal_id}'", "fastpath", "CONFIRM without a live prepared entry"
    ),
    ReasonCode.STALE_SIGNAL: ReasonInfo(
        "Prepared intent '{signal_id}' expired", "fastpath", "CONFIRM after the prepared TTL"
    ),
    ReasonCode.ALREADY_CONFIRMED: ReasonInfo(
        "Intent '{signal_id}' already confirmed", "fastpath", "ABORT of an already confirmed id"
    ),
    ReasonCode.INVALID_INTENT: ReasonInfo("Invalid intent: {detail}", "ours", "FORCE_SYNC or malformed"),
    ReasonCode.INTENT_NOT_ACTIVE: ReasonInfo(
        "Intent status {status} is not active", "ours", "status other than PENDING/VALIDATED"
    ),
    ReasonCode.DUPLICATE_SIGNAL_ID: ReasonInfo(
        "Duplicate signal_id {signal_id}", "ours", "signal_id already accepted"
    ),
    ReasonCode.DUPLICATE_CAUSATION_ID: ReasonInfo(
        "Duplicate causation_id {causation_id}", "ours", "causation_id seen within its TTL"
    ),
    ReasonCode.POLICY_MISSING: ReasonInfo(
        "Risk Policy not loaded", "upstream", "never emitted: a missing policy refuses to start"
    ),
    ReasonCode.POLICY_HASH_MISMATCH: ReasonInfo(
        "Policy Hash Mismatch: Expected {expected}, Got {actual}", "upstream", "intent policy_hash ≠ active"
    ),
    ReasonCode.UNKNOWN_SYMBOL: ReasonInfo("Unknown symbol '{symbol}'", "ours", "no instrument metadata"),
    ReasonCode.UNKNOWN_VENUE: ReasonInfo(
        "Venue '{venue}' not configured", "ours", "explicit exchange not registered"
    ),
    ReasonCode.NO_ROUTE: ReasonInfo("No route for {symbol}", "ours", "routing resolved no target venue"),
    ReasonCode.VENUE_RECONCILING: ReasonInfo(
        "Venue {venue} reconciling", "ours", "target venue is reconciling"
    ),
    ReasonCode.VENUE_COOLDOWN: ReasonInfo(
        "Venue {venue} cooling down until {until}", "ours", "rate-limit / ban cooldown on the venue"
    ),
    ReasonCode.MARKET_DATA_STALE: ReasonInfo(
        "Market Data Stale: {symbol} on {venue} ({age} ms > {limit} ms)",
        "upstream",
        "ticker older than the venue threshold, or none",
    ),
    ReasonCode.RISK_STATE_EMERGENCY: ReasonInfo(
        "Risk state Emergency: {mode}", "ours", "effective state Emergency"
    ),
    ReasonCode.RISK_STATE_DEFENSIVE: ReasonInfo(
        "Risk state Defensive: reduce-only", "ours", "effective state Defensive"
    ),
    ReasonCode.REDUCE_ONLY_NO_POSITION: ReasonInfo(
        "Reduce-only {symbol}: no position to reduce", "ours", "nothing to reduce in that direction"
    ),
    ReasonCode.SYMBOL_NOT_WHITELISTED: ReasonInfo(
        "Symbol '{symbol}' not in whitelist", "upstream", "symbol not in policy whitelist"
    ),
    ReasonCode.INVALID_SIZE: ReasonInfo("Invalid size (<= 0)", "upstream", "size ≤ 0"),
    ReasonCode.CONSTRAINT_REDUCE_ONLY: ReasonInfo(
        "Constraint: {symbol} is reduce-only, new positions blocked", "upstream", "constraint reduce-only"
    ),
    ReasonCode.CONSTRAINT_MAX_ORDER_NOTIONAL: ReasonInfo(
        "Constraint: Order notional {notional} exceeds limit {limit} for {symbol}",
        "upstream",
        "constraint order notional",
    ),
    ReasonCode.CONSTRAINT_MAX_LEVERAGE: ReasonInfo(
        "Constraint: Leverage {current:.2f}x exceeds limit {limit:.2f}x", "upstream", "constraint leverage"
    ),
    ReasonCode.NO_PRICE: ReasonInfo(
        "No reference price for {symbol}", "ours", "no entry zone and no ticker mid"
    ),
    ReasonCode.MAX_OPEN_ORDERS: ReasonInfo(
        "Too many open orders for {symbol}: {current} >= Limit {limit}", "upstream", "open intents cap"
    ),
    ReasonCode.DAILY_LOSS_LIMIT: ReasonInfo(
        "Daily loss limit hit: {current:.2f} <= {limit:.2f}", "upstream", "today's realised PnL at the limit"
    ),
    ReasonCode.EQUITY_UNKNOWN: ReasonInfo("Equity unknown for account {account}", "ours", "no equity"),
    ReasonCode.MAX_POSITION_NOTIONAL: ReasonInfo(
        "Position cap exceeded for {symbol}: Curr {current:.2f} + Add {add:.2f} > Limit {limit:.2f}",
        "upstream",
        "position notional cap",
    ),
    ReasonCode.MAX_ACCOUNT_LEVERAGE: ReasonInfo(
        "Account Leverage Limit Exceeded: {current:.2f}x > {limit:.2f}x", "upstream", "account leverage cap"
    ),
    ReasonCode.IMPACT_TOO_HIGH: ReasonInfo("Impact {impact_bps:.1f}bps", "ours", "estimated impact ≥ 50 bps"),
    ReasonCode.INTENT_EXPIRED: ReasonInfo(
        "Latency {latency_ms} ms", "upstream", "intent older than freshness"
    ),
    ReasonCode.BELOW_MIN_QTY: ReasonInfo(
        "Quantity {quantity} below venue minimums for {symbol}", "ours", "no leg above min qty / lot"
    ),
    ReasonCode.BELOW_MIN_NOTIONAL: ReasonInfo(
        "Quantity {quantity} below venue min notional for {symbol}", "ours", "no leg above min notional"
    ),
    ReasonCode.RATE_LIMITED: ReasonInfo("Rate limit {bucket} on {venue}", "ours", "token bucket empty"),
    ReasonCode.VENUE_REJECTED: ReasonInfo(
        "Venue {venue} rejected: {detail}", "ours", "definitive venue reject (venues.md §6)"
    ),
}


class _Missing(dict[str, object]):
    """Renders an absent template field as ``?`` rather than raising (a denial must always render)."""

    def __missing__(self, key: str) -> str:
        return "?"


def render_reason(code: ReasonCode, **fields: object) -> str:
    """The display text of ``code`` with ``fields`` substituted."""
    template = REASONS[code].template
    try:
        return template.format_map(_Missing(fields))
    except (ValueError, TypeError):
        # A field of the wrong type for its format spec: fall back to plain substitution.
        plain = template.replace(":.2f}", "}").replace(":.1f}", "}")
        return plain.format_map(_Missing(fields))


def dlq_reason(code: ReasonCode, **fields: object) -> str:
    """DLQ reason string: the upstream prefix, except the freshness text (risk-and-state.md §4)."""
    if code is ReasonCode.INTENT_EXPIRED:
        return f"Intent EXPIRED: {fields.get('latency_ms', '?')} ms latency"
    return DLQ_PREFIX + render_reason(code, **fields)


def reason_table_markdown() -> str:
    """The README table of reason codes, generated from the enum."""
    lines = ["| code | text | origin | when |", "|---|---|---|---|"]
    for code in ReasonCode:
        info = REASONS[code]
        template = info.template.replace("|", "\\|")
        lines.append(f"| `{code.value}` | `{template}` | {info.origin} | {info.summary} |")
    return "\n".join(lines) + "\n"
