"""Bybit v5 behind the common :class:`~titan.venues.common.adapter.VenueAdapter` interface."""

from __future__ import annotations

from titan.venues.bybit import errors, parse
from titan.venues.bybit.requests import (
    DEFAULT_RECV_WINDOW_MS,
    BybitRequests,
    instruments_request,
    server_time_request,
)
from titan.venues.common.adapter import QueryResult, StreamEvent, not_found
from titan.venues.common.outcome import Outcome, OutcomeKind
from titan.venues.common.types import (
    Credentials,
    HttpRequest,
    HttpResponse,
    Instrument,
    OrderSpec,
    VenueBalance,
    VenueOrderState,
    VenuePosition,
)

WS_AUTH_VALIDITY_MS = 10_000


class BybitAdapter:
    venue = "bybit"

    def __init__(self, credentials: Credentials, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> None:
        self.requests = BybitRequests(credentials, recv_window_ms)

    def create_order(self, spec: OrderSpec, instrument: Instrument, timestamp_ms: int) -> HttpRequest:
        return self.requests.create_order(spec, instrument, timestamp_ms)

    def cancel_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        return self.requests.cancel_order(venue_symbol, client_order_id, timestamp_ms)

    def query_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        """``/v5/order/realtime``; before counting a not-found, also ask :meth:`query_order_history`."""
        return self.requests.query_order(venue_symbol, client_order_id, timestamp_ms)

    def query_order_history(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        return self.requests.query_order_history(venue_symbol, client_order_id, timestamp_ms)

    def open_orders(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest:
        return self.requests.open_orders(timestamp_ms, venue_symbol)

    def positions(self, timestamp_ms: int) -> HttpRequest:
        return self.requests.positions(timestamp_ms)

    def balance(self, timestamp_ms: int) -> HttpRequest:
        return self.requests.wallet_balance(timestamp_ms)

    def server_time(self) -> HttpRequest:
        return server_time_request()

    def instruments(self) -> HttpRequest:
        return instruments_request()

    def classify(self, response: HttpResponse, now_ms: int) -> Outcome:
        return errors.classify_response(response, now_ms)

    def query_result(self, response: HttpResponse, now_ms: int, client_order_id: str) -> QueryResult:
        outcome = errors.classify_response(response, now_ms)
        if outcome.kind is not OutcomeKind.ACK:
            return QueryResult(outcome)
        state = parse.parse_order_query(response.body, client_order_id)
        if state is None:
            return QueryResult(not_found("EMPTY_LIST", response.status))
        return QueryResult(outcome, state)

    def parse_open_orders(self, body: bytes) -> list[VenueOrderState]:
        return parse.parse_orders(body)[0]

    def parse_positions(self, body: bytes) -> list[VenuePosition]:
        return parse.parse_positions(body)

    def parse_balance(self, body: bytes) -> list[VenueBalance]:
        return parse.parse_wallet_balance(body)

    def parse_server_time_ms(self, body: bytes) -> int:
        return parse.parse_server_time_ms(body)

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        return parse.parse_instruments(body)[0]

    def stream_auth_message(self, timestamp_ms: int) -> bytes:
        """Private-stream ``auth`` op valid for 10 s from the offset-corrected ``timestamp_ms`` (R19)."""
        return self.requests.ws_auth_message(timestamp_ms + WS_AUTH_VALIDITY_MS)

    def parse_stream(self, frame: bytes | str) -> list[StreamEvent]:
        return list(parse.parse_private_message(frame))
