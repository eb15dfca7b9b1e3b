"""Binance USD-M adapter: form-encoded wire shapes (R34), §3.8/§6 classification, parsers, user stream."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import pytest

from titan.venues.binance import errors, parse, requests
from titan.venues.binance.signing import sign
from titan.venues.common.client_id import ClientIdError
from titan.venues.common.outcome import ErrorClass, OutcomeKind
from titan.venues.common.stream import ListenKeyExpired, StreamSubscribed
from titan.venues.common.types import (
    Credentials,
    HttpResponse,
    Instrument,
    OrderSpec,
    OrderState,
    Side,
    TimeInForce,
    VenueBalance,
    VenueFill,
    VenueOrderState,
    VenuePosition,
)

NOW_MS = 1_700_000_000_000
SECRET = "test-secret-0123456789"


@pytest.fixture
def builder(credentials: Credentials) -> requests.BinanceRequests:
    return requests.BinanceRequests(credentials)


def _split_signed(text: str) -> tuple[list[tuple[str, str]], str]:
    """Parameters and the signed prefix; asserts the signature is last and valid."""
    prefix, sep, signature = text.rpartition("&signature=")
    assert sep and "&" not in signature
    assert signature == sign(SECRET, prefix)
    return parse_qsl(prefix, keep_blank_values=True), prefix


# --- requests (R34) --------------------------------------------------------------------------


def test_create_is_form_encoded_with_client_id_and_signature_last(
    builder: requests.BinanceRequests, btc_linear: Instrument, limit_buy: OrderSpec, coid: str
) -> None:
    req = builder.create_order(limit_buy, btc_linear, NOW_MS)
    assert (req.method, req.path, req.query) == ("POST", "/fapi/v1/order", "")
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.headers["X-MBX-APIKEY"] == "test-api-key"
    params, _ = _split_signed(req.body.decode())
    assert params == [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.012"),
        ("price", "50000.1"),
        ("reduceOnly", "false"),
        ("newClientOrderId", coid),
        ("newOrderRespType", "RESULT"),
        ("recvWindow", "5000"),
        ("timestamp", str(NOW_MS)),
    ]


def test_create_post_only_is_gtx_and_market_has_no_tif(
    builder: requests.BinanceRequests, btc_linear: Instrument, limit_buy: OrderSpec, market_sell: OrderSpec
) -> None:
    post_only = msgspec.structs.replace(limit_buy, tif=TimeInForce.POST_ONLY)
    params = dict(_split_signed(builder.create_order(post_only, btc_linear, NOW_MS).body.decode())[0])
    assert params["timeInForce"] == "GTX"
    market = dict(_split_signed(builder.create_order(market_sell, btc_linear, NOW_MS).body.decode())[0])
    assert market["type"] == "MARKET" and market["side"] == "SELL"
    assert "timeInForce" not in market and "price" not in market


def test_hedge_mode_sends_position_side_not_reduce_only(
    builder: requests.BinanceRequests, btc_linear: Instrument, limit_buy: OrderSpec
) -> None:
    params = dict(_split_signed(builder.create_order(limit_buy, btc_linear, NOW_MS, "LONG").body.decode())[0])
    assert params["positionSide"] == "LONG" and "reduceOnly" not in params


@pytest.mark.parametrize("good_id", ["a.b:c/d_e-f", "X" * 36])
def test_client_id_charset_allows_binance_extras(
    builder: requests.BinanceRequests, btc_linear: Instrument, limit_buy: OrderSpec, good_id: str
) -> None:
    req = builder.create_order(
        msgspec.structs.replace(limit_buy, client_order_id=good_id), btc_linear, NOW_MS
    )
    assert dict(_split_signed(req.body.decode())[0])["newClientOrderId"] == good_id


@pytest.mark.parametrize("bad_id", ["X" * 37, "sp ace", "semi;colon"])
def test_client_id_limits(
    builder: requests.BinanceRequests, btc_linear: Instrument, limit_buy: OrderSpec, bad_id: str
) -> None:
    with pytest.raises(ClientIdError):
        builder.create_order(msgspec.structs.replace(limit_buy, client_order_id=bad_id), btc_linear, NOW_MS)


def test_cancel_and_query_by_orig_client_order_id(builder: requests.BinanceRequests, coid: str) -> None:
    for req, method in (
        (builder.cancel_order("BTCUSDT", coid, NOW_MS), "DELETE"),
        (builder.query_order("BTCUSDT", coid, NOW_MS), "GET"),
    ):
        assert (req.method, req.path, req.body) == (method, "/fapi/v1/order", b"")
        assert "Content-Type" not in req.headers
        params, _ = _split_signed(req.query)
        assert params[:2] == [("symbol", "BTCUSDT"), ("origClientOrderId", coid)]


@pytest.mark.parametrize(
    ("make", "method", "path"),
    [
        (lambda b: b.cancel_all("BTCUSDT", NOW_MS), "DELETE", "/fapi/v1/allOpenOrders"),
        (lambda b: b.open_orders(NOW_MS), "GET", "/fapi/v1/openOrders"),
        (lambda b: b.user_trades("BTCUSDT", NOW_MS, from_id=5), "GET", "/fapi/v1/userTrades"),
        (lambda b: b.position_risk(NOW_MS), "GET", "/fapi/v2/positionRisk"),
        (lambda b: b.balance(NOW_MS), "GET", "/fapi/v2/balance"),
    ],
)
def test_signed_queries(builder: requests.BinanceRequests, make: object, method: str, path: str) -> None:
    assert callable(make)
    req = make(builder)
    assert (req.method, req.path) == (method, path)
    params, _ = _split_signed(req.query)
    assert dict(params)["timestamp"] == str(NOW_MS)


def test_countdown_cancel_all_is_signed_form_post(builder: requests.BinanceRequests) -> None:
    req = builder.countdown_cancel_all("BTCUSDT", 60000, NOW_MS)
    assert (req.method, req.path) == ("POST", "/fapi/v1/countdownCancelAll")
    params, _ = _split_signed(req.body.decode())
    assert params[:2] == [("symbol", "BTCUSDT"), ("countdownTime", "60000")]


def test_listen_key_requests_are_key_only(builder: requests.BinanceRequests) -> None:
    for req, method in (
        (builder.listen_key_create(), "POST"),
        (builder.listen_key_keepalive(), "PUT"),
        (builder.listen_key_close(), "DELETE"),
    ):
        assert (req.method, req.path, req.query, req.body) == (method, "/fapi/v1/listenKey", "", b"")
        assert req.headers == {"X-MBX-APIKEY": "test-api-key"}
    assert requests.user_stream_path("abc") == "/private/ws/abc"
    assert requests.server_time_request().target == "/fapi/v1/time"
    assert requests.exchange_info_request().target == "/fapi/v1/exchangeInfo"


# --- classification --------------------------------------------------------------------------


def _err(code: int, msg: str = "m", status: int = 400, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, json.dumps({"code": code, "msg": msg}).encode(), headers or {})


@pytest.mark.parametrize(
    ("code", "error_class", "kind"),
    [
        (-1003, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (-1015, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (-1008, ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED),
        (-2019, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (-2018, ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED),
        (-1021, ErrorClass.CLOCK_ERROR, OutcomeKind.CLOCK_ERROR),
        (-4116, ErrorClass.DUPLICATE_CLIENT_ID, OutcomeKind.DUPLICATE_CLIENT_ID),
        (-1006, ErrorClass.UNKNOWN, OutcomeKind.UNKNOWN),
        (-1007, ErrorClass.UNKNOWN, OutcomeKind.UNKNOWN),
        (-1022, ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR),
        (-4015, ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED),
        (-2022, ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED),
        (-2013, ErrorClass.NOT_FOUND, OutcomeKind.NOT_FOUND),
        (-2011, ErrorClass.NOT_FOUND, OutcomeKind.NOT_FOUND),
        (-1125, ErrorClass.NOT_FOUND, OutcomeKind.NOT_FOUND),
        (-4164, ErrorClass.OTHER, OutcomeKind.REJECTED),
    ],
)
def test_code_classification(code: int, error_class: ErrorClass, kind: OutcomeKind) -> None:
    outcome = errors.classify_response(_err(code, "msg"), NOW_MS)
    assert (outcome.kind, outcome.error_class, outcome.code, outcome.message) == (
        kind,
        error_class,
        str(code),
        "msg",
    )


def test_minus_1003_banned_until_sets_cooldown_and_ip_ban() -> None:
    until = NOW_MS + 123_456
    message = f"Way too much request weight used; IP banned until {until}. Please use WebSocket Streams."
    outcome = errors.classify_response(_err(-1003, message, status=418), NOW_MS)
    assert outcome.kind is OutcomeKind.RATE_LIMITED and outcome.until_ms == until and outcome.ip_ban


@pytest.mark.parametrize(("status", "ip_ban"), [(429, False), (418, True)])
def test_429_and_418_honour_retry_after(status: int, ip_ban: bool) -> None:
    outcome = errors.classify_response(_err(-1003, "Too many requests", status, {"Retry-After": "7"}), NOW_MS)
    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert outcome.until_ms == NOW_MS + 7000 and outcome.ip_ban is ip_ban
    bare = errors.classify_response(HttpResponse(status, b"", {"retry-after": "2"}), NOW_MS)
    assert (
        bare.kind is OutcomeKind.RATE_LIMITED
        and bare.code == f"HTTP{status}"
        and bare.until_ms == NOW_MS + 2000
    )


@pytest.mark.parametrize(
    ("body", "kind", "error_class"),
    [
        (
            b'{"code":-1000,"msg":"Unknown error, please check your request or try again later."}',
            OutcomeKind.UNKNOWN,
            ErrorClass.UNKNOWN,
        ),
        (
            b"Unknown error, please check your request or try again later.",
            OutcomeKind.UNKNOWN,
            ErrorClass.UNKNOWN,
        ),
        (b"Service Unavailable.", OutcomeKind.REJECTED, ErrorClass.SERVICE_UNAVAILABLE),
        (
            b'{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}',
            OutcomeKind.REJECTED,
            ErrorClass.SERVICE_UNAVAILABLE,
        ),
        (b"", OutcomeKind.UNKNOWN, ErrorClass.UNKNOWN),
    ],
)
def test_503_variants(body: bytes, kind: OutcomeKind, error_class: ErrorClass) -> None:
    outcome = errors.classify_response(HttpResponse(503, body), NOW_MS)
    assert (outcome.kind, outcome.error_class) == (kind, error_class)


@pytest.mark.parametrize("status", [500, 502, 504, 408])
def test_other_5xx_and_408_are_unknown(status: int) -> None:
    assert errors.classify_response(HttpResponse(status, b"oops"), NOW_MS).kind is OutcomeKind.UNKNOWN


def test_403_waf_is_definitive_reject() -> None:
    outcome = errors.classify_response(HttpResponse(403, b"<html>403 Forbidden</html>"), NOW_MS)
    assert outcome.kind is OutcomeKind.REJECTED and outcome.code == "HTTP403"


ORDER_RESULT = {
    "clientOrderId": "te2vljbqgmnsx4c7pa1dhy01b0",
    "cumQty": "0",
    "cumQuote": "0",
    "executedQty": "0",
    "orderId": 22542179,
    "avgPrice": "0.00000",
    "origQty": "10",
    "price": "9000",
    "reduceOnly": False,
    "side": "BUY",
    "positionSide": "BOTH",
    "status": "NEW",
    "stopPrice": "0",
    "closePosition": False,
    "symbol": "BTCUSDT",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "origType": "LIMIT",
    "updateTime": 1566818724722,
    "workingType": "CONTRACT_PRICE",
    "priceProtect": False,
    "priceMatch": "NONE",
    "selfTradePreventionMode": "NONE",
    "goodTillDate": 0,
}


def test_ack_with_integer_order_id() -> None:
    outcome = errors.classify_response(HttpResponse(200, json.dumps(ORDER_RESULT).encode()), NOW_MS)
    assert outcome.kind is OutcomeKind.ACK and outcome.venue_order_id == "22542179"
    cancel_all = errors.classify_response(
        HttpResponse(200, b'{"code":200,"msg":"The operation of cancel all open order is done."}'), NOW_MS
    )
    assert cancel_all.kind is OutcomeKind.ACK


# --- parsers ---------------------------------------------------------------------------------


def test_parse_order() -> None:
    state = parse.parse_order(json.dumps(ORDER_RESULT).encode())
    assert state == VenueOrderState(
        venue="binance",
        venue_symbol="BTCUSDT",
        client_order_id="te2vljbqgmnsx4c7pa1dhy01b0",
        venue_order_id="22542179",
        state=OrderState.ACKED,
        venue_status="NEW",
        filled_qty=Decimal(0),
        avg_price=Decimal(0),
        qty=Decimal(10),
        price=Decimal(9000),
        side=Side.BUY,
        update_time_ms=1566818724722,
    )


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("NEW", OrderState.ACKED),
        ("PARTIALLY_FILLED", OrderState.PARTIAL_FILL),
        ("FILLED", OrderState.FILLED),
        ("CANCELED", OrderState.CANCELED),
        ("EXPIRED", OrderState.EXPIRED),
        ("EXPIRED_IN_MATCH", OrderState.EXPIRED),
    ],
)
def test_status_mapping(status: str, state: OrderState) -> None:
    body = json.dumps([{**ORDER_RESULT, "status": status}]).encode()
    assert parse.parse_open_orders(body)[0].state is state


def test_parse_exchange_info() -> None:
    body = json.dumps(
        {
            "timezone": "UTC",
            "serverTime": 1565613908500,
            "rateLimits": [
                {"interval": "MINUTE", "intervalNum": 1, "limit": 2400, "rateLimitType": "REQUEST_WEIGHT"},
                {"interval": "SECOND", "intervalNum": 10, "limit": 300, "rateLimitType": "ORDERS"},
            ],
            "symbols": [
                {
                    "symbol": "BTCUSDT",
                    "status": "TRADING",
                    "contractType": "PERPETUAL",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "maxPrice": "300",
                            "minPrice": "0.0001",
                            "tickSize": "0.10",
                        },
                        {"filterType": "LOT_SIZE", "maxQty": "1000", "minQty": "0.001", "stepSize": "0.001"},
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "maxQty": "120",
                            "minQty": "0.001",
                            "stepSize": "0.001",
                        },
                        {"filterType": "MIN_NOTIONAL", "notional": "100"},
                    ],
                },
                {"symbol": "OLDUSDT", "status": "SETTLING", "filters": []},
            ],
        }
    ).encode()
    instruments, limits = parse.parse_exchange_info(body)
    assert instruments == [
        Instrument(
            venue="binance",
            symbol="BTC/USDT",
            venue_symbol="BTCUSDT",
            tick_size=Decimal("0.10"),
            lot_step=Decimal("0.001"),
            min_qty=Decimal("0.001"),
            max_qty=Decimal("1000"),
            min_notional=Decimal("100"),
        )
    ]
    assert [(limit.rate_limit_type, limit.limit, limit.window_ms) for limit in limits] == [
        ("REQUEST_WEIGHT", 2400, 60_000),
        ("ORDERS", 300, 10_000),
    ]


def test_parse_user_trades_positions_balance_time_listen_key() -> None:
    trades = [
        {
            "buyer": False,
            "commission": "-0.07819010",
            "commissionAsset": "USDT",
            "id": 698759,
            "maker": False,
            "orderId": 25851813,
            "price": "7819.01",
            "qty": "0.002",
            "quoteQty": "15.63802",
            "realizedPnl": "-0.91539999",
            "side": "SELL",
            "positionSide": "SHORT",
            "symbol": "BTCUSDT",
            "time": 1569514978020,
        }
    ]
    [fill] = parse.parse_user_trades(json.dumps(trades).encode())
    assert (fill.trade_id, fill.venue_order_id, fill.side, fill.qty, fill.price, fill.fee) == (
        "698759",
        "25851813",
        Side.SELL,
        Decimal("0.002"),
        Decimal("7819.01"),
        Decimal("-0.07819010"),
    )

    risk = [
        {
            "entryPrice": "6563.66500",
            "marginType": "isolated",
            "markPrice": "6512.1",
            "positionAmt": "-0.250",
            "symbol": "BTCUSDT",
            "unRealizedProfit": "12.8",
            "positionSide": "BOTH",
        }
    ]
    [position] = parse.parse_position_risk(json.dumps(risk).encode())
    assert (position.qty, position.entry_price, position.position_side) == (
        Decimal("-0.250"),
        Decimal("6563.665"),
        "",
    )

    balances = [
        {
            "accountAlias": "SgsR",
            "asset": "USDT",
            "balance": "122607.35137903",
            "crossWalletBalance": "23.7",
            "availableBalance": "23.72469206",
            "maxWithdrawAmount": "23.72469206",
        }
    ]
    [balance] = parse.parse_balance(json.dumps(balances).encode())
    assert (balance.wallet_balance, balance.available_balance) == (
        Decimal("122607.35137903"),
        Decimal("23.72469206"),
    )

    assert parse.parse_server_time_ms(b'{"serverTime":1499827319559}') == 1499827319559
    assert (
        parse.parse_listen_key(
            b'{"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}'
        )[:4]
        == "pqia"
    )


# --- user data stream ------------------------------------------------------------------------

ORDER_UPDATE: dict[str, Any] = {
    "e": "ORDER_TRADE_UPDATE",
    "E": 1568879465651,
    "T": 1568879465650,
    "o": {
        "s": "BTCUSDT",
        "c": "te2vljbqgmnsx4c7pa1dhy01b0",
        "S": "SELL",
        "o": "LIMIT",
        "f": "GTC",
        "q": "0.003",
        "p": "7103.04",
        "ap": "7103.04",
        "sp": "0",
        "x": "TRADE",
        "X": "PARTIALLY_FILLED",
        "i": 8886774,
        "l": "0.001",
        "z": "0.001",
        "L": "7103.04",
        "N": "USDT",
        "n": "0.00284121",
        "T": 1568879465650,
        "t": 88123,
        "b": "0",
        "a": "9.91",
        "m": True,
        "R": False,
        "wt": "CONTRACT_PRICE",
        "ot": "LIMIT",
        "ps": "BOTH",
        "cp": False,
        "rp": "0",
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "NONE",
        "pm": "NONE",
        "gtd": 0,
    },
}


def test_order_trade_update_trade_gives_fill_then_state() -> None:
    fill, state = parse.parse_user_message(json.dumps(ORDER_UPDATE).encode())
    assert fill == VenueFill(
        venue="binance",
        venue_symbol="BTCUSDT",
        trade_id="88123",
        venue_order_id="8886774",
        client_order_id="te2vljbqgmnsx4c7pa1dhy01b0",
        side=Side.SELL,
        qty=Decimal("0.001"),
        price=Decimal("7103.04"),
        fee=Decimal("0.00284121"),
        fee_asset="USDT",
        is_maker=True,
        exchange_time_ms=1568879465650,
    )
    assert isinstance(state, VenueOrderState)
    assert state.state is OrderState.PARTIAL_FILL and state.filled_qty == Decimal("0.001")


def test_order_trade_update_new_has_no_fill_and_stream_mode_is_unwrapped() -> None:
    new = {**ORDER_UPDATE, "o": {**ORDER_UPDATE["o"], "x": "NEW", "X": "NEW", "l": "0", "z": "0"}}
    wrapped = {"stream": "listenkey", "data": new}
    [state] = parse.parse_user_message(json.dumps(wrapped))
    assert isinstance(state, VenueOrderState) and state.state is OrderState.ACKED


def test_account_update_and_control_frames() -> None:
    account = {
        "e": "ACCOUNT_UPDATE",
        "E": 1564745798939,
        "T": 1564745798938,
        "a": {
            "m": "ORDER",
            "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50"}],
            "P": [
                {
                    "s": "BTCUSDT",
                    "pa": "-20",
                    "ep": "6563.66500",
                    "bep": "0",
                    "cr": "0",
                    "up": "2850.21200",
                    "mt": "isolated",
                    "iw": "13200.70726908",
                    "ps": "BOTH",
                }
            ],
        },
    }
    balance, position = parse.parse_user_message(json.dumps(account).encode())
    assert balance == VenueBalance("binance", "USDT", Decimal("122624.12345678"), Decimal("100.12345678"))
    assert isinstance(position, VenuePosition) and position.qty == Decimal("-20")
    assert parse.parse_user_message(b'{"e":"listenKeyExpired","E":1576653824250,"listenKey":"k"}') == [
        ListenKeyExpired(event_time_ms=1576653824250)
    ]
    assert parse.parse_user_message(b'{"result":null,"id":1}') == [StreamSubscribed(ok=True)]
