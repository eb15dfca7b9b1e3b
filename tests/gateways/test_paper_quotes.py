"""The paper gateway's quotes from the shared-memory ticker table (titan.procs.gateway.ticker_quotes)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from titan.procs.gateway import ticker_quotes
from titan.shm.ticker import TickerIndex, TickerTable, price_to_units


def _write(table: TickerTable, row: int, bid: str, ask: str, n: int) -> None:
    table.write(
        row,
        bid=price_to_units(Decimal(bid)),
        bid_size=1,
        ask=price_to_units(Decimal(ask)),
        ask_size=1,
        last=0,
        mark=0,
        exchange_ts_ms=n,
        recv_mono_ns=n,
        recv_wall_ms=n,
    )


def test_quotes_follow_the_row_and_an_unchanged_top_of_book_is_reused() -> None:
    index = TickerIndex([("binance", "BTC/USDT"), ("bybit", "BTC/USDT"), ("binance", "ETH/USDT")])
    table = TickerTable.create(f"/titan-quotes-{uuid.uuid4().hex[:8]}", len(index))
    try:
        quote = ticker_quotes(table, index, "binance")
        assert quote("BTC/USDT") is None  # never written
        assert quote("SOL/USDT") is None  # no row
        row = index.row("binance", "BTC/USDT")
        assert row is not None
        _write(table, row, "50000.1", "50000.2", 1)
        _write(table, index.row("bybit", "BTC/USDT") or 0, "1", "2", 1)  # another venue's row: ignored
        first = quote("BTC/USDT")
        assert first is not None and (first.bid, first.ask) == (Decimal("50000.1"), Decimal("50000.2"))
        _write(table, row, "50000.1", "50000.2", 2)  # a new update, same prices
        assert quote("BTC/USDT") is first
        _write(table, row, "50000.1", "50000.3", 3)
        moved = quote("BTC/USDT")
        assert moved is not None and (moved.bid, moved.ask) == (Decimal("50000.1"), Decimal("50000.3"))
        _write(table, row, "49999.9", "50000.3", 4)
        moved = quote("BTC/USDT")
        assert moved is not None and (moved.bid, moved.ask) == (Decimal("49999.9"), Decimal("50000.3"))
    finally:
        table.close()
        table.unlink()
