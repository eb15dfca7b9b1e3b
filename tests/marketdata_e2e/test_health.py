"""Market-data health on the status board and /health in ``--market sim`` mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from titan.harness import Engine, eventually, start_engine
from titan.health import MARKETDATA_SLOTS
from titan.procs.marketdata import MARKETDATA_CELLS
from titan.shm.board import StatusBoard

from .conftest import VENUES


@pytest.fixture
def sim_mode_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = start_engine(tmp_path)  # the default config: marketdata.mode = "sim", paper trading
    try:
        yield eng
    finally:
        eng.stop()


def test_sim_mode_publishes_connected_and_updates(sim_mode_engine: Engine) -> None:
    board = StatusBoard.attach(f"/{sim_mode_engine.instance}-{sim_mode_engine.proc.pid}-board")
    try:

        def cell(name: str) -> int:
            return int(board.read("marketdata").counters[MARKETDATA_CELLS[name]])

        assert cell("connected.sim") == 1
        assert all(cell(f"connected.{v}") == 0 for v in VENUES)
        total = cell("updates_total")
        eventually(lambda: cell("updates_total") > total, timeout=5)
        _, body = sim_mode_engine.health()
        assert body["marketdata_connected"] == {"sim": True}
    finally:
        board.close()


def test_extra_cells_do_not_overlap_the_shared_names() -> None:
    assert set(MARKETDATA_SLOTS.items()) <= set(MARKETDATA_CELLS.items())
    assert len(set(MARKETDATA_CELLS.values())) == len(MARKETDATA_CELLS)
