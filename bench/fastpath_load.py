"""FastPath load against a running engine: closed loop (one request at a time) and open loop (fixed rate).

Closed loop: one connection, one request in flight. PREPARE, CONFIRM→executed and ABORT round trips,
each traced (``trace=True``) so the reply carries the engine's monotonic stage stamps; the client adds
its own send/receive stamps (same CLOCK_MONOTONIC, system-wide on Linux) so the breakdown covers the
whole trip, socket included.

Open loop: each worker process sends intents (PREPARE, then CONFIRM on the same connection once the
PREPARE reply is in) on a fixed schedule ``start + i / rate``, over several connections, and records
latency from each intent's *intended* send time to the CONFIRM reply (no coordinated omission: a late
send counts against us). It also records the latency from the actual send, to show the difference.
If the engine falls so far behind that ``max_in_flight`` intents are outstanding, the step stops
sending (saturated) and every intent that was due but not sent is recorded at its waiting time so far.
The workers use the lean generator of bench/lean_load.py (shared with the soak test): one pacing
coroutine, each CONFIRM sent from its PREPARE's reply, no task, future or timer per intent, so the
generator's own CPU stays small next to the engine's. A request unanswered for ``timeout_s`` fails
as ``FastPathTimeout`` (checked every 100 ms), as it did with ``FastPathClient``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from typing import Any, Literal

import msgspec

from bench.lean_load import LeanLoad, LeanReply, failure_reason
from bench.stats import LatencySummary, encode_histogram, new_histogram, record, summarize
from titan.client import FastPathClient, Reply

Framing = Literal["ndjson", "binary"]
# One symbol: with positions open on all three simulated symbols, core's periodic truth event outgrew
# the event ring's slot and core crash-looped (MessageTooLarge, seen 2026-11-29); see the report.
SYMBOLS = ("BTCUSDT",)
# Long and short alternate, so the paper position stays flat and never meets the notional limit.
DIRECTIONS: tuple[Literal["LONG", "SHORT"], ...] = ("LONG", "SHORT")
POSITION_USD = 100
# The simulated market's starting prices (config.marketdata.sim_prices); then the latest fill price.
START_PRICES = {"BTCUSDT": 50000.0, "ETHUSDT": 3000.0, "SOLUSDT": 150.0}
ZONE_HALF_WIDTH = 0.0005  # ±5 bps around the reference: the slippage breaker measures from the zone


class PriceRef:
    """Entry zones that follow the random-walk market, so the risk checks pass as for a real strategy.

    Core measures slippage from the entry zone and turns DEFENSIVE past 2 × max slippage; a fixed zone
    would trip it once the simulated price has wandered. Each CONFIRM's fill price updates the reference.
    """

    def __init__(self) -> None:
        self.price = dict(START_PRICES)

    def zone(self, symbol: str) -> tuple[float, float]:
        p = self.price[symbol]
        return round(p * (1 - ZONE_HALF_WIDTH), 6), round(p * (1 + ZONE_HALF_WIDTH), 6)

    def update(self, symbol: str, reply: Reply) -> None:
        if reply.executed and reply.fill_price:
            self.price[symbol] = float(reply.fill_price)


# Stamps of one request in path order; consecutive pairs present in a reply make its stages.
STAMP_ORDER = (
    "t_send",
    "t_read",
    "t_ring",
    "t_core_in",
    "t_order_out",
    "t_gw_in",
    "t_gw_out",
    "t_report_in",
    "t_core_out",
    "t_write",
    "t_recv",
)
STAMP_PLACE = {
    "t_send": "client",
    "t_read": "ingress read",
    "t_ring": "command ring",
    "t_core_in": "core in",
    "t_order_out": "order ring",
    "t_gw_in": "gateway in",
    "t_gw_out": "report ring",
    "t_report_in": "core report in",
    "t_core_out": "reply ring",
    "t_write": "ingress write",
    "t_recv": "client",
}


def stage_name(a: str, b: str) -> str:
    return f"{STAMP_PLACE[a]} → {STAMP_PLACE[b]}"


def stage_deltas(stamps: dict[str, int]) -> list[tuple[str, int]]:
    """(stage, ns) for each consecutive pair of stamps that were taken (non-zero), in path order."""
    present = [(k, stamps[k]) for k in STAMP_ORDER if stamps.get(k)]
    return [(stage_name(a, b), tb - ta) for (a, ta), (b, tb) in itertools.pairwise(present)]


class ClosedLoopResult(msgspec.Struct):
    framing: str
    prepare: LatencySummary
    confirm: LatencySummary
    abort: LatencySummary
    prepare_stages: dict[str, LatencySummary]
    confirm_stages: dict[str, LatencySummary]
    failures: dict[str, int]
    client_cpu_s: float
    wall_s: float


def _failure_reason(reply: Reply) -> str:
    return str(reply.reason or reply.error or reply.status or "unexpected reply")


MARKETABLE_VELOCITY = 0.01


def symbol_of(i: int) -> str:
    return SYMBOLS[i % len(SYMBOLS)]


async def _prepare(client: FastPathClient, prices: PriceRef, sid: str, i: int, trace: bool = False) -> Reply:
    symbol = symbol_of(i)
    low, high = prices.zone(symbol)
    # velocity > 0.005: a marketable order (fastpath.md §8), so CONFIRM→executed measures a fill;
    # a maker intent would rest (or be rejected when the book moved through it).
    return await client.prepare(
        sid,
        symbol,
        DIRECTIONS[(i // len(SYMBOLS)) % 2],
        low,
        high,
        position_size=POSITION_USD,
        trace=trace,
        velocity=MARKETABLE_VELOCITY,
    )


async def closed_loop(
    socket_path: str, secret: str, framing: Framing, n: int, warmup: int, tag: str, timeout: float = 5.0
) -> ClosedLoopResult:
    """n measured intents (after ``warmup``): PREPARE + CONFIRM each, and n // 2 PREPARE + ABORT."""
    prep_h, conf_h, abort_h = new_histogram(), new_histogram(), new_histogram()
    prep_stages: dict[str, Any] = {}
    conf_stages: dict[str, Any] = {}
    failures: dict[str, int] = {}

    def fail(reason: str) -> None:
        failures[reason] = failures.get(reason, 0) + 1

    def add_stages(into: dict[str, Any], reply: Reply, t_send: int, t_recv: int) -> None:
        stamps = dict(reply.stages or {})
        stamps["t_send"], stamps["t_recv"] = t_send, t_recv
        for name, ns in stage_deltas(stamps):
            if (h := into.get(name)) is None:
                h = into[name] = new_histogram()  # once per stage: a histogram costs ~130 µs
            record(h, ns)

    prices = PriceRef()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    client = FastPathClient(socket_path, secret, framing=framing, timeout=timeout)
    await client.connect()
    try:
        for i in range(warmup + n):
            measured = i >= warmup
            sid = f"cl-{tag}-{i}"
            t0 = time.monotonic_ns()
            rp = await _prepare(client, prices, sid, i, trace=True)
            t1 = time.monotonic_ns()
            rc = await client.confirm(sid, trace=True)
            t2 = time.monotonic_ns()
            prices.update(symbol_of(i), rc)
            if not rp.prepared:
                fail(f"PREPARE: {_failure_reason(rp)}")
            elif not rc.executed:
                fail(f"CONFIRM: {_failure_reason(rc)}")
            if measured:
                record(prep_h, t1 - t0)
                record(conf_h, t2 - t1)
                add_stages(prep_stages, rp, t0, t1)
                add_stages(conf_stages, rc, t1, t2)
            if i % 2 == 0:  # ABORT path: a fresh prepared intent, then abort it
                sid = f"ab-{tag}-{i}"
                rp = await _prepare(client, prices, sid, i + 1)
                t3 = time.monotonic_ns()
                ra = await client.abort(sid)
                t4 = time.monotonic_ns()
                if not ra.aborted:
                    fail(f"ABORT: {_failure_reason(ra)}")
                if measured:
                    record(abort_h, t4 - t3)
    finally:
        await client.close()
    return ClosedLoopResult(
        framing=framing,
        prepare=summarize(prep_h),
        confirm=summarize(conf_h),
        abort=summarize(abort_h),
        prepare_stages={k: summarize(v) for k, v in prep_stages.items()},
        confirm_stages={k: summarize(v) for k, v in conf_stages.items()},
        failures=failures,
        client_cpu_s=time.process_time() - cpu0,
        wall_s=time.perf_counter() - wall0,
    )


