"""Helpers of the ops-gaps tests: scrape /metrics, read /health, trade over FastPath."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from titan.client import FastPathClient
from titan.harness import SECRET, Engine

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(engine: Engine) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{engine.http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def orders_metric(m: Samples, venue: str, outcome: str) -> float:
    return m.get(("titan_execution_orders_total", (("outcome", outcome), ("venue", venue))), 0.0)


def venue_health(engine: Engine, venue: str) -> dict[str, Any]:
    body: dict[str, Any] = engine.health()[1].get("venues", {}).get(venue, {})
    return body


async def trade(engine: Engine, n: int, symbol: str, low: float, high: float, size: float) -> list[Any]:
    """``n`` marketable PREPARE/CONFIRM pairs; PREPARE is retried while quotes are not yet fresh."""
    out: list[Any] = []
    async with FastPathClient(engine.socket_path, SECRET, timeout=10.0) as client:
        for i in range(n):
            for attempt in range(100):
                sid = f"gwh-{os.getpid()}-{i}-{attempt}"
                prep = await client.prepare(sid, symbol, "LONG", low, high, position_size=size, velocity=0.01)
                if getattr(prep, "prepared", False):
                    out.append(await client.confirm(sid))
                    break
                await asyncio.sleep(0.05)
    return out
