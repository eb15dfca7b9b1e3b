"""Signed intent envelope (nats.md §3): shape parsing, HMAC verification, correlation id.

Verification checks, in upstream order and with upstream's exact error strings:
no secret configured, missing signature / nonce / timestamp, timestamp tolerance, hex decode,
signature comparison (constant time). ``key_id`` selects the secret (rotation); an unknown
``key_id`` fails as a signature mismatch. The signed message is
``"{ts}.{nonce}.{canonical(payload)}"`` with the JavaScript canonical JSON of the *parsed* payload;
optionally the serde_json number forms are accepted too (``accept_serde_number_forms``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from titan.canonical import canonical_json

Canonicalizer = Callable[[object], bytes]

ERR_NO_SECRET = "HMAC validation enabled but no secret configured"
ERR_MISSING_SIGNATURE = "Missing signature"
ERR_MISSING_NONCE = "Missing nonce"
ERR_MISSING_TIMESTAMP = "Missing timestamp"
ERR_INVALID_HEX = "Invalid hex signature"
ERR_SIGNATURE_MISMATCH = "Signature mismatch."  # trailing period: upstream text for envelopes

DEFAULT_KEY_ID = "default"
DEFAULT_TOLERANCE_S = 300


def tolerance_error(diff_ms: int, tolerance_ms: int) -> str:
    return f"Timestamp out of tolerance range (diff: {diff_ms}ms, tolerance: {tolerance_ms}ms)"


class SignedEnvelope(msgspec.Struct, frozen=True):
    """A structurally valid envelope (§3); the payload is kept as parsed, unvalidated."""

    type: str
    version: int
    producer: str
    payload: Any
    ts: int | None = None
    nonce: str | None = None
    sig: str | None = None
    id: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    causation_id: str | None = None
    partition_key: str | None = None
    schema_version: int | None = None
    key_id: str | None = None


class Unsigned(msgspec.Struct, frozen=True):
    """The message lacks ``payload`` or ``type`` (§5 row 4)."""


class Malformed(msgspec.Struct, frozen=True):
    """Envelope keys present but the shape is wrong (§5 row 5)."""

    detail: str


def as_int(value: object) -> int | None:
    """A JSON integer (JS parsing yields integral floats) as ``int``; None if not an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


_OPTIONAL_STR = ("nonce", "sig", "id", "correlation_id", "idempotency_key", "causation_id", "partition_key")


def parse_envelope(obj: object) -> SignedEnvelope | Unsigned | Malformed:
    """Classify a parsed JSON message as a signed envelope, unsigned, or malformed."""
    if not isinstance(obj, dict) or "payload" not in obj or "type" not in obj:
        return Unsigned()
    kind = obj["type"]
    if not isinstance(kind, str):
        return Malformed("type must be a string")
    producer = obj.get("producer")
    if not isinstance(producer, str):
        return Malformed("missing or ill-typed producer")
    version = as_int(obj.get("version"))
    if version is None:
        return Malformed("missing or ill-typed version")
    optional: dict[str, Any] = {}
    for key in _OPTIONAL_STR:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            return Malformed(f"{key} must be a string")
        optional[key] = value
    for key in ("ts", "schema_version"):
        value = obj.get(key)
        if value is None:
            optional[key] = None
            continue
        number = as_int(value)
        if number is None:
            return Malformed(f"{key} must be an integer")
        optional[key] = number
    key_id = obj.get("key_id")
    if key_id is not None and not isinstance(key_id, str):
        return Malformed("key_id must be a string")
    return SignedEnvelope(
        type=kind, version=version, producer=producer, payload=obj["payload"], key_id=key_id, **optional
    )


def correlation_id(envelope_correlation_id: str | None, payload: object) -> str | None:
    """Envelope ``correlation_id``, else ``payload.metadata.correlation_id``, else ``payload.signal_id``."""
    if envelope_correlation_id:
        return envelope_correlation_id
    if isinstance(payload, dict):
        metadata = payload.get("metadata")
        if isinstance(metadata, dict):
            value = metadata.get("correlation_id")
            if isinstance(value, str) and value:
                return value
        signal_id = payload.get("signal_id")
        if isinstance(signal_id, str) and signal_id:
            return signal_id
    return None


# --- serde_json number forms -------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')
_U64_LIMIT = 2**64
_I64_MIN = -(2**63)


