"""Weighted multi-venue router (risk-and-state.md §11): targets, deterministic order, lot splitting."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Final

import msgspec

from titan.risk.reasons import ReasonCode
from titan.state.decimals import MONEY_CONTEXT, ZERO, floor_to_step


class InstrumentMeta(msgspec.Struct, frozen=True):
    """Instrument metadata per (venue, symbol). ``lot_step``/``min_qty``/``max_qty`` are in venue
    units (contracts on MEXC); ``contract_size`` converts them to base units (1 elsewhere)."""

    venue: str
    symbol: str
    tick_size: Decimal
    lot_step: Decimal
    min_qty: Decimal
    min_notional: Decimal = ZERO
    max_qty: Decimal | None = None
    contract_size: Decimal = Decimal(1)

    @property
    def base_step(self) -> Decimal:
        return MONEY_CONTEXT.multiply(self.lot_step, self.contract_size)

    @property
    def base_min_qty(self) -> Decimal:
        return MONEY_CONTEXT.multiply(self.min_qty, self.contract_size)

    @property
    def base_max_qty(self) -> Decimal | None:
        if self.max_qty is None:
            return None
        return MONEY_CONTEXT.multiply(self.max_qty, self.contract_size)

    def to_venue_units(self, base_qty: Decimal) -> Decimal:
        """Base quantity → venue quantity (contracts on MEXC)."""
        return MONEY_CONTEXT.divide(base_qty, self.contract_size)

    def round_price(self, price: Decimal, side: int) -> Decimal:
        """Round a limit price to the tick, never across it: buys down, sells up."""
        units = MONEY_CONTEXT.divide(price, self.tick_size)
        rounding = ROUND_FLOOR if side > 0 else ROUND_CEILING
        return MONEY_CONTEXT.multiply(units.to_integral_value(rounding), self.tick_size)


class SourceRouting(msgspec.Struct, frozen=True):
    """``routing.per_source[source]``: overrides ``fanout`` if set and ``weights`` if present."""

    fanout: bool | None = None
    weights: dict[str, Decimal] | None = None


DEFAULT_FALLBACK: Final[dict[str, tuple[str, ...]]] = {
    "scavenger": ("bybit", "mexc"),
    "hunter": ("binance",),
    "sentinel": ("binance",),
}


class RoutingConfig(msgspec.Struct, frozen=True):
    fanout: bool = False
    weights: dict[str, Decimal] = {}
    per_source: dict[str, SourceRouting] = {}
    fallback: dict[str, tuple[str, ...]] = msgspec.field(default_factory=lambda: dict(DEFAULT_FALLBACK))
    default_fallback: tuple[str, ...] = ("binance",)


class RouteTarget(msgspec.Struct, frozen=True):
    venue: str
    weight: Decimal


class RouteDenial(msgspec.Struct, frozen=True):
    code: ReasonCode
    venue: str | None = None


_RouteKey = tuple[int, str, str | None, tuple[str, ...]]
# Routing configs are frozen and few: their answers per (source, exchange, registered venues) are
# kept with the config itself (held in the value, so its id cannot be reused while cached).
_routes: dict[_RouteKey, tuple[RoutingConfig, tuple[RouteTarget, ...] | RouteDenial]] = {}


def resolve_targets(
    config: RoutingConfig, source: str, exchange: str | None, registered: Collection[str]
) -> tuple[RouteTarget, ...] | RouteDenial:
    """Target venues of an intent in deterministic order (weight desc, name asc), or a denial."""
    if not isinstance(registered, tuple):
        return _resolve_targets(config, source, exchange, registered)
    key = (id(config), source, exchange, registered)
    hit = _routes.get(key)
    if hit is not None and hit[0] is config:
        return hit[1]
    answer = _resolve_targets(config, source, exchange, registered)
    if len(_routes) >= 1024:
        _routes.clear()
    _routes[key] = (config, answer)
    return answer


def _resolve_targets(
    config: RoutingConfig, source: str, exchange: str | None, registered: Collection[str]
) -> tuple[RouteTarget, ...] | RouteDenial:
    if exchange:
        venue = exchange.strip().lower()
        if venue not in registered:
            return RouteDenial(ReasonCode.UNKNOWN_VENUE, venue)
        return (RouteTarget(venue, Decimal(1)),)
    fanout = config.fanout
    weights = config.weights
    override = config.per_source.get(source)
    if override is not None:
        if override.fanout is not None:
            fanout = override.fanout
        if override.weights is not None:
            weights = override.weights
    targets: list[RouteTarget]
    if weights:
        fanout = True  # any weights force fanout on
        usable = {v: w for v, w in weights.items() if v in registered and w >= 0}
        positive = {v: w for v, w in usable.items() if w > 0}
        chosen = positive or usable
        targets = sorted((RouteTarget(v, w) for v, w in chosen.items()), key=_target_order)
    else:
        # The fallback list is a priority list: its own order is the deterministic order.
        fallback = config.fallback.get(source, config.default_fallback)
        seen: list[str] = []
        for venue in fallback:
            if venue in registered and venue not in seen:
                seen.append(venue)
        targets = [RouteTarget(v, Decimal(1)) for v in seen]
    if not targets:
        return RouteDenial(ReasonCode.NO_ROUTE)
    if not fanout:
        targets = targets[:1]
    return tuple(targets)


def _target_order(target: RouteTarget) -> tuple[Decimal, str]:
    return (-target.weight, target.venue)


class Leg(msgspec.Struct, frozen=True):
    index: int  # leg number in the client order id (0-based, in target order)
    venue: str
    qty: Decimal  # base units, a multiple of the venue's base step


class SplitResult(msgspec.Struct, frozen=True):
    legs: tuple[Leg, ...]
    unallocated: Decimal  # residual r: smaller than every remaining step (capacity caps aside)

    @property
    def allocated(self) -> Decimal:
        return sum((leg.qty for leg in self.legs), ZERO)


def split_quantity(
    quantity: Decimal,
    targets: Sequence[RouteTarget],
    instruments: Mapping[str, InstrumentMeta],
    reference_price: Decimal | None = None,
    caps: Mapping[str, Decimal] | None = None,
) -> SplitResult | RouteDenial:
    """Split ``quantity`` (base units) over ``targets`` per §11 steps 1–6.

    ``instruments`` maps venue → metadata for this symbol; ``caps`` maps venue → the most that venue
    may take (reduce-only: its position). Targets without metadata are skipped.
    """
    if len(targets) == 1 and caps is None and quantity > 0:
        single = _split_single(quantity, targets[0], instruments.get(targets[0].venue), reference_price)
        if single is not None:
            return single
    active = [t for t in targets if t.venue in instruments]
    if quantity <= 0 or not active:
        return RouteDenial(ReasonCode.BELOW_MIN_QTY)
    steps = {t.venue: instruments[t.venue].base_step for t in active}
    limits: dict[str, Decimal | None] = {}
    for t in active:
        limit = instruments[t.venue].base_max_qty
        cap = None if caps is None else caps.get(t.venue)
        if cap is not None:
            limit = cap if limit is None else min(limit, cap)
        limits[t.venue] = None if limit is None else floor_to_step(max(limit, ZERO), steps[t.venue])

    def capped(venue: str, qty: Decimal) -> Decimal:
        limit = limits[venue]
        return qty if limit is None else min(qty, limit)

    total_weight = sum((t.weight for t in active), ZERO)
    alloc: dict[str, Decimal] = {}
    with localcontext(MONEY_CONTEXT) as ctx:
        ctx.prec = 80  # raw shares only feed a floor; extra digits keep Σ legs ≤ Q
        for t in active:
            raw = quantity * t.weight / total_weight if total_weight > 0 else quantity / len(active)
            alloc[t.venue] = capped(t.venue, floor_to_step(raw, steps[t.venue]))
    residual = quantity - sum(alloc.values(), ZERO)
    dropped_for_notional = False
    while True:
        # Step 3: residual walk in target order.
        for t in active:
            step = steps[t.venue]
            if residual >= step:
                add = capped(t.venue, alloc[t.venue] + floor_to_step(residual, step)) - alloc[t.venue]
                alloc[t.venue] += add
                residual -= add
        # Step 4: drop legs under the venue minimums and walk again.
        survivors: list[RouteTarget] = []
        dropped = False
        for t in active:
            qty = alloc[t.venue]
            meta = instruments[t.venue]
            below_notional = (
                reference_price is not None
                and meta.min_notional > 0
                and MONEY_CONTEXT.multiply(qty, reference_price) < meta.min_notional
            )
            if qty > 0 and (qty < meta.base_min_qty or below_notional):
                dropped = True
                dropped_for_notional = dropped_for_notional or (qty >= meta.base_min_qty)
                residual += qty
                alloc[t.venue] = ZERO
                continue
            survivors.append(t)
        active = survivors
        if not dropped:
            break
    legs: list[Leg] = []
    for t in active:
        if alloc[t.venue] > 0:
            legs.append(Leg(len(legs), t.venue, alloc[t.venue]))
    if not legs:
        code = ReasonCode.BELOW_MIN_NOTIONAL if dropped_for_notional else ReasonCode.BELOW_MIN_QTY
        return RouteDenial(code)
    return SplitResult(tuple(legs), residual)


def _split_single(
    quantity: Decimal, target: RouteTarget, meta: InstrumentMeta | None, reference_price: Decimal | None
) -> SplitResult | None:
    """The common one-venue, uncapped case of :func:`split_quantity` without its general machinery.

    Same arithmetic: the one share is the whole quantity, floored to the step and capped at the
    venue maximum; the residual walk cannot add to a floored or capped leg. None when the leg falls
    under a venue minimum: the general path then works out the denial.
    """
    if meta is None:
        return None
    step = meta.base_step
    qty = floor_to_step(quantity, step)
    limit = meta.base_max_qty
    if limit is not None:
        qty = min(qty, floor_to_step(max(limit, ZERO), step))
    if qty <= 0 or qty < meta.base_min_qty:
        return None
    if (
        reference_price is not None
        and meta.min_notional > 0
        and MONEY_CONTEXT.multiply(qty, reference_price) < meta.min_notional
    ):
        return None
    return SplitResult((Leg(0, target.venue, qty),), quantity - qty)  # (legs, unallocated)
