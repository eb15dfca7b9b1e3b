"""Binance USD-M response and user-data-stream parsers (venues.md §3.3–§3.6, §5).

Call :func:`titan.venues.binance.errors.classify_response` first; these read successful bodies.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import msgspec

from titan.symbols import normalize_symbol
from titan.venues.common.decimals import DecimalFormatError, to_decimal, to_decimal_or_zero
from titan.venues.common.stream import ListenKeyExpired, StreamIgnored, StreamSubscribed
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

VENUE = "binance"

ORDER_STATUS_STATE: dict[str, OrderState] = {
    "NEW": OrderState.ACKED,
    "PARTIALLY_FILLED": OrderState.PARTIAL_FILL,
    "FILLED": OrderState.FILLED,
    "CANCELED": OrderState.CANCELED,
    "EXPIRED": OrderState.EXPIRED,
    "EXPIRED_IN_MATCH": OrderState.EXPIRED,
    # Liquidation / ADL orders the venue opens itself; they rest like NEW until they trade.
    "NEW_INSURANCE": OrderState.ACKED,
    "NEW_ADL": OrderState.ACKED,
}

_SIDE = {"BUY": Side.BUY, "SELL": Side.SELL}

T = TypeVar("T")


# --- wire shapes -----------------------------------------------------------------------------


class BinanceOrder(msgspec.Struct, rename="camel"):
    order_id: int
    symbol: str
    status: str
    client_order_id: str = ""
    side: str = ""
    orig_qty: str = "0"
    executed_qty: str = "0"
    avg_price: str = "0"
    price: str = "0"
    update_time: int = 0


class BinanceTrade(msgspec.Struct, rename="camel"):
    """``GET /fapi/v1/userTrades`` item (no client order id: match by ``orderId``)."""

    symbol: str
    id: int
    order_id: int
    side: str
    price: str
    qty: str
    commission: str = "0"
    commission_asset: str = "USDT"
    maker: bool = False
    time: int = 0


class _Filter(msgspec.Struct, rename="camel"):
    filter_type: str
    tick_size: str = ""
    step_size: str = ""
    min_qty: str = ""
    max_qty: str = ""
    notional: str = ""


class _SymbolInfo(msgspec.Struct, rename="camel"):
    symbol: str
    filters: list[_Filter] = msgspec.field(default_factory=list)
    status: str = "TRADING"
    contract_type: str = "PERPETUAL"


class RateLimit(msgspec.Struct, rename="camel", frozen=True):
    """``exchangeInfo.rateLimits[]``: read at start, never hard-coded (§3.7)."""

    rate_limit_type: str  # REQUEST_WEIGHT | ORDERS
    interval: str  # SECOND | MINUTE | DAY
    interval_num: int
    limit: int

    @property
    def window_ms(self) -> int:
        unit_ms = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}[self.interval]
        return unit_ms * self.interval_num


class _ExchangeInfo(msgspec.Struct, rename="camel"):
    rate_limits: list[RateLimit] = msgspec.field(default_factory=list)
    symbols: list[_SymbolInfo] = msgspec.field(default_factory=list)


class _PositionRisk(msgspec.Struct, rename="camel"):
    symbol: str
    position_amt: str = "0"
    entry_price: str = "0"
    mark_price: str = "0"
    un_realized_profit: str = "0"
    position_side: str = "BOTH"


class _Balance(msgspec.Struct, rename="camel"):
    asset: str
    balance: str = "0"
    available_balance: str = "0"


class _ServerTime(msgspec.Struct, rename="camel"):
    server_time: int


class _ListenKey(msgspec.Struct, rename="camel"):
    listen_key: str


# --- helpers ---------------------------------------------------------------------------------


def _decode(data: bytes | msgspec.Raw, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(data, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise VenueParseError(f"binance: unexpected payload for {type_}: {exc}") from exc


def _dec(text: str) -> Decimal:
    try:
        return to_decimal_or_zero(text)
    except DecimalFormatError as exc:
        raise VenueParseError(str(exc)) from exc


def _side(text: str) -> Side:
    try:
        return _SIDE[text]
    except KeyError:
        raise VenueParseError(f"binance: unknown side {text!r}") from None


def _state(status: str) -> OrderState:
    try:
        return ORDER_STATUS_STATE[status]
    except KeyError:
        raise VenueParseError(f"binance: unknown order status {status!r}") from None


def order_state(order: BinanceOrder) -> VenueOrderState:
    return VenueOrderState(
        venue=VENUE,
        venue_symbol=order.symbol,
        client_order_id=order.client_order_id,
        venue_order_id=str(order.order_id),
        state=_state(order.status),
        venue_status=order.status,
        filled_qty=_dec(order.executed_qty),
        avg_price=_dec(order.avg_price),
        qty=_dec(order.orig_qty),
        price=_dec(order.price),
        side=_SIDE.get(order.side),
        update_time_ms=order.update_time,
    )


# --- REST ------------------------------------------------------------------------------------


def parse_server_time_ms(body: bytes) -> int:
    return _decode(body, _ServerTime).server_time


def parse_exchange_info(body: bytes) -> tuple[list[Instrument], list[RateLimit]]:
    """Instruments of trading perpetuals plus the venue's rate limits."""
    info = _decode(body, _ExchangeInfo)
    instruments = []
    for sym in info.symbols:
        if sym.status != "TRADING":
            continue
        filters = {f.filter_type: f for f in sym.filters}
        try:
            price_filter, lot = filters["PRICE_FILTER"], filters["LOT_SIZE"]
        except KeyError as exc:
            raise VenueParseError(f"binance: {sym.symbol} lacks filter {exc}") from None
        notional = filters.get("MIN_NOTIONAL")
        instruments.append(
            Instrument(
                venue=VENUE,
                symbol=normalize_symbol(sym.symbol),
                venue_symbol=sym.symbol,
                tick_size=to_decimal(price_filter.tick_size),
                lot_step=to_decimal(lot.step_size),
                min_qty=to_decimal(lot.min_qty),
                max_qty=to_decimal(lot.max_qty),
                min_notional=_dec(notional.notional) if notional else Decimal(0),
            )
        )
    return instruments, info.rate_limits


