"""`marketdata --market venues` against the venue simulator under the supervisor: the real
connectors fill the shared-memory ticker table and paper trades on those quotes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from titan.client import FastPathClient
from titan.harness import SECRET, Engine, start_engine

VENUES_ENV = {
    "TITAN__ENGINE__START_SIM": "true",
    "TITAN__MARKETDATA__MODE": '"venues"',
    "TITAN__MARKETDATA__SYMBOLS": '["BTC/USDT", "ETH/USDT"]',
    "TITAN__VENUES__PAPER__PRICE_SOURCE": '"binance"',
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = start_engine(tmp_path, env_overrides=VENUES_ENV)
    try:
        yield eng
    finally:
        eng.stop()


async def confirm_one(engine: Engine) -> tuple[object, object]:
    async with FastPathClient(engine.socket_path, SECRET, timeout=5.0) as client:
        # Quotes arrive within a few pushes; a fresh engine may still answer MARKET_DATA_STALE at first.
        for i in range(200):
            prep = await client.prepare(
                f"md-{i}", "BTC/USDT", "LONG", 65000, 65100, position_size=200, velocity=0.01
            )
            if getattr(prep, "prepared", False):
                return prep, await client.confirm(f"md-{i}")
            await asyncio.sleep(0.05)
        return prep, None


def test_paper_fills_on_simulated_binance_book_ticker(engine: Engine) -> None:
    prep, conf = asyncio.run(confirm_one(engine))
    assert conf is not None, f"never prepared: {prep}"
    assert getattr(conf, "executed", False), conf
    assert getattr(conf, "status", None) == "FILLED"
    price = float(getattr(conf, "fill_price", 0))
    # The simulator's BTC/USDT walk starts at 65000 (titan/venues/sim/config.py).
    assert 60000 < price < 70000
    _, health = engine.health()
    assert health["processes"]["marketdata"]["state"] == "READY"
