"""Simulated Binance USD-M futures (venues.md §3): REST, ``/public`` + ``/market`` streams, user data."""

from __future__ import annotations

import hmac
import random
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import WSMsgType, web

from titan.symbols import SymbolError, normalize_symbol, venue_symbol
from titan.venues.binance.signing import sign
from titan.venues.sim.base import (
    RATE_HEADERS,
    PrivateConn,
    PublicConn,
    PublicSub,
    VenueSim,
    dec,
    json_response,
    scale,
)
from titan.venues.sim.config import SimConfig
from titan.venues.sim.engine import EngineEvent, FillEvent, NewOrder, Order, Reject
from titan.venues.sim.faults import RollingWindow
from titan.venues.sim.prices import Quote

_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_TIF = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "GTX": "POST_ONLY"}
_TIF_OUT = {v: k for k, v in _TIF.items()}
_REJECTS: dict[Reject, tuple[int, str]] = {
    Reject.DUPLICATE_CLIENT_ID: (-4116, "ClientOrderId is duplicated."),
    Reject.INSUFFICIENT_BALANCE: (-2019, "Margin is insufficient."),
    Reject.REDUCE_ONLY_REJECTED: (-2022, "ReduceOnly Order is rejected."),
    Reject.INVALID_QTY: (-1111, "Precision is over the maximum defined for this asset."),
    Reject.INVALID_PRICE: (-4014, "Price not increased by tick size."),
    Reject.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
    Reject.POST_ONLY_WOULD_CROSS: (
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    ),
    Reject.NO_QUOTE: (
        -1006,
        "An unexpected response was received from the message bus. Execution status unknown.",
    ),
}
# Stream kind → entry point (venues.md §3.1); a stream on the wrong one is acknowledged and silent.
STREAM_ENTRY = {"bookTicker": "public", "depth": "public", "markPrice": "market", "aggTrade": "market"}
_WEIGHTS = {
    "/fapi/v1/userTrades": 5,
    "/fapi/v2/positionRisk": 5,
    "/fapi/v3/positionRisk": 5,
    "/fapi/v2/balance": 5,
    "/fapi/v3/balance": 5,
    "/fapi/v1/exchangeInfo": 1,
    "/fapi/v1/order": 1,
}


def _order_id(rng: random.Random, seq: int) -> str:
    return str(8_389_765_000_000_000_000 + seq)


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def err(code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"code": code, "msg": msg}, status=status, headers=headers)