def _serde_number(token: str) -> str:
    """How serde_json (ryu) prints a number whose JavaScript text is ``token``."""
    x = float(token)
    magnitude = abs(x)
    integral = "." not in token and "e" not in token and "E" not in token
    if (
        (1e-6 <= magnitude < 1e-5)
        or magnitude >= 1e21
        or (integral and not _I64_MIN <= int(token) < _U64_LIMIT)
    ):
        mantissa, _, exponent = repr(x).partition("e")
        if not exponent:  # repr gave plain notation: compute the exponent form
            mantissa, _, exponent = f"{x:e}".partition("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return token


def serde_form(canonical_text: bytes) -> bytes:
    """Rewrite the numbers of a JavaScript canonical text into serde_json's forms (§3)."""
    text = canonical_text.decode("utf-8")

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if token.startswith('"') else _serde_number(token)

    return _TOKEN.sub(replace, text).encode("utf-8")


# --- verification ------------------------------------------------------------------------------


def sign(secret: str, ts: int, nonce: str, canonical_payload: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``"{ts}.{nonce}.{canonical}"``."""
    message = f"{ts}.{nonce}.".encode() + canonical_payload
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def decode_signature(sig: str) -> bytes | None:
    """32 bytes from 64 hex chars (either case), else None."""
    if len(sig) != 64:
        return None
    try:
        raw = bytes.fromhex(sig)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


class VerifyResult(msgspec.Struct, frozen=True):
    ok: bool
    error: str | None = None  # exact upstream text when not ok
    key_id: str = DEFAULT_KEY_ID
    serde_form: bool = False  # matched only with the serde_json number forms


class EnvelopeVerifier:
    """HMAC verification of signed envelopes (§3). ``now_ms`` is injected by the caller."""

    def __init__(
        self,
        secrets: Mapping[str, str],
        canonical: Canonicalizer = canonical_json,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        accept_serde_number_forms: bool = False,
    ) -> None:
        self._secrets = {k: v for k, v in secrets.items() if v}
        self._canonical = canonical
        self.tolerance_ms = tolerance_s * 1000
        self._accept_serde = accept_serde_number_forms

    @property
    def has_secret(self) -> bool:
        return bool(self._secrets)

    def check_window(self, ts: int, now_ms: int) -> str | None:
        diff = abs(now_ms - ts)
        return tolerance_error(diff, self.tolerance_ms) if diff > self.tolerance_ms else None

    def secret_for(self, key_id: str | None) -> str | None:
        return self._secrets.get(key_id or DEFAULT_KEY_ID)

    def verify(self, envelope: SignedEnvelope, now_ms: int) -> VerifyResult:
        key_id = envelope.key_id or DEFAULT_KEY_ID
        if not self._secrets:
            return VerifyResult(False, ERR_NO_SECRET, key_id)
        if not envelope.sig:
            return VerifyResult(False, ERR_MISSING_SIGNATURE, key_id)
        if not envelope.nonce:
            return VerifyResult(False, ERR_MISSING_NONCE, key_id)
        if envelope.ts is None:
            return VerifyResult(False, ERR_MISSING_TIMESTAMP, key_id)
        window_error = self.check_window(envelope.ts, now_ms)
        if window_error is not None:
            return VerifyResult(False, window_error, key_id)
        given = decode_signature(envelope.sig)
        if given is None:
            return VerifyResult(False, ERR_INVALID_HEX, key_id)
        secret = self._secrets.get(key_id)
        if secret is None:  # unknown key_id fails as a mismatch (§3)
            return VerifyResult(False, ERR_SIGNATURE_MISMATCH, key_id)
        canonical = self._canonical(envelope.payload)
        expected = bytes.fromhex(sign(secret, envelope.ts, envelope.nonce, canonical))
        if hmac.compare_digest(given, expected):
            return VerifyResult(True, None, key_id)
        if self._accept_serde:
            alternative = serde_form(canonical)
            if alternative != canonical:
                expected = bytes.fromhex(sign(secret, envelope.ts, envelope.nonce, alternative))
                if hmac.compare_digest(given, expected):
                    return VerifyResult(True, None, key_id, serde_form=True)
        return VerifyResult(False, ERR_SIGNATURE_MISMATCH, key_id)
