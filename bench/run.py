"""`make bench`: FastPath round trips through the whole engine, with the per-stage breakdown.

Starts a real engine (`titan run`, embedded NATS, simulated market data, paper venue), then:

1. closed loop, one intent at a time: PREPARE and CONFIRM round trips (client send → reply
   received), ``--intents`` measured after ``--warmup``;
2. the stage breakdown of those CONFIRMs, from the monotonic stamps the messages carry
   (socket read → command ring → core → order ring → gateway → report ring → core → reply);
3. sustained throughput: pipelined PREPARE+CONFIRM pairs with a bounded window.

Prints a table and writes ``bench/results/<timestamp>.json``. Latencies in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from titan.client import FastPathClient

from titan.harness import SECRET, start_engine

RESULTS = Path(__file__).resolve().parent / "results"
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
STAGES = [
    ("ingress: read → command ring", "t_read", "t_ring"),
    ("command ring → core", "t_ring", "t_core_in"),
    ("core: intent → order ring", "t_core_in", "t_order_out"),
    ("order ring → gateway", "t_order_out", "t_gw_in"),
    ("gateway: order → report ring", "t_gw_in", "t_gw_out"),
    ("report ring → core", "t_gw_out", "t_report_in"),
    ("core: report → reply ring", "t_report_in", "t_core_out"),
    ("reply ring → ingress write", "t_core_out", "t_write"),
]


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)  # 1 ns .. 60 s in ns, 3 significant digits


def summary(h: HdrHistogram) -> dict[str, float]:
    out = {f"p{p:g}": h.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    out["max"] = h.get_max_value() / 1000
    out["mean"] = h.get_mean_value() / 1000
    out["n"] = h.get_total_count()
    return out


async def closed_loop(client: FastPathClient, n: int, warmup: int, tag: str) -> dict[str, Any]:
    prep_h, conf_h = new_hist(), new_hist()
    stage_h = {name: new_hist() for name, _, _ in STAGES}
    failures: dict[str, int] = {}
    for i in range(warmup + n):
        sid = f"bench-{tag}-{i}"
        t0 = time.perf_counter_ns()
        rp = await client.prepare(sid, "BTCUSDT", "LONG", 50000, 50100, position_size=100)
        t1 = time.perf_counter_ns()
        rc = await client.confirm(sid, trace=True)
        t2 = time.perf_counter_ns()
        ok = bool(getattr(rp, "prepared", False)) and bool(getattr(rc, "executed", False))
        if not ok:
            reason = getattr(rc, "reason", None) or getattr(rp, "reason", None) or "error"
            failures[str(reason)] = failures.get(str(reason), 0) + 1
        if i < warmup:
            continue
        prep_h.record_value(t1 - t0)
        conf_h.record_value(t2 - t1)
        stages = getattr(rc, "stages", None) or {}
        for name, a, b in STAGES:
            if stages.get(a) and stages.get(b) and stages[b] >= stages[a]:
                stage_h[name].record_value(max(1, stages[b] - stages[a]))
    return {
        "prepare": summary(prep_h),
        "confirm": summary(conf_h),
        "stages": {k: summary(v) for k, v in stage_h.items() if v.get_total_count()},
        "failures": failures,
    }


async def throughput(client: FastPathClient, seconds: float, window: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(window)
    done = 0
    errors = 0
    lat = new_hist()

    async def one(i: int) -> None:
        nonlocal done, errors
        async with sem:
            sid = f"tput-{i}"
            t0 = time.perf_counter_ns()
            rp = await client.prepare(sid, "BTCUSDT", "SHORT", 50000, 50100, position_size=100)
            rc = await client.confirm(sid)
            lat.record_value(time.perf_counter_ns() - t0)
            if getattr(rp, "prepared", False) and getattr(rc, "executed", False):
                done += 1
            else:
                errors += 1

    t_start = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    i = 0
    while time.perf_counter() - t_start < seconds:
        await sem.acquire()
        sem.release()
        t = asyncio.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        i += 1
        if i % window == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t_start
    return {
        "intents_per_s": done / elapsed,
        "completed": done,
        "errors": errors,
        "window": window,
        "pair_latency": summary(lat),
    }


def fmt_row(name: str, s: dict[str, float]) -> str:
    cols = "".join(f"{s[f'p{p:g}']:>10.1f}" for p in PERCENTILES)
    return f"{name:<34}{cols}{s['max']:>10.1f}{int(s['n']):>9}"


def print_table(res: dict[str, Any]) -> None:
    head = f"{'latency (µs)':<34}" + "".join(f"{'p' + format(p, 'g'):>10}" for p in PERCENTILES)
    print(head + f"{'max':>10}{'n':>9}")
    for framing, r in res["paths"].items():
        print(fmt_row(f"PREPARE round trip [{framing}]", r["prepare"]))
        print(fmt_row(f"CONFIRM→executed [{framing}]", r["confirm"]))
    print("\nCONFIRM stage breakdown (ndjson)")
    for name, s in res["paths"].get("ndjson", {}).get("stages", {}).items():
        print(fmt_row("  " + name, s))
    t = res["throughput"]
    print(
        f"\nthroughput: {t['intents_per_s']:.0f} intents/s (PREPARE+CONFIRM pairs, window {t['window']},"
        f" {t['completed']} completed, {t['errors']} errors)"
    )
    for framing, r in res["paths"].items():
        if r["failures"]:
            print(f"failures [{framing}]: {r['failures']}")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="titan-bench-") as tmp:
        engine = start_engine(Path(tmp), extra="", log_level="WARNING")
        try:
            paths: dict[str, Any] = {}
            for framing in ("ndjson", "binary"):
                client = FastPathClient(engine.socket_path, SECRET, framing=framing, timeout=5.0)  # type: ignore[arg-type]
                await client.connect()
                try:
                    paths[framing] = await closed_loop(client, args.intents, args.warmup, framing)
                finally:
                    await client.close()
            client = FastPathClient(engine.socket_path, SECRET, framing="binary", timeout=5.0)
            await client.connect()
            try:
                tput = await throughput(client, args.seconds, args.window)
            finally:
                await client.close()
        finally:
            engine.stop()
    return {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "config": {"intents": args.intents, "warmup": args.warmup, "throughput_seconds": args.seconds},
        "paths": paths,
        "throughput": tput,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="bench.run")
    p.add_argument("--intents", type=int, default=20_000)
    p.add_argument("--warmup", type=int, default=2_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="small run (CI smoke)")
    args = p.parse_args()
    if args.quick:
        args.intents, args.warmup, args.seconds = 1_000, 200, 2.0
    res = asyncio.run(bench(args))
    print_table(res)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{res['timestamp'].replace(':', '')}.json"
    out.write_text(json.dumps(res, indent=1))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
