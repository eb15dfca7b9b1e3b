"""MEXC contract request builders (venues.md §4).

POST bodies are compact JSON signed as sent; numbers (``price``, ``vol``) are JSON numbers written
from decimal text, ``vol`` in CONTRACTS. GET signatures cover the business parameters sorted by
key with nulls omitted; path parameters are not signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from titan.venues.common.client_id import check_client_order_id
from titan.venues.common.orders import to_grid
from titan.venues.common.types import Credentials, HttpRequest, Instrument, OrderSpec, OrderType, TimeInForce
from titan.venues.common.wire import json_body, json_number
from titan.venues.mexc.contracts import base_to_contracts, side_code
from titan.venues.mexc.signing import param_string_get, sign, ws_login_signature

VENUE = "mexc"
OPEN_TYPE_ISOLATED = 1
OPEN_TYPE_CROSS = 2
POSITION_MODE_HEDGE = 1
POSITION_MODE_ONE_WAY = 2
MAX_CANCEL_BATCH = 50

ORDER_TYPE_LIMIT = 1
ORDER_TYPE_POST_ONLY = 2
ORDER_TYPE_IOC = 3
ORDER_TYPE_FOK = 4
ORDER_TYPE_MARKET = 5

_LIMIT_TYPE = {
    TimeInForce.GTC: ORDER_TYPE_LIMIT,
    TimeInForce.POST_ONLY: ORDER_TYPE_POST_ONLY,
    TimeInForce.IOC: ORDER_TYPE_IOC,
    TimeInForce.FOK: ORDER_TYPE_FOK,
}


def order_type_code(spec: OrderSpec) -> int:
    if spec.order_type is OrderType.MARKET:
        return ORDER_TYPE_MARKET
    return ORDER_TYPE_POST_ONLY if spec.is_post_only else _LIMIT_TYPE[spec.tif]


class MexcRequests:
    """Builds signed MEXC contract requests. ``timestamp_ms`` is always the offset-corrected clock (R19)."""

    def __init__(
        self,
        credentials: Credentials,
        open_type: int = OPEN_TYPE_CROSS,
        position_mode: int | None = None,
    ) -> None:
        self._credentials = credentials
        self.open_type = open_type
        self.position_mode = position_mode

    def _headers(self, timestamp_ms: int, param_string: str) -> dict[str, str]:
        request_time = str(timestamp_ms)
        return {
            "ApiKey": self._credentials.api_key,
            "Request-Time": request_time,
            "Signature": sign(
                self._credentials.secret, self._credentials.api_key, request_time, param_string
            ),
            "Content-Type": "application/json",
        }

    def _signed_get(self, path: str, params: Mapping[str, object | None], timestamp_ms: int) -> HttpRequest:
        # Our values are plain symbols and numbers, so the sorted string is also the URL query as sent.
        query = param_string_get(params)
        return HttpRequest("GET", path, query=query, headers=self._headers(timestamp_ms, query))

    def _signed_post(self, path: str, payload: object, timestamp_ms: int) -> HttpRequest:
        body = json_body(payload)
        return HttpRequest("POST", path, body=body, headers=self._headers(timestamp_ms, body.decode()))

    # --- orders ----------------------------------------------------------------------------

    def create_order(
        self, spec: OrderSpec, instrument: Instrument, timestamp_ms: int, leverage: int
    ) -> HttpRequest:
        """``POST /api/v1/private/order/create``; ``reduce_only`` orders use the close side codes."""
        check_client_order_id(VENUE, spec.client_order_id)
        if leverage < 1:
            raise ValueError("MEXC needs a leverage ≥ 1 on every order")
        grid = to_grid(spec, instrument)
        vol = base_to_contracts(grid.qty, instrument.contract_size)
        payload: dict[str, object] = {"symbol": spec.venue_symbol}
        if grid.price is not None:
            payload["price"] = json_number(grid.price)
        payload["vol"] = json_number(vol)
        payload["leverage"] = leverage
        payload["side"] = side_code(spec.side, closing=spec.reduce_only)
        payload["type"] = order_type_code(spec)
        payload["openType"] = self.open_type
        payload["externalOid"] = spec.client_order_id
        if self.position_mode is not None:
            payload["positionMode"] = self.position_mode
            if self.position_mode == POSITION_MODE_ONE_WAY and spec.reduce_only:
                payload["reduceOnly"] = True
        return self._signed_post("/api/v1/private/order/create", payload, timestamp_ms)

    def cancel_orders(self, venue_order_ids: list[str], timestamp_ms: int) -> HttpRequest:
        """``POST /api/v1/private/order/cancel`` with a JSON ARRAY of order ids (≤ 50)."""
        if not 1 <= len(venue_order_ids) <= MAX_CANCEL_BATCH:
            raise ValueError(f"cancel batch must hold 1–{MAX_CANCEL_BATCH} ids")
        return self._signed_post("/api/v1/private/order/cancel", list(venue_order_ids), timestamp_ms)

    def cancel_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        """Cancel by client id: ``POST /api/v1/private/order/cancel_with_external`` (array body)."""
        payload = [{"symbol": venue_symbol, "externalOid": client_order_id}]
        return self._signed_post("/api/v1/private/order/cancel_with_external", payload, timestamp_ms)

    def cancel_all(self, venue_symbol: str, timestamp_ms: int) -> HttpRequest:
        return self._signed_post("/api/v1/private/order/cancel_all", {"symbol": venue_symbol}, timestamp_ms)

    def query_order(self, venue_symbol: str, client_order_id: str, timestamp_ms: int) -> HttpRequest:
        """``GET /api/v1/private/order/external/{symbol}/{external_oid}`` (path params are not signed)."""
        path = (
            f"/api/v1/private/order/external/{quote(venue_symbol, safe='')}/{quote(client_order_id, safe='')}"
        )
        return self._signed_get(path, {}, timestamp_ms)

    def open_orders(
        self, timestamp_ms: int, venue_symbol: str | None = None, page_num: int = 1
    ) -> HttpRequest:
        """``GET /api/v1/private/order/list/open_orders[/{symbol}]`` (second-hand)."""
        path = "/api/v1/private/order/list/open_orders"
        if venue_symbol:
            path = f"{path}/{quote(venue_symbol, safe='')}"
        return self._signed_get(path, {"page_num": page_num, "page_size": 100}, timestamp_ms)

    def order_deals(
        self, venue_symbol: str, timestamp_ms: int, start_time_ms: int | None = None, page_num: int = 1
    ) -> HttpRequest:
        """``GET /api/v1/private/order/list/order_deals`` — unverified (venues.md §4.5)."""
        params: dict[str, object | None] = {
            "symbol": venue_symbol,
            "start_time": start_time_ms,
            "page_num": page_num,
            "page_size": 100,
        }
        return self._signed_get("/api/v1/private/order/list/order_deals", params, timestamp_ms)

    def positions(self, timestamp_ms: int, venue_symbol: str | None = None) -> HttpRequest:
        return self._signed_get(
            "/api/v1/private/position/open_positions", {"symbol": venue_symbol}, timestamp_ms
        )

    def assets(self, timestamp_ms: int) -> HttpRequest:
        return self._signed_get("/api/v1/private/account/assets", {}, timestamp_ms)

    # --- private stream --------------------------------------------------------------------

    def ws_login_message(self, req_time_ms: int) -> bytes:
        """``{"method":"login","param":{apiKey, reqTime, signature}}``; reqTime from the corrected clock."""
        req_time = str(req_time_ms)
        signature = ws_login_signature(self._credentials.secret, self._credentials.api_key, req_time)
        param = {"apiKey": self._credentials.api_key, "reqTime": req_time, "signature": signature}
        return json_body({"method": "login", "param": param})


# --- public (unsigned) -----------------------------------------------------------------------


def server_time_request() -> HttpRequest:
    return HttpRequest("GET", "/api/v1/contract/ping")


def contract_detail_request(venue_symbol: str | None = None) -> HttpRequest:
    return HttpRequest(
        "GET", "/api/v1/contract/detail", query=f"symbol={venue_symbol}" if venue_symbol else ""
    )


def ws_personal_filter_message(filters: Mapping[str, list[str]]) -> bytes:
    """Narrow private pushes, e.g. ``{"order": ["BTC_USDT"], "order.deal": ["BTC_USDT"]}``."""
    items = [{"filter": name, "rules": rules} for name, rules in filters.items()]
    return json_body({"method": "personal.filter", "param": {"filters": items}})


def ws_ping_message() -> bytes:
    return json_body({"method": "ping"})
