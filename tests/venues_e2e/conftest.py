"""The whole engine (real processes) on the simulated Bybit, Binance and MEXC venues.

Two set-ups: the simulator under the supervisor (``engine.start_sim``), and the simulator kept in
the test process (a thread with its own event loop) so it outlives an engine restart and the test
can read its positions directly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from titan.client import FastPathClient
from titan.harness import SECRET
from titan.procs.supervisor import SIM_WS_PATHS
from titan.venues.sim import SimConfig, SimServer

T = TypeVar("T")
VENUES = ("bybit", "binance", "mexc")
API_KEY = "venues-e2e-api-key"
ROUTING = """
[routing]
weights = { bybit = 1, binance = 1, mexc = 1 }
"""
# Marketdata from the three venues; paper off (its default price source is the local walk).
BASE_ENV = {
    "TITAN__MARKETDATA__MODE": '"venues"',
    "TITAN__MARKETDATA__SYMBOLS": '["BTC/USDT", "ETH/USDT"]',
    "TITAN__VENUES__PAPER__ENABLED": "false",
    "TITAN__HTTP__API_KEY": f'"{API_KEY}"',
    **{f"TITAN__VENUES__{v.upper()}__ENABLED": "true" for v in VENUES},
}


class ThreadSim:
    """A :class:`SimServer` on its own event loop in a thread: it outlives engine restarts."""

    def __init__(self, cfg: SimConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim", daemon=True)
        self.thread.start()
        self.server = SimServer(cfg)
        self.call(self.server.start())

    def call(self, coro: Awaitable[T], timeout: float = 10.0) -> T:
        async def run() -> T:
            return await coro

        fut: Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return fut.result(timeout)

    def read(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the simulator's loop (no race with its handlers)."""

        async def run() -> T:
            return fn()

        return self.call(run())

    def position(self, venue: str, symbol: str) -> Decimal:
        sim = self.server.venues[venue]
        account = next(a for a in self.server.cfg.accounts if a.venue == venue)
        return self.read(lambda: sim.engine.position(account.api_key, symbol).qty)

    def open_orders(self, venue: str) -> int:
        sim = self.server.venues[venue]
        account = next(a for a in self.server.cfg.accounts if a.venue == venue)
        return self.read(lambda: len(sim.engine.open_orders(account.api_key)))

    def env(self) -> dict[str, str]:
        """Engine env pointing every venue at this simulator with its account keys."""
        env: dict[str, str] = {}
        for venue in VENUES:
            account = next(a for a in self.server.cfg.accounts if a.venue == venue)
            pub, priv = SIM_WS_PATHS[venue]
            key = f"TITAN__VENUES__{venue.upper()}__"
            env[key + "REST_URL"] = f'"{self.server.urls[venue]}"'
            env[key + "WS_PUBLIC_URL"] = f'"{self.server.ws_urls[venue]}{pub}"'
            env[key + "WS_PRIVATE_URL"] = f'"{self.server.ws_urls[venue]}{priv}"'
            env[key + "API_KEY"] = f'"{account.api_key}"'
            env[key + "API_SECRET"] = f'"{account.secret}"'
        return env

    def close(self) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def thread_sim() -> Iterator[ThreadSim]:
    sim = ThreadSim(SimConfig(seed=11))
    try:
        yield sim
    finally:
        sim.close()


def positions(http_port: int) -> dict[str, Any]:
    import json
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/positions", headers={"x-api-key": API_KEY})
    with urllib.request.urlopen(req, timeout=5) as r:
        body: dict[str, Any] = json.loads(r.read())
    return body


async def send_intent(socket_path: str, sid: str, velocity: float | None, low: float, high: float) -> Any:
    """A LONG BTC/USDT intent: PREPARE (retried while quotes are not yet fresh), then CONFIRM."""
    async with FastPathClient(socket_path, SECRET, timeout=10.0) as client:
        prep: Any = None
        for attempt in range(200):
            name = f"{sid}-{attempt}"
            if velocity is None:
                prep = await client.prepare(name, "BTC/USDT", "LONG", low, high, position_size=3000)
            else:
                prep = await client.prepare(
                    name, "BTC/USDT", "LONG", low, high, position_size=3000, velocity=velocity
                )
            if getattr(prep, "prepared", False):
                return await client.confirm(name)
            await asyncio.sleep(0.05)
        raise AssertionError(f"never prepared: {prep}")


async def send_resting_intent(socket_path: str, sid: str, attempts: int = 20) -> tuple[Any, list[Any]]:
    """A LONG BTC/USDT intent far below the market, meant to rest as a post-only order: (its reply,
    the replies of earlier tries the engine placed at market instead). Without a velocity the order
    decision still takes the market when the book's top is lopsided toward the intent's side
    (risk/decision.py, IMBALANCE_SNIPE: bid size > 4x ask size for a buy); the simulator's touch sizes
    are random, so that happens to some intents. Those fill; try again with a new signal id."""
    sniped: list[Any] = []
    for attempt in range(attempts):
        reply = await send_intent(socket_path, f"{sid}-try{attempt}", None, 60000, 60100)
        if getattr(reply, "status", None) == "ACKED":
            return reply, sniped
        assert getattr(reply, "executed", False), reply
        sniped.append(reply)
        await asyncio.sleep(0.25)  # a book top stays until the next market-data update: pace the tries
    raise AssertionError(f"no resting order in {attempts} tries: {sniped}")
