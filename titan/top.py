"""`titan top`: a live terminal dashboard of a running engine, drawn with rich from its ``/health``.

It reads only the ops HTTP endpoint (``/health``; ``/positions`` when ``http.api_key`` is set), so it
works against any engine it can reach and never touches the engine's shared memory. Throughput is
the difference of the FastPath counters between two polls. :func:`render_once` returns the screen
as text (``titan top --once``, and the tests).
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"ok": "bold green", "degraded": "bold yellow", "starting": "bold cyan", "halted": "bold red"}


class Snapshot:
    """One poll of the engine: its ``/health`` body (and HTTP status), positions, and when."""

    def __init__(
        self, code: int, health: dict[str, Any], positions: dict[str, Any] | None, at: float
    ) -> None:
        self.code = code
        self.health = health
        self.positions = positions
        self.at = at


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return int(e.code), json.loads(e.read())
        except ValueError:
            return int(e.code), {}


def poll(base_url: str, api_key: str = "") -> Snapshot:
    """Fetch the engine's state; an unreachable engine is a snapshot with code 0."""
    try:
        code, health = _get(base_url + "/health")
    except OSError as exc:
        return Snapshot(0, {"status": "unreachable", "problems": [str(exc)]}, None, time.monotonic())
    positions = None
    if api_key:
        try:
            pcode, body = _get(base_url + "/positions", {"x-api-key": api_key})
            positions = body if pcode == 200 else None
        except OSError:
            positions = None
    return Snapshot(code, health, positions, time.monotonic())


def _fmt_us(v: Any) -> str:
    if v is None:
        return "-"
    if v == float("inf"):
        return ">1s"
    v = float(v)
    return f"≤{v / 1000:.1f}ms" if v >= 1000 else f"≤{v:.0f}µs"


def _header(s: Snapshot) -> RenderableType:
    h = s.health
    status = str(h.get("status", "?"))
    t = Text()
    t.append(f" {status.upper()} ", style=STATUS_STYLE.get(status, "bold red"))
    t.append(f"  HTTP {s.code}   ")
    armed = h.get("armed")
    t.append("ARMED" if armed else "DISARMED", style="green" if armed else "yellow")
    t.append(f"   halt {h.get('halt', '?')}", style="red" if h.get("halt") not in (None, "OPEN") else "")
    t.append(f"   risk {h.get('risk_state', '?')}")
    if h.get("halt_reason"):
        t.append(f"\n {h['halt_reason']}", style="bold red")
    for p in h.get("problems", [])[:5]:
        t.append(f"\n • {p}", style="yellow")
    return Panel(t, title="titan execution", expand=True)


def _processes(h: dict[str, Any]) -> Table:
    t = Table(title="processes", expand=True)
    for col in ("process", "state", "pid", "restarts", "heartbeat"):
        t.add_column(col)
    for name, p in h.get("processes", {}).items():
        style = "" if p.get("healthy") else "red"
        age = p.get("heartbeat_age_ms")
        t.add_row(
            name,
            str(p.get("state")),
            str(p.get("pid")),
            str(p.get("restarts")),
            "-" if age is None else f"{age} ms",
            style=style,
        )
    return t


def _latency(h: dict[str, Any]) -> Table:
    t = Table(title="latency (since start, bucket upper bounds)", expand=True)
    for col in ("stage", "count", "p50", "p90", "p99"):
        t.add_column(col)
    lat = h.get("latency_us", {})
    order = ["total", "ingress", "ring", "core", "gateway", "venue", "bridge"]
    for stage in sorted(lat, key=lambda s: order.index(s) if s in order else 99):
        row = lat[stage]
        t.add_row(
            stage,
            str(row.get("count", 0)),
            _fmt_us(row.get("p50_us")),
            _fmt_us(row.get("p90_us")),
            _fmt_us(row.get("p99_us")),
        )
    return t


