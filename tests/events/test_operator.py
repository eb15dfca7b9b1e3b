"""Operator commands: Form A / Form B accept, every failure string, replay, unauthenticated refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from titan.events.envelope import EnvelopeVerifier
from titan.events.intake import HaltState, InboundMessage
from titan.events.operator import (
    OperatorAction,
    OperatorCommand,
    OperatorIgnored,
    OperatorIntake,
    OperatorRejected,
    next_risk_state,
    parse_risk_state_event,
)
from titan.events.payloads import msg_id, reject_payload

from .helpers import NOW_MS, SECRET, envelope_dict, form_b

ARM = "titan.cmd.operator.arm.v1"
DISARM = "titan.cmd.operator.disarm.v1"
HALT = "titan.cmd.sys.halt.v1"
FLATTEN = "titan.cmd.risk.flatten.v1"
POLICY = "titan.cmd.risk.policy.v1"
RISK = "titan.cmd.risk.control.v1"


@pytest.fixture
def operator() -> OperatorIntake:
    return OperatorIntake(EnvelopeVerifier({"default": SECRET}), clock_ms=lambda: NOW_MS)


def _send(op: OperatorIntake, subject: str, body: Any, seq: int = 1) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return op.process(InboundMessage(subject=subject, data=data, stream_seq=seq))


def _command(outcome: Any) -> OperatorCommand:
    assert isinstance(outcome, OperatorCommand), outcome
    return outcome


def _rejected(outcome: Any) -> OperatorRejected:
    assert isinstance(outcome, OperatorRejected), outcome
    return outcome


@pytest.mark.parametrize(
    ("subject", "payload", "action", "halt_state", "reason"),
    [
        (ARM, {"reason": "open", "operator_id": "alice"}, OperatorAction.ARM, None, "open"),
        (
            ARM,
            {"id": "x", "type": "ARM_SYSTEM", "reason": "ops", "operator_id": "bob", "timestamp": 1},
            OperatorAction.ARM,
            None,
            "ops",
        ),
        (DISARM, {}, OperatorAction.DISARM, None, ""),
        (HALT, {"state": "HARD_HALT", "reason": "drift"}, OperatorAction.HALT, HaltState.HARD_HALT, "drift"),
        (HALT, {"state": "SOFT_HALT"}, OperatorAction.HALT, HaltState.SOFT_HALT, "System Command"),
        (HALT, {"state": "OPEN"}, OperatorAction.HALT, HaltState.OPEN, "System Command"),
        (FLATTEN, {"venue": "BYBIT", "symbol": "ETHUSDT"}, OperatorAction.FLATTEN, None, ""),
    ],
)
def test_form_a_accepted(
    operator: OperatorIntake,
    subject: str,
    payload: dict[str, Any],
    action: OperatorAction,
    halt_state: HaltState | None,
    reason: str,
) -> None:
    cmd = _command(_send(operator, subject, envelope_dict(payload)))
    assert (cmd.action, cmd.halt_state, cmd.reason, cmd.form) == (action, halt_state, reason, "A")
    if subject == FLATTEN:
        assert (cmd.venue, cmd.symbol) == ("bybit", "ETH/USDT")


@pytest.mark.parametrize(
    "payload", [{"max_position_notional": 1000}, {"timestamp": 1, "policy": {"max_position_notional": 1000}}]
)
def test_form_a_policy_bare_or_wrapped(operator: OperatorIntake, payload: dict[str, Any]) -> None:
    cmd = _command(_send(operator, POLICY, envelope_dict(payload)))
    assert cmd.action is OperatorAction.POLICY and cmd.policy == {"max_position_notional": 1000}


@pytest.mark.parametrize(
    ("subject", "action", "expected", "halt_state"),
    [
        (ARM, "ARM", OperatorAction.ARM, None),
        (DISARM, "DISARM", OperatorAction.DISARM, None),
        (HALT, "HALT", OperatorAction.HALT, HaltState.HARD_HALT),
        (HALT, "SOFT_HALT", OperatorAction.HALT, HaltState.SOFT_HALT),
        (HALT, "RESUME", OperatorAction.HALT, HaltState.OPEN),
        (FLATTEN, "FLATTEN", OperatorAction.FLATTEN, None),
        (RISK, "HALT", OperatorAction.HALT, HaltState.HARD_HALT),
        (RISK, "RESUME", OperatorAction.HALT, HaltState.OPEN),
        (RISK, "OVERRIDE_ALLOCATION", OperatorAction.OVERRIDE_ALLOCATION, None),
    ],
)
def test_form_b_accepted(
    operator: OperatorIntake,
    subject: str,
    action: str,
    expected: OperatorAction,
    halt_state: HaltState | None,
) -> None:
    cmd = _command(_send(operator, subject, form_b(action, reason="unsigned words")))
    assert (cmd.action, cmd.halt_state, cmd.form, cmd.actor, cmd.command_id) == (
        expected,
        halt_state,
        "B",
        "ops-1",
        "cmd-1",
    )
    assert cmd.reason == "unsigned words" and not cmd.reason_signed


def test_form_b_halt_default_reason(operator: OperatorIntake) -> None:
    assert _command(_send(operator, RISK, form_b("HALT"))).reason == "No reason"


def test_unknown_risk_action_is_ignored(operator: OperatorIntake) -> None:
    outcome = _send(operator, RISK, form_b("DANCE"))
    assert isinstance(outcome, OperatorIgnored) and outcome.note.startswith("Unknown Risk Action")


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b.pop("signature"), "Missing signature"),
        (lambda b: b.pop("timestamp"), "Missing timestamp"),
        (lambda b: b.__setitem__("timestamp", str(NOW_MS)), "Missing timestamp"),
        (lambda b: b.pop("action"), "Missing action"),
        (lambda b: b.pop("actor_id"), "Missing actor_id"),
        (lambda b: b.pop("command_id"), "Missing command_id"),
        (
            lambda b: b.__setitem__("timestamp", NOW_MS - 300_001),
            "Timestamp out of tolerance range (diff: 300001ms, tolerance: 300000ms)",
        ),
        (lambda b: b.__setitem__("signature", "xyz"), "Invalid hex signature"),
        (lambda b: b.__setitem__("actor_id", "mallory"), "Signature mismatch"),
        (lambda b: b.__setitem__("key_id", "unknown"), "Signature mismatch"),
    ],
)
def test_form_b_failure_strings(operator: OperatorIntake, mutate: Any, error: str) -> None:
    body = form_b("HALT")
    mutate(body)
    rejected = _rejected(_send(operator, RISK, body))
    assert (rejected.reason, rejected.error) == ("operator_auth_failed", error)
    event = reject_payload(rejected.reject)
    assert event["event_type"] == "execution.command.rejected"
    assert event["reason"] == "operator_auth_failed" and event["command"] == RISK


def test_form_b_no_secret() -> None:
    op = OperatorIntake(EnvelopeVerifier({"default": ""}), clock_ms=lambda: NOW_MS)
    rejected = _rejected(_send(op, RISK, form_b("HALT")))
    assert rejected.error == "HMAC validation enabled but no secret configured"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda e: e.pop("sig"), "Missing signature"),
        (lambda e: e.pop("nonce"), "Missing nonce"),
        (lambda e: e.pop("ts"), "Missing timestamp"),
        (lambda e: e.__setitem__("sig", "q" * 64), "Invalid hex signature"),
        (lambda e: e.__setitem__("payload", {"state": "OPEN"}), "Signature mismatch."),
    ],
)
def test_form_a_failure_strings(operator: OperatorIntake, mutate: Any, error: str) -> None:
    body = envelope_dict({"state": "HARD_HALT"})
    mutate(body)
    rejected = _rejected(_send(operator, HALT, body))
    assert (rejected.reason, rejected.error) == ("operator_auth_failed", error)


@pytest.mark.parametrize("subject", [ARM, DISARM, HALT, FLATTEN, POLICY])
@pytest.mark.parametrize("body", [b"go", {"state": "OPEN"}, {"reason": "x", "operator_id": "o"}])
def test_unauthenticated_commands_refused(operator: OperatorIntake, subject: str, body: Any) -> None:
    rejected = _rejected(_send(operator, subject, body))
    assert rejected.reason == "operator_auth_failed"
    assert rejected.reject.command == subject


def test_policy_requires_form_a(operator: OperatorIntake) -> None:
    rejected = _rejected(_send(operator, POLICY, form_b("HALT")))
    assert rejected.reason == "operator_auth_failed"


def test_action_must_match_subject(operator: OperatorIntake) -> None:
    rejected = _rejected(_send(operator, ARM, form_b("DISARM")))
    assert rejected.reason == "invalid_command"


def test_invalid_halt_state_is_refused(operator: OperatorIntake) -> None:
    rejected = _rejected(_send(operator, HALT, envelope_dict({"state": "PAUSED"})))
    assert rejected.reason == "invalid_command"


def test_command_id_and_nonce_replay(operator: OperatorIntake) -> None:
    body = form_b("HALT")
    assert isinstance(_send(operator, RISK, body, seq=1), OperatorCommand)
    assert isinstance(_send(operator, RISK, body, seq=1), OperatorCommand)  # redelivery, same message
    replay = _rejected(_send(operator, RISK, body, seq=2))
    assert replay.error == "Replay detected: command_id cmd-1"
    assert msg_id(replay.reject) == "reject:cmd-1:operator_auth_failed"
    signed = envelope_dict({"state": "OPEN"})
    assert isinstance(_send(operator, HALT, signed, seq=3), OperatorCommand)
    assert _rejected(_send(operator, HALT, signed, seq=4)).error.startswith("Replay detected: nonce")


def test_operator_auth_off_reproduces_upstream() -> None:
    op = OperatorIntake(EnvelopeVerifier({"default": SECRET}), clock_ms=lambda: NOW_MS, operator_auth="off")
    arm = _command(_send(op, ARM, b"because"))
    assert (arm.action, arm.reason, arm.form) == (OperatorAction.ARM, "because", "off")
    assert _command(_send(op, HALT, {"state": "SOFT_HALT"})).halt_state is HaltState.SOFT_HALT
    assert isinstance(_send(op, HALT, b"nope"), OperatorIgnored)
    assert isinstance(_send(op, HALT, {"reason": "x"}), OperatorIgnored)
    assert _command(_send(op, POLICY, {"a": 1})).policy == {"a": 1}
    # Risk commands stay signed even with operator auth off.
    assert isinstance(_send(op, RISK, {"action": "HALT"}), OperatorRejected)


@pytest.mark.parametrize(
    ("data", "state"), [(b'"Defensive"', "Defensive"), (b'"Bogus"', None), (b"Defensive", None), (b"1", None)]
)
def test_parse_risk_state_event(data: bytes, state: str | None) -> None:
    assert parse_risk_state_event(data) == state


@pytest.mark.parametrize(
    ("current", "incoming", "mode", "result"),
    [
        ("Defensive", "Normal", "accept", "Normal"),
        ("Defensive", "Normal", "escalate_only", "Defensive"),
        ("Cautious", "Emergency", "escalate_only", "Emergency"),
    ],
)
def test_next_risk_state(current: str, incoming: str, mode: str, result: str) -> None:
    assert next_risk_state(current, incoming, mode) == result
