"""MEXC contract response and private-stream parsers (venues.md §4.4–§4.7, §5).

MEXC writes prices and volumes as JSON numbers: they are decoded straight to ``Decimal`` from
the raw text (never through float). Volumes are in contracts; parsers convert to base units with
the contract size of each symbol (``contract_sizes``, by venue symbol).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TypeVar

import msgspec

from titan.symbols import normalize_symbol
from titan.venues.common.stream import StreamAuthResult, StreamIgnored, StreamPong, StreamSubscribed
from titan.venues.common.types import (
    Instrument,
    OrderState,
    VenueBalance,
    VenueFill,
    VenueOrderState,
    VenuePosition,
)
from titan.venues.common.wire import VenueParseError
from titan.venues.mexc.contracts import contracts_to_base, side_of_code
from titan.venues.mexc.errors import Envelope

VENUE = "mexc"

STATE_PENDING = 1
STATE_OPEN = 2
STATE_FILLED = 3
STATE_CANCELLED = 4
STATE_INVALID = 5

T = TypeVar("T")
ZERO = Decimal(0)


# --- wire shapes -----------------------------------------------------------------------------


class MexcOrder(msgspec.Struct, rename="camel"):
    """REST order (query by external id) and ``push.personal.order`` payload."""

    order_id: str | int
    symbol: str
    state: int
    side: int = 0
    price: Decimal = ZERO
    vol: Decimal = ZERO
    deal_vol: Decimal = ZERO
    deal_avg_price: Decimal = ZERO
    external_oid: str = ""
    error_code: int = 0
    update_time: int = 0


class MexcDeal(msgspec.Struct, rename="camel"):
    """``push.personal.order.deal`` payload; ``fee`` positive = paid, negative = received."""

    id: str | int
    symbol: str
    side: int
    vol: Decimal
    price: Decimal
    order_id: str | int
    fee: Decimal = ZERO
    fee_currency: str = "USDT"
    timestamp: int = 0
    is_taker: bool = True
    external_oid: str = ""


class _ContractDetail(msgspec.Struct, rename="camel"):
    symbol: str
    contract_size: Decimal
    price_unit: Decimal
    vol_unit: Decimal
    min_vol: Decimal
    max_vol: Decimal
    state: int = 0  # 0 enabled


class _Position(msgspec.Struct, rename="camel"):
    symbol: str
    hold_vol: Decimal = ZERO
    position_type: int = 1  # 1 long, 2 short
    hold_avg_price: Decimal = ZERO
    open_avg_price: Decimal = ZERO


class _Asset(msgspec.Struct, rename="camel"):
    currency: str
    available_balance: Decimal = ZERO
    equity: Decimal | None = None
    cash_balance: Decimal | None = None
    frozen_balance: Decimal = ZERO
    position_margin: Decimal = ZERO


class _Page(msgspec.Struct, rename="camel"):
    """Paged list responses wrap their items in ``resultList`` (second-hand); plain lists are accepted too."""

    result_list: list[msgspec.Raw] = msgspec.field(default_factory=list)


# --- helpers ---------------------------------------------------------------------------------


def _decode(data: bytes | msgspec.Raw, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise VenueParseError(f"mexc: unexpected payload for {type_}: {exc}") from exc


def _data(body: bytes) -> msgspec.Raw:
    envelope = _decode(body, Envelope)
    if not envelope.success or envelope.code != 0:
        raise VenueParseError(f"mexc: code {envelope.code} {envelope.message!r}: classify it first")
    return envelope.data


def _is_null(raw: msgspec.Raw) -> bool:
    return bytes(raw).strip() in (b"", b"null")


def _items(raw: msgspec.Raw) -> list[msgspec.Raw]:
    if _is_null(raw):
        return []
    if bytes(raw).lstrip().startswith(b"["):
        return _decode(raw, list[msgspec.Raw])
    return _decode(raw, _Page).result_list


def _contract_size(contract_sizes: Mapping[str, Decimal], symbol: str) -> Decimal:
    try:
        return contract_sizes[symbol]
    except KeyError:
        raise VenueParseError(f"mexc: no contract size known for {symbol}") from None


def order_state_of(state: int, deal_vol: Decimal) -> OrderState:
    if state == STATE_PENDING:
        return OrderState.ACKED
    if state == STATE_OPEN:
        return OrderState.PARTIAL_FILL if deal_vol > 0 else OrderState.ACKED
    if state == STATE_FILLED:
        return OrderState.FILLED
    if state == STATE_CANCELLED:
        return OrderState.CANCELED
    if state == STATE_INVALID:
        return OrderState.REJECTED
    raise VenueParseError(f"mexc: unknown order state {state}")


def order_state(order: MexcOrder, contract_sizes: Mapping[str, Decimal]) -> VenueOrderState:
    size = _contract_size(contract_sizes, order.symbol)
    return VenueOrderState(
        venue=VENUE,
        venue_symbol=order.symbol,
        client_order_id=order.external_oid,
        venue_order_id=str(order.order_id),
        state=order_state_of(order.state, order.deal_vol),
        venue_status=str(order.state),
        filled_qty=contracts_to_base(order.deal_vol, size),
        avg_price=order.deal_avg_price,
        qty=contracts_to_base(order.vol, size),
        price=order.price,
        side=side_of_code(order.side) if order.side else None,
        reject_reason=str(order.error_code) if order.error_code else "",
        update_time_ms=order.update_time,
    )


def deal_fill(deal: MexcDeal, contract_sizes: Mapping[str, Decimal]) -> VenueFill:
    return VenueFill(
        venue=VENUE,
        venue_symbol=deal.symbol,
        trade_id=str(deal.id),
        venue_order_id=str(deal.order_id),
        client_order_id=deal.external_oid,
        side=side_of_code(deal.side),
        qty=contracts_to_base(deal.vol, _contract_size(contract_sizes, deal.symbol)),
        price=deal.price,
        fee=deal.fee,
        fee_asset=deal.fee_currency,
        is_maker=not deal.is_taker,
        exchange_time_ms=deal.timestamp,
    )


# --- REST ------------------------------------------------------------------------------------


def parse_server_time_ms(body: bytes) -> int:
    """``GET /api/v1/contract/ping`` → ``data`` (ms)."""
    return _decode(_data(body), int)


def parse_contract_detail(body: bytes) -> list[Instrument]:
    """``GET /api/v1/contract/detail`` (one object or a list) → instruments in BASE units."""
    raw = _data(body)
    details = (
        _decode(raw, list[_ContractDetail])
        if bytes(raw).lstrip().startswith(b"[")
        else [_decode(raw, _ContractDetail)]
    )
    return [
        Instrument(
            venue=VENUE,
            symbol=normalize_symbol(d.symbol),
            venue_symbol=d.symbol,
            tick_size=d.price_unit,
            lot_step=d.vol_unit * d.contract_size,
            min_qty=d.min_vol * d.contract_size,
            max_qty=d.max_vol * d.contract_size,
            contract_size=d.contract_size,
        )
        for d in details
        if d.state == 0
    ]


def parse_order_query(body: bytes, contract_sizes: Mapping[str, Decimal]) -> VenueOrderState | None:
    """Query by external id: the order, or ``None`` when ``data`` is empty (not found)."""
    raw = _data(body)
    if _is_null(raw):
        return None
    return order_state(_decode(raw, MexcOrder), contract_sizes)


def parse_orders(body: bytes, contract_sizes: Mapping[str, Decimal]) -> list[VenueOrderState]:
    return [order_state(_decode(item, MexcOrder), contract_sizes) for item in _items(_data(body))]


def parse_deals(body: bytes, contract_sizes: Mapping[str, Decimal]) -> list[VenueFill]:
    return [deal_fill(_decode(item, MexcDeal), contract_sizes) for item in _items(_data(body))]


class CancelResult(msgspec.Struct, rename="camel", frozen=True):
    order_id: str | int = ""
    error_code: int = 0
    error_msg: str = ""


def parse_cancel_results(body: bytes) -> list[CancelResult]:
    """Per-order results of ``/order/cancel`` (2040 not found, 2041 cannot be cancelled)."""
    return [_decode(item, CancelResult) for item in _items(_data(body))]


def parse_positions(body: bytes, contract_sizes: Mapping[str, Decimal]) -> list[VenuePosition]:
    positions = [_decode(item, _Position) for item in _items(_data(body))]
    result = []
    for p in positions:
        base = contracts_to_base(p.hold_vol, _contract_size(contract_sizes, p.symbol))
        result.append(
            VenuePosition(
                venue=VENUE,
                venue_symbol=p.symbol,
                qty=-base if p.position_type == 2 else base,
                entry_price=p.hold_avg_price or p.open_avg_price,
                position_side="SHORT" if p.position_type == 2 else "LONG",
            )
        )
    return result


def parse_assets(body: bytes) -> list[VenueBalance]:
    assets = [_decode(item, _Asset) for item in _items(_data(body))]
    return [
        VenueBalance(
            venue=VENUE,
            asset=a.currency,
            wallet_balance=(
                a.cash_balance
                if a.cash_balance is not None
                else (
                    a.equity
                    if a.equity is not None
                    else a.available_balance + a.frozen_balance + a.position_margin
                )
            ),
            available_balance=a.available_balance,
        )
        for a in assets
    ]


# --- private stream --------------------------------------------------------------------------


class _Push(msgspec.Struct):
    channel: str = ""
    data: msgspec.Raw = msgspec.Raw()
    ts: int = 0


MexcStreamEvent = (
    VenueOrderState | VenueFill | StreamAuthResult | StreamPong | StreamSubscribed | StreamIgnored
)


def parse_private_message(frame: bytes | str, contract_sizes: Mapping[str, Decimal]) -> list[MexcStreamEvent]:
    """One private WS frame → order state / fill / control event."""
    push = _decode(frame.encode() if isinstance(frame, str) else frame, _Push)
    channel = push.channel
    if channel == "push.personal.order":
        return [order_state(_decode(push.data, MexcOrder), contract_sizes)]
    if channel == "push.personal.order.deal":
        return [deal_fill(_decode(push.data, MexcDeal), contract_sizes)]
    if channel == "rs.login":
        text = _decode(push.data, str) if not _is_null(push.data) else ""
        return [StreamAuthResult(ok=text == "success", message=text)]
    if channel == "rs.error":
        return [StreamAuthResult(ok=False, message=bytes(push.data).decode(errors="replace"))]
    if channel == "pong":
        return [StreamPong()]
    if channel == "rs.personal.filter":
        ok = _decode(push.data, str) == "success" if not _is_null(push.data) else False
        return [StreamSubscribed(ok=ok)]
    return [StreamIgnored(topic=channel)]
