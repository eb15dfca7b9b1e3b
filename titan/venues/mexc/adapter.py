"""MEXC contract behind the common :class:`~titan.venues.common.adapter.VenueAdapter` interface.

Orders are sized in contracts: the adapter remembers each symbol's contract size from the
instruments it parsed (or was given) and needs a leverage per symbol for every create.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

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
from titan.venues.mexc import errors, parse
from titan.venues.mexc.requests import (
    OPEN_TYPE_CROSS,
    MexcRequests,
    contract_detail_request,
    server_time_request,
)


class MexcAdapter:
    venue = "mexc"

    def __init__(
        self,
        credentials: Credentials,
        leverage: int | Mapping[str, int] = 1,
        open_type: int = OPEN_TYPE_CROSS,
        position_mode: int | None = None,
        instruments: Iterable[Instrument] = (),
    ) -> None:
        self.requests = MexcRequests(credentials, open_type, position_mode)
        self._leverage = leverage
        self.contract_sizes: dict[str, Decimal] = {}
        self.remember_instruments(instruments)

    def remember_instruments(self, instruments: Iterable[Instrument]) -> None:
        for instrument in instruments:
            self.contract_sizes[instrument.venue_symbol] = instrument.contract_size

    def leverage_for(self, venue_symbol: str) -> int:
        if isinstance(self._leverage, int):
            return self._leverage
        return self._leverage[venue_symbol]

    def create_order(self, spec: OrderSpec, instrument: Instrument, timestamp_ms: int) -> HttpRequest:
        self.contract_sizes[instrument.venue_symbol] = instrument.contract_size
        leverage = self.leverage_for(spec.venue_symbol)
        return self.requests.create_order(spec, instrument, timestamp_ms, leverage)

    def cancel_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        return self.requests.cancel_order(venue_symbol, client_order_id, timestamp_ms)

    def query_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        return self.requests.query_order(venue_symbol, client_order_id, timestamp_ms)

    def open_orders(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest:
        return self.requests.open_orders(timestamp_ms, venue_symbol)

    def positions(self, timestamp_ms: int) -> HttpRequest:
        return self.requests.positions(timestamp_ms)

    def balance(self, timestamp_ms: int) -> HttpRequest:
        return self.requests.assets(timestamp_ms)

    def server_time(self) -> HttpRequest:
        return server_time_request()

    def instruments(self) -> HttpRequest:
        return contract_detail_request()

    def classify(self, response: HttpResponse, now_ms: int) -> Outcome:
        return errors.classify_response(response, now_ms)

    def query_result(self, response: HttpResponse, now_ms: int, client_order_id: str) -> QueryResult:
        outcome = errors.classify_response(response, now_ms)
        if outcome.kind is not OutcomeKind.ACK:
            return QueryResult(outcome)
        state = parse.parse_order_query(response.body, self.contract_sizes)
        if state is None:
            return QueryResult(not_found("NULL_DATA", response.status))
        return QueryResult(outcome, state)

    def parse_open_orders(self, body: bytes) -> list[VenueOrderState]:
        return parse.parse_orders(body, self.contract_sizes)

    def parse_positions(self, body: bytes) -> list[VenuePosition]:
        return parse.parse_positions(body, self.contract_sizes)

    def parse_balance(self, body: bytes) -> list[VenueBalance]:
        return parse.parse_assets(body)

    def parse_server_time_ms(self, body: bytes) -> int:
        return parse.parse_server_time_ms(body)

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        instruments = parse.parse_contract_detail(body)
        self.remember_instruments(instruments)
        return instruments

    def stream_auth_message(self, timestamp_ms: int) -> bytes:
        """Private-stream ``login`` signed with the offset-corrected ``timestamp_ms`` (R19)."""
        return self.requests.ws_login_message(timestamp_ms)

    def parse_stream(self, frame: bytes | str) -> list[StreamEvent]:
        return list(parse.parse_private_message(frame, self.contract_sizes))
