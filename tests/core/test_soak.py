"""The issue's soak: 2 000 intents/s for 10 minutes through the real processes.

Open loop over several FastPath connections (PREPARE, then CONFIRM once prepared), long and short
alternating so the paper position stays small, entry zones following the simulated market. Every
reply is traced, so core's own reply stamps (``t_core_out``) give the longest gap between two
consecutive replies without the client's scheduling in it. ``core``'s resident memory is sampled
from /proc every few seconds.

Asserted: every intent answered and executed (a few failures allowed around start-up), core's RSS
flat within 10 % after the warm-up. Core keeps bounded windows of recent history (100 000 finished
intents and legs, the newest 100 000 ids of each idempotency set as they are, older ones as digests
in preallocated tables): memory grows by design until they are full, so the warm-up lasts at least
60 s and until 110 000 intents have executed. Timings are measured and written to ``soak.json`` next to the
test's files; the gap bound (< 5 ms) is asserted only with ``TITAN_SOAK_ASSERT_GAP=1`` (a dedicated
machine: on a shared one, the scheduler alone can hold a process off a core for longer).
``TITAN_SOAK_S`` / ``TITAN_SOAK_RATE`` shorten or slow it for a trial run.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from array import array
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from bench.fastpath_load import PriceRef
from titan.client import FastPathClient, FastPathError, Reply
from titan.harness import SECRET, Engine, eventually, start_engine

SOAK_S = float(os.environ.get("TITAN_SOAK_S", "600"))
RATE = float(os.environ.get("TITAN_SOAK_RATE", "2000"))
WARMUP_S = min(60.0, SOAK_S / 5)
WARMUP_INTENTS = int(os.environ.get("TITAN_SOAK_WARMUP_INTENTS", "110000"))
CONNECTIONS = 8
MAX_IN_FLIGHT = 400
RSS_EVERY_S = 5.0
GAP_LIMIT_MS = 5.0
DIRECTIONS: tuple[Literal["LONG", "SHORT"], ...] = ("LONG", "SHORT")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Tally:
    """What the load generator saw; reply stamps in compact arrays (millions of replies)."""

    def __init__(self) -> None:
        self.core_out = array("q")  # every reply's t_core_out (CLOCK_MONOTONIC ns, core's clock)
        self.ring_in = array("q")  # the request's t_ring (ingress pushed it to core)
        self.executed = 0
        self.failures: dict[str, int] = {}
        self.unsent = 0
        self.rss: list[tuple[float, int, int]] = []  # (elapsed s, KiB, intents executed so far)
        self.cpu: list[tuple[int, float]] = []  # (intents executed so far, core's CPU seconds)

    def reply(self, r: Reply) -> None:
        stages = r.stages or {}
        out, ring = stages.get("t_core_out"), stages.get("t_ring")
        if out and ring:
            self.core_out.append(int(out))
            self.ring_in.append(int(ring))

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


async def _intent(client: FastPathClient, prices: PriceRef, i: int, tally: Tally) -> None:
    sid = f"soak-{i}"
    low, high = prices.zone("BTCUSDT")
    try:
        prep = await client.prepare(
            sid, "BTCUSDT", DIRECTIONS[i % 2], low, high, position_size=100, velocity=0.01, trace=True
        )
        tally.reply(prep)
        if not prep.prepared:
            tally.fail(f"prepare:{prep.reason}")
            return
        conf = await client.confirm(sid, trace=True)
        tally.reply(conf)
        prices.update("BTCUSDT", conf)
        if conf.executed:
            tally.executed += 1
        else:
            tally.fail(f"confirm:{conf.reason}")
    except FastPathError as exc:
        tally.fail(type(exc).__name__)


async def _load(engine: Engine, tally: Tally) -> int:
    clients = [FastPathClient(engine.socket_path, SECRET, framing="binary", timeout=5.0) for _ in range(4)]
    clients += [FastPathClient(engine.socket_path, SECRET, timeout=5.0) for _ in range(CONNECTIONS - 4)]
    for c in clients:
        await c.connect()
    prices = PriceRef()
    core_pid = engine.pids()["core"]
    tasks: set[asyncio.Task[None]] = set()
    interval_ns = int(1e9 / RATE)
    planned = int(SOAK_S * RATE)
    start = time.monotonic_ns()
    next_rss = 0.0
    i = 0
    try:
        while i < planned:
            now = time.monotonic_ns()
            while i < planned and start + i * interval_ns <= now:
                if len(tasks) >= MAX_IN_FLIGHT:
                    tally.unsent += 1  # saturated: counted, not queued without bound
                else:
                    task = asyncio.create_task(_intent(clients[i % len(clients)], prices, i, tally))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                i += 1
            elapsed = (now - start) / 1e9
            if elapsed >= next_rss:
                tally.rss.append((elapsed, rss_kib(core_pid), tally.executed))
                tally.cpu.append((tally.executed, cpu_s(core_pid)))
                next_rss = elapsed + RSS_EVERY_S
            await asyncio.sleep(0.0005)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
    finally:
        for c in clients:
            await c.close()
    assert engine.pids()["core"] == core_pid, "core restarted during the soak"
    return planned


def reply_gaps(tally: Tally) -> dict[str, float]:
    """Longest gap between consecutive replies (core's stamps), raw and while work was waiting.

    The second subtracts idle time: a reply cannot come before its request reached core's ring.
    """
    out = np.frombuffer(tally.core_out, dtype=np.int64)
    ring = np.frombuffer(tally.ring_in, dtype=np.int64)
    order = np.argsort(out, kind="stable")
    out, ring = out[order], ring[order]
    raw = np.diff(out)
    busy = out[1:] - np.maximum(out[:-1], ring[1:])
    return {
        "replies": int(out.size),
        "max_gap_ms": float(raw.max()) / 1e6 if raw.size else 0.0,
        "max_busy_gap_ms": float(busy.max()) / 1e6 if busy.size else 0.0,
        "p9999_gap_ms": float(np.percentile(raw, 99.99)) / 1e6 if raw.size else 0.0,
        "gaps_over_5ms": int((busy > GAP_LIMIT_MS * 1e6).sum()),
    }


def core_cpu_per_intent(tally: Tally) -> float:
    """core's CPU (process, all threads: loop, rings, journal, fsync thread) per executed intent."""
    (n0, c0), (n1, c1) = tally.cpu[0], tally.cpu[-1]
    return round((c1 - c0) / max(n1 - n0, 1) * 1e6, 1)


@pytest.mark.slow
@pytest.mark.timeout(SOAK_S + 300)
def test_soak_2000_intents_per_second(tmp_path: Path) -> None:
    engine = start_engine(tmp_path, log_level="WARNING")
    tally = Tally()
    try:
        eventually(lambda: engine.pids().get("core"), timeout=30)
        planned = asyncio.run(_load(engine, tally))
    finally:
        assert engine.stop() == 0
    after_warmup = [kib for t, kib, done in tally.rss if t >= WARMUP_S and done >= WARMUP_INTENTS]
    assert len(after_warmup) >= 2, f"too few intents executed to leave the warm-up: {tally.rss[-1]}"
    gaps = reply_gaps(tally)
    report = {
        "seconds": SOAK_S,
        "rate": RATE,
        "planned": planned,
        "executed": tally.executed,
        "unsent_saturated": tally.unsent,
        "failures": tally.failures,
        "rss_kib": tally.rss,
        "rss_min_kib_after_warmup": min(after_warmup),
        "rss_max_kib_after_warmup": max(after_warmup),
        "core_cpu_us_per_intent": core_cpu_per_intent(tally),
        **gaps,
    }
    (tmp_path / "soak.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "rss_kib"}))
    assert tally.unsent == 0, report
    assert tally.executed >= planned * 0.999, report
    assert max(after_warmup) <= min(after_warmup) * 1.10, report
    if os.environ.get("TITAN_SOAK_ASSERT_GAP") == "1":
        assert gaps["max_busy_gap_ms"] < GAP_LIMIT_MS, report