# --------------------------------------------------------------------------------------- open loop


class OpenLoopConfig(msgspec.Struct, frozen=True):
    socket_path: str
    secret: str
    framing: str
    rate: float  # intents/s offered by this worker
    duration_s: float  # sending window, warm-up included
    warmup_s: float  # intents intended before this are sent but not recorded
    connections: int
    start_at_ns: int  # CLOCK_MONOTONIC: all workers start together
    max_in_flight: int
    tag: str
    timeout_s: float = 5.0


class OpenLoopWorkerResult(msgspec.Struct):
    planned: int  # intents the schedule asked for within the window
    sent: int
    completed: int  # CONFIRM replied executed
    failed: int  # error reply, timeout or transport failure
    unsent_due: int  # due but never sent because the step saturated
    saturated: bool
    send_lag_max_us: float  # worst lateness of an actual send behind its intended time
    hist_intended: str  # encoded histograms (ns): from intended send time / from actual send
    hist_service: str
    confirm_stage_hists: dict[str, str]  # CONFIRM stage breakdown (traced), encoded
    failures: dict[str, int]
    cpu_s: float
    wall_s: float
    pid: int


class _OpenLoopLoad(LeanLoad):
    """The lean generator recording what the open loop reports for each intent."""

    def __init__(self, cfg: OpenLoopConfig, interval_ns: int) -> None:
        super().__init__(
            cfg.secret,
            prefix=f"ol-{cfg.tag}",
            framing=cfg.framing,  # type: ignore[arg-type]  # validated by LeanLoad
            symbol=SYMBOLS[0],
            position_size=POSITION_USD,
            velocity=MARKETABLE_VELOCITY,
            trace_prepare=False,  # as the FastPathClient open loop did: only the CONFIRM is traced
            trace_confirm=True,
        )
        self.start_ns = cfg.start_at_ns
        self.interval_ns = interval_ns
        self.warmup_ns = cfg.start_at_ns + int(cfg.warmup_s * 1e9)
        # Once saturated, warm-up exclusion ends: an overloaded step's every latency counts (lower bounds).
        self.saturated = False
        self.intended_h, self.service_h = new_histogram(), new_histogram()
        self.stage_h: dict[str, Any] = {}
        self.failures: dict[str, int] = {}
        self.sent_ns: dict[int, int] = {}  # intent → its PREPARE's actual send time
        self.conf_ns: dict[int, int] = {}  # intent → its CONFIRM's send time
        self.failed = 0

    def confirm_sent(self, i: int, t_ns: int) -> None:
        self.conf_ns[i] = t_ns

    def finished(self, i: int, ok: bool, phase: str, r: LeanReply | None) -> None:
        done = self.recv_ns if r is not None else time.monotonic_ns()
        sent = self.sent_ns.pop(i)
        t_conf = self.conf_ns.pop(i, 0)
        intended = self.start_ns + i * self.interval_ns
        measured = intended >= self.warmup_ns
        if not ok:
            self.failed += 1
            reason = failure_reason(phase, r)
            self.failures[reason] = self.failures.get(reason, 0) + 1
        elif measured and r is not None:
            stamps = dict(r.stages or {})
            stamps["t_send"], stamps["t_recv"] = t_conf, done
            stage_h = self.stage_h
            for name, ns in stage_deltas(stamps):
                if (h := stage_h.get(name)) is None:
                    h = stage_h[name] = new_histogram()  # once per stage: a histogram costs ~130 µs
                record(h, ns)
        if measured or self.saturated:  # failures too: their latency is a lower bound
            record(self.intended_h, done - intended)
            record(self.service_h, done - sent)


