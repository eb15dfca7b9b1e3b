"""Published payload shapes against the spec examples (nats.md §6, §7, §9) and the §13.2 Msg-Id table."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.events import payloads as p
from titan.events.payloads import (
    BalanceEvent,
    DlqEvent,
    DriftEvent,
    FillEvent,
    FundingEvent,
    OrderReportEvent,
    PositionSnapshot,
    RejectEvent,
    ShadowFillEvent,
    TradeClosedEvent,
    TruthEvent,
    publications,
)

D = Decimal
T0 = 1_700_000_000_000

FILL = FillEvent(
    venue="bybit",
    account="main",
    symbol="BTC/USDT",
    trade_id="1a2b",
    signal_id="sig-1",
    client_order_id="te-y000",
    venue_order_id="1234567",
    side="BUY",
    price=D("50000.00"),
    qty=D("0.10"),
    fee=D("2.5"),
    fee_currency="USDT",
    status="FILLED",
    cum_qty=D("0.1"),
    avg_price=D("50000"),
    leaves_qty=D("0"),
    is_maker=False,
    leg=0,
    t_signal=T0,
    t_ingress=T0 + 10,
    t_decision=T0 + 11,
    t_ack=T0 + 90,
    t_exchange=T0 + 123,
    ts=T0 + 124,
    correlation_id="sig-1",
)

REPORT = OrderReportEvent(
    signal_id="sig-1",
    client_order_id="te-y000",
    venue="bybit",
    account="main",
    symbol="BTC/USDT",
    venue_symbol="BTCUSDT",
    leg=0,
    side="BUY",
    order_type="LIMIT",
    time_in_force="GTC",
    post_only=False,
    reduce_only=False,
    price=D("50000"),
    quantity=D("0.1"),
    status="ACKED",
    prev_status="SENT",
    seq=3,
    venue_order_id="1234567",
    venue_status="New",
    filled_qty=D("0"),
    avg_fill_price=None,
    last_fill_qty=None,
    last_fill_price=None,
    fee_total=D("0"),
    fee_asset=None,
    reason_code=None,
    reason=None,
    venue_error_code=None,
    intent_status="PENDING",
    t_signal=T0,
    t_ingress=T0 + 10,
    t_sent=T0 + 12,
    t_ack=T0 + 90,
    t_exchange=T0 + 88,
    ts=T0 + 91,
)


def _position(venue: str, side: str, size: str, entry: str, **kw: Any) -> PositionSnapshot:
    base: dict[str, Any] = {
        "venue": venue,
        "symbol": "BTC/USDT",
        "side": side,
        "size": D(size),
        "entry_price": D(entry),
        "stop_loss": D("0"),
        "take_profits": (),
        "signal_id": "sig-1",
        "opened_at": "2026-01-01T00:00:00Z",
        "regime_state": None,
        "phase": None,
        "metadata": None,
        "realized_pnl": D("1"),
        "unrealized_pnl": D("2"),
        "fees_paid": D("0.5"),
        "funding_paid": D("0"),
        "last_mark_price": None,
        "last_update_ts": T0,
    }
    base.update(kw)
    return PositionSnapshot(**base)


def _one(event: p.EVENT) -> tuple[str, str, Any]:
    (pub,) = publications(event)
    return pub.subject, pub.msg_id, json.loads(pub.data)


def test_fill_envelope_and_payload() -> None:
    subject, mid, body = _one(FILL)
    assert subject == "titan.evt.execution.fill.v1.bybit.main.BTC_USDT"
    assert mid == "fill:bybit:1a2b"
    assert list(body) == ["id", "type", "version", "ts", "producer", "correlation_id", "payload"]
    assert body["id"] == mid and body["type"] == "titan.event.execution.fill.v1"
    assert (body["version"], body["producer"], body["ts"]) == (1, "titan-execution-rs", T0 + 124)
    assert body["payload"] == {
        "fillId": "bybit:1a2b",
        "signalId": "sig-1",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "price": "50000",
        "qty": "0.1",
        "fee": "2.5",
        "feeCurrency": "USDT",
        "tSignal": T0,
        "tIngress": T0 + 10,
        "tDecision": T0 + 11,
        "tAck": T0 + 90,
        "tExchange": T0 + 123,
        "clientOrderId": "te-y000",
        "executionId": "1234567",
        "status": "FILLED",
        "timestamp": T0 + 123,
        "dexProof": None,
        "venue": "bybit",
        "account": "main",
        "tradeId": "1a2b",
        "cumQty": "0.1",
        "avgPrice": "50000",
        "leavesQty": "0",
        "isMaker": False,
        "leg": 0,
    }


def test_report_payload_matches_spec_example() -> None:
    subject, mid, body = _one(REPORT)
    assert subject == "titan.evt.execution.report.v1.bybit.main.BTC_USDT"
    assert mid == "report:te-y000:3" == body["id"]
    assert body["type"] == "titan.event.execution.report.v1"
    spec = json.loads(
        '{"signal_id":"sig-1","client_order_id":"te-y000","venue":"bybit","account":"main","symbol":"BTC/USDT",'
        '"venue_symbol":"BTCUSDT","leg":0,"side":"BUY","order_type":"LIMIT","time_in_force":"GTC","post_only":false,'
        '"reduce_only":false,"price":"50000","quantity":"0.1","status":"ACKED","prev_status":"SENT","seq":3,'
        '"venue_order_id":"1234567","venue_status":"New","filled_qty":"0","avg_fill_price":null,"last_fill_qty":null,'
        '"last_fill_price":null,"fee_total":"0","fee_asset":null,"reason_code":null,"reason":null,'
        '"venue_error_code":null,"intent_status":"PENDING","t_signal":1700000000000,"t_ingress":1700000000010,'
        '"t_sent":1700000000012,"t_ack":1700000000090,"t_exchange":1700000000088,"ts":1700000000091}'
    )
    assert body["payload"] == spec
    assert list(body["payload"]) == list(spec)


@pytest.mark.parametrize(
    ("direction", "side", "price", "fee"), [(1, "BUY", "50001", "2.50005"), (-1, "SELL", "50000", "2.5")]
)
def test_shadow_fill(direction: int, side: str, price: str, fee: str) -> None:
    event = ShadowFillEvent(
        shadow_id="42",
        signal_id="sig-1",
        symbol_as_given="BTCUSDT",
        direction=direction,
        best_bid=D("50000"),
        best_ask=D("50001"),
        size=D("0.1"),
        t_signal=T0,
        t_ingress=T0 + 1,
        t_decision=T0 + 2,
        t_exchange=T0 + 3,
    )
    subject, mid, body = _one(event)
    assert subject == "titan.evt.execution.shadow_fill.v1.BTCUSDT" and mid == "shadow:42"
    assert (body["fillId"], body["clientOrderId"], body["executionId"]) == (
        "sim-42",
        "sim-oid-42",
        "sim-exec-42",
    )
    assert (body["side"], body["price"], body["qty"], body["fee"]) == (side, price, "0.1", fee)
    assert (body["signal_id"], body["t_signal"], body["signalId"], body["tSignal"]) == (
        "sig-1",
        T0,
        "sig-1",
        T0,
    )
    assert body["timestamp"] == body["tExchange"] == T0 + 3


def test_trade_closed() -> None:
    event = TradeClosedEvent(
        trade_id="tr-1",
        signal_id="sig-1",
        symbol="BTC/USDT",
        side="LONG",
        entry_price=D("50500"),
        exit_price=D("52000"),
        size=D("0.05"),
        pnl=D("75"),
        pnl_pct=D("2.970297029702970297029702970297030"),
        fee=D("1.3"),
        fee_asset="USDT",
        opened_at="2026-01-01T00:00:00Z",
        closed_at="2026-01-01T01:00:00Z",
        close_reason="OPPOSITE_FILL",
        venue="bybit",
        partial=True,
        ts=T0,
    )
    subject, mid, body = _one(event)
    assert (subject, mid, body["type"]) == (
        "titan.evt.analysis.trade_completed.v1",
        "trade:tr-1",
        "titan.event.execution.trade.closed.v1",
    )
    assert list(body["payload"]) == [
        "signal_id", "symbol", "side", "entry_price", "exit_price", "size", "pnl", "pnl_pct", "fee",
        "fee_asset", "opened_at", "closed_at", "close_reason", "metadata", "trade_id", "venue", "partial",
    ]  # fmt: skip
    assert body["payload"]["pnl_pct"] == "2.97029702970297029702970297029703"
    assert body["payload"]["partial"] is True


def test_truth_snapshot_with_compatibility_view() -> None:
    event = TruthEvent(
        instance="node-a",
        timestamp=T0,
        policy_hash="h",
        version="0.1.0",
        venue_positions=(
            _position("bybit", "LONG", "0.3", "50000"),
            _position("binance", "LONG", "0.1", "54000"),
            _position("mexc", "SHORT", "0.1", "53000", symbol="ETH/USDT"),
            _position("bybit", "LONG", "0.1", "53000", symbol="ETH/USDT"),
        ),
        armed=True,
        halted=False,
        risk_state="Normal",
    )
    subject, mid, body = _one(event)
    assert (subject, mid) == ("titan.evt.execution.truth.v1", f"truth:node-a:{T0}")
    assert (body["service"], body["policy_hash"], body["meta"]) == (
        "titan-execution-rs",
        "h",
        {"version": "0.1.0"},
    )
    assert list(body["positions"]) == ["BTC/USDT"]  # ETH nets to zero: omitted
    btc = body["positions"]["BTC/USDT"]
    assert (btc["side"], btc["size"], btc["entry_price"], btc["exchange"]) == (
        "LONG",
        "0.4",
        "51000",
        "MULTI",
    )
    assert (btc["realized_pnl"], btc["unrealized_pnl"], btc["fees_paid"]) == ("2", "4", "1")
    assert len(body["venue_positions"]) == 4 and body["venue_positions"][0]["exchange"] == "BYBIT"
    assert (body["armed"], body["halted"], body["risk_state"]) == (True, False, "Normal")


def test_exposure_from_positions() -> None:
    positions = (
        _position("bybit", "LONG", "0.2", "50000", last_mark_price=D("51000")),
        _position("bybit", "SHORT", "1", "3000", symbol="ETH/USDT"),
    )
    exposure = p.exposure_from_positions(positions)
    subject, mid, body = _one(exposure)
    assert (subject, mid) == ("exposure.update", "")
    assert body == {
        "net_exposure": "7200",
        "gross_notional": "13200",
        "long_notional": "10200",
        "short_notional": "3000",
        "position_count": 2,
    }


def test_balance_funding_drift() -> None:
    subject, mid, body = _one(
        BalanceEvent(venue="bybit", free=D("90.5"), total=D("100"), locked=D("9.5"), ts=T0)
    )
    assert (subject, mid) == ("titan.evt.execution.balance", f"balance:bybit:{T0}")
    assert body == {"asset": "USDT", "free": "90.5", "total": "100", "locked": "9.5", "ts": T0}
    funding = FundingEvent(
        venue="binance", venue_id="f-9", symbol="BTC/USDT", amount=D("-0.12"), asset="USDT", ts=T0
    )
    subject, mid, body = _one(funding)
    assert (subject, mid, body["type"], body["correlation_id"]) == (
        "titan.evt.execution.funding.v1",
        "funding:binance:f-9",
        "titan.event.execution.funding.v1",
        None,
    )
    assert body["payload"] == {"symbol": "BTC/USDT", "amount": "-0.12", "asset": "USDT"}
    drift = DriftEvent(
        signal_id="s",
        symbol="BTC/USDT",
        venue="bybit",
        drift_class="ClassBLatency",
        expected=D(2000),
        actual=D(2500),
        deviation_bps=D(0),
        timestamp=T0,
    )
    assert _one(drift)[0] == "titan.evt.execution.drift.v1"


def test_reject_and_dlq_shapes() -> None:
    reject = RejectEvent(
        reason="system_disarmed",
        intent_id="sig-1",
        brain_instance_id="sig-1",
        timestamp=T0,
        code="SYSTEM_DISARMED",
        message="System disarmed",
    )
    subject, mid, body = _one(reject)
    assert (subject, mid) == ("titan.evt.execution.reject.v1", "reject:sig-1:system_disarmed")
    assert list(body) == [
        "reason", "expected_policy_hash", "got_policy_hash", "intent_id", "brain_instance_id", "timestamp",
        "event_type", "code", "message", "venue",
    ]  # fmt: skip
    unknown = RejectEvent(
        reason="hmac_signature_mismatch", intent_id="N/A", brain_instance_id="N/A", timestamp=T0, code="X",
        message="m", message_id="77",
    )  # fmt: skip
    assert p.msg_id(unknown) == "reject:77:hmac_signature_mismatch"
    dlq = DlqEvent(reason="Invalid intent: Invalid JSON", original=b"nope", t_ingress=T0, message_id="9")
    pubs = publications(dlq)
    assert [x.subject for x in pubs] == ["titan.dlq.execution.core", "titan.execution.dlq"]
    assert {x.msg_id for x in pubs} == {"dlq:9"}
    assert json.loads(pubs[0].data) == {
        "reason": "Invalid intent: Invalid JSON",
        "payload": "nope",
        "t_ingress": T0,
    }


def test_producer_is_configurable_and_bytes_are_deterministic() -> None:
    (a,) = publications(FILL)
    (b,) = publications(FILL)
    assert a == b
    (custom,) = publications(FILL, producer="titan-execution-py")
    assert json.loads(custom.data)["producer"] == "titan-execution-py"


def test_events_round_trip_on_the_ring() -> None:
    """core emits these structs on its event ring as msgpack; the tag selects the type."""
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(p.EVENT)
    for event in (FILL, REPORT, DlqEvent(reason="r", original=b"\x00x", t_ingress=1, message_id="1")):
        assert decoder.decode(encoder.encode(event)) == event


@given(st.decimals(allow_nan=False, allow_infinity=False, places=12))
def test_plain_has_no_exponent_and_is_exact(value: Decimal) -> None:
    text = p.plain(value)
    assert "E" not in text and "e" not in text
    assert Decimal(text) == value
