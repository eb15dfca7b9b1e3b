"""CONFIRM→executed through each simulated venue (simulator latency 0) beside the paper venue.

One engine (``titan run``) with the venue simulator under the supervisor (``engine.start_sim``),
market data from the simulated venues, and gateways for Bybit, Binance, MEXC and paper (filling on
the simulated Binance book). Closed loop, one intent at a time per venue: a marketable intent
(``velocity`` 0.01 → MARKET) from a FastPath source routed to that venue alone
(``routing.per_source``). Two latencies, in microseconds: CONFIRM sent → its reply (``executed``: core
replies on the first venue outcome — the ACK on a real venue, the FILL on paper), and CONFIRM sent →
the venue fill event received on NATS. Intents are paced under each venue's default
account-wide order budget (risk-and-state.md §9: MEXC allows 2 orders/s), so the gateway never
answers RATE_LIMITED; MEXC therefore takes fewer samples.

``bench/run.py`` calls :func:`run`; ``python -m bench.gateways`` prints the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats
from hdrh.histogram import HdrHistogram

from titan.client import FastPathClient
from titan.harness import SECRET, Engine, start_engine

VENUES = ("paper", "bybit", "binance", "mexc")
# FastPath sources are a closed set (fastpath.md): one per venue, each routed to that venue alone.
SOURCE = {"paper": "scavenger", "bybit": "hunter", "binance": "sentinel", "mexc": "brain"}
# Seconds between two orders to one venue: under its default create bucket's refill rate.
PACE_S = {"paper": 0.0, "bybit": 0.12, "binance": 0.05, "mexc": 0.55}
MEXC_MAX_SAMPLES = 30
ENV = {
    "TITAN__ENGINE__START_SIM": "true",
    "TITAN__MARKETDATA__MODE": '"venues"',
    "TITAN__MARKETDATA__SYMBOLS": '["BTC/USDT", "ETH/USDT"]',
    "TITAN__VENUES__PAPER__PRICE_SOURCE": '"binance"',
    "TITAN__VENUES__BYBIT__ENABLED": "true",
    "TITAN__VENUES__BINANCE__ENABLED": "true",
    "TITAN__VENUES__MEXC__ENABLED": "true",
}
# Each venue is reached from its own FastPath source, routed to that venue alone.
SIM = """
[sim]
fill_delay_ms = 0
""" + "".join(
    f"""
[routing.per_source.{SOURCE[v]}]
weights = {{ {v} = 1 }}
"""
    for v in VENUES
)


def summary(hist: Any, failures: Counter[str]) -> dict[str, Any]:
    n = int(hist.get_total_count())
    out: dict[str, Any] = {"n": n, "failed": sum(failures.values())}
    if failures:
        out["failures"] = dict(failures)
    if n:
        for name, q in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0)):
            out[name] = round(hist.get_value_at_percentile(q) / 1000, 1)
        out["max"] = round(hist.get_max_value() / 1000, 1)
    return out


async def measure_venue(
    client: FastPathClient,
    fills: dict[str, int],
    arrived: asyncio.Event,
    venue: str,
    n: int,
    warmup: int,
    tag: str,
) -> dict[str, Any]:
    """Closed loop on one venue: CONFIRM → reply (executed) and CONFIRM → fill event on NATS."""
    reply_hist = HdrHistogram(1, 60_000_000_000, 3)
    fill_hist = HdrHistogram(1, 60_000_000_000, 3)
    failures: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    total = warmup + (min(n, MEXC_MAX_SAMPLES) if venue == "mexc" else n)
    for i in range(total):
        t_next = time.monotonic() + PACE_S[venue]
        sid = f"gwb-{tag}-{venue}-{i}"
        measured = i >= warmup
        prep: Any = None
        for _ in range(100):  # quotes may be briefly stale: retry the PREPARE, nothing was placed
            prep = await client.prepare(
                sid, "BTC/USDT", "LONG", 65000, 65100, position_size=200, velocity=0.01
            )
            if getattr(prep, "prepared", False):
                break
            await asyncio.sleep(0.02)
        if not getattr(prep, "prepared", False):
            failures[f"prepare:{getattr(prep, 'reason', None)}"] += measured
            continue
        t0 = time.monotonic_ns()
        conf: Any = await client.confirm(sid)
        t_reply = time.monotonic_ns()
        if not getattr(conf, "executed", False):
            failures[f"confirm:{getattr(conf, 'reason', None)}"] += measured
            continue
        deadline = time.monotonic() + 5
        while sid not in fills and time.monotonic() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), max(0.0, deadline - time.monotonic()))
        if measured:
            statuses[str(getattr(conf, "status", None))] += 1
            reply_hist.record_value(max(1, t_reply - t0))
            if sid in fills:
                fill_hist.record_value(max(1, fills[sid] - t0))
            else:
                failures["no fill event in 5 s"] += 1
        await asyncio.sleep(max(0.0, t_next - time.monotonic()))
    return {
        "confirm_to_reply": summary(reply_hist, Counter()),
        "confirm_to_fill_event": summary(fill_hist, failures),
        "reply_status": dict(statuses),
    }


async def measure(engine: Engine, n: int, warmup: int) -> dict[str, Any]:
    tag = f"{time.time_ns() % 10**9:x}"
    fills: dict[str, int] = {}
    arrived = asyncio.Event()
    nc = await nats.connect(engine.nats_url)

    async def on_fill(msg: Any) -> None:
        t = time.monotonic_ns()
        sid = json.loads(msg.data).get("payload", {}).get("signalId")
        if sid:
            fills.setdefault(sid, t)
            arrived.set()

    await nc.subscribe("titan.evt.execution.fill.v1.>", cb=on_fill)
    await nc.flush()
    out: dict[str, Any] = {}
    try:
        for venue in VENUES:
            async with FastPathClient(
                engine.socket_path, SECRET, source=SOURCE[venue], timeout=10.0
            ) as client:
                out[venue] = await measure_venue(client, fills, arrived, venue, n, warmup, tag)
    finally:
        await nc.drain()
    return out


async def run(n: int = 100, warmup: int = 20, quick: bool = False) -> dict[str, Any]:
    """Start an engine on the simulated venues, measure each venue, stop it."""
    if quick:
        n, warmup = min(n, 30), min(warmup, 5)
    with tempfile.TemporaryDirectory(prefix="titan-bench-gw-") as tmp:
        engine = await asyncio.to_thread(start_engine, Path(tmp), SIM, 90.0, "WARNING", ENV)
        try:
            venues = await measure(engine, n, warmup)
        finally:
            await asyncio.to_thread(engine.stop)
    return {
        "unit": "us",
        "what": "closed loop, simulator latency 0: CONFIRM sent -> its reply (executed: the first venue"
        " outcome, ACK on a real venue, FILL on paper) and -> the venue fill event on NATS",
        "venues": venues,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateways", description=__doc__)
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.n, args.warmup, args.quick)), indent=2))


if __name__ == "__main__":
    main()
