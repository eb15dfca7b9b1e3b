from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.events.intents import IntentError, to_decimal, validate_intent_bytes, validate_intent_payload

from .helpers import NOW_MS, intent_payload

TYPE_ERR = 'type must be one of: ["BUY_SETUP", "SELL_SETUP", "CLOSE_LONG", "CLOSE_SHORT", "CLOSE"]'
STATUS_ERR = 'status must be one of: ["PENDING", "VALIDATED", "REJECTED", "EXECUTED", "EXPIRED"]'


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"signal_id": ...}, "signal_id is required"),
        ({"signal_id": None}, "signal_id is required"),
        ({"signal_id": "  "}, "signal_id must be a non-empty string"),
        ({"signal_id": 5}, "signal_id must be a non-empty string"),
        ({"symbol": ...}, "symbol is required"),
        ({"symbol": ""}, "symbol must be a non-empty string"),
        ({"direction": 2}, "direction must be -1, 0, or 1"),
        ({"direction": "1"}, "direction must be -1, 0, or 1"),
        ({"direction": ...}, "direction must be -1, 0, or 1"),
        ({"type": "FORCE_SYNC"}, TYPE_ERR),
        ({"type": ...}, TYPE_ERR),
        ({"status": "DONE"}, STATUS_ERR),
        ({"size": ...}, "size is required"),
        ({"size": None}, "size is required"),
        ({"size": "0.1"}, "size must be a number"),
        ({"t_signal": ...}, "t_signal is required"),
        ({"t_signal": None, "timestamp": NOW_MS}, "t_signal is required"),  # present-null drops the alias
        ({"t_signal": "x"}, "t_signal must be a number"),
    ],
)
def test_upstream_error_strings(overrides: dict[str, Any], error: str) -> None:
    with pytest.raises(IntentError) as info:
        validate_intent_payload(intent_payload(**overrides))
    assert str(info.value) == error


def test_checks_run_in_upstream_order() -> None:
    payload = {"direction": 5, "type": "X"}
    with pytest.raises(IntentError, match=r"^signal_id is required$"):
        validate_intent_payload(payload)
    with pytest.raises(IntentError, match=r"^direction must be"):
        validate_intent_payload({"signal_id": "s", "symbol": "BTCUSDT", "direction": 5, "type": "X"})


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"direction": 1.5}, "direction"),
        ({"direction": 0}, "direction 0 is only valid for CLOSE types"),
        ({"signal_id": "s" * 129}, "signal_id longer than 128"),
        ({"symbol": "NOPE"}, "symbol"),
        ({"entry_zone": ["1"]}, "entry_zone"),
        ({"stop_loss": "1"}, "stop_loss"),
        ({"child_fills": [1]}, "child_fills"),
        ({"metadata": []}, "metadata"),
        ({"ttl_ms": 1.5}, "ttl_ms"),
        ({"exchange": 3}, "exchange"),
    ],
)
def test_schema_mismatch(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(IntentError) as info:
        validate_intent_payload(intent_payload(**overrides))
    assert str(info.value).startswith("Schema mismatch: ")
    assert fragment in str(info.value)


def test_not_an_object_and_invalid_json() -> None:
    with pytest.raises(IntentError, match=r"^Payload must be a JSON object$"):
        validate_intent_payload([1])
    with pytest.raises(IntentError, match=r"^Invalid JSON: "):
        validate_intent_bytes(b"{nope")


def test_normalised_intent_with_documented_contract() -> None:
    payload = intent_payload(
        symbol="btc_usdt",
        stop_loss=...,
        entry_zone=None,
        take_profits=...,
        t_signal=...,
        timestamp=NOW_MS + 5,
        exchange="BYBIT",
        causation_id="cause-1",
        ttl_ms=1500,
        metadata={"account": "sub2", "correlation_id": "c"},
        size=0.30000000000000004,
    )
    intent = validate_intent_payload(payload, correlation_id="corr")
    assert intent.symbol == "BTC/USDT" and intent.symbol_as_given == "btc_usdt"
    assert intent.stop_loss == Decimal(0)
    assert intent.entry_zone == () and intent.take_profits == ()
    assert intent.t_signal == NOW_MS + 5
    assert intent.exchange == "bybit"
    assert intent.causation_id == "cause-1" and intent.ttl_ms == 1500
    assert intent.account == "sub2"
    assert intent.correlation_id == "corr"
    assert intent.size == Decimal("0.30000000000000004")
    assert intent.executable


def test_defaults_and_audit_only_status() -> None:
    intent = validate_intent_payload(intent_payload(status="EXPIRED", direction=0, type="CLOSE"))
    assert intent.account == "main"
    assert not intent.executable
    assert intent.entry_zone == (Decimal(50000),)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_to_decimal_round_trips_the_float(x: float) -> None:
    assert float(to_decimal(x)) == x
