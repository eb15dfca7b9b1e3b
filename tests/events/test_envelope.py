from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.canonical import canonical_json
from titan.events import envelope as env_mod
from titan.events.envelope import (
    EnvelopeVerifier,
    Malformed,
    SignedEnvelope,
    Unsigned,
    correlation_id,
    parse_envelope,
    serde_form,
    sign,
)
from titan.events.replay import ReplayCache

from .helpers import NOW_MS, SECRET, envelope_dict, intent_payload

VECTORS = json.loads(Path("/work/shared/vectors/nats_envelope_hmac.json").read_text())["cases"]


def _envelope(obj: dict[str, Any]) -> SignedEnvelope:
    parsed = parse_envelope(obj)
    assert isinstance(parsed, SignedEnvelope)
    return parsed


@pytest.mark.parametrize("case", VECTORS)
def test_vector_string_to_sign_and_signature(case: dict[str, Any]) -> None:
    canonical = canonical_json(case["payload"])
    assert f"{case['ts']}.{case['nonce']}.".encode() + canonical == case["string_to_sign"].encode()
    assert sign(case["secret"], case["ts"], case["nonce"], canonical) == case["sig"]


@pytest.mark.parametrize("case", VECTORS)
@pytest.mark.parametrize("upper", [False, True])
def test_vector_verifies(case: dict[str, Any], upper: bool) -> None:
    sig = case["sig"].upper() if upper else case["sig"]
    obj = {"type": "t", "version": 1, "producer": "p", "ts": case["ts"], "nonce": case["nonce"], "sig": sig}
    obj["payload"] = case["payload"]
    verifier = EnvelopeVerifier({"default": case["secret"]})
    assert verifier.verify(_envelope(obj), now_ms=case["ts"]).ok


@pytest.mark.parametrize("case", VECTORS)
@pytest.mark.parametrize(
    "tamper",
    [
        lambda o: o["payload"].__setitem__("size", 0.2),
        lambda o: o.__setitem__("nonce", "abc124"),
        lambda o: o.__setitem__("ts", o["ts"] + 1),
        lambda o: o.__setitem__("sig", ("0" if o["sig"][0] != "0" else "1") + o["sig"][1:]),
    ],
    ids=["payload", "nonce", "ts", "sig"],
)
def test_tampered_vector_fails(case: dict[str, Any], tamper: Any) -> None:
    obj = {
        "type": "t",
        "version": 1,
        "producer": "p",
        "ts": case["ts"],
        "nonce": case["nonce"],
        "sig": case["sig"],
    }
    obj["payload"] = json.loads(json.dumps(case["payload"]))
    tamper(obj)
    result = EnvelopeVerifier({"default": case["secret"]}).verify(_envelope(obj), now_ms=case["ts"])
    assert not result.ok
    assert result.error == "Signature mismatch."


def _verify(obj: dict[str, Any], secrets: dict[str, str] | None = None, now: int = NOW_MS) -> str | None:
    verifier = EnvelopeVerifier({"default": SECRET} if secrets is None else secrets, tolerance_s=300)
    return verifier.verify(_envelope(obj), now_ms=now).error


def test_error_strings_in_upstream_order() -> None:
    good = envelope_dict(intent_payload())
    assert _verify(good) is None
    # No secret configured wins over everything else, even a missing signature.
    assert _verify({**good, "sig": None}, secrets={"default": ""}) == env_mod.ERR_NO_SECRET
    assert _verify({**good, "sig": None, "nonce": None}) == "Missing signature"
    assert _verify({**good, "nonce": None, "ts": None}) == "Missing nonce"
    assert _verify({**good, "ts": None}) == "Missing timestamp"
    late = NOW_MS + 300_001
    assert _verify({**good, "sig": "zz"}, now=late) == (
        "Timestamp out of tolerance range (diff: 300001ms, tolerance: 300000ms)"
    )
    assert _verify({**good, "sig": "zz"}) == "Invalid hex signature"
    assert _verify({**good, "sig": "ab" * 31}) == "Invalid hex signature"
    assert _verify({**good, "sig": "g" * 64}) == "Invalid hex signature"
    assert _verify({**good, "producer": "someone"}) is None  # producer is not signed
    assert _verify({**good, "sig": "ab" * 32}) == "Signature mismatch."


@pytest.mark.parametrize("offset", [-300_000, 0, 300_000])
def test_tolerance_boundary_is_inclusive(offset: int) -> None:
    assert _verify(envelope_dict(intent_payload()), now=NOW_MS + offset) is None


