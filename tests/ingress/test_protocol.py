"""Frame bytes in → one verdict out: vectors through the server path, every §11 code, replay, replies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from titan.ingress import codes
from titan.ingress.envelope import BINARY_MODE_MARKER, binary_request, ndjson_request
from titan.ingress.framing import encode_binary_frame
from titan.ingress.protocol import Accepted
from titan.ingress.session import Session
from titan.ingress.signals import AbortSignal, ConfirmSignal, PingSignal, PrepareSignal, to_intent
from titan.ingress.signing import sign_signal

from .conftest import KEY, MAX_FRAME, NOW_MS, FakeClock, prepare_signal

VECTORS: dict[str, Any] = json.loads(Path("/work/shared/vectors/fastpath_hmac.json").read_text())


def replies_of(session: Session, data: bytes) -> list[dict[str, Any]]:
    result = session.feed(data)
    assert not result.accepted
    return [json.loads(r) for r in result.replies]


def one_error(session: Session, data: bytes) -> dict[str, Any]:
    replies = replies_of(session, data)
    assert len(replies) == 1
    reply = replies[0]
    assert reply["rejected"] is True and reply["error"] == reply["reason"]
    assert isinstance(reply["timestamp"], int) and isinstance(reply["server_time"], int)
    return reply


def frame(signal: dict[str, Any], corr: str = "c-1", **envelope: Any) -> bytes:
    return ndjson_request(KEY, signal, corr, int(NOW_MS)) if not envelope else _custom(signal, corr, envelope)


def _custom(signal: dict[str, Any], corr: str, envelope: dict[str, Any]) -> bytes:
    env: dict[str, Any] = {"signal": signal, "signature": sign_signal(KEY, signal), "correlationId": corr}
    env.update(envelope)
    return json.dumps({k: v for k, v in env.items() if v is not ...}).encode() + b"\n"


# --- vectors through the server path -------------------------------------------------------


def _vector_frame(wire_signal: str, signature: str) -> bytes:
    return (
        b'{"signal":'
        + wire_signal.encode()
        + b',"signature":"'
        + signature.encode()
        + b'","correlationId":"v"}\n'
    )


ALL_VECTORS = [(json.dumps(c["signal"], ensure_ascii=False), c["signature"]) for c in VECTORS["cases"]] + [
    (c["raw_signal_text"], c["signature"]) for c in VECTORS["raw_cases"]
]


@pytest.mark.parametrize(("wire_signal", "signature"), ALL_VECTORS)
@pytest.mark.parametrize("upper", [False, True])
def test_vectors_authenticate_through_the_server_path(
    make_session: Callable[..., Session], clock: FakeClock, wire_signal: str, signature: str, upper: bool
) -> None:
    clock.now_ms = json.loads(wire_signal)["timestamp"]
    session = make_session()
    result = session.feed(_vector_frame(wire_signal, signature.upper() if upper else signature))
    stats = session.processor.stats
    assert stats.invalidSignatures == 0 and stats.replaysRejected == 0
    if result.accepted:
        assert result.accepted[0].correlation_id == "v"
    else:  # authenticated, but a vector that is not a complete signal of its type
        (reply,) = (json.loads(r) for r in result.replies)
        assert reply["reason"] == codes.INVALID_SIGNAL and reply["correlationId"] == "v"


@pytest.mark.parametrize(("wire_signal", "signature"), ALL_VECTORS)
def test_tampered_vectors_are_rejected(
    clock: FakeClock, session: Session, wire_signal: str, signature: str
) -> None:
    clock.now_ms = json.loads(wire_signal)["timestamp"]
    bad = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    reply = one_error(session, _vector_frame(wire_signal, bad))
    assert reply["reason"] == codes.INVALID_SIGNATURE and reply["correlationId"] == "v"
    assert session.processor.stats.invalidSignatures == 1


def test_complete_vectors_are_accepted(clock: FakeClock, session: Session) -> None:
    accepted: list[Accepted] = []
    for wire_signal, signature in ALL_VECTORS:
        clock.now_ms = json.loads(wire_signal)["timestamp"]
        accepted += session.feed(_vector_frame(wire_signal, signature)).accepted
    kinds = sorted(type(a.signal).__name__ for a in accepted)
    # Not accepted (all authenticated, see above): "test" and "raw-1" are PREPAREs without the required
    # fields; "raw-2 é\n" has a control character in its signal_id.
    assert kinds == [
        "AbortSignal",
        "ConfirmSignal",
        "PingSignal",
        "PrepareSignal",
        "PrepareSignal",
        "PrepareSignal",
    ]


# --- the acceptance list of issue #3 ---------------------------------------------------------

SIG = prepare_signal()


@pytest.mark.parametrize(
    ("data", "code", "message", "corr"),
    [
        (b"{not json}\n", codes.IPC_ERROR, codes.MSG_INVALID_JSON, None),
        (b'{"a":1\n', codes.IPC_ERROR, codes.MSG_INVALID_JSON, None),
        (b" [1,2]\n", codes.IPC_ERROR, codes.MSG_NOT_AN_OBJECT, None),
        (b'{"correlationId":"x","correlationId":"y"}\n', codes.IPC_ERROR, codes.MSG_DUPLICATE_KEY, None),
        (
            b'{"signal":{"a":1,"b":{"a":1,"a":2}},"signature":"00"}\n',
            codes.IPC_ERROR,
            codes.MSG_DUPLICATE_KEY,
            None,
        ),
        (b'{"x":"\xff\xfe"}\n', codes.IPC_ERROR, codes.MSG_INVALID_JSON, None),
        (b'{"signature":"' + b"0" * 64 + b'","correlationId":"c"}\n', codes.INVALID_SIGNATURE, None, "c"),
        (b'{"signal":{},"correlationId":"c"}\n', codes.INVALID_SIGNATURE, None, "c"),
        (b'{"signal":{},"signature":"abc","correlationId":"c"}\n', codes.INVALID_SIGNATURE, None, "c"),
        (
            b'{"signal":{},"signature":"' + b"g" * 64 + b'","correlationId":"c"}\n',
            codes.INVALID_SIGNATURE,
            None,
            "c",
        ),
        (
            b'{"signal":{},"signature":"' + b"0" * 65 + b'","correlationId":"c"}\n',
            codes.INVALID_SIGNATURE,
            None,
            "c",
        ),
        (
            b'{"signal":{},"signature":"' + b"0" * 64 + b'","correlationId":"c"}\n',
            codes.INVALID_SIGNATURE,
            None,
            "c",
        ),
        (b'{"signal":[],"signature":"' + b"0" * 64 + b'","correlationId":"c"}\n', codes.IPC_ERROR, None, "c"),
        (b'{"signal":{},"signature":7,"correlationId":"c"}\n', codes.IPC_ERROR, None, "c"),
        (b'{"signal":{},"signature":"x","correlationId":7}\n', codes.IPC_ERROR, None, None),
        (
            b'{"signal":{},"signature":"x","correlationId":"c","timestamp":"now"}\n',
            codes.IPC_ERROR,
            None,
            "c",
        ),
    ],
)
def test_bad_frames_get_their_reply(
    session: Session, data: bytes, code: str, message: str | None, corr: str | None
) -> None:
    reply = one_error(session, data)
    assert reply["reason"] == code
    if message is not None:
        assert reply["message"] == message
    assert reply.get("correlationId") == corr
    assert len(session.processor.replay) == 0


def test_unknown_signal_type_is_echoed(session: Session) -> None:
    reply = one_error(session, frame({"signal_type": "EXPLODE", "timestamp": int(NOW_MS)}))
    assert reply["reason"] == codes.UNKNOWN_SIGNAL_TYPE and reply["signal_type"] == "EXPLODE"
    assert reply["correlationId"] == "c-1"


def test_envelope_timestamp_is_echoed_and_extra_keys_ignored(session: Session) -> None:
    data = frame({"signal_type": "EXPLODE", "timestamp": int(NOW_MS)}, timestamp=1234, extra={"x": 1})
    reply = one_error(session, data)
    assert reply["timestamp"] == 1234 and reply["server_time"] == int(NOW_MS)


def test_oversized_line_keeps_the_connection(session: Session) -> None:
    big = b'{"pad":"' + b"x" * (MAX_FRAME + 10) + b'"}\n'
    replies = replies_of(session, big[:100]) + replies_of(session, big[100:] + b"{}\n")
    assert [r["reason"] for r in replies] == [codes.FRAME_TOO_LARGE, codes.INVALID_SIGNATURE]
    result = session.feed(frame(prepare_signal()))
    assert len(result.accepted) == 1


def test_line_at_the_limit_is_processed(session: Session) -> None:
    line = b'{"p":"' + b"x" * (MAX_FRAME - 8) + b'"}'
    assert len(line) == MAX_FRAME
    (reply,) = replies_of(session, line + b"\r\n")
    assert reply["reason"] == codes.INVALID_SIGNATURE


def test_empty_lines_and_crlf_are_tolerated(session: Session) -> None:
    data = b"\n\r\n" + frame(prepare_signal("a"))[:-1] + b"\r\n\n"
    result = session.feed(data)
    assert len(result.accepted) == 1 and not result.replies


@pytest.mark.parametrize("first", [b"G", b"\x00", b"\xff", b"["])
def test_unknown_framing_replies_and_closes(session: Session, first: bytes) -> None:
    result = session.feed(first + b"ET / HTTP/1.1\r\n")
    assert result.close and len(result.replies) == 1
    assert json.loads(result.replies[0])["message"] == codes.MSG_UNKNOWN_FRAMING
    assert session.feed(frame(prepare_signal())).accepted == []


def test_replayed_frame_is_rejected_and_changes_nothing(session: Session) -> None:
    data = frame(prepare_signal())
    assert len(session.feed(data).accepted) == 1
    cached = len(session.processor.replay)
    reply = one_error(session, data)
    assert reply["reason"] == codes.REPLAY_DETECTED and reply["correlationId"] == "c-1"
    assert len(session.processor.replay) == cached
    assert session.processor.stats.replaysRejected == 1


@pytest.mark.parametrize("offset_ms", [-5001, 5001, -60_000])
def test_timestamp_outside_window(session: Session, offset_ms: int) -> None:
    reply = one_error(session, frame(prepare_signal(ts=NOW_MS + offset_ms)))
    assert reply["reason"] == codes.TIMESTAMP_OUT_OF_WINDOW and reply["signal_id"] == "sig-1"


def test_restart_floor(make_session: Callable[..., Session]) -> None:
    session = make_session(start_ms=NOW_MS)
    reply = one_error(session, frame(prepare_signal(ts=NOW_MS - 51)))
    assert reply["reason"] == codes.TIMESTAMP_OUT_OF_WINDOW
    assert len(session.feed(frame(prepare_signal(ts=NOW_MS - 50))).accepted) == 1


def test_ping_is_exempt_from_the_cache_not_the_window(session: Session) -> None:
    ping = frame({"signal_type": "PING", "timestamp": int(NOW_MS)})
    assert len(session.feed(ping + ping).accepted) == 2
    old = frame({"signal_type": "PING", "timestamp": int(NOW_MS) - 6000})
    assert one_error(session, old)["reason"] == codes.TIMESTAMP_OUT_OF_WINDOW


def test_cache_full_fails_closed_then_recovers(
    make_session: Callable[..., Session], clock: FakeClock
) -> None:
    session = make_session(capacity=2)
    assert len(session.feed(frame(prepare_signal("a")) + frame(prepare_signal("b"))).accepted) == 2
    assert one_error(session, frame(prepare_signal("c")))["reason"] == codes.REPLAY_CACHE_FULL
    clock.now_ms += 7000  # both entries left the window (+margin)
    assert len(session.feed(frame(prepare_signal("c", ts=clock.now_ms))).accepted) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"direction": "UP"},
        {"source": "unknown-phase"},
        {"entry_zone": {"min": 50100, "max": 50000}},
        {"entry_zone": {"min": 0, "max": 1}},
        {"entry_zone": [1, 2]},
        {"stop_loss": -1},
        {"leverage": 0},
        {"confidence": 101},
        {"confidence": True},
        {"take_profits": [1, "2"]},
        {"symbol": 5},
        {"signal_id": " "},
        {"signal_id": "x" * 129},
        {"signal_id": "a\u0007b"},
        {"position_size": "100"},
        {"metadata": None, "velocity": "fast"},
        {"symbol": None},
    ],
)
def test_invalid_prepare_fields(session: Session, overrides: dict[str, Any]) -> None:
    reply = one_error(session, frame(prepare_signal(**overrides)))
    assert reply["reason"] == codes.INVALID_SIGNAL


@pytest.mark.parametrize("timestamp", ["1795917803500", None, True])
def test_signal_timestamp_must_be_a_number(session: Session, timestamp: object) -> None:
    sig = prepare_signal()
    sig["timestamp"] = timestamp
    assert one_error(session, frame(sig))["reason"] == codes.INVALID_SIGNAL


def test_typed_signals_and_intent_mapping(session: Session) -> None:
    ts = int(NOW_MS)
    data = (
        frame(prepare_signal("p", stop_loss=1e-7, take_profits=[], position_size=250.5, metadata={"k": [1]}))
        + frame({"signal_id": "p", "signal_type": "CONFIRM", "timestamp": ts, "source": "hunter"})
        + frame({"signal_id": "p", "signal_type": "ABORT", "timestamp": ts + 1, "source": "sentinel"})
        + frame({"signal_type": "PING", "timestamp": ts})
    )
    signals = [a.signal for a in session.feed(data).accepted]
    assert [type(s) for s in signals] == [PrepareSignal, ConfirmSignal, AbortSignal, PingSignal]
    prepare = signals[0]
    assert isinstance(prepare, PrepareSignal)
    intent = to_intent(prepare)
    assert intent.direction == 1 and intent.intent_type == "BUY_SETUP"
    assert intent.entry_zone == ["50000", "50100"] and intent.stop_loss == "0.0000001"
    assert intent.position_size == "250.5" and intent.t_signal_ms == ts


def test_replies_are_ascii_only(session: Session) -> None:
    sig = {"signal_type": "NOPE", "signal_id": "é漢😀", "timestamp": int(NOW_MS)}
    raw = session.feed(frame(sig, corr="ü")).replies[0]
    assert raw.isascii() and raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert b"\\u00fc" in raw and b"\\ud83d\\ude00" in raw
    reply = json.loads(raw)
    assert reply["correlationId"] == "ü" and reply["signal_id"] == "é漢😀"


# --- binary framing ------------------------------------------------------------------------


def binary_replies(session: Session, data: bytes) -> list[dict[str, Any]]:
    result = session.feed(data)
    out = []
    for raw in result.replies:
        assert int.from_bytes(raw[:4], "big") == len(raw) - 4
        out.append(msgspec.msgpack.decode(raw[4:]))
    return out


def test_binary_round_trip(session: Session) -> None:
    data = BINARY_MODE_MARKER + binary_request(KEY, prepare_signal("b1"), "1", int(NOW_MS))
    data += binary_request(KEY, {"signal_type": "PING", "timestamp": int(NOW_MS)}, "2", int(NOW_MS))
    accepted: list[Accepted] = []
    for i in range(len(data)):  # byte at a time: framing must not care about read boundaries
        accepted += session.feed(data[i : i + 1]).accepted
    assert [a.correlation_id for a in accepted] == ["1", "2"]
    assert isinstance(accepted[0].signal, PrepareSignal) and accepted[0].signal.signal_id == "b1"


def test_binary_replay_and_bad_signature(session: Session) -> None:
    req = binary_request(KEY, prepare_signal("b2"), "7", int(NOW_MS))
    assert len(session.feed(BINARY_MODE_MARKER + req).accepted) == 1
    (reply,) = binary_replies(session, req)
    assert reply["reason"] == codes.REPLAY_DETECTED and reply["correlationId"] == "7"
    forged = binary_request(b"other-key", prepare_signal("b3"), "8", int(NOW_MS))
    (reply,) = binary_replies(session, forged)
    assert reply["reason"] == codes.INVALID_SIGNATURE and reply["correlationId"] == "8"


@pytest.mark.parametrize(
    ("body", "code", "corr"),
    [
        (b"\xc1", codes.IPC_ERROR, None),
        (msgspec.msgpack.encode([1, 2]), codes.IPC_ERROR, None),
        (msgspec.msgpack.encode({"correlationId": "k"}) + b"\x00", codes.IPC_ERROR, None),
        (msgspec.msgpack.encode({"correlationId": "k"}), codes.INVALID_SIGNATURE, "k"),
        (
            msgspec.msgpack.encode({"correlationId": "k", "signal": "str", "signature": b"x"}),
            codes.IPC_ERROR,
            "k",
        ),
        (
            msgspec.msgpack.encode({"correlationId": "k", "signal": b"\x90", "signature": b"short"}),
            codes.INVALID_SIGNATURE,
            "k",
        ),
    ],
)
def test_binary_bad_bodies_keep_the_connection(
    session: Session, body: bytes, code: str, corr: str | None
) -> None:
    result = session.feed(BINARY_MODE_MARKER + encode_binary_frame(body))
    assert not result.close
    (reply,) = (msgspec.msgpack.decode(r[4:]) for r in result.replies)
    assert reply["reason"] == code and reply.get("correlationId") == corr


@pytest.mark.parametrize(
    ("length", "code"),
    [(0, codes.IPC_ERROR), (MAX_FRAME + 1, codes.FRAME_TOO_LARGE), (2**32 - 1, codes.FRAME_TOO_LARGE)],
)
def test_binary_bad_length_replies_then_closes(session: Session, length: int, code: str) -> None:
    result = session.feed(BINARY_MODE_MARKER + length.to_bytes(4, "big") + b"x" * 10)
    assert result.close
    (reply,) = (msgspec.msgpack.decode(r[4:]) for r in result.replies)
    assert reply["reason"] == code


def test_half_frame_yields_nothing(session: Session) -> None:
    req = binary_request(KEY, prepare_signal("h"), "1", int(NOW_MS))
    result = session.feed(BINARY_MODE_MARKER + req[:-3])
    assert not result.replies and not result.accepted and not result.close


def test_half_line_yields_nothing(session: Session) -> None:
    result = session.feed(frame(prepare_signal("h"))[:-1])
    assert not result.replies and not result.accepted and not result.close
