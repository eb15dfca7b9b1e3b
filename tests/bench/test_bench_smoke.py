"""CI smoke run of the bench suite: tiny counts, real engine and processes; checks output, not timings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.baseline_chain import run_baseline
from bench.report import check_complete, render_table
from bench.run import EXTRA_PATHS, SuiteConfig, save


def _bench_segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("tbench")}


@pytest.mark.timeout(60)
def test_baseline_chain_runs_both_transports_and_cleans_up() -> None:
    before = _bench_segments()
    res = run_baseline(n=50, warmup=10, tput_n=300, window=16)
    for chain in (res.shm, res.mpqueue):
        assert chain.round_trip.n == 50
        assert set(chain.hops) == {"ingress → core", "core → gateway", "gateway → core", "core → ingress"}
        assert all(h.n == 50 for h in chain.hops.values())
        assert chain.throughput_rt_per_s > 0
        assert set(chain.cpu_s) == {"ingress", "core", "gateway"}
    assert res.ratio_p50 > 0 and res.ratio_throughput > 0
    assert _bench_segments() <= before


@pytest.mark.timeout(120)
def test_quick_suite_writes_complete_json_and_plot(tmp_path: Path) -> None:
    from bench.run import run_suite

    cfg = SuiteConfig.quick_suite()
    cfg.intents, cfg.warmup = 20, 5
    cfg.rates, cfg.step_seconds, cfg.step_warmup_seconds = (200,), 0.4, 0.1
    cfg.workers, cfg.connections = 1, 1
    cfg.baseline_n, cfg.baseline_warmup, cfg.baseline_throughput_n = 30, 5, 100
    res = run_suite(cfg, log=lambda _: None)
    json_path, png_path, plot_problem = save(res, tmp_path)
    loaded = json.loads(json_path.read_text())
    assert check_complete(loaded) == []
    assert loaded["closed_loop"]["binary"]["confirm"]["n"] == 20
    assert loaded["open_loop"][0]["planned"] == 80  # 200/s for 0.4 s
    assert {t["name"].split(" ")[0] for t in loaded["targets"]} >= {
        "PREPARE",
        "CONFIRM→executed",
        "throughput,",
    }
    assert set(loaded["extra_paths"]) == set(EXTRA_PATHS)  # each reported, run or "not available"
    assert "baseline chain" in render_table(loaded)
    if plot_problem is None:
        assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
