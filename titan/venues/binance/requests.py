"""Binance USD-M request builders (venues.md §3).

GET/DELETE carry every parameter in the query string; POST carries them in an
``application/x-www-form-urlencoded`` body. ``signature`` is always the last parameter and signs
exactly the text sent (totalParams = query + body; one of the two is always empty here).
"""

from __future__ import annotations

from titan.venues.binance.signing import sign
from titan.venues.common.client_id import check_client_order_id
from titan.venues.common.decimals import plain
from titan.venues.common.orders import to_grid
from titan.venues.common.types import Credentials, HttpRequest, Instrument, OrderSpec, OrderType, TimeInForce
from titan.venues.common.wire import query_string

VENUE = "binance"
DEFAULT_RECV_WINDOW_MS = 5000
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

_TIF = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
    TimeInForce.POST_ONLY: "GTX",
}


class BinanceRequests:
    """Builds signed Binance USD-M requests. ``timestamp_ms`` is always the offset-corrected clock (R19)."""

    def __init__(self, credentials: Credentials, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> None:
        self._credentials = credentials
        self._recv_window = str(recv_window_ms)

    def _signed(
        self, method: str, path: str, params: list[tuple[str, str]], timestamp_ms: int
    ) -> HttpRequest:
        params = [*params, ("recvWindow", self._recv_window), ("timestamp", str(timestamp_ms))]
        total_params = query_string(params)
        signed = f"{total_params}&signature={sign(self._credentials.secret, total_params)}"
        headers = {"X-MBX-APIKEY": self._credentials.api_key}
        if method == "POST":
            headers["Content-Type"] = FORM_CONTENT_TYPE
            return HttpRequest(method, path, body=signed.encode(), headers=headers)
        return HttpRequest(method, path, query=signed, headers=headers)

    def _keyed(self, method: str, path: str, params: list[tuple[str, str]] | None = None) -> HttpRequest:
        """API-key-only (USER_STREAM) endpoints: no timestamp, no signature."""
        headers = {"X-MBX-APIKEY": self._credentials.api_key}
        body = query_string(params or []).encode()
        if body:
            headers["Content-Type"] = FORM_CONTENT_TYPE
        return HttpRequest(method, path, body=body, headers=headers)

    # --- orders ----------------------------------------------------------------------------

    def create_order(
        self, spec: OrderSpec, instrument: Instrument, timestamp_ms: int, position_side: str | None = None
    ) -> HttpRequest:
        """``POST /fapi/v1/order`` with ``newClientOrderId`` and ``newOrderRespType=RESULT``.

        ``position_side`` (LONG/SHORT) only in hedge mode, where ``reduceOnly`` may not be sent.
        """
        check_client_order_id(VENUE, spec.client_order_id)
        grid = to_grid(spec, instrument)
        params = [("symbol", spec.venue_symbol), ("side", spec.side.value)]
        if position_side is not None:
            params.append(("positionSide", position_side))
        if spec.order_type is OrderType.MARKET:
            params.append(("type", "MARKET"))
            params.append(("quantity", plain(grid.qty)))
        else:
            assert grid.price is not None  # to_grid guarantees a price for LIMIT
            params.append(("type", "LIMIT"))
            params.append(("timeInForce", "GTX" if spec.is_post_only else _TIF[spec.tif]))
            params.append(("quantity", plain(grid.qty)))
            params.append(("price", plain(grid.price)))
        if position_side is None:
            params.append(("reduceOnly", "true" if spec.reduce_only else "false"))
        params.append(("newClientOrderId", spec.client_order_id))
        params.append(("newOrderRespType", "RESULT"))
        return self._signed("POST", "/fapi/v1/order", params, timestamp_ms)

    def cancel_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        params = [("symbol", venue_symbol), ("origClientOrderId", client_order_id)]
        return self._signed("DELETE", "/fapi/v1/order", params, timestamp_ms)

    def cancel_all(self, venue_symbol: str, timestamp_ms: int) -> HttpRequest:
        return self._signed("DELETE", "/fapi/v1/allOpenOrders", [("symbol", venue_symbol)], timestamp_ms)

    def query_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        """``GET /fapi/v1/order`` by ``origClientOrderId``; unknown → -2013."""
        params = [("symbol", venue_symbol), ("origClientOrderId", client_order_id)]
        return self._signed("GET", "/fapi/v1/order", params, timestamp_ms)

    def open_orders(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest:
        params = [("symbol", venue_symbol)] if venue_symbol else []
        return self._signed("GET", "/fapi/v1/openOrders", params, timestamp_ms)

    def user_trades(
        self,
        venue_symbol: str,
        timestamp_ms: int,
        from_id: int | None = None,
        start_time_ms: int | None = None,
        limit: int = 500,
    ) -> HttpRequest:
        """``GET /fapi/v1/userTrades``: fills for reconciliation (``fromId`` = last known trade id + 1)."""
        params = [("symbol", venue_symbol)]
        if from_id is not None:
            params.append(("fromId", str(from_id)))
        if start_time_ms is not None:
            params.append(("startTime", str(start_time_ms)))
        params.append(("limit", str(limit)))
        return self._signed("GET", "/fapi/v1/userTrades", params, timestamp_ms)

    def position_risk(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest:
        params = [("symbol", venue_symbol)] if venue_symbol else []
        return self._signed("GET", "/fapi/v2/positionRisk", params, timestamp_ms)

    def balance(self, timestamp_ms: int) -> HttpRequest:
        return self._signed("GET", "/fapi/v2/balance", [], timestamp_ms)

    def countdown_cancel_all(self, venue_symbol: str, countdown_ms: int, timestamp_ms: int) -> HttpRequest:
        """Dead-man switch (§3.9); renew it before it runs out, 0 disables."""
        params = [("symbol", venue_symbol), ("countdownTime", str(countdown_ms))]
        return self._signed("POST", "/fapi/v1/countdownCancelAll", params, timestamp_ms)

    # --- user data stream ------------------------------------------------------------------

    def listen_key_create(self) -> HttpRequest:
        return self._keyed("POST", "/fapi/v1/listenKey")

    def listen_key_keepalive(self) -> HttpRequest:
        return self._keyed("PUT", "/fapi/v1/listenKey")

    def listen_key_close(self) -> HttpRequest:
        return self._keyed("DELETE", "/fapi/v1/listenKey")


# --- public (unsigned) -----------------------------------------------------------------------


def server_time_request() -> HttpRequest:
    return HttpRequest("GET", "/fapi/v1/time")


def exchange_info_request() -> HttpRequest:
    return HttpRequest("GET", "/fapi/v1/exchangeInfo")


def user_stream_path(listen_key: str) -> str:
    """Path of the user-data stream on the ``fstream`` host (``/private`` entry point since 2026)."""
    return f"/private/ws/{listen_key}"
