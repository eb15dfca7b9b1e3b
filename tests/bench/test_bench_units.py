"""Unit tests of the bench suite's pure parts: stage arithmetic, histograms, figures, completeness."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fastpath_load import STAMP_ORDER, PriceRef, stage_deltas
from bench.report import check_complete, render_table
from bench.run import throughput_figures
from bench.stats import encode_histogram, merge_encoded, new_histogram, record, summarize
from titan.ingress.replies import Reply


@given(
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=len(STAMP_ORDER), max_size=len(STAMP_ORDER))
)
def test_stage_deltas_add_up_to_the_whole_trip(gaps: list[int]) -> None:
    stamps, t = {}, 10**9
    for key, gap in zip(STAMP_ORDER, gaps, strict=True):
        t += gap
        stamps[key] = t if gap % 3 else 0  # some stages not taken (0)
    deltas = stage_deltas(stamps)
    taken = [stamps[k] for k in STAMP_ORDER if stamps[k]]
    assert len(deltas) == max(len(taken) - 1, 0)
    assert sum(ns for _, ns in deltas) == (taken[-1] - taken[0] if taken else 0)


@settings(deadline=None, max_examples=40)  # HdrHistogram allocation is slow on a loaded machine
@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=200), st.integers(1, 4))
def test_encoded_histograms_merge_losslessly(values: list[int], copies: int) -> None:
    h = new_histogram()
    for v in values:
        record(h, v)
    merged = new_histogram()
    for _ in range(copies):
        merge_encoded(merged, encode_histogram(h))
    s, m = summarize(h), summarize(merged)
    assert m.n == copies * len(values)
    assert (m.p50, m.p99, m.max) == (s.p50, s.p99, s.max)


def test_empty_histogram_summarises_to_zeros() -> None:
    assert summarize(new_histogram()).n == 0


@pytest.mark.parametrize("price", [50000.0, 3000.0, 0.5])
def test_price_ref_zone_follows_fills(price: float) -> None:
    ref = PriceRef()
    ref.update("BTCUSDT", Reply(executed=True, fill_price=price))
    low, high = ref.zone("BTCUSDT")
    assert low < price < high
    ref.update("BTCUSDT", Reply(executed=False, fill_price=1.0))  # not executed: ignored
    assert ref.zone("BTCUSDT") == (low, high)


def _step(rate: float, p99: float, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "framing": "binary",
        "offered_rate": rate,
        "achieved_rate": rate,
        "latency": {"n": 100, "p99": p99},
        "saturated": False,
        "failed": 0,
    }
    row.update(kw)
    return row


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([_step(1000, 400), _step(5000, 900), _step(10000, 1500)], 5000),
        ([_step(1000, 400), _step(5000, 900, saturated=True)], 1000),
        ([_step(1000, 400), _step(5000, 500, failed=3)], 1000),
        ([_step(1000, 400), _step(5000, 500, achieved_rate=3000)], 1000),
        ([_step(1000, 1200)], None),
    ],
)
def test_throughput_figure_is_the_highest_clean_rate(
    steps: list[dict[str, Any]], expected: float | None
) -> None:
    assert throughput_figures(steps)["binary"]["max_rate_p99_under_1ms"] == expected


def _summary(v: float = 1.0) -> dict[str, float]:
    return {k: v for k in ("n", "mean", "p50", "p90", "p99", "p99_9", "p99_99", "max")}


def minimal_result() -> dict[str, Any]:
    closed = {
        "framing": "binary",
        "prepare": _summary(),
        "confirm": _summary(),
        "abort": _summary(),
        "confirm_stages": {"client → ingress read": _summary()},
        "prepare_stages": {"client → ingress read": _summary()},
        "failures": {},
    }
    step = _step(1000, 1.0)
    step.update(latency=_summary(), service=_summary(), client_cpu_pct_of_core=1.0)
    chain = {"round_trip": _summary(), "throughput_rt_per_s": 1.0}
    return {
        "schema": 1,
        "timestamp": "t",
        "machine": {"cpus": 2, "platform": "p", "python": "3", "loadavg_before": [0], "loadavg_after": [0]},
        "versions": {},
        "config": {},
        "closed_loop": {"ndjson": dict(closed, framing="ndjson"), "binary": closed},
        "open_loop": [step],
        "throughput": throughput_figures([step]),
        "baseline": {
            "chain": "c",
            "shm": chain,
            "mpqueue": chain,
            "ratio_p50": 1.0,
            "ratio_p99": 1.0,
            "ratio_throughput": 1.0,
        },
        "extra_paths": {"nats_path": {"available": False, "reason": "r"}},
        "targets": [{"name": "x", "target": "<= 1", "measured": None, "met": None}],
        "engine": {},
    }


def test_complete_result_passes_and_renders() -> None:
    res = minimal_result()
    assert check_complete(res) == []
    assert "not available" in render_table(res)


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("baseline"),
        lambda r: r["closed_loop"].pop("ndjson"),
        lambda r: r["closed_loop"]["binary"]["confirm"].pop("p99"),
        lambda r: r.__setitem__("open_loop", []),
        lambda r: r["baseline"]["shm"].__setitem__("round_trip", None),
    ],
)
def test_incomplete_results_are_reported(damage: Any) -> None:
    res = copy.deepcopy(minimal_result())
    damage(res)
    assert check_complete(res) != []
