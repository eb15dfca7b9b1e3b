"""Engine facts read from shared memory at scrape time: the ``/health`` body and Prometheus metrics.

Nothing here runs on the hot path. The supervisor calls :func:`gather` (a few hundred aligned loads
from the status board, ring cursors and the ticker table) on every ``/health`` or ``/metrics``
request; :class:`EngineCollector` turns the same :class:`Facts` into Prometheus metric families
(prometheus-client custom collector), so every process's counters and latency histograms are
exported without prometheus-client's multiprocess files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from titan.health import (
    BRIDGE_SLOTS,
    CORE_SLOTS,
    CORE_VENUE_READY_BASE,
    CORE_VENUE_RECONCILING_BASE,
    GATEWAY_SLOTS,
    HISTOGRAMS_BY_ROLE,
    INGRESS_SLOTS,
    MARKETDATA_VENUES,
    ORDER_OUTCOMES,
    REASON_BASE,
    REASON_CODES,
    SUPERVISOR,
    Histogram,
    role_of,
    supervisor_halt,
)
from titan.shm.board import ProcState, StatusBoard
from titan.shm.ring import Ring
from titan.shm.ticker import TickerTable, units_to_price

RISK_STATES = ("Normal", "Cautious", "Defensive", "Emergency")
# The bridge's NATS permission cells (nats.md §12, R38).
BRIDGE_PERMISSION_CELLS = {k: BRIDGE_SLOTS[k] for k in ("permission_errors", "events_denied")}
HALT_STATES = ("OPEN", "SOFT_HALT", "HARD_HALT")
QUANTILES = (0.5, 0.9, 0.99)


class ProcFacts(msgspec.Struct):
    name: str
    state: str
    pid: int
    restarts: int
    heartbeat_age_ms: int | None
    healthy: bool
    counters: tuple[int, ...]


class TickerFacts(msgspec.Struct):
    venue: str
    symbol: str
    age_ms: int | None
    bid: str | None
    ask: str | None
    updates: int


class Facts(msgspec.Struct):
    started: bool
    processes: list[ProcFacts]
    ring_depths: dict[str, int]
    tickers: list[TickerFacts]
    venues: list[str]  # order gateways, in Layout.venues order
    nats_url: str
    nats_embedded: bool
    supervisor_halt: str
    draining: bool
    stale_ms: int
    wall_ms: int

    def proc(self, name: str) -> ProcFacts | None:
        for p in self.processes:
            if p.name == name:
                return p
        return None


def gather(
    *,
    board: StatusBoard,
    restarts: Mapping[str, int],
    rings: Mapping[str, Ring],
    ticker: TickerTable | None,
    pairs: Sequence[tuple[str, str]],
    venues: Sequence[str],
    heartbeat_timeout_ms: int,
    stale_ms: int,
    started: bool,
    nats_url: str,
    nats_embedded: bool,
    draining: bool = False,
) -> Facts:
    """Read every fact the ops endpoints need from shared memory, now."""
    now = time.monotonic_ns()
    procs: list[ProcFacts] = []
    for name in board.names():
        if name == SUPERVISOR:
            continue
        st = board.read(name)
        age_ms = (now - st.heartbeat_mono_ns) // 1_000_000 if st.heartbeat_mono_ns else None
        healthy = st.state == ProcState.READY and age_ms is not None and age_ms <= heartbeat_timeout_ms
        procs.append(
            ProcFacts(
                name=name,
                state=ProcState(st.state).name,
                pid=st.pid,
                restarts=restarts.get(name, st.restarts),
                heartbeat_age_ms=age_ms,
                healthy=healthy,
                counters=st.counters,
            )
        )
    tickers: list[TickerFacts] = []
    if ticker is not None:
        for row, (venue, symbol) in enumerate(pairs):
            snap = ticker.read(row)
            if snap is None:
                tickers.append(TickerFacts(venue, symbol, None, None, None, 0))
                continue
            tickers.append(
                TickerFacts(
                    venue=venue,
                    symbol=symbol,
                    age_ms=max(0, (now - snap.recv_mono_ns) // 1_000_000),
                    bid=str(units_to_price(snap.bid).normalize()) if snap.bid else None,
                    ask=str(units_to_price(snap.ask).normalize()) if snap.ask else None,
                    updates=snap.updates,
                )
            )
    return Facts(
        started=started,
        processes=procs,
        ring_depths={name: ring.depth() for name, ring in rings.items()},
        tickers=tickers,
        venues=list(venues),
        nats_url=nats_url,
        nats_embedded=nats_embedded,
        supervisor_halt=supervisor_halt(board),
        draining=draining,
        stale_ms=stale_ms,
        wall_ms=time.time_ns() // 1_000_000,
    )


def _named(counters: Sequence[int], slots: Mapping[str, int]) -> dict[str, int]:
    return {name: int(counters[k]) for name, k in slots.items()}


def role_histograms(p: ProcFacts) -> dict[str, Histogram]:
    names = HISTOGRAMS_BY_ROLE.get(role_of(p.name), ())
    return {n: Histogram.from_counters(p.counters, k) for k, n in enumerate(names)}


def stage_histograms(facts: Facts) -> dict[str, Histogram]:
    """Every stage's histogram, merged over processes (``venue`` over every gateway)."""
    out: dict[str, Histogram] = {}
    for p in facts.processes:
        for stage, h in role_histograms(p).items():
            out[stage] = out[stage].merge(h) if stage in out else h
    return out


