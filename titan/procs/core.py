"""`core`: the single writer of trading state.

One thread, no locks: pop command and report rings, run the sans-I/O :class:`Engine`, push
replies, orders and events. A message is consumed (its ring cursor advanced) only after what it
caused has been pushed, so a core killed mid-message sees that message again when restarted.
Core never blocks on a full output ring: it keeps the overflow in a local queue and stops
taking new commands (reports keep flowing, so a gateway and core can never deadlock).
"""

from __future__ import annotations

import gc
import signal
import time
from collections import deque
from decimal import Decimal
from typing import Any

from titan.engine.engine import Engine, EngineSettings, Instrument, Quote
from titan.messages import (
    CORE_TO_BRIDGE,
    GATEWAY_TO_CORE,
    INGRESS_TO_CORE,
    Event,
    OrderRequest,
    Reply,
    VenueReport,
    decoder,
    encoder,
)
from titan.procs.common import BRIDGE, CORE, INGRESS, ChildContext, gateway_name
from titan.shm.board import ProcState
from titan.shm.doorbell import Doorbell, wait_any
from titan.shm.ring import Ring
from titan.shm.ticker import TickerIndex, TickerTable, units_to_price

_ = CORE_TO_BRIDGE  # the event ring's union, documented in titan.messages


class TableQuotes:
    """Engine quotes read from the shared-memory ticker table."""

    def __init__(self, table: TickerTable, index: TickerIndex) -> None:
        self.table = table
        self.index = index

    def get(self, venue: str, symbol: str) -> Quote | None:
        row = self.index.row(venue, symbol)
        if row is None:
            return None
        snap = self.table.read(row)
        if snap is None or snap.bid <= 0 or snap.ask <= 0:
            return None
        return Quote(
            units_to_price(snap.bid), units_to_price(snap.ask), snap.exchange_ts_ms, snap.recv_mono_ns
        )


class OutRing:
    """A producer end with a local overflow queue: never drops, never blocks core."""

    def __init__(self, ring: Ring, bell: Doorbell) -> None:
        self.ring = ring
        self.bell = bell
        self.backlog: deque[bytes] = deque()
        self.dirty = False

    def put(self, data: bytes) -> None:
        if self.backlog or not self.ring.try_push(data):
            self.backlog.append(data)
        else:
            self.dirty = True

    def flush(self) -> None:
        while self.backlog and self.ring.try_push(self.backlog[0]):
            self.backlog.popleft()
            self.dirty = True
        if self.dirty:
            self.dirty = False
            self.bell.ring()


class RingOutbox:
    def __init__(self, ctx: ChildContext) -> None:
        self.enc = encoder().encode
        self.replies = OutRing(ctx.ring_out(INGRESS), ctx.bell(INGRESS))
        self.events = OutRing(ctx.ring_out(BRIDGE), ctx.bell(BRIDGE))
        self.orders = {
            v: OutRing(ctx.ring_out(gateway_name(v)), ctx.bell(gateway_name(v))) for v in ctx.layout.venues
        }
        self.all = [self.replies, self.events, *self.orders.values()]

    def reply(self, reply: Reply) -> None:
        reply.stages.t_core_out = time.monotonic_ns()
        self.replies.put(self.enc(reply))

    def order(self, venue: str, order: OrderRequest) -> None:
        self.orders[venue].put(self.enc(order))

    def event(self, event: Event) -> None:
        self.events.put(self.enc(event))

    def flush(self) -> bool:
        """Push what is queued; True when nothing is left waiting."""
        for o in self.all:
            o.flush()
        return not any(o.backlog for o in self.all)


def settings_from(ctx: ChildContext) -> EngineSettings:
    cfg = ctx.cfg
    paper = cfg.venues.paper
    instruments = {
        sym: Instrument(
            Decimal(i.tick_size), Decimal(i.lot_step), Decimal(i.min_qty), Decimal(i.min_notional)
        )
        for sym, i in paper.instruments.items()
    }
    return EngineSettings(
        venue="paper",
        price_source=paper.price_source,
        instruments=instruments,
        prepare_ttl_ms=cfg.fastpath.prepare_ttl_ms,
        confirm_reply_deadline_ms=cfg.fastpath.confirm_reply_deadline_ms,
        sizing=cfg.fastpath.sizing,
        fixed_notional=Decimal(cfg.fastpath.fixed_notional_usd),
        equity=Decimal(paper.initial_balance),
        armed=cfg.execution.armed_at_start,
        shadow_fills=cfg.shadow_fills.enabled,
        producer=cfg.nats.producer,
    )


BATCH = 64


def main() -> None:
    ctx = ChildContext.from_env(CORE)
    log = ctx.log
    stop = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    commands = [ctx.ring_in(INGRESS)]
    reports = [ctx.ring_in(gateway_name(v)) for v in ctx.layout.venues]
    all_in = commands + reports
    bell = ctx.bell()
    table, index = ctx.ticker()
    out = RingOutbox(ctx)
    engine = Engine(settings_from(ctx), TableQuotes(table, index), out)
    dec_cmd = decoder(INGRESS_TO_CORE).decode
    dec_rep = decoder(GATEWAY_TO_CORE).decode
    spin_s = ctx.cfg.shm.spin_us / 1e6

    # Everything allocated so far lives for the whole process: keep it out of the collector's way.
    gc.collect()
    gc.freeze()
    ctx.set_state(ProcState.READY)
    log.info("core ready (armed=%s)", engine.s.armed)
    next_beat = 0
    mono = time.monotonic_ns
    wall = time.time_ns
    while not stop:
        busy = False
        for ring in reports:
            for _ in range(BATCH):
                view = ring.peek()
                if view is None:
                    break
                now = mono()
                msg = dec_rep(view)
                if isinstance(msg, VenueReport):
                    engine.on_report(msg, now, wall() // 1_000_000)
                out.flush()
                ring.advance()
                busy = True
        if out.flush():  # take new commands only while nothing is stuck on the way out
            for ring in commands:
                for _ in range(BATCH):
                    view = ring.peek()
                    if view is None:
                        break
                    now = mono()
                    engine.on_command(dec_cmd(view), now, wall() // 1_000_000)
                    out.flush()
                    ring.advance()
                    busy = True
        now = mono()
        deadline = engine.next_deadline_ns()
        if (deadline is not None and now >= deadline) or now >= next_beat:
            engine.on_timer(now, wall() // 1_000_000)
            out.flush()
        if now >= next_beat:
            ctx.beat()
            next_beat = now + 100_000_000
        if busy:
            continue
        timeout_ns = next_beat - now
        if deadline is not None:
            timeout_ns = min(timeout_ns, deadline - now)
        if any(o.backlog for o in out.all):
            timeout_ns = min(timeout_ns, 200_000)  # a consumer is behind: retry soon
        wait_any(all_in, bell, max(timeout_ns, 0) / 1e9, spin_s)
    ctx.set_state(ProcState.STOPPED)
    log.info("core stopped")
    ctx.close()


if __name__ == "__main__":
    main()
