"""MEXC contract driver: ``login`` private stream, contract-sized orders, order-deal fills."""

from __future__ import annotations

import functools
import logging

from websockets.asyncio.client import ClientConnection

from titan.config import VenueSection
from titan.venues.common.stream import StreamAuthResult
from titan.venues.common.types import Credentials, VenueFill
from titan.venues.gateway.driver import MAX_PAGES, VenueDriver
from titan.venues.mexc import parse
from titan.venues.mexc.adapter import MexcAdapter
from titan.venues.mexc.requests import ws_ping_message

PAGE_SIZE = 100


class MexcDriver(VenueDriver):
    venue = "mexc"

    def __init__(self, section: VenueSection, log: logging.Logger | None = None) -> None:
        self.mexc = MexcAdapter(Credentials(section.api_key, section.api_secret), leverage=section.leverage)
        super().__init__(self.mexc, section, log)

    async def fetch_fills(self, venue_symbol: str, since_ms: int) -> list[VenueFill]:
        fills: list[VenueFill] = []
        for page_num in range(1, MAX_PAGES + 1):
            resp = self._checked(
                await self.signed(
                    functools.partial(
                        self.mexc.requests.order_deals,
                        venue_symbol,
                        start_time_ms=since_ms,
                        page_num=page_num,
                    )
                )
            )
            page = parse.parse_deals(resp.body, self.mexc.contract_sizes)
            fills.extend(page)
            if len(page) < PAGE_SIZE:
                break
        return fills

    async def stream_login(self, ws: ClientConnection) -> None:
        await ws.send(self.mexc.stream_auth_message(await self.timestamp()).decode())
        await self._await_control(ws, StreamAuthResult)

    def ping_frame(self) -> str | None:
        return ws_ping_message().decode()
