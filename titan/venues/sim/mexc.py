"""Simulated MEXC contract (venues.md §4): REST, ``/edge`` public and private streams."""

from __future__ import annotations

import hmac
import random
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from titan.symbols import SymbolError, normalize_symbol, venue_symbol
from titan.venues.mexc.signing import param_string_get, sign, ws_login_signature
from titan.venues.sim.base import PrivateConn, PublicConn, PublicSub, VenueSim, scale
from titan.venues.sim.config import SimConfig, SimInstrument
from titan.venues.sim.engine import ZERO, EngineEvent, FillEvent, NewOrder, Order, Reject
from titan.venues.sim.faults import RollingWindow
from titan.venues.sim.prices import Quote

# MEXC writes decimals as JSON numbers (venues.md §4.6).
_enc = msgspec.json.Encoder(decimal_format="number")
_dec = msgspec.json.Decoder(float_hook=Decimal)
_SIDES = {1: ("BUY", False), 2: ("BUY", True), 3: ("SELL", False), 4: ("SELL", True)}
_TYPES = {
    1: ("LIMIT", "GTC"),
    2: ("LIMIT", "POST_ONLY"),
    3: ("LIMIT", "IOC"),
    4: ("LIMIT", "FOK"),
    5: ("MARKET", "IOC"),
}
_REJECTS: dict[Reject, tuple[int, str]] = {
    Reject.DUPLICATE_CLIENT_ID: (603, "Repeated requests"),
    Reject.INSUFFICIENT_BALANCE: (2005, "Balance insufficient"),
    Reject.REDUCE_ONLY_REJECTED: (2009, "Position does not exist or closed"),
    Reject.INVALID_QTY: (2015, "Price or quantity precision error"),
    Reject.INVALID_PRICE: (2015, "Price or quantity precision error"),
    Reject.UNKNOWN_SYMBOL: (1001, "Contract does not exist"),
    Reject.POST_ONLY_WOULD_CROSS: (2015, "Post only order would take liquidity"),
    Reject.NO_QUOTE: (9999, "System error"),
}
_ORDER_ENTRY = ("/api/v1/private/order/create", "/api/v1/private/order/submit")
_PUSH_FILTERS = {
    "order": "push.personal.order",
    "order.deal": "push.personal.order.deal",
    "position": "push.personal.position",
    "asset": "push.personal.asset",
}


def _order_id(rng: random.Random, seq: int) -> str:
    return str(739_113_577_038_000_000 + seq * 1024 + rng.randint(0, 1023))


def _num(value: Decimal) -> Decimal:
    """Normalised so a JSON number carries no trailing zeros or exponent."""
    return Decimal(format(value.normalize(), "f"))


class MexcError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def ok(data: object) -> web.Response:
    return web.Response(
        body=_enc.encode({"success": True, "code": 0, "data": data}), content_type="application/json"
    )


def fail(code: int, msg: str, status: int = 200) -> web.Response:
    return web.Response(
        body=_enc.encode({"success": False, "code": code, "message": msg}),
        status=status,
        content_type="application/json",
    )


