"""Typed configuration of the venue simulator (venues.md §8)."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import msgspec

SIM_VENUES: tuple[str, ...] = ("bybit", "binance", "mexc")


class SimInstrument(msgspec.Struct, frozen=True, kw_only=True):
    """One perpetual contract; ``symbol`` is canonical (``BTC/USDT``), sizes in base units."""

    symbol: str
    tick: Decimal
    lot: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal = Decimal("5")
    contract_size: Decimal = Decimal("0.0001")  # MEXC: base units per contract
    start_price: Decimal
    touch_size_lots: int = 500  # resting size at the touch of the random walk, in lots


class SimAccount(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    api_key: str
    secret: str
    balance: Decimal = Decimal("100000")  # USDT


class RateLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Venue rate limits (venues.md §2.7, §3.7, §4.8); small values make tests hit them quickly."""

    bybit_order_per_s: int = 10
    bybit_query_per_s: int = 50
    bybit_ip_per_5s: int = 600
    binance_weight_per_min: int = 2400
    binance_orders_per_10s: int = 300
    binance_orders_per_min: int = 1200
    binance_429s_before_ban: int = 3
    binance_ban_s: int = 120
    mexc_order_per_2s: int = 4
    mexc_other_per_2s: int = 20


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    ports: dict[str, int] = msgspec.field(default_factory=lambda: {v: 0 for v in SIM_VENUES})
    seed: int = 1
    # "walk": seeded random walk; "tape": replay of ``tape``; "manual": quotes only from set_quote.
    price_source: str = "walk"
    tape: str | None = None
    price_step_ms: int = 100
    bybit_ticker_ms: int = 100
    mexc_ticker_ms: int = 1000
    leverage: Decimal = Decimal("10")
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.00055")
    fill_delay_ms: int = 0  # delay between the REST ack and matching (R30 uses 200)
    rate_limits: RateLimits = msgspec.field(default_factory=RateLimits)
    instruments: list[SimInstrument] = msgspec.field(default_factory=lambda: list(DEFAULT_INSTRUMENTS))
    accounts: list[SimAccount] = msgspec.field(default_factory=lambda: list(DEFAULT_ACCOUNTS))


DEFAULT_INSTRUMENTS: tuple[SimInstrument, ...] = (
    SimInstrument(
        symbol="BTC/USDT",
        tick=Decimal("0.1"),
        lot=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal("100"),
        contract_size=Decimal("0.0001"),
        start_price=Decimal("65000.0"),
    ),
    SimInstrument(
        symbol="ETH/USDT",
        tick=Decimal("0.01"),
        lot=Decimal("0.01"),
        min_qty=Decimal("0.01"),
        max_qty=Decimal("1000"),
        contract_size=Decimal("0.01"),
        start_price=Decimal("3200.00"),
    ),
)

DEFAULT_ACCOUNTS: tuple[SimAccount, ...] = (
    SimAccount(venue="bybit", api_key="sim-bybit-key", secret="sim-bybit-secret"),
    SimAccount(venue="binance", api_key="sim-binance-key", secret="sim-binance-secret"),
    SimAccount(venue="mexc", api_key="sim-mexc-key", secret="sim-mexc-secret"),
)


def load_sim_config(path: str | Path) -> SimConfig:
    """Load a TOML (``.toml``) or JSON file; the ``[sim]`` table is used when present."""
    p = Path(path)
    raw: object = tomllib.loads(p.read_text()) if p.suffix == ".toml" else msgspec.json.decode(p.read_bytes())
    if isinstance(raw, dict) and isinstance(raw.get("sim"), dict):
        raw = raw["sim"]
    return msgspec.convert(raw, SimConfig, strict=False)
