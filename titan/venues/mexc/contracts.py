"""MEXC side codes and contract conversion (venues.md §4.4, §5)."""

from __future__ import annotations

from decimal import Decimal

from titan.venues.common.types import Side

OPEN_LONG = 1
CLOSE_SHORT = 2
OPEN_SHORT = 3
CLOSE_LONG = 4

_CODE_OF = {
    (Side.BUY, False): OPEN_LONG,
    (Side.BUY, True): CLOSE_SHORT,
    (Side.SELL, False): OPEN_SHORT,
    (Side.SELL, True): CLOSE_LONG,
}
_SIDE_OF = {OPEN_LONG: Side.BUY, CLOSE_SHORT: Side.BUY, OPEN_SHORT: Side.SELL, CLOSE_LONG: Side.SELL}


class ContractConversionError(ValueError):
    """A base quantity that is not a whole multiple of the contract grid."""


def side_code(side: Side, closing: bool) -> int:
    """1 open long, 2 close short, 3 open short, 4 close long. A BUY through a short is two legs (router)."""
    return _CODE_OF[(side, closing)]


def side_of_code(code: int) -> Side:
    try:
        return _SIDE_OF[code]
    except KeyError:
        raise ValueError(f"unknown MEXC side code {code}") from None


def is_closing_code(code: int) -> bool:
    return code in (CLOSE_SHORT, CLOSE_LONG)


def base_to_contracts(qty: Decimal, contract_size: Decimal, vol_unit: Decimal = Decimal(1)) -> Decimal:
    """Base units → contracts; refuses anything off the contract grid rather than rounding silently."""
    if contract_size <= 0:
        raise ContractConversionError(f"contract size must be positive, got {contract_size}")
    contracts = qty / contract_size
    if contracts % vol_unit != 0:
        raise ContractConversionError(f"{qty} is not a multiple of {vol_unit} contracts of {contract_size}")
    return contracts


def contracts_to_base(vol: Decimal, contract_size: Decimal) -> Decimal:
    return vol * contract_size
