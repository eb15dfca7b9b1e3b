"""Bybit v5 linear request builders (venues.md §2): every private request is signed exactly as sent."""

from __future__ import annotations

from titan.venues.bybit.signing import sign, string_to_sign, ws_auth_signature
from titan.venues.common.client_id import check_client_order_id
from titan.venues.common.decimals import plain
from titan.venues.common.orders import to_grid
from titan.venues.common.types import (
    Credentials,
    HttpRequest,
    Instrument,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
)
from titan.venues.common.wire import json_body, query_string

VENUE = "bybit"
DEFAULT_RECV_WINDOW_MS = 5000

_SIDE = {Side.BUY: "Buy", Side.SELL: "Sell"}
_TIF = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
    TimeInForce.POST_ONLY: "PostOnly",
}


class BybitRequests:
    """Builds signed Bybit v5 requests. ``timestamp_ms`` is always the offset-corrected clock (R19)."""

    def __init__(
        self,
        credentials: Credentials,
        recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
        category: str = "linear",
        settle_coin: str = "USDT",
    ) -> None:
        self._credentials = credentials
        self._recv_window = str(recv_window_ms)
        self.category = category
        self.settle_coin = settle_coin

    # --- signing ---------------------------------------------------------------------------

    def _headers(self, timestamp_ms: int, payload: str) -> dict[str, str]:
        timestamp = str(timestamp_ms)
        plaintext = string_to_sign(timestamp, self._credentials.api_key, self._recv_window, payload)
        return {
            "X-BAPI-API-KEY": self._credentials.api_key,
            "X-BAPI-TIMESTAMP": timestamp,
            "X-BAPI-SIGN": sign(self._credentials.secret, plaintext),
            "X-BAPI-RECV-WINDOW": self._recv_window,
        }

    def _signed_get(self, path: str, params: list[tuple[str, str]], timestamp_ms: int) -> HttpRequest:
        query = query_string(params)
        return HttpRequest("GET", path, query=query, headers=self._headers(timestamp_ms, query))

    def _signed_post(self, path: str, payload: dict[str, object], timestamp_ms: int) -> HttpRequest:
        body = json_body(payload)
        headers = self._headers(timestamp_ms, body.decode())
        headers["Content-Type"] = "application/json"
        return HttpRequest("POST", path, body=body, headers=headers)

    # --- orders ----------------------------------------------------------------------------

    def create_order(
        self, spec: OrderSpec, instrument: Instrument, timestamp_ms: int, position_idx: int = 0
    ) -> HttpRequest:
        """``POST /v5/order/create``; qty/price rounded onto the instrument grid."""
        check_client_order_id(VENUE, spec.client_order_id)
        grid = to_grid(spec, instrument)
        payload: dict[str, object] = {
            "category": self.category,
            "symbol": spec.venue_symbol,
            "side": _SIDE[spec.side],
        }
        if spec.order_type is OrderType.MARKET:
            payload["orderType"] = "Market"
            payload["qty"] = plain(grid.qty)
            payload["timeInForce"] = "IOC"  # Bybit runs every market order as IOC
        else:
            assert grid.price is not None  # to_grid guarantees a price for LIMIT
            payload["orderType"] = "Limit"
            payload["qty"] = plain(grid.qty)
            payload["price"] = plain(grid.price)
            payload["timeInForce"] = "PostOnly" if spec.is_post_only else _TIF[spec.tif]
        payload["orderLinkId"] = spec.client_order_id
        payload["reduceOnly"] = spec.reduce_only
        payload["positionIdx"] = position_idx
        return self._signed_post("/v5/order/create", payload, timestamp_ms)

    def cancel_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        """``POST /v5/order/cancel`` by ``orderLinkId``."""
        payload: dict[str, object] = {
            "category": self.category,
            "symbol": venue_symbol,
            "orderLinkId": client_order_id,
        }
        return self._signed_post("/v5/order/cancel", payload, timestamp_ms)

    def cancel_all(self, venue_symbol: str, timestamp_ms: int) -> HttpRequest:
        payload: dict[str, object] = {"category": self.category, "symbol": venue_symbol}
        return self._signed_post("/v5/order/cancel-all", payload, timestamp_ms)

    def query_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        """``GET /v5/order/realtime`` by ``orderLinkId`` (open + the latest 500 closed orders)."""
        params = [("category", self.category), ("symbol", venue_symbol), ("orderLinkId", client_order_id)]
        return self._signed_get("/v5/order/realtime", params, timestamp_ms)

    def query_order_history(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        """``GET /v5/order/history``: after a Bybit restart closed orders are only here."""
        params = [("category", self.category), ("symbol", venue_symbol), ("orderLinkId", client_order_id)]
        return self._signed_get("/v5/order/history", params, timestamp_ms)

    def open_orders(
        self, timestamp_ms: int, venue_symbol: str | None = None, cursor: str = ""
    ) -> HttpRequest:
        params = [("category", self.category)]
        params.append(("symbol", venue_symbol) if venue_symbol else ("settleCoin", self.settle_coin))
        params.append(("openOnly", "0"))
        params.append(("limit", "50"))
        if cursor:
            params.append(("cursor", cursor))
        return self._signed_get("/v5/order/realtime", params, timestamp_ms)

    def executions(
        self,
        timestamp_ms: int,
        venue_symbol: str | None = None,
        start_time_ms: int | None = None,
        cursor: str = "",
        limit: int = 100,
    ) -> HttpRequest:
        """``GET /v5/execution/list``: fills for reconciliation (newest first, paged by cursor)."""
        params = [("category", self.category)]
        if venue_symbol:
            params.append(("symbol", venue_symbol))
        if start_time_ms is not None:
            params.append(("startTime", str(start_time_ms)))
        params.append(("limit", str(limit)))
        if cursor:
            params.append(("cursor", cursor))
        return self._signed_get("/v5/execution/list", params, timestamp_ms)

    def positions(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest:
        params = [("category", self.category)]
        params.append(("symbol", venue_symbol) if venue_symbol else ("settleCoin", self.settle_coin))
        return self._signed_get("/v5/position/list", params, timestamp_ms)

    def wallet_balance(
        self, timestamp_ms: int, coin: str = "USDT", account_type: str = "UNIFIED"
    ) -> HttpRequest:
        params = [("accountType", account_type), ("coin", coin)]
        return self._signed_get("/v5/account/wallet-balance", params, timestamp_ms)

    def disconnected_cancel_all(self, time_window_s: int, timestamp_ms: int) -> HttpRequest:
        """Dead-man switch (§2.9); ``product`` must be set, it defaults to OPTIONS."""
        if not 3 <= time_window_s <= 300:
            raise ValueError("Bybit DCP window must be 3–300 s")
        payload: dict[str, object] = {"product": "DERIVATIVES", "timeWindow": time_window_s}
        return self._signed_post("/v5/order/disconnected-cancel-all", payload, timestamp_ms)

    # --- private stream --------------------------------------------------------------------

    def ws_auth_message(self, expires_ms: int) -> bytes:
        """``{"op":"auth","args":[key, expires, signature]}``; expires from the offset-corrected clock."""
        signature = ws_auth_signature(self._credentials.secret, expires_ms)
        return json_body({"op": "auth", "args": [self._credentials.api_key, expires_ms, signature]})


# --- public (unsigned) -----------------------------------------------------------------------


def server_time_request() -> HttpRequest:
    return HttpRequest("GET", "/v5/market/time")


def instruments_request(
    category: str = "linear", venue_symbol: str | None = None, cursor: str = ""
) -> HttpRequest:
    params = [("category", category)]
    if venue_symbol:
        params.append(("symbol", venue_symbol))
    if cursor:
        params.append(("cursor", cursor))
    return HttpRequest("GET", "/v5/market/instruments-info", query=query_string(params))


def ws_subscribe_message(topics: list[str], req_id: str = "sub") -> bytes:
    """Private topics are e.g. ``order``, ``execution``, ``position``, ``wallet``, ``dcp.future``."""
    return json_body({"req_id": req_id, "op": "subscribe", "args": topics})


def ws_ping_message(req_id: str = "ping") -> bytes:
    return json_body({"req_id": req_id, "op": "ping"})
