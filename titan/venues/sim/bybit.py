"""Simulated Bybit v5 linear (venues.md §2): REST, public ``tickers`` stream, private stream."""

from __future__ import annotations

import hmac
import random
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import WSMsgType, web

from titan.symbols import SymbolError, normalize_symbol, venue_symbol
from titan.venues.bybit.signing import sign, string_to_sign, ws_auth_signature
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

_LINK_ID = re.compile(r"^[0-9A-Za-z_-]{1,36}$")
_STATUS = {
    "NEW": "New",
    "PARTIALLY_FILLED": "PartiallyFilled",
    "FILLED": "Filled",
    "CANCELED": "Cancelled",
    "EXPIRED": "Cancelled",
    "REJECTED": "Rejected",
}
_TIF = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "PostOnly": "POST_ONLY"}
_TIF_OUT = {v: k for k, v in _TIF.items()}
_REJECTS: dict[Reject, tuple[int, str]] = {
    Reject.DUPLICATE_CLIENT_ID: (110072, "OrderLinkedID is duplicate"),
    Reject.INSUFFICIENT_BALANCE: (110007, "Available balance is insufficient"),
    Reject.REDUCE_ONLY_REJECTED: (110017, "Reduce-only order has same side with current position"),
    Reject.INVALID_QTY: (10001, "params error: qty invalid"),
    Reject.INVALID_PRICE: (10001, "params error: price invalid"),
    Reject.UNKNOWN_SYMBOL: (10001, "params error: symbol invalid"),
    Reject.POST_ONLY_WOULD_CROSS: (10001, "post-only order would take liquidity"),
    Reject.NO_QUOTE: (10016, "Internal System Error."),
}
_ORDER_PATHS = ("/v5/order/create", "/v5/order/cancel", "/v5/order/cancel-all", "/v5/order/amend")


