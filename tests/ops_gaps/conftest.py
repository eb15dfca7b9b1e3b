"""A paper engine shared by the ops-gaps tests that only need one running (session scope)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.venues_e2e.conftest import ThreadSim
from titan.harness import Engine, start_engine
from titan.venues.sim import SimConfig


@pytest.fixture(scope="session")
def paper_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = start_engine(tmp_path_factory.mktemp("opsgaps-paper"), log_level="WARNING")
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture
def bybit_sim() -> Iterator[ThreadSim]:
    """The venue simulator in a thread of the test process, so the test can switch its faults."""
    sim = ThreadSim(SimConfig(seed=5))
    try:
        yield sim
    finally:
        sim.close()
