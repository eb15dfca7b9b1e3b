"""Client-side request encoding: signed NDJSON lines and binary frames (fastpath.md §4, §13.2)."""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

from titan.ingress.fastjson import canonical
from titan.ingress.framing import BINARY_MARKER, encode_binary_frame
from titan.ingress.signing import sign_bytes

BINARY_MODE_MARKER: Final = bytes([BINARY_MARKER])
_msgpack: Final = msgspec.msgpack.Encoder()


def ndjson_request(key: bytes, signal: dict[str, Any], correlation_id: str, timestamp_ms: int) -> bytes:
    """One NDJSON request line as the TypeScript client writes it (signal keys in insertion order)."""
    envelope = {
        "signal": signal,
        "signature": sign_bytes(key, canonical(signal)).hex(),  # = sign_signal, faster
        "correlationId": correlation_id,
        "timestamp": timestamp_ms,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode() + b"\n"


def binary_request(
    key: bytes, signal: dict[str, Any], correlation_id: str, timestamp_ms: int, *, trace: bool = False
) -> bytes:
    """One binary frame (without the connection's 0xB1 mode marker): the signal's msgpack bytes are signed."""
    signal_bytes = _msgpack.encode(signal)
    envelope: dict[str, Any] = {
        "signal": signal_bytes,
        "signature": sign_bytes(key, signal_bytes),
        "correlationId": correlation_id,
        "timestamp": timestamp_ms,
    }
    if trace:
        envelope["trace"] = True
    body = _msgpack.encode(envelope)
    return encode_binary_frame(body)
