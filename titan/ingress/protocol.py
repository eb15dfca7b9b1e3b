"""One frame in, one verdict out: §7 processing order for NDJSON and binary frames (sans-I/O).

Steps 1-6 happen here (parse, envelope shape, HMAC, replay, dispatch, validation). Readiness (7)
and business handling (8) belong to the caller, which knows about core.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from titan.canonical import DuplicateKeyError, JsonError, canonical_json, parse_json
from titan.ingress import codes
from titan.ingress.fastjson import Unusual, parse_request
from titan.ingress.replay import ReplayGuard
from titan.ingress.replies import ReplyFields, error_fields
from titan.ingress.signals import (
    SIGNAL_STRUCTS,
    PingSignal,
    Signal,
    SignalHead,
    check_signal,
)
from titan.ingress.signing import SIGNATURE_BYTES, Verifier, decode_hex_signature, sign_bytes


class Accepted(msgspec.Struct, gc=False):
    """An authenticated, fresh, valid signal, ready for readiness check and dispatch."""

    signal: Signal
    correlation_id: str | None
    envelope_ts: float | None
    trace: bool = False  # envelope asked for stage timestamps in the reply (bench)


class Rejected(msgspec.Struct):
    """A protocol failure: reply ``body`` (with ``error``) and keep the connection."""

    body: ReplyFields
    correlation_id: str | None = None
    signal_id: str | None = None
    envelope_ts: float | None = None


Verdict = Accepted | Rejected


@dataclass
class IngressStats:
    """Server counters of §11 (names as the legacy server exported them)."""

    messagesReceived: int = 0
    messagesProcessed: int = 0
    messagesFailed: int = 0
    invalidSignatures: int = 0
    replaysRejected: int = 0
    activeConnections: int = 0


class BinaryEnvelope(msgspec.Struct):
    signal: bytes
    signature: Any  # bin(32), or a 64-char hex str
    correlationId: str | None = None
    timestamp: int | float | None = None
    trace: Any = False


_REPLAY_CODES: Final = frozenset(
    {codes.TIMESTAMP_OUT_OF_WINDOW, codes.REPLAY_DETECTED, codes.REPLAY_CACHE_FULL}
)
_envelope_decoder: Final = msgspec.msgpack.Decoder(BinaryEnvelope)
_any_decoder: Final = msgspec.msgpack.Decoder()
_head_decoder: Final = msgspec.msgpack.Decoder(SignalHead)
_binary_decoders: Final[dict[type[Signal], msgspec.msgpack.Decoder[Any]]] = {
    t: msgspec.msgpack.Decoder(t) for t in SIGNAL_STRUCTS.values()
}


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class RequestProcessor:
    """Shared by every connection: the key, the replay guard, the counters."""

    def __init__(self, key: bytes, replay: ReplayGuard, clock_ms: Callable[[], float]) -> None:
        self._key = key
        self._verify = Verifier(key).verify
        self.replay = replay
        self.clock_ms = clock_ms
        self.stats = IngressStats()

    # --- helpers --------------------------------------------------------------------------

    def _reject(
        self,
        code: str,
        message: str,
        corr: str | None = None,
        signal_id: str | None = None,
        envelope_ts: float | None = None,
        **extra: Any,
    ) -> Rejected:
        self.stats.messagesFailed += 1
        if code == codes.INVALID_SIGNATURE:
            self.stats.invalidSignatures += 1
        elif code in _REPLAY_CODES:
            self.stats.replaysRejected += 1
        body = error_fields(code, message)
        body.update(extra)
        return Rejected(body, corr, signal_id, envelope_ts)

    def framing_error(self, code: str, message: str) -> Rejected:
        self.stats.messagesReceived += 1
        return self._reject(code, message)

    def _after_auth(
        self,
        head: SignalHead,
        signature: bytes,
        corr: str | None,
        envelope_ts: float | None,
        payload: bytes | dict[str, Any],
        trace: bool = False,
    ) -> Verdict:
        """Steps 4-6 after the HMAC; ``payload`` is the signal's msgpack bytes or its parsed JSON."""
        signal_id = head.signal_id if isinstance(head.signal_id, str) else None
        ts = head.timestamp
        if (type(ts) is not float and not _is_number(ts)) or not math.isfinite(ts):
            return self._reject(
                codes.INVALID_SIGNAL, "timestamp missing or not a number", corr, signal_id, envelope_ts
            )
        verdict = self.replay.check(
            signature, float(ts), self.clock_ms(), cacheable=head.signal_type != "PING"
        )
        if verdict is not None:
            return self._reject(
                verdict, "signed timestamp or signature rejected", corr, signal_id, envelope_ts
            )
        signal_type = head.signal_type
        struct_type = SIGNAL_STRUCTS.get(signal_type) if isinstance(signal_type, str) else None
        if struct_type is None:
            return self._reject(
                codes.UNKNOWN_SIGNAL_TYPE,
                "signal_type must be PREPARE, CONFIRM, ABORT or PING",
                corr,
                signal_id,
                envelope_ts,
                signal_type=signal_type,
            )
        try:
            if type(payload) is bytes:
                signal = _binary_decoders[struct_type].decode(payload)
            else:
                signal = msgspec.convert(payload, struct_type)
        except msgspec.ValidationError as exc:
            return self._reject(codes.INVALID_SIGNAL, str(exc), corr, signal_id, envelope_ts)
        problem = check_signal(signal)
        if problem is not None:
            return self._reject(codes.INVALID_SIGNAL, problem, corr, signal_id, envelope_ts)
        self.stats.messagesProcessed += 1
        return Accepted(signal, corr, envelope_ts, trace)

    # --- NDJSON ---------------------------------------------------------------------------

    def process_json(self, frame: bytes) -> Verdict:
        self.stats.messagesReceived += 1
        canonical: bytes | None = None
        env: object
        try:
            fast = parse_request(frame)  # the usual request: parsed and canonicalised in one pass
            env, canonical = fast.env, fast.canonical
        except Unusual:
            try:
                env = parse_json(frame)
            except DuplicateKeyError:
                return self._reject(codes.IPC_ERROR, codes.MSG_DUPLICATE_KEY)
            except JsonError:
                return self._reject(codes.IPC_ERROR, codes.MSG_INVALID_JSON)
        if not isinstance(env, dict):
            return self._reject(codes.IPC_ERROR, codes.MSG_NOT_AN_OBJECT)
        corr = env.get("correlationId")
        if corr is not None and not isinstance(corr, str):
            return self._reject(codes.IPC_ERROR, "correlationId must be a string")
        envelope_ts = env.get("timestamp")
        if "timestamp" in env and not _is_number(envelope_ts):
            return self._reject(codes.IPC_ERROR, "timestamp must be a number", corr)
        signal = env.get("signal")
        signature = env.get("signature")
        if signal is None or signature is None:
            return self._reject(
                codes.INVALID_SIGNATURE, "missing signal or signature", corr, None, envelope_ts
            )
        if not isinstance(signal, dict):
            return self._reject(codes.IPC_ERROR, "signal must be an object", corr, None, envelope_ts)
        raw_id = signal.get("signal_id")
        signal_id = raw_id if isinstance(raw_id, str) else None
        if not isinstance(signature, str):
            return self._reject(codes.IPC_ERROR, "signature must be a string", corr, signal_id, envelope_ts)
        sig_bytes = decode_hex_signature(signature)
        if sig_bytes is None:
            return self._reject(
                codes.INVALID_SIGNATURE, "signature must be 64 hex characters", corr, signal_id, envelope_ts
            )
        if canonical is None:
            canonical = canonical_json(signal)
        if not self._verify(canonical, sig_bytes):
            return self._reject(codes.INVALID_SIGNATURE, "signature mismatch", corr, signal_id, envelope_ts)
        head = SignalHead(signal.get("signal_type"), signal.get("timestamp"), raw_id)
        trace = env.get("trace") is True
        return self._after_auth(head, sig_bytes, corr, envelope_ts, signal, trace)

    # --- binary ---------------------------------------------------------------------------

    def _binary_envelope_error(self, body: bytes) -> Rejected:
        """Why a well-framed body did not decode as an envelope, echoing what can be echoed."""
        try:
            obj = _any_decoder.decode(body)
        except msgspec.DecodeError:
            return self._reject(codes.IPC_ERROR, "body is not one msgpack value")
        if not isinstance(obj, dict):
            return self._reject(codes.IPC_ERROR, "body is not a msgpack map")
        corr = obj.get("correlationId")
        if not isinstance(corr, str):
            return self._reject(codes.IPC_ERROR, codes.MSG_BAD_ENVELOPE)
        if "signal" not in obj or "signature" not in obj:
            return self._reject(codes.INVALID_SIGNATURE, "missing signal or signature", corr)
        return self._reject(codes.IPC_ERROR, codes.MSG_BAD_ENVELOPE, corr)

    def process_binary(self, body: bytes) -> Verdict:
        self.stats.messagesReceived += 1
        try:
            env = _envelope_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._binary_envelope_error(body)
        corr = env.correlationId
        envelope_ts = float(env.timestamp) if env.timestamp is not None else None
        if envelope_ts is not None and not math.isfinite(envelope_ts):
            envelope_ts = None
        signature = env.signature
        sig_bytes: bytes | None = None
        if isinstance(signature, str):
            sig_bytes = decode_hex_signature(signature)
        elif isinstance(signature, bytes) and len(signature) == SIGNATURE_BYTES:
            sig_bytes = signature
        if sig_bytes is None:
            return self._reject(
                codes.INVALID_SIGNATURE, "signature must be 32 bytes", corr, None, envelope_ts
            )
        if not self._verify(env.signal, sig_bytes):
            return self._reject(codes.INVALID_SIGNATURE, "signature mismatch", corr, None, envelope_ts)
        raw = env.signal
        try:
            head = _head_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._reject(codes.IPC_ERROR, "signal is not a msgpack map", corr, None, envelope_ts)
        return self._after_auth(head, sig_bytes, corr, envelope_ts, raw, env.trace is True)


def sign_binary_signal(key: bytes, signal_bytes: bytes) -> bytes:
    """The binary-mode signature: HMAC over the exact msgpack bytes of the signal (§13.2)."""
    return sign_bytes(key, signal_bytes)


def is_ping(signal: Signal) -> bool:
    return isinstance(signal, PingSignal)
