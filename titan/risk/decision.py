"""Order decision (risk-and-state.md §10): order type and time in force, applied — not ignored.

Impact model kept from upstream: ``0.7 · σ · √(notional / daily_vol) · 10⁴`` bps with σ = 0.03 and
daily_vol = $100 M; < 5 bps post-only, < 20 limit GTC, < 50 IOC, else infeasible.

A producer's ``velocity`` (fastpath.md §8, upstream's legacy FastPath rule) states its urgency and
picks the type before the maker default: > 0.005 MARKET, > 0.001 an aggressive IOC limit at the
far edge of the entry zone (a buy at its max, a sell at its min).
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Final

import msgspec

from titan.state.decimals import MONEY_CONTEXT

SIGMA: Final = Decimal("0.03")
DAILY_VOLUME: Final = Decimal(100_000_000)
IMPACT_POST_ONLY_BPS: Final = Decimal(5)
IMPACT_LIMIT_BPS: Final = Decimal(20)
IMPACT_MAX_BPS: Final = Decimal(50)
WIDE_SPREAD_BPS: Final = Decimal(10)
IMBALANCE_SNIPE: Final = Decimal("0.6")
VELOCITY_MARKET: Final = Decimal("0.005")
VELOCITY_AGGRESSIVE: Final = Decimal("0.001")


class BookTop(msgspec.Struct, frozen=True, gc=False):
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal


class OrderDecision(msgspec.Struct, frozen=True, gc=False):
    order_type: str  # LIMIT | MARKET
    tif: str  # GTC | IOC | FOK | POST_ONLY
    price: Decimal | None  # limit price (unrounded); None for MARKET
    reduce_only: bool
    tag: str  # upstream decision name, for reports and logs
    impact_bps: Decimal
    feasible: bool = True


_IMPACT_FACTOR: Final = Decimal("0.7")
_IMPACT_CACHE_SIZE: Final = 4096
# A 34-digit square root costs ~3 µs; strategies send the same notionals over and over, so exact
# results are memoised (bounded: cleared when full, so memory stays flat). The key carries the
# exponent (the key is the text): 100 and 100.0 are equal but may give differently written exact results.
_impact_cache: dict[str, Decimal] = {}


def impact_bps(notional: Decimal) -> Decimal:
    key = str(notional)  # value and exponent (as_tuple() costs ~0.5 µs)
    cached = _impact_cache.get(key)
    if cached is not None:
        return cached
    with localcontext(MONEY_CONTEXT):
        if notional <= 0:
            return Decimal(0)
        value = _IMPACT_FACTOR * SIGMA * (notional / DAILY_VOLUME).sqrt() * 10_000
    if len(_impact_cache) >= _IMPACT_CACHE_SIZE:
        _impact_cache.clear()
    _impact_cache[key] = value
    return value


_last_book: list[tuple[BookTop, Decimal, Decimal]] = []  # the last book's shape (one entry)


def book_shape(book: BookTop) -> tuple[Decimal, Decimal]:
    """(imbalance, spread in bps) of a book top; the last book's answer is kept, since many intents
    meet the same ticker row between two market-data updates."""
    if _last_book:
        last, imbalance, spread_bps = _last_book[0]
        if last == book:
            return imbalance, spread_bps
    with localcontext(MONEY_CONTEXT):
        depth = book.bid_size + book.ask_size
        imbalance = (book.bid_size - book.ask_size) / depth if depth > 0 else Decimal(0)
        spread_bps = (book.ask - book.bid) / ((book.ask + book.bid) / 2) * 10_000
    _last_book[:] = [(book, imbalance, spread_bps)]
    return imbalance, spread_bps


def decide_order(
    side: int,
    notional: Decimal,
    limit_price: Decimal | None,
    reduce_only: bool,
    soft_halted: bool = False,
    book: BookTop | None = None,
    velocity: Decimal | None = None,
    zone: tuple[Decimal, ...] = (),
) -> OrderDecision:
    """Decide how to place an order. ``limit_price`` is ``entry_zone[0]`` (None: no explicit price,
    so MARKET — never a limit at price 0)."""
    impact = impact_bps(notional)
    if soft_halted:
        # Upstream's halted decision: post-only reduce-only; without a price that cannot rest, so IOC.
        if limit_price is None:
            return OrderDecision("MARKET", "IOC", None, True, "SYSTEM_HALTED", impact)
        return OrderDecision("LIMIT", "POST_ONLY", limit_price, True, "SYSTEM_HALTED", impact)
    if impact >= IMPACT_MAX_BPS:
        return OrderDecision(
            "LIMIT", "GTC", limit_price, reduce_only, "REJECTED_IMPACT", impact, feasible=False
        )
    if limit_price is None:
        return OrderDecision("MARKET", "IOC", None, reduce_only, "MARKET_NO_PRICE", impact)
    if velocity is not None and velocity > VELOCITY_MARKET:
        return OrderDecision("MARKET", "IOC", None, reduce_only, "VELOCITY_MARKET", impact)
    if velocity is not None and velocity > VELOCITY_AGGRESSIVE:
        edge = (max(zone) if side > 0 else min(zone)) if zone else limit_price
        return OrderDecision("LIMIT", "IOC", edge, reduce_only, "VELOCITY_AGGRESSIVE", impact)
    if book is not None and book.bid > 0 and book.ask > 0:
        imbalance, spread_bps = book_shape(book)
        if (side > 0 and imbalance > IMBALANCE_SNIPE) or (side < 0 and imbalance < -IMBALANCE_SNIPE):
            tag = "IMBALANCE_SNIPE_BUY" if side > 0 else "IMBALANCE_SNIPE_SELL"
            return OrderDecision("MARKET", "IOC", None, reduce_only, tag, impact)
        if spread_bps > WIDE_SPREAD_BPS:
            return OrderDecision("LIMIT", "POST_ONLY", limit_price, reduce_only, "WIDE_SPREAD_MAKER", impact)
    if impact < IMPACT_POST_ONLY_BPS:
        return OrderDecision("LIMIT", "POST_ONLY", limit_price, reduce_only, "DEFAULT_MAKER", impact)
    if impact < IMPACT_LIMIT_BPS:
        return OrderDecision("LIMIT", "GTC", limit_price, reduce_only, "LIMIT", impact)
    return OrderDecision("LIMIT", "IOC", limit_price, reduce_only, "IOC", impact)
