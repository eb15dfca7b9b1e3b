"""The simulator server: one aiohttp app per venue on its own loopback port, driven by one price process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import Any

from aiohttp import web

from titan.venues.sim.base import VenueSim, make_quote
from titan.venues.sim.binance import BinanceSim
from titan.venues.sim.bybit import BybitSim
from titan.venues.sim.config import SimConfig
from titan.venues.sim.faults import Faults
from titan.venues.sim.mexc import MexcSim
from titan.venues.sim.prices import Quote, RandomWalk, TapeReplay

_VENUE_CLASSES: dict[str, Callable[[SimConfig], VenueSim]] = {
    "bybit": BybitSim,
    "binance": BinanceSim,
    "mexc": MexcSim,
}


class SimServer:
    """``async with SimServer(cfg) as sim:`` serves every venue in ``cfg.ports`` until the block ends.

    ``sim.urls[venue]`` is the ``http://127.0.0.1:<port>`` base URL (REST); ``sim.ws_urls[venue]`` the
    ``ws://`` one (append the venue's own WebSocket path).
    """

    def __init__(self, cfg: SimConfig | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.venues: dict[str, VenueSim] = {v: _VENUE_CLASSES[v](self.cfg) for v in self.cfg.ports}
        self.urls: dict[str, str] = {}
        self.ws_urls: dict[str, str] = {}
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._walk = RandomWalk(list(self.cfg.instruments), self.cfg.seed)
        self._tape = TapeReplay(self.cfg.tape) if self.cfg.price_source == "tape" and self.cfg.tape else None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            # Quotes exist before anyone connects, so orders can match from the first request.
            if self.cfg.price_source != "manual":
                await self._price_step(0)
            for venue, sim in self.venues.items():
                runner = web.AppRunner(sim.app, shutdown_timeout=0.5, handle_signals=False)
                await runner.setup()
                self._runners.append(runner)
                site = web.TCPSite(runner, self.cfg.host, self.cfg.ports[venue], reuse_address=True)
                await site.start()
                port = _bound_port(runner)
                self.urls[venue] = f"http://{self.cfg.host}:{port}"
                self.ws_urls[venue] = f"ws://{self.cfg.host}:{port}"
                for interval_ms, tick in sim.timers():
                    self._tasks.append(asyncio.create_task(self._timer(sim, interval_ms, tick)))
            if self.cfg.price_source != "manual":
                self._tasks.append(asyncio.create_task(self._price_loop()))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    def ports(self) -> dict[str, int]:
        return {venue: int(url.rsplit(":", 1)[1]) for venue, url in self.urls.items()}

    # ------------------------------------------------------------------ control from tests
    def faults(self, venue: str) -> Faults:
        return self.venues[venue].faults

    def set_faults(self, venue: str, **switches: Any) -> Faults:
        return self.venues[venue].set_faults(**switches)

    async def set_quote(
        self,
        symbol: str,
        bid: Decimal | str,
        ask: Decimal | str,
        bid_size: Decimal | str = "1",
        ask_size: Decimal | str = "1",
        last: Decimal | str | None = None,
    ) -> Quote:
        """Set the touch of ``symbol`` (canonical) on every venue; crossed resting orders fill."""
        fields: dict[str, Any] = {"bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size}
        if last is not None:
            fields["last"] = last
        quote = make_quote(fields, time.time_ns() // 1_000_000)
        for sim in self.venues.values():
            await sim.on_quotes({symbol: quote})
        return quote

    async def drop(self, venue: str, kind: str = "all", abrupt: bool = True) -> int:
        return await self.venues[venue].drop(kind, abrupt)

    # ------------------------------------------------------------------ loops
    async def _price_step(self, dt_ms: int) -> None:
        now = time.time_ns() // 1_000_000
        quotes = self._tape.step(now, dt_ms) if self._tape else self._walk.step(now)
        if quotes:
            for sim in self.venues.values():
                await sim.on_quotes(quotes)

    async def _price_loop(self) -> None:
        step = self.cfg.price_step_ms
        while True:
            await asyncio.sleep(step / 1000)
            await self._price_step(step)

    async def _timer(self, sim: VenueSim, interval_ms: int, tick: str) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            await sim.publish(dict(sim.engine.quotes), tick)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("simulator site has no TCP address")
