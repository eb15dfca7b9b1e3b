"""The real `ingress` process over its real Unix socket (fake core thread on real rings)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from titan.client import FastPathClient, FastPathError, FastPathTimeout
from titan.ingress import codes
from titan.ingress.envelope import BINARY_MODE_MARKER, binary_request, ndjson_request
from titan.ingress.signing import secret_key
from titan.messages import Prepare, Reply, Stages
from titan.procs.ingress import COUNTER_NAMES, PUSH_REQ, prepare_socket_path

from .harness import SECRET, IngressRun, run_ingress, wait_for

KEY = secret_key(SECRET)
VECTORS: dict[str, Any] = json.loads(Path("/work/shared/vectors/fastpath_hmac.json").read_text())
DEADLINE_MS = 1500

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ingress_run() -> Iterator[IngressRun]:
    with run_ingress(
        ring_slots=64, max_connections=600, core_reply_timeout_ms=DEADLINE_MS, max_output_bytes=65536
    ) as run:
        yield run


@pytest.fixture
def ing(ingress_run: IngressRun) -> Iterator[IngressRun]:
    ingress_run.core.reset()
    yield ingress_run
    ingress_run.core.reset()


def now_ms() -> int:
    return int(time.time() * 1000)


def prepare(sid: str, ts: int | None = None) -> dict[str, Any]:
    return {
        "signal_id": sid,
        "source": "scavenger",
        "symbol": "BTCUSDT",
        "direction": "LONG",
        "entry_zone": {"min": 50000, "max": 50100},
        "stop_loss": 49000,
        "take_profits": [51000],
        "confidence": 95,
        "leverage": 20,
        "timestamp": now_ms() if ts is None else ts,
        "signal_type": "PREPARE",
    }


def ping(ts: int | None = None) -> dict[str, Any]:
    return {"signal_type": "PING", "timestamp": now_ms() if ts is None else ts}


class Raw:
    """A blocking test socket with a deadline on every read."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def lines(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed after {self.buf!r}")
            self.buf += chunk
        out = []
        for _ in range(n):
            line, _, self.buf = self.buf.partition(b"\n")
            assert line.isascii()
            out.append(json.loads(line))
        return out

    def frames(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n:
            while len(self.buf) < 4 or len(self.buf) < 4 + int.from_bytes(self.buf[:4], "big"):
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise AssertionError("connection closed")
                self.buf += chunk
            size = int.from_bytes(self.buf[:4], "big")
            out.append(msgspec.msgpack.decode(self.buf[4 : 4 + size]))
            self.buf = self.buf[4 + size :]
        return out

    def closed_by_peer(self, timeout: float = 10) -> bool:
        self.sock.settimeout(timeout)
        try:
            while chunk := self.sock.recv(65536):
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(ing: IngressRun) -> Iterator[Raw]:
    conn = Raw(ing.socket_path)
    yield conn
    conn.close()


# --- vectors and bad input over the real socket ---------------------------------------------


def _vector_frames() -> list[tuple[bytes, bytes]]:
    out = []
    wires = [json.dumps(c["signal"], ensure_ascii=False) for c in VECTORS["cases"]]
    wires += [c["raw_signal_text"] for c in VECTORS["raw_cases"]]
    sigs = [c["signature"] for c in VECTORS["cases"] + VECTORS["raw_cases"]]
    for wire, sig in zip(wires, sigs, strict=True):
        bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        good_line = (
            b'{"signal":' + wire.encode() + b',"signature":"' + sig.encode() + b'","correlationId":"v"}\n'
        )
        bad_line = (
            b'{"signal":' + wire.encode() + b',"signature":"' + bad.encode() + b'","correlationId":"v"}\n'
        )
        out.append((good_line, bad_line))
    return out


@pytest.fixture(scope="module")
def vector_run() -> Iterator[IngressRun]:
    with run_ingress(hmac_secret=VECTORS["cases"][0]["secret"]) as run:
        yield run


def test_vectors_authenticate_in_the_real_process(vector_run: IngressRun) -> None:
    """The vectors' signed timestamps are years old: authentic ones fail the window, forged ones the HMAC."""
    assert {c["secret"] for c in VECTORS["cases"] + VECTORS["raw_cases"]} == {VECTORS["cases"][0]["secret"]}
    raw = Raw(vector_run.socket_path)
    for good, bad in _vector_frames():
        raw.send(good + bad)
        first, second = raw.lines(2)
        assert first["reason"] == codes.TIMESTAMP_OUT_OF_WINDOW and first["correlationId"] == "v"
        assert second["reason"] == codes.INVALID_SIGNATURE and second["correlationId"] == "v"
    raw.close()
    assert vector_run.core.seen == []


def _hex(n: int, c: str = "a") -> str:
    return c * n


BAD_LINES: list[tuple[str, bytes, str]] = [
    ("invalid-json", b"{nope\n", codes.IPC_ERROR),
    ("non-object", b" 42\n", codes.IPC_ERROR),
    ("duplicate-keys", b'{"signal":{},"signal":{},"signature":"x"}\n', codes.IPC_ERROR),
    (
        "missing-signal",
        b'{"signature":"' + _hex(64).encode() + b'","correlationId":"c"}\n',
        codes.INVALID_SIGNATURE,
    ),
    (
        "missing-signature",
        b'{"signal":{"signal_type":"PING"},"correlationId":"c"}\n',
        codes.INVALID_SIGNATURE,
    ),
    ("short-signature", b'{"signal":{},"signature":"abcd","correlationId":"c"}\n', codes.INVALID_SIGNATURE),
    (
        "non-hex-signature",
        b'{"signal":{},"signature":"' + _hex(64, "z").encode() + b'"}\n',
        codes.INVALID_SIGNATURE,
    ),
    ("invalid-utf8", b'{"signal":"\xc3\x28"}\n', codes.IPC_ERROR),
    ("oversized", b'{"x":"' + b"y" * 70_000 + b'"}\n', codes.FRAME_TOO_LARGE),
]


@pytest.mark.parametrize(("name", "line", "code"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_lines_get_their_reply_and_change_nothing(
    ing: IngressRun, raw: Raw, name: str, line: bytes, code: str
) -> None:
    raw.send(line + ndjson_request(KEY, ping(), "after", now_ms()))
    reply, pong = raw.lines(2)
    assert reply["reason"] == code and reply["error"] == code and reply["rejected"] is True
    assert isinstance(reply["timestamp"], int) and isinstance(reply["server_time"], int)
    assert pong["pong"] is True and pong["correlationId"] == "after"  # the connection is kept
    assert ing.core.seen == []


def test_signal_too_big_for_a_ring_slot_is_refused_not_fatal(ing: IngressRun, raw: Raw) -> None:
    sig = prepare("huge-1")
    sig["take_profits"] = [50000 + i for i in range(400)]  # valid, but > one 1 KiB command slot
    raw.send(ndjson_request(KEY, sig, "big", now_ms()) + ndjson_request(KEY, ping(), "after", now_ms()))
    reply, pong = raw.lines(2)
    assert reply["reason"] == codes.INVALID_SIGNAL and reply["correlationId"] == "big"
    assert pong["pong"] is True
    assert ing.core.seen == []


def test_unknown_signal_type(ing: IngressRun, raw: Raw) -> None:
    raw.send(ndjson_request(KEY, {"signal_type": "LAUNCH", "timestamp": now_ms()}, "u", 17))
    (reply,) = raw.lines(1)
    assert reply["reason"] == codes.UNKNOWN_SIGNAL_TYPE and reply["signal_type"] == "LAUNCH"
    assert reply["correlationId"] == "u" and reply["timestamp"] == 17
    assert ing.core.seen == []


def test_replay_of_a_valid_frame(ing: IngressRun, raw: Raw) -> None:
    frame = ndjson_request(KEY, prepare("replay-1"), "r", now_ms())
    raw.send(frame)
    (first,) = raw.lines(1)
    raw.send(frame)
    (second,) = raw.lines(1)
    assert first["prepared"] is True and first["correlationId"] == "r" and first["signal_id"] == "replay-1"
    assert second["reason"] == codes.REPLAY_DETECTED and second["correlationId"] == "r"
    assert len(ing.core.seen) == 1


@pytest.mark.parametrize("offset_ms", [-6000, 6000])
def test_timestamp_outside_the_window(ing: IngressRun, raw: Raw, offset_ms: int) -> None:
    raw.send(ndjson_request(KEY, prepare("old-1", now_ms() + offset_ms), "o", now_ms()))
    (reply,) = raw.lines(1)
    assert reply["reason"] == codes.TIMESTAMP_OUT_OF_WINDOW
    assert ing.core.seen == []


def test_half_frame_then_disconnect(ing: IngressRun) -> None:
    for data in (
        ndjson_request(KEY, prepare("half-1"), "h", now_ms())[:-1],
        BINARY_MODE_MARKER + binary_request(KEY, prepare("half-2"), "h", now_ms())[:-5],
    ):
        conn = Raw(ing.socket_path)
        conn.send(data)
        conn.sock.shutdown(socket.SHUT_WR)
        assert conn.closed_by_peer() and conn.buf == b""
        conn.close()
    conn = Raw(ing.socket_path)
    conn.send(ndjson_request(KEY, ping(), "p", now_ms()))
    assert conn.lines(1)[0]["pong"] is True
    conn.close()
    assert ing.core.seen == []


@pytest.mark.parametrize(("length", "code"), [(0, codes.IPC_ERROR), (1 << 20, codes.FRAME_TOO_LARGE)])
def test_binary_bad_length_replies_then_closes(ing: IngressRun, raw: Raw, length: int, code: str) -> None:
    raw.send(BINARY_MODE_MARKER + length.to_bytes(4, "big") + b"\x00" * 8)
    (reply,) = raw.frames(1)
    assert reply["reason"] == code and reply["error"] == code
    assert raw.closed_by_peer()
    assert ing.core.seen == []


def test_unknown_framing_replies_then_closes(raw: Raw) -> None:
    raw.send(b"GET / HTTP/1.1\r\n\r\n")
    (reply,) = raw.lines(1)
    assert reply["reason"] == codes.IPC_ERROR and reply["message"] == codes.MSG_UNKNOWN_FRAMING
    assert raw.closed_by_peer()


def test_binary_round_trip_over_the_socket(ing: IngressRun, raw: Raw) -> None:
    raw.send(BINARY_MODE_MARKER + binary_request(KEY, prepare("bin-1"), "b1", now_ms()))
    raw.send(
        binary_request(KEY, {"signal_id": "bin-1", "signal_type": "CONFIRM", "timestamp": now_ms()}, "b2", 5)
    )
    replies = {r["correlationId"]: r for r in raw.frames(2)}
    assert replies["b1"]["prepared"] is True
    assert (
        replies["b2"]["executed"] is True
        and replies["b2"]["fill_price"] == 50050
        and replies["b2"]["timestamp"] == 5
    )


# --- engine readiness, deadlines, backpressure ---------------------------------------------


def test_engine_not_ready(ing: IngressRun, raw: Raw) -> None:
    ing.core.ready = False

    def not_ready() -> bool:
        raw.send(ndjson_request(KEY, ping(), "nr", now_ms()))
        return bool(raw.lines(1)[0].get("error") == codes.ENGINE_NOT_READY)

    wait_for(not_ready, 5, 0.02)
    raw.send(ndjson_request(KEY, prepare("nr-1"), "nr-p", now_ms()))
    (reply,) = raw.lines(1)
    assert reply["reason"] == codes.ENGINE_NOT_READY and reply["correlationId"] == "nr-p"
    assert ing.core.seen == []
    ing.core.ready = True

    def ready_again() -> bool:
        raw.send(ndjson_request(KEY, ping(), "r", now_ms()))
        return bool(raw.lines(1)[0].get("pong"))

    wait_for(ready_again, 5, 0.02)


def test_core_that_does_not_answer_gives_engine_not_ready(ing: IngressRun, raw: Raw) -> None:
    ing.core.answering = False
    raw.send(ndjson_request(KEY, prepare("silent-1"), "s", now_ms()))
    (reply,) = raw.lines(1, timeout=DEADLINE_MS / 1000 + 5)
    assert reply["reason"] == codes.ENGINE_NOT_READY and reply["correlationId"] == "s"
    assert len(ing.core.seen) == 1


def test_replies_are_routed_only_to_their_own_request(ing: IngressRun, raw: Raw) -> None:
    """A reply for another request id or connection (e.g. sent for a previous ingress) is dropped."""
    ing.core.answering = False
    raw.send(ndjson_request(KEY, prepare("route-1"), "route", now_ms()))
    wait_for(lambda: len(ing.core.seen) == 1)
    cmd = ing.core.seen[0]
    stale = {"signal_id": "route-1", "prepared": True, "quantity": "999"}
    ing.core.injected.append(Reply(cmd.conn, cmd.req + 1_000, stale, Stages()))  # unknown request
    ing.core.injected.append(Reply(cmd.conn + 1, cmd.req, stale, Stages()))  # right id, wrong connection
    ing.core.injected.append(Reply(cmd.conn, cmd.req, {"signal_id": "route-1", "prepared": True}, Stages()))
    (reply,) = raw.lines(1)
    assert reply["correlationId"] == "route" and reply["prepared"] is True and "quantity" not in reply
    raw.send(ndjson_request(KEY, ping(), "after", now_ms()))
    assert raw.lines(1)[0]["correlationId"] == "after"  # nothing else was delivered in between


def test_pushed_reports_reach_the_connection_only_when_enabled(ing: IngressRun) -> None:
    with run_ingress(push_reports=True) as pushing:
        for run, expect in ((pushing, True), (ing, False)):
            conn = Raw(run.socket_path)
            conn.send(ndjson_request(KEY, prepare("push-1"), "p", now_ms()))
            assert conn.lines(1)[0]["prepared"] is True
            conn_id = run.core.seen[-1].conn
            report = {"signal_id": "push-1", "status": "FILLED", "fill_price": 50050}
            run.core.injected.append(Reply(conn_id, PUSH_REQ, report, Stages()))
            conn.send(ndjson_request(KEY, ping(), "after", now_ms()))
            lines = conn.lines(2) if expect else conn.lines(1)
            pushed = [x for x in lines if x.get("type") == "execution_report"]
            assert len(pushed) == (1 if expect else 0)
            if expect:
                assert "correlationId" not in pushed[0] and pushed[0]["status"] == "FILLED"
            conn.close()


def test_full_command_ring_holds_then_delivers_everything_in_order(ing: IngressRun, raw: Raw) -> None:
    ing.core.consuming = False
    n = 150  # the command ring has 64 slots
    data = b"".join(ndjson_request(KEY, prepare(f"hold-{i}"), f"h{i}", now_ms()) for i in range(n))
    raw.send(data)
    other = Raw(ing.socket_path)
    other.send(ndjson_request(KEY, ping(), "other", now_ms()))
    assert other.lines(1)[0]["pong"] is True  # a full ring blocks nobody else
    other.close()
    ing.core.consuming = True
    replies = raw.lines(n)
    assert sorted(r["correlationId"] for r in replies) == sorted(f"h{i}" for i in range(n))
    assert all(r["prepared"] is True for r in replies)
    seen_ids = [c.intent.signal_id for c in ing.core.seen if isinstance(c, Prepare)]
    assert seen_ids == [f"hold-{i}" for i in range(n)] and len(ing.core.seen) == n  # FIFO, nothing dropped


def test_ring_full_past_the_deadline_answers_busy(ing: IngressRun, raw: Raw) -> None:
    ing.core.consuming = False
    n = 80
    raw.send(b"".join(ndjson_request(KEY, prepare(f"busy-{i}"), f"b{i}", now_ms()) for i in range(n)))
    replies = raw.lines(n, timeout=DEADLINE_MS / 1000 + 10)
    reasons = [r["reason"] for r in replies]
    assert reasons.count(codes.ENGINE_NOT_READY) == 64  # on the ring, core never answered
    assert reasons.count(codes.BUSY) == n - 64  # never sent: safe to retry
    ing.core.consuming = True
    wait_for(lambda: len(ing.core.seen) == 64)
    raw.send(ndjson_request(KEY, prepare("after-busy"), "ab", now_ms()))
    assert raw.lines(1)[0]["prepared"] is True


# --- many clients, hostile clients ------------------------------------------------------------


async def _pipelining_client(path: str, k: int, per_client: int) -> list[bool]:
    client = FastPathClient(path, SECRET, source="hunter", timeout=30)
    await client.connect()
    try:
        sids = [f"c{k}-{j}" for j in range(per_client)]
        preps = await asyncio.gather(*(client.prepare(s, "BTCUSDT", "LONG", 50000, 50100) for s in sids))
        pongs = await asyncio.gather(client.ping(), client.ping())
        confs = await asyncio.gather(*(client.confirm(s) for s in sids))
        ok = [p.prepared is True and p.signal_id == s for p, s in zip(preps, sids, strict=True)]
        ok += [p.pong is True for p in pongs]
        ok += [c.executed is True and c.signal_id == s for c, s in zip(confs, sids, strict=True)]
        return ok
    finally:
        await client.close()


def test_500_concurrent_pipelining_connections(ing: IngressRun) -> None:
    async def main() -> list[list[bool]]:
        return await asyncio.gather(*(_pipelining_client(ing.socket_path, k, 3) for k in range(500)))

    results = asyncio.run(main())
    assert len(results) == 500
    assert all(all(r) and len(r) == 8 for r in results)
    assert len(ing.core.seen) == 500 * 6


def test_hostile_clients_do_not_change_a_good_clients_replies(ing: IngressRun) -> None:
    path = ing.socket_path
    rng = random.Random(7)
    spewer = Raw(path)
    sleeper = Raw(path)
    sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    async def good() -> list[bool]:
        client = FastPathClient(path, SECRET, timeout=10)
        await client.connect()
        ok = []
        try:
            for i in range(40):
                # hostile traffic interleaved with every request
                spewer.send(b"{" + bytes(rng.getrandbits(8) for _ in range(200)).replace(b"\n", b"") + b"\n")
                for _ in range(20):
                    with_ping = ndjson_request(KEY, ping(), "s", now_ms())
                    try:
                        sleeper.sock.send(with_ping, socket.MSG_DONTWAIT)
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        break
                rp = await client.prepare(f"good-{i}", "BTCUSDT", "SHORT", 50000, 50100)
                rc = await client.confirm(f"good-{i}")
                ok.append(rp.prepared is True and rc.executed is True and rc.fill_price == 50050)
        finally:
            await client.close()
        return ok

    assert all(asyncio.run(good()))
    # The never-reading client is cut off once its unread replies pass max_output_bytes.
    slow_idx = COUNTER_NAMES.index("slowReaderCloses")

    def sleeper_closed() -> bool:
        try:
            for _ in range(50):
                sleeper.sock.send(ndjson_request(KEY, ping(), "s", now_ms()), socket.MSG_DONTWAIT)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            pass
        return ing.counters()[slow_idx] >= 1

    wait_for(sleeper_closed, 20, 0.05)
    spewer.close()
    sleeper.close()


# --- process lifecycle ----------------------------------------------------------------------


def test_socket_file_mode_and_connection_limit() -> None:
    with run_ingress(max_connections=2) as run:
        assert stat.S_IMODE(os.stat(run.socket_path).st_mode) == 0o660
        a, b = Raw(run.socket_path), Raw(run.socket_path)
        for conn in (a, b):
            conn.send(ndjson_request(KEY, ping(), "p", now_ms()))
            assert conn.lines(1)[0]["pong"] is True
        c = Raw(run.socket_path)
        assert c.closed_by_peer()
        line = c.buf
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        reply = json.loads(line)
        assert (
            reply["rejected"] is True and reply["reason"] == reply["error"] == codes.MAX_CONNECTIONS_REACHED
        )
        assert isinstance(reply["timestamp"], int)
        for conn in (a, b, c):
            conn.close()
        path = run.socket_path
    assert not os.path.exists(path)  # unlinked on clean stop


def test_stale_socket_is_replaced_and_a_live_one_is_refused(tmp_path: Path) -> None:
    sock_dir = Path(os.path.realpath("/tmp")) / f"ti-stale-{os.getpid()}"
    sock_dir.mkdir()
    path = str(sock_dir / "fp.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays: a crashed engine's leftover
    try:
        with run_ingress(socket_path=path) as run:
            raw = Raw(path)
            raw.send(ndjson_request(KEY, ping(), "p", now_ms()))
            assert raw.lines(1)[0]["pong"] is True
            raw.close()
            with pytest.raises(AssertionError, match="exited during start-up"), run_ingress(socket_path=path):
                pass
            assert run.proc.poll() is None  # the first engine is untouched
    finally:
        if os.path.exists(path):
            os.unlink(path)
        sock_dir.rmdir()


@pytest.mark.parametrize("mode", [0o777, 0o1777])
def test_socket_directory_permissions(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    directory.chmod(mode)
    path = str(directory / "fp.sock")
    if mode & stat.S_ISVTX:
        prepare_socket_path(path)  # world-writable with the sticky bit (like /tmp): fine
    else:
        with pytest.raises(PermissionError):
            prepare_socket_path(path)


def test_a_regular_file_at_the_socket_path_is_never_removed(tmp_path: Path) -> None:
    path = tmp_path / "fp.sock"
    path.write_text("not a socket")
    with pytest.raises(FileExistsError):
        prepare_socket_path(str(path))
    assert path.read_text() == "not a socket"


def test_refuses_to_start_without_a_secret() -> None:
    with pytest.raises(AssertionError, match="exited during start-up"), run_ingress(hmac_secret=""):
        pass


def test_client_reconnects_after_ingress_restart(tmp_path: Path) -> None:
    sock_dir = Path("/tmp") / f"ti-rc-{os.getpid()}"
    sock_dir.mkdir()
    path = str(sock_dir / "fp.sock")

    async def main() -> None:
        client = FastPathClient(path, SECRET, timeout=5, base_reconnect_delay=0.05, max_reconnect_delay=0.2)
        with run_ingress(socket_path=path):
            await client.connect()
            assert (await client.ping()).pong is True
        await asyncio.sleep(0)  # the first ingress is gone; the client notices and retries
        with run_ingress(socket_path=path):
            deadline = time.monotonic() + 10
            while client.reconnects < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert client.reconnects == 1 and client.connected
            assert (await client.ping()).pong is True
        await client.close()

    try:
        asyncio.run(main())
    finally:
        if os.path.exists(path):
            os.unlink(path)
        sock_dir.rmdir()


def test_client_errors_not_connected_and_timeout(ing: IngressRun) -> None:
    async def main() -> None:
        client = FastPathClient(ing.socket_path, SECRET, timeout=0.2)
        with pytest.raises(FastPathError, match="NOT_CONNECTED"):
            await client.ping()
        await client.connect()
        ing.core.answering = False
        with pytest.raises(FastPathTimeout, match="IPC_TIMEOUT"):
            await client.prepare("to-1", "BTCUSDT", "LONG", 50000, 50100)
        ing.core.answering = True
        reply = await client.prepare("to-2", "BTCUSDT", "LONG", 50000, 50100)
        assert reply.prepared is True and reply.ok
        bad = await client.send_raw({"signal_type": "NOPE", "timestamp": now_ms()})
        assert not bad.ok and bad.error == codes.UNKNOWN_SIGNAL_TYPE  # error replies are returned, typed
        await client.close()

    asyncio.run(main())


def test_client_binary_pipelining_and_trace(ing: IngressRun) -> None:
    async def main() -> None:
        async with FastPathClient(ing.socket_path, SECRET, framing="binary", timeout=10) as client:
            sids = [f"bp-{i}" for i in range(100)]
            preps = await asyncio.gather(*(client.prepare(s, "ETHUSDT", "SHORT", 3000, 3001) for s in sids))
            assert [p.signal_id for p in preps] == sids and all(p.prepared for p in preps)
            traced = await client.confirm(sids[0], trace=True)
            assert traced.executed is True and traced.stages is not None
            st = traced.stages
            assert 0 < st["t_read"] <= st["t_ring"] <= st["t_core_in"] <= st["t_core_out"] <= st["t_write"]

    asyncio.run(main())
