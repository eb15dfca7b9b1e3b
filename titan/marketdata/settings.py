"""Typed settings of the market-data connectors (venues.md §2.5, §3.5, §4.6)."""

from __future__ import annotations

import msgspec

# Loopback ports the simulator listens on when started by the supervisor with its default config.
SIM_DEFAULT_PORTS: dict[str, int] = {"bybit": 18101, "binance": 18102, "mexc": 18103}

LIVE_WS_URLS: dict[str, str] = {
    "bybit": "wss://stream.bybit.com/v5/public/linear",
    "binance": "wss://fstream.binance.com",  # the connector appends the entry point (/public, /market)
    "mexc": "wss://contract.mexc.com/edge",
}


def sim_ws_urls(host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> dict[str, str]:
    p = ports or SIM_DEFAULT_PORTS
    return {
        "bybit": f"ws://{host}:{p['bybit']}/v5/public/linear",
        "binance": f"ws://{host}:{p['binance']}",
        "mexc": f"ws://{host}:{p['mexc']}/edge",
    }


_SIM = sim_ws_urls()
_SYMBOLS = ["BTC/USDT", "ETH/USDT"]


class VenueFeedSettings(msgspec.Struct, frozen=True, kw_only=True):
    """One venue's public ticker feed. ``symbols`` are canonical (``BTC/USDT``)."""

    ws_url: str
    symbols: list[str] = msgspec.field(default_factory=lambda: list(_SYMBOLS))
    enabled: bool = True
    ping_interval_ms: int = 20_000
    silence_ms: int | None = None  # overrides MarketDataSettings.silence_ms
    first_data_ms: int | None = None  # overrides MarketDataSettings.first_data_ms
    binance_mode: str = "stream"  # Binance only: "stream" (combined URL) or "subscribe" (live SUBSCRIBE)


class MarketDataSettings(msgspec.Struct, frozen=True, kw_only=True):
    bybit: VenueFeedSettings = msgspec.field(
        default_factory=lambda: VenueFeedSettings(ws_url=_SIM["bybit"], ping_interval_ms=20_000)
    )
    binance: VenueFeedSettings = msgspec.field(
        default_factory=lambda: VenueFeedSettings(ws_url=_SIM["binance"], ping_interval_ms=60_000)
    )
    mexc: VenueFeedSettings = msgspec.field(
        default_factory=lambda: VenueFeedSettings(ws_url=_SIM["mexc"], ping_interval_ms=15_000)
    )
    silence_ms: int = 5000  # receive-silence watchdog per (venue, symbol): reconnect after this
    first_data_ms: int = 3000  # alarm when a subscription yields no data within this
    open_timeout_ms: int = 5000
    reconnect_min_ms: int = 100
    reconnect_max_ms: int = 10_000

    def feeds(self) -> dict[str, VenueFeedSettings]:
        return {"bybit": self.bybit, "binance": self.binance, "mexc": self.mexc}


def live_settings(symbols: list[str]) -> MarketDataSettings:
    """Settings pointing at the real venues."""
    return MarketDataSettings(
        bybit=VenueFeedSettings(ws_url=LIVE_WS_URLS["bybit"], symbols=symbols, ping_interval_ms=20_000),
        binance=VenueFeedSettings(ws_url=LIVE_WS_URLS["binance"], symbols=symbols, ping_interval_ms=60_000),
        mexc=VenueFeedSettings(ws_url=LIVE_WS_URLS["mexc"], symbols=symbols, ping_interval_ms=15_000),
    )
