"""The one interface a gateway driver needs from a venue's sans-I/O adapter.

Each venue package provides an implementation (``BybitAdapter``, ``BinanceAdapter``,
``MexcAdapter``). Every ``timestamp_ms`` is the offset-corrected venue clock
(:class:`titan.venues.common.clock.ServerClock`), never the raw local clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from titan.venues.common.outcome import ErrorClass, Outcome, error
from titan.venues.common.stream import (
    ListenKeyExpired,
    StreamAuthResult,
    StreamIgnored,
    StreamPong,
    StreamSubscribed,
)
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

StreamEvent = (
    VenueOrderState
    | VenueFill
    | VenuePosition
    | VenueBalance
    | StreamAuthResult
    | StreamPong
    | StreamSubscribed
    | StreamIgnored
    | ListenKeyExpired
)


class QueryResult(msgspec.Struct, frozen=True):
    """A query by client id: ``outcome.kind`` is ACK with ``state``, NOT_FOUND, or an error to handle."""

    outcome: Outcome
    state: VenueOrderState | None = None


def not_found(code: str, http_status: int) -> Outcome:
    return error(ErrorClass.NOT_FOUND, code, "order not found", http_status)


class VenueAdapter(Protocol):
    venue: str

    # requests
    def create_order(self, spec: OrderSpec, instrument: Instrument, timestamp_ms: int) -> HttpRequest: ...
    def cancel_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest: ...
    def query_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest: ...
    def open_orders(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest: ...
    def positions(self, timestamp_ms: int) -> HttpRequest: ...
    def balance(self, timestamp_ms: int) -> HttpRequest: ...
    def server_time(self) -> HttpRequest: ...
    def instruments(self) -> HttpRequest: ...

    # responses
    def classify(self, response: HttpResponse, now_ms: int) -> Outcome: ...
    def query_result(self, response: HttpResponse, now_ms: int, client_order_id: str) -> QueryResult: ...
    def parse_open_orders(self, body: bytes) -> list[VenueOrderState]: ...
    def parse_positions(self, body: bytes) -> list[VenuePosition]: ...
    def parse_balance(self, body: bytes) -> list[VenueBalance]: ...
    def parse_server_time_ms(self, body: bytes) -> int: ...
    def parse_instruments(self, body: bytes) -> Sequence[Instrument]: ...

    # private stream (auth differs per venue: Bybit ``auth`` op, MEXC ``login``, Binance listen key)
    def parse_stream(self, frame: bytes | str) -> Sequence[StreamEvent]: ...
