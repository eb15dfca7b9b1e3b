"""`gateway.<venue>`: turns orders from `core` into venue outcomes and reports them back.

This module runs the `paper` venue (venues.md §7): market orders fill at once against the
shared-memory ticker table of its price-source venue — best ask for a buy, best bid for a sell,
plus the configured slippage — with the configured taker fee. Every fill has a trade id derived
from the client order id, so a gateway restarted mid-order can never invent a second execution.
"""

from __future__ import annotations

import argparse
import gc
import signal
import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from titan.messages import (
    CORE_TO_GATEWAY,
    FILL,
    REJECTED,
    OrderRequest,
    VenueReport,
    decoder,
    encoder,
)
from titan.procs.common import CORE, ChildContext, gateway_name
from titan.shm.board import ProcState
from titan.shm.doorbell import wait_any
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="titan gateway")
    parser.add_argument("--venue", required=True)
    args = parser.parse_args()
    name = gateway_name(args.venue)
    ctx = ChildContext.from_env(name)
    if args.venue != "paper":
        raise SystemExit(f"{name}: venue {args.venue!r} has no gateway yet")
    stop = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    orders = ctx.ring_in(CORE)
    reports = ctx.ring_out(CORE)
    core_bell = ctx.bell(CORE)
    bell = ctx.bell()
    table, index = ctx.ticker()
    paper = ctx.cfg.venues.paper
    venue = PaperVenue(
        table,
        index,
        paper.price_source,
        Decimal(paper.taker_fee),
        Decimal(paper.slippage_bps),
        {s: Decimal(i.tick_size) for s, i in paper.instruments.items()},
    )
    dec = decoder(CORE_TO_GATEWAY).decode
    enc = encoder().encode
    spin_s = ctx.cfg.shm.spin_us / 1e6
    gc.collect()
    gc.freeze()
    ctx.set_state(ProcState.READY)
    next_beat = 0
    while not stop:
        pushed = False
        while (view := orders.peek()) is not None:
            t_in = time.monotonic_ns()
            msg = dec(view)
            if not isinstance(msg, OrderRequest):
                orders.advance()  # paper market orders are filled at once: nothing rests to cancel
                continue
            data = enc(venue.execute(msg, t_in))
            while not reports.try_push(data):  # core always drains reports; wait for room, never drop
                core_bell.ring()
                wait_any([], bell, 0.001, 0)
            pushed = True
            orders.advance()
        if pushed:
            core_bell.ring()
        now = time.monotonic_ns()
        if now >= next_beat:
            ctx.beat()
            next_beat = now + 100_000_000
        wait_any([orders], bell, 0.1, spin_s)
    ctx.set_state(ProcState.STOPPED)
    ctx.close()


if __name__ == "__main__":
    main()
