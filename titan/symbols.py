"""Symbol normalisation (risk-and-state.md §1, venues.md §5).

Canonical form is ``BASE/QUOTE`` upper case. Accepted inputs, case-insensitive: ``BTC/USDT``,
``BTCUSDT``, ``BTC_USDT``, ``BTC-USDT``; a concatenated form is split at the longest matching
quote asset.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_QUOTE_ASSETS: tuple[str, ...] = ("USDT", "USDC", "USD", "FDUSD", "BUSD")

VENUES: tuple[str, ...] = ("bybit", "binance", "mexc", "paper")


class SymbolError(ValueError):
    """A symbol that cannot be normalised."""


def normalize_symbol(raw: str, quote_assets: Iterable[str] = DEFAULT_QUOTE_ASSETS) -> str:
    """Return the canonical ``BASE/QUOTE`` form of ``raw`` or raise :class:`SymbolError`."""
    s = raw.strip().upper()
    for sep in ("/", "_", "-"):
        if sep in s:
            base, _, quote = s.partition(sep)
            if not base or not quote or any(c in quote for c in "/_-"):
                raise SymbolError(f"cannot normalise symbol {raw!r}")
            return f"{base}/{quote}"
    # Longest matching quote first, so FDUSD wins over USD.
    for quote in sorted((q.upper() for q in quote_assets), key=len, reverse=True):
        if s.endswith(quote) and len(s) > len(quote):
            return f"{s[: -len(quote)]}/{quote}"
    raise SymbolError(f"cannot normalise symbol {raw!r}: no known quote asset")


def venue_symbol(canonical: str, venue: str) -> str:
    """The venue's own spelling of a canonical symbol (venues.md §5)."""
    base, _, quote = canonical.partition("/")
    if venue == "mexc":
        return f"{base}_{quote}"
    return f"{base}{quote}"


def subject_symbol(canonical: str) -> str:
    """The symbol token used in NATS subjects: ``BTC/USDT`` → ``BTC_USDT`` (nats.md §2)."""
    return canonical.replace("/", "_")