def _core(facts: Facts) -> dict[str, Any]:
    p = facts.proc("core")
    if p is None:
        return {}
    c = p.counters
    named = _named(c, CORE_SLOTS)
    venues = {
        v: {
            "ready": bool(c[CORE_VENUE_READY_BASE + k]),
            "reconciling": bool(c[CORE_VENUE_RECONCILING_BASE + k]),
        }
        for k, v in enumerate(facts.venues[:8])
    }
    reasons = {code: int(c[REASON_BASE + k]) for k, code in enumerate(REASON_CODES) if c[REASON_BASE + k]}
    return {**named, "venues": venues, "rejections": reasons}


def health_body(facts: Facts) -> tuple[int, dict[str, Any]]:
    """The ``/health`` JSON and its HTTP status: 200 only when every part is up and trading may run."""
    procs = {
        p.name: {
            "state": p.state,
            "pid": p.pid,
            "restarts": p.restarts,
            "heartbeat_age_ms": p.heartbeat_age_ms,
            "healthy": p.healthy,
        }
        for p in facts.processes
    }
    problems: list[str] = [f"{p.name} is {p.state.lower()}" for p in facts.processes if not p.healthy]
    core = _core(facts)
    ingress = facts.proc("ingress")
    bridge = facts.proc("bridge")
    md = facts.proc("marketdata")
    gateways: dict[str, Any] = {}
    for v in facts.venues:
        g = facts.proc(f"gateway.{v}")
        if g is None:
            continue
        named = _named(g.counters, GATEWAY_SLOTS)
        cv = core.get("venues", {}).get(v, {})
        gateways[v] = {
            "session_up": bool(named["session_up"]),
            "private_stream_up": bool(named["private_stream_up"]),
            "rate_limited_until_ms": named["limited_until_ms"] or None,
            "rate_limited": named["limited_until_ms"] > facts.wall_ms,
            "reconciling": bool(named["reconciling"]) or bool(cv.get("reconciling")),
            "orders": {k: named[k] for k in ("orders_sent", *ORDER_OUTCOMES)},
            "conflicting_fills": named["conflicting_fills"],
        }
    marketdata = [
        {
            "venue": t.venue,
            "symbol": t.symbol,
            "age_ms": t.age_ms,
            "bid": t.bid,
            "ask": t.ask,
            "stale": t.age_ms is None or t.age_ms > facts.stale_ms,
        }
        for t in facts.tickers
    ]
    stale = [f"{m['venue']}:{m['symbol']}" for m in marketdata if m["stale"]]
    if stale and facts.started:
        problems.append("market data stale: " + ", ".join(stale))
    connected = (
        {v: bool(md.counters[k]) for k, v in enumerate(MARKETDATA_VENUES) if md.counters[k]}
        if md is not None
        else {}
    )
    nats: dict[str, Any] = {"url": facts.nats_url, "embedded": facts.nats_embedded}
    warnings: list[str] = []
    if bridge is not None:
        b = _named(bridge.counters, BRIDGE_SLOTS)
        nats.update(
            connected=bool(b["nats_connected"]),
            status="Connected" if b["nats_connected"] else "Disconnected",
            spool_backlog_records=b["spool_records"],
            spool_backlog_bytes=b["spool_bytes"],
            spool_full=bool(b["spool_full"]),
            events_published=b["events_published"],
            events_spooled=b["events_spooled"],
            reconnects=b["nats_reconnects"],
        )
        denials = _named(bridge.counters, BRIDGE_PERMISSION_CELLS) if len(bridge.counters) > 17 else {}
        nats.update(denials)
        if b["spool_full"]:
            problems.append("event spool full")
        if denials.get("permission_errors"):
            # Trading goes on (not a 503), but events some consumers expect are being refused.
            warnings.append(
                f"NATS denied {denials['permission_errors']} publish/subscribe operations "
                f"({denials['events_denied']} events not published); see the bridge log for the subjects"
            )
    armed = bool(core.get("armed", 0))
    halt = HALT_STATES[min(core.get("halt", 0), 2)]
    if facts.supervisor_halt:
        halt = "HARD_HALT"
        problems.insert(0, facts.supervisor_halt)
    if not facts.started:
        problems.insert(0, "engine starting")
    if facts.draining:
        problems.insert(0, "engine stopping")
    hists = stage_histograms(facts)
    latency = {
        stage: {f"p{int(q * 100)}_us": h.quantile(q) for q in QUANTILES} | {"count": h.count}
        for stage, h in hists.items()
    }
    ok = not problems
    status = "ok" if ok else ("starting" if not facts.started else "degraded")
    if facts.supervisor_halt:
        status = "halted"
    body: dict[str, Any] = {
        "status": status,
        "problems": problems,
        "warnings": warnings,
        "armed": armed,
        "halt": halt,
        "halt_reason": facts.supervisor_halt or None,
        "risk_state": RISK_STATES[min(core.get("risk_state", 0), 3)],
        "processes": procs,
        "ring_depths": facts.ring_depths,
        "marketdata": marketdata,
        "marketdata_connected": connected,
        "venues": gateways,
        "nats": nats,
        "core": {k: v for k, v in core.items() if k not in ("venues",)},
        "fastpath": _named(ingress.counters, INGRESS_SLOTS) if ingress is not None else {},
        "latency_us": latency,
        "server_time": facts.wall_ms,
    }
    return (200 if ok else 503), body


