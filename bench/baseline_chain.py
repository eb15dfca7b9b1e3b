"""Baseline: the CONFIRM path's message chain over shared-memory rings vs ``multiprocessing.Queue``.

Three processes shaped like the engine's CONFIRM path, four hops::

    ingress ──Confirm──▶ core ──OrderRequest──▶ gateway ──VenueReport──▶ core ──Reply──▶ ingress

Same message structs (``titan.messages``), same msgpack codec (``titan.messages.encoder()``), same
per-message work in each process (decode, build the next struct with monotonic stamps, encode). Only the
transport differs:

* ``shm``: one SPSC ``titan.shm.Ring`` per hop (core has two input rings), one ``Doorbell`` per
  consumer, consumers wait with ``titan.shm.wait_any`` (short spin, then sleep) exactly as the engine's
  core does.
* ``mpqueue``: one ``multiprocessing.Queue`` per consumer (core's is fed by both ingress and gateway,
  the queue's natural multi-producer use), consumers block in ``Queue.get``.

No sockets, HMAC, risk checks, journal or venue logic: this isolates what the transport costs. Measured
in the ingress process: closed-loop round trips (one in flight) with the per-hop breakdown from the
stamps, then pipelined throughput (a window of messages in flight).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.queues
import queue
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec

from bench.stats import LatencySummary, encode_histogram, new_histogram, record, summarize
from titan.messages import (
    FILL,
    Confirm,
    OrderRequest,
    Reply,
    Stages,
    VenueReport,
    encoder,
)
from titan.shm import Doorbell, Ring, unlink_doorbell_quietly, unlink_quietly, wait_any

Transport = Literal["shm", "mpqueue"]
STOP_ID = "__stop__"
RING_SLOTS = 1024
RING_SLOT_SIZE = 512
HOPS = ("ingress → core", "core → gateway", "gateway → core", "core → ingress")


class Outbox(Protocol):
    def send(self, data: bytes) -> None: ...


class Inbox(Protocol):
    def receive(self, timeout: float) -> list[bytes]: ...


class RingOutbox:
    def __init__(self, ring: Ring, bell: Doorbell) -> None:
        self.ring, self.bell = ring, bell

    def send(self, data: bytes) -> None:
        self.ring.push(data, timeout=10.0)
        self.bell.ring()


class RingInbox:
    def __init__(self, rings: list[Ring], bell: Doorbell) -> None:
        self.rings, self.bell = rings, bell

    def receive(self, timeout: float) -> list[bytes]:
        if not wait_any(self.rings, self.bell, timeout):
            return []
        out: list[bytes] = []
        for ring in self.rings:
            while (data := ring.try_pop()) is not None:
                out.append(data)
        return out


class QueueOutbox:
    def __init__(self, q: multiprocessing.queues.Queue[bytes]) -> None:
        self.q = q

    def send(self, data: bytes) -> None:
        self.q.put(data)


class QueueInbox:
    def __init__(self, q: multiprocessing.queues.Queue[bytes]) -> None:
        self.q = q

    def receive(self, timeout: float) -> list[bytes]:
        try:
            out = [self.q.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                return out


class Wiring(msgspec.Struct, frozen=True):
    """Names of the shared-memory objects of one shm chain (created by the parent)."""

    cmd: str  # ingress -> core
    order: str  # core -> gateway
    report: str  # gateway -> core
    reply: str  # core -> ingress
    bell_core: str
    bell_gateway: str
    bell_ingress: str

    @classmethod
    def fresh(cls) -> Wiring:
        p = f"tbench{uuid.uuid4().hex[:8]}"
        return cls(
            f"{p}.cmd", f"{p}.ord", f"{p}.rpt", f"{p}.rep", f"{p}.bell.core", f"{p}.bell.gw", f"{p}.bell.in"
        )

    def rings(self) -> tuple[str, ...]:
        return (self.cmd, self.order, self.report, self.reply)

    def bells(self) -> tuple[str, ...]:
        return (self.bell_core, self.bell_gateway, self.bell_ingress)


# ------------------------------------------------------------------------------------ processes


def _core(inbox: Inbox, to_gateway: Outbox, to_ingress: Outbox, results: Any) -> None:
    enc = encoder()
    dec = msgspec.msgpack.Decoder(Confirm | VenueReport)
    pending: dict[str, tuple[int, int, Stages]] = {}
    cpu0 = time.process_time()
    running = True
    while running:
        for data in inbox.receive(1.0):
            msg = dec.decode(data)
            now = time.monotonic_ns()
            if isinstance(msg, Confirm):
                stages = Stages(t_read=msg.t_read, t_ring=msg.t_ring, t_core_in=now)
                order = OrderRequest(
                    coid=msg.signal_id,
                    signal_id=msg.signal_id,
                    leg=0,
                    venue="paper",
                    account="main",
                    symbol="BTC/USDT",
                    venue_symbol="BTCUSDT",
                    side="BUY",
                    order_type="MARKET",
                    tif="IOC",
                    qty="0.002",
                    price=None,
                    reduce_only=False,
                    t_signal_ms=0,
                    t_core_in=now,
                    t_core_out=0,
                )
                pending[msg.signal_id] = (msg.conn, msg.req, stages)
                stages.t_order_out = order.t_core_out = time.monotonic_ns()
                to_gateway.send(enc.encode(order))
            else:
                conn, req, stages = pending.pop(msg.coid)
                stages.t_gw_in, stages.t_gw_out, stages.t_report_in = msg.t_gw_in, msg.t_gw_out, now
                fields = {"executed": True, "fill_price": msg.price, "filled_qty": msg.qty}
                stages.t_core_out = time.monotonic_ns()
                to_ingress.send(enc.encode(Reply(conn=conn, req=req, fields=fields, stages=stages)))
                running = msg.coid != STOP_ID
    results.put(("core", time.process_time() - cpu0))


def _gateway(inbox: Inbox, to_core: Outbox, results: Any) -> None:
    enc = encoder()
    dec = msgspec.msgpack.Decoder(OrderRequest)
    cpu0 = time.process_time()
    running = True
    while running:
        for data in inbox.receive(1.0):
            order = dec.decode(data)
            t_in = time.monotonic_ns()
            report = VenueReport(
                coid=order.coid,
                venue=order.venue,
                kind=FILL,
                trade_id=order.coid,
                qty=order.qty,
                price="50000.1",
                cum_qty=order.qty,
                leaves_qty="0",
                t_order_out=order.t_core_out,
                t_gw_in=t_in,
            )
            report.t_gw_out = time.monotonic_ns()
            to_core.send(enc.encode(report))
            running = order.coid != STOP_ID
    results.put(("gateway", time.process_time() - cpu0))


def _ingress(
    inbox: Inbox, to_core: Outbox, n: int, warmup: int, tput_n: int, window: int, results: Any
) -> None:
    enc = encoder()
    dec = msgspec.msgpack.Decoder(Reply)
    rtt = new_histogram()
    hops = [new_histogram() for _ in HOPS]
    cpu0 = time.process_time()

    def confirm(i: int, sid: str | None = None) -> bytes:
        now = time.monotonic_ns()
        return enc.encode(Confirm(conn=1, req=i, signal_id=sid or f"s{i}", t_read=now, t_ring=now))

    for i in range(warmup + n):  # closed loop
        to_core.send(confirm(i))
        got: list[bytes] = []
        while not got:
            got = inbox.receive(5.0)
        t_recv = time.monotonic_ns()
        s = dec.decode(got[0]).stages
        if i >= warmup:
            record(rtt, t_recv - s.t_ring)
            for h, ns in zip(
                hops,
                (
                    s.t_core_in - s.t_ring,
                    s.t_gw_in - s.t_order_out,
                    s.t_report_in - s.t_gw_out,
                    t_recv - s.t_core_out,
                ),
                strict=True,
            ):
                record(h, ns)
    # pipelined throughput: keep `window` in flight
    t0 = time.perf_counter()
    sent = received = 0
    while sent < min(window, tput_n):
        to_core.send(confirm(sent))
        sent += 1
    while received < tput_n:
        for _ in inbox.receive(5.0):
            received += 1
            if sent < tput_n:
                to_core.send(confirm(sent))
                sent += 1
    elapsed = time.perf_counter() - t0
    to_core.send(confirm(-1, STOP_ID))
    while not inbox.receive(5.0):
        pass
    results.put(
        (
            "ingress",
            time.process_time() - cpu0,
            encode_histogram(rtt),
            [encode_histogram(h) for h in hops],
            tput_n / elapsed,
        )
    )


def _shm_core(w: Wiring, results: Any) -> None:
    rings = {name: Ring.attach(name) for name in (w.cmd, w.order, w.report, w.reply)}
    bells = {name: Doorbell.attach(name) for name in w.bells()}
    try:
        _core(
            RingInbox([rings[w.cmd], rings[w.report]], bells[w.bell_core]),
            RingOutbox(rings[w.order], bells[w.bell_gateway]),
            RingOutbox(rings[w.reply], bells[w.bell_ingress]),
            results,
        )
    finally:
        _close_all(rings, bells)


def _shm_gateway(w: Wiring, results: Any) -> None:
    rings = {name: Ring.attach(name) for name in (w.order, w.report)}
    bells = {name: Doorbell.attach(name) for name in (w.bell_gateway, w.bell_core)}
    try:
        _gateway(
            RingInbox([rings[w.order]], bells[w.bell_gateway]),
            RingOutbox(rings[w.report], bells[w.bell_core]),
            results,
        )
    finally:
        _close_all(rings, bells)


def _shm_ingress(w: Wiring, n: int, warmup: int, tput_n: int, window: int, results: Any) -> None:
    rings = {name: Ring.attach(name) for name in (w.cmd, w.reply)}
    bells = {name: Doorbell.attach(name) for name in (w.bell_ingress, w.bell_core)}
    try:
        _ingress(
            RingInbox([rings[w.reply]], bells[w.bell_ingress]),
            RingOutbox(rings[w.cmd], bells[w.bell_core]),
            n,
            warmup,
            tput_n,
            window,
            results,
        )
    finally:
        _close_all(rings, bells)


def _close_all(rings: dict[str, Ring], bells: dict[str, Doorbell]) -> None:
    for r in rings.values():
        r.close()
    for b in bells.values():
        b.close()


def _q_core(inq: Any, gwq: Any, inggq: Any, results: Any) -> None:
    _core(QueueInbox(inq), QueueOutbox(gwq), QueueOutbox(inggq), results)


def _q_gateway(gwq: Any, coreq: Any, results: Any) -> None:
    _gateway(QueueInbox(gwq), QueueOutbox(coreq), results)


def _q_ingress(ingq: Any, coreq: Any, n: int, warmup: int, tput_n: int, window: int, results: Any) -> None:
    _ingress(QueueInbox(ingq), QueueOutbox(coreq), n, warmup, tput_n, window, results)


# ------------------------------------------------------------------------------------ driver


class ChainResult(msgspec.Struct):
    transport: str
    round_trip: LatencySummary  # ingress send -> reply received, one in flight
    hops: dict[str, LatencySummary]
    throughput_rt_per_s: float  # round trips/s with `window` in flight
    cpu_s: dict[str, float]  # per process, whole run
    n: int
    window: int
    hist_round_trip: str


class BaselineResult(msgspec.Struct):
    chain: str
    shm: ChainResult
    mpqueue: ChainResult
    ratio_p50: float  # mpqueue / shm: how many times slower the queue is
    ratio_p99: float
    ratio_throughput: float  # shm / mpqueue


CHAIN_DESCRIPTION = (
    "3 processes, 4 hops: ingress -Confirm-> core -OrderRequest-> gateway -VenueReport-> core "
    "-Reply-> ingress; titan.messages structs, msgpack; no sockets, HMAC, risk, journal or venue logic"
)


def run_chain(
    transport: Transport, n: int, warmup: int, tput_n: int, window: int, timeout: float = 120.0
) -> ChainResult:
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    procs: list[multiprocessing.context.SpawnProcess] = []
    wiring = Wiring.fresh() if transport == "shm" else None
    made_rings: list[Ring] = []
    made_bells: list[Doorbell] = []
    try:
        targets: list[tuple[Callable[..., None], tuple[Any, ...]]]
        if wiring is not None:
            made_rings = [Ring.create(name, RING_SLOTS, RING_SLOT_SIZE) for name in wiring.rings()]
            made_bells = [Doorbell.create(name) for name in wiring.bells()]
            targets = [
                (_shm_core, (wiring, results)),
                (_shm_gateway, (wiring, results)),
                (_shm_ingress, (wiring, n, warmup, tput_n, window, results)),
            ]
        else:
            coreq: Any = ctx.Queue()
            gwq: Any = ctx.Queue()
            ingq: Any = ctx.Queue()
            targets = [
                (_q_core, (coreq, gwq, ingq, results)),
                (_q_gateway, (gwq, coreq, results)),
                (_q_ingress, (ingq, coreq, n, warmup, tput_n, window, results)),
            ]
        for target, args in targets:
            p = ctx.Process(target=target, args=args, daemon=True)
            p.start()
            procs.append(p)
        got: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while len(got) < 3:
            left = deadline - time.monotonic()
            if left <= 0 or (not any(p.is_alive() for p in procs) and results.empty()):
                raise RuntimeError(f"baseline chain ({transport}) did not finish: got {sorted(got)}")
            try:
                item = results.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            got[item[0]] = item
        for p in procs:
            p.join(5.0)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5.0)
        for r in made_rings:
            r.close()
        for b in made_bells:
            b.close()
        if wiring is not None:
            for name in wiring.rings():
                unlink_quietly(name)
            for name in wiring.bells():
                unlink_doorbell_quietly(name)
        results.close()
        results.join_thread()
    _, ingress_cpu, rtt_enc, hop_encs, tput = got["ingress"]
    from hdrh.histogram import HdrHistogram

    return ChainResult(
        transport=transport,
        round_trip=summarize(HdrHistogram.decode(rtt_enc)),
        hops={name: summarize(HdrHistogram.decode(e)) for name, e in zip(HOPS, hop_encs, strict=True)},
        throughput_rt_per_s=round(tput, 1),
        cpu_s={
            "ingress": round(ingress_cpu, 3),
            "core": round(got["core"][1], 3),
            "gateway": round(got["gateway"][1], 3),
        },
        n=n,
        window=window,
        hist_round_trip=rtt_enc,
    )


def run_baseline(n: int, warmup: int, tput_n: int, window: int = 64) -> BaselineResult:
    shm = run_chain("shm", n, warmup, tput_n, window)
    mpq = run_chain("mpqueue", n, warmup, tput_n, window)
    return BaselineResult(
        chain=CHAIN_DESCRIPTION,
        shm=shm,
        mpqueue=mpq,
        ratio_p50=round(mpq.round_trip.p50 / max(shm.round_trip.p50, 1e-3), 2),
        ratio_p99=round(mpq.round_trip.p99 / max(shm.round_trip.p99, 1e-3), 2),
        ratio_throughput=round(shm.throughput_rt_per_s / max(mpq.throughput_rt_per_s, 1e-3), 2),
    )
