"""The thin asyncio driver shared by the Bybit, Binance and MEXC gateways (venues.md §1).

A driver runs one venue's sans-I/O adapter over real sockets: an ``httpx.AsyncClient`` with
explicit connect/read/write/pool timeouts and kept connections for REST, and a ``websockets``
connection for the private stream. It keeps the server-time offset fresh (at start, every 30 s,
and before the next signed request after a clock error) and signs every request with the
offset-corrected clock (R19). It never retries a create: a transport failure after any byte may
have left is reported as :class:`SendFailed` with ``sent=True`` and becomes UNKNOWN upstream.

Venue specifics (stream login, listen keys, fills endpoints, dead-man switches) live in the
venues' ``driver.py`` subclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from titan.config import VenueSection
from titan.venues.common.adapter import QueryResult, StreamEvent, VenueAdapter
from titan.venues.common.clock import ServerClock
from titan.venues.common.outcome import Outcome, OutcomeKind, transport_failure
from titan.venues.common.stream import ListenKeyExpired, StreamAuthResult, StreamPong, StreamSubscribed
from titan.venues.common.types import (
    HttpRequest,
    HttpResponse,
    Instrument,
    OrderSpec,
    VenueBalance,
    VenueFill,
    VenueOrderState,
    VenuePosition,
)

CLOCK_REFRESH_S = 30.0
STREAM_IDLE_S = 45.0  # no frame (not even a pong) for this long: the stream is dead, reconnect
STREAM_PING_S = 15.0
STREAM_BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
MAX_PAGES = 20

BuildRequest = Callable[[int], HttpRequest]
EventSink = Callable[[Sequence[StreamEvent]], Awaitable[None]]
StatusSink = Callable[[str], Awaitable[None]]


def local_ms() -> int:
    return time.time_ns() // 1_000_000


class SendFailed(Exception):
    """The HTTP exchange failed; ``sent`` says whether the venue may have received the request."""

    def __init__(self, sent: bool, message: str) -> None:
        super().__init__(message)
        self.sent = sent
        self.outcome = transport_failure(sent, message)


class VenueCallError(Exception):
    """A non-order call (query, fetch) answered with an error outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"{outcome.kind} {outcome.code} {outcome.message}")
        self.outcome = outcome


class StreamLoginFailed(Exception):
    pass


def _timeouts(section: VenueSection) -> httpx.Timeout:
    return httpx.Timeout(
        connect=section.connect_timeout_s,
        read=section.read_timeout_s,
        write=section.write_timeout_s,
        pool=section.pool_timeout_s,
    )


