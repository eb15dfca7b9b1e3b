"""Reliability cases at the adapter level, across venues through the common VenueAdapter interface.

R2 (duplicate → query, never rejected), R9 (query by client id; not-found rule), R10 (rate limits →
cooldown until the venue's time), R12/R19 (signed timestamps from the offset clock; clock errors are
not resent), R34 (wire shapes).
"""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from titan.venues.binance.adapter import BinanceAdapter
from titan.venues.bybit.adapter import BybitAdapter
from titan.venues.common.adapter import VenueAdapter
from titan.venues.common.clock import ServerClock
from titan.venues.common.cooldown import VenueCooldown
from titan.venues.common.outcome import OutcomeKind
from titan.venues.common.resolver import ResolutionStatus, UnknownOrderResolver
from titan.venues.common.types import Credentials, HttpResponse, Instrument, OrderSpec, OrderState
from titan.venues.mexc.adapter import MexcAdapter

NOW_MS = 1_700_000_000_000
VENUES = ["bybit", "binance", "mexc"]


def _instrument(venue: str) -> Instrument:
    symbol = "BTC_USDT" if venue == "mexc" else "BTCUSDT"
    size = Decimal("0.0001") if venue == "mexc" else Decimal(1)
    return Instrument(
        venue,
        "BTC/USDT",
        symbol,
        Decimal("0.1"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("100"),
        contract_size=size,
    )


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def adapter(venue: str, credentials: Credentials) -> VenueAdapter:
    adapters: dict[str, VenueAdapter] = {
        "bybit": BybitAdapter(credentials),
        "binance": BinanceAdapter(credentials),
        "mexc": MexcAdapter(credentials, leverage={"BTC_USDT": 5}, instruments=[_instrument("mexc")]),
    }
    return adapters[venue]


@pytest.fixture
def spec(venue: str, limit_buy: OrderSpec) -> OrderSpec:
    return msgspec.structs.replace(limit_buy, venue_symbol=_instrument(venue).venue_symbol)


DUPLICATE = {
    "bybit": HttpResponse(200, b'{"retCode":110072,"retMsg":"OrderLinkedID is duplicate","result":{}}'),
    "binance": HttpResponse(400, b'{"code":-4116,"msg":"ClientOrderId is duplicated."}'),
    "mexc": HttpResponse(200, b'{"success":false,"code":603,"message":"Repeated requests"}'),
}
UNKNOWN = {
    "bybit": HttpResponse(200, b'{"retCode":10016,"retMsg":"Server error","result":{}}'),
    "binance": HttpResponse(
        503, b'{"code":-1000,"msg":"Unknown error, please check your request or try again later."}'
    ),
    "mexc": HttpResponse(502, b"Bad Gateway"),
}
CLOCK = {
    "bybit": HttpResponse(
        200, b'{"retCode":10002,"retMsg":"The request time exceeds the time window range.","result":{}}'
    ),
    "binance": HttpResponse(
        400, b'{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}'
    ),
    "mexc": HttpResponse(200, b'{"success":false,"code":513,"message":"Invalid request"}'),
}
LIMITED = {
    "bybit": HttpResponse(
        200,
        b'{"retCode":10006,"retMsg":"Too many visits!","result":{}}',
        {"X-Bapi-Limit-Reset-Timestamp": str(NOW_MS + 900)},
    ),
    "binance": HttpResponse(429, b'{"code":-1003,"msg":"Too many requests."}', {"Retry-After": "1"}),
    "mexc": HttpResponse(200, b'{"success":false,"code":510,"message":"Excessive frequency of requests"}'),
}
NOT_FOUND = {
    "bybit": HttpResponse(200, b'{"retCode":0,"retMsg":"OK","result":{"list":[],"nextPageCursor":""}}'),
    "binance": HttpResponse(400, b'{"code":-2013,"msg":"Order does not exist."}'),
    "mexc": HttpResponse(200, b'{"success":true,"code":0,"data":null}'),
}


def _found(venue: str, coid: str) -> HttpResponse:
    if venue == "bybit":
        order: dict[str, object] = {
            "orderId": "1",
            "orderLinkId": coid,
            "symbol": "BTCUSDT",
            "orderStatus": "Filled",
            "side": "Buy",
            "qty": "0.012",
            "cumExecQty": "0.012",
            "avgPrice": "50000.1",
            "price": "50000.1",
        }
        return HttpResponse(200, json.dumps({"retCode": 0, "result": {"list": [order]}}).encode())
    if venue == "binance":
        order = {
            "orderId": 1,
            "clientOrderId": coid,
            "symbol": "BTCUSDT",
            "status": "FILLED",
            "side": "BUY",
            "origQty": "0.012",
            "executedQty": "0.012",
            "avgPrice": "50000.1",
            "price": "50000.1",
        }
        return HttpResponse(200, json.dumps(order).encode())
    order = {
        "orderId": "1",
        "externalOid": coid,
        "symbol": "BTC_USDT",
        "state": 3,
        "side": 1,
        "vol": 120,
        "dealVol": 120,
        "dealAvgPrice": 50000.1,
        "price": 50000.1,
    }
    return HttpResponse(200, json.dumps({"success": True, "code": 0, "data": order}).encode())


def test_r2_duplicate_client_id_and_unknown_mean_query_never_reject(
    adapter: VenueAdapter, venue: str
) -> None:
    for response in (DUPLICATE[venue], UNKNOWN[venue]):
        outcome = adapter.classify(response, NOW_MS)
        assert outcome.may_exist and not outcome.not_placed
        assert outcome.kind in (OutcomeKind.DUPLICATE_CLIENT_ID, OutcomeKind.UNKNOWN)


def test_r9_query_by_client_id_resolves_to_true_state(adapter: VenueAdapter, venue: str, coid: str) -> None:
    symbol = _instrument(venue).venue_symbol
    request = adapter.query_order(symbol, coid, NOW_MS)
    assert coid in request.target  # by client id, no venue order id needed
    resolver = UnknownOrderResolver()
    resolver.start(coid, NOW_MS)
    result = adapter.query_result(_found(venue, coid), NOW_MS, coid)
    assert result.outcome.kind is OutcomeKind.ACK and result.state is not None
    assert result.state.state is OrderState.FILLED and result.state.filled_qty == Decimal("0.012")
    assert resolver.on_found(coid, result.state).status is ResolutionStatus.FOUND


def test_r9_not_found_needs_three_probes_over_five_seconds(
    adapter: VenueAdapter, venue: str, coid: str
) -> None:
    resolver = UnknownOrderResolver()
    resolver.start(coid, NOW_MS)
    now = NOW_MS
    statuses = []
    while coid in resolver:
        assert resolver.due(now) == [coid]
        result = adapter.query_result(NOT_FOUND[venue], now, coid)
        assert result.outcome.kind is OutcomeKind.NOT_FOUND and result.state is None
        statuses.append(resolver.on_not_found(coid, now).status)
        next_due = resolver.next_due_ms()
        now = next_due if next_due is not None else now
    assert statuses == [ResolutionStatus.PENDING, ResolutionStatus.PENDING, ResolutionStatus.GONE]
    assert now - NOW_MS >= 5000


def test_r10_rate_limit_puts_venue_in_cooldown(adapter: VenueAdapter, venue: str) -> None:
    outcome = adapter.classify(LIMITED[venue], NOW_MS)
    assert outcome.kind is OutcomeKind.RATE_LIMITED and outcome.not_placed
    cooldown = VenueCooldown()
    cooldown.on_outcome(outcome, NOW_MS)
    assert not cooldown.may_submit(NOW_MS + 1)
    expected_until = {"bybit": NOW_MS + 900, "binance": NOW_MS + 1000, "mexc": NOW_MS + 2000}[venue]
    assert cooldown.until_ms == expected_until


def test_r12_clock_error_is_not_placed_and_forces_resync(adapter: VenueAdapter, venue: str) -> None:
    outcome = adapter.classify(CLOCK[venue], NOW_MS)
    assert outcome.kind is OutcomeKind.CLOCK_ERROR and outcome.not_placed and not outcome.may_exist
    clock = ServerClock()
    clock.record(server_ms=NOW_MS, local_send_ms=NOW_MS - 10, local_recv_ms=NOW_MS + 10)
    clock.mark_stale()
    assert clock.needs_refresh(NOW_MS + 11)


@pytest.mark.parametrize("skew_ms", [-1500, 1500])
def test_r19_signed_timestamp_is_the_offset_clock(
    adapter: VenueAdapter, venue: str, spec: OrderSpec, skew_ms: int
) -> None:
    clock = ServerClock()
    local = NOW_MS
    clock.record(server_ms=local + skew_ms, local_send_ms=local - 20, local_recv_ms=local + 20)
    request = adapter.create_order(spec, _instrument(venue), clock.now_ms(local))
    sent = {
        "bybit": lambda: request.headers["X-BAPI-TIMESTAMP"],
        "binance": lambda: dict(p.split("=", 1) for p in request.body.decode().split("&"))["timestamp"],
        "mexc": lambda: request.headers["Request-Time"],
    }[venue]()
    assert int(sent) == local + skew_ms


def test_r34_wire_shapes(adapter: VenueAdapter, venue: str, spec: OrderSpec, coid: str) -> None:
    request = adapter.create_order(spec, _instrument(venue), NOW_MS)
    if venue == "binance":
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        keys = [p.split("=", 1)[0] for p in request.body.decode().split("&")]
        assert "newClientOrderId" in keys and keys[-1] == "signature"
    elif venue == "bybit":
        body = json.loads(request.body)
        assert body["orderLinkId"] == coid and len(body["orderLinkId"]) <= 36
    else:
        assert request.path == "/api/v1/private/order/create"
        body = json.loads(request.body, parse_float=Decimal)
        assert body["vol"] == 120 and isinstance(body["vol"], int)  # 0.012 BTC in 0.0001 contracts
        assert body["price"] == Decimal("50000.1") and body["leverage"] == 5
        cancel = adapter.cancel_order("BTC_USDT", coid, NOW_MS)
        assert isinstance(json.loads(cancel.body), list)


def test_stream_auth_uses_offset_clock(credentials: Credentials) -> None:
    bybit = json.loads(BybitAdapter(credentials).stream_auth_message(NOW_MS))
    assert bybit["op"] == "auth" and bybit["args"][1] == NOW_MS + 10_000
    mexc = json.loads(MexcAdapter(credentials).stream_auth_message(NOW_MS))
    assert mexc["param"]["reqTime"] == str(NOW_MS)