class MexcSim(VenueSim):
    venue = "mexc"

    def __init__(self, cfg: SimConfig) -> None:
        super().__init__(cfg, _order_id)
        self._contract = {i.symbol: i.contract_size for i in cfg.instruments}
        self._windows: dict[tuple[str, str], RollingWindow] = {}
        self._codes: dict[str, tuple[int, int]] = {}  # order id -> (side code, type code)
        r = self.app.router
        r.add_get("/api/v1/contract/ping", self.ping)
        r.add_get("/api/v1/contract/detail", self.detail)
        r.add_post("/api/v1/private/order/create", self.create)
        r.add_post("/api/v1/private/order/submit", self.create)
        r.add_post("/api/v1/private/order/cancel", self.cancel)
        r.add_post("/api/v1/private/order/cancel_with_external", self.cancel_with_external)
        r.add_post("/api/v1/private/order/cancel_all", self.cancel_all)
        r.add_get("/api/v1/private/order/external/{symbol}/{external_oid}", self.query_external)
        r.add_get("/api/v1/private/order/get/{order_id}", self.query_id)
        r.add_get("/api/v1/private/order/list/open_orders/{symbol}", self.open_orders)
        r.add_get("/api/v1/private/order/list/open_orders", self.open_orders)
        r.add_get("/api/v1/private/order/list/order_deals", self.order_deals)
        r.add_get("/api/v1/private/position/open_positions", self.open_positions)
        r.add_get("/api/v1/private/account/assets", self.assets)
        r.add_get("/edge", self.ws)
        r.add_get("/ws", self.ws)

    def venue_instruments(self, cfg: SimConfig) -> list[SimInstrument]:
        # MEXC sizes are whole contracts: the engine's lot step is one contract, in base units.
        return [
            msgspec.structs.replace(i, lot=i.contract_size, min_qty=i.contract_size) for i in cfg.instruments
        ]

    def unknown_response(self) -> web.StreamResponse:
        return web.Response(body=b'{"success":false}', status=502, content_type="application/json")

    # ------------------------------------------------------------------ limits
    def rate_limited(self, request: web.Request) -> web.StreamResponse | None:
        if self.faults.rate_limit_storm:
            return fail(510, "Excessive frequency of requests")
        if not request.path.startswith("/api/v1/private"):
            return None
        lim = self.cfg.rate_limits
        limit = lim.mexc_order_per_2s if request.path in _ORDER_ENTRY else lim.mexc_other_per_2s
        key = (request.headers.get("ApiKey", ""), request.path)
        window = self._windows.setdefault(key, RollingWindow(limit, 2000))
        return None if window.hit(self.now_ms()) else fail(510, "Excessive frequency of requests")

    # ------------------------------------------------------------------ auth
    async def authed(self, request: web.Request) -> tuple[str, str]:
        key = request.headers.get("ApiKey", "")
        secret = self.secrets.get(key)
        if secret is None:
            raise MexcError(401, "Unauthorized")
        req_time = request.headers.get("Request-Time", "")
        signature = request.headers.get("Signature", "")
        if request.method == "POST":
            payload = await request.text()
        else:
            payload = param_string_get(dict(request.query))
        try:
            ts = int(req_time)
        except ValueError:
            raise MexcError(513, "Invalid request(for open api serves time more or less than 10s)") from None
        window_ms = 10_000
        if request.headers.get("Recv-Window", "").isdigit():
            window_ms = min(int(request.headers["Recv-Window"]), 60) * 1000
        if abs(self.now_ms() - ts) > window_ms:
            raise MexcError(513, "Invalid request(for open api serves time more or less than 10s)")
        if not hmac.compare_digest(sign(secret, key, req_time, payload), signature.lower()):
            raise MexcError(602, "Signature verification failed!")
        return key, payload

    def canonical(self, raw: object) -> str:
        try:
            symbol = normalize_symbol(str(raw))
        except SymbolError:
            raise MexcError(1001, "Contract does not exist") from None
        if symbol not in self.engine.instruments or str(raw) != venue_symbol(symbol, "mexc"):
            raise MexcError(1001, "Contract does not exist")
        return symbol

    # ------------------------------------------------------------------ public REST
    async def ping(self, request: web.Request) -> web.StreamResponse:
        return ok(self.now_ms())

    def detail_json(self, inst: SimInstrument) -> dict[str, Any]:
        base, _, quote = inst.symbol.partition("/")
        size = self._contract[inst.symbol]
        return {
            "symbol": venue_symbol(inst.symbol, "mexc"),
            "displayNameEn": f"{base}{quote} PERPETUAL",
            "baseCoin": base,
            "quoteCoin": quote,
            "settleCoin": quote,
            "contractSize": _num(size),
            "minLeverage": 1,
            "maxLeverage": 200,
            "priceScale": scale(inst.tick),
            "volScale": 0,
            "amountScale": 4,
            "priceUnit": _num(inst.tick),
            "volUnit": 1,
            "minVol": 1,
            "maxVol": int(inst.max_qty / size),
            "state": 0,
            "apiAllowed": True,
        }

    async def detail(self, request: web.Request) -> web.StreamResponse:
        symbol = request.query.get("symbol")
        insts = list(self.engine.instruments.values())
        if symbol:
            match = [i for i in insts if venue_symbol(i.symbol, "mexc") == symbol]
            return ok(self.detail_json(match[0])) if match else fail(1001, "Contract does not exist")
        return ok([self.detail_json(i) for i in insts])

    # ------------------------------------------------------------------ orders
    def vol(self, symbol: str, qty: Decimal) -> Decimal:
        return _num(qty / self._contract[symbol])

    def order_json(self, o: Order) -> dict[str, Any]:
        side, otype = self._codes.get(o.order_id, (1, 1))
        state = {"NEW": 2, "PARTIALLY_FILLED": 2, "FILLED": 3, "CANCELED": 4, "EXPIRED": 4}.get(o.status, 5)
        return {
            "orderId": o.order_id,
            "symbol": venue_symbol(o.symbol, "mexc"),
            "positionId": 0,
            "price": _num(o.price) if o.price is not None else 0,
            "vol": self.vol(o.symbol, o.qty),
            "leverage": int(self.engine.leverage),
            "side": side,
            "category": 1,
            "orderType": otype,
            "dealAvgPrice": _num(o.avg_price) if o.avg_price is not None else 0,
            "dealVol": self.vol(o.symbol, o.filled),
            "remainVol": self.vol(o.symbol, o.leaves),
            "orderMargin": 0,
            "takerFee": _num(o.fee),
            "makerFee": 0,
            "profit": 0,
            "feeCurrency": "USDT",
            "openType": 2,
            "state": state,
            "externalOid": o.client_id,
            "errorCode": 0,
            "usedMargin": 0,
            "createTime": o.created_ms,
            "updateTime": o.updated_ms,
            "positionMode": 2,
            "reduceOnly": o.reduce_only,
        }

    async def create(self, request: web.Request) -> web.StreamResponse:
        legacy = request.path.endswith("/submit")
        try:
            key, payload = await self.authed(request)
            try:
                body = _dec.decode(payload)
            except msgspec.DecodeError:
                raise MexcError(600, "Param error") from None
            if not isinstance(body, dict):
                raise MexcError(600, "Param error")
            symbol = self.canonical(body.get("symbol"))
            external = str(body.get("externalOid") or "")
            if len(external) > 32:
                raise MexcError(2030, "The length of externalOid cannot exceed 32")
            side_code, type_code = int(body.get("side", 0)), int(body.get("type", 0))
            if side_code not in _SIDES or type_code not in _TYPES:
                raise MexcError(600, "Param error")
            side, closing = _SIDES[side_code]
            otype, tif = _TYPES[type_code]
            vol = Decimal(str(body["vol"]))
            price = Decimal(str(body["price"])) if otype == "LIMIT" else None
        except (KeyError, InvalidOperation, ValueError, TypeError):
            return fail(600, "Param error")
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        req = NewOrder(
            api_key=key,
            symbol=symbol,
            side=side,
            type=otype,
            tif=tif,
            qty=vol * self._contract[symbol],
            price=price,
            reduce_only=closing or bool(body.get("reduceOnly", False)),
            client_id=external,
        )

        def on_ack(order: Order) -> web.StreamResponse:
            self._codes[order.order_id] = (side_code, type_code)
            if legacy:
                return ok(int(order.order_id))
            return ok({"orderId": order.order_id, "ts": order.created_ms})

        return await self.submit(request, req, lambda r: fail(*_REJECTS[r]), on_ack)

    async def _cancel_ids(self, key: str, ids: list[str]) -> list[dict[str, Any]]:
        results = []
        events: list[EngineEvent] = []
        for oid in ids:
            order = self.engine.find(key, order_id=oid)
            if order is None:
                results.append({"orderId": oid, "errorCode": 2040, "errorMsg": "order not exist"})
            elif not order.is_open:
                results.append(
                    {"orderId": oid, "errorCode": 2041, "errorMsg": "order state cannot be cancelled"}
                )
            else:
                events.extend(self.engine.cancel(order, "user"))
                results.append({"orderId": oid, "errorCode": 0, "errorMsg": "success"})
        self.later(0.002, self.dispatch, events)
        return results

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        try:
            key, payload = await self.authed(request)
            ids = _dec.decode(payload)
            if not isinstance(ids, list) or not ids or len(ids) > 50:
                raise MexcError(600, "Param error")
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        except msgspec.DecodeError:
            return fail(600, "Param error")
        return ok(await self._cancel_ids(key, [str(i) for i in ids]))

    async def cancel_with_external(self, request: web.Request) -> web.StreamResponse:
        try:
            key, payload = await self.authed(request)
            items = _dec.decode(payload)
            items = [items] if isinstance(items, dict) else items
            if not isinstance(items, list) or not items:
                raise MexcError(600, "Param error")
            out = []
            for item in items:
                symbol = self.canonical(item.get("symbol"))
                order = self.engine.find(key, client_id=str(item.get("externalOid", "")))
                if order is None or order.symbol != symbol:
                    out.append(
                        {
                            "symbol": item.get("symbol"),
                            "externalOid": item.get("externalOid"),
                            "errorCode": 2040,
                            "errorMsg": "order not exist",
                        }
                    )
                    continue
                (result,) = await self._cancel_ids(key, [order.order_id])
                out.append(
                    {
                        "symbol": item.get("symbol"),
                        "externalOid": item.get("externalOid"),
                        "errorCode": result["errorCode"],
                        "errorMsg": result["errorMsg"],
                    }
                )
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        except (msgspec.DecodeError, AttributeError):
            return fail(600, "Param error")
        return ok(out)

    async def cancel_all(self, request: web.Request) -> web.StreamResponse:
        try:
            key, payload = await self.authed(request)
            body = _dec.decode(payload or "{}")
            symbol = self.canonical(body["symbol"]) if isinstance(body, dict) and body.get("symbol") else None
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        except msgspec.DecodeError:
            return fail(600, "Param error")
        await self._cancel_ids(key, [o.order_id for o in self.engine.open_orders(key, symbol)])
        return web.Response(body=b'{"success":true,"code":0}', content_type="application/json")

    async def query_external(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = await self.authed(request)
            symbol = self.canonical(request.match_info["symbol"])
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        order = self.engine.find(key, client_id=request.match_info["external_oid"])
        if order is None or order.symbol != symbol:
            return fail(2040, "Order does not exist")
        return ok(self.order_json(order))

    async def query_id(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = await self.authed(request)
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        order = self.engine.find(key, order_id=request.match_info["order_id"])
        return ok(self.order_json(order)) if order else fail(2040, "Order does not exist")

    async def open_orders(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = await self.authed(request)
            raw = request.match_info.get("symbol")
            symbol = self.canonical(raw) if raw else None
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        return ok([self.order_json(o) for o in self.engine.open_orders(key, symbol)])

    def deal_json(self, ev: FillEvent) -> dict[str, Any]:
        f = ev.fill
        side, _ = self._codes.get(f.order_id, (1, 1))
        return {
            "id": str(f.trade_id),
            "symbol": venue_symbol(f.symbol, "mexc"),
            "side": side,
            "vol": self.vol(f.symbol, f.qty),
            "price": _num(f.price),
            "feeCurrency": "USDT",
            "fee": _num(f.fee),
            "timestamp": f.ts_ms,
            "profit": _num(f.realised_pnl) if f.realised_pnl else 0,
            "isTaker": not f.is_maker,
            "category": 1,
            "orderId": f.order_id,
            "externalOid": f.client_id,
            "positionMode": 2,
            "reduceOnly": ev.order.reduce_only,
        }

    async def order_deals(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = await self.authed(request)
            symbol = self.canonical(request.query.get("symbol", ""))
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        fills = self.engine.account_fills(key, symbol)
        return ok([self.deal_json(FillEvent(fill=f, order=self.engine.orders[f.order_id])) for f in fills])

    def position_json(self, key: str, symbol: str) -> dict[str, Any]:
        pos = self.engine.position(key, symbol)
        return {
            "positionId": abs(hash((key, symbol))) % 10**9,
            "symbol": venue_symbol(symbol, "mexc"),
            "holdVol": self.vol(symbol, abs(pos.qty)),
            "positionType": 1 if pos.qty > 0 else 2,
            "openType": 2,
            "state": 1 if pos.qty else 3,
            "frozenVol": 0,
            "closeVol": 0,
            "holdAvgPrice": _num(pos.avg_price),
            "openAvgPrice": _num(pos.avg_price),
            "closeAvgPrice": 0,
            "liquidatePrice": 0,
            "realised": _num(pos.realised),
            "leverage": int(self.engine.leverage),
            "positionMode": 2,
            "createTime": 0,
            "updateTime": self.now_ms(),
        }

    async def open_positions(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = await self.authed(request)
            raw = request.query.get("symbol")
            symbol = self.canonical(raw) if raw else None
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        symbols = [symbol] if symbol else list(self.engine.instruments)
        return ok([self.position_json(key, s) for s in symbols if self.engine.position(key, s).qty])

    def asset_json(self, key: str) -> dict[str, Any]:
        acct = self.engine.accounts[key]
        upnl = sum((self.engine.unrealised(key, s) for s in self.engine.instruments), ZERO)
        return {
            "currency": "USDT",
            "positionMargin": _num(self.engine.used_margin(key)),
            "availableBalance": _num(self.engine.available(key)),
            "cashBalance": _num(acct.balance),
            "frozenBalance": 0,
            "equity": _num(acct.balance + upnl),
            "unrealized": _num(upnl),
            "bonus": 0,
        }

    async def assets(self, request: web.Request) -> web.StreamResponse:
        try:
            key, _ = await self.authed(request)
        except MexcError as exc:
            return fail(exc.code, exc.msg)
        return ok([self.asset_json(key)])

    # ------------------------------------------------------------------ private pushes
    def fill_topics(self) -> set[str]:
        return {"push.personal.order.deal"}

    FILL_QTY_KEYS = frozenset({"vol"})

    def private_messages(self, events: list[EngineEvent]) -> list[tuple[str, str, bytes]]:
        out: list[tuple[str, str, bytes]] = []
        for ev in events:
            key, now = ev.order.api_key, self.now_ms()

            def push(channel: str, data: object) -> None:
                out.append((key, channel, _enc.encode({"channel": channel, "data": data, "ts": now})))  # noqa: B023

            if isinstance(ev, FillEvent):
                push("push.personal.order.deal", self.deal_json(ev))
            push("push.personal.order", self.order_json(ev.order))
            if isinstance(ev, FillEvent):
                push("push.personal.position", self.position_json(key, ev.order.symbol))
                push("push.personal.asset", self.asset_json(key))
        return out

    # ------------------------------------------------------------------ streams
    def timers(self) -> list[tuple[int, str]]:
        return [(self.cfg.mexc_ticker_ms, "mexc")]

    def ticker_frames(self, conn: PublicConn, quotes: dict[str, Quote], tick: str) -> list[bytes]:
        if tick != "mexc":
            return []
        frames = []
        now = self.now_ms()
        for sub in conn.subs.values():
            q = quotes.get(sub.symbol)
            if sub.silent or q is None:
                continue
            vsym = venue_symbol(sub.symbol, "mexc")
            data = {
                "symbol": vsym,
                "lastPrice": _num(q.last),
                "bid1": _num(q.bid),
                "ask1": _num(q.ask),
                "fairPrice": _num(q.mark),
                "indexPrice": _num(q.index),
                "fundingRate": Decimal("0.0001"),
                "holdVol": 2284742,
                "volume24": 164586129,
                "amount24": Decimal("1234567.8"),
                "riseFallRate": Decimal("0.0012"),
                "maxBidPrice": _num(q.bid * 2),
                "minAskPrice": _num(q.ask / 2),
                "timestamp": q.ts_ms,
            }
            frames.append(_enc.encode({"channel": "push.ticker", "symbol": vsym, "ts": now, "data": data}))
        return frames

    async def ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        pub = PublicConn(ws, request, request.path)
        priv = PrivateConn(ws, request)
        self.public.add(pub)
        self.private.add(priv)
        try:
            while not ws.closed:
                try:
                    # The venue disconnects after one minute without a ping (venues.md §4.6).
                    msg = await ws.receive(timeout=60)
                except TimeoutError:
                    break
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = _dec.decode(msg.data)
                except msgspec.DecodeError:
                    continue
                if isinstance(req, dict):
                    await self._ws_request(ws, pub, priv, req)
        finally:
            self.public.discard(pub)
            self.private.discard(priv)
            await ws.close()
        return ws

    async def _ws_request(
        self, ws: web.WebSocketResponse, pub: PublicConn, priv: PrivateConn, req: dict[str, Any]
    ) -> None:
        method = req.get("method")
        param = req.get("param") if isinstance(req.get("param"), dict) else {}
        assert isinstance(param, dict)
        now = self.now_ms()

        async def reply(channel: str, data: object) -> None:
            await ws.send_str(_enc.encode({"channel": channel, "data": data, "ts": now}).decode())

        if method == "ping":
            await ws.send_str(_enc.encode({"channel": "pong", "data": now}).decode())
        elif method in ("sub.ticker", "unsub.ticker"):
            raw = str(param.get("symbol", ""))
            symbol = next((s for s in self.engine.instruments if venue_symbol(s, "mexc") == raw), None)
            if symbol is None:
                await reply("rs.error", f"contract {raw} not exist")
            elif method == "sub.ticker":
                pub.subs[raw] = PublicSub(symbol=symbol, topic=raw, silent=self.faults.silent_subscriptions)
                await reply("rs.sub.ticker", "success")
            else:
                pub.subs.pop(raw, None)
                await reply("rs.unsub.ticker", "success")
        elif method == "login":
            key, req_time, signature = (str(param.get(k, "")) for k in ("apiKey", "reqTime", "signature"))
            secret = self.secrets.get(key)
            valid = secret is not None and hmac.compare_digest(
                ws_login_signature(secret, key, req_time), signature
            )
            fresh = req_time.isdigit() and abs(now - int(req_time)) <= 10_000
            if not (valid and fresh):
                await reply("rs.error", "invalid signature" if not valid else "request time expired")
                return
            priv.api_key = key
            if req.get("subscribe", param.get("subscribe", True)) is not False:
                priv.topics.add("*")
            await reply("rs.login", "success")
            await self.replay_fills(priv)
        elif method == "personal.filter":
            filters = param.get("filters", [])
            priv.topics = {_PUSH_FILTERS[f["filter"]] for f in filters if f.get("filter") in _PUSH_FILTERS}
            if not filters:
                priv.topics = {"*"}
            await reply("rs.personal.filter", "success")
