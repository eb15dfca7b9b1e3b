"""MEXC contract adapter: JSON wire shapes in contracts (R34), §4.9/§6 classification, parsers, stream."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.venues.common.client_id import ClientIdError
from titan.venues.common.outcome import ErrorClass, OutcomeKind
from titan.venues.common.stream import StreamAuthResult, StreamPong, StreamSubscribed
from titan.venues.common.types import (
    Credentials,
    HttpRequest,
    HttpResponse,
    Instrument,
    OrderSpec,
    OrderState,
    Side,
    TimeInForce,
    VenueFill,
    VenueOrderState,
)
from titan.venues.common.wire import VenueParseError
from titan.venues.mexc import contracts, errors, parse, requests
from titan.venues.mexc.contracts import ContractConversionError
from titan.venues.mexc.signing import param_string_get, sign

NOW_MS = 1_700_000_000_000
API_KEY = "test-api-key"
SECRET = "test-secret-0123456789"
SIZES = {"BTC_USDT": Decimal("0.0001")}


@pytest.fixture
def builder(credentials: Credentials) -> requests.MexcRequests:
    return requests.MexcRequests(credentials)


@pytest.fixture
def btc_contract() -> Instrument:
    return Instrument(
        venue="mexc",
        symbol="BTC/USDT",
        venue_symbol="BTC_USDT",
        tick_size=Decimal("0.1"),
        lot_step=Decimal("0.0001"),  # volUnit 1 × contractSize 0.0001
        min_qty=Decimal("0.0001"),
        max_qty=Decimal("100"),
        contract_size=Decimal("0.0001"),
    )


@pytest.fixture
def mexc_limit(limit_buy: OrderSpec) -> OrderSpec:
    return msgspec.structs.replace(limit_buy, venue_symbol="BTC_USDT")


def _verify(req: HttpRequest, param_string: str) -> None:
    assert req.headers["ApiKey"] == API_KEY
    assert req.headers["Request-Time"] == str(NOW_MS)
    assert req.headers["Signature"] == sign(SECRET, API_KEY, str(NOW_MS), param_string)
    assert req.headers["Content-Type"] == "application/json"
    assert "Recv-Window" not in req.headers


# --- requests (R34) --------------------------------------------------------------------------


def test_create_uses_numbers_in_contracts_with_leverage(
    builder: requests.MexcRequests, btc_contract: Instrument, mexc_limit: OrderSpec, coid: str
) -> None:
    req = builder.create_order(mexc_limit, btc_contract, NOW_MS, leverage=5)
    assert (req.method, req.path, req.query) == ("POST", "/api/v1/private/order/create", "")
    # 0.0129 BTC → 129 contracts of 0.0001; 50000.17 BUY → 50000.1. Raw numbers, no quotes, no exponent.
    assert req.body == (
        b'{"symbol":"BTC_USDT","price":50000.1,"vol":129,"leverage":5,"side":1,"type":1,'
        b'"openType":2,"externalOid":"' + coid.encode() + b'"}'
    )
    decoded = json.loads(req.body, parse_float=Decimal)
    assert decoded["price"] == Decimal("50000.1") and decoded["vol"] == 129
    _verify(req, req.body.decode())


@pytest.mark.parametrize(
    ("side", "reduce_only", "code"),
    [(Side.BUY, False, 1), (Side.BUY, True, 2), (Side.SELL, False, 3), (Side.SELL, True, 4)],
)
def test_side_codes(
    builder: requests.MexcRequests,
    btc_contract: Instrument,
    mexc_limit: OrderSpec,
    side: Side,
    reduce_only: bool,
    code: int,
) -> None:
    spec = msgspec.structs.replace(mexc_limit, side=side, reduce_only=reduce_only)
    assert json.loads(builder.create_order(spec, btc_contract, NOW_MS, leverage=1).body)["side"] == code
    assert contracts.side_of_code(code) is side and contracts.is_closing_code(code) is reduce_only


@pytest.mark.parametrize(
    ("tif", "code"),
    [(TimeInForce.GTC, 1), (TimeInForce.POST_ONLY, 2), (TimeInForce.IOC, 3), (TimeInForce.FOK, 4)],
)
def test_order_type_codes(
    builder: requests.MexcRequests,
    btc_contract: Instrument,
    mexc_limit: OrderSpec,
    tif: TimeInForce,
    code: int,
) -> None:
    spec = msgspec.structs.replace(mexc_limit, tif=tif)
    assert json.loads(builder.create_order(spec, btc_contract, NOW_MS, leverage=1).body)["type"] == code


def test_market_order_is_type_5_without_price(
    builder: requests.MexcRequests, btc_contract: Instrument, market_sell: OrderSpec
) -> None:
    spec = msgspec.structs.replace(market_sell, venue_symbol="BTC_USDT")
    body = json.loads(builder.create_order(spec, btc_contract, NOW_MS, leverage=3).body)
    assert body["type"] == 5 and "price" not in body and body["vol"] == 5000 and body["side"] == 3


def test_one_way_mode_sends_reduce_only(
    btc_contract: Instrument, mexc_limit: OrderSpec, credentials: Credentials
) -> None:
    one_way = requests.MexcRequests(credentials, position_mode=requests.POSITION_MODE_ONE_WAY)
    spec = msgspec.structs.replace(mexc_limit, side=Side.SELL, reduce_only=True)
    body = json.loads(one_way.create_order(spec, btc_contract, NOW_MS, leverage=2).body)
    assert body["positionMode"] == 2 and body["reduceOnly"] is True and body["side"] == 4


def test_small_price_never_uses_exponent(
    builder: requests.MexcRequests, mexc_limit: OrderSpec, btc_contract: Instrument
) -> None:
    tiny = msgspec.structs.replace(btc_contract, tick_size=Decimal("0.00000001"))
    spec = msgspec.structs.replace(mexc_limit, price=Decimal("0.00000001"))
    body = builder.create_order(spec, tiny, NOW_MS, leverage=1).body
    assert b'"price":0.00000001' in body and b"E" not in body.replace(b"externalOid", b"")


@pytest.mark.parametrize("bad_id", ["a" * 33, "has-dash", ""])
def test_external_oid_limit(
    builder: requests.MexcRequests, btc_contract: Instrument, mexc_limit: OrderSpec, bad_id: str
) -> None:
    with pytest.raises(ClientIdError):
        builder.create_order(
            msgspec.structs.replace(mexc_limit, client_order_id=bad_id), btc_contract, NOW_MS, 1
        )


def test_32_char_external_oid_is_accepted(
    builder: requests.MexcRequests, btc_contract: Instrument, mexc_limit: OrderSpec
) -> None:
    spec = msgspec.structs.replace(mexc_limit, client_order_id="a" * 32)
    assert json.loads(builder.create_order(spec, btc_contract, NOW_MS, 1).body)["externalOid"] == "a" * 32


def test_cancel_bodies_are_json_arrays(builder: requests.MexcRequests, coid: str) -> None:
    by_id = builder.cancel_orders(["101716841474621953", "108885377779302912"], NOW_MS)
    assert by_id.path == "/api/v1/private/order/cancel"
    assert by_id.body == b'["101716841474621953","108885377779302912"]'
    _verify(by_id, by_id.body.decode())
    by_coid = builder.cancel_order("BTC_USDT", coid, NOW_MS)
    assert by_coid.path == "/api/v1/private/order/cancel_with_external"
    assert json.loads(by_coid.body) == [{"symbol": "BTC_USDT", "externalOid": coid}]
    cancel_all = builder.cancel_all("BTC_USDT", NOW_MS)
    assert json.loads(cancel_all.body) == {"symbol": "BTC_USDT"}
    with pytest.raises(ValueError):
        builder.cancel_orders([str(i) for i in range(51)], NOW_MS)


def test_query_by_external_oid_signs_empty_params(builder: requests.MexcRequests, coid: str) -> None:
    req = builder.query_order("BTC_USDT", coid, NOW_MS)
    assert (req.method, req.path, req.query, req.body) == (
        "GET",
        f"/api/v1/private/order/external/BTC_USDT/{coid}",
        "",
        b"",
    )
    _verify(req, "")


def test_get_signature_covers_sorted_params_without_nulls(builder: requests.MexcRequests) -> None:
    req = builder.order_deals("BTC_USDT", NOW_MS)
    assert req.query == "page_num=1&page_size=100&symbol=BTC_USDT"
    assert req.query == param_string_get(
        {"symbol": "BTC_USDT", "page_size": 100, "start_time": None, "page_num": 1}
    )
    _verify(req, req.query)
    positions = builder.positions(NOW_MS)
    assert positions.query == "" and positions.path == "/api/v1/private/position/open_positions"
    _verify(positions, "")
    open_orders = builder.open_orders(NOW_MS, "BTC_USDT")
    assert open_orders.path == "/api/v1/private/order/list/open_orders/BTC_USDT"
    assert builder.assets(NOW_MS).path == "/api/v1/private/account/assets"


def test_public_requests_and_ws_messages(builder: requests.MexcRequests) -> None:
    assert requests.server_time_request().target == "/api/v1/contract/ping"
    assert requests.contract_detail_request("BTC_USDT").target == "/api/v1/contract/detail?symbol=BTC_USDT"
    login = json.loads(builder.ws_login_message(NOW_MS))
    expected_sig = hmac.new(SECRET.encode(), f"{API_KEY}{NOW_MS}".encode(), hashlib.sha256).hexdigest()
    assert login == {
        "method": "login",
        "param": {"apiKey": API_KEY, "reqTime": str(NOW_MS), "signature": expected_sig},
    }
    assert json.loads(requests.ws_personal_filter_message({"order": ["BTC_USDT"]})) == {
        "method": "personal.filter",
        "param": {"filters": [{"filter": "order", "rules": ["BTC_USDT"]}]},
    }
    assert requests.ws_ping_message() == b'{"method":"ping"}'


def test_contract_conversion() -> None:
    assert contracts.base_to_contracts(Decimal("0.0129"), Decimal("0.0001")) == 129
    assert contracts.contracts_to_base(Decimal(129), Decimal("0.0001")) == Decimal("0.0129")
    with pytest.raises(ContractConversionError):
        contracts.base_to_contracts(Decimal("0.00015"), Decimal("0.0001"))
    with pytest.raises(ContractConversionError):
        contracts.base_to_contracts(Decimal("1"), Decimal("0"))


# --- classification --------------------------------------------------------------------------


def _resp(
    code: int, success: bool = False, message: str = "m", data: object = None, status: int = 200
) -> HttpResponse:
    body = {"success": success, "code": code, "message": message, "data": data}
    return HttpResponse(status, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("code", "error_class", "kind"),
    [
        (510, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (2037, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (2005, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (2018, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (513, ErrorClass.CLOCK_ERROR, OutcomeKind.CLOCK_ERROR),
        (603, ErrorClass.DUPLICATE_CLIENT_ID, OutcomeKind.DUPLICATE_CLIENT_ID),
        (602, ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR),
        (401, ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR),
        (402, ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR),
        (406, ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR),
        (600, ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED),
        (2015, ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED),
        (2030, ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED),
        (2040, ErrorClass.NOT_FOUND, OutcomeKind.NOT_FOUND),
        (6001, ErrorClass.OTHER, OutcomeKind.REJECTED),
    ],
)
def test_code_classification(code: int, error_class: ErrorClass, kind: OutcomeKind) -> None:
    outcome = errors.classify_response(_resp(code, message="msg"), NOW_MS)
    assert (outcome.kind, outcome.error_class, outcome.code, outcome.message) == (
        kind,
        error_class,
        str(code),
        "msg",
    )


@pytest.mark.parametrize(
    "response",
    [
        HttpResponse(500, b"Internal Server Error"),
        HttpResponse(502, b""),
        HttpResponse(200, b'{"success":false}'),
        HttpResponse(200, b"<html>"),
    ],
)
def test_unknown_outcomes(response: HttpResponse) -> None:
    assert errors.classify_response(response, NOW_MS).kind is OutcomeKind.UNKNOWN


@pytest.mark.parametrize(
    ("data", "order_id"),
    [
        ({"orderId": "739113577038255616", "ts": 1761888808839}, "739113577038255616"),
        ("102057569836905984", "102057569836905984"),
        (102057569836905985, "102057569836905985"),
    ],
)
def test_ack_accepts_create_and_legacy_submit(data: object, order_id: str) -> None:
    outcome = errors.classify_response(_resp(0, success=True, data=data), NOW_MS)
    assert outcome.kind is OutcomeKind.ACK and outcome.venue_order_id == order_id


# --- parsers ---------------------------------------------------------------------------------

ORDER: dict[str, Any] = {
    "orderId": "102015012431820288",
    "symbol": "BTC_USDT",
    "positionId": 1394650,
    "price": 8800.5,
    "vol": 300,
    "leverage": 20,
    "side": 1,
    "category": 1,
    "orderType": 1,
    "dealAvgPrice": 8799.3,
    "dealVol": 100,
    "orderMargin": 1.3,
    "takerFee": 0.0,
    "makerFee": -0.01,
    "profit": 0,
    "feeCurrency": "USDT",
    "openType": 1,
    "state": 2,
    "externalOid": "te2vljbqgmnsx4c7pa1dhy01m0",
    "errorCode": 0,
    "usedMargin": 0,
    "createTime": 1609991676000,
    "updateTime": 1609991676123,
    "remainVol": 200,
    "positionMode": 1,
    "reduceOnly": False,
}


def _ok(data: object) -> bytes:
    return json.dumps({"success": True, "code": 0, "data": data}).encode()


def test_parse_order_query_converts_contracts_and_keeps_exact_decimals() -> None:
    state = parse.parse_order_query(_ok(ORDER), SIZES)
    assert state == VenueOrderState(
        venue="mexc",
        venue_symbol="BTC_USDT",
        client_order_id="te2vljbqgmnsx4c7pa1dhy01m0",
        venue_order_id="102015012431820288",
        state=OrderState.PARTIAL_FILL,
        venue_status="2",
        filled_qty=Decimal("0.0100"),
        avg_price=Decimal("8799.3"),
        qty=Decimal("0.0300"),
        price=Decimal("8800.5"),
        side=Side.BUY,
        update_time_ms=1609991676123,
    )
    assert parse.parse_order_query(_ok(None), SIZES) is None


def test_json_numbers_never_go_through_float() -> None:
    # Built as text: a Python float literal would already have lost the digits.
    body = _ok(ORDER).replace(b'"price": 8800.5', b'"price": 6865.1000000000001')
    assert b"6865.1000000000001" in body
    state = parse.parse_order_query(body, SIZES)
    assert state is not None and state.price == Decimal("6865.1000000000001")


@pytest.mark.parametrize(
    ("state_code", "deal_vol", "state"),
    [
        (1, 0, OrderState.ACKED),
        (2, 0, OrderState.ACKED),
        (2, 5, OrderState.PARTIAL_FILL),
        (3, 300, OrderState.FILLED),
        (4, 0, OrderState.CANCELED),
        (5, 0, OrderState.REJECTED),
    ],
)
def test_state_mapping(state_code: int, deal_vol: int, state: OrderState) -> None:
    parsed = parse.parse_orders(_ok([{**ORDER, "state": state_code, "dealVol": deal_vol}]), SIZES)
    assert parsed[0].state is state


def test_unknown_symbol_contract_size_is_an_error() -> None:
    with pytest.raises(VenueParseError):
        parse.parse_order_query(_ok({**ORDER, "symbol": "ETH_USDT"}), SIZES)


def test_parse_contract_detail_and_time() -> None:
    detail = {
        "symbol": "BTC_USDT",
        "displayName": "BTC_USDT永续",
        "baseCoin": "BTC",
        "quoteCoin": "USDT",
        "contractSize": 0.0001,
        "minLeverage": 1,
        "maxLeverage": 125,
        "priceScale": 1,
        "volScale": 0,
        "amountScale": 4,
        "priceUnit": 0.1,
        "volUnit": 1,
        "minVol": 1,
        "maxVol": 1000000,
        "state": 0,
    }
    [instrument] = parse.parse_contract_detail(_ok(detail))
    assert instrument == Instrument(
        venue="mexc",
        symbol="BTC/USDT",
        venue_symbol="BTC_USDT",
        tick_size=Decimal("0.1"),
        lot_step=Decimal("0.0001"),
        min_qty=Decimal("0.0001"),
        max_qty=Decimal("100.0000"),
        contract_size=Decimal("0.0001"),
    )
    assert parse.parse_contract_detail(_ok([detail, {**detail, "symbol": "OLD_USDT", "state": 4}])) == [
        instrument
    ]
    assert parse.parse_server_time_ms(b'{"success":true,"code":0,"data":1587442022003}') == 1587442022003


def test_parse_positions_assets_and_cancel_results() -> None:
    positions = [
        {
            "positionId": 1,
            "symbol": "BTC_USDT",
            "holdVol": 250,
            "positionType": 2,
            "openType": 1,
            "holdAvgPrice": 49000.5,
            "openAvgPrice": 49000.5,
            "state": 1,
        }
    ]
    [position] = parse.parse_positions(_ok(positions), SIZES)
    assert (position.qty, position.entry_price) == (Decimal("-0.0250"), Decimal("49000.5"))
    assets = [
        {
            "currency": "USDT",
            "positionMargin": 10,
            "frozenBalance": 5,
            "availableBalance": 85.5,
            "cashBalance": 100.5,
            "equity": 101,
        }
    ]
    [balance] = parse.parse_assets(_ok(assets))
    assert (balance.wallet_balance, balance.available_balance) == (Decimal("100.5"), Decimal("85.5"))
    results = parse.parse_cancel_results(
        _ok(
            [
                {"orderId": 101716841474621953, "errorCode": 2040, "errorMsg": "order not exist"},
                {"orderId": 108885377779302912, "errorCode": 0, "errorMsg": "success"},
            ]
        )
    )
    assert [(str(r.order_id), r.error_code) for r in results] == [
        ("101716841474621953", 2040),
        ("108885377779302912", 0),
    ]


# --- private stream --------------------------------------------------------------------------

DEAL: dict[str, Any] = {
    "category": 1,
    "externalOid": "te2vljbqgmnsx4c7pa1dhy01m0",
    "fee": 0.0026,
    "feeCurrency": "USDT",
    "id": "1122334455",
    "isSelf": False,
    "isTaker": True,
    "orderId": "102015012431820288",
    "positionMode": 1,
    "price": 8799.3,
    "profit": 0,
    "reduceOnly": False,
    "side": 1,
    "symbol": "BTC_USDT",
    "timestamp": 1609991676100,
    "vol": 100,
}


def test_stream_order_and_deal() -> None:
    [state] = parse.parse_private_message(
        json.dumps({"channel": "push.personal.order", "data": ORDER, "ts": 1609991676123}), SIZES
    )
    assert isinstance(state, VenueOrderState) and state.state is OrderState.PARTIAL_FILL
    [fill] = parse.parse_private_message(
        json.dumps({"channel": "push.personal.order.deal", "data": DEAL, "ts": 1}).encode(), SIZES
    )
    assert fill == VenueFill(
        venue="mexc",
        venue_symbol="BTC_USDT",
        trade_id="1122334455",
        venue_order_id="102015012431820288",
        client_order_id="te2vljbqgmnsx4c7pa1dhy01m0",
        side=Side.BUY,
        qty=Decimal("0.0100"),
        price=Decimal("8799.3"),
        fee=Decimal("0.0026"),
        fee_asset="USDT",
        is_maker=False,
        exchange_time_ms=1609991676100,
    )


def test_stream_control_frames() -> None:
    assert parse.parse_private_message(b'{"channel":"rs.login","data":"success","ts":1}', SIZES) == [
        StreamAuthResult(ok=True, message="success")
    ]
    [failed] = parse.parse_private_message(b'{"channel":"rs.error","data":"invalid signature","ts":1}', SIZES)
    assert isinstance(failed, StreamAuthResult) and not failed.ok
    assert parse.parse_private_message(b'{"channel":"pong","data":1587453241453}', SIZES) == [StreamPong()]
    assert parse.parse_private_message(b'{"channel":"rs.personal.filter","data":"success"}', SIZES) == [
        StreamSubscribed(ok=True)
    ]


@given(
    contracts_count=st.integers(min_value=0, max_value=10**9),
    size=st.sampled_from([Decimal("0.0001"), Decimal("0.001"), Decimal("0.01"), Decimal("1"), Decimal("10")]),
)
def test_contract_conversion_round_trips(contracts_count: int, size: Decimal) -> None:
    base = contracts.contracts_to_base(Decimal(contracts_count), size)
    assert contracts.base_to_contracts(base, size) == contracts_count
