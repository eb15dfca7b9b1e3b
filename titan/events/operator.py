"""Operator, halt, flatten, policy and risk commands (nats.md §10), authenticated (§10.2, §13.1).

Form A is a signed envelope exactly as §3 (HMAC, tolerance, nonce cache). Form B is the
risk-command signature ``HMAC(secret, "{timestamp}:{action}:{actor_id}:{command_id}")`` with
upstream's error strings; its ``reason`` is not signed. ``command_id`` / ``nonce`` reuse inside the
window is rejected. Every outcome is ACKed by the caller; a rejection carries the reject event
(§7, ``event_type: execution.command.rejected``) to publish.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import msgspec

from titan.canonical import JsonError, parse_json
from titan.events import subjects
from titan.events.envelope import (
    ERR_INVALID_HEX,
    ERR_MISSING_SIGNATURE,
    ERR_MISSING_TIMESTAMP,
    ERR_NO_SECRET,
    EnvelopeVerifier,
    Malformed,
    SignedEnvelope,
    Unsigned,
    as_int,
    decode_signature,
    parse_envelope,
)
from titan.events.intake import HaltState, InboundMessage, message_id
from titan.events.payloads import NA, RejectEvent
from titan.events.replay import ReplayCache
from titan.symbols import SymbolError, normalize_symbol

ERR_FORM_B_MISMATCH = "Signature mismatch"  # no trailing period for risk commands (§10.3)
REASON_AUTH_FAILED = "operator_auth_failed"
REASON_INVALID = "invalid_command"
DEFAULT_HALT_REASON = "System Command"
DEFAULT_RISK_HALT_REASON = "No reason"
UNKNOWN_RISK_ACTION = "Unknown Risk Action"


class OperatorAction(enum.StrEnum):
    ARM = "ARM"
    DISARM = "DISARM"
    HALT = "HALT"  # with halt_state OPEN (resume) / SOFT_HALT / HARD_HALT
    FLATTEN = "FLATTEN"
    POLICY = "POLICY"
    OVERRIDE_ALLOCATION = "OVERRIDE_ALLOCATION"  # log only (§10.3)


class OperatorCommand(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated (or, with ``operator_auth = "off"``, unauthenticated) operator command."""

    action: OperatorAction
    subject: str
    form: str  # "A" signed envelope | "B" risk-command signature | "off" unauthenticated
    actor: str | None = None
    command_id: str | None = None  # Form B command_id, Form A nonce
    ts: int | None = None
    reason: str = ""
    reason_signed: bool = True  # Form B: the reason is outside the signature
    halt_state: HaltState | None = None
    venue: str | None = None
    symbol: str | None = None
    policy: dict[str, Any] | None = None
    allocation: Any = None


class OperatorRejected(msgspec.Struct, frozen=True):
    """Refused: log ``error``, count ``operator_rejected_total{reason}``, publish ``reject``, ACK."""

    reason: str  # operator_auth_failed | invalid_command
    error: str
    reject: RejectEvent


class OperatorIgnored(msgspec.Struct, frozen=True):
    """Nothing to do but log (unknown risk action, upstream-compatible no-ops); ACK."""

    note: str


OperatorOutcome = OperatorCommand | OperatorRejected | OperatorIgnored

FORM_B_ACTIONS: dict[str, tuple[OperatorAction, HaltState | None]] = {
    "ARM": (OperatorAction.ARM, None),
    "DISARM": (OperatorAction.DISARM, None),
    "HALT": (OperatorAction.HALT, HaltState.HARD_HALT),
    "SOFT_HALT": (OperatorAction.HALT, HaltState.SOFT_HALT),
    "RESUME": (OperatorAction.HALT, HaltState.OPEN),
    "FLATTEN": (OperatorAction.FLATTEN, None),
    "OVERRIDE_ALLOCATION": (OperatorAction.OVERRIDE_ALLOCATION, None),
}

