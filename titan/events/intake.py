"""Processing of one JetStream message on ``EXECUTION_CORE`` (nats.md §5), as a pure function.

Given the raw message and the engine-side facts, :meth:`IntentIntake.process` returns exactly one
outcome, first matching row wins: ACK-only duplicate (row 0), reject event and/or DLQ message
(rows 1–8b), or forward the normalised intent to ``core`` (row 10). The caller ACKs a forwarded
message only after ``core`` has journaled it (with ``dedupe_ids``), and every other outcome after
publishing it; nothing is ever NAKed. Rows 9 and 11 happen in ``core``; :func:`risk_denial`,
:func:`expired_denial` and :func:`venue_rejection` build their events.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from titan.canonical import JsonError, parse_json
from titan.events.envelope import (
    EnvelopeVerifier,
    Malformed,
    SignedEnvelope,
    Unsigned,
    correlation_id,
    parse_envelope,
)
from titan.events.intents import CLOSE_TYPES, IntentError, NatsIntent, validate_intent_payload
from titan.events.payloads import NA, DlqEvent, RejectEvent
from titan.events.replay import ReplayCache

DLQ_INVALID_JSON = "Invalid intent: Invalid JSON"
DLQ_UNSIGNED = "Invalid intent: Unsigned intents rejected in strict mode"
DLQ_MALFORMED = "Invalid intent: Malformed Envelope"
DLQ_ENGINE_NOT_READY = "Invalid intent: Engine not ready"
RISK_PREFIX = "❌ RISK REJECTION: "

COUNTER_DUPLICATE = "duplicate_intents_total"
COUNTER_INVALID = "titan_execution_invalid_intents_total"

HEADER_MSG_ID = "Nats-Msg-Id"


class HaltState(enum.StrEnum):
    OPEN = "OPEN"
    SOFT_HALT = "SOFT_HALT"  # deny new opens; reduce-only (CLOSE*) intents pass to core
    HARD_HALT = "HARD_HALT"  # deny every new intent


@dataclass(frozen=True, slots=True)
class EngineFacts:
    """What the bridge knows of ``core`` when the message arrives."""

    armed: bool
    ready: bool
    active_policy_hash: str
    halt: HaltState = HaltState.OPEN
    journaled_ids: Container[str] = frozenset()  # Nats-Msg-Id / idempotency_key / id of journaled envelopes
    accepted_signal_ids: Mapping[str, str] = field(default_factory=dict)  # signal_id → envelope identity


class InboundMessage(msgspec.Struct, frozen=True):
    """A JetStream message as received; ``stream_seq`` from its metadata when known."""

    subject: str
    data: bytes
    headers: dict[str, str] | None = None
    stream_seq: int | None = None


class Action(enum.Enum):
    ACK_DUPLICATE = "ack_duplicate"  # row 0: ACK, count, nothing else
    REJECT = "reject"  # publish the reject event (and the DLQ message when set), ACK
    DLQ = "dlq"  # publish the DLQ message, ACK
    FORWARD = "forward"  # to core; ACK after core journaled it


class IntakeOutcome(msgspec.Struct, frozen=True, kw_only=True):
    action: Action
    row: str  # the §5 row that matched ("0", "1", …, "6a", "8b", "10")
    reject: RejectEvent | None = None
    dlq: DlqEvent | None = None
    intent: NatsIntent | None = None
    dedupe_ids: tuple[str, ...] = ()  # journal these with the intent (row 0 on redelivery)
    identity: str | None = None  # envelope identity: record as accepted_signal_ids[signal_id]
    counters: tuple[str, ...] = ()
    error: str | None = None  # text to log (HMAC / validation error)


def _str_field(obj: object, key: str) -> str | None:
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def message_id(msg: InboundMessage) -> str:
    """Identity of the message: stream sequence, else Nats-Msg-Id, else a digest of the bytes."""
    if msg.stream_seq is not None:
        return str(msg.stream_seq)
    header = (msg.headers or {}).get(HEADER_MSG_ID)
    if header:
        return header
    return "sha256:" + hashlib.sha256(msg.data).hexdigest()[:32]


def _intent_id(parsed: object) -> str:
    """``payload.signal_id`` or top-level ``signal_id`` (§5 row 2), else ``"N/A"``."""
    if isinstance(parsed, dict):
        return _str_field(parsed.get("payload"), "signal_id") or _str_field(parsed, "signal_id") or NA
    return NA


def _dedupe_ids(msg: InboundMessage, parsed: object) -> tuple[str, ...]:
    ids: list[str] = []
    header = (msg.headers or {}).get(HEADER_MSG_ID)
    if header:
        ids.append(header)
    for key in ("idempotency_key", "id"):
        value = _str_field(parsed, key)
        if value and value not in ids:
            ids.append(value)
    return tuple(ids)


@dataclass(frozen=True, slots=True)
class _Builders:
    """Reject/DLQ builders bound to one message."""

    now: int
    message_id: str
    original: bytes
    intent_id: str
    correlation: str

    def reject(self, reason: str, code: str, message: str, **extra: Any) -> RejectEvent:
        return RejectEvent(
            reason=reason,
            intent_id=extra.pop("intent_id", self.intent_id),
            brain_instance_id=self.correlation,
            timestamp=self.now,
            code=code,
            message=message,
            message_id=self.message_id,
            **extra,
        )

    def dlq(self, reason: str, code: str) -> DlqEvent:
        return DlqEvent(
            reason=reason, original=self.original, t_ingress=self.now, message_id=self.message_id, code=code
        )


def _rows_0_to_2(
    dedupe: tuple[str, ...], intent_type: str | None, facts: EngineFacts, b: _Builders
) -> IntakeOutcome | None:
    # Row 0: already journaled (only authenticated envelopes are ever recorded).
    if any(i in facts.journaled_ids for i in dedupe):
        return IntakeOutcome(action=Action.ACK_DUPLICATE, row="0", counters=(COUNTER_DUPLICATE,))
    # Row 1: halted. A soft halt lets reduce-only (CLOSE*) intents through to core.
    if facts.halt is HaltState.HARD_HALT or (
        facts.halt is HaltState.SOFT_HALT and intent_type not in CLOSE_TYPES
    ):
        text = f"System halted ({facts.halt.value}): new intents denied"
        return IntakeOutcome(
            action=Action.REJECT, row="1", reject=b.reject("system_halted", "SYSTEM_HALTED", text)
        )
    # Row 2: disarmed.
    if not facts.armed:
        event = b.reject("system_disarmed", "SYSTEM_DISARMED", "System disarmed")
        return IntakeOutcome(action=Action.REJECT, row="2", reject=event)
    return None


def _rows_8_to_10(
    intent: NatsIntent, identity: str, dedupe: tuple[str, ...], facts: EngineFacts, b: _Builders
) -> IntakeOutcome:
    # Row 8: policy hash.
    if intent.policy_hash is not None and intent.policy_hash != facts.active_policy_hash:
        exp, got = facts.active_policy_hash, intent.policy_hash
        event = b.reject(
            "policy_hash_mismatch",
            "POLICY_HASH_MISMATCH",
            f"Policy Hash Mismatch: Expected {exp}, Got {got}",
            expected_policy_hash=exp,
            got_policy_hash=got,
            intent_id=intent.signal_id,
        )
        return IntakeOutcome(
            action=Action.REJECT,
            row="8",
            reject=event,
            dlq=b.dlq(f"Policy Hash mismatch: exp {exp} got {got}", "POLICY_HASH_MISMATCH"),
            counters=(COUNTER_INVALID,),
        )
    # Row 8a: the signal id was already accepted from a different envelope.
    owner = facts.accepted_signal_ids.get(intent.signal_id)
    if owner is not None and owner != identity:
        text = f"Invalid intent: Duplicate signal_id {intent.signal_id}"
        event = b.reject("duplicate_signal_id", "DUPLICATE_SIGNAL_ID", text, intent_id=intent.signal_id)
        return IntakeOutcome(
            action=Action.REJECT, row="8a", reject=event, dlq=b.dlq(text, "DUPLICATE_SIGNAL_ID")
        )
    # Row 8b: core not ready (starting / reconciling).
    if not facts.ready:
        event = b.reject(
            "engine_not_ready", "ENGINE_NOT_READY", "Engine not ready", intent_id=intent.signal_id
        )
        return IntakeOutcome(
            action=Action.REJECT, row="8b", reject=event, dlq=b.dlq(DLQ_ENGINE_NOT_READY, "ENGINE_NOT_READY")
        )
    # Row 10: forward; the caller ACKs once core has journaled it with these ids.
    return IntakeOutcome(action=Action.FORWARD, row="10", intent=intent, dedupe_ids=dedupe, identity=identity)


def decide_in_core(
    intent: NatsIntent,
    dedupe_ids: tuple[str, ...],
    identity: str,
    facts: EngineFacts,
    original: bytes,
    message_id: str,
    now_ms: int,
) -> IntakeOutcome:
    """Rows 0–2 and 8–10 for an intent the bridge already authenticated (:meth:`IntentIntake.authenticate`).

    For a layout where ``core`` owns the engine facts: same outcomes as :meth:`IntentIntake.process`
    except that rows 0–2 are checked after authentication instead of before.
    """
    b = _Builders(now_ms, message_id, original, intent.signal_id, intent.correlation_id or intent.signal_id)
    early = _rows_0_to_2(dedupe_ids, intent.type, facts, b)
    return early if early is not None else _rows_8_to_10(intent, identity, dedupe_ids, facts, b)


class IntentIntake:
    """§5 for one consumer. Holds only the nonce cache; the engine facts are passed per message."""

    def __init__(
        self, verifier: EnvelopeVerifier, clock_ms: Callable[[], int], replay: ReplayCache | None = None
    ) -> None:
        self._verifier = verifier
        self._clock_ms = clock_ms
        self.replay = replay if replay is not None else ReplayCache(verifier.tolerance_ms)

    def authenticate(self, msg: InboundMessage) -> IntakeOutcome:
        """Rows 3–7 only: DLQ / reject, or FORWARD with the validated intent (core does the rest)."""
        return self._process(msg, None)

    def process(self, msg: InboundMessage, facts: EngineFacts) -> IntakeOutcome:
        """The whole §5 table, first matching row wins."""
        return self._process(msg, facts)

    def _process(self, msg: InboundMessage, facts: EngineFacts | None) -> IntakeOutcome:
        now = self._clock_ms()
        mid = message_id(msg)
        parsed: object = None
        is_json = True
        try:
            parsed = parse_json(msg.data)
        except JsonError:
            is_json = False
        dedupe = _dedupe_ids(msg, parsed)
        intent_id = _intent_id(parsed)
        payload = parsed.get("payload") if isinstance(parsed, dict) else None
        corr = correlation_id(_str_field(parsed, "correlation_id"), payload) or intent_id
        b = _Builders(now, mid, msg.data, intent_id, corr)

        if facts is not None:
            early = _rows_0_to_2(dedupe, _str_field(payload, "type"), facts, b)
            if early is not None:
                return early
        # Row 3: not JSON.
        if not is_json:
            return IntakeOutcome(
                action=Action.DLQ,
                row="3",
                dlq=b.dlq(DLQ_INVALID_JSON, "INVALID_INTENT"),
                counters=(COUNTER_INVALID,),
            )
        # Rows 4, 5: unsigned or malformed envelope; no signature check.
        envelope = parse_envelope(parsed)
        if isinstance(envelope, Unsigned):
            return IntakeOutcome(
                action=Action.DLQ,
                row="4",
                dlq=b.dlq(DLQ_UNSIGNED, "INVALID_INTENT"),
                counters=(COUNTER_INVALID,),
            )
        if isinstance(envelope, Malformed):
            return IntakeOutcome(
                action=Action.DLQ,
                row="5",
                dlq=b.dlq(DLQ_MALFORMED, "INVALID_INTENT"),
                counters=(COUNTER_INVALID,),
                error=envelope.detail,
            )
        # Row 6: HMAC / timestamp.
        verdict = self._verifier.verify(envelope, now)
        if not verdict.ok:
            error = verdict.error or "Signature mismatch."
            event = b.reject("hmac_signature_mismatch", "INVALID_SIGNATURE", error)
            return IntakeOutcome(action=Action.REJECT, row="6", reject=event, error=error)
        # Row 6a: nonce replay inside the window (a redelivery of the same message is not a replay).
        assert envelope.nonce is not None and envelope.ts is not None  # guaranteed by verify()
        if not self.replay.check_and_record(f"nonce:{envelope.nonce}", mid, envelope.ts, now):
            event = b.reject("replay_detected", "REPLAY_DETECTED", f"Nonce {envelope.nonce} already used")
            return IntakeOutcome(action=Action.REJECT, row="6a", reject=event)
        # Row 7: payload validation.
        try:
            intent = validate_intent_payload(
                envelope.payload, correlation_id(envelope.correlation_id, payload)
            )
        except IntentError as exc:
            return IntakeOutcome(
                action=Action.DLQ,
                row="7",
                dlq=b.dlq(f"Invalid intent: {exc}", "INVALID_INTENT"),
                counters=(COUNTER_INVALID,),
                error=str(exc),
            )
        identity = _identity(envelope, dedupe, mid)
        ids = dedupe if identity in dedupe else (*dedupe, identity)
        if facts is None:
            return IntakeOutcome(
                action=Action.FORWARD, row="7", intent=intent, dedupe_ids=ids, identity=identity
            )
        return _rows_8_to_10(intent, identity, ids, facts, b)


def _identity(envelope: SignedEnvelope, dedupe: tuple[str, ...], mid: str) -> str:
    """The envelope's identity for row 8a: idempotency_key ?? id ?? Nats-Msg-Id ?? message id."""
    return envelope.idempotency_key or envelope.id or (dedupe[0] if dedupe else mid)