async def _open_loop(cfg: OpenLoopConfig) -> OpenLoopWorkerResult:
    interval_ns = int(1e9 / cfg.rate)
    gen = _OpenLoopLoad(cfg, interval_ns)
    conns = await gen.connect(cfg.socket_path, cfg.connections)
    planned = int(cfg.duration_s * cfg.rate)
    timeout_ns = int(cfg.timeout_s * 1e9)
    lag_max = 0
    sent = 0

    cpu0 = time.process_time()
    now = time.monotonic_ns()
    if cfg.start_at_ns > now:
        await asyncio.sleep((cfg.start_at_ns - now) / 1e9)
    wall0 = time.monotonic_ns()
    next_expire = wall0
    i = 0
    unsent_due = 0
    while i < planned:
        now = time.monotonic_ns()
        gen.now_ms = int(time.time() * 1000)
        while i < planned and (intended := cfg.start_at_ns + i * interval_ns) <= now:
            if gen.in_flight >= cfg.max_in_flight:
                gen.saturated = True
                break
            lag_max = max(lag_max, now - intended)
            gen.sent_ns[i] = now
            sent += 1
            if not gen.prepare(conns[i % len(conns)], i):
                gen.finished(i, False, "FastPathError", None)  # not connected, as FastPathClient raised
            i += 1
        if gen.saturated:
            # Everything due by now and never sent waited at least this long: record that, then stop.
            while i < planned and (intended := cfg.start_at_ns + i * interval_ns) <= now:
                record(gen.intended_h, now - intended)
                unsent_due += 1
                i += 1
            break
        if now >= next_expire:
            gen.expire(timeout_ns, now)
            next_expire = now + 100_000_000
        if i >= planned:
            break
        # One wake-up per due intent or per loop timer tick (~1 ms), whichever is later: replies are
        # handled by the protocols while the pacer sleeps.
        await asyncio.sleep(max(cfg.start_at_ns + i * interval_ns - time.monotonic_ns(), 0) / 1e9)
    deadline = time.monotonic_ns() + int((cfg.timeout_s * 2 + 1) * 1e9)
    while gen.in_flight and time.monotonic_ns() < deadline:
        gen.idle.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gen.idle.wait(), 0.1)
        gen.expire(timeout_ns, time.monotonic_ns())
    wall_s = (time.monotonic_ns() - wall0) / 1e9
    gen.expire(-1, time.monotonic_ns())  # still unanswered at the end: timed out
    await LeanLoad.close(conns)
    return OpenLoopWorkerResult(
        planned=planned,
        sent=sent,
        completed=gen.executed,
        failed=gen.failed,
        unsent_due=unsent_due,
        saturated=gen.saturated,
        send_lag_max_us=lag_max / 1000,
        hist_intended=encode_histogram(gen.intended_h),
        hist_service=encode_histogram(gen.service_h),
        confirm_stage_hists={k: encode_histogram(v) for k, v in gen.stage_h.items()},
        failures=gen.failures,
        cpu_s=time.process_time() - cpu0,
        wall_s=wall_s,
        pid=os.getpid(),
    )


