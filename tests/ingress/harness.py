"""Run the real `ingress` process against shared memory created here and a tiny fake core thread."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from titan.config import load_config
from titan.health import BOARD_COUNTERS, SUPERVISOR
from titan.messages import (
    INGRESS_TO_CORE,
    Abort,
    Confirm,
    Prepare,
    Reply,
    Stages,
    decoder,
    encoder,
)
from titan.procs.common import CORE, ENV_CONFIG, ENV_PREFIX, INGRESS, layout_for
from titan.shm.board import ProcState, StatusBoard
from titan.shm.doorbell import Doorbell, wait_any
from titan.shm.ring import Ring

SECRET = "ingress-test-secret"


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``check`` until truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@dataclass
class FakeCore:
    """Answers commands like core would (prepared table, one confirm per id); controllable."""

    commands: Ring
    replies: Ring
    bell: Doorbell
    ingress_bell: Doorbell
    board: StatusBoard
    ready: bool = True
    consuming: bool = True
    answering: bool = True
    seen: list[Prepare | Confirm | Abort] = field(default_factory=list)
    prepared: set[str] = field(default_factory=set)
    confirmed: set[str] = field(default_factory=set)
    injected: deque[Reply] = field(default_factory=deque)  # pushed by the core thread (one producer)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-core", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        self.ready, self.consuming, self.answering = True, True, True
        self.seen.clear()

    def _fields(self, cmd: Prepare | Confirm | Abort) -> dict[str, Any]:
        if isinstance(cmd, Prepare):
            sid = cmd.intent.signal_id
            self.prepared.add(sid)
            return {
                "signal_id": sid,
                "prepared": True,
                "position_size": 100,
                "quantity": "0.002",
                "order_type": "MARKET",
            }
        sid = cmd.signal_id
        if isinstance(cmd, Confirm):
            if sid in self.confirmed:
                return {
                    "signal_id": sid,
                    "executed": True,
                    "status": "FILLED",
                    "fill_price": 50050,
                    "duplicate": True,
                }
            if sid not in self.prepared:
                return {"signal_id": sid, "executed": False, "rejected": True, "reason": "PREPARE_NOT_FOUND"}
            self.prepared.discard(sid)
            self.confirmed.add(sid)
            return {"signal_id": sid, "executed": True, "status": "FILLED", "fill_price": 50050}
        self.prepared.discard(sid)
        return {"signal_id": sid, "aborted": True}

    def _push(self, reply: bytes) -> None:
        while not self.replies.try_push(reply):
            self.ingress_bell.ring()
            time.sleep(0.001)

    def _run(self) -> None:
        dec = decoder(INGRESS_TO_CORE).decode
        enc = encoder().encode
        next_beat = 0
        while not self._stop.is_set():
            now = time.monotonic_ns()
            if now >= next_beat:
                self.board.set_state(CORE, ProcState.READY if self.ready else ProcState.STARTING)
                self.board.beat(CORE, now)
                next_beat = now + 50_000_000
            while self.injected:
                self._push(enc(self.injected.popleft()))
                self.ingress_bell.ring()
            if not self.consuming:
                time.sleep(0.005)
                continue
            if not wait_any([self.commands], self.bell, 0.05, 0):
                continue
            rung = False
            while self.consuming and (payload := self.commands.try_pop()) is not None:
                cmd = dec(payload)
                self.seen.append(cmd)
                if not self.answering:
                    continue
                stages = Stages(t_read=cmd.t_read, t_ring=cmd.t_ring, t_core_in=time.monotonic_ns())
                stages.t_core_out = time.monotonic_ns()
                self._push(enc(Reply(cmd.conn, cmd.req, self._fields(cmd), stages)))
                rung = True
            if rung:
                self.ingress_bell.ring()


@dataclass
class IngressRun:
    socket_path: str
    proc: subprocess.Popen[bytes]
    core: FakeCore
    board: StatusBoard
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def counters(self) -> tuple[int, ...]:
        return self.board.read(INGRESS).counters


@contextlib.contextmanager
def run_ingress(ring_slots: int = 1024, **ingress: Any) -> Iterator[IngressRun]:
    """Create the shm objects ingress needs, start `python -m titan.procs.ingress`, and a fake core."""
    tmp = Path(tempfile.mkdtemp(prefix="ti-", dir="/tmp"))
    sock = str(tmp / "fp.sock")
    settings = {"socket_path": sock, "hmac_secret": SECRET, **ingress}
    lines = ["[ingress]"] + [f"{k} = {_toml(v)}" for k, v in settings.items()]
    lines += ["[supervisor]", "heartbeat_timeout_ms = 1000"]
    cfg_path = tmp / "ingress.toml"
    cfg_path.write_text("\n".join(lines) + "\n")
    cfg = load_config(cfg_path, env={})
    prefix = f"/ti-{uuid.uuid4().hex[:10]}"
    layout = layout_for(cfg, prefix)
    objects: list[Ring | Doorbell | StatusBoard] = []
    proc: subprocess.Popen[bytes] | None = None
    core: FakeCore | None = None
    log_path = tmp / "ingress.log"
    try:
        commands = Ring.create(layout.ring(INGRESS, CORE), ring_slots, 1024)
        replies = Ring.create(layout.ring(CORE, INGRESS), 1024, 1024)
        core_bell = Doorbell.create(layout.bell(CORE))
        ingress_bell = Doorbell.create(layout.bell(INGRESS))
        board = StatusBoard.create(layout.board, [*layout.processes, SUPERVISOR], BOARD_COUNTERS)
        objects += [commands, replies, core_bell, ingress_bell, board]
        core = FakeCore(commands, replies, core_bell, ingress_bell, board)
        core.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN", "HMAC", "IPC_"))}
        env.update({ENV_CONFIG: str(cfg_path), ENV_PREFIX: prefix, "PYTHONUNBUFFERED": "1"})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "titan.procs.ingress"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        run = IngressRun(sock, proc, core, board, log_path)
        wait_for(lambda: board.read(INGRESS).state == ProcState.READY or proc.poll() is not None, 30)
        if proc.poll() is not None:
            raise AssertionError(f"ingress exited during start-up:\n{run.log()}")
        yield run
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if core is not None:
            core.stop()
        for obj in reversed(objects):
            with contextlib.suppress(Exception):
                obj.close()
            with contextlib.suppress(Exception):
                obj.unlink()
        shutil.rmtree(tmp, ignore_errors=True)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
