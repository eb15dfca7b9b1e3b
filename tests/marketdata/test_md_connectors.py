"""Connectors against the simulator (and a scripted server) over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from titan.marketdata import (
    FeedConnector,
    MarketDataSettings,
    VenueFeedSettings,
    build_connectors,
    run_connectors,
)
from titan.venues.sim import SimConfig, SimServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(40)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingSink:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

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
        self.rows.append(
            (venue, symbol, bid, bid_size, ask, ask_size, last, mark, exchange_ts_ms, recv_mono_ns)
        )

    def count(self, venue: str, symbol: str | None = None) -> int:
        return sum(1 for r in self.rows if r[0] == venue and (symbol is None or r[1] == symbol))


class Alarms:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, venue: str, symbol: str, kind: str) -> None:
        self.seen.append((venue, symbol, kind))


async def eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def settings_for(
    sim: SimServer, venues: tuple[str, ...] = ("bybit", "binance", "mexc"), **kw: Any
) -> MarketDataSettings:
    feed_kw: dict[str, Any] = {k: v for k, v in kw.items() if k in ("binance_mode", "ping_interval_ms")}
    top_kw = {k: v for k, v in kw.items() if k not in feed_kw}
    urls = {
        "bybit": sim.ws_urls["bybit"] + "/v5/public/linear",
        "binance": sim.ws_urls["binance"],
        "mexc": sim.ws_urls["mexc"] + "/edge",
    }
    feeds = {
        v: VenueFeedSettings(ws_url=urls[v], symbols=["BTCUSDT", "ETH_USDT"], enabled=v in venues, **feed_kw)
        for v in urls
    }
    return MarketDataSettings(
        bybit=feeds["bybit"],
        binance=feeds["binance"],
        mexc=feeds["mexc"],
        reconnect_min_ms=50,
        reconnect_max_ms=200,
        **top_kw,
    )


class Running:
    """run_connectors in the background, stopped and awaited on exit."""

    def __init__(self, cfg: MarketDataSettings, sink: RecordingSink, alarms: Alarms | None = None) -> None:
        self.connectors = build_connectors(cfg, sink, alarms)
        self.stop = asyncio.Event()
        self.task = asyncio.ensure_future(run_connectors(cfg, sink, self.stop, connectors=self.connectors))

    def by_venue(self, venue: str) -> FeedConnector:
        return next(c for c in self.connectors if c.feed.venue == venue)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=10)


@pytest.fixture
async def walking_sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimConfig(price_source="walk", seed=21)) as sim:
        yield sim


async def test_every_connector_writes_canonical_rows(walking_sim: SimServer) -> None:
    sink = RecordingSink()
    running = Running(settings_for(walking_sim), sink)
    try:
        await eventually(
            lambda: all(
                sink.count(v, s) for v in ("bybit", "binance", "mexc") for s in ("BTC/USDT", "ETH/USDT")
            )
        )
    finally:
        await running.close()
    assert running.task.done()
    by_venue = {v: [r for r in sink.rows if r[0] == v] for v in ("bybit", "binance", "mexc")}
    bybit, binance, mexc = by_venue["bybit"][-1], by_venue["binance"][-1], by_venue["mexc"][-1]
    assert all(isinstance(x, Decimal) for x in bybit[2:8])  # bid, sizes, ask, last, mark
    assert binance[6] is None and binance[7] is None and all(isinstance(x, Decimal) for x in binance[2:6])
    assert mexc[3] is None and mexc[5] is None and isinstance(mexc[2], Decimal)
    for rows in by_venue.values():
        assert all(r[4] > r[2] for r in rows)  # ask above bid
        assert all(r[8] > 1_600_000_000_000 for r in rows)  # exchange time in ms
        recv = [r[9] for r in rows]
        assert recv == sorted(recv)


async def test_binance_live_subscribe_mode(walking_sim: SimServer) -> None:
    sink = RecordingSink()
    running = Running(settings_for(walking_sim, ("binance",), binance_mode="subscribe"), sink)
    try:
        await eventually(
            lambda: sink.count("binance", "BTC/USDT") > 0 and sink.count("binance", "ETH/USDT") > 0
        )
    finally:
        await running.close()


async def test_frozen_feed_watchdog_reconnects_and_data_flows_again(walking_sim: SimServer) -> None:
    """R14: socket open, no data for one symbol → the silence watchdog reconnects; data resumes."""
    sink, alarms = RecordingSink(), Alarms()
    running = Running(settings_for(walking_sim, ("bybit",), silence_ms=400, first_data_ms=300), sink, alarms)
    connector = running.by_venue("bybit")
    try:
        await eventually(lambda: sink.count("bybit", "BTC/USDT") > 0)
        walking_sim.set_faults("bybit", frozen_symbols=["BTC/USDT"])
        await eventually(lambda: connector.stats.silence_reconnects >= 1)
        assert ("bybit", "BTC/USDT", "silence") in alarms.seen
        assert sink.count("bybit", "ETH/USDT") > 0
        walking_sim.set_faults("bybit", frozen_symbols=[])
        before = sink.count("bybit", "BTC/USDT")
        await eventually(lambda: sink.count("bybit", "BTC/USDT") > before)
        assert connector.stats.connects >= 2  # reconnected and resubscribed
    finally:
        await running.close()


async def test_dropped_connection_resubscribes(walking_sim: SimServer) -> None:
    sink = RecordingSink()
    running = Running(settings_for(walking_sim), sink)
    try:
        await eventually(lambda: all(sink.count(v) > 0 for v in ("bybit", "binance", "mexc")))
        for venue in ("bybit", "binance", "mexc"):
            assert await walking_sim.drop(venue, "public") == 1
        counts = {v: sink.count(v) for v in ("bybit", "binance", "mexc")}
        await eventually(lambda: all(running.by_venue(v).stats.connects == 2 for v in counts))
        await eventually(lambda: all(sink.count(v) > counts[v] for v in counts))
    finally:
        await running.close()


async def test_silent_subscription_raises_the_first_data_alarm(walking_sim: SimServer) -> None:
    """R15: the subscription is acknowledged, then nothing: alarm after first_data_ms."""
    walking_sim.set_faults("binance", silent_subscriptions=True)
    sink, alarms = RecordingSink(), Alarms()
    running = Running(
        settings_for(walking_sim, ("binance",), binance_mode="subscribe", first_data_ms=200), sink, alarms
    )
    try:
        await eventually(lambda: running.by_venue("binance").stats.first_data_alarms == 2)
        assert {a for a in alarms.seen if a[2] == "first_data"} == {
            ("binance", "BTC/USDT", "first_data"),
            ("binance", "ETH/USDT", "first_data"),
        }
        assert sink.count("binance") == 0
    finally:
        await running.close()


async def test_application_pings_are_answered(walking_sim: SimServer) -> None:
    sink = RecordingSink()
    running = Running(settings_for(walking_sim, ("mexc",), ping_interval_ms=100), sink)
    connector = running.by_venue("mexc")
    try:
        # pongs are frames that carry no ticker; several arrive well before the first 1 s push would repeat
        await eventually(lambda: connector.stats.frames - connector.stats.tickers >= 5)
    finally:
        await running.close()


async def test_unreachable_venue_backs_off_and_stop_still_works() -> None:
    cfg = MarketDataSettings(
        bybit=VenueFeedSettings(ws_url="ws://127.0.0.1:9/v5/public/linear"),  # discard port: refused
        binance=VenueFeedSettings(ws_url="ws://127.0.0.1:9", enabled=False),
        mexc=VenueFeedSettings(ws_url="ws://127.0.0.1:9/edge", enabled=False),
        reconnect_min_ms=20,
        reconnect_max_ms=40,
    )
    sink = RecordingSink()
    running = Running(cfg, sink)
    try:
        await eventually(lambda: running.by_venue("bybit").stats.last_error != "")
        assert running.by_venue("bybit").stats.connects == 0
    finally:
        await running.close()


async def _scripted_bybit(
    handler: Callable[[web.WebSocketResponse, Any], Awaitable[None]],
) -> tuple[web.AppRunner, str]:
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await handler(ws, json.loads(msg.data))
        return ws

    app = web.Application()
    app.router.add_get("/v5/public/linear", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"ws://127.0.0.1:{port}/v5/public/linear"


async def test_bybit_delta_before_snapshot_renews_the_subscription_over_a_socket() -> None:
    subscribes: list[Any] = []

    async def handler(ws: web.WebSocketResponse, req: Any) -> None:
        if req.get("op") != "subscribe":
            return
        subscribes.append(req["args"])
        data = {"symbol": "BTCUSDT", "bid1Price": "1.0", "bid1Size": "2", "ask1Price": "1.1", "ask1Size": "3"}
        kind = "delta" if len(subscribes) == 1 else "snapshot"  # a delta first, a snapshot after renewal
        await ws.send_json({"topic": "tickers.BTCUSDT", "type": kind, "ts": 1, "cs": 1, "data": data})

    runner, url = await _scripted_bybit(handler)
    sink = RecordingSink()
    cfg = MarketDataSettings(
        bybit=VenueFeedSettings(ws_url=url, symbols=["BTCUSDT"]),
        binance=VenueFeedSettings(ws_url=url, enabled=False),
        mexc=VenueFeedSettings(ws_url=url, enabled=False),
    )
    running = Running(cfg, sink)
    try:
        await eventually(lambda: sink.count("bybit") == 1)
        stats = running.by_venue("bybit").stats
        assert (stats.dropped, stats.resubscribes, stats.connects) == (1, 1, 1)
        assert subscribes == [["tickers.BTCUSDT"], ["tickers.BTCUSDT"]]
        assert sink.rows[0][2:6] == (Decimal("1.0"), Decimal("2"), Decimal("1.1"), Decimal("3"))
    finally:
        await running.close()
        await runner.cleanup()
