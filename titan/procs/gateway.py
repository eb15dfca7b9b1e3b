"""`gateway.<venue>`: turns orders from `core` into venue outcomes and reports them back.

``python -m titan.procs.gateway --venue bybit|binance|mexc|paper``.

* ``paper`` (venues.md §7) is a synchronous loop over :class:`titan.venues.paper.matching.PaperBook`.
* The real venues run an asyncio loop: the order ring is watched through the doorbell's file
  descriptor (``wait_any_async``: drain, prepare_sleep, re-check, sleep — no spinning), every message
  becomes a task of :class:`titan.venues.gateway.service.GatewayService`, and reports go back on the
  report ring (kept in order in a local backlog while the ring is full: never dropped).

Health cells: every gateway counts what it tells core in its board row (:data:`titan.health.GATEWAY_SLOTS`,
through :class:`GatewayHealth`: local increments, copied to the board on the heartbeat tick), so
``/health`` and ``/metrics`` show each venue's session, private stream, rate-limit/cooldown end,
reconciliation and order outcomes.

A message is taken off the order ring (the cursor advanced) before its request is sent: a
gateway killed in between loses that order, never sends it twice. This is deliberate (R47, R2): a
restarted gateway cannot tell an order it took but never sent from one whose request was on the wire
(venues dedupe client ids, so re-sending the latter is answered "duplicate", not with the order's
state), many requests are in flight at once (one ring cursor cannot mark each sent), and an order
re-sent seconds later would trade on prices core never checked. Core settles such a leg instead: it
reconciles a venue whose restarted gateway reports its private stream "UP" (and periodically), and
lists each non-terminal leg with its symbol; the gateway queries it there and, as the venue does not
know it, the not-found probes (``reconcile.not_found_probes``) end it REJECTED/NOT_FOUND, never filled.

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
from titan.health import (
    GATEWAY_HISTOGRAMS,
    GATEWAY_SLOTS,
    HIST_BASE,
    HIST_WORDS,
    CounterWriter,
    LatencyRecorder,
)
from titan.messages import (
    CANCELED,
    CORE_TO_GATEWAY,
    DENIED,
    EXPIRED,
    FAILED,
    FILL,
    FILL_CONFLICT,
    REJECTED,
    UNKNOWN,
    CancelRequest,
    OrderRequest,
    ReconcileRequest,
    ReconcileSnapshot,
    VenueReport,
    VenueStatus,
    decoder,
    encoder,
)
from titan.procs.common import CORE, ChildContext, gateway_name
from titan.shm.board import ProcState
from titan.shm.doorbell import wait_any, wait_any_async
from titan.shm.ticker import TickerIndex, TickerTable, units_to_price
from titan.venues.gateway.buckets import SharedLimiter, bucket_segment_name
from titan.venues.gateway.driver import VenueDriver
from titan.venues.gateway.service import GatewayMessage, GatewayService
from titan.venues.paper.matching import PaperBook, PaperModel, Quote, QuoteSource
from titan.venues.paper.store import FILE_NAME as PAPER_BOOK_FILE
from titan.venues.paper.store import PaperStore

REAL_VENUES = ("bybit", "binance", "mexc")
HEARTBEAT_NS = 100_000_000
LOCAL_LIMIT_MS = 1_000  # a token-bucket denial shows the venue as rate-limited for this long

_OUTCOME_CELL = {
    REJECTED: GATEWAY_SLOTS["rejected"],
    DENIED: GATEWAY_SLOTS["rejected"],  # not sent: the gateway's own rate limit / cooldown
    FAILED: GATEWAY_SLOTS["rejected"],  # not sent: session down, unknown symbol, invalid order
    UNKNOWN: GATEWAY_SLOTS["unknown"],
    CANCELED: GATEWAY_SLOTS["canceled"],
    EXPIRED: GATEWAY_SLOTS["canceled"],
    FILL_CONFLICT: GATEWAY_SLOTS["conflicting_fills"],  # a conflicting duplicate dropped (R5)
}
AWAITING_MAX = 100_000  # orders awaiting their first answer, remembered for the venue latency


class GatewayHealth:
    """This gateway's :data:`GATEWAY_SLOTS` cells, derived from the messages it exchanges with core.

    ``orders_sent`` counts orders taken from core; ``filled`` orders whose last fill left nothing;
    ``rejected`` venue rejections plus orders the gateway did not send (DENIED/FAILED); ``unknown``
    UNKNOWN outcomes (each resolved later by query); ``canceled`` CANCELED/EXPIRED. The ``venue``
    histogram takes one sample per order: gateway in → its first answer (ACK, FILL, REJECTED, …).
    Counting is local (a list increment on the report path); :meth:`flush` copies changed cells to
    the board.
    """

    def __init__(self, writer: CounterWriter) -> None:
        self.writer = writer
        self.cells = list(writer.values[: len(GATEWAY_SLOTS)])  # counters continue after a restart
        # A board made with fewer cells (a test rig's default) has no room for histograms: count only.
        has_room = len(writer.values) >= HIST_BASE + HIST_WORDS * len(GATEWAY_HISTOGRAMS)
        self.latency = LatencyRecorder(writer, GATEWAY_HISTOGRAMS) if has_room else None
        self.reconciles = 0
        self.awaiting: dict[str, None] = {}  # coids sent, first answer not yet seen (insertion order)
        for gauge in ("session_up", "private_stream_up", "limited_until_ms", "reconciling"):
            self.cells[GATEWAY_SLOTS[gauge]] = 0

    def order_in(self, msg: OrderRequest | CancelRequest | ReconcileRequest) -> None:
        if isinstance(msg, OrderRequest):
            self.cells[GATEWAY_SLOTS["orders_sent"]] += 1
            self.awaiting[msg.coid] = None
            if len(self.awaiting) > AWAITING_MAX:  # an order never answered must not grow memory
                del self.awaiting[next(iter(self.awaiting))]
        elif isinstance(msg, ReconcileRequest):
            self.reconciles += 1
            self.cells[GATEWAY_SLOTS["reconciling"]] = 1

    def session(self, up: bool, private_stream_up: bool) -> None:
        self.cells[GATEWAY_SLOTS["session_up"]] = int(up)
        self.cells[GATEWAY_SLOTS["private_stream_up"]] = int(private_stream_up)

    def report(self, msg: VenueReport | ReconcileSnapshot | VenueStatus, now_ms: int) -> None:
        cells = self.cells
        if isinstance(msg, VenueReport):
            kind = msg.kind
            if kind == FILL:
                if msg.coid and msg.leaves_qty and Decimal(msg.leaves_qty) == 0:
                    cells[GATEWAY_SLOTS["filled"]] += 1
            elif (cell := _OUTCOME_CELL.get(kind)) is not None:
                cells[cell] += 1
                if kind == DENIED and msg.reason_code == "RATE_LIMITED":
                    limited = GATEWAY_SLOTS["limited_until_ms"]
                    cells[limited] = max(cells[limited], now_ms + LOCAL_LIMIT_MS)
            if msg.coid in self.awaiting:  # this order's first answer: one venue round-trip sample
                del self.awaiting[msg.coid]
                if self.latency is not None and msg.t_gw_in and msg.t_gw_out > msg.t_gw_in:
                    self.latency.observe(0, (msg.t_gw_out - msg.t_gw_in) // 1000)
        elif isinstance(msg, VenueStatus):
            self.session(msg.session == "UP", msg.private_stream != "DOWN")
            cells[GATEWAY_SLOTS["limited_until_ms"]] = msg.limited_until_ms
        else:
            self.reconciles = max(0, self.reconciles - 1)
            cells[GATEWAY_SLOTS["reconciling"]] = int(self.reconciles > 0)

    def flush(self) -> None:
        """Copy changed cells to the board (on the heartbeat tick and at exit)."""
        for cell, value in enumerate(self.cells):
            self.writer.set(cell, value)
        if self.latency is not None:
            self.latency.flush()


def venue_section(cfg: Config, venue: str) -> VenueSection:
    section: VenueSection = getattr(cfg.venues, venue)
    return section


def make_driver(cfg: Config, venue: str) -> VenueDriver:
    section = venue_section(cfg, venue)
    if venue == "bybit":
        from titan.venues.bybit.driver import BybitDriver

        return BybitDriver(section, dcp_window_s=section.dcp_window_s or None)
    if venue == "binance":
        from titan.venues.binance.driver import BinanceDriver

        return BinanceDriver(section, countdown_ms=section.countdown_ms)
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
    health = GatewayHealth(CounterWriter(ctx.board, ctx.name))
    health.flush()

    def flush() -> None:
        pushed = False
        while outbox and reports.try_push(outbox[0]):
            outbox.popleft()
            pushed = True
        if pushed or outbox:
            core_bell.ring()

    def emit(msg: GatewayMessage) -> None:
        outbox.append(enc(msg))
        health.report(msg, time.time_ns() // 1_000_000)
        flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    limiter = SharedLimiter.open(bucket_segment_name(ctx.layout.prefix, venue), venue, time.monotonic_ns())
    service = GatewayService(make_driver(ctx.cfg, venue), limiter, emit, ctx.log, reconcile=ctx.cfg.reconcile)
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
                health.order_in(msg)
                service.submit(msg, t_in)
            flush()
            now = time.monotonic_ns()
            if now >= next_beat:
                ctx.beat()
                health.flush()
                next_beat = now + HEARTBEAT_NS
    finally:
        starter.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starter
        await service.stop()
        flush()
        limiter.close(unlink=True)
        health.session(False, False)
        health.flush()


def paper_model(cfg: Config) -> PaperModel:
    paper = cfg.venues.paper
    return PaperModel(
        taker_fee=Decimal(paper.taker_fee),
        maker_fee=Decimal(paper.maker_fee),
        slippage_bps=Decimal(paper.slippage_bps),
        ack_latency_ns=int(paper.ack_latency_ms * 1_000_000),
        fill_latency_ns=int(paper.fill_latency_ms * 1_000_000),
        ticks={s: Decimal(i.tick_size) for s, i in paper.instruments.items()},
    )


def ticker_quotes(table: TickerTable, index: TickerIndex, price_source: str) -> QuoteSource:
    """The price source's top of book from the shared-memory ticker table."""
    rows = {sym: index.row(price_source, sym) for _, sym in index.pairs()}
    last: dict[int, tuple[int, int, Quote]] = {}  # row → the last (bid, ask) units and their Quote

    def quote(symbol: str) -> Quote | None:
        row = rows.get(symbol)
        snap = table.read(row) if row is not None else None
        if snap is None:
            return None
        assert row is not None
        kept = last.get(row)
        if kept is not None and kept[0] == snap.bid and kept[1] == snap.ask:
            return kept[2]  # an unchanged top of book: no Decimal conversions
        made = Quote(units_to_price(snap.bid), units_to_price(snap.ask))
        last[row] = (snap.bid, snap.ask, made)
        return made

    return quote