def _throughput(s: Snapshot, prev: Snapshot | None) -> Table:
    t = Table(title="FastPath", expand=True)
    t.add_column("counter")
    t.add_column("total")
    t.add_column("per s")
    fp = s.health.get("fastpath", {})
    old = prev.health.get("fastpath", {}) if prev is not None else {}
    dt = (s.at - prev.at) if prev is not None else 0.0
    for name in (
        "messagesReceived",
        "messagesProcessed",
        "messagesFailed",
        "invalidSignatures",
        "replaysRejected",
    ):
        total = int(fp.get(name, 0))
        rate = f"{(total - int(old.get(name, 0))) / dt:.0f}" if dt > 0 and name in old else "-"
        t.add_row(name, str(total), rate)
    t.add_row("activeConnections", str(fp.get("activeConnections", 0)), "")
    core = s.health.get("core", {})
    t.add_row("open orders", str(core.get("open_orders", 0)), "")
    t.add_row("prepared intents", str(core.get("prepared", 0)), "")
    return t


def _venues(h: dict[str, Any]) -> Table:
    t = Table(title="venues", expand=True)
    for col in (
        "venue",
        "session",
        "private",
        "rate-limited",
        "reconciling",
        "sent",
        "filled",
        "rejected",
        "unknown",
    ):
        t.add_column(col)
    for v, d in h.get("venues", {}).items():
        o = d.get("orders", {})
        t.add_row(
            v,
            "up" if d.get("session_up") else "down",
            "up" if d.get("private_stream_up") else "down",
            "yes" if d.get("rate_limited") else "no",
            "yes" if d.get("reconciling") else "no",
            *(str(o.get(k, 0)) for k in ("orders_sent", "filled", "rejected", "unknown")),
        )
    nats = h.get("nats", {})
    t.caption = (
        f"NATS {nats.get('status', '?')} {nats.get('url', '')}"
        f"  spool {nats.get('spool_backlog_records', 0)} records"
        f" / {nats.get('spool_backlog_bytes', 0)} B  published {nats.get('events_published', 0)}"
    )
    return t


def _marketdata(h: dict[str, Any]) -> Table:
    t = Table(title="market data", expand=True)
    for col in ("venue", "symbol", "bid", "ask", "age"):
        t.add_column(col)
    for m in h.get("marketdata", []):
        age = m.get("age_ms")
        t.add_row(
            m.get("venue", ""),
            m.get("symbol", ""),
            str(m.get("bid") or "-"),
            str(m.get("ask") or "-"),
            "-" if age is None else f"{age} ms",
            style="red" if m.get("stale") else "",
        )
    return t


def _positions(s: Snapshot) -> RenderableType:
    if s.positions is None:
        return Text("positions: set http.api_key (TITAN_EXECUTION_API_KEY) to show them", style="dim")
    t = Table(title="positions (core's truth snapshot)", expand=True)
    for col in ("venue", "symbol", "side", "size", "entry", "unrealized PnL"):
        t.add_column(col)
    for venue, body in s.positions.get("venues", {}).items():
        rows = body.get("positions", []) if isinstance(body, dict) else []
        if isinstance(body, dict) and body.get("error"):
            t.add_row(venue, "-", "-", "-", "-", str(body["error"]))
        for p in rows:
            if not isinstance(p, dict):
                continue
            t.add_row(
                venue,
                str(p.get("symbol", "")),
                str(p.get("side", "")),
                str(p.get("size", p.get("qty", ""))),
                str(p.get("entry_price", p.get("avgPrice", ""))),
                str(p.get("unrealized_pnl", p.get("unrealisedPnl", ""))),
            )
    return t


def render(s: Snapshot, prev: Snapshot | None = None) -> RenderableType:
    """The whole dashboard for one poll (``prev`` gives rates)."""
    h = s.health
    return Group(
        _header(s),
        _processes(h),
        _throughput(s, prev),
        _latency(h),
        _venues(h),
        _marketdata(h),
        _positions(s),
    )


def render_once(base_url: str, api_key: str = "", width: int = 120, interval: float = 0.5) -> str:
    """Two polls ``interval`` apart (for rates), rendered as plain text."""
    first = poll(base_url, api_key)
    time.sleep(interval)  # the measurement window of the rates, not a wait for an event
    second = poll(base_url, api_key)
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None, force_terminal=False)
    console.print(render(second, first))
    return console.export_text()


def run_live(base_url: str, api_key: str = "", interval: float = 1.0) -> None:
    """Redraw until interrupted (Ctrl-C)."""
    prev: Snapshot | None = None
    with Live(render(poll(base_url, api_key)), refresh_per_second=4, screen=False) as live:
        while True:
            time.sleep(interval)  # refresh period of the dashboard
            snap = poll(base_url, api_key)
            live.update(render(snap, prev))
            prev = snap
