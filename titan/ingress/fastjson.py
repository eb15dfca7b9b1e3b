"""The usual NDJSON request in one pass: strict parse, duplicate-key check and canonical JSON (§6).

:func:`titan.canonical.parse_json` calls back into Python for every object and number, and
:func:`titan.canonical.canonical_json` then walks the signal again. Here msgspec parses the frame in
C, one short walk over the signal makes its numbers print as JavaScript prints them, and msgspec
prints it with sorted keys; the bytes are those ``canonical_json`` gives (same escapes, and for the
numbers allowed here the same digits).

Duplicate keys (which msgspec would silently collapse) are found by counting: every key of the
frame is followed by a ``:`` outside any string, so a frame holding no more ``:`` bytes than the
parsed objects hold keys has no duplicate.

Only the common shape is handled: keys that are ASCII and do not start with a digit, numbers that
are integral below 2**53 or plain-notation doubles (1e-4 ≤ |x| < 2**53), an envelope whose other
values are scalars, no ``:`` inside strings. Anything else — including every malformed frame —
raises :class:`Unusual`, and the caller takes the exact path (``parse_json`` + ``canonical_json``),
which also produces the error verdicts. Where this succeeds, its bytes equal
``canonical_json(parse_json(frame)["signal"])`` (tests/ingress/test_fastjson.py checks it against
the vectors and generated frames).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from titan.canonical import canonical_json

__all__ = ["FastEnvelope", "Unusual", "canonical", "parse_request"]

_LIMIT: Final = 2.0**53
_ILIMIT: Final = 2**53
_SAFE_KEYS_MAX: Final = 4096
_decode: Final = msgspec.json.decode
_encode: Final = msgspec.json.Encoder(order="sorted").encode
_safe_keys: set[str] = set()


class Unusual(Exception):
    """Not the common shape (or not valid): use the exact path."""


def _check_key(key: str) -> None:
    # Digit-led keys may be array indices, non-ASCII ones may sort differently in UTF-16.
    if not key.isascii() or key[:1].isdigit():
        raise Unusual(key)
    if len(_safe_keys) < _SAFE_KEYS_MAX:
        _safe_keys.add(key)


def _value(v: Any) -> tuple[Any, int]:
    """(v as canonical_json's fast path holds it, keys inside it); raises Unusual."""
    t = type(v)
    if t is float:
        if v.is_integer():
            if -_LIMIT < v < _LIMIT:
                return int(v), 0
        elif 1e-4 <= abs(v) < _LIMIT:
            return v, 0
        raise Unusual(v)
    if t is int:
        if -_ILIMIT < v < _ILIMIT:
            return v, 0
        raise Unusual(v)
    if t is str or t is bool or v is None:
        return v, 0
    if t is dict:
        return v, _object(v)
    if t is list:
        keys = 0
        for i, item in enumerate(v):
            new, n = _value(item)
            if new is not item:
                v[i] = new
            keys += n
        return v, keys
    raise Unusual(t)


def _object(d: dict[str, Any]) -> int:
    """Normalise ``d``'s values in place; returns how many keys ``d`` and its children hold."""
    keys = len(d)
    safe = _safe_keys
    for k, v in d.items():
        if k not in safe:
            _check_key(k)
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int and -_ILIMIT < v < _ILIMIT:
            continue
        new, n = _value(v)
        if new is not v:
            d[k] = new  # same key: not a resize, safe while iterating
        keys += n
    return keys


class FastEnvelope:
    """A parsed NDJSON envelope: its top-level values, the signal and the signal's canonical bytes."""

    __slots__ = ("canonical", "env", "signal")

    def __init__(self, env: dict[str, Any], signal: dict[str, Any], canonical: bytes) -> None:
        self.env = env
        self.signal = signal  # integral numbers as int (the same doubles)
        self.canonical = canonical


def parse_request(frame: bytes) -> FastEnvelope:
    """Parse one NDJSON request of the common shape, or raise :class:`Unusual`."""
    try:
        env = _decode(frame)
    except msgspec.DecodeError:  # bad UTF-8, bad JSON, out-of-range number: the exact path says which
        raise Unusual("decode") from None
    if type(env) is not dict:
        raise Unusual("not an object")
    signal = env.get("signal")
    if type(signal) is not dict:
        raise Unusual("no signal object")
    keys = len(env)
    for key, value in env.items():
        t = type(value)
        if t is int:
            if not -_ILIMIT < value < _ILIMIT:
                raise Unusual(key)
            env[key] = float(value)  # the envelope's numbers as parse_json gives them: doubles
        elif (t is dict or t is list) and key != "signal":
            raise Unusual(key)  # nested values elsewhere: the exact path checks them
    try:
        keys += _object(signal)
    except RecursionError:
        raise Unusual("nesting too deep") from None
    if frame.count(b":") != keys:
        raise Unusual("a duplicate key, or ':' inside a string")
    return FastEnvelope(env, signal, _encode(signal))


def _copy(v: Any) -> Any:
    """A normalised copy of a Python JSON value (ints and floats as JavaScript prints them)."""
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is int:
        if -_ILIMIT < v < _ILIMIT:
            return v
        raise Unusual(v)
    if t is float:
        if v.is_integer():
            if -_LIMIT < v < _LIMIT:
                return int(v)
        elif 1e-4 <= abs(v) < _LIMIT:
            return v
        raise Unusual(v)
    if t is dict:
        out = {}
        safe = _safe_keys
        for k, item in v.items():
            if k not in safe:
                if type(k) is not str:
                    raise Unusual(k)
                _check_key(k)
            out[k] = _copy(item)
        return out
    if t is list or t is tuple:
        return [_copy(item) for item in v]
    raise Unusual(t)


def canonical(obj: object) -> bytes:
    """``canonical_json(obj)`` for a signal a client built (Python ints and floats), the usual shapes
    without ``canonical_json``'s per-value Python writer; anything else goes to it."""
    try:
        return _encode(_copy(obj))
    except (Unusual, RecursionError, UnicodeEncodeError, msgspec.EncodeError):
        return canonical_json(obj)
