"""Ticker table: exact unit conversion, row semantics, and no torn row under a concurrent writer."""

from __future__ import annotations

import multiprocessing.context
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.shm.segment import Segment
from titan.shm.ticker import (
    PRICE_EXP,
    SIZE_EXP,
    TickerIndex,
    TickerSnapshot,
    TickerTable,
    price_to_units,
    size_to_units,
    units_to_price,
    units_to_size,
)

from . import workers

Names = Callable[[str], str]

INT64 = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)


@given(INT64)
def test_price_units_round_trip_exactly(units: int) -> None:
    assert price_to_units(units_to_price(units)) == units
    assert size_to_units(units_to_size(units)) == units


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("0", 0),
        ("65000.5", 65_000_500_000_000),
        ("0.000000001", 1),
        ("1E+3", 1_000_000_000_000),
        ("-2.5", -2_500_000_000),
    ],
)
def test_price_to_units_examples(text: str, units: int) -> None:
    assert price_to_units(Decimal(text)) == units
    assert units_to_price(units) == Decimal(text)
    assert units_to_price(units).as_tuple().exponent == PRICE_EXP


def test_size_exponent() -> None:
    assert size_to_units(Decimal("0.001")) == 1000
    assert units_to_size(1).as_tuple().exponent == SIZE_EXP


@pytest.mark.parametrize(
    ("convert", "value", "message"),
    [
        (price_to_units, Decimal("0.0000000001"), "not a multiple"),
        (size_to_units, Decimal("0.0000001"), "not a multiple"),
        (price_to_units, Decimal("NaN"), "not finite"),
        (price_to_units, Decimal("Infinity"), "not finite"),
        (price_to_units, Decimal("1E+12"), "int64"),
    ],
)
def test_inexact_or_out_of_range_values_are_rejected(
    convert: Callable[[Decimal], int], value: Decimal, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        convert(value)


def test_rows_start_absent_and_read_back_what_was_written(shm_name: Names) -> None:
    name = shm_name("ticker")
    with TickerTable.create(name, 4) as table, TickerTable.attach(name) as reader:
        assert reader.rows == 4
        assert reader.read(2) is None
        assert reader.recv_mono_ns(2) == 0
        table.write(2, **workers.ticker_fields(1))
        table.write(2, **workers.ticker_fields(2))
        snapshot = reader.read(2)
        assert snapshot == TickerSnapshot(**workers.ticker_fields(2), updates=2)
        assert reader.recv_mono_ns(2) == workers.ticker_fields(2)["recv_mono_ns"]
        assert reader.read(1) is None
        for bad in (-1, 4):
            with pytest.raises(IndexError):
                reader.read(bad)
        table.unlink()


def test_attach_rejects_a_segment_that_is_not_a_ticker_table(shm_name: Names) -> None:
    name = shm_name("plain")
    with Segment.create(name, 4096), pytest.raises(ValueError, match="not a ticker table"):
        TickerTable.attach(name)


def test_writer_recovers_a_row_left_mid_write(shm_name: Names) -> None:
    """A writer killed between its two seq stores leaves seq odd; the restarted writer moves past it."""
    with TickerTable.create(shm_name("ticker"), 1) as table:
        table.write(0, **workers.ticker_fields(1))
        words = table._segment.buf.cast("q")
        words[8] += 1  # row 0's seq, as a crash mid-write leaves it
        words.release()
        table.write(0, **workers.ticker_fields(2))
        snapshot = table.read(0)
        assert snapshot is not None and snapshot.bid == workers.ticker_fields(2)["bid"]


def test_index_is_deterministic_and_normalises(shm_name: Names) -> None:
    pairs = [("bybit", "BTC/USDT"), ("Binance", "ethusdt"), ("mexc", "SOL_USDT")]
    index = TickerIndex(pairs)
    assert len(index) == 3
    assert index.pairs() == [("bybit", "BTC/USDT"), ("binance", "ETH/USDT"), ("mexc", "SOL/USDT")]
    assert index.row("bybit", "BTC/USDT") == 0
    assert index.row("binance", "ETH/USDT") == 1
    assert index.row("MEXC", "solusdt") == 2
    assert index.row("bybit", "ETH/USDT") is None
    assert index.row("bybit", "???") is None
    assert TickerIndex(pairs).pairs() == index.pairs()
    with pytest.raises(ValueError, match="duplicate"):
        TickerIndex([("bybit", "BTCUSDT"), ("bybit", "BTC/USDT")])


def test_concurrent_reader_never_sees_a_torn_row(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext
) -> None:
    table = TickerTable.create(shm_name("ticker"), 2)
    control = Segment.create(shm_name("control"), 64)
    flags = control.buf.cast("q")
    writer = spawn.Process(target=workers.hammer_ticker_row, args=(table.name, 1, control.name, 20.0))
    writer.start()
    try:
        deadline = time.monotonic() + 10
        while table.read(1) is None:
            assert time.monotonic() < deadline, "writer never started"
            time.sleep(0.001)
        reads = torn = 0
        seen: set[int] = set()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for _ in range(200):
                snapshot = table.read(1)
                assert snapshot is not None
                counter = snapshot.updates
                reads += 1
                seen.add(counter)
                if snapshot != TickerSnapshot(**workers.ticker_fields(counter), updates=counter):
                    torn += 1
        flags[0] = 1
        writer.join(timeout=20)
        assert writer.exitcode == 0
        assert torn == 0
        # The reads really overlapped many writes (otherwise the test proves nothing).
        assert len(seen) > 100
        assert flags[1] >= max(seen)
    finally:
        flags.release()
        control.close()
        table.close()
