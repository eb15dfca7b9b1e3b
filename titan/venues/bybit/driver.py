"""Bybit v5 linear driver: ``auth`` + ``order``/``execution`` private topics, history fallback, DCP."""

from __future__ import annotations

import functools
import logging

from websockets.asyncio.client import ClientConnection

from titan.config import VenueSection
from titan.venues.bybit import parse
from titan.venues.bybit.adapter import BybitAdapter
from titan.venues.bybit.requests import ws_ping_message, ws_subscribe_message
from titan.venues.common.adapter import QueryResult
from titan.venues.common.outcome import OutcomeKind
from titan.venues.common.stream import StreamAuthResult, StreamSubscribed
from titan.venues.common.types import Credentials, HttpResponse, VenueFill
from titan.venues.gateway.driver import MAX_PAGES, SendFailed, VenueDriver, local_ms

PRIVATE_TOPICS = ["order", "execution"]


class BybitDriver(VenueDriver):
    venue = "bybit"

    def __init__(
        self, section: VenueSection, dcp_window_s: int | None = None, log: logging.Logger | None = None
    ) -> None:
        self.bybit = BybitAdapter(Credentials(section.api_key, section.api_secret), section.recv_window_ms)
        super().__init__(self.bybit, section, log)
        self.dcp_window_s = dcp_window_s  # venue.bybit.dcp_window_s: only when Bybit enabled DCP

    async def query(self, venue_symbol: str, client_order_id: str) -> QueryResult:
        """``/v5/order/realtime``, then ``/v5/order/history`` before a not-found counts (after a restart)."""
        result = await super().query(venue_symbol, client_order_id)
        if result.outcome.kind is not OutcomeKind.NOT_FOUND:
            return result
        try:
            resp = await self.signed(
                lambda ts: self.bybit.query_order_history(venue_symbol, client_order_id, ts)
            )
        except SendFailed as exc:
            return QueryResult(exc.outcome)
        return self.bybit.query_result(resp, local_ms(), client_order_id)

    async def fetch_fills(self, venue_symbol: str, since_ms: int) -> list[VenueFill]:
        fills: list[VenueFill] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            page_cursor = cursor
            resp = self._checked(
                await self.signed(
                    functools.partial(
                        self.bybit.requests.executions,
                        venue_symbol=venue_symbol,
                        start_time_ms=since_ms,
                        cursor=page_cursor,
                    )
                )
            )
            page, cursor = parse.parse_executions(resp.body)
            fills.extend(page)
            if not cursor or not page:
                break
        return fills

    def remaining_from_headers(self, resp: HttpResponse) -> list[tuple[str, int]]:
        status = resp.header("X-Bapi-Limit-Status")
        return [("create", int(status))] if status is not None and status.isdigit() else []

    def periodic_interval_s(self) -> float | None:
        return self.dcp_window_s / 3 if self.dcp_window_s else None

    async def periodic(self, symbols_with_orders: set[str]) -> None:
        if self.dcp_window_s:
            window = self.dcp_window_s
            self._checked(
                await self.signed(lambda ts: self.bybit.requests.disconnected_cancel_all(window, ts))
            )

    async def stream_login(self, ws: ClientConnection) -> None:
        await ws.send(self.bybit.stream_auth_message(await self.timestamp()).decode())
        await self._await_control(ws, StreamAuthResult)
        topics = PRIVATE_TOPICS + (["dcp.future"] if self.dcp_window_s else [])
        await ws.send(ws_subscribe_message(topics).decode())
        await self._await_control(ws, StreamSubscribed)

    def ping_frame(self) -> str | None:
        return ws_ping_message().decode()
