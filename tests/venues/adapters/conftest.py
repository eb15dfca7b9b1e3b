"""Fixtures for the sans-I/O adapter tests (derive variants with ``msgspec.structs.replace``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan.venues.common.types import Credentials, Instrument, OrderSpec, OrderType, Side


@pytest.fixture
def credentials() -> Credentials:
    return Credentials(api_key="test-api-key", secret="test-secret-0123456789")


@pytest.fixture
def coid() -> str:
    """A client order id of the risk-and-state.md §12 shape: 26 chars of [a-z0-9]."""
    return "te2vljbqgmnsx4c7pa1dhy01y0"


@pytest.fixture
def btc_linear() -> Instrument:
    return Instrument(
        venue="bybit",
        symbol="BTC/USDT",
        venue_symbol="BTCUSDT",
        tick_size=Decimal("0.10"),
        lot_step=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal("100"),
        min_notional=Decimal("5"),
    )


@pytest.fixture
def limit_buy(coid: str) -> OrderSpec:
    """BUY 0.0129 @ 50000.17 GTC: off both grids on purpose."""
    return OrderSpec(
        client_order_id=coid,
        symbol="BTC/USDT",
        venue_symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.0129"),
        price=Decimal("50000.17"),
    )


@pytest.fixture
def market_sell(coid: str) -> OrderSpec:
    return OrderSpec(
        client_order_id=coid,
        symbol="BTC/USDT",
        venue_symbol="BTCUSDT",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        qty=Decimal("0.5"),
    )
