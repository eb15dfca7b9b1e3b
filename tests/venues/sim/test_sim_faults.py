"""Every fault-injection switch does what it says (venues.md §8), in-process and over ``/_admin``."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from titan.venues.sim import SimServer

from .helpers import Binance, Bybit, Mexc, collect, eventually, receive_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

LIMIT = {"side": "Buy", "orderType": "Limit", "qty": "0.001", "price": "60000.0"}


def _bybit_order(sim: SimServer, link_id: str) -> Any:
    return sim.venues["bybit"].engine.find("sim-bybit-key", client_id=link_id)


async def test_added_latency_makes_a_short_client_timeout_expire(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    url = sim.urls["bybit"] + "/v5/market/time"
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
        assert r.status == 200
    sim.set_faults("bybit", latency_ms=3000)
    with pytest.raises(TimeoutError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.3)):
            pass


async def test_accept_then_time_out_leaves_an_order_on_the_venue(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    sim.set_faults("bybit", timeout_next_orders=1, hold_ms=20_000)
    client = Bybit(http, sim.urls["bybit"])
    with pytest.raises(TimeoutError):
        await client.post(
            "/v5/order/create",
            {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "to-1", **LIMIT},
            timeout=aiohttp.ClientTimeout(total=0.5),
        )
    _, _, q = await client.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "to-1"})
    assert q["result"]["list"][0]["orderStatus"] == "New"  # exists although never acknowledged (R1)
    assert sim.faults("bybit").timeout_next_orders == 0  # one-shot: the next order is answered
    assert (await client.create(orderLinkId="to-2", **LIMIT))["retCode"] == 0


async def test_drop_connection_after_accepting(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("binance", drop_next_orders=1)
    client = Binance(http, sim.urls["binance"])
    with pytest.raises(aiohttp.ClientError):
        await client.create(
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.001",
            price="60000.0",
            newClientOrderId="drop-1",
        )
    _, _, q = await client.call("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "drop-1"})
    assert q["status"] == "NEW"


@pytest.mark.parametrize("executes", [True, False])
async def test_http_5xx_unknown_status(sim: SimServer, http: aiohttp.ClientSession, executes: bool) -> None:
    sim.set_faults("binance", unknown_5xx_next_orders=1, unknown_5xx_executes=executes)
    client = Binance(http, sim.urls["binance"])
    status, body = await client.create(
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.001",
        price="60000.0",
        newClientOrderId="u5-1",
    )
    assert status == 503 and "Unknown error" in body["msg"]
    _, _, q = await client.call("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "u5-1"})
    assert (q.get("status") == "NEW") is executes
    assert (q.get("code") == -2013) is not executes


async def test_bybit_and_mexc_unknown_responses(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("bybit", unknown_5xx_next_orders=1)
    status, _, body = await Bybit(http, sim.urls["bybit"]).post(
        "/v5/order/create", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "u5-b", **LIMIT}
    )
    assert (status, body["retCode"]) == (502, 10016)
    sim.set_faults("mexc", unknown_5xx_next_orders=1)
    status, body = await Mexc(http, sim.urls["mexc"]).post(
        "/api/v1/private/order/create",
        {
            "symbol": "BTC_USDT",
            "vol": 1,
            "side": 1,
            "type": 1,
            "price": 60000,
            "openType": 2,
            "externalOid": "u5-m",
        },
    )
    assert status == 502 and body == {"success": False}


async def test_duplicate_fill_pushes(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("bybit", duplicate_fills=True)
    client = Bybit(http, sim.urls["bybit"])
    ws = await client.private(sim.ws_urls["bybit"], ["execution", "order"])
    await client.create(side="Buy", orderType="Market", qty="0.001", orderLinkId="dupfill")
    messages = await collect(ws, 0.5)
    executions = [m["data"][0]["execId"] for m in messages if m.get("topic") == "execution"]
    orders = [m for m in messages if m.get("topic") == "order"]
    assert len(executions) == 2 and executions[0] == executions[1]
    assert len(orders) == 2  # New and Filled: order updates are not duplicated
    await ws.close()


async def test_reordered_pushes(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("binance", reorder_pushes=True)
    client = Binance(http, sim.urls["binance"])
    ws = await client.private(sim.ws_urls["binance"])
    await client.create(side="BUY", type="MARKET", quantity="0.001", newClientOrderId="reo-1")
    messages = [m for m in await collect(ws, 0.5) if m.get("e") == "ORDER_TRADE_UPDATE"]
    assert [m["o"]["x"] for m in messages] == ["TRADE", "NEW"]  # the fill overtakes the acceptance
    await ws.close()


async def test_fill_pushed_before_the_rest_ack(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("bybit", fill_before_ack=True)
    client = Bybit(http, sim.urls["bybit"])
    ws = await client.private(sim.ws_urls["bybit"], ["execution"])
    create = asyncio.ensure_future(
        client.create(side="Buy", orderType="Market", qty="0.001", orderLinkId="fba-1")
    )
    execution = await receive_until(ws, lambda m: m.get("topic") == "execution")
    assert execution["data"][0]["orderLinkId"] == "fba-1"
    assert not create.done()  # the REST ack is still outstanding (R4)
    assert (await create)["retCode"] == 0
    await ws.close()


async def test_fill_delay_acks_with_zero_then_fills(http: aiohttp.ClientSession) -> None:
    from .conftest import manual_config

    async with SimServer(manual_config(fill_delay_ms=200)) as sim:
        await sim.set_quote("BTC/USDT", "65000.0", "65000.1", "1", "1")
        client = Mexc(http, sim.urls["mexc"])
        ack = await client.create(vol=10, side=1, type=5, price=0, externalOid="r30")
        assert ack["success"] is True
        _, order = await client.get("/api/v1/private/order/external/BTC_USDT/r30")
        assert order["data"]["dealVol"] == 0  # asynchronous venue: acknowledged with nothing executed (R30)
        engine = sim.venues["mexc"].engine
        await eventually(lambda: bool(engine.fills))
        _, order = await client.get("/api/v1/private/order/external/BTC_USDT/r30")
        assert (order["data"]["state"], order["data"]["dealVol"]) == (3, 10)


async def test_partial_fill_then_cancel(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("bybit", partial_fill_ratio="0.4", cancel_after_partial=True)
    client = Bybit(http, sim.urls["bybit"])
    await client.create(side="Buy", orderType="Limit", qty="0.010", price="64000.0", orderLinkId="pfc")
    _, _, q = await client.get("/v5/order/realtime", {"category": "linear", "orderLinkId": "pfc"})
    order = q["result"]["list"][0]
    assert (order["orderStatus"], order["cumExecQty"], order["leavesQty"]) == ("Cancelled", "0.004", "0")


async def test_partial_fill_held_until_cancelled(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("bybit", partial_fill_ratio="0.4")
    client = Bybit(http, sim.urls["bybit"])
    await client.create(side="Buy", orderType="Limit", qty="0.010", price="64000.0", orderLinkId="pfh")
    await sim.set_quote("BTC/USDT", "63000.0", "63000.1", "5", "5")  # would cross; the rest is held
    assert (
        _bybit_order(sim, "pfh").status == "PARTIALLY_FILLED"
        and str(_bybit_order(sim, "pfh").filled) == "0.004"
    )


async def test_clock_skew_moves_server_time(sim: SimServer, http: aiohttp.ClientSession) -> None:
    from .helpers import now_ms

    sim.set_faults("binance", clock_skew_ms=1500)
    sim.set_faults("mexc", clock_skew_ms=-1500)
    async with http.get(sim.urls["binance"] + "/fapi/v1/time") as r:
        binance = (await r.json())["serverTime"] - now_ms()
    async with http.get(sim.urls["mexc"] + "/api/v1/contract/ping") as r:
        mexc = (await r.json())["data"] - now_ms()
    assert 1000 < binance <= 1500 and -2000 < mexc <= -1000


async def test_binance_429_storm_becomes_a_418_ban(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("binance", rate_limit_storm=True, storm_retry_after_s=2)
    answers = []
    for _ in range(5):
        async with http.get(sim.urls["binance"] + "/fapi/v1/time") as r:
            answers.append((r.status, r.headers.get("Retry-After"), (await r.json())["code"]))
    assert answers[:3] == [(429, "2", -1003)] * 3
    assert [a[0] for a in answers[3:]] == [418, 418] and all(a[2] == -1003 for a in answers[3:])
    async with http.get(sim.urls["binance"] + "/fapi/v1/time") as r:
        assert "banned until" in (await r.json())["msg"] and int(r.headers["Retry-After"]) > 0


async def test_binance_natural_weight_limit_escalates_to_ban(http: aiohttp.ClientSession) -> None:
    from titan.venues.sim.config import RateLimits

    from .conftest import manual_config

    limits = RateLimits(binance_weight_per_min=3, binance_429s_before_ban=2, binance_ban_s=60)
    async with SimServer(manual_config(rate_limits=limits)) as sim:
        statuses, weights = [], []
        for _ in range(7):
            async with http.get(sim.urls["binance"] + "/fapi/v1/time") as r:
                statuses.append(r.status)
                weights.append(r.headers.get("X-MBX-USED-WEIGHT-1M"))
        assert statuses == [200, 200, 200, 429, 429, 418, 418]
        assert weights[:3] == ["1", "2", "3"]


async def test_bybit_storm_10006_then_403_and_mexc_510(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.set_faults("bybit", rate_limit_storm=True)
    sim.set_faults("mexc", rate_limit_storm=True)
    answers = []
    for _ in range(4):
        async with http.get(sim.urls["bybit"] + "/v5/market/time") as r:
            answers.append(r.status if r.status != 200 else (await r.json())["retCode"])
    assert answers == [10006, 10006, 10006, 403]
    async with http.get(sim.urls["mexc"] + "/api/v1/contract/ping") as r:
        assert (await r.json())["code"] == 510
    sim.set_faults("bybit", rate_limit_storm=False)
    async with http.get(sim.urls["bybit"] + "/v5/market/time") as r:
        assert (await r.json())["retCode"] == 0


async def test_frozen_feed_keeps_the_socket_open_for_other_symbols(http: aiohttp.ClientSession) -> None:
    from .conftest import manual_config

    async with (
        SimServer(manual_config(price_source="walk")) as sim,
        http.ws_connect(sim.ws_urls["bybit"] + "/v5/public/linear") as ws,
    ):
        await ws.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT", "tickers.ETHUSDT"]})
        sim.set_faults("bybit", frozen_symbols=["BTC/USDT"])
        await collect(ws, 0.15)  # drain anything sent before the freeze took effect
        messages = await collect(ws, 0.5)
        topics = {m.get("topic") for m in messages}
        assert "tickers.ETHUSDT" in topics and "tickers.BTCUSDT" not in topics
        assert not ws.closed
        sim.set_faults("bybit", frozen_symbols=[])
        thawed = await receive_until(ws, lambda m: m.get("topic") == "tickers.BTCUSDT")
        assert thawed["type"] == "snapshot"


async def test_silent_subscription_is_acknowledged_then_silent(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    sim.set_faults("mexc", silent_subscriptions=True)
    async with http.ws_connect(sim.ws_urls["mexc"] + "/edge") as ws:
        await ws.send_json({"method": "sub.ticker", "param": {"symbol": "BTC_USDT"}})
        assert (await ws.receive_json(timeout=5))["channel"] == "rs.sub.ticker"
        messages = await collect(ws, 1.3)  # longer than MEXC's 1 s cadence
        assert [m for m in messages if m.get("channel") == "push.ticker"] == []


async def test_drop_cuts_websockets(sim: SimServer, http: aiohttp.ClientSession) -> None:
    pub = await http.ws_connect(sim.ws_urls["binance"] + "/public/ws/btcusdt@bookTicker")
    priv = await Binance(http, sim.urls["binance"]).private(sim.ws_urls["binance"])
    await eventually(
        lambda: len(sim.venues["binance"].public) == 1 and len(sim.venues["binance"].private) == 1
    )
    assert await sim.drop("binance", "private") == 1
    msg = await priv.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert not pub.closed
    await pub.close()


async def test_admin_endpoint_controls_faults_quotes_and_stats(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    base = sim.urls["bybit"]
    async with http.post(
        base + "/_admin/faults", json={"latency_ms": 5, "frozen_symbols": ["ETH/USDT"]}
    ) as r:
        assert r.status == 200 and (await r.json())["latency_ms"] == 5
    assert sim.faults("bybit").frozen_symbols == ["ETH/USDT"]
    async with http.post(base + "/_admin/faults", json={"no_such_switch": 1}) as r:
        assert r.status == 400
    async with http.get(base + "/_admin/faults") as r:
        assert (await r.json())["latency_ms"] == 5
    async with http.post(
        base + "/_admin/quote", json={"symbol": "BTC/USDT", "bid": "61000.0", "ask": "61000.1"}
    ) as r:
        assert r.status == 200
    assert str(sim.venues["bybit"].engine.quotes["BTC/USDT"].ask) == "61000.1"
    async with http.post(base + "/_admin/drop", json={"kind": "all"}) as r:
        assert (await r.json())["dropped"] == 0
    async with http.get(base + "/_admin/stats") as r:
        stats = await r.json()
    assert stats["requests"] == 0  # admin calls are not venue traffic
    await Bybit(http, base).create(orderLinkId="adm", **LIMIT)
    async with http.get(base + "/_admin/stats") as r:
        stats = await r.json()
    assert (stats["requests"], stats["order_requests"], stats["orders"]) == (1, 1, 1)


async def test_fills_replayed_after_a_private_reconnect(sim: SimServer, http: aiohttp.ClientSession) -> None:
    """R5: the same execution arrives again on the next private connection."""
    client = Mexc(http, sim.urls["mexc"])
    ws = await client.private(sim.ws_urls["mexc"])
    await client.create(vol=3, side=1, type=5, price=0, externalOid="rp-1")
    first = await receive_until(ws, lambda m: m.get("channel") == "push.personal.order.deal")
    await ws.close()
    sim.set_faults("mexc", replay_fills_on_connect=True)
    again = await client.private(sim.ws_urls["mexc"])
    replayed = await receive_until(again, lambda m: m.get("channel") == "push.personal.order.deal")
    assert replayed["data"] == first["data"]
    await again.close()
    sim.set_faults("mexc", replay_fills_on_connect=False)
    quiet = await client.private(sim.ws_urls["mexc"])
    assert [m for m in await collect(quiet, 0.3) if m.get("channel") == "push.personal.order.deal"] == []
    await quiet.close()
