"""Every row of nats.md §5 with its exact outcome."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from titan.events.envelope import EnvelopeVerifier
from titan.events.intake import (
    COUNTER_DUPLICATE,
    COUNTER_INVALID,
    Action,
    EngineFacts,
    HaltState,
    InboundMessage,
    IntakeOutcome,
    IntentIntake,
    expired_denial,
    risk_denial,
    venue_rejection,
)
from titan.events.payloads import dlq_payload, encode, msg_id, reject_payload

from .helpers import NOW_MS, SECRET, envelope_dict, intent_payload

SUBJECT = "titan.cmd.execution.place.v1.bybit.main.BTC_USDT"
POLICY = "a" * 64


@pytest.fixture
def intake() -> IntentIntake:
    return IntentIntake(EnvelopeVerifier({"default": SECRET}), clock_ms=lambda: NOW_MS)


@pytest.fixture
def facts() -> EngineFacts:
    return EngineFacts(armed=True, ready=True, active_policy_hash=POLICY)


def _msg(body: Any, seq: int = 1, msg_id_header: str | None = "sig-1") -> InboundMessage:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Nats-Msg-Id": msg_id_header} if msg_id_header else None
    return InboundMessage(subject=SUBJECT, data=data, headers=headers, stream_seq=seq)


def _run(intake: IntentIntake, facts: EngineFacts, body: Any, **kw: Any) -> IntakeOutcome:
    return intake.process(_msg(body, **kw), facts)


def _dlq_json(outcome: IntakeOutcome) -> dict[str, Any]:
    assert outcome.dlq is not None
    parsed: dict[str, Any] = json.loads(encode(dlq_payload(outcome.dlq)))
    return parsed


def test_row10_accepted_is_forwarded(intake: IntentIntake, facts: EngineFacts) -> None:
    out = _run(intake, facts, envelope_dict(intent_payload(policy_hash=POLICY)))
    assert out.action is Action.FORWARD and out.row == "10"
    assert out.reject is None and out.dlq is None
    assert out.intent is not None and out.intent.signal_id == "sig-1" and out.intent.size == Decimal("0.1")
    assert set(out.dedupe_ids) == {"sig-1", "01J-env-1"}


@pytest.mark.parametrize("by", ["header", "idempotency_key", "id"])
def test_row0_duplicate_of_journaled_envelope(intake: IntentIntake, facts: EngineFacts, by: str) -> None:
    journaled = {"header": "hdr-1", "idempotency_key": "sig-1", "id": "01J-env-1"}[by]
    facts = EngineFacts(armed=False, ready=True, active_policy_hash=POLICY, journaled_ids={journaled})
    out = _run(
        intake, facts, envelope_dict(intent_payload()), msg_id_header="hdr-1" if by == "header" else None
    )
    assert out == IntakeOutcome(action=Action.ACK_DUPLICATE, row="0", counters=(COUNTER_DUPLICATE,))


def test_row1_halted(intake: IntentIntake) -> None:
    facts = EngineFacts(armed=True, ready=True, active_policy_hash=POLICY, halt=HaltState.HARD_HALT)
    out = _run(intake, facts, envelope_dict(intent_payload()))
    assert out.action is Action.REJECT and out.row == "1" and out.dlq is None
    assert (
        out.reject is not None and out.reject.reason == "system_halted" and out.reject.code == "SYSTEM_HALTED"
    )
    assert out.reject.intent_id == "sig-1"


def test_row1_soft_halt_lets_close_intents_through(intake: IntentIntake) -> None:
    facts = EngineFacts(armed=True, ready=True, active_policy_hash=POLICY, halt=HaltState.SOFT_HALT)
    opening = _run(intake, facts, envelope_dict(intent_payload()))
    assert opening.row == "1"
    closing = _run(
        intake, facts, envelope_dict(intent_payload(type="CLOSE_LONG", direction=0), nonce="n2"), seq=2
    )
    assert closing.action is Action.FORWARD


@pytest.mark.parametrize(
    ("body", "intent_id"),
    [
        (envelope_dict(intent_payload()), "sig-1"),
        ({"signal_id": "top-1"}, "top-1"),
        (b"not json", "N/A"),
    ],
)
def test_row2_disarmed(intake: IntentIntake, body: Any, intent_id: str) -> None:
    facts = EngineFacts(armed=False, ready=True, active_policy_hash=POLICY)
    out = _run(intake, facts, body)
    assert out.action is Action.REJECT and out.row == "2" and out.dlq is None
    assert out.reject is not None
    event = json.loads(encode(reject_payload(out.reject)))
    assert event == {
        "reason": "system_disarmed",
        "expected_policy_hash": "N/A",
        "got_policy_hash": "N/A",
        "intent_id": intent_id,
        "brain_instance_id": intent_id,
        "timestamp": NOW_MS,
        "event_type": "execution.intent.rejected",
        "code": "SYSTEM_DISARMED",
        "message": "System disarmed",
        "venue": None,
    }


def test_row3_not_json(intake: IntentIntake, facts: EngineFacts) -> None:
    out = _run(intake, facts, b"{not json")
    assert out.action is Action.DLQ and out.row == "3" and out.reject is None
    assert out.counters == (COUNTER_INVALID,)
    assert _dlq_json(out) == {
        "reason": "Invalid intent: Invalid JSON",
        "payload": "{not json",
        "t_ingress": NOW_MS,
        "code": "INVALID_INTENT",
    }


@pytest.mark.parametrize("body", [intent_payload(), {"payload": intent_payload()}, {"type": "x"}, [1]])
def test_row4_unsigned(intake: IntentIntake, facts: EngineFacts, body: Any) -> None:
    out = _run(intake, facts, body)
    assert out.action is Action.DLQ and out.row == "4"
    dlq = _dlq_json(out)
    assert dlq["reason"] == "Invalid intent: Unsigned intents rejected in strict mode"
    assert dlq["payload"] == body  # the entire original message


@pytest.mark.parametrize("drop", ["producer", "version"])
def test_row5_malformed_no_signature_check(intake: IntentIntake, facts: EngineFacts, drop: str) -> None:
    body = envelope_dict(intent_payload(), sig="not-even-hex")
    del body[drop]
    out = _run(intake, facts, body)
    assert out.action is Action.DLQ and out.row == "5" and out.reject is None
    assert _dlq_json(out)["reason"] == "Invalid intent: Malformed Envelope"
    assert out.counters == (COUNTER_INVALID,)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda e: e.__setitem__("sig", "ab" * 32), "Signature mismatch."),
        (lambda e: e.pop("sig"), "Missing signature"),
        (lambda e: e.__setitem__("ts", NOW_MS - 400_000), "Timestamp out of tolerance range"),
    ],
)
def test_row6_hmac_failure(intake: IntentIntake, facts: EngineFacts, mutate: Any, error: str) -> None:
    body = envelope_dict(intent_payload())
    mutate(body)
    out = _run(intake, facts, body)
    assert out.action is Action.REJECT and out.row == "6" and out.dlq is None
    assert out.reject is not None and out.reject.reason == "hmac_signature_mismatch"
    assert out.error is not None and out.error.startswith(error)


def test_row6a_replay_but_not_redelivery(intake: IntentIntake, facts: EngineFacts) -> None:
    body = envelope_dict(intent_payload())
    assert _run(intake, facts, body, seq=7).action is Action.FORWARD
    # A redelivery of the same stream message (core crashed before journaling) is processed again.
    assert _run(intake, facts, body, seq=7).action is Action.FORWARD
    replay = _run(intake, facts, body, seq=8)
    assert replay.action is Action.REJECT and replay.row == "6a"
    assert replay.reject is not None and replay.reject.reason == "replay_detected"


def test_row7_invalid_payload(intake: IntentIntake, facts: EngineFacts) -> None:
    body = envelope_dict(intent_payload(size=...))
    out = _run(intake, facts, body)
    assert out.action is Action.DLQ and out.row == "7" and out.reject is None
    dlq = _dlq_json(out)
    assert dlq["reason"] == "Invalid intent: size is required"
    assert dlq["payload"] == body
    assert out.counters == (COUNTER_INVALID,)


def test_row8_policy_hash_mismatch(intake: IntentIntake, facts: EngineFacts) -> None:
    body = envelope_dict(intent_payload(policy_hash="b" * 64), correlation_id="brain-7")
    out = _run(intake, facts, body)
    assert out.action is Action.REJECT and out.row == "8"
    assert out.reject is not None
    assert (out.reject.reason, out.reject.expected_policy_hash, out.reject.got_policy_hash) == (
        "policy_hash_mismatch",
        POLICY,
        "b" * 64,
    )
    assert out.reject.brain_instance_id == "brain-7"
    assert _dlq_json(out)["reason"] == f"Policy Hash mismatch: exp {POLICY} got {'b' * 64}"
    assert out.counters == (COUNTER_INVALID,)


def test_row8a_duplicate_signal_id(intake: IntentIntake) -> None:
    facts = EngineFacts(
        armed=True, ready=True, active_policy_hash=POLICY, accepted_signal_ids={"sig-1": "other"}
    )
    out = _run(intake, facts, envelope_dict(intent_payload()))
    assert out.action is Action.REJECT and out.row == "8a"
    assert out.reject is not None and out.reject.reason == "duplicate_signal_id"
    assert _dlq_json(out)["reason"] == "Invalid intent: Duplicate signal_id sig-1"
    same_envelope = EngineFacts(
        armed=True, ready=True, active_policy_hash=POLICY, accepted_signal_ids={"sig-1": "sig-1"}
    )
    assert _run(intake, same_envelope, envelope_dict(intent_payload())).action is Action.FORWARD


def test_row8b_engine_not_ready(intake: IntentIntake) -> None:
    facts = EngineFacts(armed=True, ready=False, active_policy_hash=POLICY)
    out = _run(intake, facts, envelope_dict(intent_payload()))
    assert out.action is Action.REJECT and out.row == "8b"
    assert out.reject is not None and out.reject.reason == "engine_not_ready"
    assert _dlq_json(out)["reason"] == "Invalid intent: Engine not ready"


def test_row9_risk_and_expiry_denials(intake: IntentIntake, facts: EngineFacts) -> None:
    body = envelope_dict(intent_payload(exchange="bybit"))
    out = _run(intake, facts, body)
    assert out.intent is not None
    raw = json.dumps(body).encode()
    event, dlq = risk_denial(
        out.intent, raw, "1", "SYMBOL_NOT_WHITELISTED", "Symbol 'BTC/USDT' not in whitelist", 5
    )
    assert (
        event.reason == "risk_rejected" and event.code == "SYMBOL_NOT_WHITELISTED" and event.venue == "bybit"
    )
    assert dlq.reason == "❌ RISK REJECTION: Symbol 'BTC/USDT' not in whitelist"
    event, dlq = expired_denial(out.intent, raw, "1", 1234, 5)
    assert (event.reason, dlq.reason) == ("intent_expired", "Intent EXPIRED: 1234 ms latency")


def test_row11_venue_rejection() -> None:
    event = venue_rejection("sig-1", None, "binance", "-2019 Margin is insufficient", 5)
    assert (event.reason, event.code, event.venue, event.brain_instance_id) == (
        "venue_rejected",
        "VENUE_REJECTED",
        "binance",
        "sig-1",
    )
    assert msg_id(event) == "reject:sig-1:venue_rejected"


def test_dlq_embeds_original_numbers_verbatim(intake: IntentIntake, facts: EngineFacts) -> None:
    raw = b'{"payload":{"size":12345678901234567890},"type":"x","version":1}'
    out = intake.process(InboundMessage(subject=SUBJECT, data=raw, stream_seq=42), facts)
    assert out.row == "5"
    assert out.dlq is not None
    assert raw in encode(dlq_payload(out.dlq))
    assert msg_id(out.dlq) == "dlq:42"
