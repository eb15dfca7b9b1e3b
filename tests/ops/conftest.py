"""Fixtures of the ops tests: a status board in shared memory, and real engines with extra env."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from titan.harness import Engine, start_engine
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
    """titan.harness.start_engine, with extra environment (API keys, secrets) for the engine."""
    return start_engine(tmp, extra, ready_timeout=ready_timeout, env_overrides=env_extra)