def test_key_id_selects_secret_and_unknown_key_is_mismatch() -> None:
    secrets = {"default": SECRET, "k2": "rotated-secret"}
    rotated = envelope_dict(intent_payload(), secret="rotated-secret", key_id="k2")
    assert _verify(rotated, secrets=secrets) is None
    assert _verify({**rotated, "key_id": "default"}, secrets=secrets) == "Signature mismatch."
    assert _verify({**rotated, "key_id": "nope"}, secrets=secrets) == "Signature mismatch."


def test_serde_number_forms_only_when_enabled() -> None:
    payload = intent_payload(size=0.000002)
    serde_canonical = serde_form(canonical_json(payload))
    assert b'"size":2e-6' in serde_canonical
    obj = envelope_dict(payload)
    obj["sig"] = sign(SECRET, NOW_MS, obj["nonce"], serde_canonical)
    assert _verify(obj) == "Signature mismatch."
    verifier = EnvelopeVerifier({"default": SECRET}, accept_serde_number_forms=True)
    result = verifier.verify(_envelope(obj), now_ms=NOW_MS)
    assert result.ok and result.serde_form


@pytest.mark.parametrize(
    ("js", "serde"),
    [
        (b'{"a":0.000001}', b'{"a":1e-6}'),
        (b'{"a":0.0000015}', b'{"a":1.5e-6}'),
        (b'{"a":0.00001}', b'{"a":0.00001}'),
        (b'{"a":100000000000000000000}', b'{"a":1e20}'),
        (b'{"a":1e+21}', b'{"a":1e21}'),
        (b'{"a":12345678901234567000}', b'{"a":12345678901234567000}'),
        (b'{"a":"0.000001","b":[-0.000002]}', b'{"a":"0.000001","b":[-2e-6]}'),
    ],
)
def test_serde_form_rewrites_only_numbers(js: bytes, serde: bytes) -> None:
    assert serde_form(js) == serde


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"type": "x"}, Unsigned),
        ({"payload": {}}, Unsigned),
        ([1, 2], Unsigned),
        ({"type": "x", "payload": {}, "version": 1}, Malformed),
        ({"type": "x", "payload": {}, "producer": "p"}, Malformed),
        ({"type": 1, "payload": {}, "producer": "p", "version": 1}, Malformed),
        ({"type": "x", "payload": {}, "producer": "p", "version": "1"}, Malformed),
        ({"type": "x", "payload": {}, "producer": "p", "version": 1.5}, Malformed),
        ({"type": "x", "payload": {}, "producer": "p", "version": 1, "ts": "1"}, Malformed),
        ({"type": "x", "payload": {}, "producer": "p", "version": 1, "nonce": 5}, Malformed),
        ({"type": "x", "payload": {}, "producer": "p", "version": 1.0, "unknown": 1}, SignedEnvelope),
    ],
)
def test_parse_envelope_shapes(obj: object, expected: type) -> None:
    assert isinstance(parse_envelope(obj), expected)


@pytest.mark.parametrize(
    ("env_corr", "payload", "expected"),
    [
        ("c-1", {"signal_id": "s", "metadata": {"correlation_id": "m"}}, "c-1"),
        (None, {"signal_id": "s", "metadata": {"correlation_id": "m"}}, "m"),
        (None, {"signal_id": "s", "metadata": {}}, "s"),
        (None, {}, None),
    ],
)
def test_correlation_id_rule(env_corr: str | None, payload: object, expected: str | None) -> None:
    assert correlation_id(env_corr, payload) == expected


def test_replay_cache_window_and_redelivery() -> None:
    cache = ReplayCache(tolerance_ms=1000)
    assert cache.check_and_record("n", owner="seq1", ts_ms=0, now_ms=0)
    assert cache.check_and_record("n", owner="seq1", ts_ms=0, now_ms=500)  # redelivery of same message
    assert not cache.check_and_record("n", owner="seq2", ts_ms=0, now_ms=1000)  # replay
    assert cache.check_and_record("n", owner="seq3", ts_ms=1001, now_ms=1001)  # first one left the window
    assert len(cache) == 1


@given(st.lists(st.tuples(st.text(max_size=3), st.integers(0, 10_000)), max_size=200))
def test_replay_cache_is_bounded(entries: list[tuple[str, int]]) -> None:
    cache = ReplayCache(tolerance_ms=100, max_entries=16)
    now = 0
    for key, step in entries:
        now += step % 50
        cache.record(key, "o", ts_ms=now, now_ms=now)
        assert len(cache) <= 16
