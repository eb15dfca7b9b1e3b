"""Paper venue matching (venues.md §7), sans-I/O: an order and a quote in, reports out.

Market orders fill at once against the shared-memory ticker table of the price-source venue —
best ask for a buy, best bid for a sell, plus the configured slippage — with the configured taker
fee. Every fill has a trade id derived from the client order id, so a gateway restarted
mid-order can never invent a second execution.
"""

from __future__ import annotations

import time
from decimal import ROUND_HALF_EVEN, Decimal

from titan.messages import FILL, REJECTED, OrderRequest, VenueReport
from titan.shm.ticker import TickerIndex, TickerTable, units_to_price


class PaperVenue:
    """Sans-I/O paper matching: an order and a quote in, reports out."""

    def __init__(
        self,
        table: TickerTable,
        index: TickerIndex,
        price_source: str,
        taker_fee: Decimal,
        slippage_bps: Decimal,
        ticks: dict[str, Decimal],
    ) -> None:
        self.table = table
        self.index = index
        self.price_source = price_source
        self.taker_fee = taker_fee
        self.slippage = slippage_bps / Decimal(10_000)
        self.ticks = ticks

    def execute(self, order: OrderRequest, t_gw_in: int) -> VenueReport:
        row = self.index.row(self.price_source, order.symbol)
        snap = self.table.read(row) if row is not None else None
        now_ms = time.time_ns() // 1_000_000
        if snap is None or snap.bid <= 0 or snap.ask <= 0:
            return VenueReport(
                coid=order.coid,
                venue=order.venue,
                kind=REJECTED,
                reason_code="NO_PRICE",
                message=f"paper: no quote for {order.symbol} on {self.price_source}",
                t_order_out=order.t_core_out,
                t_gw_in=t_gw_in,
                t_gw_out=time.monotonic_ns(),
            )
        if order.side == "BUY":
            price = units_to_price(snap.ask) * (1 + self.slippage)
        else:
            price = units_to_price(snap.bid) * (1 - self.slippage)
        tick = self.ticks.get(order.symbol)
        if tick is not None and self.slippage:
            price = (price / tick).quantize(Decimal(1), ROUND_HALF_EVEN) * tick
        qty = Decimal(order.qty)
        fee = (price * qty * self.taker_fee).normalize()
        return VenueReport(
            coid=order.coid,
            venue=order.venue,
            kind=FILL,
            venue_order_id=f"paper-{order.coid}",
            venue_status="FILLED",
            trade_id=f"{order.coid}-1",
            qty=order.qty,
            price=_plain(price),
            fee=_plain(fee),
            fee_asset="USDT",
            is_maker=False,
            cum_qty=order.qty,
            leaves_qty="0",
            t_exchange_ms=now_ms,
            t_order_out=order.t_core_out,
            t_gw_in=t_gw_in,
            t_gw_out=time.monotonic_ns(),
        )


def _plain(d: Decimal) -> str:
    return "0" if d == 0 else format(d.normalize(), "f")