# Which actions each command subject may carry (the signature covers the action, not the subject).
_ALLOWED: dict[subjects.CommandKind, frozenset[OperatorAction]] = {
    subjects.CommandKind.ARM: frozenset({OperatorAction.ARM}),
    subjects.CommandKind.DISARM: frozenset({OperatorAction.DISARM}),
    subjects.CommandKind.HALT: frozenset({OperatorAction.HALT}),
    subjects.CommandKind.FLATTEN: frozenset({OperatorAction.FLATTEN}),
    subjects.CommandKind.POLICY: frozenset({OperatorAction.POLICY}),
    subjects.CommandKind.RISK_COMMAND: frozenset(OperatorAction) - {OperatorAction.POLICY},
}


def form_b_message(timestamp: int, action: str, actor_id: str, command_id: str) -> bytes:
    return f"{timestamp}:{action}:{actor_id}:{command_id}".encode()


def _str(obj: object, key: str) -> str | None:
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class _Failure(Exception):
    def __init__(
        self, reason: str, error: str, command_id: str | None = None, actor: str | None = None
    ) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error
        self.command_id = command_id
        self.actor = actor


class OperatorIntake:
    """Authenticates and types one command message from ``RISK_ENFORCER`` or ``OPERATOR_CONTROL``."""

    def __init__(
        self,
        verifier: EnvelopeVerifier,
        clock_ms: Callable[[], int],
        replay: ReplayCache | None = None,
        operator_auth: str = "required",
    ) -> None:
        if operator_auth not in ("required", "off"):
            raise ValueError("operator_auth must be 'required' or 'off'")
        self._verifier = verifier
        self._clock_ms = clock_ms
        self.replay = replay if replay is not None else ReplayCache(verifier.tolerance_ms)
        self._auth_required = operator_auth == "required"

    def process(self, msg: InboundMessage) -> OperatorOutcome:
        now = self._clock_ms()
        kind = subjects.classify_command_subject(msg.subject)
        try:
            if kind not in _ALLOWED:
                raise _Failure(REASON_INVALID, f"not an operator subject: {msg.subject}")
            if not self._auth_required and kind is not subjects.CommandKind.RISK_COMMAND:
                return self._unauthenticated(kind, msg)
            try:
                parsed = parse_json(msg.data)
            except JsonError:
                raise _Failure(REASON_AUTH_FAILED, "Unsigned command: body is not JSON") from None
            envelope = parse_envelope(parsed)
            if isinstance(envelope, SignedEnvelope):
                command = self._form_a(kind, msg, envelope, now)
            elif isinstance(envelope, Malformed):
                raise _Failure(REASON_AUTH_FAILED, f"Malformed Envelope: {envelope.detail}")
            elif isinstance(parsed, dict) and ("signature" in parsed or "action" in parsed):
                if kind is subjects.CommandKind.POLICY:
                    raise _Failure(REASON_AUTH_FAILED, "Policy updates require a signed envelope")
                command = self._form_b(kind, msg, parsed, now)
            else:
                assert isinstance(envelope, Unsigned)
                raise _Failure(REASON_AUTH_FAILED, "Unsigned command")
        except _Failure as failure:
            return self._rejected(msg, failure, now)
        if isinstance(command, OperatorIgnored):
            return command
        if command.action not in _ALLOWED[kind]:
            mismatch = _Failure(
                REASON_INVALID,
                f"action {command.action.value} not accepted on {msg.subject}",
                command.command_id,
                command.actor,
            )
            return self._rejected(msg, mismatch, now)
        return command

    # --- forms --------------------------------------------------------------------------------

    def _form_a(
        self, kind: subjects.CommandKind, msg: InboundMessage, env: SignedEnvelope, now: int
    ) -> OperatorCommand | OperatorIgnored:
        verdict = self._verifier.verify(env, now)
        if not verdict.ok:
            raise _Failure(
                REASON_AUTH_FAILED, verdict.error or "Signature mismatch.", env.nonce, env.producer
            )
        assert env.nonce is not None and env.ts is not None  # guaranteed by verify()
        if not self.replay.check_and_record(f"nonce:{env.nonce}", message_id(msg), env.ts, now):
            raise _Failure(REASON_AUTH_FAILED, f"Replay detected: nonce {env.nonce}", env.nonce, env.producer)
        payload = env.payload
        actor = _str(payload, "operator_id") or _str(payload, "actor_id") or env.producer
        base: dict[str, Any] = {"subject": msg.subject, "form": "A", "actor": actor, "command_id": env.nonce}
        base["ts"] = env.ts
        return _typed_command(kind, payload, base, env.nonce)

    def _form_b(
        self, kind: subjects.CommandKind, msg: InboundMessage, body: dict[str, Any], now: int
    ) -> OperatorCommand | OperatorIgnored:
        command_id = _str(body, "command_id")
        actor_id = _str(body, "actor_id")
        if not self._verifier.has_secret:
            raise _Failure(REASON_AUTH_FAILED, ERR_NO_SECRET, command_id, actor_id)
        signature = _str(body, "signature")
        if signature is None:
            raise _Failure(REASON_AUTH_FAILED, ERR_MISSING_SIGNATURE, command_id, actor_id)
        ts = as_int(body.get("timestamp"))
        if ts is None:
            raise _Failure(REASON_AUTH_FAILED, ERR_MISSING_TIMESTAMP, command_id, actor_id)
        action = _str(body, "action")
        for name, value in (("action", action), ("actor_id", actor_id), ("command_id", command_id)):
            if value is None:
                raise _Failure(REASON_AUTH_FAILED, f"Missing {name}", command_id, actor_id)
        assert action is not None and actor_id is not None and command_id is not None
        window_error = self._verifier.check_window(ts, now)
        if window_error is not None:
            raise _Failure(REASON_AUTH_FAILED, window_error, command_id, actor_id)
        given = decode_signature(signature)
        if given is None:
            raise _Failure(REASON_AUTH_FAILED, ERR_INVALID_HEX, command_id, actor_id)
        secret = self._verifier.secret_for(_str(body, "key_id"))
        expected = (
            None
            if secret is None
            else hmac.new(
                secret.encode(), form_b_message(ts, action, actor_id, command_id), hashlib.sha256
            ).digest()
        )
        if expected is None or not hmac.compare_digest(given, expected):
            raise _Failure(REASON_AUTH_FAILED, ERR_FORM_B_MISMATCH, command_id, actor_id)
        if not self.replay.check_and_record(f"cmd:{command_id}", message_id(msg), ts, now):
            raise _Failure(
                REASON_AUTH_FAILED, f"Replay detected: command_id {command_id}", command_id, actor_id
            )
        mapped = FORM_B_ACTIONS.get(action)
        if mapped is None:
            return OperatorIgnored(f"{UNKNOWN_RISK_ACTION}: {action}")
        op, halt_state = mapped
        reason = _str(body, "reason")
        if reason is None:
            reason = DEFAULT_RISK_HALT_REASON if op is OperatorAction.HALT else ""
        return OperatorCommand(
            action=op,
            subject=msg.subject,
            form="B",
            actor=actor_id,
            command_id=command_id,
            ts=ts,
            reason=reason,
            reason_signed=False,
            halt_state=halt_state,
            allocation=body.get("allocation"),
        )

    def _unauthenticated(self, kind: subjects.CommandKind, msg: InboundMessage) -> OperatorOutcome:
        """``operator_auth = "off"``: upstream behaviour, for local experiments only (§10.1)."""
        base: dict[str, Any] = {"subject": msg.subject, "form": "off", "reason_signed": False}
        text = msg.data.decode("utf-8", errors="replace")
        if kind in (subjects.CommandKind.ARM, subjects.CommandKind.DISARM):
            action = OperatorAction.ARM if kind is subjects.CommandKind.ARM else OperatorAction.DISARM
            return OperatorCommand(action=action, reason=text, **base)
        if kind is subjects.CommandKind.FLATTEN:
            return OperatorCommand(action=OperatorAction.FLATTEN, **base)
        try:
            parsed = parse_json(msg.data)
        except JsonError:
            note = (
                "Received malformed system.halt payload" if kind is subjects.CommandKind.HALT else "malformed"
            )
            return OperatorIgnored(
                note if kind is subjects.CommandKind.HALT else "Failed to parse risk policy update"
            )
        if kind is subjects.CommandKind.POLICY:
            if not isinstance(parsed, dict):
                return OperatorIgnored("Failed to parse risk policy update")
            return OperatorCommand(action=OperatorAction.POLICY, policy=parsed, **base)
        if not isinstance(parsed, dict) or "state" not in parsed:
            return OperatorIgnored("system.halt payload without state")
        try:
            return _typed_command(kind, parsed, base, None)
        except _Failure as failure:
            return OperatorIgnored(failure.error)

    def _rejected(self, msg: InboundMessage, failure: _Failure, now: int) -> OperatorRejected:
        event = RejectEvent(
            reason=failure.reason,
            intent_id=failure.command_id or NA,
            brain_instance_id=failure.actor or NA,
            timestamp=now,
            code="OPERATOR_AUTH_FAILED" if failure.reason == REASON_AUTH_FAILED else "INVALID_COMMAND",
            message=failure.error,
            event_type="execution.command.rejected",
            command=msg.subject,
            message_id=message_id(msg),
        )
        return OperatorRejected(failure.reason, failure.error, event)