class VenueDriver:
    """REST + private stream of one venue account; subclasses fill in the venue's specifics."""

    venue = ""

    def __init__(
        self, adapter: VenueAdapter, section: VenueSection, log: logging.Logger | None = None
    ) -> None:
        self.adapter = adapter
        self.section = section
        self.log = log or logging.getLogger(f"titan.gateway.{adapter.venue}")
        self.clock = ServerClock(refresh_interval_ms=int(CLOCK_REFRESH_S * 1000))
        self.instruments: dict[str, Instrument] = {}  # by venue symbol
        self._client: httpx.AsyncClient | None = None
        self._clock_lock = asyncio.Lock()
        self._total_timeout_s = (
            section.connect_timeout_s
            + section.write_timeout_s
            + section.read_timeout_s
            + section.pool_timeout_s
        )
        self.requests_sent = 0
        self.last_response_headers: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.section.rest_url,
            timeout=_timeouts(self.section),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=60),
        )
        await self.sync_clock()
        await self.load_instruments()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ transport
    async def send(self, req: HttpRequest) -> HttpResponse:
        """One HTTP exchange exactly as built and signed; never retried here."""
        client = self._client
        if client is None:
            raise SendFailed(False, "driver not started")
        self.requests_sent += 1
        try:
            async with asyncio.timeout(self._total_timeout_s):
                resp = await client.request(
                    req.method, req.target, content=req.body or None, headers=req.headers
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise SendFailed(False, f"{type(exc).__name__}: {exc}") from exc
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise SendFailed(True, f"{type(exc).__name__}: {exc}") from exc
        return HttpResponse(resp.status_code, resp.content, dict(resp.headers))

    async def timestamp(self) -> int:
        """Offset-corrected venue time for signing (resyncs first when stale)."""
        if self.clock.needs_refresh(local_ms()):
            with contextlib.suppress(SendFailed, VenueCallError):
                await self.sync_clock()
        return self.clock.now_ms(local_ms())

    async def signed(self, build: BuildRequest) -> HttpResponse:
        return await self.send(build(await self.timestamp()))

    async def sync_clock(self) -> None:
        async with self._clock_lock:
            sent = local_ms()
            resp = await self.send(self.adapter.server_time())
            received = local_ms()
            if resp.status != 200:
                raise VenueCallError(self.adapter.classify(resp, received))
            sample = self.clock.record(self.adapter.parse_server_time_ms(resp.body), sent, received)
            self.log.debug("%s clock offset %d ms (rtt %d ms)", self.venue, sample.offset_ms, sample.rtt_ms)

    async def load_instruments(self) -> None:
        resp = await self.send(self.adapter.instruments())
        outcome = self.adapter.classify(resp, local_ms())
        if outcome.kind is not OutcomeKind.ACK:
            raise VenueCallError(outcome)
        self.instruments = {i.venue_symbol: i for i in self.adapter.parse_instruments(resp.body)}

    def _checked(self, resp: HttpResponse) -> HttpResponse:
        outcome = self.adapter.classify(resp, local_ms())
        if outcome.kind is not OutcomeKind.ACK:
            if outcome.kind is OutcomeKind.CLOCK_ERROR:
                self.clock.mark_stale()
            raise VenueCallError(outcome)
        return resp

    # ------------------------------------------------------------------ orders
    async def create(self, spec: OrderSpec, instrument: Instrument) -> tuple[Outcome, HttpResponse | None]:
        """Send one create; the outcome is classified, never retried. Transport failures included."""
        try:
            resp = await self.signed(lambda ts: self.adapter.create_order(spec, instrument, ts))
        except SendFailed as exc:
            return exc.outcome, None
        outcome = self.adapter.classify(resp, local_ms())
        if outcome.kind is OutcomeKind.CLOCK_ERROR:
            self.clock.mark_stale()  # resync before the next signed request; this order stays rejected
        return outcome, resp

    async def cancel(self, venue_symbol: str, client_order_id: str) -> Outcome:
        try:
            resp = await self.signed(lambda ts: self.adapter.cancel_order(venue_symbol, client_order_id, ts))
        except SendFailed as exc:
            return exc.outcome
        outcome = self.adapter.classify(resp, local_ms())
        if outcome.kind is OutcomeKind.CLOCK_ERROR:
            self.clock.mark_stale()
        return outcome

    async def query(self, venue_symbol: str, client_order_id: str) -> QueryResult:
        """Query by client id (R9); transport failures come back as a FAILED/UNKNOWN outcome."""
        try:
            resp = await self.signed(lambda ts: self.adapter.query_order(venue_symbol, client_order_id, ts))
        except SendFailed as exc:
            return QueryResult(exc.outcome)
        result = self.adapter.query_result(resp, local_ms(), client_order_id)
        if result.outcome.kind is OutcomeKind.CLOCK_ERROR:
            self.clock.mark_stale()
        return result

    # ------------------------------------------------------------------ reconciliation
    async def open_orders(self) -> list[VenueOrderState]:
        resp = self._checked(await self.signed(lambda ts: self.adapter.open_orders(ts)))
        return self.adapter.parse_open_orders(resp.body)

    async def positions(self) -> list[VenuePosition]:
        resp = self._checked(await self.signed(lambda ts: self.adapter.positions(ts)))
        return self.adapter.parse_positions(resp.body)

    async def balance(self) -> list[VenueBalance]:
        resp = self._checked(await self.signed(lambda ts: self.adapter.balance(ts)))
        return self.adapter.parse_balance(resp.body)

    async def fetch_fills(self, venue_symbol: str, since_ms: int) -> list[VenueFill]:
        """Executions of ``venue_symbol`` since ``since_ms`` (venue clock)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ rate-limit headers
    def remaining_from_headers(self, resp: HttpResponse) -> list[tuple[str, int]]:
        """(bucket, tokens the venue says are left) read from a response's headers."""
        return []

    # ------------------------------------------------------------------ periodic upkeep
    def periodic_interval_s(self) -> float | None:
        """How often :meth:`periodic` must run (None: never)."""
        return None

    async def periodic(self, symbols_with_orders: set[str]) -> None:
        """Renew the dead-man switch for these venue symbols, keep listen keys alive (venue specific)."""

    # ------------------------------------------------------------------ private stream
    async def stream_url(self) -> str:
        return self.section.ws_private_url

    async def stream_login(self, ws: ClientConnection) -> None:
        """Authenticate and subscribe; raise :class:`StreamLoginFailed` on a refusal."""

    def ping_frame(self) -> str | None:
        return None

    async def _await_control(
        self, ws: ClientConnection, want: type[StreamAuthResult | StreamSubscribed]
    ) -> None:
        async with asyncio.timeout(10):
            while True:
                frame = await ws.recv()
                for event in self.adapter.parse_stream(frame):
                    if isinstance(event, want):
                        if not event.ok:
                            raise StreamLoginFailed(f"{want.__name__}: {event.message}")
                        return

    async def run_stream(self, on_events: EventSink, on_status: StatusSink) -> None:
        """Keep the private stream connected forever; report UP / DOWN / RECONNECTED."""
        attempt = 0
        connected_once = False
        while True:
            try:
                url = await self.stream_url()
                async with connect(
                    url, open_timeout=5, ping_interval=None, close_timeout=0.2, max_size=2**22
                ) as ws:
                    await self.stream_login(ws)
                    attempt = 0
                    await on_status("RECONNECTED" if connected_once else "UP")
                    connected_once = True
                    await self._pump(ws, on_events)
            except asyncio.CancelledError:
                raise
            except (
                OSError,
                WebSocketException,
                TimeoutError,
                StreamLoginFailed,
                SendFailed,
                VenueCallError,
            ) as exc:
                self.log.warning("%s private stream: %s", self.venue, exc)
            if connected_once:
                await on_status("DOWN")
            await asyncio.sleep(STREAM_BACKOFF_S[min(attempt, len(STREAM_BACKOFF_S) - 1)])
            attempt += 1

    async def _pump(self, ws: ClientConnection, on_events: EventSink) -> None:
        ping = self.ping_frame()
        next_ping = time.monotonic() + STREAM_PING_S
        last_frame = time.monotonic()
        while True:
            wait = max(0.05, min(next_ping, last_frame + STREAM_IDLE_S) - time.monotonic())
            try:
                async with asyncio.timeout(wait):
                    frame = await ws.recv()
            except TimeoutError:
                now = time.monotonic()
                if now - last_frame >= STREAM_IDLE_S:
                    raise
                if ping is not None and now >= next_ping:
                    await ws.send(ping)
                    next_ping = now + STREAM_PING_S
                continue
            last_frame = time.monotonic()
            try:
                events = self.adapter.parse_stream(frame)
            except (ValueError, msgspec.MsgspecError) as exc:
                self.log.warning("%s: unparseable private frame: %s", self.venue, exc)
                continue
            if any(isinstance(e, ListenKeyExpired) for e in events):
                raise StreamLoginFailed("listen key expired")
            useful = [e for e in events if not isinstance(e, StreamPong)]
            if useful:
                await on_events(useful)
