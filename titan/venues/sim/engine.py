"""Sans-I/O matching engine of the simulator: one instance per venue (accounts, orders, fills, positions).

Venue-neutral: sides BUY/SELL, quantities in base units, statuses NEW / PARTIALLY_FILLED / FILLED /
CANCELED / REJECTED / EXPIRED. The venue layers translate to and from the wire formats.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

import msgspec

from titan.venues.sim.config import SimAccount, SimInstrument
from titan.venues.sim.prices import Quote

ZERO = Decimal(0)
AVG_PRICE_QUANTUM = Decimal("1E-10")


class Reject(enum.Enum):
    UNKNOWN_SYMBOL = "unknown_symbol"
    INVALID_QTY = "invalid_qty"
    INVALID_PRICE = "invalid_price"
    DUPLICATE_CLIENT_ID = "duplicate_client_id"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    REDUCE_ONLY_REJECTED = "reduce_only_rejected"
    POST_ONLY_WOULD_CROSS = "post_only_would_cross"
    NO_QUOTE = "no_quote"


class Order(msgspec.Struct, kw_only=True):
    order_id: str
    client_id: str
    api_key: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # LIMIT / MARKET
    tif: str  # GTC / IOC / FOK / POST_ONLY
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    status: str = "NEW"
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    fee: Decimal = ZERO
    created_ms: int = 0
    updated_ms: int = 0
    cancel_reason: str = ""
    held: bool = False  # partial-fill fault: the rest never fills

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.filled if self.status in ("NEW", "PARTIALLY_FILLED") else ZERO

    @property
    def avg_price(self) -> Decimal | None:
        return (self.filled_value / self.filled).quantize(AVG_PRICE_QUANTUM) if self.filled else None

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    trade_id: int
    order_id: str
    client_id: str
    api_key: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal  # positive = paid
    is_maker: bool
    realised_pnl: Decimal
    ts_ms: int


class Position(msgspec.Struct, kw_only=True):
    qty: Decimal = ZERO  # signed, base units; one-way mode
    avg_price: Decimal = ZERO
    realised: Decimal = ZERO


class OrderEvent(msgspec.Struct, frozen=True, kw_only=True):
    order: Order  # a snapshot


class FillEvent(msgspec.Struct, frozen=True, kw_only=True):
    fill: Fill
    order: Order  # snapshot after the fill


EngineEvent = OrderEvent | FillEvent


class NewOrder(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    client_id: str


class AccountState(msgspec.Struct, kw_only=True):
    api_key: str
    balance: Decimal
    positions: dict[str, Position] = msgspec.field(default_factory=dict)


def _snap(order: Order) -> Order:
    return msgspec.structs.replace(order)


class MatchingEngine:
    """Deterministic given the seed and the sequence of calls; ``clock`` returns venue time in ms."""

    def __init__(
        self,
        *,
        instruments: list[SimInstrument],
        accounts: list[SimAccount],
        leverage: Decimal,
        maker_fee: Decimal,
        taker_fee: Decimal,
        rng: random.Random,
        clock: Callable[[], int],
        order_id_factory: Callable[[random.Random, int], str],
        client_id_unique_among_open_only: bool = False,
        post_only_rejects_at_place: bool = False,
    ) -> None:
        self.post_only_rejects_at_place = post_only_rejects_at_place
        self.instruments = {i.symbol: i for i in instruments}
        self.accounts = {a.api_key: AccountState(api_key=a.api_key, balance=a.balance) for a in accounts}
        self.leverage = leverage
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self._rng = rng
        self._clock = clock
        self._order_id_factory = order_id_factory
        self._open_only = client_id_unique_among_open_only
        self.quotes: dict[str, Quote] = {}
        self.orders: dict[str, Order] = {}  # by order id, insertion ordered
        self._by_client: dict[tuple[str, str], str] = {}  # (api_key, client id) -> order id
        self.fills: list[Fill] = []
        self._next_seq = 1
        self._next_trade_id = 1000
        # Partial-fill fault (R3): fraction of the next orders filled at once, the rest held.
        self.partial_fill_ratio: Decimal | None = None
        self.cancel_after_partial = False

    # ------------------------------------------------------------------ queries
    def find(self, api_key: str, order_id: str | None = None, client_id: str | None = None) -> Order | None:
        if order_id:
            order = self.orders.get(order_id)
            return order if order is not None and order.api_key == api_key else None
        if client_id:
            oid = self._by_client.get((api_key, client_id))
            return self.orders.get(oid) if oid else None
        return None

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        return [
            o
            for o in self.orders.values()
            if o.api_key == api_key and o.is_open and (symbol is None or o.symbol == symbol)
        ]

    def account_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        return [
            o for o in self.orders.values() if o.api_key == api_key and (symbol is None or o.symbol == symbol)
        ]

    def account_fills(
        self, api_key: str, symbol: str | None = None, order_id: str | None = None
    ) -> list[Fill]:
        return [
            f
            for f in self.fills
            if f.api_key == api_key
            and (symbol is None or f.symbol == symbol)
            and (order_id is None or f.order_id == order_id)
        ]

    def position(self, api_key: str, symbol: str) -> Position:
        return self.accounts[api_key].positions.setdefault(symbol, Position())

    def used_margin(self, api_key: str) -> Decimal:
        acct = self.accounts[api_key]
        used = sum((abs(p.qty) * p.avg_price for p in acct.positions.values()), ZERO)
        for o in self.open_orders(api_key):
            if not o.reduce_only and o.price is not None:
                used += o.leaves * o.price
        return used / self.leverage

    def available(self, api_key: str) -> Decimal:
        return self.accounts[api_key].balance - self.used_margin(api_key)

    def unrealised(self, api_key: str, symbol: str) -> Decimal:
        pos = self.position(api_key, symbol)
        quote = self.quotes.get(symbol)
        if quote is None or not pos.qty:
            return ZERO
        return (quote.mark - pos.avg_price) * pos.qty

    # ------------------------------------------------------------------ commands
    def client_id_in_use(self, api_key: str, client_id: str) -> bool:
        oid = self._by_client.get((api_key, client_id))
        if oid is None:
            return False
        return self.orders[oid].is_open if self._open_only else True

    def place(self, req: NewOrder) -> Order | Reject:
        """Validate and accept an order (status NEW); matching happens in :meth:`execute`."""
        inst = self.instruments.get(req.symbol)
        if inst is None:
            return Reject.UNKNOWN_SYMBOL
        if req.qty <= 0 or req.qty % inst.lot != 0 or req.qty > inst.max_qty or req.qty < inst.min_qty:
            return Reject.INVALID_QTY
        if req.type == "LIMIT" and (req.price is None or req.price <= 0 or req.price % inst.tick != 0):
            return Reject.INVALID_PRICE
        if req.client_id and self.client_id_in_use(req.api_key, req.client_id):
            return Reject.DUPLICATE_CLIENT_ID
        quote = self.quotes.get(req.symbol)
        if quote is None:
            return Reject.NO_QUOTE
        pos = self.position(req.api_key, req.symbol)
        if req.reduce_only and (pos.qty == 0 or (pos.qty > 0) == (req.side == "BUY")):
            return Reject.REDUCE_ONLY_REJECTED
        touch = quote.ask if req.side == "BUY" else quote.bid
        if self.post_only_rejects_at_place and self._post_only_crosses(req.tif, req.side, req.price, quote):
            return Reject.POST_ONLY_WOULD_CROSS
        if not req.reduce_only:
            px = req.price if req.price is not None else touch
            if req.qty * px / self.leverage > self.available(req.api_key):
                return Reject.INSUFFICIENT_BALANCE
        now = self._clock()
        oid = self._order_id_factory(self._rng, self._next_seq)
        self._next_seq += 1
        order = Order(
            order_id=oid,
            client_id=req.client_id,
            api_key=req.api_key,
            symbol=req.symbol,
            side=req.side,
            type=req.type,
            tif=req.tif,
            qty=req.qty,
            price=req.price,
            reduce_only=req.reduce_only,
            created_ms=now,
            updated_ms=now,
        )
        self.orders[oid] = order
        if req.client_id:
            self._by_client[(req.api_key, req.client_id)] = oid
        return order

    def accepted(self, order_id: str) -> list[EngineEvent]:
        """The acceptance of a new order, without matching it yet (asynchronous venues)."""
        return [OrderEvent(order=_snap(self.orders[order_id]))]

    def execute(self, order_id: str) -> list[EngineEvent]:
        """Publish the acceptance of a new order and match it against the touch as a taker."""
        return [OrderEvent(order=_snap(self.orders[order_id])), *self.match(order_id)]

    def match(self, order_id: str) -> list[EngineEvent]:
        """Match a newly accepted order against the current touch (taker side)."""
        order = self.orders[order_id]
        events: list[EngineEvent] = []
        if not order.is_open:
            return events
        if self.partial_fill_ratio is not None and order.type == "LIMIT":
            inst = self.instruments[order.symbol]
            part = (order.qty * self.partial_fill_ratio / inst.lot).to_integral_value(ROUND_DOWN) * inst.lot
            order.held = True
            if part > 0 and order.price is not None:
                events.extend(self._fill(order, order.price, part, is_maker=True))
            if self.cancel_after_partial and order.is_open:
                events.extend(self._cancel(order, "CANCELED", "venue"))
            return events
        quote = self.quotes[order.symbol]
        if self._post_only_crosses(order.tif, order.side, order.price, quote):
            return self._cancel(order, "CANCELED", "post_only")
        touch, touch_size = (
            (quote.ask, quote.ask_size) if order.side == "BUY" else (quote.bid, quote.bid_size)
        )
        crosses = order.price is None or (
            order.price >= touch if order.side == "BUY" else order.price <= touch
        )
        if order.type == "MARKET":
            events.extend(self._fill(order, touch, self._clip(order, order.qty), is_maker=False))
        elif crosses and order.tif == "FOK" and touch_size < order.qty:
            pass  # cannot fill entirely: expire below
        elif crosses:
            events.extend(self._fill(order, touch, self._clip(order, min(order.leaves, touch_size)), False))
        if order.is_open and (order.tif in ("IOC", "FOK") or order.type == "MARKET"):
            events.extend(self._cancel(order, "EXPIRED" if order.tif == "FOK" else "CANCELED", "ioc"))
        return events

    def cancel(self, order: Order, reason: str = "user") -> list[EngineEvent]:
        return self._cancel(order, "CANCELED", reason) if order.is_open else []

    def set_quote(self, symbol: str, quote: Quote) -> list[EngineEvent]:
        """New touch: resting limit orders that it crosses fill as makers at their own price."""
        self.quotes[symbol] = quote
        events: list[EngineEvent] = []
        for order in list(self.orders.values()):
            if order.symbol != symbol or not order.is_open or order.held or order.price is None:
                continue
            if order.side == "BUY" and quote.ask <= order.price:
                size = quote.ask_size
            elif order.side == "SELL" and quote.bid >= order.price:
                size = quote.bid_size
            else:
                continue
            qty = self._clip(order, min(order.leaves, size))
            if qty > 0:
                events.extend(self._fill(order, order.price, qty, is_maker=True))
        return events

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _post_only_crosses(tif: str, side: str, price: Decimal | None, quote: Quote) -> bool:
        if tif != "POST_ONLY" or price is None:
            return False
        return price >= quote.ask if side == "BUY" else price <= quote.bid

    def _clip(self, order: Order, qty: Decimal) -> Decimal:
        """A reduce-only order never takes the position through zero."""
        if not order.reduce_only:
            return qty
        return min(qty, abs(self.position(order.api_key, order.symbol).qty))

    def _cancel(self, order: Order, status: str, reason: str) -> list[EngineEvent]:
        order.status = status
        order.cancel_reason = reason
        order.updated_ms = self._clock()
        return [OrderEvent(order=_snap(order))]

    def _fill(self, order: Order, price: Decimal, qty: Decimal, is_maker: bool) -> list[EngineEvent]:
        if qty <= 0:
            return []
        now = self._clock()
        fee = (price * qty * (self.maker_fee if is_maker else self.taker_fee)).quantize(Decimal("0.00000001"))
        realised = self._apply_position(order.api_key, order.symbol, order.side, qty, price)
        acct = self.accounts[order.api_key]
        acct.balance += realised - fee
        order.filled += qty
        order.filled_value += qty * price
        order.fee += fee
        order.status = "FILLED" if order.filled == order.qty else "PARTIALLY_FILLED"
        order.updated_ms = now
        fill = Fill(
            trade_id=self._next_trade_id,
            order_id=order.order_id,
            client_id=order.client_id,
            api_key=order.api_key,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            fee=fee,
            is_maker=is_maker,
            realised_pnl=realised,
            ts_ms=now,
        )
        self._next_trade_id += 1
        self.fills.append(fill)
        return [FillEvent(fill=fill, order=_snap(order))]

    def _apply_position(self, api_key: str, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        pos = self.position(api_key, symbol)
        delta = qty if side == "BUY" else -qty
        if pos.qty == 0 or (pos.qty > 0) == (delta > 0):
            total = abs(pos.qty) + qty
            # Quantised like a venue's entry price, so realised PnL stays an exact finite decimal.
            pos.avg_price = ((abs(pos.qty) * pos.avg_price + qty * price) / total).quantize(AVG_PRICE_QUANTUM)
            pos.qty += delta
            return ZERO
        closed = min(abs(pos.qty), qty)
        direction = 1 if pos.qty > 0 else -1
        realised = closed * (price - pos.avg_price) * direction
        pos.realised += realised
        pos.qty += delta
        if pos.qty == 0:
            pos.avg_price = ZERO
        elif (pos.qty > 0) != (direction > 0):
            pos.avg_price = price  # flipped through zero
        return realised
