"""Signed clients for the three simulated venues, written from the venue docs (not from the simulator)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp

from titan.venues.binance.signing import sign as binance_sign
from titan.venues.bybit.signing import sign as bybit_sign
from titan.venues.bybit.signing import string_to_sign, ws_auth_signature
from titan.venues.mexc.signing import param_string_get, ws_login_signature
from titan.venues.mexc.signing import sign as mexc_sign

BYBIT_KEY, BYBIT_SECRET = "sim-bybit-key", "sim-bybit-secret"
BINANCE_KEY, BINANCE_SECRET = "sim-binance-key", "sim-binance-secret"
MEXC_KEY, MEXC_SECRET = "sim-mexc-key", "sim-mexc-secret"


def now_ms(offset_ms: int = 0) -> int:
    return time.time_ns() // 1_000_000 + offset_ms


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0, poll_s: float = 0.01) -> None:
    """Poll ``check`` until it holds; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(poll_s)


class Bybit:
    def __init__(
        self, http: aiohttp.ClientSession, base: str, key: str = BYBIT_KEY, secret: str = BYBIT_SECRET
    ):
        self.http, self.base, self.key, self.secret = http, base, key, secret
        self.offset_ms = 0

    def headers(self, payload: str, ts: int | None = None) -> dict[str, str]:
        t = str(ts if ts is not None else now_ms(self.offset_ms))
        sig = bybit_sign(self.secret, string_to_sign(t, self.key, "5000", payload))
        return {
            "X-BAPI-API-KEY": self.key,
            "X-BAPI-TIMESTAMP": t,
            "X-BAPI-SIGN": sig,
            "X-BAPI-RECV-WINDOW": "5000",
            "Content-Type": "application/json",
        }

    async def post(self, path: str, body: dict[str, Any], **kw: Any) -> tuple[int, dict[str, Any], Any]:
        text = json.dumps(body)
        async with self.http.post(self.base + path, data=text, headers=self.headers(text), **kw) as r:
            return r.status, dict(r.headers), await r.json()

    async def get(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any], Any]:
        query = urlencode(params)
        async with self.http.get(f"{self.base}{path}?{query}", headers=self.headers(query)) as r:
            return r.status, dict(r.headers), await r.json()

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"category": "linear", "symbol": "BTCUSDT", **fields}
        return (await self.post("/v5/order/create", body))[2]  # type: ignore[no-any-return]  # json

    async def private(self, ws_base: str, topics: list[str]) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(ws_base + "/v5/private")
        expires = now_ms(10_000)
        await ws.send_json(
            {"op": "auth", "args": [self.key, expires, ws_auth_signature(self.secret, expires)]}
        )
        assert (await ws.receive_json(timeout=5))["success"] is True
        await ws.send_json({"op": "subscribe", "args": topics})
        assert (await ws.receive_json(timeout=5))["success"] is True
        return ws


class Binance:
    def __init__(
        self, http: aiohttp.ClientSession, base: str, key: str = BINANCE_KEY, secret: str = BINANCE_SECRET
    ):
        self.http, self.base, self.key, self.secret = http, base, key, secret

    def signed_query(self, params: dict[str, str]) -> str:
        query = urlencode({**params, "timestamp": str(now_ms()), "recvWindow": "5000"})
        return f"{query}&signature={binance_sign(self.secret, query)}"

    async def call(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any], Any]:
        """GET/DELETE in the query string, POST as a form body (our adapters' encoding, venues.md §3.2)."""
        headers = {"X-MBX-APIKEY": self.key}
        signed = self.signed_query(params)
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            req = self.http.request(method, self.base + path, data=signed, headers=headers)
        else:
            req = self.http.request(method, f"{self.base}{path}?{signed}", headers=headers)
        async with req as r:
            return r.status, dict(r.headers), await r.json()

    async def create(self, **fields: str) -> tuple[int, Any]:
        status, _, body = await self.call("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", **fields})
        return status, body

    async def private(self, ws_base: str) -> aiohttp.ClientWebSocketResponse:
        async with self.http.post(self.base + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": self.key}) as r:
            listen_key = (await r.json())["listenKey"]
        return await self.http.ws_connect(f"{ws_base}/private/ws/{listen_key}")


class Mexc:
    def __init__(
        self, http: aiohttp.ClientSession, base: str, key: str = MEXC_KEY, secret: str = MEXC_SECRET
    ):
        self.http, self.base, self.key, self.secret = http, base, key, secret
        self.offset_ms = 0

    def headers(self, payload: str) -> dict[str, str]:
        t = str(now_ms(self.offset_ms))
        return {
            "ApiKey": self.key,
            "Request-Time": t,
            "Signature": mexc_sign(self.secret, self.key, t, payload),
            "Content-Type": "application/json",
        }

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        text = json.dumps(body)
        async with self.http.post(self.base + path, data=text, headers=self.headers(text)) as r:
            return r.status, await r.json()

    async def get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        params = params or {}
        query = urlencode(sorted(params.items()))
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        async with self.http.get(url, headers=self.headers(param_string_get(params))) as r:
            return r.status, await r.json()

    async def create(self, **fields: Any) -> Any:
        body = {"symbol": "BTC_USDT", "openType": 2, "leverage": 10, **fields}
        return (await self.post("/api/v1/private/order/create", body))[1]

    async def private(self, ws_base: str) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(ws_base + "/edge")
        t = str(now_ms())
        await ws.send_json(
            {
                "method": "login",
                "param": {
                    "apiKey": self.key,
                    "reqTime": t,
                    "signature": ws_login_signature(self.secret, self.key, t),
                },
            }
        )
        assert (await ws.receive_json(timeout=5))["channel"] == "rs.login"
        return ws


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, match: Callable[[dict[str, Any]], bool], timeout_s: float = 5.0
) -> dict[str, Any]:
    """The first JSON message that matches, skipping others; fails after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await ws.receive_json()
            if match(msg):
                return msg  # type: ignore[no-any-return]  # JSON object


async def collect(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict[str, Any]]:
    """Every JSON message received within ``seconds`` (a bounded observation window)."""
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        out.append(json.loads(msg.data))
    return out


Awaitable_ = Awaitable  # re-exported for type hints in tests
