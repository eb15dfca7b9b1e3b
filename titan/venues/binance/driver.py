"""Binance USD-M driver: listen-key user stream, ``userTrades`` fills, ``countdownCancelAll`` heartbeat."""

from __future__ import annotations

import functools
import logging
import time

from titan.config import VenueSection
from titan.venues.binance import parse
from titan.venues.binance.adapter import BinanceAdapter
from titan.venues.binance.requests import user_stream_path
from titan.venues.common.types import Credentials, HttpResponse, VenueFill
from titan.venues.gateway.driver import VenueDriver

DEFAULT_COUNTDOWN_MS = 60_000  # venue.binance.countdown_ms (venues.md §3.9)
LISTEN_KEY_KEEPALIVE_S = 30 * 60


class BinanceDriver(VenueDriver):
    venue = "binance"

    def __init__(
        self,
        section: VenueSection,
        countdown_ms: int = DEFAULT_COUNTDOWN_MS,
        log: logging.Logger | None = None,
    ) -> None:
        self.binance = BinanceAdapter(
            Credentials(section.api_key, section.api_secret), section.recv_window_ms
        )
        super().__init__(self.binance, section, log)
        self.countdown_ms = countdown_ms
        self._armed: set[str] = set()  # symbols whose countdown is running
        self._listen_key_at = 0.0

    async def fetch_fills(self, venue_symbol: str, since_ms: int) -> list[VenueFill]:
        resp = self._checked(
            await self.signed(
                lambda ts: self.binance.requests.user_trades(venue_symbol, ts, start_time_ms=since_ms)
            )
        )
        return parse.parse_user_trades(resp.body)

    def remaining_from_headers(self, resp: HttpResponse) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for header, bucket, capacity in (
            ("X-MBX-ORDER-COUNT-10S", "orders_10s", 300),
            ("X-MBX-ORDER-COUNT-1M", "orders_1m", 1200),
        ):
            used = resp.header(header)
            if used is not None and used.isdigit():
                out.append((bucket, max(0, capacity - int(used))))
        return out

    def periodic_interval_s(self) -> float | None:
        return self.countdown_ms / 4000 if self.countdown_ms else None

    async def periodic(self, symbols_with_orders: set[str]) -> None:
        """Renew the countdown of every symbol with working orders; disarm the ones without (§3.9)."""
        for symbol in sorted(symbols_with_orders | self._armed):
            countdown = self.countdown_ms if symbol in symbols_with_orders else 0
            self._checked(
                await self.signed(
                    functools.partial(self.binance.requests.countdown_cancel_all, symbol, countdown)
                )
            )
            if countdown:
                self._armed.add(symbol)
            else:
                self._armed.discard(symbol)
        if self._listen_key_at and time.monotonic() - self._listen_key_at >= LISTEN_KEY_KEEPALIVE_S:
            self._checked(await self.send(self.binance.requests.listen_key_keepalive()))
            self._listen_key_at = time.monotonic()

    async def stream_url(self) -> str:
        resp = self._checked(await self.send(self.binance.requests.listen_key_create()))
        self._listen_key_at = time.monotonic()
        key = parse.parse_listen_key(resp.body)
        base = self.section.ws_private_url.rstrip("/")
        base = base.removesuffix("/private")
        return base + user_stream_path(key)