class BinanceSim(VenueSim):
    venue = "binance"

    def __init__(self, cfg: SimConfig) -> None:
        super().__init__(cfg, _order_id)
        lim = cfg.rate_limits
        self._weight = RollingWindow(lim.binance_weight_per_min, 60_000)
        self._orders_10s: dict[str, RollingWindow] = {}
        self._orders_1m: dict[str, RollingWindow] = {}
        self._recent_429 = RollingWindow(10**9, 60_000)
        self.banned_until_ms = 0
        self._storm_hits = 0
        self._update_id: dict[str, int] = {}
        self.listen_keys: dict[str, str] = {}  # listenKey -> api key
        self._rng = random.Random(cfg.seed * 7919)
        self._countdowns: dict[tuple[str, str], int] = {}  # (api key, symbol) -> generation
        r = self.app.router
        r.add_get("/fapi/v1/ping", self.ping)
        r.add_get("/fapi/v1/time", self.server_time)
        r.add_get("/fapi/v1/exchangeInfo", self.exchange_info)
        r.add_post("/fapi/v1/order", self.create)
        r.add_get("/fapi/v1/order", self.query)
        r.add_delete("/fapi/v1/order", self.cancel)
        r.add_get("/fapi/v1/openOrders", self.open_orders)
        r.add_delete("/fapi/v1/allOpenOrders", self.cancel_all)
        r.add_get("/fapi/v1/userTrades", self.user_trades)
        r.add_get("/fapi/v2/positionRisk", self.position_risk)
        r.add_get("/fapi/v3/positionRisk", self.position_risk)
        r.add_get("/fapi/v2/balance", self.balance)
        r.add_get("/fapi/v3/balance", self.balance)
        r.add_post("/fapi/v1/countdownCancelAll", self.countdown)
        r.add_post("/fapi/v1/listenKey", self.listen_key_create)
        r.add_put("/fapi/v1/listenKey", self.listen_key_keepalive)
        r.add_delete("/fapi/v1/listenKey", self.listen_key_delete)
        for entry in ("public", "market"):
            r.add_get(f"/{entry}", self.public_ws)
            r.add_get(f"/{entry}/ws", self.public_ws)
            r.add_get(f"/{entry}/ws/{{streams:.+}}", self.public_ws)
            r.add_get(f"/{entry}/stream", self.public_ws)
        r.add_get("/private/ws/{listen_key}", self.private_ws)

    def unknown_response(self) -> web.StreamResponse:
        return err(-1006, "Unknown error, please check your request or try again later.", status=503)

    # ------------------------------------------------------------------ limits
    def _ban_response(self, now: int) -> web.Response:
        retry_s = max(1, (self.banned_until_ms - now + 999) // 1000)
        return err(
            -1003,
            f"Way too many requests; IP(127.0.0.1) banned until {self.banned_until_ms}. "
            "Please use the websocket for live updates to avoid bans.",
            status=418,
            headers={"Retry-After": str(retry_s)},
        )

    def rate_limited(self, request: web.Request) -> web.StreamResponse | None:
        now = self.now_ms()
        lim = self.cfg.rate_limits
        if self.faults.rate_limit_storm:
            self._storm_hits += 1
            if self._storm_hits > lim.binance_429s_before_ban:
                self.banned_until_ms = max(self.banned_until_ms, now + lim.binance_ban_s * 1000)
                return self._ban_response(now)
            retry = str(self.faults.storm_retry_after_s)
            return err(
                -1003,
                "Too many requests; current limit of IP(127.0.0.1) request weight is "
                f"{lim.binance_weight_per_min} per minute.",
                status=429,
                headers={"Retry-After": retry},
            )
        self._storm_hits = 0
        if now < self.banned_until_ms:
            return self._ban_response(now)
        weight = _WEIGHTS.get(request.path, 1)
        if request.path == "/fapi/v1/order" and request.method == "POST":
            weight = 0
        over = not self._weight.hit(now, weight)
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._weight.used(now))}
        key = request.headers.get("X-MBX-APIKEY", "")
        if not over and request.path == "/fapi/v1/order" and request.method == "POST":
            w10 = self._orders_10s.setdefault(key, RollingWindow(lim.binance_orders_per_10s, 10_000))
            w60 = self._orders_1m.setdefault(key, RollingWindow(lim.binance_orders_per_min, 60_000))
            if not (w10.hit(now) and w60.hit(now)):
                headers["X-MBX-ORDER-COUNT-10S"] = str(w10.used(now))
                headers["X-MBX-ORDER-COUNT-1M"] = str(w60.used(now))
                headers["Retry-After"] = str(max(1, (w10.reset_at_ms(now) - now + 999) // 1000))
                return err(
                    -1015,
                    f"Too many new orders; current limit is {w10.limit} orders per TEN_SECONDS.",
                    status=429,
                    headers=headers,
                )
            headers["X-MBX-ORDER-COUNT-10S"] = str(w10.used(now))
            headers["X-MBX-ORDER-COUNT-1M"] = str(w60.used(now))
        request[RATE_HEADERS] = headers
        if not over:
            return None
        # Requests after a 429 escalate to a 418 ban (venues.md §3.7).
        if not self._recent_429.hit(now) or self._recent_429.used(now) > lim.binance_429s_before_ban:
            self.banned_until_ms = now + lim.binance_ban_s * 1000
            return self._ban_response(now)
        headers["Retry-After"] = str(max(1, (self._weight.reset_at_ms(now) - now + 999) // 1000))
        return err(
            -1003,
            "Too many requests; current limit of IP(127.0.0.1) request weight is "
            f"{lim.binance_weight_per_min} per minute.",
            status=429,
            headers=headers,
        )

    # ------------------------------------------------------------------ auth
    async def signed(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """(api_key, params) after the key, signature and timestamp checks; raises BinanceError."""
        key = request.headers.get("X-MBX-APIKEY", "")
        secret = self.secrets.get(key)
        if secret is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        signature = ""
        parts = []
        for text in (query, body):
            at = text.find("signature=")
            if at >= 0 and (at == 0 or text[at - 1] == "&"):
                signature = text[at + len("signature=") :].split("&", 1)[0]
                text = text[: max(at - 1, 0)]
            parts.append(text)
        total_params = parts[0] + parts[1]
        params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(parse_qsl(query, keep_blank_values=True))  # the query's value wins
        params.pop("signature", None)
        if "timestamp" not in params:
            raise BinanceError(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            )
        if not signature:
            raise BinanceError(
                -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        if not hmac.compare_digest(sign(secret, total_params), signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        now = self.now_ms()
        try:
            ts = int(params["timestamp"])
            recv = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise BinanceError(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        if ts >= now + 1000:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > recv:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return key, params

    def keyed(self, request: web.Request) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        if key not in self.secrets:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        return key

    def symbol_of(self, params: dict[str, str], required: bool = True) -> str | None:
        raw = params.get("symbol")
        if not raw:
            if required:
                raise BinanceError(
                    -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
                )
            return None
        try:
            canonical = normalize_symbol(raw)
        except SymbolError:
            raise BinanceError(-1121, "Invalid symbol.") from None
        if canonical not in self.engine.instruments or raw != venue_symbol(canonical, "binance"):
            raise BinanceError(-1121, "Invalid symbol.")
        return canonical

    # ------------------------------------------------------------------ public REST
    async def ping(self, request: web.Request) -> web.StreamResponse:
        return json_response({})

    async def server_time(self, request: web.Request) -> web.StreamResponse:
        return json_response({"serverTime": self.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.StreamResponse:
        lim = self.cfg.rate_limits
        symbols = []
        for inst in self.engine.instruments.values():
            base, _, quote = inst.symbol.partition("/")
            symbols.append(
                {
                    "symbol": venue_symbol(inst.symbol, "binance"),
                    "pair": venue_symbol(inst.symbol, "binance"),
                    "contractType": "PERPETUAL",
                    "status": "TRADING",
                    "baseAsset": base,
                    "quoteAsset": quote,
                    "marginAsset": quote,
                    "pricePrecision": scale(inst.tick),
                    "quantityPrecision": scale(inst.lot),
                    "orderTypes": ["LIMIT", "MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": str(inst.tick),
                            "maxPrice": "4529764",
                            "tickSize": str(inst.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "stepSize": str(inst.lot),
                            "minQty": str(inst.min_qty),
                            "maxQty": str(inst.max_qty),
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "stepSize": str(inst.lot),
                            "minQty": str(inst.min_qty),
                            "maxQty": str(inst.max_qty),
                        },
                        {"filterType": "MIN_NOTIONAL", "notional": str(inst.min_notional)},
                    ],
                }
            )
        return json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": lim.binance_weight_per_min,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": lim.binance_orders_per_min,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": lim.binance_orders_per_10s,
                    },
                ],
                "assets": [{"asset": "USDT", "marginAvailable": True}],
                "symbols": symbols,
            }
        )

    # ------------------------------------------------------------------ orders
    def order_json(self, o: Order) -> dict[str, Any]:
        return {
            "orderId": int(o.order_id),
            "symbol": venue_symbol(o.symbol, "binance"),
            "status": self.status(o),
            "clientOrderId": o.client_id,
            "price": str(o.price) if o.price is not None else "0",
            "avgPrice": dec(o.avg_price) or "0",
            "origQty": str(o.qty),
            "executedQty": dec(o.filled),
            "cumQty": dec(o.filled),
            "cumQuote": dec(o.filled_value),
            "timeInForce": "GTC" if o.type == "MARKET" else _TIF_OUT[o.tif],
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": o.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": o.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": o.created_ms,
            "updateTime": o.updated_ms,
        }

    @staticmethod
    def status(o: Order) -> str:
        if o.status == "CANCELED" and o.cancel_reason == "ioc":
            return "EXPIRED"
        return o.status

    async def create(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p)
            assert symbol is not None
            client_id = p.get("newClientOrderId") or f"sim{self._rng.getrandbits(64):x}"
            if not _CLIENT_ID.match(client_id):
                raise BinanceError(-4015, "Client order id is not valid.")
            side, otype = p.get("side"), p.get("type")
            if side not in ("BUY", "SELL") or otype not in ("LIMIT", "MARKET"):
                raise BinanceError(-1116, "Invalid orderType.")
            tif = "IOC" if otype == "MARKET" else _TIF.get(p.get("timeInForce", ""))
            if tif is None:
                raise BinanceError(
                    -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
                )
            try:
                qty = Decimal(p["quantity"])
                price = Decimal(p["price"]) if otype == "LIMIT" else None
            except (KeyError, InvalidOperation):
                raise BinanceError(
                    -1102,
                    "Mandatory parameter 'quantity' or 'price' was not sent, was empty/null, or malformed.",
                ) from None
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        req = NewOrder(
            api_key=key,
            symbol=symbol,
            side=side,
            type=otype,
            tif=tif,
            qty=qty,
            price=price,
            reduce_only=p.get("reduceOnly") == "true",
            client_id=client_id,
        )
        return await self.submit(
            request, req, lambda r: err(*_REJECTS[r]), lambda o: json_response(self.order_json(o))
        )

    def _find(self, key: str, p: dict[str, str]) -> Order | None:
        if p.get("orderId"):
            return self.engine.find(key, order_id=p["orderId"])
        if p.get("origClientOrderId"):
            return self.engine.find(key, client_id=p["origClientOrderId"])
        raise BinanceError(
            -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )

    async def query(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p)
            order = self._find(key, p)
            if order is None or order.symbol != symbol:
                raise BinanceError(-2013, "Order does not exist.")
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        return json_response(self.order_json(order))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p)
            order = self._find(key, p)
            if order is None or order.symbol != symbol or not order.is_open:
                raise BinanceError(-2011, "Unknown order sent.")
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        events = self.engine.cancel(order, "user")
        self.later(0.002, self.dispatch, events)
        return json_response(self.order_json(order))

    async def open_orders(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p, required=False)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        return json_response([self.order_json(o) for o in self.engine.open_orders(key, symbol)])

    async def cancel_all(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        self._cancel_all(key, symbol)
        return json_response({"code": 200, "msg": "The operation of cancel all open order is done."})

    def _cancel_all(self, key: str, symbol: str | None) -> None:
        events: list[EngineEvent] = []
        for order in self.engine.open_orders(key, symbol):
            events.extend(self.engine.cancel(order, "user"))
        self.later(0.002, self.dispatch, events)

    async def countdown(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p)
            assert symbol is not None
            countdown_ms = int(p.get("countdownTime", "0"))
        except (BinanceError, ValueError) as exc:
            if isinstance(exc, BinanceError):
                return err(exc.code, exc.msg, exc.status)
            return err(
                -1102, "Mandatory parameter 'countdownTime' was not sent, was empty/null, or malformed."
            )
        generation = self._countdowns.get((key, symbol), 0) + 1
        self._countdowns[(key, symbol)] = generation
        if countdown_ms > 0:
            self.later(countdown_ms / 1000, self._countdown_fire, key, symbol, generation)
        return json_response({"symbol": p["symbol"], "countdownTime": str(countdown_ms)})

    async def _countdown_fire(self, key: str, symbol: str, generation: int) -> None:
        if self._countdowns.get((key, symbol)) == generation:
            self._cancel_all(key, symbol)

    async def user_trades(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        start = int(p.get("startTime", "0"))
        from_id = int(p.get("fromId", "0"))
        fills = [
            f
            for f in self.engine.account_fills(key, symbol, p.get("orderId") or None)
            if f.ts_ms >= start and f.trade_id >= from_id
        ]
        limit = int(p.get("limit", "500"))
        return json_response(
            [
                {
                    "buyer": f.side == "BUY",
                    "commission": dec(f.fee),
                    "commissionAsset": "USDT",
                    "id": f.trade_id,
                    "maker": f.is_maker,
                    "orderId": int(f.order_id),
                    "price": str(f.price),
                    "qty": str(f.qty),
                    "quoteQty": dec(f.price * f.qty),
                    "realizedPnl": dec(f.realised_pnl),
                    "side": f.side,
                    "positionSide": "BOTH",
                    "symbol": venue_symbol(f.symbol, "binance"),
                    "time": f.ts_ms,
                }
                for f in fills[-limit:]
            ]
        )

    def position_json(self, key: str, symbol: str) -> dict[str, Any]:
        pos = self.engine.position(key, symbol)
        quote = self.engine.quotes.get(symbol)
        mark = quote.mark if quote else Decimal(0)
        return {
            "symbol": venue_symbol(symbol, "binance"),
            "positionAmt": dec(pos.qty) or "0",
            "entryPrice": dec(pos.avg_price) or "0",
            "breakEvenPrice": dec(pos.avg_price) or "0",
            "markPrice": str(mark),
            "unRealizedProfit": dec(self.engine.unrealised(key, symbol)) or "0",
            "liquidationPrice": "0",
            "leverage": dec(self.engine.leverage),
            "marginType": "cross",
            "isolatedMargin": "0",
            "isAutoAddMargin": "false",
            "positionSide": "BOTH",
            "notional": dec(pos.qty * mark) or "0",
            "updateTime": self.now_ms(),
        }

    async def position_risk(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.signed(request)
            symbol = self.symbol_of(p, required=False)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        symbols = [symbol] if symbol else list(self.engine.instruments)
        return json_response([self.position_json(key, s) for s in symbols])

    async def balance(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = await self.signed(request)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        acct = self.engine.accounts[key]
        upnl = sum((self.engine.unrealised(key, s) for s in self.engine.instruments), Decimal(0))
        return json_response(
            [
                {
                    "accountAlias": "SimAcct",
                    "asset": "USDT",
                    "balance": dec(acct.balance),
                    "crossWalletBalance": dec(acct.balance),
                    "crossUnPnl": dec(upnl) or "0",
                    "availableBalance": dec(self.engine.available(key)),
                    "maxWithdrawAmount": dec(self.engine.available(key)),
                    "marginAvailable": True,
                    "updateTime": self.now_ms(),
                }
            ]
        )

    # ------------------------------------------------------------------ user data stream
    async def listen_key_create(self, request: web.Request) -> web.StreamResponse:
        try:
            key = self.keyed(request)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        for existing, owner in self.listen_keys.items():
            if owner == key:
                return json_response({"listenKey": existing})
        listen_key = f"{self._rng.getrandbits(256):064x}"
        self.listen_keys[listen_key] = key
        return json_response({"listenKey": listen_key})

    async def listen_key_keepalive(self, request: web.Request) -> web.StreamResponse:
        try:
            key = self.keyed(request)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        for existing, owner in self.listen_keys.items():
            if owner == key:
                return json_response({"listenKey": existing})
        return err(-1125, "This listenKey does not exist.")

    async def listen_key_delete(self, request: web.Request) -> web.StreamResponse:
        try:
            key = self.keyed(request)
        except BinanceError as exc:
            return err(exc.code, exc.msg, exc.status)
        for existing in [k for k, owner in self.listen_keys.items() if owner == key]:
            del self.listen_keys[existing]
        return json_response({})

    async def private_ws(self, request: web.Request) -> web.StreamResponse:
        api_key = self.listen_keys.get(request.match_info["listen_key"])
        if api_key is None:
            return err(-1125, "This listenKey does not exist.")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = PrivateConn(ws, request)
        conn.api_key = api_key
        conn.topics.add("*")
        self.private.add(conn)
        await self.replay_fills(conn)
        try:
            async for _ in ws:
                pass  # the user data stream takes no requests
        finally:
            self.private.discard(conn)
        return ws

    def fill_topics(self) -> set[str]:
        return {"ORDER_TRADE_UPDATE"}

    FILL_QTY_KEYS = frozenset({"l"})  # this trade's quantity ("z", the order's cumulative, unchanged)

    def private_messages(self, events: list[EngineEvent]) -> list[tuple[str, str, bytes]]:
        out: list[tuple[str, str, bytes]] = []
        for ev in events:
            o = ev.order
            now = self.now_ms()
            fill = ev.fill if isinstance(ev, FillEvent) else None
            status = self.status(o)
            exec_type = "TRADE" if fill else ("NEW" if status == "NEW" else status)
            data = {
                "s": venue_symbol(o.symbol, "binance"),
                "c": o.client_id,
                "S": o.side,
                "o": o.type,
                "f": "GTC" if o.type == "MARKET" else _TIF_OUT[o.tif],
                "q": str(o.qty),
                "p": str(o.price) if o.price is not None else "0",
                "ap": dec(o.avg_price) or "0",
                "sp": "0",
                "x": exec_type,
                "X": status,
                "i": int(o.order_id),
                "l": str(fill.qty) if fill else "0",
                "z": dec(o.filled) or "0",
                "L": str(fill.price) if fill else "0",
                "N": "USDT",
                "n": dec(fill.fee) if fill else "0",
                "T": fill.ts_ms if fill else o.updated_ms,
                "t": fill.trade_id if fill else 0,
                "b": "0",
                "a": "0",
                "m": fill.is_maker if fill else False,
                "R": o.reduce_only,
                "wt": "CONTRACT_PRICE",
                "ot": o.type,
                "ps": "BOTH",
                "cp": False,
                "rp": dec(fill.realised_pnl) or "0" if fill else "0",
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "EXPIRE_MAKER",
                "pm": "NONE",
                "gtd": 0,
            }
            t = fill.ts_ms if fill else o.updated_ms
            out.append(
                (
                    o.api_key,
                    "ORDER_TRADE_UPDATE",
                    msgspec.json.encode({"e": "ORDER_TRADE_UPDATE", "E": now, "T": t, "o": data}),
                )
            )
            if fill:
                acct = self.engine.accounts[o.api_key]
                pos = self.engine.position(o.api_key, o.symbol)
                update = {
                    "m": "ORDER",
                    "B": [{"a": "USDT", "wb": dec(acct.balance), "cw": dec(acct.balance), "bc": "0"}],
                    "P": [
                        {
                            "s": venue_symbol(o.symbol, "binance"),
                            "pa": dec(pos.qty) or "0",
                            "ep": dec(pos.avg_price) or "0",
                            "cr": dec(pos.realised) or "0",
                            "up": dec(self.engine.unrealised(o.api_key, o.symbol)) or "0",
                            "mt": "cross",
                            "iw": "0",
                            "ps": "BOTH",
                        }
                    ],
                }
                out.append(
                    (
                        o.api_key,
                        "ACCOUNT_UPDATE",
                        msgspec.json.encode({"e": "ACCOUNT_UPDATE", "E": now, "T": t, "a": update}),
                    )
                )
        return out

    # ------------------------------------------------------------------ public streams
    def timers(self) -> list[tuple[int, str]]:
        return [(1000, "markPrice")]

    async def on_quotes(self, quotes: dict[str, Quote]) -> None:
        for symbol in quotes:
            self._update_id[symbol] = self._update_id.get(symbol, 400_900_000) + 1
        await super().on_quotes(quotes)

    def _subscribe(self, conn: PublicConn, stream: str) -> None:
        name, _, kind = stream.partition("@")
        kind = kind.split("@", 1)[0]
        symbol = next(
            (s for s in self.engine.instruments if venue_symbol(s, "binance").lower() == name), None
        )
        entry = conn.path.strip("/").split("/", 1)[0]
        wrong_entry = STREAM_ENTRY.get(kind) != entry
        if symbol is not None and kind in ("bookTicker", "markPrice"):
            conn.subs[stream] = PublicSub(
                symbol=symbol, topic=stream, silent=wrong_entry or self.faults.silent_subscriptions
            )
        else:
            conn.subs[stream] = PublicSub(symbol="", topic=stream, silent=True)

    def ticker_frames(self, conn: PublicConn, quotes: dict[str, Quote], tick: str) -> list[bytes]:
        frames: list[bytes] = []
        combined = "/stream" in conn.path
        now = self.now_ms()
        for sub in conn.subs.values():
            quote = quotes.get(sub.symbol)
            if sub.silent or quote is None:
                continue
            vsym = venue_symbol(sub.symbol, "binance")
            data: dict[str, Any]
            if tick == "quote" and sub.topic.endswith("@bookTicker"):
                data = {
                    "e": "bookTicker",
                    "u": self._update_id.get(sub.symbol, 0),
                    "E": now,
                    "T": quote.ts_ms,
                    "s": vsym,
                    "b": str(quote.bid),
                    "B": str(quote.bid_size),
                    "a": str(quote.ask),
                    "A": str(quote.ask_size),
                }
            elif tick == "markPrice" and "@markPrice" in sub.topic:
                data = {
                    "e": "markPriceUpdate",
                    "E": now,
                    "s": vsym,
                    "p": str(quote.mark),
                    "i": str(quote.index),
                    "P": str(quote.mark),
                    "r": "0.00010000",
                    "T": (now // 28_800_000 + 1) * 28_800_000,
                }
            else:
                continue
            frames.append(msgspec.json.encode({"stream": sub.topic, "data": data} if combined else data))
        return frames

    async def public_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = PublicConn(ws, request, request.path)
        streams = request.match_info.get("streams", "") or request.query.get("streams", "")
        for stream in filter(None, streams.split("/")):
            self._subscribe(conn, stream)
        self.public.add(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = msgspec.json.decode(msg.data)
                except msgspec.DecodeError:
                    continue
                if not isinstance(req, dict):
                    continue
                method, req_id = req.get("method"), req.get("id")
                params = [str(s) for s in req.get("params", [])]
                if method == "SUBSCRIBE":
                    for stream in params:
                        self._subscribe(conn, stream)
                    await ws.send_json({"result": None, "id": req_id})
                elif method == "UNSUBSCRIBE":
                    for stream in params:
                        conn.subs.pop(stream, None)
                    await ws.send_json({"result": None, "id": req_id})
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_json({"result": list(conn.subs), "id": req_id})
        finally:
            self.public.discard(conn)
        return ws
