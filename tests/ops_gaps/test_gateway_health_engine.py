"""Gateway health cells on running engines: /health and /metrics follow orders as they flow."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from titan.client import FastPathClient
from titan.harness import SECRET, Engine, eventually, start_engine

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


def test_paper_gateway_health_follows_orders(paper_engine: Engine) -> None:
    eng = paper_engine
    paper = eventually(lambda: venue_health(eng, "paper"), timeout=10)
    assert paper["session_up"] is True and paper["private_stream_up"] is True
    assert paper["rate_limited"] is False and paper["rate_limited_until_ms"] is None
    sent0, filled0 = paper["orders"]["orders_sent"], paper["orders"]["filled"]
    before = scrape(eng)
    assert before[("titan_execution_venue_session_up", (("venue", "paper"),))] == 1

    confirms = asyncio.run(trade(eng, 5, "BTCUSDT", 50000, 50100, 100))
    assert len(confirms) == 5 and all(getattr(c, "executed", False) for c in confirms), confirms

    def counted() -> bool:
        orders = venue_health(eng, "paper")["orders"]
        return bool(orders["orders_sent"] >= sent0 + 5 and orders["filled"] >= filled0 + 5)

    eventually(counted, timeout=10, interval=0.1)
    after = scrape(eng)
    assert orders_metric(after, "paper", "sent") >= orders_metric(before, "paper", "sent") + 5
    assert orders_metric(after, "paper", "filled") >= orders_metric(before, "paper", "filled") + 5
    venue_count = ("titan_execution_stage_latency_us_count", (("stage", "venue"),))
    assert after.get(venue_count, 0) >= before.get(venue_count, 0) + 5
    assert eng.health()[0] == 200


def test_simulated_bybit_gateway_reports_session_and_orders(tmp_path: Path) -> None:
    env = {
        "TITAN__ENGINE__START_SIM": "true",
        "TITAN__MARKETDATA__MODE": '"venues"',
        "TITAN__MARKETDATA__SYMBOLS": '["BTC/USDT"]',
        "TITAN__VENUES__PAPER__ENABLED": "false",
        "TITAN__VENUES__BYBIT__ENABLED": "true",
    }
    eng = start_engine(tmp_path, extra="[routing]\nweights = { bybit = 1 }\n", env_overrides=env)
    try:
        bybit = eventually(
            lambda: (v := venue_health(eng, "bybit")) and v["session_up"] and v["private_stream_up"] and v,
            timeout=20,
            interval=0.1,
        )
        assert bybit["reconciling"] is False and bybit["rate_limited"] is False
        sent0 = bybit["orders"]["orders_sent"]
        confirms = asyncio.run(trade(eng, 2, "BTC/USDT", 65000, 65100, 3000))
        assert all(getattr(c, "executed", False) for c in confirms), confirms

        def filled() -> bool:
            orders = venue_health(eng, "bybit")["orders"]
            return bool(orders["orders_sent"] >= sent0 + 2 and orders["filled"] >= 2)

        eventually(filled, timeout=20, interval=0.1)
        m = scrape(eng)
        assert m[("titan_execution_venue_session_up", (("venue", "bybit"),))] == 1
        assert m[("titan_execution_venue_rate_limited", (("venue", "bybit"),))] == 0
        assert orders_metric(m, "bybit", "filled") >= 2
    finally:
        eng.stop()
