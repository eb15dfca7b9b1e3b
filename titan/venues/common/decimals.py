"""Exact decimal helpers: rounding to the instrument grid and plain decimal text (never a float repr)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

from titan.venues.common.types import Side


class DecimalFormatError(ValueError):
    """A value that is not a finite decimal number."""


def to_decimal(value: str | int | Decimal) -> Decimal:
    """Parse venue text (or an int) into a finite Decimal; ``""`` is an error, not zero."""
    try:
        result = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation as exc:
        raise DecimalFormatError(f"not a decimal: {value!r}") from exc
    if not result.is_finite():
        raise DecimalFormatError(f"not a finite decimal: {value!r}")
    return result


def to_decimal_or_zero(value: str | int | Decimal | None) -> Decimal:
    """Like :func:`to_decimal`, but venues' empty strings (Bybit ``avgPrice: ""``) and nulls mean zero."""
    if value is None or value == "":
        return Decimal(0)
    return to_decimal(value)


def plain(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros: ``1E+2`` → ``100``, ``0.0100`` → ``0.01``."""
    if not value.is_finite():
        raise DecimalFormatError(f"not a finite decimal: {value!r}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


def _to_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        raise ValueError(f"grid step must be positive, got {step}")
    units = (value / step).to_integral_value(rounding=rounding)
    return units * step


def round_price_to_tick(price: Decimal, tick: Decimal, side: Side | None = None) -> Decimal:
    """Round a price onto the tick grid.

    With a side, round towards the passive side so a limit never becomes more aggressive than asked
    (BUY down, SELL up); without one, round half-even to the nearest tick.
    """
    if side is Side.BUY:
        return _to_grid(price, tick, ROUND_FLOOR)
    if side is Side.SELL:
        return _to_grid(price, tick, ROUND_CEILING)
    return _to_grid(price, tick, ROUND_HALF_EVEN)


def round_qty_down(qty: Decimal, step: Decimal) -> Decimal:
    """Truncate a (non-negative) quantity onto the lot-step grid: never increases it."""
    return _to_grid(qty, step, ROUND_DOWN)


def is_on_grid(value: Decimal, step: Decimal) -> bool:
    """Whether ``value`` is an exact multiple of ``step``."""
    return step > 0 and value % step == 0
