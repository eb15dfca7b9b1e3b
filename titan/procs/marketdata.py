"""`marketdata`: the only writer of the shared-memory ticker table.

``--market sim`` (config ``marketdata.mode = "sim"``) is a real mode of the product: a seeded
random walk per symbol, in whole ticks, with a spread, written at ``marketdata.sim_rate_hz``
updates per second per symbol. It lets the engine trade on paper with no venue at all.

``--market venues`` runs the public-stream connectors of ``titan.marketdata`` (Bybit tickers,
Binance bookTicker, MEXC push.ticker; URLs from ``venues.<v>.ws_public_url``, the simulator's by
default) and writes every merged ticker with its exchange and receive times.

Both modes publish the process's health on its status-board row (``titan.health.MARKETDATA_SLOTS``:
``connected.<venue>`` gauges and ``updates_total``, the number of ticker-table writes) and the extra
per-venue counters of :data:`MARKETDATA_EXTRA_SLOTS` (connections, watchdog reconnects, tickers), so
``/health`` shows market-data health and tests can see a reconnect happen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from titan.config import Config
from titan.health import MARKETDATA_SLOTS, MARKETDATA_VENUES, SCALARS, CounterWriter
from titan.marketdata.connector import FeedConnector, build_connectors, run_connectors
from titan.marketdata.settings import MarketDataSettings, VenueFeedSettings
from titan.procs.common import MARKETDATA, ChildContext
from titan.shm.board import ProcState
from titan.shm.ticker import TickerIndex, TickerTable, price_to_units, size_to_units

# Per-venue counters beside MARKETDATA_SLOTS on the marketdata row (cells 12.. are free there):
# ``connects.<v>`` WebSocket sessions opened, ``silence_reconnects.<v>`` sessions the receive-silence
# watchdog ended, ``tickers.<v>`` tickers decoded from that venue's feed, ``first_data_alarms.<v>``
# subscriptions without data ``marketdata.first_data_ms`` after subscribing (R15).
MARKETDATA_EXTRA_SLOTS: Final[dict[str, int]] = {
    f"{name}.{v}": base + k
    for name, base in (
        ("connects", 12),
        ("silence_reconnects", 16),
        ("tickers", 20),
        ("first_data_alarms", 24),
    )
    for k, v in enumerate(MARKETDATA_VENUES)
}
MARKETDATA_CELLS: Final[dict[str, int]] = {**MARKETDATA_SLOTS, **MARKETDATA_EXTRA_SLOTS}
assert len(set(MARKETDATA_CELLS.values())) == len(MARKETDATA_CELLS)
assert max(MARKETDATA_CELLS.values()) < SCALARS


class BoardPublisher:
    """The marketdata row of the status board, by cell name (:data:`MARKETDATA_CELLS`).

    ``count`` takes a process-local running total and adds only what is new since the last call, so
    counters keep growing across a restart of the process (the board keeps the row).
    """

    def __init__(self, writer: CounterWriter) -> None:
        self.writer = writer
        self._published: dict[int, int] = {}

    def gauge(self, name: str, value: int) -> None:
        self.writer.set(MARKETDATA_CELLS[name], value)

    def count(self, name: str, running_total: int) -> None:
        cell = MARKETDATA_CELLS[name]
        delta = running_total - self._published.get(cell, 0)
        if delta > 0:
            self.writer.add(cell, delta)
            self._published[cell] = running_total

    def disconnected(self) -> None:
        for venue in MARKETDATA_VENUES:
            self.gauge(f"connected.{venue}", 0)


def publish_feeds(board: BoardPublisher, connectors: Sequence[FeedConnector], table_writes: int) -> None:
    """Copy the connectors' state and counts to the board (called on the heartbeat tick)."""
    by_venue = {c.feed.venue: c for c in connectors}
    for venue in MARKETDATA_VENUES:
        c = by_venue.get(venue)
        board.gauge(f"connected.{venue}", int(c is not None and c.connected.is_set()))
        if c is not None:
            board.count(f"connects.{venue}", c.stats.connects)
            board.count(f"silence_reconnects.{venue}", c.stats.silence_reconnects)
            board.count(f"tickers.{venue}", c.stats.tickers)
            board.count(f"first_data_alarms.{venue}", c.stats.first_data_alarms)
    board.count("updates_total", table_writes)


