"""Bybit v5 response and private-stream parsers (venues.md §2.3–§2.6, §5).

Call :func:`titan.venues.bybit.errors.classify_response` first; these parsers read the
``result`` of a successful (``retCode`` 0) response.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import msgspec

from titan.symbols import normalize_symbol
from titan.venues.bybit.errors import Envelope
from titan.venues.common.decimals import DecimalFormatError, to_decimal, to_decimal_or_zero
from titan.venues.common.stream import StreamAuthResult, StreamIgnored, StreamPong, StreamSubscribed
from titan.venues.common.types import (
    Instrument,
    OrderState,
    Side,
    VenueBalance,
    VenueFill,
    VenueOrderState,
    VenuePosition,
)
from titan.venues.common.wire import VenueParseError

VENUE = "bybit"

ORDER_STATUS_STATE: dict[str, OrderState] = {
    "New": OrderState.ACKED,
    "Untriggered": OrderState.ACKED,
    "Triggered": OrderState.ACKED,
    "PartiallyFilled": OrderState.PARTIAL_FILL,
    "Filled": OrderState.FILLED,
    "Cancelled": OrderState.CANCELED,  # derivatives: may carry executed qty (apply cumExecQty first)
    "PartiallyFilledCanceled": OrderState.CANCELED,
    "Deactivated": OrderState.CANCELED,
    "Rejected": OrderState.REJECTED,
}

# Executions that change the position; Funding and others do not.
FILL_EXEC_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade"})

_SIDE = {"Buy": Side.BUY, "Sell": Side.SELL}

T = TypeVar("T")


# --- wire shapes -----------------------------------------------------------------------------


class BybitOrder(msgspec.Struct, rename="camel"):
    order_id: str
    symbol: str
    order_status: str
    order_link_id: str = ""
    side: str = ""
    qty: str = "0"
    price: str = "0"
    avg_price: str = ""
    cum_exec_qty: str = "0"
    cum_exec_value: str = "0"
    leaves_qty: str = "0"
    reject_reason: str = ""
    cancel_type: str = ""
    updated_time: str = "0"


class BybitExecution(msgspec.Struct, rename="camel"):
    symbol: str
    order_id: str
    exec_id: str
    exec_price: str
    exec_qty: str
    side: str
    order_link_id: str = ""
    exec_fee: str = "0"
    fee_currency: str = ""
    exec_type: str = "Trade"
    exec_time: str = "0"
    is_maker: bool = False


class _List(msgspec.Struct, rename="camel"):
    items: list[msgspec.Raw] = msgspec.field(default_factory=list, name="list")
    next_page_cursor: str = ""


class _PriceFilter(msgspec.Struct, rename="camel"):
    tick_size: str


class _LotSizeFilter(msgspec.Struct, rename="camel"):
    qty_step: str
    min_order_qty: str
    max_order_qty: str
    min_notional_value: str = "0"


class _InstrumentInfo(msgspec.Struct, rename="camel"):
    symbol: str
    price_filter: _PriceFilter
    lot_size_filter: _LotSizeFilter
    status: str = "Trading"


class _Position(msgspec.Struct, rename="camel"):
    symbol: str
    side: str = ""
    size: str = "0"
    avg_price: str = "0"
    mark_price: str = "0"
    unrealised_pnl: str = "0"
    position_idx: int = 0


class _Coin(msgspec.Struct, rename="camel"):
    coin: str
    wallet_balance: str = "0"
    available_to_withdraw: str = ""


class _Account(msgspec.Struct, rename="camel"):
    coin: list[_Coin] = []


class _ServerTime(msgspec.Struct, rename="camel"):
    time_second: str = "0"
    time_nano: str = "0"


# --- helpers ---------------------------------------------------------------------------------


def _decode(data: bytes | msgspec.Raw, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise VenueParseError(f"bybit: unexpected payload for {type_.__name__}: {exc}") from exc


def _result(body: bytes) -> tuple[msgspec.Raw, int]:
    envelope = _decode(body, Envelope)
    if envelope.ret_code != 0:
        raise VenueParseError(f"bybit: retCode {envelope.ret_code} {envelope.ret_msg!r}: classify it first")
    return envelope.result, envelope.time


def _list(body: bytes, type_: type[T]) -> tuple[list[T], str]:
    raw, _ = _result(body)
    page = _decode(raw, _List)
    return [_decode(item, type_) for item in page.items], page.next_page_cursor


def _side(text: str) -> Side:
    try:
        return _SIDE[text]
    except KeyError:
        raise VenueParseError(f"bybit: unknown side {text!r}") from None


def _dec(text: str) -> Decimal:
    try:
        return to_decimal_or_zero(text)
    except DecimalFormatError as exc:
        raise VenueParseError(str(exc)) from exc


def order_state(order: BybitOrder) -> VenueOrderState:
    try:
        state = ORDER_STATUS_STATE[order.order_status]
    except KeyError:
        raise VenueParseError(f"bybit: unknown orderStatus {order.order_status!r}") from None
    filled = _dec(order.cum_exec_qty)
    avg = _dec(order.avg_price)
    if avg == 0 and filled > 0:
        avg = _dec(order.cum_exec_value) / filled
    return VenueOrderState(
        venue=VENUE,
        venue_symbol=order.symbol,
        client_order_id=order.order_link_id,
        venue_order_id=order.order_id,
        state=state,
        venue_status=order.order_status,
        filled_qty=filled,
        avg_price=avg,
        qty=_dec(order.qty),
        price=_dec(order.price),
        side=_SIDE.get(order.side),
        reject_reason=order.reject_reason,
        update_time_ms=int(order.updated_time or 0),
    )


def fill(execution: BybitExecution, default_fee_asset: str = "USDT") -> VenueFill:
    return VenueFill(
        venue=VENUE,
        venue_symbol=execution.symbol,
        trade_id=execution.exec_id,
        venue_order_id=execution.order_id,
        client_order_id=execution.order_link_id,
        side=_side(execution.side),
        qty=_dec(execution.exec_qty),
        price=_dec(execution.exec_price),
        fee=_dec(execution.exec_fee),  # positive = paid, negative = rebate
        fee_asset=execution.fee_currency or default_fee_asset,
        is_maker=execution.is_maker,
        exchange_time_ms=int(execution.exec_time or 0),
    )


# --- REST ------------------------------------------------------------------------------------


def parse_server_time_ms(body: bytes) -> int:
    """``GET /v5/market/time``: the top-level ``time`` (ms), else ``timeNano`` / ``timeSecond``."""
    raw, top_time = _result(body)
    if top_time > 0:
        return top_time
    server = _decode(raw, _ServerTime)
    if server.time_nano.isdigit() and int(server.time_nano) > 0:
        return int(server.time_nano) // 1_000_000
    return int(server.time_second) * 1000


def parse_instruments(body: bytes) -> tuple[list[Instrument], str]:
    """``GET /v5/market/instruments-info`` → instruments (base units) and the next page cursor."""
    infos, cursor = _list(body, _InstrumentInfo)
    instruments = [
        Instrument(
            venue=VENUE,
            symbol=normalize_symbol(info.symbol),
            venue_symbol=info.symbol,
            tick_size=to_decimal(info.price_filter.tick_size),
            lot_step=to_decimal(info.lot_size_filter.qty_step),
            min_qty=to_decimal(info.lot_size_filter.min_order_qty),
            max_qty=to_decimal(info.lot_size_filter.max_order_qty),
            min_notional=_dec(info.lot_size_filter.min_notional_value),
        )
        for info in infos
    ]
    return instruments, cursor


def parse_orders(body: bytes) -> tuple[list[VenueOrderState], str]:
    """``GET /v5/order/realtime`` or ``/v5/order/history`` → order states and the next page cursor."""
    orders, cursor = _list(body, BybitOrder)
    return [order_state(o) for o in orders], cursor


def parse_order_query(body: bytes, client_order_id: str) -> VenueOrderState | None:
    """Query by ``orderLinkId``: the order, or ``None`` when the venue does not know it (NOT_FOUND)."""
    states, _ = parse_orders(body)
    for state in states:
        if state.client_order_id == client_order_id:
            return state
    return None


def parse_executions(body: bytes) -> tuple[list[VenueFill], str]:
    """``GET /v5/execution/list`` → fills (position-changing exec types only) and the next cursor."""
    executions, cursor = _list(body, BybitExecution)
    return [fill(e) for e in executions if e.exec_type in FILL_EXEC_TYPES], cursor


def parse_positions(body: bytes) -> list[VenuePosition]:
    positions, _ = _list(body, _Position)
    result = []
    for p in positions:
        size = _dec(p.size)
        signed = -size if p.side == "Sell" else size
        result.append(
            VenuePosition(
                venue=VENUE,
                venue_symbol=p.symbol,
                qty=signed,
                entry_price=_dec(p.avg_price),
                mark_price=_dec(p.mark_price),
                unrealised_pnl=_dec(p.unrealised_pnl),
                position_side="" if p.position_idx == 0 else ("LONG" if p.position_idx == 1 else "SHORT"),
            )
        )
    return result


def parse_wallet_balance(body: bytes) -> list[VenueBalance]:
    accounts, _ = _list(body, _Account)
    return [
        VenueBalance(
            venue=VENUE,
            asset=c.coin,
            wallet_balance=_dec(c.wallet_balance),
            available_balance=_dec(c.available_to_withdraw or c.wallet_balance),
        )
        for account in accounts
        for c in account.coin
    ]


# --- private stream --------------------------------------------------------------------------


class _StreamFrame(msgspec.Struct):
    topic: str = ""
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    data: msgspec.Raw = msgspec.Raw()


BybitStreamEvent = (
    VenueOrderState | VenueFill | StreamAuthResult | StreamPong | StreamSubscribed | StreamIgnored
)


def parse_private_message(frame: bytes | str) -> list[BybitStreamEvent]:
    """One private-stream frame → order states / fills / control events (several per frame possible)."""
    msg = _decode(frame.encode() if isinstance(frame, str) else frame, _StreamFrame)
    if msg.op == "auth":
        return [StreamAuthResult(ok=bool(msg.success), message=msg.ret_msg)]
    if msg.op in ("ping", "pong"):
        return [StreamPong()]
    if msg.op == "subscribe":
        return [StreamSubscribed(ok=bool(msg.success), message=msg.ret_msg)]
    topic = msg.topic.split(".")[0] if msg.topic else ""
    if not msg.data or bytes(msg.data) == b"null":
        return [StreamIgnored(topic=msg.topic or msg.op)]
    if topic == "order":
        return [order_state(o) for o in _decode(msg.data, list[BybitOrder])]
    if msg.topic in ("execution", "execution.linear"):
        # execution.fast carries no fee: take fills from the full topic only, so dedupe keeps fees.
        return [fill(e) for e in _decode(msg.data, list[BybitExecution]) if e.exec_type in FILL_EXEC_TYPES]
    return [StreamIgnored(topic=msg.topic)]