# --- rows 9 and 11 (decided in core) ---------------------------------------------------------------


def risk_denial(
    intent: NatsIntent, original: bytes, message_id: str, code: str, text: str, now_ms: int
) -> tuple[RejectEvent, DlqEvent]:
    """Row 9, risk/routing denial: DLQ ``❌ RISK REJECTION: <text>`` and reject ``risk_rejected``."""
    event = RejectEvent(
        reason="risk_rejected",
        intent_id=intent.signal_id,
        brain_instance_id=intent.correlation_id or intent.signal_id,
        timestamp=now_ms,
        code=code,
        message=text,
        venue=intent.exchange,
        message_id=message_id,
    )
    return event, DlqEvent(
        reason=RISK_PREFIX + text, original=original, t_ingress=now_ms, message_id=message_id, code=code
    )


def expired_denial(
    intent: NatsIntent, original: bytes, message_id: str, latency_ms: int, now_ms: int
) -> tuple[RejectEvent, DlqEvent]:
    """Row 9, freshness: DLQ ``Intent EXPIRED: {n} ms latency`` (no prefix) and reject ``intent_expired``."""
    text = f"Intent EXPIRED: {latency_ms} ms latency"
    event = RejectEvent(
        reason="intent_expired",
        intent_id=intent.signal_id,
        brain_instance_id=intent.correlation_id or intent.signal_id,
        timestamp=now_ms,
        code="INTENT_EXPIRED",
        message=text,
        venue=intent.exchange,
        message_id=message_id,
    )
    return event, DlqEvent(
        reason=text, original=original, t_ingress=now_ms, message_id=message_id, code="INTENT_EXPIRED"
    )


def venue_rejection(
    signal_id: str, correlation: str | None, venue: str, message: str, now_ms: int, message_id: str = ""
) -> RejectEvent:
    """Row 11: a definitive venue reject (execution reports carry the detail)."""
    return RejectEvent(
        reason="venue_rejected",
        intent_id=signal_id,
        brain_instance_id=correlation or signal_id,
        timestamp=now_ms,
        code="VENUE_REJECTED",
        message=message,
        venue=venue,
        message_id=message_id,
    )