def open_loop_worker(cfg: OpenLoopConfig) -> OpenLoopWorkerResult:
    """Entry point of one load-generator process (picklable: runs under a spawn pool)."""
    return asyncio.run(_open_loop(cfg))


class OpenLoopStep(msgspec.Struct):
    """One offered rate, all workers merged."""

    framing: str
    offered_rate: float
    achieved_rate: float  # completed intents / sending window
    workers: int
    connections_per_worker: int
    planned: int
    sent: int
    completed: int
    failed: int
    unsent_due: int
    saturated: bool
    send_lag_max_us: float
    latency: LatencySummary  # from intended send time (the figure that counts)
    service: LatencySummary  # from actual send time (what a coordinated-omission bench would show)
    confirm_stages: dict[str, LatencySummary]  # where the CONFIRM half of the time went
    failures: dict[str, int]
    client_cpu_s: float  # all load-generator processes
    client_cpu_pct_of_core: float  # client_cpu_s / step wall time
    wall_s: float
    hist_intended: str  # merged encoded histogram (ns), for re-analysis


def merge_step(
    framing: str, offered: float, duration_s: float, connections: int, results: list[OpenLoopWorkerResult]
) -> OpenLoopStep:
    from bench.stats import merge_encoded  # local: keeps the worker import light

    intended_h, service_h = new_histogram(), new_histogram()
    failures: dict[str, int] = {}
    stage_h: dict[str, Any] = {}
    for r in results:
        merge_encoded(intended_h, r.hist_intended)
        merge_encoded(service_h, r.hist_service)
        for name, enc in r.confirm_stage_hists.items():
            merge_encoded(stage_h.setdefault(name, new_histogram()), enc)
        for k, v in r.failures.items():
            failures[k] = failures.get(k, 0) + v
    wall = max((r.wall_s for r in results), default=0.0) or 1e-9
    cpu = sum(r.cpu_s for r in results)
    completed = sum(r.completed for r in results)
    return OpenLoopStep(
        framing=framing,
        offered_rate=offered,
        achieved_rate=round(completed / max(duration_s, wall), 1),
        workers=len(results),
        connections_per_worker=connections,
        planned=sum(r.planned for r in results),
        sent=sum(r.sent for r in results),
        completed=completed,
        failed=sum(r.failed for r in results),
        unsent_due=sum(r.unsent_due for r in results),
        saturated=any(r.saturated for r in results),
        send_lag_max_us=max((r.send_lag_max_us for r in results), default=0.0),
        latency=summarize(intended_h),
        service=summarize(service_h),
        confirm_stages={k: summarize(stage_h[k]) for k in _path_order(stage_h)},
        failures=failures,
        client_cpu_s=round(cpu, 3),
        client_cpu_pct_of_core=round(100 * cpu / wall, 1),
        wall_s=round(wall, 3),
        hist_intended=encode_histogram(intended_h),
    )


def _path_order(stages: dict[str, Any]) -> list[str]:
    """Stage names in path order (workers may have seen them in different orders)."""
    order = [stage_name(a, b) for a in STAMP_ORDER for b in STAMP_ORDER]
    return sorted(stages, key=lambda k: order.index(k) if k in order else len(order))


def warm_up_worker() -> int:
    """Submitted once per pool slot before the first step, so process start-up never eats into a
    schedule; the pause makes the pool hand each call to a different process."""
    time.sleep(0.2)
    return os.getpid()
