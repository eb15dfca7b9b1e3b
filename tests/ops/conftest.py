"""Fixtures of the ops tests: a status board in shared memory, and real engines with extra env."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from titan.harness import Engine, eventually, write_config
from titan.health import BOARD_COUNTERS, SUPERVISOR
from titan.shm.board import StatusBoard

PROCS = ["ingress", "marketdata", "core", "gateway.paper", "bridge", SUPERVISOR]


@pytest.fixture
def board() -> Iterator[StatusBoard]:
    b = StatusBoard.create(f"/titan-opstest-{uuid.uuid4().hex[:8]}-board", PROCS, BOARD_COUNTERS)
    try:
        yield b
    finally:
        b.close()
        b.unlink()


def start_ops_engine(
    tmp: Path, extra: str = "", env_extra: dict[str, str] | None = None, ready_timeout: float = 60.0
) -> Engine:
    """Like titan.harness.start_engine, with extra environment (API keys, secrets) for the engine."""
    instance = f"to{uuid.uuid4().hex[:8]}"
    cfg_path = write_config(tmp, instance, extra)
    port = int(cfg_path.read_text().split("[http]")[1].split("port = ")[1].split()[0])
    log_path = tmp / "engine.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN", "NATS_", "PORT"))}
    env.update(env_extra or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "titan.cli", "--config", str(cfg_path), "run", "--nats-port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    engine = Engine(proc, instance, str(tmp / "titan.sock"), port, tmp / "run", log_path)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"engine exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        return engine.health()[0] == 200

    try:
        eventually(ready, timeout=ready_timeout, interval=0.05)
    except BaseException:
        engine.stop()
        raise
    return engine
