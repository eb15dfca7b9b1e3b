"""The staleness thresholds the engine actually runs with (risk-and-state.md §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from titan.config import load_config
from titan.engine.settings import settings_from_config
from titan.harness import write_config


def test_mexc_default_threshold_survives_a_partial_venue_section(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, "ttcfg")
    cfg = load_config(str(cfg_path), env={"TITAN__VENUES__MEXC__REST_URL": '"http://127.0.0.1:1"'})
    staleness = settings_from_config(cfg).checks.staleness
    assert staleness.threshold_ms("mexc", 0) == 1500


@pytest.mark.parametrize(("venue", "expected"), [("bybit", 200), ("binance", 200), ("mexc", 1500)])
def test_default_thresholds(tmp_path: Path, venue: str, expected: int) -> None:
    cfg = load_config(str(write_config(tmp_path, "ttcfg")), env={})
    assert settings_from_config(cfg).checks.staleness.threshold_ms(venue, 0) == expected
