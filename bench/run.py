"""`make bench` / `make bench-quick`: latency and throughput of the whole engine, with a baseline.

One run, in order (see README "Reading make bench"):

1. starts a real engine (`titan run`: embedded NATS, simulated market data, paper venue);
2. closed loop per framing (NDJSON, binary): PREPARE, CONFIRM→executed and ABORT round trips, one in
   flight, each traced, with the per-stage breakdown from the messages' own monotonic stamps;
3. open loop per framing at fixed offered rates, from several load-generator processes, latency from
   each intent's intended send time (no coordinated omission); the highest rate with p99 < 1 ms (and
   no saturation or failure) is the throughput figure;
4. the optional paths other modules provide (``bench/nats_path.py`` etc.), when present;
5. the engine stopped, the baseline: the CONFIRM chain's structs and codec through three processes
   over the shared-memory rings, then over ``multiprocessing.Queue`` (``bench/baseline_chain.py``).

Writes ``bench/results/<timestamp>.json`` and ``.png`` and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib
import importlib.metadata
import inspect
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from bench.baseline_chain import run_baseline
from bench.fastpath_load import (
    Framing,
    OpenLoopConfig,
    OpenLoopStep,
    closed_loop,
    merge_step,
    open_loop_worker,
    warm_up_worker,
)
from bench.report import check_complete, render_table, write_json, write_plot
from titan.harness import SECRET, Engine, start_engine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCHEMA = 1
EXTRA_PATHS = ("nats_path", "shm_doorbell", "core_cpu", "gateways", "hostile_clients", "marketdata_latency")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class SuiteConfig(msgspec.Struct):
    quick: bool = False
    intents: int = 5_000  # closed loop, measured, per framing (`--intents 20000` for a longer run)
    warmup: int = 500
    framings: tuple[str, ...] = ("ndjson", "binary")
    open_loop_framings: tuple[str, ...] = ("binary", "ndjson")
    rates: tuple[int, ...] = (1_000, 5_000, 10_000, 20_000, 50_000)
    step_seconds: float = 2.0  # sending window per rate, warm-up included
    step_warmup_seconds: float = 0.4
    workers: int = 2  # load-generator processes
    connections: int = 4  # per worker
    max_in_flight: int = 500  # per worker: beyond this the step is saturated and stops
    baseline_n: int = 10_000
    baseline_warmup: int = 1_000
    baseline_throughput_n: int = 30_000
    extras: tuple[str, ...] = EXTRA_PATHS

    @classmethod
    def quick_suite(cls) -> SuiteConfig:
        return cls(
            quick=True,
            intents=300,
            warmup=50,
            open_loop_framings=("binary",),
            rates=(1_000, 5_000),
            step_seconds=0.6,
            step_warmup_seconds=0.2,
            max_in_flight=200,
            baseline_n=1_000,
            baseline_warmup=100,
            baseline_throughput_n=3_000,
            extras=(),  # the NATS path alone can take 15 s when it times out: full run only
        )


# ------------------------------------------------------------------------------------ machine


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def box_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def proc_cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(stat[11]) + int(stat[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in ("titan-execution", "msgspec", "numpy", "posix_ipc", "hdrhistogram", "nats-py", "matplotlib"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# ------------------------------------------------------------------------------------ phases


def run_open_loop(
    engine: Engine, cfg: SuiteConfig, pool: concurrent.futures.ProcessPoolExecutor
) -> list[dict[str, Any]]:
    engine_pids = [engine.proc.pid, *engine.pids().values()]
    steps: list[dict[str, Any]] = []
    for framing in cfg.open_loop_framings:
        for rate in cfg.rates:
            start_at = time.monotonic_ns() + 300_000_000  # every worker connected by then
            configs = [
                OpenLoopConfig(
                    socket_path=engine.socket_path,
                    secret=SECRET,
                    framing=framing,
                    rate=rate / cfg.workers,
                    duration_s=cfg.step_seconds,
                    warmup_s=cfg.step_warmup_seconds,
                    connections=cfg.connections,
                    start_at_ns=start_at,
                    max_in_flight=cfg.max_in_flight,
                    tag=f"{framing}-{rate}-{w}-{start_at}",
                )
                for w in range(cfg.workers)
            ]
            eng0, box0, t0 = proc_cpu_s(engine_pids), box_cpu_ticks(), time.monotonic()
            results = list(pool.map(open_loop_worker, configs))
            eng1, box1, t1 = proc_cpu_s(engine_pids), box_cpu_ticks(), time.monotonic()
            step: OpenLoopStep = merge_step(framing, rate, cfg.step_seconds, cfg.connections, results)
            row: dict[str, Any] = msgspec.to_builtins(step)
            wall = max(t1 - t0 - 0.3, 1e-3)
            row["engine_cpu_pct_of_core"] = round(100 * (eng1 - eng0) / wall, 1)
            row["box_busy_pct"] = round(100 * (box1[0] - box0[0]) / max(box1[1] - box0[1], 1), 1)
            steps.append(row)
    return steps


def throughput_figures(steps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for framing in sorted({s["framing"] for s in steps}):
        rows = [s for s in steps if s["framing"] == framing]
        good = [
            s["offered_rate"]
            for s in rows
            if s["latency"]["n"]
            and s["latency"]["p99"] < 1000
            and not s["saturated"]
            and s["failed"] == 0
            and s["achieved_rate"] >= 0.95 * s["offered_rate"]
        ]
        out[framing] = {
            "max_rate_p99_under_1ms": max(good) if good else None,
            "max_achieved_rate": max((s["achieved_rate"] for s in rows), default=0.0),
            "criterion": "p99 (from intended send time) < 1 ms, not saturated, no failure, >= 95% delivered",
        }
    return out


def run_extra(name: str, quick: bool, engine: Engine | None) -> dict[str, Any]:
    """Call ``bench.<name>.run(...)`` when that module provides it, with the arguments it accepts."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except ImportError as e:
        return {"available": False, "reason": f"bench/{name}.py not present ({e.name or e})"}
    fn: Callable[..., Any] | None = getattr(module, "run", None)
    if fn is None:
        return {"available": False, "reason": f"bench/{name}.py has no run() yet"}
    # What a path module may ask for, by parameter name; ``n``/``warmup`` are its sample counts.
    offered: dict[str, Any] = {
        "quick": quick,
        "secret": SECRET,
        "n": 30 if quick else 100,
        "warmup": 5 if quick else 20,
    }
    if engine is not None:
        offered |= {"engine": engine, "socket_path": engine.socket_path, "nats_url": engine.nats_url}
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offered.items() if takes_all or k in params}
    t0 = time.monotonic()
    try:
        out = fn(**kwargs)
        if inspect.iscoroutine(out):
            out = asyncio.run(out)
    except Exception as e:  # someone else's path failing must not sink the suite's report
        return {"available": True, "error": f"{type(e).__name__}: {e}", "wall_s": time.monotonic() - t0}
    result = msgspec.to_builtins(out) if out is not None else {}
    return {"available": True, "wall_s": round(time.monotonic() - t0, 2), "result": result}


