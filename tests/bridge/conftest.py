"""Fixtures for the bridge: a real nats-server that tests can kill and restart, and a "rig".

The rig creates the shared memory a bridge attaches to (its two rings, both doorbells, the status
board) under a fresh prefix and lets the test play ``core``: push events on the core → bridge ring,
read what the bridge forwards on the bridge → core ring. The bridge runs in-process (an asyncio
task, with explicit :class:`BridgeSettings`) or as a real ``python -m titan.procs.bridge`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from titan.config import load_config
from titan.messages import BRIDGE_TO_CORE, decoder, encoder
from titan.procs.bridge import Bridge, BridgeSettings
from titan.procs.common import BRIDGE, CORE, ENV_CONFIG, ENV_PREFIX, ChildContext, Layout
from titan.procs.supervisor import nats_server_binary
from titan.shm.board import StatusBoard
from titan.shm.doorbell import Doorbell
from titan.shm.ring import Ring

SECRET = "bridge-test-secret"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests of this directory in a fresh event loop (no plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout}s")


async def until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout}s")


class NatsServer:
    """A JetStream nats-server on a fixed port and store, which survives kill/start cycles."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 10, "nats-server listening")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats-store")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def write_config(directory: Path, instance: str, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "engine.toml"
    path.write_text(
        f"""
[engine]
run_dir = "{directory / "run"}"
instance = "{instance}"
log_level = "WARNING"

[ingress]
hmac_secret = "{SECRET}"
{extra}
"""
    )
    return path


@dataclass
class Rig:
    """Shared memory of one bridge, with the test as its core."""

    directory: Path
    prefix: str
    config_path: Path
    layout: Layout
    to_bridge: Ring
    from_bridge: Ring
    bridge_bell: Doorbell
    core_bell: Doorbell
    board: StatusBoard
    objects: list[Any] = field(default_factory=list)

    def push(self, *messages: Any) -> None:
        enc = encoder().encode
        for m in messages:
            self.to_bridge.push(enc(m), timeout=5)
        self.bridge_bell.ring()

    def push_raw(self, *encoded: bytes) -> None:
        for data in encoded:
            self.to_bridge.push(data, timeout=5)
        self.bridge_bell.ring()

    def pop_all(self) -> list[Any]:
        dec = decoder(BRIDGE_TO_CORE).decode
        out = []
        while (data := self.from_bridge.try_pop()) is not None:
            out.append(dec(data))
        return out

    def counters(self) -> tuple[int, ...]:
        return self.board.read(BRIDGE).counters

    def settings(self, url: str, **overrides: Any) -> BridgeSettings:
        base: dict[str, Any] = {
            "url": url,
            "instance": self.prefix.strip("/"),
            "hmac_keys": {"default": SECRET},
            "spool_dir": str(self.directory / "run" / "spool"),
            "ack_timeout_s": 2.0,
        }
        base.update(overrides)
        return BridgeSettings(**base)

    def env(self, url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN", "NATS_"))}
        env.update({ENV_CONFIG: str(self.config_path), ENV_PREFIX: self.prefix, "NATS_URL": url})
        return env

    def close(self) -> None:
        for obj in reversed(self.objects):
            with contextlib.suppress(Exception):
                obj.close()
            with contextlib.suppress(Exception):
                obj.unlink()


def make_rig(directory: Path, extra: str = "", to_core_slot: int = 4096, to_core_slots: int = 1024) -> Rig:
    instance = f"tb{uuid.uuid4().hex[:8]}"
    config_path = write_config(directory, instance, extra)
    prefix = f"/{instance}"
    layout = Layout(prefix=prefix, venues=("paper",))
    objects: list[Any] = []
    try:
        to_bridge = Ring.create(layout.ring(CORE, BRIDGE), 1024, 4096)
        objects.append(to_bridge)
        from_bridge = Ring.create(layout.ring(BRIDGE, CORE), to_core_slots, to_core_slot)
        objects.append(from_bridge)
        bridge_bell = Doorbell.create(layout.bell(BRIDGE))
        objects.append(bridge_bell)
        core_bell = Doorbell.create(layout.bell(CORE))
        objects.append(core_bell)
        board = StatusBoard.create(layout.board, list(layout.processes))
        objects.append(board)
    except BaseException:
        for obj in objects:
            obj.close()
            obj.unlink()
        raise
    return Rig(
        directory,
        prefix,
        config_path,
        layout,
        to_bridge,
        from_bridge,
        bridge_bell,
        core_bell,
        board,
        objects,
    )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path / "rig")
    try:
        yield r
    finally:
        r.close()


@contextlib.asynccontextmanager
async def running_bridge(rig: Rig, settings: BridgeSettings) -> AsyncIterator[Bridge]:
    """An in-process bridge on ``rig``, stopped (and its shm handles closed) on exit."""
    cfg = load_config(rig.config_path, env={})
    ctx = ChildContext(BRIDGE, cfg, rig.prefix)
    bridge = Bridge(ctx, settings)
    task = asyncio.get_running_loop().create_task(bridge.run())
    try:
        yield bridge
    finally:
        bridge.stop.set()
        try:
            await asyncio.wait_for(task, 10)  # a bridge that cannot stop promptly fails the test
        finally:
            ctx.close()


class BridgeProcess:
    """``python -m titan.procs.bridge`` on a rig (a real process, for SIGKILL tests)."""

    def __init__(self, rig: Rig, url: str) -> None:
        self.rig = rig
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = rig.directory / "bridge.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "titan.procs.bridge"],
                env=self.rig.env(self.url),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def stream_messages(
    url: str, stream: str, subject: str = ">"
) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message of ``stream`` on ``subject`` in stream order: (subject, headers, data)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out: list[tuple[str, dict[str, str], bytes]] = []
        if info.state.messages == 0:
            return out
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=2.0 if subject == ">" else 0.5)
                except TimeoutError:
                    break  # nothing (left) on a filtered subject
                out.append((msg.subject, dict(msg.headers or {}), msg.data))
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def decode_json(data: bytes) -> Any:
    return msgspec.json.decode(data)