class EngineCollector(Collector):
    """prometheus-client collector: reads fresh :class:`Facts` on every scrape."""

    def __init__(self, facts: Callable[[], Facts]) -> None:
        self._facts = facts

    def collect(self) -> Iterator[Metric]:
        f = self._facts()
        yield from _process_metrics(f)
        yield from _fastpath_metrics(f)
        yield from _core_metrics(f)
        yield from _venue_metrics(f)
        yield from _latency_metrics(f)
        yield from _infra_metrics(f)


def _process_metrics(f: Facts) -> Iterator[Metric]:
    up = GaugeMetricFamily("titan_execution_process_up", "1 while the process is ready", labels=["process"])
    restarts = CounterMetricFamily(
        "titan_execution_process_restarts", "Restarts of the process by the supervisor", labels=["process"]
    )
    age = GaugeMetricFamily(
        "titan_execution_heartbeat_age_seconds", "Age of the process's last heartbeat", labels=["process"]
    )
    for p in f.processes:
        up.add_metric([p.name], 1.0 if p.healthy else 0.0)
        restarts.add_metric([p.name], p.restarts)
        if p.heartbeat_age_ms is not None:
            age.add_metric([p.name], p.heartbeat_age_ms / 1000)
    yield from (up, restarts, age)


_FASTPATH_COUNTERS = {
    "messagesReceived": ("titan_execution_fastpath_messages_received", "FastPath frames received"),
    "messagesProcessed": ("titan_execution_fastpath_messages_processed", "FastPath frames answered"),
    "messagesFailed": ("titan_execution_fastpath_messages_failed", "FastPath frames answered with an error"),
    "invalidSignatures": ("titan_execution_fastpath_invalid_signatures", "FastPath HMAC failures"),
    "replaysRejected": ("titan_execution_fastpath_replays_rejected", "FastPath replays rejected"),
}


