"""Venue-neutral data types produced and consumed by every adapter (msgspec Structs, exact decimals)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class OrderState(StrEnum):
    """The subset of the leg FSM (risk-and-state.md §13) a venue status maps onto (venues.md §5)."""

    ACKED = "ACKED"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


TERMINAL_ORDER_STATES: frozenset[OrderState] = frozenset(
    {OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED, OrderState.REJECTED}
)


class Credentials(msgspec.Struct, frozen=True):
    api_key: str
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(api_key={self.api_key!r}, secret=<hidden>)"


class Instrument(msgspec.Struct, frozen=True):
    """Trading rules of one (venue, symbol), all quantities in BASE units.

    For MEXC, where orders are sized in contracts, ``lot_step``/``min_qty``/``max_qty`` are the
    contract grid times ``contract_size``; the adapter converts to contracts on the way out.
    """

    venue: str
    symbol: str  # canonical BTC/USDT
    venue_symbol: str
    tick_size: Decimal
    lot_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal = Decimal(0)
    contract_size: Decimal = Decimal(1)


class OrderSpec(msgspec.Struct, frozen=True):
    """One order as an adapter will send it; qty in base units, price ``None`` for MARKET."""

    client_order_id: str
    symbol: str  # canonical
    venue_symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None = None
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False

    @property
    def is_post_only(self) -> bool:
        return self.post_only or self.tif is TimeInForce.POST_ONLY


class HttpRequest(msgspec.Struct, frozen=True):
    """A request ready to send exactly as signed: the driver must not re-encode query or body."""

    method: str
    path: str
    query: str = ""  # without the leading "?"
    body: bytes = b""
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def target(self) -> str:
        """Path plus query string, as it goes on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path


class HttpResponse(msgspec.Struct, frozen=True):
    """What the driver received: status, headers (any case), raw body."""

    status: int
    body: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


class VenueOrderState(msgspec.Struct, frozen=True):
    """A venue's view of one order, mapped onto our FSM state."""

    venue: str
    venue_symbol: str
    client_order_id: str
    venue_order_id: str
    state: OrderState
    venue_status: str  # the venue's own status text, for logs and reconciliation
    filled_qty: Decimal  # cumulative, base units
    avg_price: Decimal  # 0 when nothing filled
    qty: Decimal = Decimal(0)  # ordered, base units
    price: Decimal = Decimal(0)
    side: Side | None = None
    reject_reason: str = ""
    update_time_ms: int = 0


class VenueFill(msgspec.Struct, frozen=True):
    """One execution. Dedupe key: (venue, venue_symbol, trade_id). ``fee`` positive = paid."""

    venue: str
    venue_symbol: str
    trade_id: str
    venue_order_id: str
    client_order_id: str  # "" when the venue did not say (Bybit execution.fast maker fills)
    side: Side
    qty: Decimal  # base units
    price: Decimal
    fee: Decimal
    fee_asset: str
    is_maker: bool
    exchange_time_ms: int


class VenuePosition(msgspec.Struct, frozen=True):
    """Net position for reconciliation; ``qty`` signed (+ long, − short), base units."""

    venue: str
    venue_symbol: str
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    position_side: str = ""  # hedge-mode leg, "" in one-way mode


class VenueBalance(msgspec.Struct, frozen=True):
    venue: str
    asset: str
    wallet_balance: Decimal
    available_balance: Decimal
