"""Canonical JSON exactly as JavaScript's ``JSON.stringify(normalize(obj))`` prints it (fastpath.md §6).

FastPath and NATS envelope signatures are HMACs over this text, so it must match the TypeScript
producers byte for byte: every number is an IEEE-754 double printed by ``Number.prototype.toString``,
object keys are ordered as JavaScript orders sorted keys (array-index keys first, numerically, then
the rest by UTF-16 code units), strings are escaped as ``JSON.stringify`` escapes them, no spaces.

``parse_json`` is the matching strict reader: UTF-8 only, every number becomes a float (JavaScript has
no integers), duplicate keys anywhere are an error (two parsers could disagree about what was signed).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Final

__all__ = [
    "DuplicateKeyError",
    "JsonError",
    "canonical_json",
    "js_number",
    "parse_json",
]


class JsonError(ValueError):
    """Bytes that are not one strict JSON value (bad UTF-8, bad syntax, NaN/Infinity, too deep)."""


class DuplicateKeyError(JsonError):
    """A JSON object that names the same key twice."""


# Integral doubles below 2**53 print as plain integers; this is the common case and skips the digit
# analysis below.
_EXACT_INT_LIMIT: Final = 2.0**53


def js_number(x: float) -> str:
    """``Number.prototype.toString(x)`` for a double (ECMA-262 Number::toString, radix 10)."""
    if x != x:
        return "NaN"
    if x == math.inf:
        return "Infinity"
    if x == -math.inf:
        return "-Infinity"
    if x == 0.0:
        return "0"  # also -0
    if x.is_integer() and -_EXACT_INT_LIMIT < x < _EXACT_INT_LIMIT:
        return str(int(x))
    sign = "-" if x < 0 else ""
    # repr() gives the shortest round-trip digits (same choice as JavaScript); re-layout them.
    mantissa, _, exp_text = repr(abs(x)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # n: position of the decimal point relative to the first significant digit (value = 0.d1d2... x 10^n).
    n = len(int_part) + (int(exp_text) if exp_text else 0)
    if int_part == "0":
        n -= len(frac_part) - len(frac_part.lstrip("0")) + 1
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp = ("e+" if e >= 0 else "e-") + str(abs(e))
        body = digits + exp if k == 1 else digits[0] + "." + digits[1:] + exp
    return sign + body


_ARRAY_INDEX_MAX: Final = 4294967294
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
# The C escaper for '"', backslash and U+0000-U+001F, exactly JSON.stringify's set (lowercase hex).
_encode_basestring: Final[Callable[[str], str]] = json.encoder.encode_basestring


def _array_index(key: str) -> int | None:
    """The integer value of a canonical array-index key (``"0"``, ``"10"``; not ``"01"``), else None."""
    if key.isdigit() and key.isascii() and (key == "0" or key[0] != "0") and len(key) <= 10:
        n = int(key)
        if n <= _ARRAY_INDEX_MAX:
            return n
    return None


def _ordered_keys(obj: dict[str, object]) -> list[str]:
    keys = list(obj)
    indices: list[tuple[int, str]] = []
    others: list[str] = []
    for key in keys:
        idx = _array_index(key)
        if idx is None:
            others.append(key)
        else:
            indices.append((idx, key))
    indices.sort()
    # UTF-16 code unit order; equals code point order except above U+FFFF.
    others.sort(key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    return [k for _, k in indices] + others


def _js_string(s: str) -> str:
    out = _encode_basestring(s)
    if _SURROGATE_RE.search(s) is not None:
        # A str from JSON text holds surrogates only when they were lone (pairs were combined):
        # well-formed JSON.stringify escapes them.
        out = _SURROGATE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return out


def _write(obj: object, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(_js_string(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            out.append("null")  # JSON.stringify(NaN) is null; cannot come from valid JSON text
        else:
            out.append(js_number(obj))
    elif isinstance(obj, int):
        try:
            as_double = float(obj)
        except OverflowError as exc:
            raise JsonError(f"integer too large for a double: {obj}") from exc
        out.append(js_number(as_double))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for key in _ordered_keys(obj):
            if not isinstance(key, str):
                raise JsonError(f"object key is not a string: {key!r}")
            if not first:
                out.append(",")
            first = False
            out.append(_js_string(key))
            out.append(":")
            _write(obj[key], out)
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise JsonError(f"not a JSON value: {type(obj).__name__}")


class _SlowPath(Exception):
    """The value needs the full writer (a number Python's repr prints differently, an odd key)."""


def _normalize(obj: object) -> object:
    """Keys sorted, integral doubles as ints: a tree the C ``json`` encoder prints exactly as JavaScript.

    Raises :class:`_SlowPath` for anything where that would not hold.
    """
    if isinstance(obj, str) or obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, float):
        if obj.is_integer():
            if -_EXACT_INT_LIMIT < obj < _EXACT_INT_LIMIT:
                return int(obj)
        elif 1e-4 <= abs(obj) < _EXACT_INT_LIMIT:
            return obj  # repr() and Number#toString agree here: plain notation, shortest digits
        raise _SlowPath
    if isinstance(obj, dict):
        keys = sorted(obj)
        for key in keys:
            # Digit-led keys may be array indices, non-ASCII ones may sort differently in UTF-16.
            if not key.isascii() or key[:1].isdigit():
                raise _SlowPath
        return {key: _normalize(obj[key]) for key in keys}
    if isinstance(obj, list):
        return [_normalize(item) for item in obj]
    raise _SlowPath  # ints, tuples, anything else: the full writer decides


_fast_dumps: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def canonical_json(obj: object) -> bytes:
    """UTF-8 bytes of ``JSON.stringify(normalize(obj))``: keys ordered recursively, JS numbers, compact.

    ``obj`` is what :func:`parse_json` returns (dict/list/str/float/bool/None); Python ints are
    accepted and treated as the double JavaScript would hold.
    """
    try:
        try:
            # Fast path (the usual signal): normalise in Python, print with the C encoder.
            return _fast_dumps(_normalize(obj)).encode("utf-8")
        except (_SlowPath, UnicodeEncodeError):  # UnicodeEncodeError: a lone surrogate to escape
            pass
        out: list[str] = []
        _write(obj, out)
        return "".join(out).encode("utf-8")
    except RecursionError as exc:
        raise JsonError("nesting too deep") from exc


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def _reject_constant(name: str) -> object:
    raise JsonError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_pairs,
    parse_int=float,
    parse_float=float,
    parse_constant=_reject_constant,
    strict=True,
)


def parse_json(data: bytes) -> object:
    """Strictly parse one JSON value from UTF-8 ``data``; numbers become floats as in JavaScript.

    Raises :class:`DuplicateKeyError` for a repeated key in any object, :class:`JsonError` otherwise.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError(f"invalid UTF-8 at byte {exc.start}") from exc
    try:
        return _DECODER.decode(text)
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(f"invalid JSON: {exc.msg} at char {exc.pos}") from exc
    except RecursionError as exc:
        raise JsonError("nesting too deep") from exc
    except (ValueError, OverflowError) as exc:
        raise JsonError(f"invalid JSON: {exc}") from exc
