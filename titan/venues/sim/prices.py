"""Price processes driving the simulator: a seeded random walk or the replay of a tape file."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import msgspec

from titan.venues.sim.config import SimInstrument


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """Top of book plus last/mark/index for one symbol, exact decimals."""

    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    last: Decimal
    mark: Decimal
    index: Decimal
    ts_ms: int


class TapeRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a tape file (JSON lines); ``t_ms`` is relative to the tape start."""

    t_ms: int
    symbol: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    last: Decimal


class RandomWalk:
    """Mid moves by -2..+2 ticks per step; spread 1 tick; touch sizes vary. Deterministic from the seed."""

    def __init__(self, instruments: list[SimInstrument], seed: int) -> None:
        self._rng = random.Random(seed)
        self._instruments = {i.symbol: i for i in instruments}
        self._bid = {i.symbol: i.start_price for i in instruments}

    def step(self, now_ms: int) -> dict[str, Quote]:
        out: dict[str, Quote] = {}
        for symbol, inst in self._instruments.items():
            bid = self._bid[symbol] + inst.tick * self._rng.randint(-2, 2)
            bid = max(bid, inst.tick)
            self._bid[symbol] = bid
            ask = bid + inst.tick
            bid_size = inst.lot * self._rng.randint(1, inst.touch_size_lots)
            ask_size = inst.lot * self._rng.randint(1, inst.touch_size_lots)
            last = bid if self._rng.random() < 0.5 else ask
            mark = bid + inst.tick * self._rng.randint(0, 1)
            out[symbol] = Quote(
                bid=bid,
                bid_size=bid_size,
                ask=ask,
                ask_size=ask_size,
                last=last,
                mark=mark,
                index=mark,
                ts_ms=now_ms,
            )
        return out


class TapeReplay:
    """Replays a JSON-lines tape in a loop; each step returns the rows whose time has come."""

    def __init__(self, path: str | Path) -> None:
        decoder = msgspec.json.Decoder(TapeRow)
        lines = [ln for ln in Path(path).read_bytes().splitlines() if ln.strip()]
        self._rows = [decoder.decode(ln) for ln in lines]
        if not self._rows:
            raise ValueError(f"tape {path} is empty")
        self._span_ms = self._rows[-1].t_ms + 1
        self._pos = 0
        self._elapsed_ms = 0
        self._lap_ms = 0

    def step(self, now_ms: int, dt_ms: int) -> dict[str, Quote]:
        self._elapsed_ms += dt_ms
        out: dict[str, Quote] = {}
        while self._lap_ms + self._rows[self._pos].t_ms <= self._elapsed_ms:
            row = self._rows[self._pos]
            out[row.symbol] = Quote(
                bid=row.bid,
                bid_size=row.bid_size,
                ask=row.ask,
                ask_size=row.ask_size,
                last=row.last,
                mark=row.last,
                index=row.last,
                ts_ms=now_ms,
            )
            self._pos += 1
            if self._pos == len(self._rows):
                self._pos = 0
                self._lap_ms += self._span_ms
        return out
