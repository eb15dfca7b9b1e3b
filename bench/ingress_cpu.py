"""Ingress CPU per FastPath request, measured on the real engine (issue #4, task H2).

Starts the engine (:func:`titan.harness.start_engine`), opens ``--binary`` binary and ``--ndjson``
NDJSON connections (the soak's mix: 4 + 4) and sends intents open loop at ``--rate`` per second for
``--seconds``: PREPARE, then CONFIRM on the same connection once prepared, every request traced as the
soak does. Ingress's CPU (utime + stime from /proc/<pid>/stat, all threads) over the load, divided by
the requests it answered, is the figure; wall time is not used (the box is shared).

``python -m bench.ingress_cpu [--seconds 10] [--rate 1000] [--no-trace]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Literal

from bench.fastpath_load import PriceRef
from titan.client import FastPathClient, FastPathError
from titan.harness import SECRET, Engine, eventually, start_engine

DIRECTIONS: tuple[Literal["LONG", "SHORT"], ...] = ("LONG", "SHORT")
MAX_IN_FLIGHT = 400


def cpu_ns(pid: int) -> tuple[int, int]:
    """(user, system) CPU of ``pid`` (all threads), ns."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return int(fields[11]) * tick, int(fields[12]) * tick


class Counts:
    def __init__(self) -> None:
        self.requests = 0
        self.executed = 0
        self.failures: dict[str, int] = {}
        self.unsent = 0

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


async def _intent(client: FastPathClient, prices: PriceRef, i: int, counts: Counts, trace: bool) -> None:
    sid = f"icpu-{i}"
    low, high = prices.zone("BTCUSDT")
    try:
        prep = await client.prepare(
            sid, "BTCUSDT", DIRECTIONS[i % 2], low, high, position_size=100, velocity=0.01, trace=trace
        )
        counts.requests += 1
        if not prep.prepared:
            counts.fail(f"prepare:{prep.reason}")
            return
        conf = await client.confirm(sid, trace=trace)
        counts.requests += 1
        prices.update("BTCUSDT", conf)
        if conf.executed:
            counts.executed += 1
        else:
            counts.fail(f"confirm:{conf.reason}")
    except FastPathError as exc:
        counts.fail(type(exc).__name__)


async def load(
    engine: Engine, *, seconds: float, rate: float, binary: int, ndjson: int, trace: bool
) -> dict[str, object]:
    clients = [
        FastPathClient(engine.socket_path, SECRET, framing="binary", timeout=5.0) for _ in range(binary)
    ]
    clients += [FastPathClient(engine.socket_path, SECRET, timeout=5.0) for _ in range(ndjson)]
    for c in clients:
        await c.connect()
    prices = PriceRef()
    ingress_pid = engine.pids()["ingress"]
    counts = Counts()
    # Warm-up: a few intents so first-use costs (imports, caches) stay out of the figure.
    for i in range(len(clients) * 4):
        await _intent(clients[i % len(clients)], prices, -1 - i, Counts(), trace)
    tasks: set[asyncio.Task[None]] = set()
    interval_ns = int(1e9 / rate)
    planned = int(seconds * rate)
    cpu0 = cpu_ns(ingress_pid)
    start = time.monotonic_ns()
    i = 0
    try:
        while i < planned:
            now = time.monotonic_ns()
            while i < planned and start + i * interval_ns <= now:
                if len(tasks) >= MAX_IN_FLIGHT:
                    counts.unsent += 1
                else:
                    task = asyncio.create_task(_intent(clients[i % len(clients)], prices, i, counts, trace))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                i += 1
            await asyncio.sleep(0.0005)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        cpu1 = cpu_ns(ingress_pid)
        wall_s = (time.monotonic_ns() - start) / 1e9
    finally:
        for c in clients:
            await c.close()
    n = max(counts.requests, 1)
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    return {
        "ingress_cpu_us_per_request": round((user + system) / n / 1000, 1),
        "user_us": round(user / n / 1000, 1),
        "system_us": round(system / n / 1000, 1),
        "ingress_cpu_pct": round((user + system) / 1e9 / wall_s * 100, 1),
        "requests": counts.requests,
        "executed": counts.executed,
        "planned_intents": planned,
        "unsent_saturated": counts.unsent,
        "failures": counts.failures,
        "rate": rate,
        "seconds": seconds,
        "connections": {"binary": binary, "ndjson": ndjson},
        "trace": trace,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="intents per second (2 requests each)")
    ap.add_argument("--binary", type=int, default=4, help="binary connections")
    ap.add_argument("--ndjson", type=int, default=4, help="NDJSON connections")
    ap.add_argument("--no-trace", action="store_true", help="requests without stage stamps")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = start_engine(Path(tmp), log_level="WARNING")
        try:
            eventually(lambda: engine.pids().get("ingress") and engine.pids().get("core"), timeout=30)
            result = asyncio.run(
                load(
                    engine,
                    seconds=args.seconds,
                    rate=args.rate,
                    binary=args.binary,
                    ndjson=args.ndjson,
                    trace=not args.no_trace,
                )
            )
        finally:
            engine.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
