"""Canonical JSON against the shared vectors, JavaScript itself (when node is installed) and invariants."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.canonical import DuplicateKeyError, JsonError, _write, canonical_json, js_number, parse_json

VECTORS = Path("/work/shared/vectors")


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


FASTPATH = _load("fastpath_hmac.json")
NATS = _load("nats_envelope_hmac.json")


@pytest.mark.parametrize("case", FASTPATH["cases"], ids=lambda c: str(c["signal"].get("signal_id", "ping")))
def test_fastpath_cases_canonicalise_and_sign(case: dict[str, Any]) -> None:
    text = canonical_json(case["signal"])
    assert text == case["canonical"].encode()
    assert hmac.new(case["secret"].encode(), text, hashlib.sha256).hexdigest() == case["signature"]


@pytest.mark.parametrize("case", FASTPATH["raw_cases"], ids=["numbers", "escapes"])
def test_fastpath_raw_cases_from_wire_text(case: dict[str, Any]) -> None:
    text = canonical_json(parse_json(case["raw_signal_text"].encode()))
    assert text == case["canonical"].encode()
    assert hmac.new(case["secret"].encode(), text, hashlib.sha256).hexdigest() == case["signature"]


@pytest.mark.parametrize("case", NATS["cases"])
def test_nats_envelope_string_to_sign(case: dict[str, Any]) -> None:
    payload = canonical_json(case["payload"]).decode()
    string_to_sign = f"{case['ts']}.{case['nonce']}.{payload}"
    assert string_to_sign == case["string_to_sign"]
    digest = hmac.new(case["secret"].encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    assert digest == case["sig"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1e5, "100000"),
        (1e-7, "1e-7"),
        (9.9e-7, "9.9e-7"),
        (0.000001, "0.000001"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (12345678901234567890.0, "12345678901234567000"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-2.5, "-2.5"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (1.5e-10, "1.5e-10"),
        (123.456, "123.456"),
        (math.inf, "Infinity"),
        (math.nan, "NaN"),
    ],
)
def test_js_number_known_values(value: float, expected: str) -> None:
    assert js_number(value) == expected


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
        (
            {"10": 0, "2": 0, "a": 0, "01": 0, "4294967295": 0, "4294967294": 0},
            '{"2":0,"10":0,"4294967294":0,"01":0,"4294967295":0,"a":0}',
        ),
        ({"\uff61": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\uff61":1}'),  # UTF-16 order, not code points
        (['\x00\x1f\b\f\n\r\t"\\/\x7f'], '["\\u0000\\u001f\\b\\f\\n\\r\\t\\"\\\\/\x7f"]'),
        ("\ud800", '"\\ud800"'),
        ([{"b": [], "a": {}}, None, True, False], '[{"a":{},"b":[]},null,true,false]'),
        (3, "3"),
    ],
)
def test_canonical_json_ordering_and_escapes(obj: object, expected: str) -> None:
    assert canonical_json(obj) == expected.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b'{"a":1,"a":2}', DuplicateKeyError),
        (b'{"x":[{"k":1,"k":1}]}', DuplicateKeyError),
        (b'{"a":NaN}', JsonError),
        (b"[Infinity]", JsonError),
        (b"\xff{}", JsonError),
        (b'{"a":"\xc3"}', JsonError),
        (b'{"a":1', JsonError),
        (b'{"a":"\x01"}', JsonError),
        (b"[" * 100_000, JsonError),
        (b"", JsonError),
        (b"{} {}", JsonError),
    ],
)
def test_parse_json_rejects(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_json(data)


def test_parse_json_numbers_are_doubles() -> None:
    parsed = parse_json(b'{"i":12345678901234567890,"z":-0,"f":1.0}')
    assert parsed == {"i": 12345678901234567890.0, "z": 0.0, "f": 1.0}
    assert isinstance(parsed, dict)
    assert all(isinstance(v, float) for v in parsed.values())


finite_floats = st.floats(allow_nan=False, allow_infinity=False)


@given(finite_floats)
def test_js_number_round_trips(x: float) -> None:
    text = js_number(x)
    assert float(text) == x
    assert "e" not in text or ("e+" in text or "e-" in text)
    assert not text.endswith(".0")


json_values = st.recursive(
    st.none() | st.booleans() | finite_floats | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_is_a_fixed_point_of_parse(value: object) -> None:
    text = canonical_json(value)
    assert canonical_json(parse_json(text)) == text


def _reference(value: object) -> bytes:
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8", "surrogatepass")


boundary_floats = st.sampled_from(
    [1e-4, 9.999999999999999e-5, 2.0**53, 2.0**53 - 1, -(2.0**53), 1e16, 0.5, -0.0]
)
keys = st.text(max_size=6) | st.sampled_from(
    ["0", "01", "10", "4294967295", "\U0001f600", "\uff61", "\ud800"]
)
mixed_values = st.recursive(
    st.none() | st.booleans() | finite_floats | boundary_floats | st.text(max_size=8) | st.just("\ud800x"),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


@given(mixed_values)
def test_fast_path_equals_the_reference_writer(value: object) -> None:
    assert canonical_json(value) == _reference(value)


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node not installed")
@settings(max_examples=20, deadline=None)
@given(st.lists(finite_floats, min_size=1, max_size=200), st.lists(json_values, max_size=10))
def test_matches_javascript(numbers: list[float], values: list[object]) -> None:
    """JavaScript is the reference: compare number printing and whole sorted-key documents."""
    assert NODE is not None
    script = r"""
const sortKeys = v => Array.isArray(v) ? v.map(sortKeys)
  : (v && typeof v === 'object')
    ? Object.fromEntries(Object.keys(v).sort().map(k => [k, sortKeys(v[k])])) : v;
const inp = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {n: inp.n.map(x => String(x)), v: inp.v.map(x => JSON.stringify(sortKeys(x)))};
process.stdout.write(JSON.stringify(out));
"""
    payload = json.dumps({"n": numbers, "v": values})
    done = subprocess.run(
        [NODE, "-e", script], input=payload.encode(), capture_output=True, timeout=30, check=True
    )
    js = json.loads(done.stdout)
    assert js["n"] == [js_number(x) for x in numbers]
    assert js["v"] == [canonical_json(v).decode() for v in values]
