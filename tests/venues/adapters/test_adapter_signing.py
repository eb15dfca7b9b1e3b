"""Signing vectors (venue_signing.json) and signature builders for all three venues."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from titan.venues.binance import signing as binance_signing
from titan.venues.bybit import signing as bybit_signing
from titan.venues.mexc import signing as mexc_signing

VECTORS_PATH = Path("/work/shared/vectors/venue_signing.json")
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())


def _flip_one_byte(text: str, index: int = -1) -> str:
    """The same text with one character changed, so its HMAC must differ."""
    chars = list(text)
    chars[index] = "X" if chars[index] != "X" else "Y"
    return "".join(chars)


@pytest.mark.parametrize("case", VECTORS["binance"], ids=lambda c: c["name"])
def test_binance_vectors(case: dict[str, str]) -> None:
    assert binance_signing.sign(case["secret"], case["total_params"]) == case["signature"]


@pytest.mark.parametrize("case", VECTORS["binance"], ids=lambda c: c["name"])
@pytest.mark.parametrize("index", [0, 10, -1])
def test_binance_one_byte_change_fails(case: dict[str, str], index: int) -> None:
    assert (
        binance_signing.sign(case["secret"], _flip_one_byte(case["total_params"], index)) != case["signature"]
    )
    assert (
        binance_signing.sign(_flip_one_byte(case["secret"], index), case["total_params"]) != case["signature"]
    )


def test_binance_example3_is_query_plus_body_without_ampersand() -> None:
    case = VECTORS["binance"][1]
    assert case["query"] + case["body"] == case["total_params"]
    assert binance_signing.sign(case["secret"], case["query"] + "&" + case["body"]) != case["signature"]


@pytest.mark.parametrize("case", VECTORS["bybit"], ids=lambda c: c["name"])
def test_bybit_string_to_sign_byte_for_byte(case: dict[str, str]) -> None:
    payload = case.get("query") or case["body"]
    built = bybit_signing.string_to_sign(case["timestamp"], case["api_key"], case["recv_window"], payload)
    assert built.encode() == case["string_to_sign"].encode()


@pytest.mark.parametrize("case", VECTORS["bybit"], ids=lambda c: c["name"])
def test_bybit_sign_is_lowercase_hex_hmac_and_one_byte_change_fails(case: dict[str, str]) -> None:
    secret = "test-secret"
    text = case["string_to_sign"]
    expected = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    signature = bybit_signing.sign(secret, text)
    assert signature == expected
    assert signature == signature.lower() and len(signature) == 64
    assert bybit_signing.sign(secret, _flip_one_byte(text)) != signature


def test_bybit_ws_auth_signature() -> None:
    expected = hmac.new(b"s3cret", b"GET/realtime1662350400000", hashlib.sha256).hexdigest()
    assert bybit_signing.ws_auth_signature("s3cret", 1662350400000) == expected
    assert bybit_signing.ws_auth_signature("s3cret", 1662350400001) != expected


# MEXC publishes no official vector: these are our own fixtures, computed independently with hashlib.
MEXC_KEY = "mx0vglAbCdEfGh"
MEXC_SECRET = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"symbol": "BTC_USDT", "page_num": 1, "page_size": 20}, "page_num=1&page_size=20&symbol=BTC_USDT"),
        ({"b": "2", "a": None, "c": "3"}, "b=2&c=3"),
        ({}, ""),
        ({"z": True, "a": False}, "a=false&z=true"),
    ],
)
def test_mexc_param_string_get(params: dict[str, object | None], expected: str) -> None:
    assert mexc_signing.param_string_get(params) == expected


@pytest.mark.parametrize(
    "param_string",
    ["page_num=1&page_size=20&symbol=BTC_USDT", '{"symbol":"BTC_USDT","price":8800,"vol":1}', ""],
)
def test_mexc_sign_matches_independent_hmac(param_string: str) -> None:
    request_time = "1611035591000"
    message = (MEXC_KEY + request_time + param_string).encode()
    expected = hmac.new(MEXC_SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert mexc_signing.sign(MEXC_SECRET, MEXC_KEY, request_time, param_string) == expected
    assert mexc_signing.sign(MEXC_SECRET, MEXC_KEY, "1611035591001", param_string) != expected


def test_mexc_ws_login_signature() -> None:
    expected = hmac.new(
        MEXC_SECRET.encode(), (MEXC_KEY + "1611035591000").encode(), hashlib.sha256
    ).hexdigest()
    assert mexc_signing.ws_login_signature(MEXC_SECRET, MEXC_KEY, "1611035591000") == expected
    assert mexc_signing.ws_login_signature(MEXC_SECRET, MEXC_KEY, "1611035591009") != expected