def _fastpath_metrics(f: Facts) -> Iterator[Metric]:
    ingress = f.proc("ingress")
    counters = ingress.counters if ingress is not None else (0,) * 16
    for key, (name, doc) in _FASTPATH_COUNTERS.items():
        m = CounterMetricFamily(name, doc)
        m.add_metric([], counters[INGRESS_SLOTS[key]])
        yield m
    yield GaugeMetricFamily(
        "titan_execution_active_connections",
        "Open FastPath client connections",
        value=counters[INGRESS_SLOTS["activeConnections"]],
    )


def _core_metrics(f: Facts) -> Iterator[Metric]:
    core = f.proc("core")
    c = core.counters if core is not None else (0,) * 256
    yield GaugeMetricFamily(
        "titan_execution_risk_state",
        "Effective risk state: 0 Normal, 1 Cautious, 2 Defensive, 3 Emergency",
        value=c[CORE_SLOTS["risk_state"]],
    )
    yield GaugeMetricFamily(
        "titan_execution_armed", "1 when execution is armed", value=c[CORE_SLOTS["armed"]]
    )
    halted = 2 if f.supervisor_halt else c[CORE_SLOTS["halt"]]
    yield GaugeMetricFamily("titan_execution_halt", "0 open, 1 soft halt, 2 hard halt", value=halted)
    yield GaugeMetricFamily(
        "titan_execution_open_orders", "Orders in flight at the venues", value=c[CORE_SLOTS["open_orders"]]
    )
    yield GaugeMetricFamily(
        "titan_execution_prepared_intents",
        "Prepared intents awaiting CONFIRM",
        value=c[CORE_SLOTS["prepared"]],
    )
    intents = CounterMetricFamily("titan_execution_intents", "Intents accepted by core")
    intents.add_metric([], c[CORE_SLOTS["intents_total"]])
    yield intents
    drift = CounterMetricFamily(
        "titan_reconciliation_drift_detected", "Drift events published by core (risk-and-state.md §16)"
    )
    drift.add_metric([], c[CORE_SLOTS["drift_events"]])
    yield drift
    rej = CounterMetricFamily(
        "titan_execution_rejections", "Intents denied or rejected, by reason code", labels=["reason"]
    )
    for k, code in enumerate(REASON_CODES):
        if c[REASON_BASE + k]:
            rej.add_metric([code], c[REASON_BASE + k])
    yield rej