@dataclass
class WalkState:
    row: int
    tick: Decimal
    mid_ticks: int
    half_spread_ticks: int


class RandomWalk:
    """Seeded random walk of every configured symbol, in integer ticks (exact, reproducible)."""

    def __init__(self, cfg: Config, index: TickerIndex) -> None:
        md = cfg.marketdata
        self.rng = random.Random(md.sim_seed)
        self.vol = float(Decimal(md.sim_volatility_bps) / Decimal(10_000))
        self.states: list[WalkState] = []
        spread = Decimal(md.sim_spread_bps) / Decimal(10_000)
        for sym in md.symbols:
            row = index.row(md.sim_venue, sym)
            assert row is not None  # the index is built from the same config
            inst = cfg.venues.paper.instruments.get(sym)
            tick = Decimal(inst.tick_size) if inst else Decimal("0.01")
            mid = Decimal(md.sim_prices[sym])
            mid_ticks = int((mid / tick).to_integral_value(ROUND_HALF_EVEN))
            half = max(1, int((mid * spread / 2 / tick).to_integral_value(ROUND_HALF_EVEN)))
            self.states.append(WalkState(row, tick, mid_ticks, half))

    def step(self, st: WalkState) -> tuple[Decimal, Decimal, Decimal]:
        move = round(self.rng.gauss(0.0, self.vol) * st.mid_ticks)
        st.mid_ticks = max(st.half_spread_ticks + 1, st.mid_ticks + move)
        bid = (st.mid_ticks - st.half_spread_ticks) * st.tick
        ask = (st.mid_ticks + st.half_spread_ticks) * st.tick
        return bid, ask, st.mid_ticks * st.tick

    def size(self) -> Decimal:
        return Decimal(self.rng.randint(1, 5000)) / Decimal(100)


def run_sim(
    ctx: ChildContext, table: TickerTable, index: TickerIndex, stop: list[bool], board: BoardPublisher
) -> None:
    walk = RandomWalk(ctx.cfg, index)
    period_ns = int(1e9 / ctx.cfg.marketdata.sim_rate_hz)
    next_tick = time.monotonic_ns()
    writes = 0
    sim_venue = ctx.cfg.marketdata.sim_venue
    # The simulated source is "connected" while it runs (under its venue name when that is one of ours).
    connected_cell = f"connected.{sim_venue}" if sim_venue in MARKETDATA_VENUES else "connected.sim"
    board.gauge(connected_cell, 1)
    ctx.set_state(ProcState.READY)
    ctx.log.info(
        "simulated market data: %d symbols at %.0f Hz", len(walk.states), ctx.cfg.marketdata.sim_rate_hz
    )
    while not stop[0]:
        for st in walk.states:
            bid, ask, mid = walk.step(st)
            now_ns = time.monotonic_ns()
            wall_ms = time.time_ns() // 1_000_000
            table.write(
                st.row,
                bid=price_to_units(bid),
                bid_size=size_to_units(walk.size()),
                ask=price_to_units(ask),
                ask_size=size_to_units(walk.size()),
                last=price_to_units(mid),
                mark=price_to_units(mid),
                exchange_ts_ms=wall_ms,
                recv_mono_ns=now_ns,
                recv_wall_ms=wall_ms,
            )
        writes += len(walk.states)
        board.count("updates_total", writes)
        ctx.beat()
        next_tick += period_ns
        delay = next_tick - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)  # pacing the data source itself, not waiting for an event
        else:
            next_tick = time.monotonic_ns()  # fell behind (machine busy): do not burst to catch up


_PRICE_Q = Decimal(1).scaleb(-9)
_SIZE_Q = Decimal(1).scaleb(-6)


