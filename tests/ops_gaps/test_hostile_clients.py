"""bench/hostile_clients.py: the hostile traffic it makes, and one short run against a paper engine."""

from __future__ import annotations

import random

from bench.hostile_clients import OVERSIZED_LINE_BYTES, HostileLoad, garbage_pool, run, signed_ping
from titan.harness import SECRET, Engine
from titan.ingress.signing import secret_key


def test_garbage_is_ndjson_framed_bad_frames_with_an_oversized_line() -> None:
    pool = garbage_pool(random.Random(3), size=20_000)
    assert pool.startswith(b"{")  # the first byte keeps the connection on NDJSON framing
    lines = pool.split(b"\n")
    assert max(len(line) for line in lines) > OVERSIZED_LINE_BYTES
    assert not any(b'"signature"' in line and b'"hmac' in line for line in lines)


def test_signed_pings_are_unique_frames() -> None:
    key = secret_key("s")
    assert signed_ping(key, 1) != signed_ping(key, 2)
    assert signed_ping(key, 1).endswith(b"\n")


def test_short_run_keeps_every_good_reply_and_reports_the_ratio(paper_engine: Engine) -> None:
    result = run(
        paper_engine.socket_path,
        SECRET,
        n=100,
        quick=True,
        warmup=10,
        load=HostileLoad(garbage_bytes_per_s=300_000, sleeper_frames_per_s=1_000),
    )
    for phase in (result.alone, result.hostile, result.alone_after):
        assert phase.replies_wrong == 0 and phase.replies_ok == result.samples_per_phase
        assert phase.latency_us.n == result.samples_per_phase and phase.latency_us.p99 > 0
    stats = result.hostile_stats
    assert stats.garbage_bytes > 0 and stats.garbage_replies_bytes > 0, stats
    assert stats.sleeper_frames > 0 and stats.sleeper_connections >= 1, stats
    assert result.p99_ratio == round(result.hostile.latency_us.p99 / result.alone.latency_us.p99, 2)
    assert paper_engine.health()[0] == 200  # the engine is still healthy after the hostile clients
