"""The one-pass NDJSON reader (titan.ingress.fastjson) agrees with the exact path wherever it answers.

It may refuse anything (``Unusual``: the exact path then decides); where it answers, the envelope,
the signal and the canonical bytes must be what ``parse_json`` + ``canonical_json`` give, and no
frame with a duplicate key may get through it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.canonical import JsonError, canonical_json, parse_json
from titan.ingress.fastjson import Unusual, canonical, parse_request
from titan.ingress.protocol import Accepted, RequestProcessor, Verdict
from titan.ingress.replay import ReplayGuard
from titan.ingress.signing import Verifier, secret_key, sign_bytes

VECTORS = json.loads(Path("/work/shared/vectors/fastpath_hmac.json").read_text())


def _exact(frame: bytes) -> tuple[dict[str, Any], bytes]:
    env = parse_json(frame)
    assert isinstance(env, dict)
    return env, canonical_json(env["signal"])


def _agrees(frame: bytes) -> bool:
    """True when the fast reader answered (and then agreed), False when it refused."""
    try:
        fast = parse_request(frame)
    except Unusual:
        return False
    env, canonical = _exact(frame)  # the fast reader never accepts what the exact one refuses
    assert fast.canonical == canonical
    assert fast.env == env  # numbers compare by value: 90 == 90.0
    for key, value in env.items():
        if key != "signal":
            assert type(fast.env[key]) is type(value), key  # envelope numbers are doubles, as before
    assert fast.signal == env["signal"]
    return True


def _frame(signal_text: str, **extra: Any) -> bytes:
    rest = "".join(f",{json.dumps(k)}:{json.dumps(v)}" for k, v in extra.items())
    return ('{"signal":' + signal_text + ',"signature":"' + "0" * 64 + '"' + rest + "}").encode()


@pytest.mark.parametrize("case", VECTORS["cases"] + VECTORS["raw_cases"])
def test_vectors(case: dict[str, Any]) -> None:
    texts = [case["raw_signal_text"]] if "raw_signal_text" in case else []
    if "signal" in case:
        texts += [json.dumps(case["signal"]), json.dumps(case["signal"], ensure_ascii=False)]
    for text in texts:
        frame = _frame(text, correlationId="c-1", timestamp=1795917803404)
        if _agrees(frame):
            assert parse_request(frame).canonical == case["canonical"].encode()


def test_the_usual_requests_take_the_fast_path() -> None:
    prepare = (
        '{"signal_id":"sig-1","source":"scavenger","symbol":"BTCUSDT","direction":"LONG",'
        '"entry_zone":{"min":49975.0,"max":50024.99},"stop_loss":0,"take_profits":[51000.5],'
        '"confidence":90,"leverage":1,"position_size":100,"velocity":0.01,"timestamp":1795917803404,'
        '"signal_type":"PREPARE"}'
    )
    confirm = '{"signal_id":"sig-1","signal_type":"CONFIRM","timestamp":1795917803404,"source":"brain"}'
    for text in (prepare, confirm):
        assert _agrees(_frame(text, correlationId="scavenger-1795917803404-7", timestamp=1795917803404))
    assert _agrees(_frame(prepare, trace=True))


@pytest.mark.parametrize(
    "frame",
    [
        b'{"signal":{"a":1,"a":2},"signature":"x"}',
        b'{"signal":{"a":1,"b":{"c":1,"c":1}},"signature":"x"}',
        b'{"signal":{"a":[{"c":1,"c":1}]},"signature":"x"}',
        b'{"signal":{"a":1},"signature":"x","signature":"y"}',
        b'{"signal":{"a":1},"signal":{"a":1},"signature":"x"}',
        b'{"signal":{"a":"x:y","a":1},"signature":"x"}',  # a ':' in a string must not hide the duplicate
        b'{"signal":{"a":1,"a" : 2},"signature":"x"}',
        b'{"signal":{"a":1},"signature":"x","extra":{"k":1,"k":2}}',
    ],
)
def test_duplicate_keys_never_pass(frame: bytes) -> None:
    with pytest.raises(Unusual):
        parse_request(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b"{not json}",
        b'{"signal":{"a":1}',
        b"[1,2]",
        b'{"signal":"text","signature":"x"}',
        b'{"signal":{"a":NaN},"signature":"x"}',
        b'{"signal":{"a":1e400},"signature":"x"}',
        b'{"signal":{"a":"\\ud800"},"signature":"x"}',  # lone surrogate: canonical_json escapes it
        b'{"signal":{"a":"\xff"},"signature":"x"}',
        b'{"signal":{"a":1e-7},"signature":"x"}',  # exponent notation in JavaScript
        b'{"signal":{"a":12345678901234567890},"signature":"x"}',
        b'{"signal":{"10":1},"signature":"x"}',  # array-index key: JavaScript orders it first
        b'{"signal":{"\xc3\xa9":1},"signature":"x"}',  # non-ASCII key
        b'{"signal":{"a":"b:c"},"signature":"x"}',  # ':' in a string: not provably duplicate-free
        b'{"signal":{"a":1},"signature":"x","timestamp":12345678901234567890}',
    ],
)
def test_unusual_frames_take_the_exact_path(frame: bytes) -> None:
    with pytest.raises(Unusual):
        parse_request(frame)


_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(signal=st.dictionaries(st.text(max_size=8), _json, max_size=6), ascii_only=st.booleans())
def test_generated_frames_agree(signal: dict[str, Any], ascii_only: bool) -> None:
    text = json.dumps(signal, ensure_ascii=ascii_only)
    frame = _frame(text, correlationId="c", timestamp=1795917803404.5)
    try:
        parse_json(frame)
    except JsonError:
        with pytest.raises(Unusual):
            parse_request(frame)
        return
    _agrees(frame)


@settings(max_examples=200, deadline=None)
@given(signal=st.dictionaries(st.sampled_from("abc"), _scalar, min_size=1, max_size=3), dup=st.data())
def test_generated_duplicates_never_pass(signal: dict[str, Any], dup: st.DataObject) -> None:
    key = dup.draw(st.sampled_from(sorted(signal)))
    body = json.dumps(signal)[1:-1]
    text = "{" + body + "," + json.dumps(key) + ":" + json.dumps(dup.draw(_scalar)) + "}"
    with pytest.raises(Unusual):
        parse_request(_frame(text))


def test_verdicts_equal_with_and_without_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    key = secret_key("s")
    now = 1795917803404.0
    signals = [
        {"signal_id": "a", "signal_type": "CONFIRM", "timestamp": now},
        {"signal_id": "b", "signal_type": "PREPARE", "timestamp": now, "source": "brain"},  # incomplete
        {"signal_id": "c", "signal_type": "NOPE", "timestamp": now},
        {"signal_type": "PING", "timestamp": now},
        {"signal_id": "d", "signal_type": "CONFIRM", "timestamp": now - 10**7},  # out of the window
    ]
    frames = [
        json.dumps(
            {"signal": s, "signature": sign_bytes(key, canonical_json(s)).hex(), "correlationId": f"c{i}"}
        ).encode()
        for i, s in enumerate(signals)
    ]
    frames.append(frames[0])  # a replay
    frames.append(frames[1].replace(b'"b"', b'"B"'))  # tampered

    def run() -> list[Verdict]:
        guard = ReplayGuard(window_ms=5000, capacity=100, start_ms=0.0)
        proc = RequestProcessor(key, guard, lambda: now)
        return [proc.process_json(f) for f in frames]

    fast = run()

    def refuse(frame: bytes) -> None:
        raise Unusual("test")

    monkeypatch.setattr("titan.ingress.protocol.parse_request", refuse)
    exact = run()
    assert [type(v) for v in fast] == [type(v) for v in exact]
    assert fast == exact
    assert sum(isinstance(v, Accepted) for v in fast) == 2


@pytest.mark.parametrize(
    "key", [b"", b"k", b"integration-test-secret", bytes(range(64)), b"x" * 65, b"y" * 200]
)
def test_verifier_matches_hmac(key: bytes) -> None:
    verifier = Verifier(key)
    for message in (b"", b"m", b"x" * 1000):
        digest = hmac.digest(key, message, hashlib.sha256)
        assert verifier.digest(message) == digest
        assert verifier.verify(message, digest)
        assert not verifier.verify(message, bytes(32))


@settings(max_examples=400, deadline=None)
@given(signal=st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_client_canonical_equals_canonical_json(signal: dict[str, Any]) -> None:
    """What a client signs (Python ints and floats as built, not parsed) is canonical_json's text."""
    before = json.dumps(signal)
    assert canonical(signal) == canonical_json(signal)
    assert json.dumps(signal) == before  # the caller's dict is not touched


@pytest.mark.parametrize("case", VECTORS["cases"])
def test_client_canonical_vectors(case: dict[str, Any]) -> None:
    assert canonical(case["signal"]) == case["canonical"].encode()
    assert canonical((1, 2.5, -0.0)) == canonical_json((1, 2.5, -0.0)) == b"[1,2.5,0]"
