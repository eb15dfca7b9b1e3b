"""Ticker table: one row per (venue, symbol) in shared memory, one writer, many readers.

Layout: a 64-byte header (magic, version, rows, row_size), then ``rows`` rows of 128 bytes::

    seq, bid, bid_size, ask, ask_size, last, mark, exchange_ts_ms, recv_mono_ns, recv_wall_ms, updates

all int64 at 8-aligned offsets. Prices are int64 units of 1e-9 (:data:`PRICE_EXP`), sizes units of
1e-6 (:data:`SIZE_EXP`); 0 means absent. Each row is guarded by a sequence lock: the writer makes
``seq`` odd, writes the fields, makes it even again; a reader reads seq, copies the fields, reads seq
again and retries while it was odd or changed (x86-64 keeps stores in order and loads in order, and
every access is one aligned 8-byte ``mov``), so a reader never returns a half-written row.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from decimal import Decimal
from types import TracebackType

import msgspec

from titan.shm.segment import Segment
from titan.symbols import SymbolError, normalize_symbol

PRICE_EXP = -9  # prices stored as int64 units of 1e-9
SIZE_EXP = -6  # sizes stored as int64 units of 1e-6

MAGIC = 0x4C42_4154_4B43_4954  # "TICKTABL" little-endian
VERSION = 1
HEADER_SIZE = 64
ROW_SIZE = 128
_ROW_WORDS = ROW_SIZE // 8
_FIELDS = 10  # after seq
_SEQ = 0
_RECV_MONO = 8
_UPDATES = 10
_INT64_MAX = (1 << 63) - 1
# Readers give up on a row whose seq stays odd this long: its writer died mid-write.
_TORN_ROW_TIMEOUT_S = 0.1


class TickerBusy(TimeoutError):
    """A row stayed mid-write (odd seq) for too long: the writer was killed while writing it."""


def _to_units(value: Decimal, exp: int, what: str) -> int:
    if not value.is_finite():
        raise ValueError(f"{what} {value} is not finite")
    scaled = value.scaleb(-exp)
    units = int(scaled)
    if scaled != units:
        raise ValueError(f"{what} {value} is not a multiple of 1e{exp}")
    if not -_INT64_MAX <= units <= _INT64_MAX:
        raise ValueError(f"{what} {value} does not fit in int64 units of 1e{exp}")
    return units


def price_to_units(d: Decimal) -> int:
    """Exact price → int64 units of 1e-9; ``ValueError`` if not representable exactly."""
    return _to_units(d, PRICE_EXP, "price")


def units_to_price(u: int) -> Decimal:
    """int64 units of 1e-9 → the exact Decimal price."""
    return Decimal(u).scaleb(PRICE_EXP)


def size_to_units(d: Decimal) -> int:
    """Exact size → int64 units of 1e-6; ``ValueError`` if not representable exactly."""
    return _to_units(d, SIZE_EXP, "size")


def units_to_size(u: int) -> Decimal:
    """int64 units of 1e-6 → the exact Decimal size."""
    return Decimal(u).scaleb(SIZE_EXP)


class TickerSnapshot(msgspec.Struct, frozen=True, gc=False):
    """One consistent copy of a row. Prices/sizes in units (see module docstring); 0 = absent."""

    bid: int
    bid_size: int
    ask: int
    ask_size: int
    last: int
    mark: int
    exchange_ts_ms: int
    recv_mono_ns: int
    recv_wall_ms: int
    updates: int


class TickerTable:
    """The shared ticker table; the ``marketdata`` process is its only writer."""

    __slots__ = ("_q", "_segment", "name", "rows")

    name: str
    rows: int

    def __init__(self, segment: Segment, rows: int) -> None:
        self._segment = segment
        self.name = segment.name
        self.rows = rows
        self._q = segment.buf.cast("q")

    @staticmethod
    def segment_size(rows: int) -> int:
        if rows < 1:
            raise ValueError(f"ticker table needs at least one row, got {rows}")
        return HEADER_SIZE + rows * ROW_SIZE

    @classmethod
    def create(cls, name: str, rows: int) -> TickerTable:
        segment = Segment.create(name, cls.segment_size(rows))
        q = segment.buf.cast("q")
        q[1], q[2], q[3] = VERSION, rows, ROW_SIZE
        q[0] = MAGIC
        q.release()
        return cls(segment, rows)

    @classmethod
    def attach(cls, name: str) -> TickerTable:
        segment = Segment.attach(name)
        try:
            if segment.size < HEADER_SIZE:
                raise ValueError(f"segment {name!r} is too small to be a ticker table")
            q = segment.buf.cast("q")
            magic, version, rows, row_size = q[0:4].tolist()
            q.release()
            if magic != MAGIC:
                raise ValueError(f"segment {name!r} is not a ticker table (magic {magic:#x})")
            if version != VERSION or row_size != ROW_SIZE:
                raise ValueError(
                    f"ticker table {name!r} has layout version {version}/row {row_size}, "
                    f"expected {VERSION}/{ROW_SIZE}"
                )
            if segment.size < cls.segment_size(rows):
                raise ValueError(f"ticker table {name!r} is truncated")
        except BaseException:
            segment.close()
            raise
        return cls(segment, rows)

    def _base(self, row: int) -> int:
        if not 0 <= row < self.rows:
            raise IndexError(f"ticker row {row} out of range 0..{self.rows - 1}")
        return (HEADER_SIZE + row * ROW_SIZE) >> 3

    def write(
        self,
        row: int,
        *,
        bid: int,
        bid_size: int,
        ask: int,
        ask_size: int,
        last: int,
        mark: int,
        exchange_ts_ms: int,
        recv_mono_ns: int,
        recv_wall_ms: int,
    ) -> None:
        """Replace a row (single writer). Readers see the old row or the new one, never a mix."""
        i = self._base(row)
        q = self._q
        seq = q[i]
        if seq & 1:
            seq += 1  # a previous writer died mid-write: move past that odd value
        q[i] = seq + 1
        q[i + 1] = bid
        q[i + 2] = bid_size
        q[i + 3] = ask
        q[i + 4] = ask_size
        q[i + 5] = last
        q[i + 6] = mark
        q[i + 7] = exchange_ts_ms
        q[i + 8] = recv_mono_ns
        q[i + 9] = recv_wall_ms
        q[i + 10] = q[i + 10] + 1
        q[i] = seq + 2

    def read(self, row: int) -> TickerSnapshot | None:
        """A consistent snapshot of the row, or None if it was never written."""
        i = self._base(row)
        q = self._q
        end = i + 1 + _FIELDS
        attempts = 0
        deadline = 0.0
        while True:
            seq = q[i]
            if seq == 0:
                return None
            if not seq & 1:
                fields = q[i + 1 : end].tolist()
                if q[i] == seq:
                    return TickerSnapshot(*fields)
            attempts += 1
            if attempts >= 16:
                # The writer may be descheduled mid-write; give it the CPU instead of spinning.
                os.sched_yield()
                now = time.monotonic()
                if deadline == 0.0:
                    deadline = now + _TORN_ROW_TIMEOUT_S
                elif now > deadline:
                    raise TickerBusy(f"ticker {self.name!r} row {row} stayed mid-write (seq {seq})")

    def recv_mono_ns(self, row: int) -> int:
        """Receive time of the row's latest write (one aligned load; 0 if never written)."""
        return int(self._q[self._base(row) + _RECV_MONO])

    def updates(self, row: int) -> int:
        """How many times the row was written (one aligned load)."""
        return int(self._q[self._base(row) + _UPDATES])

    def close(self) -> None:
        if self._segment.closed:
            return
        self._q.release()
        self._segment.close()

    def unlink(self) -> None:
        self._segment.unlink()

    def __enter__(self) -> TickerTable:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TickerIndex:
    """Deterministic (venue, canonical symbol) → row mapping, built from config order in every process.

    Venues are lower-cased and symbols normalised (``BTCUSDT`` → ``BTC/USDT``) at construction, and on
    lookup when the exact key misses.
    """

    __slots__ = ("_pairs", "_rows")

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs: list[tuple[str, str]] = []
        self._rows: dict[tuple[str, str], int] = {}
        for venue, symbol in pairs:
            key = (venue.lower(), normalize_symbol(symbol))
            if key in self._rows:
                raise ValueError(f"duplicate ticker pair {key}")
            self._rows[key] = len(self._pairs)
            self._pairs.append(key)

    def row(self, venue: str, symbol: str) -> int | None:
        row = self._rows.get((venue, symbol))
        if row is not None:
            return row
        try:
            return self._rows.get((venue.lower(), normalize_symbol(symbol)))
        except SymbolError:
            return None

    def pairs(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)
