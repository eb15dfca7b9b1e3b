"""Put an order onto its instrument's grid before any adapter writes it (venues.md §1 'Decimals')."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from titan.venues.common.decimals import round_price_to_tick, round_qty_down
from titan.venues.common.types import Instrument, OrderSpec, OrderType


class OrderValidationError(ValueError):
    """The order cannot be sent as asked (off the grid to zero, below minimums, missing price)."""


class GridOrder(msgspec.Struct, frozen=True):
    """Quantity rounded down to the lot step and price rounded to the tick (passive side)."""

    qty: Decimal
    price: Decimal | None


def to_grid(spec: OrderSpec, instrument: Instrument) -> GridOrder:
    if spec.qty <= 0:
        raise OrderValidationError(f"quantity must be positive, got {spec.qty}")
    qty = round_qty_down(spec.qty, instrument.lot_step)
    if qty <= 0:
        raise OrderValidationError(f"quantity {spec.qty} rounds to zero at lot step {instrument.lot_step}")
    if qty < instrument.min_qty:
        raise OrderValidationError(f"quantity {qty} below minimum {instrument.min_qty}")
    if instrument.max_qty > 0 and qty > instrument.max_qty:
        raise OrderValidationError(f"quantity {qty} above maximum {instrument.max_qty}")
    price: Decimal | None = None
    if spec.order_type is OrderType.LIMIT:
        if spec.price is None or spec.price <= 0:
            raise OrderValidationError("a limit order needs a positive price")
        price = round_price_to_tick(spec.price, instrument.tick_size, spec.side)
        if price <= 0:
            raise OrderValidationError(f"price {spec.price} rounds to zero at tick {instrument.tick_size}")
        if instrument.min_notional > 0 and qty * price < instrument.min_notional:
            raise OrderValidationError(f"notional {qty * price} below minimum {instrument.min_notional}")
    return GridOrder(qty=qty, price=price)
