"""Where decoded tickers go: the ``marketdata`` process implements this over the shared-memory table."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class TickerSink(Protocol):
    def on_ticker(
        self,
        venue: str,
        symbol: str,
        bid: Decimal | None,
        bid_size: Decimal | None,
        ask: Decimal | None,
        ask_size: Decimal | None,
        last: Decimal | None,
        mark: Decimal | None,
        exchange_ts_ms: int,
        recv_mono_ns: int,
    ) -> None:
        """One full ticker state for (venue, canonical symbol); None where the venue gives no value."""


class AlarmSink(Protocol):
    def __call__(self, venue: str, symbol: str, kind: str) -> None:
        """``kind``: ``first_data`` (no data after subscribing) or ``silence`` (watchdog reconnect)."""
