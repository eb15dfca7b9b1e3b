"""Public ticker streams of the simulator: shapes, modes, handshakes (venues.md §2.5, §3.5, §4.6)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from titan.venues.sim import SimServer

from .conftest import manual_config
from .helpers import collect, receive_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
async def walking_sim() -> AsyncIterator[SimServer]:
    async with SimServer(manual_config(price_source="walk", seed=11)) as server:
        yield server


async def test_bybit_snapshot_then_deltas_with_only_changed_string_fields(
    walking_sim: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(walking_sim.ws_urls["bybit"] + "/v5/public/linear") as ws:
        await ws.send_json({"req_id": "t1", "op": "subscribe", "args": ["tickers.BTCUSDT"]})
        ack = await ws.receive_json(timeout=5)
        assert (ack["success"], ack["op"], ack["req_id"]) == (True, "subscribe", "t1")
        messages = [m for m in await collect(ws, 0.6) if m.get("topic") == "tickers.BTCUSDT"]
        assert messages[0]["type"] == "snapshot" and {m["type"] for m in messages[1:]} == {"delta"}
        snapshot = messages[0]["data"]
        assert {"bid1Price", "bid1Size", "ask1Price", "ask1Size", "lastPrice", "markPrice"} <= set(snapshot)
        assert all(isinstance(v, str) for v in snapshot.values())
        state = dict(snapshot)
        for delta in messages[1:]:
            assert all(state.get(k) != v for k, v in delta["data"].items() if k != "symbol")  # only changes
            state.update(delta["data"])
        assert all(isinstance(m["ts"], int) and isinstance(m["cs"], int) for m in messages)
        await ws.send_json({"op": "ping"})
        pong = await receive_until(ws, lambda m: m.get("op") == "ping")
        assert (pong["success"], pong["ret_msg"]) == (True, "pong")


async def test_bybit_rejects_unknown_topics(walking_sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(walking_sim.ws_urls["bybit"] + "/v5/public/linear") as ws:
        await ws.send_json({"op": "subscribe", "args": ["tickers.NOPEUSDT"]})
        assert (await ws.receive_json(timeout=5))["success"] is False


@pytest.mark.parametrize(
    "path, combined",
    [
        ("/public/ws/btcusdt@bookTicker", False),
        ("/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker", True),
    ],
    ids=["ws-mode", "stream-mode"],
)
async def test_binance_book_ticker_modes(
    walking_sim: SimServer, http: aiohttp.ClientSession, path: str, combined: bool
) -> None:
    async with http.ws_connect(walking_sim.ws_urls["binance"] + path) as ws:
        frames = await collect(ws, 0.5)
    assert frames
    data = [f["data"] for f in frames] if combined else frames
    if combined:
        assert {f["stream"] for f in frames} <= {"btcusdt@bookTicker", "ethusdt@bookTicker"}
    for d in data:
        assert d["e"] == "bookTicker" and set(d) == {"e", "u", "E", "T", "s", "b", "B", "a", "A"}
    btc = [d["u"] for d in data if d["s"] == "BTCUSDT"]
    assert btc == sorted(btc) and len(set(btc)) == len(btc)


async def test_binance_live_subscribe_and_wrong_entry_point_is_silent(
    walking_sim: SimServer, http: aiohttp.ClientSession
) -> None:
    base = walking_sim.ws_urls["binance"]
    async with http.ws_connect(base + "/public/ws") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1})
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
        first = await receive_until(ws, lambda m: m.get("e") == "bookTicker")
        assert first["s"] == "BTCUSDT"
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        listed = await receive_until(ws, lambda m: m.get("id") == 2)
        assert listed["result"] == ["btcusdt@bookTicker"]
    async with http.ws_connect(base + "/market/ws") as ws:  # bookTicker on the wrong entry point (R15)
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1})
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
        assert await collect(ws, 0.5) == []


async def test_binance_mark_price_on_market(walking_sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(walking_sim.ws_urls["binance"] + "/market/ws/btcusdt@markPrice") as ws:
        frame = await receive_until(ws, lambda m: m.get("e") == "markPriceUpdate")
    assert frame["s"] == "BTCUSDT" and isinstance(frame["p"], str)


async def test_mexc_push_ticker_once_per_second_with_json_numbers(
    walking_sim: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(walking_sim.ws_urls["mexc"] + "/edge") as ws:
        await ws.send_json({"method": "sub.ticker", "param": {"symbol": "BTC_USDT"}})
        assert (await ws.receive_json(timeout=5))["channel"] == "rs.sub.ticker"
        raw = await asyncio.wait_for(_next_text(ws, "push.ticker"), timeout=5)
        await ws.send_json({"method": "ping"})
        pong = await receive_until(ws, lambda m: m.get("channel") == "pong")
        assert isinstance(pong["data"], int)
    push = json.loads(raw)
    assert push["symbol"] == "BTC_USDT" and push["data"]["symbol"] == "BTC_USDT"
    assert '"bid1":"' not in raw and isinstance(push["data"]["bid1"], (int, float))  # numbers, not strings
    assert "bid1Size" not in push["data"]


async def _next_text(ws: aiohttp.ClientWebSocketResponse, channel: str) -> str:
    while True:
        msg = await ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT and f'"channel":"{channel}"' in msg.data:
            return str(msg.data)


async def test_mexc_cadence_is_one_second(http: aiohttp.ClientSession) -> None:
    async with (
        SimServer(manual_config(price_source="walk", mexc_ticker_ms=1000, bybit_ticker_ms=100)) as sim,
        http.ws_connect(sim.ws_urls["mexc"] + "/edge") as mexc,
        http.ws_connect(sim.ws_urls["bybit"] + "/v5/public/linear") as bybit,
    ):
        await mexc.send_json({"method": "sub.ticker", "param": {"symbol": "BTC_USDT"}})
        await bybit.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
        mexc_frames, bybit_frames = await asyncio.gather(collect(mexc, 1.5), collect(bybit, 1.5))
    pushes = [m for m in mexc_frames if m.get("channel") == "push.ticker"]
    ticks = [m for m in bybit_frames if m.get("topic") == "tickers.BTCUSDT"]
    # over 1.5 s: one or two MEXC pushes, an order of magnitude more Bybit ones (counts, not timings)
    assert 1 <= len(pushes) <= 2 and len(ticks) >= 3 * len(pushes)


async def test_mexc_private_login_rejects_a_bad_signature(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(sim.ws_urls["mexc"] + "/edge") as ws:
        await ws.send_json(
            {"method": "login", "param": {"apiKey": "sim-mexc-key", "reqTime": "1", "signature": "00"}}
        )
        assert (await ws.receive_json(timeout=5))["channel"] == "rs.error"


async def test_bybit_private_auth_rejects_a_bad_signature(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(sim.ws_urls["bybit"] + "/v5/private") as ws:
        await ws.send_json({"op": "auth", "args": ["sim-bybit-key", 99_999_999_999_999, "00"]})
        reply = await ws.receive_json(timeout=5)
        assert (reply["op"], reply["success"]) == ("auth", False)
        await ws.send_json({"op": "subscribe", "args": ["order"]})
        assert (await ws.receive_json(timeout=5))["success"] is False