class TableSink:
    """Writes connector tickers into the shared-memory table (venue values rounded to the units)."""

    def __init__(self, table: TickerTable, index: TickerIndex) -> None:
        self.table = table
        self.index = index
        self.writes = 0  # ticker-table writes (published as updates_total on the heartbeat tick)

    @staticmethod
    def _p(d: Decimal | None) -> int:
        return price_to_units(d.quantize(_PRICE_Q, ROUND_HALF_EVEN)) if d is not None and d > 0 else 0

    @staticmethod
    def _s(d: Decimal | None) -> int:
        return size_to_units(d.quantize(_SIZE_Q, ROUND_HALF_EVEN)) if d is not None and d > 0 else 0

    def on_ticker(
        self,
        venue: str,
        symbol: str,
        bid: Decimal | None,
        bid_size: Decimal | None,
        ask: Decimal | None,
        ask_size: Decimal | None,
        last: Decimal | None,
        mark: Decimal | None,
        exchange_ts_ms: int,
        recv_mono_ns: int,
    ) -> None:
        row = self.index.row(venue, symbol)
        if row is None:
            return  # a symbol nobody trades
        self.table.write(
            row,
            bid=self._p(bid),
            bid_size=self._s(bid_size),
            ask=self._p(ask),
            ask_size=self._s(ask_size),
            last=self._p(last),
            mark=self._p(mark),
            exchange_ts_ms=exchange_ts_ms,
            recv_mono_ns=recv_mono_ns,
            recv_wall_ms=time.time_ns() // 1_000_000,
        )
        self.writes += 1


def feed_settings(cfg: Config) -> MarketDataSettings:
    """Connector settings from the engine config: each venue's public URL and the traded symbols."""
    md = cfg.marketdata
    symbols = list(md.symbols)

    def feed(venue: str, ws_url: str, ping_ms: int) -> VenueFeedSettings:
        if venue == "binance":
            # The connector appends the entry point (/public for bookTicker) to the host base.
            for suffix in ("/public", "/market"):
                ws_url = ws_url.removesuffix(suffix)
        return VenueFeedSettings(
            ws_url=ws_url, symbols=symbols, enabled=venue in md.venues, ping_interval_ms=ping_ms
        )

    v = cfg.venues
    return MarketDataSettings(
        bybit=feed("bybit", v.bybit.ws_public_url, 20_000),
        binance=feed("binance", v.binance.ws_public_url, 60_000),
        mexc=feed("mexc", v.mexc.ws_public_url, 15_000),
        silence_ms=md.silence_ms,
        first_data_ms=md.first_data_ms,
    )


def run_venues(ctx: ChildContext, table: TickerTable, index: TickerIndex, board: BoardPublisher) -> None:
    sink = TableSink(table, index)

    def alarm(venue: str, symbol: str, kind: str) -> None:
        ctx.log.warning("market data %s for %s on %s", kind, symbol, venue)

    async def amain() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ctx.set_state(ProcState.READY)
        ctx.log.info("venue market data: %s for %s", ctx.cfg.marketdata.venues, ctx.cfg.marketdata.symbols)
        settings = feed_settings(ctx.cfg)
        connectors = build_connectors(settings, sink, on_alarm=alarm)
        task = asyncio.create_task(run_connectors(settings, sink, stop, connectors=connectors))
        while not stop.is_set():
            publish_feeds(board, connectors, sink.writes)
            ctx.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        await task

    asyncio.run(amain())


def main() -> None:
    parser = argparse.ArgumentParser(prog="titan marketdata")
    parser.add_argument("--market", choices=["sim", "venues"], default=None)
    args = parser.parse_args()
    ctx = ChildContext.from_env(MARKETDATA)
    mode = args.market or ctx.cfg.marketdata.mode
    stop = [False]

    def _stop(signum: int, _frame: Any) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    table, index = ctx.ticker()
    board = BoardPublisher(CounterWriter(ctx.board, ctx.name))
    try:
        if mode == "sim":
            run_sim(ctx, table, index, stop, board)
        else:
            run_venues(ctx, table, index, board)
    finally:
        board.disconnected()
    ctx.set_state(ProcState.STOPPED)
    ctx.close()


if __name__ == "__main__":
    main()
