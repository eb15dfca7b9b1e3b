"""`gateway.<venue>`: turns orders from `core` into venue outcomes and reports them back.

``python -m titan.procs.gateway --venue bybit|binance|mexc|paper``.

* ``paper`` (venues.md §7) is a synchronous loop over :class:`titan.venues.paper.venue.PaperVenue`.
* The real venues run an asyncio loop: the order ring is watched through the doorbell's file
  descriptor (``wait_any_async``: drain, prepare_sleep, re-check, sleep — no spinning), every message
  becomes a task of :class:`titan.venues.gateway.service.GatewayService`, and reports go back on the
  report ring (kept in order in a local backlog while the ring is full: never dropped).

Account-wide token buckets live in a shared-memory segment named
:func:`titan.venues.gateway.buckets.bucket_segment_name` so a restarted gateway resumes them; the
gateway creates it when the supervisor did not, and unlinks it on a clean stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import time
from collections import deque
from decimal import Decimal
from typing import Any

from titan.config import Config, VenueSection
from titan.messages import (
    CORE_TO_GATEWAY,
    CancelRequest,
    OrderRequest,
    ReconcileRequest,
    decoder,
    encoder,
)
from titan.procs.common import CORE, ChildContext, gateway_name
from titan.shm.board import ProcState
from titan.shm.doorbell import wait_any, wait_any_async
from titan.venues.gateway.buckets import SharedLimiter, bucket_segment_name
from titan.venues.gateway.driver import VenueDriver
from titan.venues.gateway.service import GatewayMessage, GatewayService
from titan.venues.paper.venue import PaperVenue

REAL_VENUES = ("bybit", "binance", "mexc")
HEARTBEAT_NS = 100_000_000


def venue_section(cfg: Config, venue: str) -> VenueSection:
    section: VenueSection = getattr(cfg.venues, venue)
    return section


def make_driver(cfg: Config, venue: str) -> VenueDriver:
    section = venue_section(cfg, venue)
    if venue == "bybit":
        from titan.venues.bybit.driver import BybitDriver

        return BybitDriver(section)
    if venue == "binance":
        from titan.venues.binance.driver import BinanceDriver

        return BinanceDriver(section)
    if venue == "mexc":
        from titan.venues.mexc.driver import MexcDriver

        return MexcDriver(section)
    raise SystemExit(f"gateway: unknown venue {venue!r}")


async def run_venue(ctx: ChildContext, venue: str) -> None:
    orders = ctx.ring_in(CORE)
    reports = ctx.ring_out(CORE)
    core_bell = ctx.bell(CORE)
    bell = ctx.bell()
    dec = decoder(CORE_TO_GATEWAY).decode
    enc = encoder().encode
    outbox: deque[bytes] = deque()

    def flush() -> None:
        pushed = False
        while outbox and reports.try_push(outbox[0]):
            outbox.popleft()
            pushed = True
        if pushed or outbox:
            core_bell.ring()

    def emit(msg: GatewayMessage) -> None:
        outbox.append(enc(msg))
        flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    limiter = SharedLimiter.open(bucket_segment_name(ctx.layout.prefix, venue), venue, time.monotonic_ns())
    service = GatewayService(make_driver(ctx.cfg, venue), limiter, emit, ctx.log)
    starter = asyncio.create_task(service.start())
    ctx.set_state(ProcState.READY)  # orders before the venue session is up are answered FAILED
    next_beat = 0
    try:
        while not stop.is_set():
            await wait_any_async([orders], bell, 0.1 if not outbox else 0.002)
            while (view := orders.peek()) is not None:
                t_in = time.monotonic_ns()
                msg: OrderRequest | CancelRequest | ReconcileRequest = dec(view)
                orders.advance()
                service.submit(msg, t_in)
            flush()
            now = time.monotonic_ns()
            if now >= next_beat:
                ctx.beat()
                next_beat = now + HEARTBEAT_NS
    finally:
        starter.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starter
        await service.stop()
        flush()
        limiter.close(unlink=True)


def run_paper(ctx: ChildContext) -> None:
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
            next_beat = now + HEARTBEAT_NS
        wait_any([orders], bell, 0.1, spin_s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="titan gateway")
    parser.add_argument("--venue", required=True)
    args = parser.parse_args()
    name = gateway_name(args.venue)
    if args.venue not in (*REAL_VENUES, "paper"):
        raise SystemExit(f"{name}: venue {args.venue!r} has no gateway")
    ctx = ChildContext.from_env(name)
    try:
        if args.venue == "paper":
            run_paper(ctx)
        else:
            asyncio.run(run_venue(ctx, args.venue))
    finally:
        ctx.set_state(ProcState.STOPPED)
        ctx.close()


if __name__ == "__main__":
    main()
