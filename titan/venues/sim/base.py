"""Machinery shared by the three simulated venues: engine wiring, faults, pushes, admin routes."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import WSCloseCode, web

from titan.venues.sim.config import SimConfig, SimInstrument
from titan.venues.sim.engine import EngineEvent, FillEvent, MatchingEngine, NewOrder, Order, Reject
from titan.venues.sim.faults import Faults, patch_faults, scale_fill_qty
from titan.venues.sim.prices import Quote

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_json = msgspec.json.Encoder(decimal_format="string")
# Rate-limit headers computed before the handler runs, added to its response.
RATE_HEADERS = web.RequestKey("rate_headers", dict[str, str])


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_json.encode(body), status=status, headers=headers, content_type="application/json"
    )


def dec(value: Decimal | None) -> str:
    """Plain decimal text without exponent or trailing zeros (``""`` for None)."""
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return text


def scale(step: Decimal) -> int:
    """Number of decimal places of a tick or lot step."""
    exponent = step.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class PublicSub(msgspec.Struct, kw_only=True):
    symbol: str  # canonical
    topic: str  # the venue's name for the subscription
    silent: bool = False
    last_sent: dict[str, str] | None = None  # Bybit: the fields already sent on this connection


class PublicConn:
    """One public WebSocket connection and its subscriptions."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, path: str) -> None:
        self.ws = ws
        self.request = request
        self.path = path
        self.subs: dict[str, PublicSub] = {}


class PrivateConn:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.api_key: str | None = None
        self.topics: set[str] = set()


