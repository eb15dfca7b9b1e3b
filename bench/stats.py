"""Latency histograms (HdrHistogram, nanoseconds) and their summaries (microseconds).

Every latency in the suite is recorded in nanoseconds into an :class:`HdrHistogram` covering 1 ns .. 60 s
at 3 significant digits; summaries report microseconds. Histograms cross process boundaries in their
compressed base64 encoding (``encode()`` / ``decode()``), so worker processes merge losslessly.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hdrh.histogram import HdrHistogram

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9, 99.99)
MAX_NS = 60_000_000_000


class LatencySummary(msgspec.Struct, frozen=True):
    """Percentiles of one histogram, in microseconds (``n`` = samples)."""

    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    p99_9: float
    p99_99: float
    max: float

    def as_row(self) -> tuple[float, ...]:
        return (self.p50, self.p90, self.p99, self.p99_9, self.max)


def new_histogram() -> Any:
    """A histogram in ns: 1 ns .. 60 s, 3 significant digits."""
    return HdrHistogram(1, MAX_NS, 3)


def record(hist: Any, ns: int) -> None:
    """Record one latency; values outside the range are clamped (a 0 ns delta is 1 ns)."""
    hist.record_value(min(max(ns, 1), MAX_NS))


def summarize(hist: Any) -> LatencySummary:
    n = int(hist.get_total_count())
    if n == 0:
        return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p = [hist.get_value_at_percentile(q) / 1000 for q in PERCENTILES]
    return LatencySummary(
        n=n,
        mean=round(hist.get_mean_value() / 1000, 3),
        p50=p[0],
        p90=p[1],
        p99=p[2],
        p99_9=p[3],
        p99_99=p[4],
        max=hist.get_max_value() / 1000,
    )


def encode_histogram(hist: Any) -> str:
    """Compressed base64 form, for sending a histogram between processes or storing it."""
    data = hist.encode()
    return data.decode() if isinstance(data, bytes) else str(data)


def merge_encoded(into: Any, encoded: str) -> None:
    """Add the samples of an encoded histogram to ``into``."""
    into.add(HdrHistogram.decode(encoded))
