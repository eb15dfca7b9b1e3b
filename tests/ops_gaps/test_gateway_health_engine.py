"""Gateway health cells on running engines: /health and /metrics follow orders as they flow."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.ops_gaps.helpers import orders_metric, scrape, trade, venue_health
from tests.venues_e2e.conftest import ThreadSim
from titan.harness import Engine, eventually, start_engine


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


def test_rate_limited_bybit_shows_on_health_and_metrics(tmp_path: Path, bybit_sim: ThreadSim) -> None:
    thread_sim = bybit_sim
    env = {
        **thread_sim.env(),  # every venue at the simulator (market data reads all three)
        "TITAN__MARKETDATA__MODE": '"venues"',
        "TITAN__MARKETDATA__SYMBOLS": '["BTC/USDT"]',
        "TITAN__VENUES__PAPER__ENABLED": "false",
        "TITAN__VENUES__BYBIT__ENABLED": "true",
        "TITAN__ENGINE__START_SIM": "false",
    }
    eng = start_engine(tmp_path, extra="[routing]\nweights = { bybit = 1 }\n", env_overrides=env)
    try:
        bybit = eventually(lambda: (v := venue_health(eng, "bybit")) and v["session_up"] and v, timeout=20)
        assert bybit["rate_limited"] is False
        rejected0 = bybit["orders"]["rejected"]
        thread_sim.call(set_storm(thread_sim, True))
        asyncio.run(trade(eng, 1, "BTC/USDT", 65000, 65100, 3000))  # its order meets the storm
        limited = eventually(
            lambda: (v := venue_health(eng, "bybit")) and v["rate_limited"] and v, timeout=20, interval=0.1
        )
        assert limited["rate_limited_until_ms"] > 0 and limited["orders"]["rejected"] >= rejected0 + 1
        assert scrape(eng)[("titan_execution_venue_rate_limited", (("venue", "bybit"),))] == 1
    finally:
        thread_sim.call(set_storm(thread_sim, False))
        eng.stop()


async def set_storm(sim: ThreadSim, on: bool) -> None:
    sim.server.set_faults("bybit", rate_limit_storm=on)
