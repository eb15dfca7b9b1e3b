"""Bybit v5 adapter: request wire shapes, error classification (§2.8/§6), response and stream parsers."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from titan.venues.bybit import errors, parse, requests
from titan.venues.bybit.signing import sign, string_to_sign, ws_auth_signature
from titan.venues.common.client_id import ClientIdError
from titan.venues.common.orders import OrderValidationError
from titan.venues.common.outcome import ErrorClass, OutcomeKind
from titan.venues.common.stream import StreamAuthResult, StreamPong, StreamSubscribed
from titan.venues.common.types import (
    Credentials,
    HttpResponse,
    Instrument,
    OrderSpec,
    OrderState,
    Side,
    TimeInForce,
    VenueFill,
    VenueOrderState,
)

NOW_MS = 1_700_000_000_000
API_KEY = "test-api-key"
SECRET = "test-secret-0123456789"
COID = "te2vljbqgmnsx4c7pa1dhy01y0"


@pytest.fixture
def builder(credentials: Credentials) -> requests.BybitRequests:
    return requests.BybitRequests(credentials)


def _verify_signature(req_headers: dict[str, str], payload: str) -> None:
    plaintext = string_to_sign(
        req_headers["X-BAPI-TIMESTAMP"], API_KEY, req_headers["X-BAPI-RECV-WINDOW"], payload
    )
    assert req_headers["X-BAPI-SIGN"] == sign(SECRET, plaintext)
    assert req_headers["X-BAPI-API-KEY"] == API_KEY


# --- requests --------------------------------------------------------------------------------


def test_create_limit_body_is_exact_and_signed_over_body(
    builder: requests.BybitRequests, btc_linear: Instrument, limit_buy: OrderSpec
) -> None:
    req = builder.create_order(limit_buy, btc_linear, NOW_MS)
    assert (req.method, req.path, req.query) == ("POST", "/v5/order/create", "")
    assert json.loads(req.body) == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "qty": "0.012",  # 0.0129 truncated to the 0.001 step
        "price": "50000.1",  # BUY rounds down to the 0.10 tick
        "timeInForce": "GTC",
        "orderLinkId": COID,
        "reduceOnly": False,
        "positionIdx": 0,
    }
    assert b" " not in req.body
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-BAPI-TIMESTAMP"] == str(NOW_MS)
    assert req.headers["X-BAPI-RECV-WINDOW"] == "5000"
    _verify_signature(req.headers, req.body.decode())


@pytest.mark.parametrize(
    ("tif", "expected"),
    [
        (TimeInForce.GTC, "GTC"),
        (TimeInForce.IOC, "IOC"),
        (TimeInForce.FOK, "FOK"),
        (TimeInForce.POST_ONLY, "PostOnly"),
    ],
)
def test_create_time_in_force(
    builder: requests.BybitRequests,
    btc_linear: Instrument,
    limit_buy: OrderSpec,
    tif: TimeInForce,
    expected: str,
) -> None:
    spec = msgspec.structs.replace(limit_buy, tif=tif)
    assert json.loads(builder.create_order(spec, btc_linear, NOW_MS).body)["timeInForce"] == expected


def test_create_market_is_ioc_without_price(
    builder: requests.BybitRequests, btc_linear: Instrument, market_sell: OrderSpec
) -> None:
    body = json.loads(builder.create_order(market_sell, btc_linear, NOW_MS).body)
    assert body["orderType"] == "Market" and body["timeInForce"] == "IOC" and body["side"] == "Sell"
    assert "price" not in body and body["qty"] == "0.5"


def test_create_sell_limit_rounds_price_up_and_reduce_only(
    builder: requests.BybitRequests, btc_linear: Instrument, limit_buy: OrderSpec
) -> None:
    spec = msgspec.structs.replace(limit_buy, side=Side.SELL, price=Decimal("50000.11"), reduce_only=True)
    body = json.loads(builder.create_order(spec, btc_linear, NOW_MS).body)
    assert body["price"] == "50000.2" and body["reduceOnly"] is True


@pytest.mark.parametrize("bad_id", ["x" * 37, "bad id", "has.dot", ""])
def test_create_refuses_invalid_order_link_id(
    builder: requests.BybitRequests, btc_linear: Instrument, limit_buy: OrderSpec, bad_id: str
) -> None:
    with pytest.raises(ClientIdError):
        builder.create_order(msgspec.structs.replace(limit_buy, client_order_id=bad_id), btc_linear, NOW_MS)


def test_create_accepts_36_char_order_link_id(
    builder: requests.BybitRequests, btc_linear: Instrument, limit_buy: OrderSpec
) -> None:
    coid = "A_b-" + "9" * 32
    spec = msgspec.structs.replace(limit_buy, client_order_id=coid)
    assert json.loads(builder.create_order(spec, btc_linear, NOW_MS).body)["orderLinkId"] == coid


def test_create_refuses_qty_below_minimum(
    builder: requests.BybitRequests, btc_linear: Instrument, limit_buy: OrderSpec
) -> None:
    with pytest.raises(OrderValidationError):
        builder.create_order(msgspec.structs.replace(limit_buy, qty=Decimal("0.0009")), btc_linear, NOW_MS)


def test_cancel_and_query_by_client_id(builder: requests.BybitRequests) -> None:
    cancel = builder.cancel_order("BTCUSDT", COID, NOW_MS)
    assert cancel.path == "/v5/order/cancel"
    assert json.loads(cancel.body) == {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": COID}
    _verify_signature(cancel.headers, cancel.body.decode())

    query = builder.query_order("BTCUSDT", COID, NOW_MS)
    assert (query.method, query.path) == ("GET", "/v5/order/realtime")
    assert query.query == f"category=linear&symbol=BTCUSDT&orderLinkId={COID}"
    assert query.body == b"" and "Content-Type" not in query.headers
    _verify_signature(query.headers, query.query)
    assert query.target == f"/v5/order/realtime?{query.query}"

    history = builder.query_order_history("BTCUSDT", COID, NOW_MS)
    assert history.path == "/v5/order/history"


@pytest.mark.parametrize(
    ("make", "path", "query"),
    [
        (
            lambda b: b.open_orders(NOW_MS),
            "/v5/order/realtime",
            "category=linear&settleCoin=USDT&openOnly=0&limit=50",
        ),
        (
            lambda b: b.executions(NOW_MS, "BTCUSDT", start_time_ms=1),
            "/v5/execution/list",
            "category=linear&symbol=BTCUSDT&startTime=1&limit=100",
        ),
        (lambda b: b.positions(NOW_MS), "/v5/position/list", "category=linear&settleCoin=USDT"),
        (lambda b: b.wallet_balance(NOW_MS), "/v5/account/wallet-balance", "accountType=UNIFIED&coin=USDT"),
    ],
)
def test_signed_gets(builder: requests.BybitRequests, make: object, path: str, query: str) -> None:
    assert callable(make)
    req = make(builder)
    assert (req.method, req.path, req.query) == ("GET", path, query)
    _verify_signature(req.headers, req.query)


def test_public_requests_are_unsigned() -> None:
    time_req = requests.server_time_request()
    assert time_req.target == "/v5/market/time" and time_req.headers == {}
    inst = requests.instruments_request(venue_symbol="BTCUSDT")
    assert inst.target == "/v5/market/instruments-info?category=linear&symbol=BTCUSDT"


def test_dcp_sets_product(builder: requests.BybitRequests) -> None:
    req = builder.disconnected_cancel_all(10, NOW_MS)
    assert json.loads(req.body) == {"product": "DERIVATIVES", "timeWindow": 10}
    with pytest.raises(ValueError):
        builder.disconnected_cancel_all(2, NOW_MS)


def test_ws_auth_message(builder: requests.BybitRequests) -> None:
    msg = json.loads(builder.ws_auth_message(NOW_MS + 10_000))
    assert msg == {
        "op": "auth",
        "args": [API_KEY, NOW_MS + 10_000, ws_auth_signature(SECRET, NOW_MS + 10_000)],
    }
    assert json.loads(requests.ws_subscribe_message(["order", "execution"])) == {
        "req_id": "sub",
        "op": "subscribe",
        "args": ["order", "execution"],
    }


# --- classification --------------------------------------------------------------------------


def _ret(
    code: int, msg: str = "x", result: object = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    body = {"retCode": code, "retMsg": msg, "result": result or {}, "retExtInfo": {}, "time": NOW_MS}
    return HttpResponse(status=200, body=json.dumps(body).encode(), headers=headers or {})


@pytest.mark.parametrize(
    ("code", "error_class", "kind"),
    [
        (10006, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (10429, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (10018, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (110007, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (110004, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (110012, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (110044, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (10002, ErrorClass.CLOCK_ERROR, OutcomeKind.CLOCK_ERROR),
        (110072, ErrorClass.DUPLICATE_CLIENT_ID, OutcomeKind.DUPLICATE_CLIENT_ID),
        (10016, ErrorClass.UNKNOWN, OutcomeKind.UNKNOWN),
        (110079, ErrorClass.UNKNOWN, OutcomeKind.UNKNOWN),
        (10003, ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR),
        (10004, ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR),
        (10001, ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED),
        (110017, ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED),
        (110001, ErrorClass.NOT_FOUND, OutcomeKind.NOT_FOUND),
        (170213, ErrorClass.NOT_FOUND, OutcomeKind.NOT_FOUND),
        (123456, ErrorClass.OTHER, OutcomeKind.REJECTED),
    ],
)
def test_ret_code_classification(code: int, error_class: ErrorClass, kind: OutcomeKind) -> None:
    outcome = errors.classify_response(_ret(code, "msg"), NOW_MS)
    assert (outcome.kind, outcome.error_class, outcome.code) == (kind, error_class, str(code))
    assert outcome.message == "msg"


def test_duplicate_and_unknown_may_exist() -> None:
    assert errors.classify_response(_ret(110072), NOW_MS).may_exist
    assert errors.classify_response(_ret(10016), NOW_MS).may_exist
    assert errors.classify_response(_ret(10002), NOW_MS).not_placed


def test_ack_carries_order_id() -> None:
    outcome = errors.classify_response(
        _ret(0, "OK", {"orderId": "1321003749386327552", "orderLinkId": COID}), NOW_MS
    )
    assert outcome.kind is OutcomeKind.ACK and outcome.venue_order_id == "1321003749386327552"


def test_10006_cooldown_until_reset_timestamp_header() -> None:
    outcome = errors.classify_response(
        _ret(10006, headers={"X-Bapi-Limit-Reset-Timestamp": str(NOW_MS + 700)}), NOW_MS
    )
    assert outcome.kind is OutcomeKind.RATE_LIMITED and outcome.until_ms == NOW_MS + 700
    assert not outcome.ip_ban


def test_http_403_is_ten_minute_ip_ban() -> None:
    outcome = errors.classify_response(HttpResponse(403, b"access too frequent"), NOW_MS)
    assert outcome.kind is OutcomeKind.RATE_LIMITED and outcome.ip_ban
    assert outcome.until_ms == NOW_MS + 600_000


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_http_5xx_is_unknown(status: int) -> None:
    outcome = errors.classify_response(HttpResponse(status, b"<html>bad gateway</html>"), NOW_MS)
    assert outcome.kind is OutcomeKind.UNKNOWN and outcome.code == f"HTTP{status}"


def test_unreadable_200_is_unknown_not_rejected() -> None:
    assert errors.classify_response(HttpResponse(200, b"not json"), NOW_MS).kind is OutcomeKind.UNKNOWN


# --- parsers (samples shaped as in the v5 docs) ----------------------------------------------

ORDER_RECORD = {
    "orderId": "fd4300ae-7847-404e-b947-b46980a4d140",
    "orderLinkId": COID,
    "blockTradeId": "",
    "symbol": "ETHUSDT",
    "price": "1600.00",
    "qty": "0.10",
    "side": "Buy",
    "isLeverage": "",
    "positionIdx": 0,
    "orderStatus": "PartiallyFilled",
    "cancelType": "UNKNOWN",
    "rejectReason": "EC_NoError",
    "avgPrice": "1599.5",
    "leavesQty": "0.04",
    "leavesValue": "64",
    "cumExecQty": "0.06",
    "cumExecValue": "95.97",
    "cumExecFee": "0.0575",
    "timeInForce": "GTC",
    "orderType": "Limit",
    "reduceOnly": False,
    "createdTime": "1684738540559",
    "updatedTime": "1684738540561",
}


def _ok(result: object) -> bytes:
    return json.dumps(
        {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": NOW_MS}
    ).encode()


def test_parse_order_query_found_and_not_found() -> None:
    body = _ok({"list": [ORDER_RECORD], "nextPageCursor": "page2", "category": "linear"})
    state = parse.parse_order_query(body, COID)
    assert state == VenueOrderState(
        venue="bybit",
        venue_symbol="ETHUSDT",
        client_order_id=COID,
        venue_order_id="fd4300ae-7847-404e-b947-b46980a4d140",
        state=OrderState.PARTIAL_FILL,
        venue_status="PartiallyFilled",
        filled_qty=Decimal("0.06"),
        avg_price=Decimal("1599.5"),
        qty=Decimal("0.10"),
        price=Decimal("1600.00"),
        side=Side.BUY,
        reject_reason="EC_NoError",
        update_time_ms=1684738540561,
    )
    empty = _ok({"list": [], "nextPageCursor": "", "category": "linear"})
    assert parse.parse_order_query(empty, COID) is None


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("New", OrderState.ACKED),
        ("PartiallyFilled", OrderState.PARTIAL_FILL),
        ("Untriggered", OrderState.ACKED),
        ("Filled", OrderState.FILLED),
        ("Cancelled", OrderState.CANCELED),
        ("Rejected", OrderState.REJECTED),
        ("Deactivated", OrderState.CANCELED),
    ],
)
def test_order_status_mapping(status: str, state: OrderState) -> None:
    body = _ok({"list": [{**ORDER_RECORD, "orderStatus": status}]})
    assert parse.parse_order_query(body, COID) is not None
    assert parse.parse_orders(body)[0][0].state is state


def test_cancelled_with_executed_qty_keeps_filled_and_empty_avg_price() -> None:
    record = {
        **ORDER_RECORD,
        "orderStatus": "Cancelled",
        "avgPrice": "",
        "cumExecQty": "0.05",
        "cumExecValue": "80",
    }
    state = parse.parse_orders(_ok({"list": [record]}))[0][0]
    assert state.state is OrderState.CANCELED
    assert state.filled_qty == Decimal("0.05") and state.avg_price == Decimal("1600")
    nothing = parse.parse_orders(_ok({"list": [{**record, "cumExecQty": "0", "cumExecValue": "0"}]}))[0][0]
    assert nothing.avg_price == 0 and nothing.filled_qty == 0


def test_parse_server_time() -> None:
    body = _ok({"timeSecond": "1688639403", "timeNano": "1688639403423213947"})
    assert parse.parse_server_time_ms(body) == NOW_MS
    no_top = json.dumps(
        {"retCode": 0, "result": {"timeSecond": "1688639403", "timeNano": "1688639403423213947"}}
    )
    assert parse.parse_server_time_ms(no_top.encode()) == 1688639403423


def test_parse_instruments() -> None:
    body = _ok(
        {
            "category": "linear",
            "list": [
                {
                    "symbol": "BTCUSDT",
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDT",
                    "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
                    "lotSizeFilter": {
                        "maxOrderQty": "100.000",
                        "maxMktOrderQty": "100.000",
                        "minOrderQty": "0.001",
                        "qtyStep": "0.001",
                        "postOnlyMaxOrderQty": "1000.000",
                        "minNotionalValue": "5",
                    },
                }
            ],
            "nextPageCursor": "",
        }
    )
    instruments, cursor = parse.parse_instruments(body)
    assert cursor == ""
    assert instruments == [
        Instrument(
            venue="bybit",
            symbol="BTC/USDT",
            venue_symbol="BTCUSDT",
            tick_size=Decimal("0.10"),
            lot_step=Decimal("0.001"),
            min_qty=Decimal("0.001"),
            max_qty=Decimal("100.000"),
            min_notional=Decimal("5"),
        )
    ]


EXECUTION = {
    "category": "linear",
    "symbol": "BTCUSDT",
    "execFee": "0.005061",
    "execId": "7e2ae69c-4edf-5800-a352-893d52b446aa",
    "execPrice": "0.3374",
    "execQty": "25",
    "execType": "Trade",
    "execValue": "8.435",
    "isMaker": False,
    "feeRate": "0.0006",
    "orderId": "f6e324ff-99c2-4e89-9739-3086e47f9381",
    "orderLinkId": COID,
    "orderPrice": "0.3207",
    "orderQty": "25",
    "orderType": "Market",
    "side": "Sell",
    "execTime": "1672364174443",
    "closedSize": "0",
    "seq": 4688002127,
}


def test_parse_executions_skips_funding() -> None:
    funding = {**EXECUTION, "execType": "Funding", "execId": "f1"}
    fills, cursor = parse.parse_executions(_ok({"list": [EXECUTION, funding], "nextPageCursor": "c2"}))
    assert cursor == "c2"
    assert fills == [
        VenueFill(
            venue="bybit",
            venue_symbol="BTCUSDT",
            trade_id="7e2ae69c-4edf-5800-a352-893d52b446aa",
            venue_order_id="f6e324ff-99c2-4e89-9739-3086e47f9381",
            client_order_id=COID,
            side=Side.SELL,
            qty=Decimal("25"),
            price=Decimal("0.3374"),
            fee=Decimal("0.005061"),
            fee_asset="USDT",
            is_maker=False,
            exchange_time_ms=1672364174443,
        )
    ]


def test_parse_positions_signs_short() -> None:
    body = _ok(
        {
            "list": [
                {
                    "symbol": "BTCUSDT",
                    "side": "Sell",
                    "size": "0.5",
                    "avgPrice": "49000",
                    "markPrice": "48900",
                    "unrealisedPnl": "50",
                    "positionIdx": 0,
                },
                {"symbol": "ETHUSDT", "side": "Buy", "size": "2", "avgPrice": "3000", "positionIdx": 0},
                {"symbol": "SOLUSDT", "side": "", "size": "0", "avgPrice": "0", "positionIdx": 0},
            ]
        }
    )
    positions = parse.parse_positions(body)
    assert [(p.venue_symbol, p.qty) for p in positions] == [
        ("BTCUSDT", Decimal("-0.5")),
        ("ETHUSDT", Decimal("2")),
        ("SOLUSDT", Decimal("0")),
    ]
    assert positions[0].entry_price == Decimal("49000") and positions[0].unrealised_pnl == Decimal("50")


def test_parse_wallet_balance() -> None:
    body = _ok(
        {
            "list": [
                {
                    "accountType": "UNIFIED",
                    "coin": [{"coin": "USDT", "walletBalance": "1000.5", "availableToWithdraw": ""}],
                }
            ]
        }
    )
    [balance] = parse.parse_wallet_balance(body)
    assert (balance.asset, balance.wallet_balance, balance.available_balance) == (
        "USDT",
        Decimal("1000.5"),
        Decimal("1000.5"),
    )


def test_parsers_refuse_error_envelopes() -> None:
    from titan.venues.common.wire import VenueParseError

    with pytest.raises(VenueParseError):
        parse.parse_orders(_ret(10001).body)


# --- private stream --------------------------------------------------------------------------


def test_stream_order_and_execution_frames() -> None:
    order_frame = {
        "id": "5923240c6880ab-c59f-420b-9adb-3639adc9dd90",
        "topic": "order",
        "creationTime": 1672364262474,
        "data": [
            {
                **ORDER_RECORD,
                "category": "linear",
                "orderStatus": "Filled",
                "cumExecQty": "0.10",
                "leavesQty": "0",
            }
        ],
    }
    [state] = parse.parse_private_message(json.dumps(order_frame).encode())
    assert isinstance(state, VenueOrderState)
    assert state.state is OrderState.FILLED and state.filled_qty == Decimal("0.10")

    exec_frame = {
        "id": "x",
        "topic": "execution",
        "creationTime": 1,
        "data": [EXECUTION, {**EXECUTION, "execId": "e2"}],
    }
    fills = parse.parse_private_message(json.dumps(exec_frame))
    assert [f.trade_id for f in fills if isinstance(f, VenueFill)] == [EXECUTION["execId"], "e2"]


def test_stream_control_frames() -> None:
    auth_ok = b'{"success":true,"ret_msg":"","op":"auth","conn_id":"cejreaspqfh3sjdnldmg-p"}'
    assert parse.parse_private_message(auth_ok) == [StreamAuthResult(ok=True, message="")]
    auth_bad = b'{"success":false,"ret_msg":"Params Error","op":"auth","conn_id":"c"}'
    assert parse.parse_private_message(auth_bad) == [StreamAuthResult(ok=False, message="Params Error")]
    pong = b'{"req_id":"1","op":"pong","args":["1675418560633"],"conn_id":"c"}'
    assert parse.parse_private_message(pong) == [StreamPong()]
    sub = b'{"success":true,"ret_msg":"","op":"subscribe","conn_id":"c"}'
    assert parse.parse_private_message(sub) == [StreamSubscribed(ok=True)]


def test_execution_fast_is_ignored_so_fee_carrying_fills_win_dedupe() -> None:
    fast = {
        "topic": "execution.fast",
        "creationTime": 1,
        "data": [
            {
                "category": "linear",
                "symbol": "BTCUSDT",
                "execId": "e1",
                "execPrice": "1",
                "execQty": "1",
                "side": "Buy",
                "orderId": "o",
                "isMaker": True,
                "orderLinkId": "",
                "execTime": "1",
                "seq": 1,
            }
        ],
    }
    events = parse.parse_private_message(json.dumps(fast))
    assert len(events) == 1 and not isinstance(events[0], VenueFill)