def parse_order(body: bytes) -> VenueOrderState:
    """Create (RESULT), cancel or query-by-client-id response → the order."""
    return order_state(_decode(body, BinanceOrder))


def parse_open_orders(body: bytes) -> list[VenueOrderState]:
    return [order_state(o) for o in _decode(body, list[BinanceOrder])]


def trade_fill(trade: BinanceTrade) -> VenueFill:
    return VenueFill(
        venue=VENUE,
        venue_symbol=trade.symbol,
        trade_id=str(trade.id),
        venue_order_id=str(trade.order_id),
        client_order_id="",
        side=_side(trade.side),
        qty=_dec(trade.qty),
        price=_dec(trade.price),
        fee=_dec(trade.commission),
        fee_asset=trade.commission_asset,
        is_maker=trade.maker,
        exchange_time_ms=trade.time,
    )


def parse_user_trades(body: bytes) -> list[VenueFill]:
    return [trade_fill(t) for t in _decode(body, list[BinanceTrade])]


def parse_position_risk(body: bytes) -> list[VenuePosition]:
    return [
        VenuePosition(
            venue=VENUE,
            venue_symbol=p.symbol,
            qty=_dec(p.position_amt),  # signed by the venue
            entry_price=_dec(p.entry_price),
            mark_price=_dec(p.mark_price),
            unrealised_pnl=_dec(p.un_realized_profit),
            position_side="" if p.position_side == "BOTH" else p.position_side,
        )
        for p in _decode(body, list[_PositionRisk])
    ]


def parse_balance(body: bytes) -> list[VenueBalance]:
    return [
        VenueBalance(
            venue=VENUE,
            asset=b.asset,
            wallet_balance=_dec(b.balance),
            available_balance=_dec(b.available_balance),
        )
        for b in _decode(body, list[_Balance])
    ]


def parse_listen_key(body: bytes) -> str:
    return _decode(body, _ListenKey).listen_key


# --- user data stream ------------------------------------------------------------------------