def _find_p99(extra: dict[str, Any]) -> float | None:
    """Best-effort p99 (µs) from another module's result: a ``p99`` at the top or one level down."""
    result = extra.get("result")
    if not isinstance(result, dict):
        return None
    for candidate in (result, *[v for v in result.values() if isinstance(v, dict)]):
        p99, n = candidate.get("p99"), candidate.get("n")
        if isinstance(p99, int | float) and not candidate.get("error") and (n is None or n > 0):
            return float(p99)
    return None


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    cl = res["closed_loop"].get("binary") or next(iter(res["closed_loop"].values()))
    f = cl["framing"]
    tput = [t["max_rate_p99_under_1ms"] or 0 for t in res["throughput"].values()]
    nats = _find_p99(res["extra_paths"].get("nats_path", {}))

    def t(
        name: str, target: str, measured: float | None, limit: float, higher_is_better: bool = False
    ) -> dict[str, Any]:
        met = None if measured is None else (measured >= limit if higher_is_better else measured <= limit)
        return {"name": name, "target": target, "measured": measured, "met": met}

    return [
        t(f"PREPARE p50 [{f}] (µs)", "<= 50", cl["prepare"]["p50"], 50),
        t(f"PREPARE p99 [{f}] (µs)", "<= 150", cl["prepare"]["p99"], 150),
        t(f"CONFIRM→executed p50 [{f}] (µs)", "<= 100", cl["confirm"]["p50"], 100),
        t(f"CONFIRM→executed p99 [{f}] (µs)", "<= 300", cl["confirm"]["p99"], 300),
        t(f"CONFIRM→executed p99.9 [{f}] (µs)", "<= 1000", cl["confirm"]["p99_9"], 1000),
        t("throughput, p99 < 1 ms (intents/s)", ">= 20000", float(max(tput, default=0)), 20_000, True),
        t("NATS intent→shadow fill p99 (µs)", "<= 2000", nats, 2000),
    ]


