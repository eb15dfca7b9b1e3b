"""Public ticker streams of Bybit, Binance and MEXC → a :class:`TickerSink` (the shared-memory table)."""

from titan.marketdata.connector import ConnectorStats, FeedConnector, build_connectors, run_connectors
from titan.marketdata.feeds import BinanceFeed, BybitFeed, FeedResult, MexcFeed, Ticker, binance_entry_point
from titan.marketdata.settings import MarketDataSettings, VenueFeedSettings, live_settings, sim_ws_urls
from titan.marketdata.sink import AlarmSink, TickerSink

__all__ = [
    "AlarmSink",
    "BinanceFeed",
    "BybitFeed",
    "ConnectorStats",
    "FeedConnector",
    "FeedResult",
    "MarketDataSettings",
    "MexcFeed",
    "Ticker",
    "TickerSink",
    "VenueFeedSettings",
    "binance_entry_point",
    "build_connectors",
    "live_settings",
    "run_connectors",
    "sim_ws_urls",
]
