"""Doorbell wake primitive benchmark: named FIFO (titan.shm.doorbell) vs posix_ipc semaphore.

Paced one-way latency (source stamps CLOCK_MONOTONIC, the last stage subtracts it on receipt) for one
hop and for a 3-hop chain (4 processes), quiet and with one CPU hog. Every consumer spins at most
``--spin-us`` and then sleeps on its doorbell; producers ring only a consumer that flagged sleep.

    .venv/bin/python bench/shm_doorbell.py            # about 15-25 s, prints a table
    .venv/bin/python bench/shm_doorbell.py --n 20000  # longer rows
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.context
import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import posix_ipc

from titan.shm.doorbell import Doorbell, unlink_doorbell_quietly
from titan.shm.ring import Ring
from titan.shm.segment import Segment, unlink_quietly


class Bell(Protocol):
    def ring(self) -> None: ...
    def prepare_sleep(self) -> None: ...
    def sleep(self, timeout: float) -> bool: ...
    def cancel_sleep(self) -> None: ...
    def close(self) -> None: ...


class SemaphoreDoorbell:
    """The alternative wake primitive: same flag protocol, posix_ipc.Semaphore (futex) to sleep on.

    No file descriptor, so an asyncio consumer would need a waiter thread."""

    def __init__(self, name: str, create: bool) -> None:
        self.name = name
        self._segment = Segment.create(name, 64) if create else Segment.attach(name)
        self._flag = self._segment.buf.cast("Q")
        flags = posix_ipc.O_CREX if create else 0
        self._sem = posix_ipc.Semaphore("/" + name + ".sem", flags, initial_value=0)
        self._lock = threading.Lock()

    def ring(self) -> None:
        self._lock.acquire()
        self._lock.release()
        if self._flag[0]:
            self._flag[0] = 0
            self._sem.release()

    def prepare_sleep(self) -> None:
        self._flag[0] = 1
        self._lock.acquire()
        self._lock.release()

    def sleep(self, timeout: float) -> bool:
        try:
            self._sem.acquire(timeout)
        except posix_ipc.BusyError:
            return False
        try:  # drain extra posts so they do not cause spurious wake-ups later
            while True:
                self._sem.acquire(0)
        except posix_ipc.BusyError:
            pass
        return True

    def cancel_sleep(self) -> None:
        self._flag[0] = 0

    def close(self) -> None:
        self._flag.release()
        self._segment.close()
        self._sem.close()

    @staticmethod
    def unlink(name: str) -> None:
        unlink_quietly(name)
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_semaphore("/" + name + ".sem")


def open_bell(kind: str, name: str, create: bool = False) -> Bell:
    if kind == "fifo":
        return Doorbell.create(name) if create else Doorbell.attach(name)
    return SemaphoreDoorbell(name, create)


def wait_ring(ring: Ring, bell: Bell, timeout: float, spin_s: float) -> bool:
    """wait_any for one ring, generic over the bell type (same algorithm as titan.shm.doorbell)."""
    if ring.has_data():
        return True
    now = time.monotonic()
    end = now + spin_s
    while now < end:
        if ring.has_data():
            return True
        now = time.monotonic()
    deadline = now + timeout
    while True:
        bell.prepare_sleep()
        try:
            if ring.has_data():
                return True
            bell.sleep(deadline - now)
        finally:
            bell.cancel_sleep()
        if ring.has_data():
            return True
        now = time.monotonic()
        if now >= deadline:
            return False


# ----------------------------------------------------------------------------- processes


def run_source(out_ring: str, next_bell: str, kind: str, n: int, pace_s: float) -> None:
    ring = Ring.attach(out_ring)
    bell = open_bell(kind, next_bell)
    next_t = time.monotonic() + 0.05
    for seq in range(n):
        now = time.monotonic()
        if next_t > now:
            time.sleep(next_t - now)
        next_t += pace_s
        ring.push(seq.to_bytes(8, "little") + time.monotonic_ns().to_bytes(8, "little"), timeout=10)
        bell.ring()
    ring.close()
    bell.close()


def run_stage(
    in_ring: str,
    out_ring: str | None,
    my_bell: str,
    next_bell: str | None,
    kind: str,
    n: int,
    result: str,
    spin_s: float,
) -> None:
    """Forward (mid) or record latency (sink). result segment: [timeouts, cpu_ns, lat_ns...]"""
    rx = Ring.attach(in_ring)
    tx = Ring.attach(out_ring) if out_ring else None
    bell = open_bell(kind, my_bell)
    peer = open_bell(kind, next_bell) if next_bell else None
    res_segment = Segment.attach(result)
    res = res_segment.buf.cast("q")
    cpu0 = time.process_time_ns()
    got = timeouts = 0
    while got < n:
        if not wait_ring(rx, bell, 1.0, spin_s):
            timeouts += 1
            if timeouts > 20:
                break
            continue
        while (msg := rx.try_pop()) is not None:
            if tx is not None and peer is not None:
                tx.push(msg, timeout=10)
                peer.ring()
            else:
                res[2 + got] = time.monotonic_ns() - int.from_bytes(msg[8:16], "little")
            got += 1
    res[0] = timeouts
    res[1] = time.process_time_ns() - cpu0
    res.release()
    res_segment.close()
    for c in (rx, tx, bell, peer):
        if c is not None:
            c.close()


def run_hog(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        for _ in range(10000):
            x += 1


# ----------------------------------------------------------------------------- driver


def run_row(
    ctx: multiprocessing.context.SpawnContext,
    kind: str,
    hops: int,
    hog: bool,
    n: int,
    pace_s: float,
    spin_s: float,
) -> dict[str, object]:
    tag = f"titan-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ring_names = [f"{tag}-r{i}" for i in range(hops)]
    bell_names = [f"{tag}-b{i}" for i in range(hops)]
    result_names = [f"{tag}-res{i}" for i in range(hops)]
    rings = [Ring.create(name, 1024, 64) for name in ring_names]
    bells = [open_bell(kind, name, create=True) for name in bell_names]
    results = [Segment.create(name, 8 * (n + 2)) for name in result_names]
    procs: list[multiprocessing.process.BaseProcess] = []
    budget = n * pace_s * 3 + 20
    try:
        if hog:
            procs.append(ctx.Process(target=run_hog, args=(time.monotonic() + budget,), daemon=True))
        for i in range(hops):
            last = i == hops - 1
            procs.append(
                ctx.Process(
                    target=run_stage,
                    args=(
                        ring_names[i],
                        None if last else ring_names[i + 1],
                        bell_names[i],
                        None if last else bell_names[i + 1],
                        kind,
                        n,
                        result_names[i],
                        spin_s,
                    ),
                    daemon=True,
                )
            )
        for p in procs:
            p.start()
        time.sleep(0.3)  # let the children import and attach before the source starts
        source = ctx.Process(
            target=run_source, args=(ring_names[0], bell_names[0], kind, n, pace_s), daemon=True
        )
        source.start()
        procs.append(source)
        deadline = time.monotonic() + budget
        for p in procs[1 if hog else 0 :]:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
        sink = results[-1].buf.cast("q")
        lat_us = np.array(sink[2 : 2 + n], dtype=np.int64) / 1000.0
        timeouts = sum(int(r.buf.cast("q")[0]) for r in results)
        cpu = [int(r.buf.cast("q")[1]) / 1e9 for r in results]
        sink.release()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(timeout=5)
        for ring in rings:
            ring.close()
            ring.unlink()
        for bell in bells:
            bell.close()
        for name in bell_names:
            if kind == "fifo":
                unlink_doorbell_quietly(name)
            else:
                SemaphoreDoorbell.unlink(name)
        for segment in results:
            segment.close()
            segment.unlink()
    received = lat_us[lat_us > 0]
    q = np.percentile(received, [50, 90, 99, 99.9]) if len(received) else [float("nan")] * 4
    return {
        "wake": kind,
        "hops": hops,
        "load": "+1hog" if hog else "quiet",
        "n": len(received),
        "p50": q[0],
        "p90": q[1],
        "p99": q[2],
        "p99.9": q[3],
        "max": float(received.max()) if len(received) else float("nan"),
        "timeouts": timeouts,
        "cpu_s": "/".join(f"{c:.2f}" for c in cpu),
        # CPU per message of each stage: its wake-up (poll + drain) and its ring of the next stage
        "cpu_us_per_msg": [round(c / max(len(received), 1) * 1e6, 1) for c in cpu],
    }


def micro(kind: str) -> tuple[float, float]:
    """ns per ring() with no sleeper, and per ring() + drain with a flagged sleeper (same process)."""
    name = f"titan-bench-{os.getpid()}-micro-{kind}"
    bell = open_bell(kind, name, create=True)
    reps = 20000
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        bell.ring()
    idle = (time.perf_counter_ns() - t0) / reps
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        bell.prepare_sleep()
        bell.ring()
        bell.sleep(0)
    armed = (time.perf_counter_ns() - t0) / reps
    bell.close()
    if kind == "fifo":
        unlink_doorbell_quietly(name)
    else:
        SemaphoreDoorbell.unlink(name)
    return idle, armed


def print_table(rows: Sequence[dict[str, object]]) -> None:
    cols = ["wake", "hops", "load", "n", "p50", "p90", "p99", "p99.9", "max", "timeouts", "cpu_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for row in rows:
        cells = [f"{v:,.1f}" if isinstance(v, float) else str(v) for v in (row[c] for c in cols)]
        print("| " + " | ".join(cells) + " |")


def run(quick: bool = False) -> dict[str, object]:
    """For ``make bench``: both wake primitives, paced one-way latency over 1 hop (and 3 hops unless
    ``quick``) on the machine as it is, with each stage's CPU per message (what a cross-process hop
    costs the engine: every intent crosses about eight of them), plus the in-process micro figures."""
    ctx = multiprocessing.get_context("spawn")
    n = 1000 if quick else 3000
    out: dict[str, object] = {}
    for kind in ("fifo", "sem"):
        idle, armed = micro(kind)
        out[f"{kind}_ring_no_sleeper_ns"] = round(idle)
        out[f"{kind}_prepare_ring_sleep0_ns"] = round(armed)
    rows = [
        run_row(ctx, kind, hops, False, n, 200e-6, 4e-6)
        for hops in ((1,) if quick else (1, 3))
        for kind in ("fifo", "sem")
    ]
    per_hop = [(row["wake"], row["hops"], row["cpu_us_per_msg"]) for row in rows]
    out["summary"] = "CPU per hop (last stage, µs per message): " + ", ".join(
        f"{kind} {hops} hop(s) {cpu[-1] if isinstance(cpu, list) else cpu}" for kind, hops, cpu in per_hop
    )
    out["rows"] = [
        {k: (round(float(v), 1) if isinstance(v, float) else v) for k, v in row.items() if k != "cpu_s"}
        for row in rows
    ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="messages per row (default 5000)")
    parser.add_argument("--pace-us", type=float, default=200.0, help="source pacing (default 200 µs)")
    parser.add_argument("--spin-us", type=float, default=4.0, help="consumer spin before sleeping")
    parser.add_argument("--kinds", default="fifo,sem")
    parser.add_argument("--hops", default="1,3")
    parser.add_argument("--loads", default="quiet,hog")
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    kinds = args.kinds.split(",")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, n={args.n}, pace={args.pace_us} µs, "
        f"spin={args.spin_us} µs; latency in µs (one-way, source stamp -> last stage)"
    )
    for kind in kinds:
        idle, armed = micro(kind)
        print(f"{kind}: ring() no sleeper {idle:.0f} ns; prepare+ring+sleep(0) {armed:.0f} ns")
    rows = []
    for hops in (int(h) for h in args.hops.split(",")):
        for hog in (load == "hog" for load in args.loads.split(",")):
            for kind in kinds:
                rows.append(run_row(ctx, kind, hops, hog, args.n, args.pace_us * 1e-6, args.spin_us * 1e-6))
    print_table(rows)
    print("load average (1/5/15 min) after the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
