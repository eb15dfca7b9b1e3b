"""`marketdata`: the only writer of the shared-memory ticker table.

``--market sim`` (config ``marketdata.mode = "sim"``) is a real mode of the product: a seeded
random walk per symbol, in whole ticks, with a spread, written at ``marketdata.sim_rate_hz``
updates per second per symbol. It lets the engine trade on paper with no venue at all.

``--market venues`` runs the public-stream connectors of ``titan.marketdata`` (Bybit tickers,
Binance bookTicker, MEXC push.ticker; URLs from ``venues.<v>.ws_public_url``, the simulator's by
default) and writes every merged ticker with its exchange and receive times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from titan.config import Config
from titan.marketdata.connector import run_connectors
from titan.marketdata.settings import MarketDataSettings, VenueFeedSettings
from titan.procs.common import MARKETDATA, ChildContext
from titan.shm.board import ProcState
from titan.shm.ticker import TickerIndex, TickerTable, price_to_units, size_to_units


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


def run_sim(ctx: ChildContext, table: TickerTable, index: TickerIndex, stop: list[bool]) -> None:
    walk = RandomWalk(ctx.cfg, index)
    period_ns = int(1e9 / ctx.cfg.marketdata.sim_rate_hz)
    next_tick = time.monotonic_ns()
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

    def __init__(self, ctx: ChildContext, table: TickerTable, index: TickerIndex) -> None:
        self.ctx = ctx
        self.table = table
        self.index = index
        self.last_beat = 0

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


def run_venues(ctx: ChildContext, table: TickerTable, index: TickerIndex) -> None:
    sink = TableSink(ctx, table, index)

    def alarm(venue: str, symbol: str, kind: str) -> None:
        ctx.log.warning("market data %s for %s on %s", kind, symbol, venue)

    async def amain() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ctx.set_state(ProcState.READY)
        ctx.log.info("venue market data: %s for %s", ctx.cfg.marketdata.venues, ctx.cfg.marketdata.symbols)
        task = asyncio.create_task(run_connectors(feed_settings(ctx.cfg), sink, stop, on_alarm=alarm))
        while not stop.is_set():
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
    if mode == "sim":
        run_sim(ctx, table, index, stop)
    else:
        run_venues(ctx, table, index)
    ctx.set_state(ProcState.STOPPED)
    ctx.close()


if __name__ == "__main__":
    main()
