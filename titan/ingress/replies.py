"""Reply construction and encoding (fastpath.md §3, §11, §13.2).

Every reply is a flat map: ``correlationId`` (when one could be parsed), ``signal_id`` (when known),
the body, then ``timestamp`` (the request envelope's number, else server time) and ``server_time``.
NDJSON replies are compact and pure ASCII (``\\uXXXX`` escapes); binary replies are the same map in
msgpack behind a u32 length.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import msgspec

from titan.ingress import codes
from titan.ingress.framing import encode_binary_frame

ReplyFields = dict[str, Any]

_EXACT_INT_LIMIT: Final = 2.0**53
_NON_ASCII: Final = re.compile("[^\x00-\x7f]")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_json_encoder: Final = msgspec.json.Encoder()
_msgpack_encoder: Final = msgspec.msgpack.Encoder()


def error_fields(code: str, message: str) -> ReplyFields:
    """Body of a protocol/authentication failure: the TypeScript client raises ``Error(code)``."""
    return {"rejected": True, "reason": code, "error": code, "message": message}


def js_int(x: float) -> float | int:
    """Integral doubles as ints so ``1795917803404.0`` is written ``1795917803404``."""
    if x.is_integer() and -_EXACT_INT_LIMIT < x < _EXACT_INT_LIMIT:
        return int(x)
    return x


def build_reply(
    body: ReplyFields,
    *,
    correlation_id: str | None,
    signal_id: str | None,
    envelope_ts: float | None,
    server_now_ms: float,
) -> ReplyFields:
    reply: ReplyFields = {}
    if correlation_id is not None:
        reply["correlationId"] = correlation_id
    if signal_id is not None and "signal_id" not in body:
        reply["signal_id"] = signal_id
    reply.update(body)
    server_time = int(server_now_ms)
    reply["timestamp"] = js_int(envelope_ts) if envelope_ts is not None else server_time
    reply["server_time"] = server_time
    return reply


def _escape(match: re.Match[str]) -> str:
    cp = ord(match.group())
    if cp > 0xFFFF:
        cp -= 0x10000
        return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"
    return f"\\u{cp:04x}"


def encode_ndjson(reply: ReplyFields) -> bytes:
    """Compact JSON line, ASCII only, ``\\n``-terminated."""
    try:
        out = _json_encoder.encode(reply)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        # Lone surrogates or exotic values: the stdlib encoder copes (and escapes everything non-ASCII).
        return json.dumps(reply, ensure_ascii=True, separators=(",", ":"), default=str).encode() + b"\n"
    if not out.isascii():
        out = _NON_ASCII.sub(_escape, out.decode("utf-8")).encode("ascii")
    return out + b"\n"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def encode_binary(reply: ReplyFields) -> bytes:
    """Length-prefixed msgpack map with the same keys and values as the JSON reply."""
    try:
        body = _msgpack_encoder.encode(reply)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        body = _msgpack_encoder.encode(_scrub(reply))  # msgpack str must be valid UTF-8
    return encode_binary_frame(body)


def max_connections_line(server_now_ms: float) -> bytes:
    """The one line written to a connection over the limit before closing it (§1)."""
    code = codes.MAX_CONNECTIONS_REACHED
    reply = {"rejected": True, "reason": code, "error": code, "timestamp": int(server_now_ms)}
    return encode_ndjson(reply)


class Reply(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A FastPath reply as a client sees it (every field optional; unknown fields ignored)."""

    correlationId: str | None = None
    signal_id: str | None = None
    type: str | None = None
    prepared: bool | None = None
    executed: bool | None = None
    aborted: bool | None = None
    pong: bool | None = None
    rejected: bool | None = None
    duplicate: bool | None = None
    reason: str | None = None
    error: str | None = None
    message: str | None = None
    status: str | None = None
    position_size: float | None = None
    quantity: str | None = None
    order_type: str | None = None
    fill_price: float | None = None
    filled_qty: str | None = None
    order_ids: list[str] | None = None
    venue_errors: list[Any] | None = None
    age_ms: int | float | None = None
    max_age_ms: int | float | None = None
    master_arm: bool | None = None
    signal_type: Any = None
    stages: dict[str, int] | None = None  # monotonic ns per stage, when the request asked for a trace
    timestamp: int | float | None = None  # epoch ms; the server sends integers
    server_time: int | float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that were present, as plain Python values."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    @property
    def ok(self) -> bool:
        """True unless the reply carries an ``error`` (the TypeScript client's success rule)."""
        return not self.error