class VenueSim:
    """Base class; subclasses add the venue routes and wire formats."""

    venue = ""

    def __init__(self, cfg: SimConfig, order_id_factory: Callable[[random.Random, int], str]) -> None:
        self.cfg = cfg
        self.faults = Faults()
        self.secrets = {a.api_key: a.secret for a in cfg.accounts if a.venue == self.venue}
        seed = cfg.seed * 1000 + ("bybit", "binance", "mexc").index(self.venue)
        self.engine = MatchingEngine(
            instruments=self.venue_instruments(cfg),
            accounts=[a for a in cfg.accounts if a.venue == self.venue],
            leverage=cfg.leverage,
            maker_fee=cfg.maker_fee,
            taker_fee=cfg.taker_fee,
            rng=random.Random(seed),
            clock=self.now_ms,
            order_id_factory=order_id_factory,
            client_id_unique_among_open_only=self.venue == "binance",
            post_only_rejects_at_place=self.venue == "binance",
        )
        self.public: set[PublicConn] = set()
        self.private: set[PrivateConn] = set()
        self.request_count = 0
        self.order_requests = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fill_history: dict[str, deque[tuple[str, bytes]]] = {}
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_get("/_admin/faults", self._admin_get_faults)
        self.app.router.add_post("/_admin/faults", self._admin_set_faults)
        self.app.router.add_post("/_admin/drop", self._admin_drop)
        self.app.router.add_post("/_admin/quote", self._admin_quote)
        self.app.router.add_get("/_admin/stats", self._admin_stats)
        self.app.on_shutdown.append(self._on_shutdown)

    # ------------------------------------------------------------------ clock and symbols
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.faults.clock_skew_ms

    def set_faults(self, **switches: Any) -> Faults:
        self.faults = patch_faults(self.faults, switches)
        self.engine.partial_fill_ratio = self.faults.partial_fill_ratio
        self.engine.cancel_after_partial = self.faults.cancel_after_partial
        return self.faults

    # ------------------------------------------------------------------ hooks for subclasses
    def venue_instruments(self, cfg: SimConfig) -> list[SimInstrument]:
        """Instruments as the engine sees them (MEXC trades whole contracts)."""
        return list(cfg.instruments)

    def rate_limited(self, request: web.Request) -> web.StreamResponse | None:
        """The venue's rate-limit answer if this request is over a limit (or a storm is on)."""
        return None

    def unknown_response(self) -> web.StreamResponse:
        raise NotImplementedError

    def private_messages(self, events: list[EngineEvent]) -> list[tuple[str, str, bytes]]:
        """(api_key, topic, frame) for every private push the events cause."""
        raise NotImplementedError

    def ticker_frames(self, conn: PublicConn, quotes: dict[str, Quote], tick: str) -> list[bytes]:
        """Public frames for one connection; ``tick`` names the timer that fired."""
        return []

    def timers(self) -> list[tuple[int, str]]:
        """(interval ms, tick name) of the venue's periodic public pushes."""
        return []

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_admin"):
            return await handler(request)
        self.request_count += 1
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        limited = self.rate_limited(request)
        if limited is not None:
            return limited
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        response = await handler(request)
        extra = request.get(RATE_HEADERS)
        if extra and not response.prepared:
            response.headers.update(extra)
        return response

    # ------------------------------------------------------------------ order flow with faults
    async def submit(
        self,
        request: web.Request,
        req: NewOrder,
        on_reject: Callable[[Reject], web.StreamResponse],
        on_ack: Callable[[Order], web.StreamResponse],
    ) -> web.StreamResponse:
        """Place an order through the engine, honouring the order-path faults."""
        self.order_requests += 1
        f = self.faults
        if f.unknown_5xx_next_orders > 0 and not f.unknown_5xx_executes:
            f.unknown_5xx_next_orders -= 1
            return self.unknown_response()
        result = self.engine.place(req)
        if isinstance(result, Reject):
            return on_reject(result)
        delay_ms = f.fill_delay_ms if f.fill_delay_ms is not None else self.cfg.fill_delay_ms
        if delay_ms > 0:
            events = self.engine.accepted(result.order_id)
            self.later(delay_ms / 1000, self._delayed_match, result.order_id)
        else:
            events = self.engine.execute(result.order_id)
        response = on_ack(result)
        if f.fill_before_ack:
            await self.dispatch(events)
            await asyncio.sleep(0.05)  # let the pushes reach the client before the ack
            return response
        self.later(0.002, self.dispatch, events)
        if f.timeout_next_orders > 0:
            f.timeout_next_orders -= 1
            await asyncio.sleep(f.hold_ms / 1000)
            return response
        if f.drop_next_orders > 0:
            f.drop_next_orders -= 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp drops the handler of an aborted connection
        if f.unknown_5xx_next_orders > 0:
            f.unknown_5xx_next_orders -= 1
            return self.unknown_response()
        return response

    async def _delayed_match(self, order_id: str) -> None:
        await self.dispatch(self.engine.match(order_id))

    def later(self, delay_s: float, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(delay_s)
            await fn(*args)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ pushes
    async def dispatch(self, events: list[EngineEvent]) -> None:
        if not events:
            return
        messages = self.private_messages(events)
        if self.faults.reorder_pushes:
            messages.reverse()
        if self.faults.duplicate_fills:
            fill_topics = self.fill_topics()
            messages = [m for msg in messages for m in ([msg, msg] if msg[1] in fill_topics else [msg])]
        fill_topics = self.fill_topics()
        for api_key, topic, frame in messages:
            if topic in fill_topics:
                self._fill_history.setdefault(api_key, deque(maxlen=100)).append((topic, frame))
            for conn in list(self.private):
                if conn.api_key == api_key and (topic in conn.topics or "*" in conn.topics):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await conn.ws.send_str(frame.decode())

    def fill_topics(self) -> set[str]:
        return set()

    # The quantity fields of this venue's fill pushes (fault ``replay_fills_qty_factor``).
    FILL_QTY_KEYS: frozenset[str] = frozenset()

    async def replay_fills(self, conn: PrivateConn) -> None:
        """Fault ``replay_fills_on_connect``: resend this account's past fill pushes (R5)."""
        if not self.faults.replay_fills_on_connect or conn.api_key is None:
            return
        factor = self.faults.replay_fills_qty_factor
        for topic, frame in list(self._fill_history.get(conn.api_key, ())):
            if topic in conn.topics or "*" in conn.topics:
                if factor is not None:
                    frame = scale_fill_qty(frame, self.FILL_QTY_KEYS, factor)
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(frame.decode())

    async def on_quotes(self, quotes: dict[str, Quote]) -> None:
        """A price step: match resting orders, then serve event-driven public streams."""
        for symbol, quote in quotes.items():
            await self.dispatch(self.engine.set_quote(symbol, quote))
        await self.publish(quotes, "quote")

    async def publish(self, quotes: dict[str, Quote], tick: str) -> None:
        frozen = set(self.faults.frozen_symbols)
        live = {s: q for s, q in quotes.items() if s not in frozen}
        if not live:
            return
        for conn in list(self.public):
            for frame in self.ticker_frames(conn, live, tick):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(frame.decode())

    async def drop(self, kind: str = "all", abrupt: bool = True) -> int:
        """Cut public and/or private WebSocket connections; abrupt = no close frame (like a 1006)."""
        conns: list[PublicConn | PrivateConn] = []
        if kind in ("public", "all"):
            conns.extend(self.public)
        if kind in ("private", "all"):
            conns.extend(self.private)
        for conn in conns:
            if abrupt and conn.request.transport is not None:
                conn.request.transport.abort()
            else:
                await conn.ws.close(code=WSCloseCode.GOING_AWAY)
        return len(conns)

    async def _on_shutdown(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        conns: list[PublicConn | PrivateConn] = [*self.public, *self.private]
        for conn in conns:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY)

    # ------------------------------------------------------------------ admin routes
    async def _admin_get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.faults)

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        try:
            patch = msgspec.json.decode(await request.read())
            if not isinstance(patch, dict):
                raise msgspec.ValidationError("expected an object")
            faults = self.set_faults(**patch)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response(faults)

    async def _admin_drop(self, request: web.Request) -> web.Response:
        body = msgspec.json.decode(await request.read() or b"{}")
        n = await self.drop(str(body.get("kind", "all")), bool(body.get("abrupt", True)))
        return json_response({"dropped": n})

    async def _admin_quote(self, request: web.Request) -> web.Response:
        body = msgspec.json.decode(await request.read())
        quote = make_quote(body, self.now_ms())
        await self.on_quotes({body["symbol"]: quote})
        return json_response(quote)

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "requests": self.request_count,
                "order_requests": self.order_requests,
                "public_connections": len(self.public),
                "private_connections": len(self.private),
                "orders": len(self.engine.orders),
                "fills": len(self.engine.fills),
            }
        )


def make_quote(fields: dict[str, Any], now_ms: int) -> Quote:
    bid = Decimal(str(fields["bid"]))
    ask = Decimal(str(fields["ask"]))
    last = Decimal(str(fields.get("last", bid)))
    return Quote(
        bid=bid,
        bid_size=Decimal(str(fields.get("bid_size", "1"))),
        ask=ask,
        ask_size=Decimal(str(fields.get("ask_size", "1"))),
        last=last,
        mark=Decimal(str(fields.get("mark", last))),
        index=Decimal(str(fields.get("index", fields.get("mark", last)))),
        ts_ms=now_ms,
    )


def fills_of(events: Iterable[EngineEvent]) -> list[FillEvent]:
    return [e for e in events if isinstance(e, FillEvent)]