def _order_id(rng: random.Random, seq: int) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class BybitError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class BybitSim(VenueSim):
    venue = "bybit"

    def __init__(self, cfg: SimConfig) -> None:
        super().__init__(cfg, _order_id)
        self._uid_windows: dict[tuple[str, str], RollingWindow] = {}
        self._ip_window = RollingWindow(cfg.rate_limits.bybit_ip_per_5s, 5000)
        self._storm_hits = 0
        self._cs = 1
        self._msg_id = 1
        r = self.app.router
        r.add_get("/v5/market/time", self.server_time)
        r.add_get("/v5/market/instruments-info", self.instruments_info)
        r.add_post("/v5/order/create", self.create)
        r.add_post("/v5/order/cancel", self.cancel)
        r.add_post("/v5/order/cancel-all", self.cancel_all)
        r.add_get("/v5/order/realtime", self.realtime)
        r.add_get("/v5/order/history", self.history)
        r.add_get("/v5/execution/list", self.executions)
        r.add_get("/v5/position/list", self.positions)
        r.add_get("/v5/account/wallet-balance", self.wallet)
        r.add_get("/v5/public/linear", self.public_ws)
        r.add_get("/v5/private", self.private_ws)

    # ------------------------------------------------------------------ envelopes
    def ok(self, result: object) -> web.Response:
        return json_response(
            {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.now_ms()}
        )

    def err(self, code: int, msg: str) -> web.Response:
        return json_response(
            {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": self.now_ms()}
        )

    def unknown_response(self) -> web.StreamResponse:
        return json_response(
            {"retCode": 10016, "retMsg": "Internal System Error.", "result": {}, "retExtInfo": {}}, status=502
        )

    # ------------------------------------------------------------------ limits
    def rate_limited(self, request: web.Request) -> web.StreamResponse | None:
        now = self.now_ms()
        if self.faults.rate_limit_storm:
            self._storm_hits += 1
            if self._storm_hits > 3:
                return web.Response(status=403, text="access too frequent", headers={"Retry-After": "600"})
            return self.err(10006, "Too many visits!")
        self._storm_hits = 0
        if not self._ip_window.hit(now):
            return web.Response(status=403, text="access too frequent", headers={"Retry-After": "600"})
        key = request.headers.get("X-BAPI-API-KEY")
        if key is None or not request.path.startswith(
            ("/v5/order", "/v5/execution", "/v5/position", "/v5/account")
        ):
            return None
        limits = self.cfg.rate_limits
        limit = limits.bybit_order_per_s if request.path in _ORDER_PATHS else limits.bybit_query_per_s
        window = self._uid_windows.setdefault((key, request.path), RollingWindow(limit, 1000))
        allowed = window.hit(now)
        request[RATE_HEADERS] = {
            "X-Bapi-Limit-Status": str(max(limit - window.used(now), 0)),
            "X-Bapi-Limit": str(limit),
            "X-Bapi-Limit-Reset-Timestamp": str(window.reset_at_ms(now)),
        }
        if allowed:
            return None
        response = self.err(10006, "Too many visits!")
        response.headers.update(request[RATE_HEADERS])
        return response

    # ------------------------------------------------------------------ auth
    async def authed(self, request: web.Request) -> tuple[str, str]:
        """(api_key, payload) after the signature and time-window checks; raises BybitError."""
        payload = await request.text() if request.method == "POST" else request.rel_url.raw_query_string
        key = request.headers.get("X-BAPI-API-KEY", "")
        secret = self.secrets.get(key)
        if secret is None:
            raise BybitError(10003, "API key is invalid.")
        ts = request.headers.get("X-BAPI-TIMESTAMP", "")
        recv = request.headers.get("X-BAPI-RECV-WINDOW", "5000")
        signature = request.headers.get("X-BAPI-SIGN", "")
        now = self.now_ms()
        try:
            ts_ms, recv_ms = int(ts), int(recv)
        except ValueError:
            raise BybitError(10001, "params error: timestamp or recv_window invalid") from None
        if not (now - recv_ms <= ts_ms < now + 1000):
            raise BybitError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts_ms}],server_timestamp[{now}],recv_window[{recv_ms}]",
            )
        expected = sign(secret, string_to_sign(ts, key, recv, payload))
        if not hmac.compare_digest(expected, signature.lower()):
            raise BybitError(
                10004, "error sign! origin_string[" + string_to_sign(ts, key, recv, payload) + "]"
            )
        return key, payload

    async def guarded(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        key, payload = await self.authed(request)
        if request.method == "POST":
            try:
                body = msgspec.json.decode(payload.encode() or b"{}")
            except msgspec.DecodeError:
                raise BybitError(10001, "params error: body is not JSON") from None
            if not isinstance(body, dict):
                raise BybitError(10001, "params error")
            return key, body
        return key, dict(parse_qsl(payload))

    def symbol_of(self, params: dict[str, Any], required: bool = True) -> str | None:
        raw = params.get("symbol")
        if not raw:
            if required:
                raise BybitError(10001, "params error: symbol is required")
            return None
        try:
            canonical = normalize_symbol(str(raw))
        except SymbolError:
            raise BybitError(10001, "params error: symbol invalid") from None
        if canonical not in self.engine.instruments or str(raw) != venue_symbol(canonical, "bybit"):
            raise BybitError(10001, "params error: symbol invalid")
        return canonical

    @staticmethod
    def check_category(params: dict[str, Any]) -> None:
        if params.get("category") != "linear":
            raise BybitError(10001, "params error: category only supports linear in the simulator")

    # ------------------------------------------------------------------ public REST
    async def server_time(self, request: web.Request) -> web.StreamResponse:
        now_ns = self.now_ms() * 1_000_000
        return self.ok({"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)})

    async def instruments_info(self, request: web.Request) -> web.StreamResponse:
        symbol = request.query.get("symbol")
        out = []
        for inst in self.engine.instruments.values():
            vsym = venue_symbol(inst.symbol, "bybit")
            if symbol and symbol != vsym:
                continue
            base, _, quote = inst.symbol.partition("/")
            out.append(
                {
                    "symbol": vsym,
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": base,
                    "quoteCoin": quote,
                    "settleCoin": quote,
                    "priceScale": str(scale(inst.tick)),
                    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                    "priceFilter": {
                        "minPrice": str(inst.tick),
                        "maxPrice": "1999999.8",
                        "tickSize": str(inst.tick),
                    },
                    "lotSizeFilter": {
                        "maxOrderQty": str(inst.max_qty),
                        "maxMktOrderQty": str(inst.max_qty),
                        "minOrderQty": str(inst.min_qty),
                        "qtyStep": str(inst.lot),
                        "postOnlyMaxOrderQty": str(inst.max_qty),
                        "minNotionalValue": str(inst.min_notional),
                    },
                }
            )
        return self.ok({"category": "linear", "list": out, "nextPageCursor": ""})

    # ------------------------------------------------------------------ orders
    async def create(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.guarded(request)
            self.check_category(p)
            symbol = self.symbol_of(p)
            assert symbol is not None
            link_id = str(p.get("orderLinkId", ""))
            if link_id and not _LINK_ID.match(link_id):
                raise BybitError(10001, "params error: orderLinkId is invalid")
            side = {"Buy": "BUY", "Sell": "SELL"}.get(str(p.get("side")))
            otype = {"Market": "MARKET", "Limit": "LIMIT"}.get(str(p.get("orderType")))
            if side is None or otype is None:
                raise BybitError(10001, "params error: side or orderType invalid")
            tif = "IOC" if otype == "MARKET" else _TIF.get(str(p.get("timeInForce", "GTC")))
            if tif is None:
                raise BybitError(10001, "params error: timeInForce invalid")
            try:
                qty = Decimal(str(p["qty"]))
                price = Decimal(str(p["price"])) if otype == "LIMIT" and "price" in p else None
            except (KeyError, InvalidOperation):
                raise BybitError(10001, "params error: qty or price invalid") from None
        except BybitError as exc:
            return self.err(exc.code, exc.msg)
        req = NewOrder(
            api_key=key,
            symbol=symbol,
            side=side,
            type=otype,
            tif=tif,
            qty=qty,
            price=price,
            reduce_only=bool(p.get("reduceOnly", False)),
            client_id=link_id,
        )

        def on_reject(reject: Reject) -> web.StreamResponse:
            return self.err(*_REJECTS[reject])

        def on_ack(order: Order) -> web.StreamResponse:
            return self.ok({"orderId": order.order_id, "orderLinkId": order.client_id})

        return await self.submit(request, req, on_reject, on_ack)

    def _find(self, key: str, p: dict[str, Any]) -> Order | None:
        # orderId wins if both are given (venues.md §2.3)
        if p.get("orderId"):
            return self.engine.find(key, order_id=str(p["orderId"]))
        if p.get("orderLinkId"):
            return self.engine.find(key, client_id=str(p["orderLinkId"]))
        raise BybitError(10001, "params error: orderId or orderLinkId is required")

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.guarded(request)
            self.check_category(p)
            symbol = self.symbol_of(p)
            order = self._find(key, p)
            if order is None or order.symbol != symbol or not order.is_open:
                raise BybitError(110001, "order not exists or too late to cancel")
        except BybitError as exc:
            return self.err(exc.code, exc.msg)
        events = self.engine.cancel(order, "user")
        self.later(0.002, self.dispatch, events)
        return self.ok({"orderId": order.order_id, "orderLinkId": order.client_id})

    async def cancel_all(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.guarded(request)
            self.check_category(p)
            symbol = self.symbol_of(p, required=False)
        except BybitError as exc:
            return self.err(exc.code, exc.msg)
        events: list[EngineEvent] = []
        cancelled = []
        for order in self.engine.open_orders(key, symbol):
            events.extend(self.engine.cancel(order, "user"))
            cancelled.append({"orderId": order.order_id, "orderLinkId": order.client_id})
        self.later(0.002, self.dispatch, events)
        return self.ok({"list": cancelled, "success": "1"})

    def order_json(self, o: Order) -> dict[str, Any]:
        cancel_type = {"user": "CancelByUser", "venue": "CancelByAdmin"}.get(o.cancel_reason, "UNKNOWN")
        reject = "EC_PostOnlyWillTakeLiquidity" if o.cancel_reason == "post_only" else "EC_NoError"
        return {
            "orderId": o.order_id,
            "orderLinkId": o.client_id,
            "blockTradeId": "",
            "symbol": venue_symbol(o.symbol, "bybit"),
            "price": str(o.price) if o.price is not None else "0",
            "qty": str(o.qty),
            "side": "Buy" if o.side == "BUY" else "Sell",
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": _STATUS[o.status],
            "cancelType": cancel_type if o.status in ("CANCELED", "EXPIRED") else "UNKNOWN",
            "rejectReason": reject,
            "avgPrice": dec(o.avg_price),
            "leavesQty": dec(o.leaves),
            "leavesValue": dec(o.leaves * (o.price or Decimal(0))),
            "cumExecQty": dec(o.filled),
            "cumExecValue": dec(o.filled_value),
            "cumExecFee": dec(o.fee),
            "timeInForce": "IOC" if o.type == "MARKET" else _TIF_OUT[o.tif],
            "orderType": "Market" if o.type == "MARKET" else "Limit",
            "stopOrderType": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "reduceOnly": o.reduce_only,
            "closeOnTrigger": False,
            "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }

    async def _order_query(self, request: web.Request, open_only: bool) -> web.StreamResponse:
        try:
            key, p = await self.guarded(request)
            self.check_category(p)
            symbol = self.symbol_of(p, required=False)
            if p.get("orderId") or p.get("orderLinkId"):
                found = self._find(key, p)
                orders = [found] if found is not None and symbol in (None, found.symbol) else []
            elif open_only and p.get("openOnly", "0") == "0":
                orders = self.engine.open_orders(key, symbol)
            else:
                orders = self.engine.account_orders(key, symbol)
        except BybitError as exc:
            return self.err(exc.code, exc.msg)
        limit = int(p.get("limit", 50))
        newest_first = sorted(orders, key=lambda o: o.created_ms, reverse=True)[:limit]
        return self.ok(
            {"category": "linear", "list": [self.order_json(o) for o in newest_first], "nextPageCursor": ""}
        )

    async def realtime(self, request: web.Request) -> web.StreamResponse:
        return await self._order_query(request, open_only=True)

    async def history(self, request: web.Request) -> web.StreamResponse:
        return await self._order_query(request, open_only=False)

    def exec_json(self, ev: FillEvent, seq: int) -> dict[str, Any]:
        f, o = ev.fill, ev.order
        quote = self.engine.quotes.get(f.symbol)
        return {
            "category": "linear",
            "symbol": venue_symbol(f.symbol, "bybit"),
            "execFee": dec(f.fee),
            "execId": str(uuid.UUID(int=f.trade_id)),
            "execPrice": str(f.price),
            "execQty": str(f.qty),
            "execType": "Trade",
            "execValue": dec(f.price * f.qty),
            "feeRate": dec(self.engine.maker_fee if f.is_maker else self.engine.taker_fee),
            "markPrice": str(quote.mark) if quote else "",
            "indexPrice": str(quote.index) if quote else "",
            "leavesQty": dec(o.leaves),
            "orderId": f.order_id,
            "orderLinkId": f.client_id,
            "orderPrice": str(o.price) if o.price is not None else "0",
            "orderQty": str(o.qty),
            "orderType": "Market" if o.type == "MARKET" else "Limit",
            "stopOrderType": "",
            "side": "Buy" if f.side == "BUY" else "Sell",
            "execTime": str(f.ts_ms),
            "isMaker": f.is_maker,
            "closedSize": "0",
            "execPnl": dec(f.realised_pnl),
            "feeCurrency": "USDT",
            "seq": seq,
        }

    async def executions(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.guarded(request)
            self.check_category(p)
            symbol = self.symbol_of(p, required=False)
            order_id = str(p["orderId"]) if p.get("orderId") else None
            if p.get("orderLinkId"):
                found = self.engine.find(key, client_id=str(p["orderLinkId"]))
                order_id = found.order_id if found else "-"
        except BybitError as exc:
            return self.err(exc.code, exc.msg)
        start = int(p.get("startTime", 0))
        fills = [f for f in self.engine.account_fills(key, symbol, order_id) if f.ts_ms >= start]
        fills.reverse()
        limit = int(p.get("limit", 50))
        out = []
        for f in fills[:limit]:
            order = self.engine.orders[f.order_id]
            out.append(self.exec_json(FillEvent(fill=f, order=order), f.trade_id))
        return self.ok({"category": "linear", "list": out, "nextPageCursor": ""})

    def position_json(self, key: str, symbol: str) -> dict[str, Any]:
        pos = self.engine.position(key, symbol)
        quote = self.engine.quotes.get(symbol)
        return {
            "positionIdx": 0,
            "symbol": venue_symbol(symbol, "bybit"),
            "side": "Buy" if pos.qty > 0 else "Sell" if pos.qty < 0 else "",
            "size": dec(abs(pos.qty)),
            "avgPrice": dec(pos.avg_price),
            "positionValue": dec(abs(pos.qty) * pos.avg_price),
            "leverage": dec(self.engine.leverage),
            "markPrice": str(quote.mark) if quote else "",
            "unrealisedPnl": dec(self.engine.unrealised(key, symbol)),
            "cumRealisedPnl": dec(pos.realised),
            "updatedTime": str(self.now_ms()),
        }

    async def positions(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.guarded(request)
            self.check_category(p)
            symbol = self.symbol_of(p, required=False)
            if symbol is None and not p.get("settleCoin"):
                raise BybitError(10001, "params error: symbol or settleCoin is required")
        except BybitError as exc:
            return self.err(exc.code, exc.msg)
        symbols = [symbol] if symbol else list(self.engine.instruments)
        out = [self.position_json(key, s) for s in symbols if symbol or self.engine.position(key, s).qty]
        return self.ok({"category": "linear", "list": out, "nextPageCursor": ""})

    async def wallet(self, request: web.Request) -> web.StreamResponse:
        try:
            key, p = await self.guarded(request)
        except BybitError as exc:
            return self.err(exc.code, exc.msg)
        if p.get("accountType") != "UNIFIED":
            return self.err(10001, "accountType only support UNIFIED")
        acct = self.engine.accounts[key]
        upnl = sum((self.engine.unrealised(key, s) for s in self.engine.instruments), Decimal(0))
        coin = {
            "coin": "USDT",
            "walletBalance": dec(acct.balance),
            "equity": dec(acct.balance + upnl),
            "unrealisedPnl": dec(upnl),
            "totalPositionIM": dec(self.engine.used_margin(key)),
            "availableToWithdraw": dec(self.engine.available(key)),
        }
        return self.ok({"list": [{"accountType": "UNIFIED", "totalEquity": coin["equity"], "coin": [coin]}]})

    # ------------------------------------------------------------------ private stream
    def fill_topics(self) -> set[str]:
        return {"execution", "execution.fast"}

    FILL_QTY_KEYS = frozenset({"execQty"})

    def _next_id(self) -> str:
        self._msg_id += 1
        return f"sim-{self._msg_id}"

    def private_messages(self, events: list[EngineEvent]) -> list[tuple[str, str, bytes]]:
        out: list[tuple[str, str, bytes]] = []
        enc = msgspec.json.encode
        for ev in events:
            now = self.now_ms()
            key = ev.order.api_key
            if isinstance(ev, FillEvent):
                ex = self.exec_json(ev, ev.fill.trade_id)
                fast = {
                    k: ex[k]
                    for k in (
                        "category",
                        "symbol",
                        "execId",
                        "execPrice",
                        "execQty",
                        "orderId",
                        "isMaker",
                        "orderLinkId",
                        "side",
                        "execTime",
                        "seq",
                    )
                }
                if ev.fill.is_maker:
                    fast["orderLinkId"] = ""  # maker fills carry no orderLinkId on execution.fast
                out.append(
                    (
                        key,
                        "execution.fast",
                        enc({"topic": "execution.fast", "creationTime": now, "data": [fast]}),
                    )
                )
                out.append(
                    (
                        key,
                        "execution",
                        enc({"id": self._next_id(), "topic": "execution", "creationTime": now, "data": [ex]}),
                    )
                )
            order = self.order_json(ev.order) | {"category": "linear"}
            out.append(
                (
                    key,
                    "order",
                    enc({"id": self._next_id(), "topic": "order", "creationTime": now, "data": [order]}),
                )
            )
            if isinstance(ev, FillEvent):
                pos = self.position_json(key, ev.order.symbol) | {"category": "linear"}
                out.append(
                    (
                        key,
                        "position",
                        enc({"id": self._next_id(), "topic": "position", "creationTime": now, "data": [pos]}),
                    )
                )
        return out

    async def private_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = PrivateConn(ws, request)
        conn_id = f"sim-priv-{id(conn):x}"
        self.private.add(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = msgspec.json.decode(msg.data)
                except msgspec.DecodeError:
                    continue
                op = req.get("op") if isinstance(req, dict) else None
                req_id = req.get("req_id", "") if isinstance(req, dict) else ""
                if op == "ping":
                    await ws.send_json(
                        {"req_id": req_id, "op": "pong", "args": [str(self.now_ms())], "conn_id": conn_id}
                    )
                elif op == "auth":
                    ok, message = self._check_ws_auth(req.get("args", []))
                    if ok:
                        conn.api_key = str(req["args"][0])
                    await ws.send_json(
                        {
                            "success": ok,
                            "ret_msg": message,
                            "op": "auth",
                            "conn_id": conn_id,
                            "req_id": req_id,
                        }
                    )
                elif op == "subscribe":
                    if conn.api_key is None:
                        await ws.send_json(
                            {
                                "success": False,
                                "ret_msg": "Request not authorized",
                                "op": op,
                                "conn_id": conn_id,
                                "req_id": req_id,
                            }
                        )
                        continue
                    for topic in req.get("args", []):
                        conn.topics.add(str(topic).removesuffix(".linear"))
                    await ws.send_json(
                        {"success": True, "ret_msg": "", "op": op, "conn_id": conn_id, "req_id": req_id}
                    )
                    await self.replay_fills(conn)
        finally:
            self.private.discard(conn)
        return ws

    def _check_ws_auth(self, args: list[Any]) -> tuple[bool, str]:
        if len(args) != 3:
            return False, "Params Error"
        key, expires, signature = str(args[0]), args[1], str(args[2])
        secret = self.secrets.get(key)
        if secret is None:
            return False, "Invalid apikey"
        try:
            expires_ms = int(expires)
        except (TypeError, ValueError):
            return False, "Params Error"
        if expires_ms <= self.now_ms():
            return False, "Request expired"
        if not hmac.compare_digest(ws_auth_signature(secret, expires_ms), signature):
            return False, "Invalid sign"
        return True, ""

    # ------------------------------------------------------------------ public stream
    def timers(self) -> list[tuple[int, str]]:
        return [(self.cfg.bybit_ticker_ms, "bybit")]

    def ticker_fields(self, symbol: str, q: Quote) -> dict[str, str]:
        return {
            "symbol": venue_symbol(symbol, "bybit"),
            "tickDirection": "PlusTick",
            "lastPrice": str(q.last),
            "markPrice": str(q.mark),
            "indexPrice": str(q.index),
            "bid1Price": str(q.bid),
            "bid1Size": str(q.bid_size),
            "ask1Price": str(q.ask),
            "ask1Size": str(q.ask_size),
            "fundingRate": "0.0001",
            "nextFundingTime": str((q.ts_ms // 28_800_000 + 1) * 28_800_000),
            "openInterest": "50000",
            "volume24h": "100000",
            "turnover24h": "6500000000",
        }

    def ticker_frames(self, conn: PublicConn, quotes: dict[str, Quote], tick: str) -> list[bytes]:
        if tick != "bybit":
            return []
        frames: list[bytes] = []
        for sub in conn.subs.values():
            quote = quotes.get(sub.symbol)
            if sub.silent or quote is None:
                continue
            fields = self.ticker_fields(sub.symbol, quote)
            if sub.last_sent is None:
                kind, data = "snapshot", fields
            else:
                last = sub.last_sent
                data = {k: v for k, v in fields.items() if last.get(k) != v}
                if not data:
                    continue
                kind = "delta"
                data["symbol"] = fields["symbol"]
            sub.last_sent = fields
            self._cs += 1
            frames.append(
                msgspec.json.encode(
                    {"topic": sub.topic, "type": kind, "cs": self._cs, "ts": self.now_ms(), "data": data}
                )
            )
        return frames

    async def public_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = PublicConn(ws, request, request.path)
        conn_id = f"sim-pub-{id(conn):x}"
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
                op, req_id = req.get("op"), req.get("req_id", "")
                if op == "ping":
                    await ws.send_json(
                        {
                            "success": True,
                            "ret_msg": "pong",
                            "conn_id": conn_id,
                            "req_id": req_id,
                            "op": "ping",
                        }
                    )
                elif op in ("subscribe", "unsubscribe"):
                    bad = []
                    for topic in req.get("args", []):
                        symbol = self._ticker_symbol(str(topic))
                        if symbol is None:
                            bad.append(str(topic))
                        elif op == "subscribe":
                            conn.subs[topic] = PublicSub(
                                symbol=symbol, topic=topic, silent=self.faults.silent_subscriptions
                            )
                        else:
                            conn.subs.pop(topic, None)
                    reply = {
                        "success": not bad,
                        "ret_msg": f"Invalid topic :{bad}" if bad else "",
                        "conn_id": conn_id,
                        "req_id": req_id,
                        "op": op,
                    }
                    await ws.send_json(reply)
        finally:
            self.public.discard(conn)
        return ws

    def _ticker_symbol(self, topic: str) -> str | None:
        prefix, _, raw = topic.partition(".")
        if prefix != "tickers":
            return None
        for inst in self.engine.instruments:
            if venue_symbol(inst, "bybit") == raw:
                return inst
        return None
