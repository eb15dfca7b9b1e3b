"""Fixtures for the shared-memory tests: unique names that are always unlinked, child processes that
are always reaped."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from titan.shm.segment import unlink_quietly

SHM_DIR = Path("/dev/shm")


@pytest.fixture
def shm_name() -> Iterator[Callable[[str], str]]:
    """Factory of unique segment names; everything named by it (segment and doorbell FIFO) is removed
    at teardown, whether or not the test got that far."""
    prefix = f"titan-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def make(label: str) -> str:
        name = f"{prefix}-{label}"
        made.append(name)
        return name

    yield make
    for name in made:
        unlink_quietly(name)
        fifo = SHM_DIR / f"{name}.fifo"
        if fifo.exists():
            fifo.unlink()


@pytest.fixture
def spawn() -> Iterator[multiprocessing.context.SpawnContext]:
    """A spawn context whose processes are killed and joined at teardown if a test left them."""
    ctx = multiprocessing.get_context("spawn")
    yield ctx
    for child in multiprocessing.active_children():
        child.kill()
        child.join(timeout=10)
