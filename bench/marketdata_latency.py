"""Market-data latency: simulator send → ticker-table row written, per venue, in microseconds.

Self-contained, on this host (no engine needed):

- this process runs the venue simulator (:class:`~titan.venues.sim.SimServer`, manual price source)
  and drives the touch of BTC/USDT and ETH/USDT one tick up every ``step_ms``, so every frame carries
  a bid never seen before (the sample's key). Each venue object's ``ticker_frames`` is wrapped to
  take ``time.monotonic_ns()`` right after the frames are built, just before they are written to
  the socket (the "send" stamp; the frame decoding that finds their keys happens before the stamp);
- a child process runs the real market-data connectors (:func:`titan.marketdata.connector.run_connectors`)
  writing a real shared-memory :class:`~titan.shm.ticker.TickerTable` through the marketdata
  process's :class:`~titan.procs.marketdata.TableSink`, like ``marketdata --market venues``. It
  keeps, per write, the row's ``recv_mono_ns`` (taken when the connector got the frame) and a
  ``monotonic_ns()`` right after ``TickerTable.write`` returned, and hands them back at the end.

``CLOCK_MONOTONIC`` is one clock for every process on the host, so the differences are exact to the
clock's resolution. Reported per venue: ``send_to_table`` (send → row written: kernel, websockets,
asyncio wake-up, decode, delta merge, rounding, seqlock write) and ``send_to_recv`` (send → the
connector holds the frame: what the staleness guard's "receive time" leaves out). The simulator's
own timers (Bybit every 100 ms, MEXC every second) are replaced by the driver sending those pushes
right after each quote, so each venue gets one frame per step; a venue's cadence adds to the age of
a quote, not to this latency.

``bench/run.py`` calls :func:`run`; ``python -m bench.marketdata_latency`` prints the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import time
import uuid
from decimal import Decimal
from typing import Any

import msgspec

from bench.stats import new_histogram, record, summarize
from titan.marketdata.connector import run_connectors
from titan.marketdata.settings import MarketDataSettings, VenueFeedSettings, sim_ws_urls
from titan.procs.marketdata import TableSink
from titan.shm.ticker import TickerIndex, TickerTable
from titan.symbols import normalize_symbol
from titan.venues.sim import SimConfig, SimServer
from titan.venues.sim.base import PublicConn, VenueSim
from titan.venues.sim.prices import Quote

VENUES = ("bybit", "binance", "mexc")
SYMBOLS = ("BTC/USDT", "ETH/USDT")
START = {"BTC/USDT": (Decimal("65000.0"), Decimal("0.1")), "ETH/USDT": (Decimal("3200.00"), Decimal("0.01"))}
STEP_MS = 20
# Venues whose ticker pushes run on a timer (tick name = venue); the driver sends those pushes itself.
TIMER_VENUES = ("bybit", "mexc")
TIMERS_OFF_MS = 3_600_000
MIN_STEPS = 500  # full runs: at least 1000 samples per venue (10 s)
# (venue, canonical symbol, bid in table units)
Key = tuple[str, str, int]


class WriteSample(msgspec.Struct, array_like=True):
    venue: str
    symbol: str
    bid_units: int
    recv_mono_ns: int
    written_mono_ns: int


class StampingSink(TableSink):
    """The marketdata process's table sink, keeping when each write finished (one list append)."""

    def __init__(self, table: TickerTable, index: TickerIndex) -> None:
        super().__init__(table, index)
        self.samples: list[WriteSample] = []

    def on_ticker(
        self,
        venue: str,
        symbol: str,
        bid: Decimal | None,
        bid_size: Decimal | None,
        ask: Decimal | None,
        ask_size: Decimal | None,
        last: Decimal | None,
        mark: Decimal | None,
        exchange_ts_ms: int,
        recv_mono_ns: int,
    ) -> None:
        super().on_ticker(
            venue, symbol, bid, bid_size, ask, ask_size, last, mark, exchange_ts_ms, recv_mono_ns
        )
        written = time.monotonic_ns()
        self.samples.append(WriteSample(venue, symbol, self._p(bid), recv_mono_ns, written))


def bid_units(bid: Decimal) -> int:
    return TableSink._p(bid)


def feed_settings(ports: dict[str, int]) -> MarketDataSettings:
    urls = sim_ws_urls(ports=ports)

    def feed(venue: str) -> VenueFeedSettings:
        return VenueFeedSettings(ws_url=urls[venue], symbols=list(SYMBOLS), ping_interval_ms=15_000)

    return MarketDataSettings(
        bybit=feed("bybit"),
        binance=feed("binance"),
        mexc=feed("mexc"),
        silence_ms=60_000,
        first_data_ms=60_000,
    )


