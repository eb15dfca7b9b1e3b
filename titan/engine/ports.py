"""What the sans-I/O engine talks to: a clock, the ticker table, the journal, the outbox, the flag files.

The `core` process implements these over shared memory and files; tests pass fakes. Nothing here
does I/O by itself.
"""

from __future__ import annotations

from typing import Protocol

from titan.events.payloads import EVENT
from titan.messages import CancelRequest, IntakeDone, OrderRequest, ReconcileRequest, Reply
from titan.risk.checks import TickerView
from titan.risk.state import HaltState
from titan.state.records import Record


class Quote(TickerView, frozen=True, gc=False):
    """A ticker-table row as the checks see it, plus the venue's exchange time (shadow fills)."""

    exchange_ts_ms: int = 0


class Clock(Protocol):
    def mono_ns(self) -> int:
        """Monotonic nanoseconds (stage stamps, ticker ages, timers)."""
        ...

    def wall_ms(self) -> int:
        """Epoch milliseconds (freshness, daily PnL, event timestamps)."""
        ...


class Quotes(Protocol):
    def get(self, venue: str, symbol: str) -> Quote | None:
        """The row of ``venue`` (a ticker-table venue) for canonical ``symbol``; None when absent."""
        ...


class Journal(Protocol):
    def append(self, record: Record, t_ms: int, now_mono_ns: int) -> int:
        """Append one record; returns its sequence number.

        It must reach the OS before anything it caused leaves core: write it through here, or keep
        it and write before the next output and before the input message is consumed (the `core`
        process batches one message's records into one write: ``titan.state.journal.BufferedJournal``).
        """
        ...


class Outbox(Protocol):
    def reply(self, reply: Reply) -> None: ...
    def order(self, venue: str, msg: OrderRequest | CancelRequest | ReconcileRequest) -> None: ...
    def event(self, event: EVENT | IntakeDone) -> None: ...


class FlagFiles(Protocol):
    def save(self, armed: bool, armed_reason: str, halt: HaltState) -> None:
        """Persist ``execution.armed`` (present iff armed) and ``system.halt`` (absent when OPEN)."""
        ...


class SystemClock:
    """The real clock (the `core` process)."""

    def __init__(self) -> None:
        import time

        self._mono = time.monotonic_ns
        self._wall = time.time_ns

    def mono_ns(self) -> int:
        return self._mono()

    def wall_ms(self) -> int:
        return self._wall() // 1_000_000
