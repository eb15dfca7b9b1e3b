"""WebSocket driver of one feed: connect, subscribe, ping, watchdogs, reconnect with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from titan.marketdata.feeds import BinanceFeed, BybitFeed, Feed, MexcFeed, canonical_symbols
from titan.marketdata.settings import MarketDataSettings
from titan.marketdata.sink import AlarmSink, TickerSink

log = logging.getLogger(__name__)


class ConnectorStats(msgspec.Struct, kw_only=True):
    connects: int = 0
    frames: int = 0
    tickers: int = 0
    dropped: int = 0
    resubscribes: int = 0
    silence_reconnects: int = 0
    first_data_alarms: int = 0
    last_error: str = ""


class _Silence(Exception):
    """The watchdog found a subscribed symbol without data for ``silence_ms``."""


class FeedConnector:
    """Runs one feed until cancelled; every (re)connection resubscribes and restarts both watchdogs."""

    def __init__(
        self,
        feed: Feed,
        sink: TickerSink,
        *,
        silence_ms: int,
        first_data_ms: int,
        ping_interval_ms: int,
        open_timeout_ms: int = 5000,
        reconnect_min_ms: int = 100,
        reconnect_max_ms: int = 10_000,
        on_alarm: AlarmSink | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.feed = feed
        self.sink = sink
        self.silence_ns = silence_ms * 1_000_000
        self.first_data_ns = first_data_ms * 1_000_000
        self.ping_ns = ping_interval_ms * 1_000_000
        self.open_timeout_s = open_timeout_ms / 1000
        self.reconnect_min_s = reconnect_min_ms / 1000
        self.reconnect_max_s = reconnect_max_ms / 1000
        self.on_alarm = on_alarm
        self.clock_ns = clock_ns
        self.stats = ConnectorStats()
        self.connected = asyncio.Event()
        self._session_data = False

    async def run(self) -> None:
        backoff = self.reconnect_min_s
        while True:
            got_data = await self._session()
            self.connected.clear()
            if got_data:
                backoff = self.reconnect_min_s
            # Sleeping here is the reconnect backoff itself, not a test waiting for something.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.reconnect_max_s)

    async def _session(self) -> bool:
        """One connection's lifetime; True when any ticker arrived on it."""
        self._session_data = False
        # Application-level pings for Bybit/MEXC; WebSocket ping frames for Binance.
        ws_ping = self.ping_ns / 1e9 if self.feed.ping() is None else None
        try:
            async with connect(
                self.feed.url(),
                open_timeout=self.open_timeout_s,
                ping_interval=ws_ping,
                ping_timeout=ws_ping,
                close_timeout=1,
                max_size=2**22,
            ) as ws:
                self.stats.connects += 1
                for frame in self.feed.on_connect():
                    await ws.send(frame)
                self.connected.set()
                await self._receive(ws)
        except _Silence:
            self.stats.silence_reconnects += 1
        except (OSError, TimeoutError, WebSocketException) as exc:
            self.stats.last_error = repr(exc)
            log.info("%s market data disconnected: %r", self.feed.venue, exc)
        return self._session_data

    async def _receive(self, ws: ClientConnection) -> None:
        """Until the connection fails or the watchdog raises :class:`_Silence`."""
        start = self.clock_ns()
        last_data: dict[str, int] = {}
        alarmed: set[str] = set()
        ping_frame = self.feed.ping()
        next_ping = start + self.ping_ns
        while True:
            now = self.clock_ns()
            deadline = next_ping if ping_frame is not None else now + 1_000_000_000
            for symbol in self.feed.symbols:
                seen = last_data.get(symbol)
                silence_at = (seen if seen is not None else start) + self.silence_ns
                if now >= silence_at:
                    log.warning(
                        "%s %s silent for %d ms: reconnecting",
                        self.feed.venue,
                        symbol,
                        self.silence_ns // 1_000_000,
                    )
                    if self.on_alarm is not None:
                        self.on_alarm(self.feed.venue, symbol, "silence")
                    raise _Silence
                deadline = min(deadline, silence_at)
                if seen is None and symbol not in alarmed:
                    first_at = start + self.first_data_ns
                    if now >= first_at:
                        alarmed.add(symbol)
                        self.stats.first_data_alarms += 1
                        log.warning(
                            "%s %s: no data %d ms after subscribing",
                            self.feed.venue,
                            symbol,
                            self.first_data_ns // 1_000_000,
                        )
                        if self.on_alarm is not None:
                            self.on_alarm(self.feed.venue, symbol, "first_data")
                    else:
                        deadline = min(deadline, first_at)
            if ping_frame is not None and now >= next_ping:
                await ws.send(ping_frame)
                next_ping = now + self.ping_ns
                continue
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(deadline - now, 0) / 1e9)
            except TimeoutError:
                continue
            recv_ns = time.monotonic_ns()
            self.stats.frames += 1
            result = self.feed.on_message(raw)
            self.stats.dropped += result.dropped
            self.stats.resubscribes += len(result.resubscribed)
            for frame in result.send:
                await ws.send(frame)
            for t in result.tickers:
                self.sink.on_ticker(
                    t.venue,
                    t.symbol,
                    t.bid,
                    t.bid_size,
                    t.ask,
                    t.ask_size,
                    t.last,
                    t.mark,
                    t.exchange_ts_ms,
                    recv_ns,
                )
                last_data[t.symbol] = recv_ns
                self._session_data = True
            self.stats.tickers += len(result.tickers)


def build_connectors(
    cfg: MarketDataSettings, sink: TickerSink, on_alarm: AlarmSink | None = None
) -> list[FeedConnector]:
    """One connector per enabled venue feed with at least one symbol."""
    out: list[FeedConnector] = []
    for venue, feed_cfg in cfg.feeds().items():
        symbols = canonical_symbols(feed_cfg.symbols)
        if not feed_cfg.enabled or not symbols:
            continue
        feed: Feed
        if venue == "bybit":
            feed = BybitFeed(feed_cfg.ws_url, symbols)
        elif venue == "binance":
            feed = BinanceFeed(feed_cfg.ws_url, symbols, feed_cfg.binance_mode)
        else:
            feed = MexcFeed(feed_cfg.ws_url, symbols)
        out.append(
            FeedConnector(
                feed,
                sink,
                silence_ms=feed_cfg.silence_ms if feed_cfg.silence_ms is not None else cfg.silence_ms,
                first_data_ms=feed_cfg.first_data_ms
                if feed_cfg.first_data_ms is not None
                else cfg.first_data_ms,
                ping_interval_ms=feed_cfg.ping_interval_ms,
                open_timeout_ms=cfg.open_timeout_ms,
                reconnect_min_ms=cfg.reconnect_min_ms,
                reconnect_max_ms=cfg.reconnect_max_ms,
                on_alarm=on_alarm,
            )
        )
    return out


async def run_connectors(
    cfg: MarketDataSettings,
    sink: TickerSink,
    stop: asyncio.Event,
    on_alarm: AlarmSink | None = None,
    connectors: list[FeedConnector] | None = None,
) -> None:
    """Run every enabled feed until ``stop`` is set; pass ``connectors`` to watch their stats."""
    running = connectors if connectors is not None else build_connectors(cfg, sink, on_alarm)
    tasks = [asyncio.create_task(c.run(), name=f"marketdata.{c.feed.venue}") for c in running]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