def _venue_metrics(f: Facts) -> Iterator[Metric]:
    orders = CounterMetricFamily(
        "titan_execution_orders", "Venue orders by outcome", labels=["venue", "outcome"]
    )
    session = GaugeMetricFamily(
        "titan_execution_venue_session_up", "1 while the venue session is up", labels=["venue"]
    )
    limited = GaugeMetricFamily(
        "titan_execution_venue_rate_limited",
        "1 while the venue is rate-limited or cooling down",
        labels=["venue"],
    )
    reconciling = GaugeMetricFamily(
        "titan_execution_venue_reconciling", "1 while the venue is reconciling", labels=["venue"]
    )
    conflicting = CounterMetricFamily(
        "titan_execution_conflicting_fills",
        "Duplicate fills with a known trade id and another quantity, dropped by the gateway (R5)",
        labels=["venue"],
    )
    core = f.proc("core")
    for k, v in enumerate(f.venues):
        g = f.proc(f"gateway.{v}")
        if g is None:
            continue
        named = _named(g.counters, GATEWAY_SLOTS)
        orders.add_metric([v, "sent"], named["orders_sent"])
        for outcome in ORDER_OUTCOMES:
            orders.add_metric([v, outcome], named[outcome])
        conflicting.add_metric([v], named["conflicting_fills"])
        session.add_metric([v], named["session_up"])
        limited.add_metric([v], 1.0 if named["limited_until_ms"] > f.wall_ms else 0.0)
        rec = named["reconciling"] or (
            core is not None and k < 8 and core.counters[CORE_VENUE_RECONCILING_BASE + k]
        )
        reconciling.add_metric([v], 1.0 if rec else 0.0)
    yield from (orders, session, limited, reconciling, conflicting)
    md_age = GaugeMetricFamily(
        "titan_execution_marketdata_age_seconds", "Age of the latest quote", labels=["venue", "symbol"]
    )
    for t in f.tickers:
        if t.age_ms is not None:
            md_age.add_metric([t.venue, t.symbol], t.age_ms / 1000)
    yield md_age


def _latency_metrics(f: Facts) -> Iterator[Metric]:
    hists = stage_histograms(f)
    total = hists.pop("total", None)
    if total is not None:
        m = HistogramMetricFamily(
            "titan_execution_latency_us",
            "FastPath round trip inside the engine (frame read to reply written)",
        )
        m.add_metric([], total.cumulative(), total.sum_us)
        yield m
    stages = HistogramMetricFamily(
        "titan_execution_stage_latency_us", "Latency of one stage of the order path", labels=["stage"]
    )
    for stage, h in sorted(hists.items()):
        stages.add_metric([stage], h.cumulative(), h.sum_us)
    yield stages


def _infra_metrics(f: Facts) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "titan_execution_ring_depth", "Messages waiting on a shared-memory ring", labels=["ring"]
    )
    for name, d in f.ring_depths.items():
        depth.add_metric([name], d)
    yield depth
    bridge = f.proc("bridge")
    b = _named(bridge.counters, BRIDGE_SLOTS) if bridge is not None else dict.fromkeys(BRIDGE_SLOTS, 0)
    connected = b["nats_connected"]
    yield GaugeMetricFamily(
        "titan_execution_nats_connected",
        "1 while the bridge is connected to NATS",
        value=1 if connected else 0,
    )
    yield GaugeMetricFamily(
        "titan_execution_spool_backlog_records", "Events spooled on disk", value=b["spool_records"]
    )
    yield GaugeMetricFamily(
        "titan_execution_spool_backlog_bytes", "Bytes spooled on disk", value=b["spool_bytes"]
    )
    pub = CounterMetricFamily("titan_execution_events_published", "Events published on NATS")
    pub.add_metric([], b["events_published"])
    yield pub
    cells = bridge.counters if bridge is not None and len(bridge.counters) > 17 else (0,) * 18
    perm = CounterMetricFamily(
        "titan_execution_nats_permission_errors", "Publishes/subscriptions the NATS server denied"
    )
    perm.add_metric([], cells[BRIDGE_PERMISSION_CELLS["permission_errors"]])
    yield perm
    denied = CounterMetricFamily(
        "titan_execution_events_denied", "Events not published because the NATS server denies their subject"
    )
    denied.add_metric([], cells[BRIDGE_PERMISSION_CELLS["events_denied"]])
    yield denied
    yield GaugeMetricFamily(
        "titan_execution_supervisor_halt",
        "1 when the supervisor halted trading (crash loop)",
        value=1 if f.supervisor_halt else 0,
    )


def render_metrics(facts: Callable[[], Facts]) -> bytes:
    """Prometheus text exposition of the engine's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(facts))
    return generate_latest(registry)
