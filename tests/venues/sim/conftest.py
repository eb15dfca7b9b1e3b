"""Fixtures: a simulator with manual quotes on ephemeral loopback ports and an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from titan.venues.sim import SimConfig, SimServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def manual_config(**overrides: object) -> SimConfig:
    fields: dict[str, object] = {"price_source": "manual", "seed": 3}
    fields.update(overrides)
    return SimConfig(**fields)  # type: ignore[arg-type]  # test-only keyword passthrough


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(manual_config()) as server:
        await server.set_quote("BTC/USDT", Decimal("65000.0"), Decimal("65000.1"), "0.5", "0.5")
        await server.set_quote("ETH/USDT", Decimal("3200.00"), Decimal("3200.01"), "10", "10")
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
