"""From a wire :class:`titan.messages.Intent` to the :class:`RiskIntent` the checks read."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec

from titan.messages import Intent
from titan.risk.checks import RiskIntent
from titan.state.decimals import parse_decimal
from titan.symbols import DEFAULT_QUOTE_ASSETS, SymbolError, normalize_symbol

_SYMBOLS: dict[str, str] = {}  # raw → canonical (default quote assets); bounded below


def _canonical(raw: str, quote_assets: Iterable[str]) -> str:
    if quote_assets is not DEFAULT_QUOTE_ASSETS:
        return normalize_symbol(raw, quote_assets)
    symbol = _SYMBOLS.get(raw)
    if symbol is None:
        symbol = normalize_symbol(raw, quote_assets)
        if len(_SYMBOLS) >= 4096:
            _SYMBOLS.clear()
        _SYMBOLS[raw] = symbol
    return symbol


class IntakeError(ValueError):
    """The intent cannot be checked at all; the caller denies it ``INVALID_INTENT`` with this text."""


def risk_intent(
    intent: Intent, size: Decimal | None = None, quote_assets: Iterable[str] = DEFAULT_QUOTE_ASSETS
) -> RiskIntent:
    """Normalise symbol and decimals; ``size`` overrides ``intent.size`` (intents sized at PREPARE)."""
    try:
        symbol = _canonical(intent.symbol, quote_assets)
    except SymbolError as exc:
        raise IntakeError(str(exc)) from None
    try:
        quantity = size if size is not None else parse_decimal(intent.size or "0")
        zone = tuple([parse_decimal(p) for p in intent.entry_zone])  # a list builds faster than a generator
    except ValueError as exc:
        raise IntakeError(str(exc)) from None
    return RiskIntent(  # positional: keywords cost ~50 ns each here
        intent.signal_id,  # signal_id
        intent.source,  # source
        symbol,  # symbol
        intent.intent_type,  # intent_type
        intent.direction,  # direction
        quantity,  # size
        intent.t_signal_ms,  # t_signal_ms
        zone,  # entry_zone
        intent.exchange.strip().lower() if intent.exchange else None,  # exchange
        intent.policy_hash,  # policy_hash
        intent.ttl_ms,  # ttl_ms
        intent.causation_id,  # causation_id
        intent.account,  # account
        intent.status,  # status
        velocity=None if intent.velocity is None else Decimal(str(intent.velocity)),
    )


def with_size(intent: RiskIntent, size: Decimal) -> RiskIntent:
    return msgspec.structs.replace(intent, size=size)
