"""Framers and the whole frame → verdict path under arbitrary input (hypothesis)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from titan.ingress.envelope import BINARY_MODE_MARKER, binary_request, ndjson_request
from titan.ingress.framing import BinaryFramer, FrameError, NdjsonFramer, encode_binary_frame
from titan.ingress.protocol import RequestProcessor
from titan.ingress.replay import ReplayGuard
from titan.ingress.session import Session

from .conftest import KEY, MAX_FRAME, NOW_MS, FakeClock, prepare_signal


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@given(
    st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=20),
    st.lists(st.integers(0, 10**6)),
)
def test_ndjson_framer_is_independent_of_read_boundaries(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    framer = NdjsonFramer(max_frame=30)
    out: list[bytes | FrameError] = []
    for chunk in chunked(data, cuts):
        out += framer.feed(chunk)
    expected: list[bytes | FrameError] = []
    for line in lines:
        stripped = line[:-1] if line.endswith(b"\r") else line
        if len(stripped) > 30:
            expected.append(FrameError.TOO_LARGE)
        elif stripped:
            expected.append(stripped)
    assert out == expected
    assert framer.buffered == 0


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=20), st.lists(st.integers(0, 10**6)))
def test_binary_framer_is_independent_of_read_boundaries(bodies: list[bytes], cuts: list[int]) -> None:
    data = b"".join(encode_binary_frame(b) for b in bodies)
    framer = BinaryFramer(max_frame=50)
    out: list[bytes | FrameError] = []
    for chunk in chunked(data, cuts):
        out += framer.feed(chunk)
    assert out == bodies and framer.buffered == 0


def test_ndjson_framer_buffer_is_bounded() -> None:
    framer = NdjsonFramer(max_frame=100)
    assert framer.feed(b"x" * 60) == []
    assert framer.feed(b"x" * 60) == [FrameError.TOO_LARGE]
    for _ in range(100):  # a stream that never sends a newline never grows the buffer
        assert framer.feed(b"y" * 1000) == []
        assert framer.buffered == 0
    assert framer.feed(b"tail\n{}\n") == [b"{}"]


# --- whole-path fuzz --------------------------------------------------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_value = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)
signal_types = st.sampled_from(["PREPARE", "CONFIRM", "ABORT", "PING", "OTHER", 5, None])


@st.composite
def signals(draw: st.DrawFn) -> dict[str, Any]:
    base: dict[str, Any] = draw(
        st.sampled_from(
            [
                prepare_signal(),
                {"signal_id": "x", "signal_type": "CONFIRM", "timestamp": int(NOW_MS)},
                {"signal_type": "PING", "timestamp": int(NOW_MS)},
            ]
        )
    )
    sig = dict(base)
    sig["signal_id"] = draw(st.text(max_size=12) | json_leaf)
    if draw(st.booleans()):
        sig["signal_type"] = draw(signal_types)
    if draw(st.booleans()):
        sig["timestamp"] = draw(st.integers(int(NOW_MS) - 7000, int(NOW_MS) + 7000) | json_leaf)
    for key in draw(st.lists(st.sampled_from(sorted(sig)), max_size=2)):
        if draw(st.booleans()):
            sig.pop(key, None)
        else:
            sig[key] = draw(json_value)
    return sig


@st.composite
def ndjson_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return ndjson_request(KEY, draw(signals()), draw(st.text(max_size=8)), int(NOW_MS))[:-1]
    if kind == 1:
        return draw(st.binary(max_size=60))
    if kind == 2:
        env = draw(
            st.dictionaries(
                st.sampled_from(["signal", "signature", "correlationId", "timestamp", "x"]), json_value
            )
        )
        return json.dumps(env).encode()
    if kind == 3:
        good = ndjson_request(KEY, draw(signals()), "c", int(NOW_MS))[:-1]
        i = draw(st.integers(0, len(good) - 1))
        return good[:i] + draw(st.binary(max_size=3)) + good[i + 1 :]
    return b"{" + b"a" * draw(st.integers(MAX_FRAME - 3, MAX_FRAME + 3)) + b"}"


def _new_session() -> Session:
    guard = ReplayGuard(window_ms=5000, capacity=100_000, start_ms=0)
    return Session(RequestProcessor(KEY, guard, FakeClock()), MAX_FRAME)


def _check_ndjson(frames: list[bytes], cuts: list[int]) -> None:
    frames = [f.replace(b"\n", b" ") for f in frames]
    expected = sum(1 for f in frames if (f[:-1] if f.endswith(b"\r") else f))
    session = _new_session()
    data = b"\n" + b"".join(f + b"\n" for f in frames)
    replies = accepted = 0
    for chunk in chunked(data, cuts):
        result = session.feed(chunk)
        assert not result.close
        replies += len(result.replies)
        accepted += len(result.accepted)
        for raw in result.replies:
            assert raw.isascii() and raw.endswith(b"\n")
            assert json.loads(raw)["error"]
    assert replies + accepted == expected


def _check_binary(bodies: list[bytes], cuts: list[int]) -> None:
    session = _new_session()
    data = BINARY_MODE_MARKER + b"".join(encode_binary_frame(b) for b in bodies)
    replies = accepted = 0
    for chunk in chunked(data, cuts):
        result = session.feed(chunk)
        assert not result.close
        replies += len(result.replies)
        accepted += len(result.accepted)
        for raw in result.replies:
            assert msgspec.msgpack.decode(raw[4:])["error"]
    assert replies + accepted == len(bodies)


@st.composite
def binary_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return binary_request(KEY, draw(signals()), draw(st.text(max_size=8)), int(NOW_MS))[4:]
    if kind == 1:
        return draw(st.binary(min_size=1, max_size=60))
    good = binary_request(KEY, draw(signals()), "c", int(NOW_MS))[4:]
    i = draw(st.integers(0, len(good) - 1))
    return good[:i] + bytes([draw(st.integers(0, 255))]) + good[i + 1 :]


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOAK = settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.lists(ndjson_frames(), max_size=30), st.lists(st.integers(0, 10**6), max_size=8))
def test_ndjson_fuzz_one_verdict_per_frame(frames: list[bytes], cuts: list[int]) -> None:
    _check_ndjson(frames, cuts)


@FUZZ
@given(st.lists(binary_bodies(), max_size=30), st.lists(st.integers(0, 10**6), max_size=8))
def test_binary_fuzz_one_verdict_per_frame(bodies: list[bytes], cuts: list[int]) -> None:
    _check_binary(bodies, cuts)


# --- soak: ≥ 100 000 frames per framing, from cheap strategies (a pool of real requests, mutated) -----


def _pool_signals() -> list[dict[str, Any]]:
    ts = int(NOW_MS)
    base = [
        prepare_signal("p-1"),
        prepare_signal("p-2", metadata={"10": 1, "2": [None, True], "é": "漢字"}, velocity=1e-7),
        {"signal_id": "c-1", "signal_type": "CONFIRM", "timestamp": ts, "source": "hunter"},
        {"signal_id": "a-1", "signal_type": "ABORT", "timestamp": ts},
        {"signal_type": "PING", "timestamp": ts},
        {"signal_type": "PING", "timestamp": ts - 9000},
        {"signal_type": "WHAT", "timestamp": ts},
        {"signal_id": "", "signal_type": "CONFIRM", "timestamp": ts},
        prepare_signal("p-3", direction="UP"),
        prepare_signal("p-4", entry_zone={"min": 2, "max": 1}),
        prepare_signal("p-5", timestamp="now"),
    ]
    return base + [dict(sig, signal_id=f"{sig.get('signal_id', 'x')}-{k}") for k in range(4) for sig in base]


NDJSON_POOL = [ndjson_request(KEY, sig, f"c{i}", int(NOW_MS))[:-1] for i, sig in enumerate(_pool_signals())]
BINARY_POOL = [binary_request(KEY, sig, f"c{i}", int(NOW_MS))[4:] for i, sig in enumerate(_pool_signals())]


def _mutate(args: tuple[bytes, int, int, int]) -> bytes:
    frame, pos, value, kind = args
    i = pos % len(frame)
    if kind == 0:  # flip a byte
        return frame[:i] + bytes([value]) + frame[i + 1 :]
    if kind == 1:  # truncate
        return frame[: i + 1]
    return frame[:i] + frame[i + 1 :] if len(frame) > 1 else frame  # drop a byte


def _soak_frames(pool: list[bytes]) -> st.SearchStrategy[bytes]:
    mutated = st.tuples(st.sampled_from(pool), st.integers(0, 4096), st.integers(0, 255), st.integers(0, 2))
    return st.one_of(st.sampled_from(pool), mutated.map(_mutate), st.binary(min_size=1, max_size=40))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@SOAK
@given(
    st.lists(_soak_frames(NDJSON_POOL), min_size=40, max_size=60), st.lists(st.integers(0, 10**6), max_size=8)
)
def test_ndjson_fuzz_soak(frames: list[bytes], cuts: list[int]) -> None:
    """2 500 examples x ≥ 40 frames ≥ 100 000 frames."""
    _check_ndjson(frames, cuts)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@SOAK
@given(
    st.lists(_soak_frames(BINARY_POOL), min_size=40, max_size=60), st.lists(st.integers(0, 10**6), max_size=8)
)
def test_binary_fuzz_soak(bodies: list[bytes], cuts: list[int]) -> None:
    _check_binary(bodies, cuts)