def _typed_command(
    kind: subjects.CommandKind, payload: object, base: dict[str, Any], command_id: str | None
) -> OperatorCommand | OperatorIgnored:
    """The typed command of a Form A (or unauthenticated) payload for one subject."""
    actor = base.get("actor")

    def invalid(error: str) -> _Failure:
        return _Failure(REASON_INVALID, error, command_id, actor)

    reason = _str(payload, "reason")
    if isinstance(payload, str):
        reason = payload
    if kind in (subjects.CommandKind.ARM, subjects.CommandKind.DISARM):
        action = OperatorAction.ARM if kind is subjects.CommandKind.ARM else OperatorAction.DISARM
        return OperatorCommand(action=action, reason=reason or "", **base)
    if not isinstance(payload, dict):
        raise invalid("payload must be a JSON object")
    if kind is subjects.CommandKind.HALT:
        state = payload.get("state")
        if state not in ("OPEN", "SOFT_HALT", "HARD_HALT"):
            raise invalid(f"unknown halt state {state!r}")
        return OperatorCommand(
            action=OperatorAction.HALT,
            halt_state=HaltState(state),
            reason=reason or DEFAULT_HALT_REASON,
            **base,
        )
    if kind is subjects.CommandKind.FLATTEN:
        venue = _str(payload, "venue")
        symbol = _str(payload, "symbol")
        if symbol is not None:
            try:
                symbol = normalize_symbol(symbol)
            except SymbolError as exc:
                raise invalid(str(exc)) from None
        return OperatorCommand(
            action=OperatorAction.FLATTEN,
            reason=reason or "",
            venue=None if venue is None else venue.lower(),
            symbol=symbol,
            **base,
        )
    if kind is subjects.CommandKind.POLICY:
        wrapped = payload.get("policy")  # Brain sends {timestamp, policy, source}
        policy = wrapped if isinstance(wrapped, dict) else payload
        return OperatorCommand(action=OperatorAction.POLICY, policy=policy, reason=reason or "", **base)
    # A generic risk subject with a Form A payload {action, reason?}.
    action_name = _str(payload, "action")
    if action_name is None:
        raise invalid("Missing action")
    mapped = FORM_B_ACTIONS.get(action_name)
    if mapped is None:
        return OperatorIgnored(f"{UNKNOWN_RISK_ACTION}: {action_name}")
    op, halt_state = mapped
    if reason is None:
        reason = DEFAULT_RISK_HALT_REASON if op is OperatorAction.HALT else ""
    return OperatorCommand(
        action=op, halt_state=halt_state, reason=reason, allocation=payload.get("allocation"), **base
    )


# --- risk state events (§10.5) ---------------------------------------------------------------

RISK_STATES: tuple[str, ...] = ("Normal", "Cautious", "Defensive", "Emergency")


def parse_risk_state_event(data: bytes) -> str | None:
    """The JSON string enum of ``titan.evt.risk.state.v1``; None when not one of the states."""
    try:
        value = parse_json(data)
    except JsonError:
        return None
    return value if isinstance(value, str) and value in RISK_STATES else None


def next_risk_state(current: str, incoming: str, mode: str = "accept") -> str:
    """Apply a risk state event: ``accept`` takes it; ``escalate_only`` never de-escalates."""
    if mode == "escalate_only" and RISK_STATES.index(incoming) < RISK_STATES.index(current):
        return current
    return incoming
