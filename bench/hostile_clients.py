"""A well-behaved FastPath client's latency alone and beside hostile clients (issue #3).

Three closed-loop phases of the same well-behaved client (one request in flight, PREPARE by default):

1. ``alone``: nobody else connected;
2. ``hostile``: a separate process (its own GIL, so the load generator does not slow the measuring
   client) keeps two hostile connections open meanwhile: a **garbage spewer** writing random
   bytes, invalid JSON and oversized lines at a paced rate (it reads and discards its error replies),
   and a **never-reading client** sending signed PINGs and never reading a reply (ingress closes it
   once its unread output passes ``ingress.max_output_bytes``; it reconnects and starts again);
3. ``alone_after``: alone again, so a drift of the shared machine's load shows up.

The hostile process is started with the ``spawn`` method: a script calling :func:`run` needs the usual
``if __name__ == "__main__":`` guard (``bench/run.py`` and ``python -m bench.hostile_clients`` have it).

The result holds each phase's percentiles (µs, HdrHistogram), how many replies were correct, the
hostile traffic actually offered, and ``p99_ratio`` = hostile p99 / alone p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import socket
import time
from multiprocessing.connection import Connection
from typing import Any, Literal

import msgspec

from bench.stats import LatencySummary, new_histogram, record, summarize
from titan.client import FastPathClient, FastPathError
from titan.ingress.envelope import ndjson_request
from titan.ingress.signing import secret_key

Request = Literal["prepare", "ping"]
TICK_S = 0.005  # the hostile process paces itself on this tick (never a busy loop)
GARBAGE_POOL_BYTES = 1 << 18
OVERSIZED_LINE_BYTES = 80_000  # above the default max_frame_bytes (64 KiB): FRAME_TOO_LARGE


class HostileLoad(msgspec.Struct, frozen=True):
    """What the hostile process is asked to offer."""

    garbage_bytes_per_s: int = 2_000_000
    sleeper_frames_per_s: int = 4_000


class HostileStats(msgspec.Struct):
    """What the hostile process actually did (reported back when it stops)."""

    seconds: float = 0.0
    garbage_bytes: int = 0
    garbage_replies_bytes: int = 0  # error replies the spewer read (and discarded)
    garbage_connections: int = 0
    sleeper_frames: int = 0
    sleeper_connections: int = 0  # > 1: ingress cut the never-reading client off and it came back


class Phase(msgspec.Struct):
    name: str
    latency_us: LatencySummary
    replies_ok: int
    replies_wrong: int


class HostileResult(msgspec.Struct):
    request: str
    samples_per_phase: int
    alone: Phase
    hostile: Phase
    alone_after: Phase
    p50_ratio: float
    p99_ratio: float  # hostile p99 / alone p99 (the figure issue #3 asks for)
    load: HostileLoad
    hostile_stats: HostileStats
    p99: float  # the hostile phase's p99 (µs), for the suite's summary table
    n: int


# --- hostile traffic (sans-I/O parts) ---------------------------------------------------------------


def garbage_pool(rng: random.Random, size: int = GARBAGE_POOL_BYTES) -> bytes:
    """Lines that are each a bad NDJSON frame: random bytes (invalid UTF-8 too), broken JSON,
    JSON that is not an object, a duplicate key, plus one oversized line. Starts with ``{`` so the
    connection is read as NDJSON (its first byte chooses the framing)."""
    lines: list[bytes] = []
    total = 0
    kinds = (
        lambda: b"{" + rng.randbytes(rng.randint(10, 400)).replace(b"\n", b" "),
        lambda: b'{"signal": {"signal_type": "PREPARE", ' + b"x" * rng.randint(0, 50),
        lambda: b"[1, 2, 3]",
        lambda: b'{"a": 1, "a": 2}',
        lambda: b'{"signal": {}, "signature": "' + rng.randbytes(8).hex().encode() + b'"}',
    )
    while total < size:
        line = rng.choice(kinds)() + b"\n"
        lines.append(line)
        total += len(line)
    lines.insert(len(lines) // 2, b"{" + b"z" * OVERSIZED_LINE_BYTES + b"\n")
    return b"{}\n" + b"".join(lines)


def signed_ping(key: bytes, n: int) -> bytes:
    now_ms = int(time.time() * 1000)
    return ndjson_request(key, {"signal_type": "PING", "timestamp": now_ms}, f"sleeper-{n}", now_ms)


# --- hostile process ----------------------------------------------------------------------------------


def _connect(path: str, rcvbuf: int | None = None) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def hostile_main(socket_path: str, secret: str, load: HostileLoad, pipe: Connection) -> None:
    """The hostile process: spew and never read until the parent sends anything on ``pipe``."""
    rng = random.Random(1234)
    pool = garbage_pool(rng)
    key = secret_key(secret)
    stats = HostileStats()
    spew: socket.socket | None = None
    sleeper: socket.socket | None = None
    pos = 0
    ping_n = 0
    garbage_credit = 0.0
    frame_credit = 0.0
    t0 = last = time.monotonic()
    pipe.send("ready")
    while not pipe.poll(0):
        now = time.monotonic()
        garbage_credit = min(garbage_credit + (now - last) * load.garbage_bytes_per_s, len(pool))
        frame_credit = min(frame_credit + (now - last) * load.sleeper_frames_per_s, 4096)
        last = now
        if spew is None and (spew := _connect(socket_path)) is not None:
            stats.garbage_connections += 1
            pos = 0
        if sleeper is None and (sleeper := _connect(socket_path, rcvbuf=4096)) is not None:
            stats.sleeper_connections += 1
        if spew is not None:
            try:
                while True:  # read (and drop) the error replies first: the spewer is not a slow reader
                    data = spew.recv(65536)
                    if not data:
                        raise ConnectionResetError
                    stats.garbage_replies_bytes += len(data)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                spew.close()
                spew = None
        if spew is not None:
            try:
                while garbage_credit >= 1:
                    end = min(len(pool), pos + int(garbage_credit))
                    sent = spew.send(pool[pos:end])
                    stats.garbage_bytes += sent
                    garbage_credit -= sent
                    pos = (pos + sent) % len(pool) or 3  # wrap past the leading "{}\n"
            except (BlockingIOError, InterruptedError):
                garbage_credit = 0  # ingress reads no faster: offer more next tick
            except OSError:
                spew.close()
                spew = None
        if sleeper is not None:
            try:
                while frame_credit >= 1:
                    ping_n += 1
                    sleeper.send(signed_ping(key, ping_n))
                    stats.sleeper_frames += 1
                    frame_credit -= 1
            except (BlockingIOError, InterruptedError):
                frame_credit = 0  # its send buffer is full: ingress is not reading it (or closed it)
            except OSError:
                sleeper.close()
                sleeper = None
        time.sleep(TICK_S)
    for sock in (spew, sleeper):
        if sock is not None:
            sock.close()
    stats.seconds = round(time.monotonic() - t0, 3)
    pipe.send(msgspec.msgpack.encode(stats))


class HostileProcess:
    """The hostile clients in a separate (spawned) process."""

    def __init__(self, socket_path: str, secret: str, load: HostileLoad) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=hostile_main, args=(socket_path, secret, load, child), name="hostile", daemon=True
        )
        self._proc.start()
        child.close()
        if not self._pipe.poll(30) or self._pipe.recv() != "ready":
            self.kill()
            raise RuntimeError("the hostile process did not start")

    def stop(self) -> HostileStats:
        self._pipe.send("stop")
        stats = HostileStats()
        if self._pipe.poll(10):
            stats = msgspec.msgpack.decode(self._pipe.recv(), type=HostileStats)
        self._proc.join(10)
        self.kill()
        return stats

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._pipe.close()


# --- the well-behaved client ------------------------------------------------------------------------


async def good_client(
    socket_path: str, secret: str, name: str, samples: int, warmup: int, request: Request
) -> Phase:
    """Closed loop, one request in flight; each reply checked (PREPARE prepared / PING pong)."""
    hist = new_histogram()
    ok = wrong = 0
    tag = f"{os.getpid()}-{name}-{time.monotonic_ns()}"
    async with FastPathClient(socket_path, secret, timeout=10.0) as client:
        for i in range(warmup + samples):
            t0 = time.perf_counter_ns()
            try:
                if request == "ping":
                    reply: Any = await client.ping()
                    good = getattr(reply, "pong", False) is True
                else:
                    sid = f"hostile-bench-{tag}-{i}"
                    reply = await client.prepare(
                        sid, "BTCUSDT", "LONG", 50000, 50100, position_size=100, velocity=0.01
                    )
                    good = getattr(reply, "prepared", False) is True and reply.signal_id == sid
            except FastPathError:
                good = False
            elapsed = time.perf_counter_ns() - t0
            if i >= warmup:
                record(hist, elapsed)
                ok += good
                wrong += not good
    return Phase(name, summarize(hist), ok, wrong)


def run(
    socket_path: str,
    secret: str,
    n: int = 2000,
    quick: bool = False,
    warmup: int = 50,
    request: Request = "prepare",
    load: HostileLoad | None = None,
) -> HostileResult:
    """Measure the good client alone, beside the hostile process, then alone again."""
    samples = max(n, 300 if quick else 2000)  # a p99 needs a few samples above it
    load = load or HostileLoad()

    def phase(name: str) -> Phase:
        return asyncio.run(good_client(socket_path, secret, name, samples, warmup, request))

    alone = phase("alone")
    stats = HostileStats()
    hostile_proc = HostileProcess(socket_path, secret, load)
    try:
        time.sleep(0.2)  # let both hostile connections be up and flowing before measuring
        hostile = phase("hostile")
    finally:
        with contextlib.suppress(Exception):
            stats = hostile_proc.stop()
        hostile_proc.kill()  # a no-op after a clean stop
    after = phase("alone_after")
    base_p99 = alone.latency_us.p99 or 1.0
    base_p50 = alone.latency_us.p50 or 1.0
    return HostileResult(
        request=request,
        samples_per_phase=samples,
        alone=alone,
        hostile=hostile,
        alone_after=after,
        p50_ratio=round(hostile.latency_us.p50 / base_p50, 2),
        p99_ratio=round(hostile.latency_us.p99 / base_p99, 2),
        load=load,
        hostile_stats=stats,
        p99=hostile.latency_us.p99,
        n=hostile.latency_us.n,
    )


def main() -> None:
    """``python -m bench.hostile_clients``: start an engine, measure, print the result as JSON."""
    import tempfile
    from pathlib import Path

    from titan.harness import SECRET, start_engine

    with tempfile.TemporaryDirectory(prefix="titan-hostile-") as tmp:
        engine = start_engine(Path(tmp), log_level="WARNING")
        try:
            result = run(engine.socket_path, SECRET)
        finally:
            engine.stop()
    print(msgspec.json.format(msgspec.json.encode(result)).decode())


if __name__ == "__main__":
    main()