def connector_child(
    ports: dict[str, int], table_name: str, pipe: multiprocessing.connection.Connection
) -> None:
    """The marketdata side: connectors → table until the parent says stop; then the samples back."""
    table = TickerTable.attach(table_name)
    sink = StampingSink(table, TickerIndex([(v, s) for v in VENUES for s in SYMBOLS]))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_parent() -> None:  # any message from the parent means stop
            loop.remove_reader(pipe.fileno())
            stop.set()

        loop.add_reader(pipe.fileno(), on_parent)
        await run_connectors(feed_settings(ports), sink, stop)

    try:
        pipe.send_bytes(b"ready")
        asyncio.run(main())
        pipe.recv_bytes()
        pipe.send_bytes(msgspec.msgpack.encode(sink.samples))
    finally:
        table.close()
        pipe.close()


def frame_key(raw: bytes) -> tuple[str, int] | None:
    """(canonical symbol, bid units) of one ticker frame; None for frames without a bid."""
    doc = msgspec.json.decode(raw)
    if not isinstance(doc, dict):
        return None
    data = doc.get("data", doc)
    if not isinstance(data, dict):
        return None
    symbol = data.get("symbol") or data.get("s") or doc.get("symbol")
    bid = data.get("bid1Price") or data.get("b") or data.get("bid1")
    if not symbol or bid is None:
        return None
    return normalize_symbol(str(symbol)), bid_units(Decimal(str(bid)))


def stamp_sends(sim: VenueSim, sends: dict[Key, int]) -> None:
    """Wrap the venue's frame builder: first send time (monotonic ns) of every (symbol, bid)."""
    build = sim.ticker_frames
    venue = sim.venue

    def stamped(conn: PublicConn, quotes: dict[str, Quote], tick: str) -> list[bytes]:
        frames = build(conn, quotes, tick)
        keys = [k for k in (frame_key(f) for f in frames) if k is not None]
        now = time.monotonic_ns()  # after building and decoding: the frames go to the socket next
        for symbol, units in keys:
            sends.setdefault((venue, symbol, units), now)
        return frames

    sim.ticker_frames = stamped  # type: ignore[method-assign]  # instance-level wrap for measuring


async def drive(sim: SimServer, steps: int, step_ms: int, spaced: bool) -> list[list[Key]]:
    """Move every symbol's touch one tick up per step; the keys each step put on the wire.

    Binance sends on the quote itself; the Bybit and MEXC pushes their timers would send are sent
    here right after it, so every step yields exactly one frame per venue and symbol. ``spaced``:
    the step's frames go out evenly spread over the step (each frame alone on the connectors);
    otherwise back to back (a burst: a frame also waits for the ones ahead of it).
    """
    sends_per_step = len(SYMBOLS) * len(VENUES)
    gap_s = step_ms / 1000 / sends_per_step if spaced else 0.0
    out: list[list[Key]] = []
    for k in range(1, steps + 1):
        keys: list[Key] = []
        for symbol in SYMBOLS:
            start, tick = START[symbol]
            bid = start + tick * k
            quote = await sim.set_quote(symbol, bid, bid + tick, last=bid)
            for venue in TIMER_VENUES:
                if gap_s:
                    await asyncio.sleep(gap_s)  # pacing the sends
                await sim.venues[venue].publish({symbol: quote}, venue)
            keys.extend((v, symbol, bid_units(bid)) for v in VENUES)
            if gap_s:
                await asyncio.sleep(gap_s)
        out.append(keys)
        if not gap_s:
            await asyncio.sleep(step_ms / 1000)  # pacing the price source, not waiting for a result
    return out


