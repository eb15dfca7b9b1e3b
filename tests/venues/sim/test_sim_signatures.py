"""The simulator's signature and time-window checks against the venues' published examples."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from titan.venues.bybit.signing import sign as bybit_sign
from titan.venues.sim import SimAccount, SimServer

from .conftest import manual_config
from .helpers import BYBIT_KEY, Bybit, Mexc, now_ms

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

VECTORS: dict[str, Any] = json.loads(Path("/work/shared/vectors/venue_signing.json").read_text())
BINANCE = VECTORS["binance"]
BYBIT = VECTORS["bybit"]
BYBIT_TEST_SECRET = "bybit-vector-secret"  # Bybit publishes no secret: we sign its plaintext with ours


def _flip(text: str, index: int) -> str:
    """The same text with one byte changed."""
    return text[:index] + ("X" if text[index] != "X" else "Y") + text[index + 1 :]


def _vector_ts(total_params: str) -> int:
    return int(total_params.rsplit("timestamp=", 1)[1].split("&", 1)[0])


@pytest.fixture
async def vector_sim() -> Any:
    accounts = [
        SimAccount(venue="binance", api_key=BINANCE[0]["api_key"], secret=BINANCE[0]["secret"]),
        SimAccount(venue="binance", api_key="spot-example-key", secret=BINANCE[2]["secret"]),
        SimAccount(venue="bybit", api_key="XXXXXXXXXX", secret=BYBIT_TEST_SECRET),
    ]
    async with SimServer(manual_config(accounts=accounts)) as server:
        await server.set_quote("BTC/USDT", Decimal("9000.0"), Decimal("9000.1"))
        yield server


async def _binance_post(
    http: aiohttp.ClientSession, url: str, key: str, query: str, body: str
) -> tuple[int, Any]:
    headers = {"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"}
    async with http.post(
        f"{url}/fapi/v1/order" + (f"?{query}" if query else ""), data=body, headers=headers
    ) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("case", [0, 1], ids=["example-1-query", "example-3-query+body"])
async def test_binance_published_examples_accepted_and_one_byte_change_rejected(
    vector_sim: SimServer, http: aiohttp.ClientSession, case: int
) -> None:
    v = BINANCE[case]
    ts = _vector_ts(v["total_params"])
    vector_sim.set_faults(
        "binance", clock_skew_ms=ts - now_ms() + 200
    )  # the venue's clock at the example's time
    url, key = vector_sim.urls["binance"], BINANCE[0]["api_key"]
    if case == 0:
        query, body = f"{v['total_params']}&signature={v['signature']}", ""
    else:
        query, body = v["query"], f"{v['body']}&signature={v['signature']}"
    status, reply = await _binance_post(http, url, key, query, body)
    assert status == 200, reply
    assert reply["clientOrderId"] and reply["origQty"] == "1" and reply["price"] == "9000"

    bad_query, bad_body = (_flip(query, 10), body) if case == 0 else (query, _flip(body, 3))
    status, reply = await _binance_post(http, url, key, bad_query, bad_body)
    assert (status, reply["code"]) == (400, -1022)


async def test_binance_spot_example_signature_passes_before_symbol_check(
    vector_sim: SimServer, http: aiohttp.ClientSession
) -> None:
    v = BINANCE[2]
    vector_sim.set_faults("binance", clock_skew_ms=_vector_ts(v["total_params"]) - now_ms() + 200)
    url = vector_sim.urls["binance"]
    _, reply = await _binance_post(
        http, url, "spot-example-key", f"{v['total_params']}&signature={v['signature']}", ""
    )
    assert reply["code"] == -1121  # signature and time accepted; LTCBTC is not a simulated contract
    _, reply = await _binance_post(
        http, url, "spot-example-key", f"{v['total_params']}&signature={_flip(v['signature'], 0)}", ""
    )
    assert reply["code"] == -1022


@pytest.mark.parametrize("case", [0, 1], ids=["GET", "POST"])
async def test_bybit_documented_string_to_sign_accepted_and_one_byte_change_rejected(
    vector_sim: SimServer, http: aiohttp.ClientSession, case: int
) -> None:
    v = BYBIT[case]
    vector_sim.set_faults("bybit", clock_skew_ms=int(v["timestamp"]) - now_ms() + 200)
    signature = bybit_sign(BYBIT_TEST_SECRET, v["string_to_sign"])
    headers = {
        "X-BAPI-API-KEY": v["api_key"],
        "X-BAPI-TIMESTAMP": v["timestamp"],
        "X-BAPI-SIGN": signature,
        "X-BAPI-RECV-WINDOW": v["recv_window"],
        "Content-Type": "application/json",
    }
    base = vector_sim.urls["bybit"]

    async def send(payload: str) -> Any:
        if case == 0:
            request = http.get(f"{base}/v5/order/realtime?{payload}", headers=headers)
        else:
            request = http.post(f"{base}/v5/order/cancel-all", data=payload, headers=headers)
        async with request as r:
            return await r.json()

    payload = v["query"] if case == 0 else v["body"]
    accepted = await send(payload)
    # Authenticated: the only complaint left is the simulator's linear-only category.
    assert accepted["retCode"] == 10001, accepted
    rejected = await send(_flip(payload, len(payload) - 3))
    assert rejected["retCode"] == 10004


@pytest.mark.parametrize("skew_ms, expected", [(0, 0), (-1500, 10002), (6000, 10002)])
async def test_bybit_time_window(
    sim: SimServer, http: aiohttp.ClientSession, skew_ms: int, expected: int
) -> None:
    """Accepted when server − recv_window ≤ ts < server + 1000 (venues.md §2.2)."""
    sim.set_faults("bybit", clock_skew_ms=skew_ms)
    client = Bybit(http, sim.urls["bybit"])
    _, _, body = await client.get("/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    assert body["retCode"] == expected
    client.offset_ms = skew_ms  # a client that measured the offset is accepted (R12)
    _, _, body = await client.get("/v5/order/realtime", {"category": "linear", "symbol": "BTCUSDT"})
    assert body["retCode"] == 0


async def test_bybit_unknown_key_and_bad_signature(sim: SimServer, http: aiohttp.ClientSession) -> None:
    _, _, body = await Bybit(http, sim.urls["bybit"], key="nope").get(
        "/v5/position/list", {"category": "linear"}
    )
    assert body["retCode"] == 10003
    _, _, body = await Bybit(http, sim.urls["bybit"], secret="wrong").get(
        "/v5/position/list", {"category": "linear"}
    )
    assert body["retCode"] == 10004
    _, _, body = await Bybit(http, sim.urls["bybit"], key=BYBIT_KEY).get(
        "/v5/position/list", {"category": "linear", "settleCoin": "USDT"}
    )
    assert body["retCode"] == 0


@pytest.mark.parametrize("skew_ms, expected", [(0, 200), (-1500, -1021), (6000, -1021)])
async def test_binance_time_window(
    sim: SimServer, http: aiohttp.ClientSession, skew_ms: int, expected: int
) -> None:
    from .helpers import Binance

    sim.set_faults("binance", clock_skew_ms=skew_ms)
    status, _, body = await Binance(http, sim.urls["binance"]).call("GET", "/fapi/v1/openOrders", {})
    assert (status if expected == 200 else body["code"]) == expected


@pytest.mark.parametrize("skew_ms, expected", [(0, 0), (11_000, 513), (-11_000, 513)])
async def test_mexc_time_window_and_signature(
    sim: SimServer, http: aiohttp.ClientSession, skew_ms: int, expected: int
) -> None:
    sim.set_faults("mexc", clock_skew_ms=skew_ms)
    _, body = await Mexc(http, sim.urls["mexc"]).get("/api/v1/private/account/assets")
    assert body["code"] == expected
    if expected == 0:
        _, body = await Mexc(http, sim.urls["mexc"], secret="wrong").get("/api/v1/private/account/assets")
        assert (body["success"], body["code"]) == (False, 602)


async def test_mexc_get_signature_covers_sorted_params(sim: SimServer, http: aiohttp.ClientSession) -> None:
    client = Mexc(http, sim.urls["mexc"])
    _, body = await client.get(
        "/api/v1/private/order/list/order_deals", {"symbol": "BTC_USDT", "page_num": "1"}
    )
    assert body["code"] == 0
    # Signed over one parameter set, sent with another: rejected.
    t = str(now_ms())
    from titan.venues.mexc.signing import sign

    headers = {
        "ApiKey": client.key,
        "Request-Time": t,
        "Signature": sign(client.secret, client.key, t, "symbol=BTC_USDT"),
    }
    async with http.get(
        f"{client.base}/api/v1/private/order/list/order_deals?symbol=ETH_USDT", headers=headers
    ) as r:
        assert (await r.json())["code"] == 602