def run_suite(cfg: SuiteConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_before": loadavg(),
    }
    t_suite = time.monotonic()
    closed: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    phases: dict[str, float] = {}
    engine_info: dict[str, Any] = {}

    def phase_done(name: str, t0: float) -> float:
        now = time.monotonic()
        phases[name] = round(now - t0, 2)
        return now

    ctx = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="titan-bench-") as tmp,
        concurrent.futures.ProcessPoolExecutor(cfg.workers, mp_context=ctx) as pool,
    ):
        warm = [pool.submit(warm_up_worker) for _ in range(cfg.workers)]
        log("starting engine ...")
        t = time.monotonic()
        engine = start_engine(Path(tmp), extra="", log_level="WARNING")
        try:
            concurrent.futures.wait(warm)
            t = phase_done("engine start", t)
            engine_pids = [engine.proc.pid, *engine.pids().values()]
            engine_info["pids_start"] = engine.pids()
            for framing in cfg.framings:
                log(f"closed loop [{framing}]: {cfg.intents} intents after {cfg.warmup} warm-up ...")
                eng0 = proc_cpu_s(engine_pids)
                r = asyncio.run(
                    closed_loop(
                        engine.socket_path, SECRET, _framing(framing), cfg.intents, cfg.warmup, framing
                    )
                )
                row: dict[str, Any] = msgspec.to_builtins(r)
                row["engine_cpu_s"] = round(proc_cpu_s(engine_pids) - eng0, 3)
                closed[framing] = row
                t = phase_done(f"closed loop {framing}", t)
            log(f"open loop: rates {list(cfg.rates)} x {list(cfg.open_loop_framings)} ...")
            steps = run_open_loop(engine, cfg, pool)
            t = phase_done("open loop", t)
            for name in EXTRA_PATHS:
                if name in cfg.extras:
                    log(f"extra path {name} ...")
                    extra[name] = run_extra(name, cfg.quick, engine)
                    t = phase_done(name, t)
                else:
                    extra[name] = {"available": False, "reason": "not run in quick mode (or --no-extras)"}
            _, health = engine.health()
            engine_info["processes_end"] = health.get("processes", {})
        finally:
            engine.stop()
            # Restarts and warnings explain failures (ENGINE_NOT_READY, timeouts) in the numbers.
            engine_info["log_tail"] = engine.log_path.read_text(errors="replace")[-4000:]
    log("baseline chain: shm rings vs multiprocessing.Queue ...")
    t = time.monotonic()
    baseline = run_baseline(cfg.baseline_n, cfg.baseline_warmup, cfg.baseline_throughput_n)
    phase_done("baseline", t)
    machine["loadavg_after"] = loadavg()
    res: dict[str, Any] = {
        "schema": SCHEMA,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "versions": versions(),
        "config": msgspec.to_builtins(cfg),
        "units": "latencies in microseconds; rates per second; CPU in seconds or % of one core",
        "closed_loop": closed,
        "open_loop": steps,
        "throughput": throughput_figures(steps),
        "baseline": msgspec.to_builtins(baseline),
        "extra_paths": extra,
        "engine": engine_info,
        "phases_s": phases,
        "wall_s": 0.0,
    }
    res["targets"] = targets(res)
    res["wall_s"] = round(time.monotonic() - t_suite, 1)
    return res


def _framing(name: str) -> Framing:
    if name == "ndjson":
        return "ndjson"
    if name == "binary":
        return "binary"
    raise ValueError(f"unknown framing {name!r}")


def save(res: dict[str, Any], out_dir: Path) -> tuple[Path, Path, str | None]:
    stem = res["timestamp"].replace(":", "")
    json_path, png_path = out_dir / f"{stem}.json", out_dir / f"{stem}.png"
    write_json(res, json_path)
    return json_path, png_path, write_plot(res, png_path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small run, under 30 s (CI smoke)")
    p.add_argument("--intents", type=int, help="closed-loop intents measured per framing")
    p.add_argument("--rates", type=str, help="comma-separated offered rates, e.g. 1000,5000,20000")
    p.add_argument("--step-seconds", type=float, help="open-loop sending window per rate")
    p.add_argument("--workers", type=int, help="load-generator processes")
    p.add_argument("--connections", type=int, help="connections per load-generator process")
    p.add_argument("--no-extras", action="store_true", help="skip bench/nats_path.py and the other modules")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON and PNG")
    args = p.parse_args(argv)
    cfg = SuiteConfig.quick_suite() if args.quick else SuiteConfig()
    if args.intents:
        cfg.intents = args.intents
        cfg.warmup = max(10, args.intents // 10)
    if args.rates:
        cfg.rates = tuple(int(x) for x in args.rates.split(","))
    if args.step_seconds:
        cfg.step_seconds = args.step_seconds
    if args.workers:
        cfg.workers = args.workers
    if args.connections:
        cfg.connections = args.connections
    if args.no_extras:
        cfg.extras = ()
    res = run_suite(cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(render_table(res))
    json_path, png_path, plot_problem = save(res, args.out)
    print(f"\nresults: {json_path}")
    print(f"plot:    {png_path}" if plot_problem is None else f"plot:    not written: {plot_problem}")
    print(f"suite wall time {res['wall_s']} s")
    problems = check_complete(res)
    for problem in problems:
        print(f"incomplete result: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