async def wait_rows(table: TickerTable, index: TickerIndex, last: list[Key], timeout_s: float) -> None:
    """Until every row shows the last step's bid (the final frames arrived), or the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = [(index.row(v, s), units) for v, s, units in last]
        if all(r is not None and (snap := table.read(r)) is not None and snap.bid == u for r, u in rows):
            return
        await asyncio.sleep(0.01)


async def measure(steps: int, warmup: int, step_ms: int, spaced: bool) -> dict[str, Any]:
    table_name = f"/ttmdbench-{uuid.uuid4().hex[:8]}-ticker"
    index = TickerIndex([(v, s) for v in VENUES for s in SYMBOLS])
    table = TickerTable.create(table_name, len(index))
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    sends: dict[Key, int] = {}
    cfg = SimConfig(price_source="manual", bybit_ticker_ms=TIMERS_OFF_MS, mexc_ticker_ms=TIMERS_OFF_MS)
    child: multiprocessing.process.BaseProcess | None = None
    try:
        async with SimServer(cfg) as sim:
            for venue in VENUES:
                stamp_sends(sim.venues[venue], sends)
            child = ctx.Process(
                target=connector_child, args=(sim.ports(), table_name, child_end), name="md-bench"
            )
            child.start()
            if not await asyncio.to_thread(parent_end.poll, 30):
                raise RuntimeError("connector process did not start")
            parent_end.recv_bytes()
            await wait_connected(sim, timeout_s=10)
            keys = await drive(sim, warmup + steps, step_ms, spaced)
            await wait_rows(table, index, keys[-1], timeout_s=5)
            parent_end.send_bytes(b"stop")
            if not await asyncio.to_thread(parent_end.poll, 10):
                raise RuntimeError("connector process sent no samples")
            samples = msgspec.msgpack.decode(parent_end.recv_bytes(), type=list[WriteSample])
    finally:
        if child is not None:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join()
        parent_end.close()
        child_end.close()
        table.close()
        with contextlib.suppress(Exception):
            table.unlink()
    measured = {k for step in keys[warmup:] for k in step}
    return summarize_samples(sends, samples, measured)


async def wait_connected(sim: SimServer, timeout_s: float) -> None:
    """Until every venue has a public subscriber for both symbols (frames sent before are lost)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        subs = [sum(len(c.subs) for c in sim.venues[v].public) for v in VENUES]
        if all(n >= len(SYMBOLS) for n in subs):
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("the connectors did not subscribe in time")


def summarize_samples(
    sends: dict[Key, int], samples: list[WriteSample], measured: set[Key]
) -> dict[str, Any]:
    first_write: dict[Key, WriteSample] = {}
    for s in samples:
        first_write.setdefault((s.venue, s.symbol, s.bid_units), s)
    table_all = new_histogram()
    venues: dict[str, Any] = {}
    for venue in VENUES:
        to_table, to_recv = new_histogram(), new_histogram()
        lost = 0
        for key in (k for k in measured if k[0] == venue):
            sent, write = sends.get(key), first_write.get(key)
            if sent is None or write is None:
                lost += 1
                continue
            record(to_table, write.written_mono_ns - sent)
            record(table_all, write.written_mono_ns - sent)
            record(to_recv, write.recv_mono_ns - sent)
        venues[venue] = {
            "send_to_table": msgspec.to_builtins(summarize(to_table)),
            "send_to_recv": msgspec.to_builtins(summarize(to_recv)),
            "unmatched": lost,  # measured keys never sent or never written
        }
    overall = summarize(table_all)
    return {"n": overall.n, "p50": overall.p50, "p99": overall.p99, "max": overall.max, "venues": venues}


def run(engine: object | None = None, n: int = 1000, quick: bool = False, warmup: int = 50) -> dict[str, Any]:
    """Measure ``n`` price steps (each: one frame per venue and symbol) after ``warmup`` steps.

    Full runs take at least :data:`MIN_STEPS` steps; ``quick`` at most 100.

    ``engine`` is accepted for ``bench/run.py`` and not used: the engine's own market data may be
    the simulated walk, and the simulator stamps frames in milliseconds only; this measurement is
    self-contained for µs resolution.
    """
    if quick:
        n, warmup = min(n, 100), min(warmup, 10)
    else:
        n = max(n, MIN_STEPS)  # the suite's generic n (100) is sized for slow round trips
    t0 = time.monotonic()
    result = asyncio.run(measure(n, warmup, STEP_MS, spaced=True))
    burst = None if quick else asyncio.run(measure(n, warmup, STEP_MS, spaced=False))
    return {
        "unit": "us",
        "what": (
            "simulator frame built, stamped just before its socket write (monotonic, simulator process)"
            " -> ticker-table row written by the real connectors + TableSink in a separate process"
            " (monotonic right after TickerTable.write); send_to_recv stops at the connector's receive"
            " stamp (the row's recv_mono_ns). Loopback websockets, same host, one CLOCK_MONOTONIC."
            " Top level and venues: frames spread over each step (one at a time on the connectors);"
            " burst: the step's 6 frames back to back (full runs only)."
        ),
        "setup": {
            "steps": n,
            "warmup_steps": warmup,
            "step_ms": STEP_MS,
            "symbols": list(SYMBOLS),
            "samples_per_venue": n * len(SYMBOLS),
            "cadence": f"one frame per venue and symbol every {STEP_MS} ms (Bybit/MEXC pushes sent per step)",
        },
        "engine_used": False if engine is None else "not used (self-contained measurement)",
        "wall_s": round(time.monotonic() - t0, 2),
        **result,
        "burst": burst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.marketdata_latency", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="price steps measured (2 samples per venue each)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(n=args.n, quick=args.quick, warmup=args.warmup), indent=2))


if __name__ == "__main__":
    main()
