"""A paper engine shared by the ops-gaps tests that only need one running (session scope)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from titan.harness import Engine, start_engine


@pytest.fixture(scope="session")
def paper_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = start_engine(tmp_path_factory.mktemp("opsgaps-paper"), log_level="WARNING")
    try:
        yield eng
    finally:
        eng.stop()
