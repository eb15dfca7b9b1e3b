"""Matching engine and order REST/private streams of each simulated venue, over real sockets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from titan.venues.sim import SimServer

from .helpers import Binance, Bybit, Mexc, eventually, receive_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def _is_topic(topic: str) -> Any:
    return lambda m: m.get("topic") == topic


# ---------------------------------------------------------------------------------------------- Bybit
async def test_bybit_market_order_fills_at_the_touch_on_private_streams(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    client = Bybit(http, sim.urls["bybit"])
    ws = await client.private(sim.ws_urls["bybit"], ["order", "execution"])
    ack = await client.create(side="Buy", orderType="Market", qty="0.010", orderLinkId="mkt-1")
    assert ack["retCode"] == 0 and ack["result"]["orderLinkId"] == "mkt-1"
    execution = await receive_until(ws, _is_topic("execution"))
    fill = execution["data"][0]
    assert (fill["execPrice"], fill["execQty"], fill["orderLinkId"], fill["isMaker"]) == (
        "65000.1",
        "0.010",
        "mkt-1",
        False,
    )
    _, _, q = await client.get(
        "/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "mkt-1"}
    )
    order = q["result"]["list"][0]
    assert (order["orderStatus"], order["cumExecQty"], order["avgPrice"]) == ("Filled", "0.01", "65000.1")
    _, _, pos = await client.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
    assert (pos["result"]["list"][0]["size"], pos["result"]["list"][0]["side"]) == ("0.01", "Buy")
    _, _, ex = await client.get("/v5/execution/list", {"category": "linear", "symbol": "BTCUSDT"})
    assert [e["execId"] for e in ex["result"]["list"]] == [fill["execId"]]
    await ws.close()


async def test_bybit_limit_rests_then_partial_fills_when_crossed(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    client = Bybit(http, sim.urls["bybit"])
    ws = await client.private(sim.ws_urls["bybit"], ["execution"])
    ack = await client.create(
        side="Buy", orderType="Limit", qty="1.000", price="64990.0", orderLinkId="lim-1"
    )
    assert ack["retCode"] == 0
    _, _, q = await client.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "lim-1"})
    assert q["result"]["list"][0]["orderStatus"] == "New"
    await sim.set_quote("BTC/USDT", "64989.0", "64989.9", "0.4", "0.4")  # crosses, 0.4 available
    first = (await receive_until(ws, _is_topic("execution")))["data"][0]
    assert (first["execPrice"], first["execQty"], first["isMaker"]) == ("64990.0", "0.4", True)
    _, _, q = await client.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "lim-1"})
    assert (q["result"]["list"][0]["orderStatus"], q["result"]["list"][0]["leavesQty"]) == (
        "PartiallyFilled",
        "0.6",
    )
    ok = await client.post(
        "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "lim-1"}
    )
    assert ok[2]["retCode"] == 0
    _, _, q = await client.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "lim-1"})
    assert (q["result"]["list"][0]["orderStatus"], q["result"]["list"][0]["cumExecQty"]) == (
        "Cancelled",
        "0.4",
    )
    await ws.close()


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"orderLinkId": "x" * 37}, 10001),
        ({"orderLinkId": "bad id!"}, 10001),
        ({"qty": "5000"}, 10001),
        ({"qty": "50.000"}, 110007),
        ({"reduceOnly": True}, 110017),
    ],
    ids=[
        "link-id-too-long",
        "link-id-charset",
        "qty-over-max",
        "insufficient-balance",
        "reduce-only-no-position",
    ],
)
async def test_bybit_order_rejections(
    sim: SimServer, http: aiohttp.ClientSession, fields: dict[str, Any], code: int
) -> None:
    order = {
        "side": "Buy",
        "orderType": "Limit",
        "qty": "0.001",
        "price": "60000.0",
        "orderLinkId": "r1",
        **fields,
    }
    assert (await Bybit(http, sim.urls["bybit"]).create(**order))["retCode"] == code


async def test_bybit_duplicate_link_id_unknown_cancel_and_post_only(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    client = Bybit(http, sim.urls["bybit"])
    order = {"side": "Buy", "orderType": "Limit", "qty": "0.001", "price": "60000.0", "orderLinkId": "dup-1"}
    assert (await client.create(**order))["retCode"] == 0
    assert (await client.create(**order))["retCode"] == 110072
    _, _, body = await client.post(
        "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "nope"}
    )
    assert body["retCode"] == 110001
    ack = await client.create(
        side="Buy",
        orderType="Limit",
        qty="0.001",
        price="65000.1",
        timeInForce="PostOnly",
        orderLinkId="po-1",
    )
    assert ack["retCode"] == 0  # Bybit accepts, then cancels a crossing post-only order
    _, _, q = await client.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "po-1"})
    assert (q["result"]["list"][0]["orderStatus"], q["result"]["list"][0]["rejectReason"]) == (
        "Cancelled",
        "EC_PostOnlyWillTakeLiquidity",
    )


async def test_bybit_reduce_only_is_clipped_to_the_position(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    client = Bybit(http, sim.urls["bybit"])
    assert (await client.create(side="Buy", orderType="Market", qty="0.005", orderLinkId="o1"))[
        "retCode"
    ] == 0
    assert (
        await client.create(side="Sell", orderType="Market", qty="0.010", reduceOnly=True, orderLinkId="o2")
    )["retCode"] == 0
    _, _, pos = await client.get("/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"})
    assert pos["result"]["list"][0]["size"] == "0"
    _, _, wallet = await client.get("/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"})
    balance = Decimal(wallet["result"]["list"][0]["coin"][0]["walletBalance"])
    # bought at the ask, sold at the bid: one tick of loss on 0.005 plus two taker fees (8 dp each)
    fees = sum(
        (p * Decimal("0.005") * Decimal("0.00055")).quantize(Decimal("1E-8"))
        for p in (Decimal("65000.1"), Decimal("65000.0"))
    )
    assert balance == Decimal("100000") - Decimal("0.0005") - fees


async def test_bybit_instruments_and_server_time(sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with http.get(
        sim.urls["bybit"] + "/v5/market/instruments-info?category=linear&symbol=BTCUSDT"
    ) as r:
        info = (await r.json())["result"]["list"][0]
    assert (info["priceFilter"]["tickSize"], info["lotSizeFilter"]["qtyStep"]) == ("0.1", "0.001")
    async with http.get(sim.urls["bybit"] + "/v5/market/time") as r:
        body = await r.json()
    assert (
        int(body["result"]["timeNano"]) // 1_000_000
        == int(body["result"]["timeSecond"]) * 1000 + int(body["result"]["timeNano"]) // 1_000_000 % 1000
    )


async def test_bybit_per_uid_rate_limit_with_headers(http: aiohttp.ClientSession) -> None:
    from titan.venues.sim.config import RateLimits

    from .conftest import manual_config

    async with SimServer(manual_config(rate_limits=RateLimits(bybit_order_per_s=2))) as sim:
        await sim.set_quote("BTC/USDT", "65000.0", "65000.1")
        client = Bybit(http, sim.urls["bybit"])
        codes, headers = [], []
        for i in range(3):
            _, hdrs, body = await client.post(
                "/v5/order/create",
                {
                    "category": "linear",
                    "symbol": "BTCUSDT",
                    "side": "Buy",
                    "orderType": "Limit",
                    "qty": "0.001",
                    "price": "60000.0",
                    "orderLinkId": f"rl-{i}",
                },
            )
            codes.append(body["retCode"])
            headers.append(hdrs)
        assert codes == [0, 0, 10006]
        assert headers[0]["X-Bapi-Limit"] == "2" and headers[0]["X-Bapi-Limit-Status"] == "1"
        assert (
            headers[2]["X-Bapi-Limit-Status"] == "0" and int(headers[2]["X-Bapi-Limit-Reset-Timestamp"]) > 0
        )


# -------------------------------------------------------------------------------------------- Binance
async def test_binance_order_lifecycle_and_user_stream(sim: SimServer, http: aiohttp.ClientSession) -> None:
    client = Binance(http, sim.urls["binance"])
    ws = await client.private(sim.ws_urls["binance"])
    status, order = await client.create(
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.002",
        price="64999.0",
        newClientOrderId="bn-1",
    )
    assert (status, order["status"], order["executedQty"]) == (200, "NEW", "0")
    new = await receive_until(ws, lambda m: m.get("e") == "ORDER_TRADE_UPDATE")
    assert (new["o"]["x"], new["o"]["X"], new["o"]["c"]) == ("NEW", "NEW", "bn-1")
    await sim.set_quote("BTC/USDT", "64998.0", "64998.9", "1", "1")
    trade = await receive_until(ws, lambda m: m.get("e") == "ORDER_TRADE_UPDATE")
    assert (trade["o"]["x"], trade["o"]["X"], trade["o"]["L"], trade["o"]["l"], trade["o"]["m"]) == (
        "TRADE",
        "FILLED",
        "64999.0",
        "0.002",
        True,
    )
    account = await receive_until(ws, lambda m: m.get("e") == "ACCOUNT_UPDATE")
    assert account["a"]["P"][0]["pa"] == "0.002"
    _, _, q = await client.call("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "bn-1"})
    assert (q["status"], q["avgPrice"]) == ("FILLED", "64999")
    _, _, trades = await client.call("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    assert [t["id"] for t in trades] == [trade["o"]["t"]]
    _, _, risk = await client.call("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    assert risk[0]["positionAmt"] == "0.002"
    await ws.close()


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"newClientOrderId": "bad id"}, -4015),
        ({"quantity": "0.0015"}, -1111),
        ({"price": "60000.05"}, -4014),
        ({"quantity": "90"}, -2019),
        ({"reduceOnly": "true"}, -2022),
        ({"timeInForce": "GTX", "price": "65000.1"}, -5022),
        ({"symbol": "DOGEUSDT"}, -1121),
    ],
    ids=["client-id", "lot", "tick", "margin", "reduce-only", "post-only-cross", "symbol"],
)
async def test_binance_order_rejections(
    sim: SimServer, http: aiohttp.ClientSession, fields: dict[str, str], code: int
) -> None:
    order = {
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": "60000.0",
        "newClientOrderId": "rej-1",
        **fields,
    }
    status, body = await Binance(http, sim.urls["binance"]).create(**order)
    assert (status, body["code"]) == (400, code)


async def test_binance_duplicate_client_id_and_unknown_orders(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    client = Binance(http, sim.urls["binance"])
    order = {
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": "60000.0",
        "newClientOrderId": "dup-b",
    }
    assert (await client.create(**order))[0] == 200
    assert (await client.create(**order))[1]["code"] == -4116
    _, _, body = await client.call(
        "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"}
    )
    assert body["code"] == -2013
    _, _, body = await client.call(
        "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"}
    )
    assert body["code"] == -2011
    _, _, body = await client.call(
        "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "dup-b"}
    )
    assert body["status"] == "CANCELED"
    # unique among open orders only: once cancelled the id can be used again (venues.md §3.3)
    assert (await client.create(**order))[0] == 200


async def test_binance_market_ioc_remainder_expires(sim: SimServer, http: aiohttp.ClientSession) -> None:
    await sim.set_quote("BTC/USDT", "65000.0", "65000.1", "0.5", "0.003")
    client = Binance(http, sim.urls["binance"])
    status, body = await client.create(
        side="BUY",
        type="LIMIT",
        timeInForce="IOC",
        quantity="0.005",
        price="65001.0",
        newClientOrderId="ioc-1",
    )
    assert (status, body["status"], body["executedQty"]) == (200, "EXPIRED", "0.003")


async def test_binance_exchange_info_and_listen_key(sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with http.get(sim.urls["binance"] + "/fapi/v1/exchangeInfo") as r:
        info = await r.json()
    filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.1" and filters["LOT_SIZE"]["stepSize"] == "0.001"
    assert {rl["rateLimitType"] for rl in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    headers = {"X-MBX-APIKEY": "sim-binance-key"}
    async with http.put(sim.urls["binance"] + "/fapi/v1/listenKey", headers=headers) as r:
        assert (await r.json())["code"] == -1125
    async with http.post(sim.urls["binance"] + "/fapi/v1/listenKey", headers=headers) as r:
        key = (await r.json())["listenKey"]
    async with http.put(sim.urls["binance"] + "/fapi/v1/listenKey", headers=headers) as r:
        assert (await r.json())["listenKey"] == key


async def test_binance_countdown_cancel_all(sim: SimServer, http: aiohttp.ClientSession) -> None:
    client = Binance(http, sim.urls["binance"])
    await client.create(
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.001",
        price="60000.0",
        newClientOrderId="cd-1",
    )
    _, _, body = await client.call(
        "POST", "/fapi/v1/countdownCancelAll", {"symbol": "BTCUSDT", "countdownTime": "200"}
    )
    assert body == {"symbol": "BTCUSDT", "countdownTime": "200"}
    engine = sim.venues["binance"].engine
    await eventually(lambda: not engine.open_orders("sim-binance-key"))


# ----------------------------------------------------------------------------------------------- MEXC
async def test_mexc_contracts_fill_and_private_pushes(sim: SimServer, http: aiohttp.ClientSession) -> None:
    client = Mexc(http, sim.urls["mexc"])
    ws = await client.private(sim.ws_urls["mexc"])
    ack = await client.create(vol=25, side=1, type=5, price=0, externalOid="mx-1")
    assert ack["success"] is True and ack["data"]["orderId"]
    deal = await receive_until(ws, lambda m: m.get("channel") == "push.personal.order.deal")
    assert (deal["data"]["vol"], deal["data"]["price"], deal["data"]["externalOid"]) == (25, 65000.1, "mx-1")
    _, order = await client.get("/api/v1/private/order/external/BTC_USDT/mx-1")
    assert (order["data"]["state"], order["data"]["dealVol"], order["data"]["side"]) == (3, 25, 1)
    _, positions = await client.get("/api/v1/private/position/open_positions")
    assert (positions["data"][0]["holdVol"], positions["data"][0]["positionType"]) == (25, 1)
    # closing side 4 is reduce-only: it flattens the long
    ack = await client.create(vol=25, side=4, type=5, price=0, externalOid="mx-2")
    assert ack["success"] is True
    _, positions = await client.get("/api/v1/private/position/open_positions")
    assert positions["data"] == []
    await ws.close()


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"externalOid": "x" * 33}, 2030),
        ({"vol": 10**9}, 2015),
        ({"vol": 900_000, "price": 65000}, 2005),
        ({"side": 2}, 2009),
        ({"symbol": "DOGE_USDT"}, 1001),
        ({"side": 9}, 600),
    ],
    ids=["external-oid-too-long", "over-max", "balance", "close-without-position", "contract", "param"],
)
async def test_mexc_order_rejections(
    sim: SimServer, http: aiohttp.ClientSession, fields: dict[str, Any], code: int
) -> None:
    order = {"vol": 1, "side": 1, "type": 1, "price": 60000, "externalOid": "mr-1", **fields}
    body = await Mexc(http, sim.urls["mexc"]).create(**order)
    assert (body["success"], body["code"]) == (False, code)


async def test_mexc_cancel_array_duplicate_and_legacy_submit(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    client = Mexc(http, sim.urls["mexc"])
    ack = await client.create(vol=1, side=1, type=1, price=60000, externalOid="mc-1")
    assert (await client.create(vol=1, side=1, type=1, price=60000, externalOid="mc-1"))["code"] == 603
    _, body = await client.post("/api/v1/private/order/cancel", [ack["data"]["orderId"], "123"])
    assert [r["errorCode"] for r in body["data"]] == [0, 2040]
    _, body = await client.post(
        "/api/v1/private/order/submit",
        {"symbol": "BTC_USDT", "vol": 1, "side": 1, "type": 1, "price": 60000, "openType": 2},
    )
    assert isinstance(body["data"], int)  # the legacy endpoint returns the id itself
    _, body = await client.post(
        "/api/v1/private/order/cancel_with_external", [{"symbol": "BTC_USDT", "externalOid": "zz"}]
    )
    assert body["data"][0]["errorCode"] == 2040
    _, body = await client.get("/api/v1/private/order/external/BTC_USDT/zz")
    assert (body["success"], body["code"]) == (False, 2040)


async def test_mexc_public_rest(sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with http.get(sim.urls["mexc"] + "/api/v1/contract/detail?symbol=BTC_USDT") as r:
        text = await r.text()
    assert '"contractSize":0.0001' in text and '"priceUnit":0.1' in text  # JSON numbers
    async with http.get(sim.urls["mexc"] + "/api/v1/contract/ping") as r:
        assert isinstance((await r.json())["data"], int)