def run_paper(ctx: ChildContext) -> None:
    """The paper gateway: a synchronous loop (no asyncio) over a :class:`PaperBook`.

    While orders rest it wakes at least every ``venues.paper.poll_ms`` to match them against the
    ticker table (waiting on the doorbell with that timeout: no busy spin); otherwise it sleeps on
    the doorbell. Orders it holds are saved in ``<run_dir>/paper-book.json`` before their ACK goes
    out; a restarted gateway reports each of them EXPIRED (``PAPER_RESTART``).
    """
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
    book = PaperBook(paper_model(ctx.cfg), ticker_quotes(table, index, paper.price_source))
    store = PaperStore(ctx.cfg.run_dir() / PAPER_BOOK_FILE)
    dec = decoder(CORE_TO_GATEWAY).decode
    enc = encoder().encode
    spin_s = ctx.cfg.shm.spin_us / 1e6
    poll_s = paper.poll_ms / 1000
    health = GatewayHealth(CounterWriter(ctx.board, ctx.name))
    pending: list[VenueReport | ReconcileSnapshot] = [*book.restore(store.load(), time.monotonic_ns())]
    if pending:
        ctx.log.warning("paper: %d order(s) held by the previous gateway reported EXPIRED", len(pending))

    def push_all() -> None:
        now_ms = time.time_ns() // 1_000_000 if pending else 0
        for msg in pending:
            health.report(msg, now_ms)
            data = enc(msg)
            while not reports.try_push(data):  # core always drains reports; wait for room, never drop
                core_bell.ring()
                wait_any([], bell, 0.001, 0)
        if pending:
            core_bell.ring()
        pending.clear()

    gc.collect()
    gc.freeze()
    health.session(True, True)  # the paper book is in this process: its "session" is up while it runs
    health.flush()
    ctx.set_state(ProcState.READY)
    next_beat = 0
    while not stop:
        now = time.monotonic_ns()
        while (view := orders.peek()) is not None:
            msg: OrderRequest | CancelRequest | ReconcileRequest = dec(view)
            health.order_in(msg)
            if isinstance(msg, OrderRequest):
                pending += book.submit(msg, now)
            elif isinstance(msg, CancelRequest):
                pending += book.cancel(msg, now)
            else:
                answers, snap = book.reconcile(msg, now)
                pending += answers
                pending.append(snap)
            orders.advance()
            now = time.monotonic_ns()
        if book.busy:
            pending += book.poll(now)
        if book.changed:  # saved before an ACK goes out: an acknowledged order is never forgotten
            store.save(book.state())
            book.changed = False
        push_all()
        if now >= next_beat:
            ctx.beat()
            health.flush()
            next_beat = now + HEARTBEAT_NS
        timeout = 0.1
        if book.busy:
            timeout = poll_s
            due = book.next_due_ns()
            if due is not None:
                timeout = min(timeout, max(0.0, (due - time.monotonic_ns()) / 1e9))
        wait_any([orders], bell, timeout, spin_s)
    health.session(False, False)
    health.flush()


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
