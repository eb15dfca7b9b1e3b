"""Binance USD-M behind the common :class:`~titan.venues.common.adapter.VenueAdapter` interface."""

from __future__ import annotations

from titan.venues.binance import errors, parse
from titan.venues.binance.requests import (
    DEFAULT_RECV_WINDOW_MS,
    BinanceRequests,
    exchange_info_request,
    server_time_request,
)
from titan.venues.common.adapter import QueryResult, StreamEvent
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


class BinanceAdapter:
    venue = "binance"

    def __init__(self, credentials: Credentials, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> None:
        self.requests = BinanceRequests(credentials, recv_window_ms)

    def create_order(self, spec: OrderSpec, instrument: Instrument, timestamp_ms: int) -> HttpRequest:
        return self.requests.create_order(spec, instrument, timestamp_ms)

    def cancel_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        return self.requests.cancel_order(venue_symbol, client_order_id, timestamp_ms)

    def query_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        return self.requests.query_order(venue_symbol, client_order_id, timestamp_ms)

    def open_orders(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest:
        return self.requests.open_orders(timestamp_ms, venue_symbol)

    def positions(self, timestamp_ms: int) -> HttpRequest:
        return self.requests.position_risk(timestamp_ms)

    def balance(self, timestamp_ms: int) -> HttpRequest:
        return self.requests.balance(timestamp_ms)

    def server_time(self) -> HttpRequest:
        return server_time_request()

    def instruments(self) -> HttpRequest:
        return exchange_info_request()

    def classify(self, response: HttpResponse, now_ms: int) -> Outcome:
        return errors.classify_response(response, now_ms)

    def query_result(self, response: HttpResponse, now_ms: int, client_order_id: str) -> QueryResult:
        """-2013 NO_SUCH_ORDER arrives as a classified NOT_FOUND outcome."""
        outcome = errors.classify_response(response, now_ms)
        if outcome.kind is not OutcomeKind.ACK:
            return QueryResult(outcome)
        return QueryResult(outcome, parse.parse_order(response.body))

    def parse_open_orders(self, body: bytes) -> list[VenueOrderState]:
        return parse.parse_open_orders(body)

    def parse_positions(self, body: bytes) -> list[VenuePosition]:
        return parse.parse_position_risk(body)

    def parse_balance(self, body: bytes) -> list[VenueBalance]:
        return parse.parse_balance(body)

    def parse_server_time_ms(self, body: bytes) -> int:
        return parse.parse_server_time_ms(body)

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        """Instruments only; :func:`titan.venues.binance.parse.parse_exchange_info` also gives rate limits."""
        return parse.parse_exchange_info(body)[0]

    def parse_stream(self, frame: bytes | str) -> list[StreamEvent]:
        return list(parse.parse_user_message(frame))