class _OrderUpdate(msgspec.Struct):
    """``ORDER_TRADE_UPDATE.o`` (single-letter venue keys)."""

    s: str
    c: str
    S: str
    X: str
    i: int
    x: str = ""
    q: str = "0"
    p: str = "0"
    ap: str = "0"
    l: str = "0"  # noqa: E741 - venue key: last filled qty
    z: str = "0"
    L: str = "0"
    N: str | None = None
    n: str = "0"
    T: int = 0
    t: int = 0
    m: bool = False


class _AccountBalance(msgspec.Struct):
    a: str
    wb: str = "0"
    cw: str = "0"


class _AccountPosition(msgspec.Struct):
    s: str
    pa: str = "0"
    ep: str = "0"
    up: str = "0"
    ps: str = "BOTH"


class _AccountData(msgspec.Struct):
    B: list[_AccountBalance] = msgspec.field(default_factory=list)
    P: list[_AccountPosition] = msgspec.field(default_factory=list)


class _UserEvent(msgspec.Struct):
    e: str = ""
    E: int = 0
    T: int = 0
    o: msgspec.Raw = msgspec.Raw()
    a: msgspec.Raw = msgspec.Raw()
    # control frames
    id: int | str | None = None
    result: msgspec.Raw = msgspec.Raw()
    # stream mode wrapper
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw()


BinanceStreamEvent = (
    VenueOrderState
    | VenueFill
    | VenuePosition
    | VenueBalance
    | ListenKeyExpired
    | StreamSubscribed
    | StreamIgnored
)


def _order_update(event: _UserEvent) -> list[BinanceStreamEvent]:
    o = _decode(event.o, _OrderUpdate)
    state = VenueOrderState(
        venue=VENUE,
        venue_symbol=o.s,
        client_order_id=o.c,
        venue_order_id=str(o.i),
        state=_state(o.X),
        venue_status=o.X,
        filled_qty=_dec(o.z),
        avg_price=_dec(o.ap),
        qty=_dec(o.q),
        price=_dec(o.p),
        side=_SIDE.get(o.S),
        update_time_ms=o.T or event.T,
    )
    out: list[BinanceStreamEvent] = []
    last_qty = _dec(o.l)
    if o.x == "TRADE" and last_qty > 0:
        # The fill goes first so a consumer applying them in order never sees FILLED without its fill.
        out.append(
            VenueFill(
                venue=VENUE,
                venue_symbol=o.s,
                trade_id=str(o.t),
                venue_order_id=str(o.i),
                client_order_id=o.c,
                side=_side(o.S),
                qty=last_qty,
                price=_dec(o.L),
                fee=_dec(o.n),  # sign convention unverified for USD-M (§3.6): positive taken as paid
                fee_asset=o.N or "USDT",
                is_maker=o.m,
                exchange_time_ms=o.T or event.T,
            )
        )
    out.append(state)
    return out


def _account_update(event: _UserEvent) -> list[BinanceStreamEvent]:
    data = _decode(event.a, _AccountData)
    out: list[BinanceStreamEvent] = [
        VenueBalance(venue=VENUE, asset=b.a, wallet_balance=_dec(b.wb), available_balance=_dec(b.cw))
        for b in data.B
    ]
    out.extend(
        VenuePosition(
            venue=VENUE,
            venue_symbol=p.s,
            qty=_dec(p.pa),
            entry_price=_dec(p.ep),
            unrealised_pnl=_dec(p.up),
            position_side="" if p.ps == "BOTH" else p.ps,
        )
        for p in data.P
    )
    return out


def parse_user_message(frame: bytes | str) -> list[BinanceStreamEvent]:
    """One user-data frame (``ws`` or ``stream`` mode) → fills, order states, balances, positions."""
    event = _decode(frame.encode() if isinstance(frame, str) else frame, _UserEvent)
    if event.data and event.stream:
        event = _decode(event.data, _UserEvent)
    if event.e == "ORDER_TRADE_UPDATE":
        return _order_update(event)
    if event.e == "ACCOUNT_UPDATE":
        return _account_update(event)
    if event.e == "listenKeyExpired":
        return [ListenKeyExpired(event_time_ms=event.E)]
    if not event.e and event.id is not None:
        return [StreamSubscribed(ok=bytes(event.result) in (b"null", b""))]
    return [StreamIgnored(topic=event.e)]
