"""Status board: one row per process in shared memory, for heartbeats, state and counters.

Each field has one writer: a process writes its own heartbeat, state and counters; the supervisor
writes pid and restarts (and the state while a child is not running). Every field is one aligned
8-byte word, so no lock is needed: a reader sees each field old or new, never torn.

Layout: 64-byte header (magic, version, procs, counters, row_size), then ``procs`` 64-byte name
slots (UTF-8, NUL padded), then one row per process: pid, state, heartbeat_mono_ns, restarts on the
first cache line, the u64 counters from the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from types import TracebackType

import msgspec

from titan.shm.segment import Segment

MAGIC = 0x4452_414F_4253_5449  # "ITSBOARD" little-endian
VERSION = 1
HEADER_SIZE = 64
NAME_SLOT = 64
_PID, _STATE, _HEARTBEAT, _RESTARTS = 0, 1, 2, 3
_COUNTERS = 8  # first counter word in a row


class ProcState(IntEnum):
    STOPPED = 0
    STARTING = 1
    READY = 2
    DRAINING = 3
    FAILED = 4


class ProcStatus(msgspec.Struct, frozen=True):
    name: str
    pid: int
    state: ProcState
    heartbeat_mono_ns: int
    restarts: int
    counters: tuple[int, ...]


def _row_size(counters: int) -> int:
    words = _COUNTERS + counters
    return -(-words * 8 // 64) * 64


class StatusBoard:
    """Shared status rows, one per named process; created by the supervisor."""

    __slots__ = ("_counters", "_names", "_q", "_rows", "_segment", "name")

    name: str

    def __init__(self, segment: Segment, names: list[str], counters: int, row_size: int) -> None:
        self._segment = segment
        self.name = segment.name
        self._names = names
        self._counters = counters
        self._q = segment.buf.cast("q")
        rows_offset = HEADER_SIZE + len(names) * NAME_SLOT
        self._rows = {n: (rows_offset + k * row_size) >> 3 for k, n in enumerate(names)}

    @staticmethod
    def segment_size(procs: int, counters: int) -> int:
        return HEADER_SIZE + procs * NAME_SLOT + procs * _row_size(counters)

    @classmethod
    def create(cls, name: str, names: Sequence[str], counters: int = 16) -> StatusBoard:
        names = list(names)
        if not names:
            raise ValueError("a status board needs at least one process name")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate process names in {names}")
        if counters < 0:
            raise ValueError(f"counters must be >= 0, got {counters}")
        encoded = [n.encode() for n in names]
        for raw in encoded:
            if not raw or len(raw) >= NAME_SLOT:
                raise ValueError(f"process name {raw!r} must be 1..{NAME_SLOT - 1} UTF-8 bytes")
        row_size = _row_size(counters)
        segment = Segment.create(name, cls.segment_size(len(names), counters))
        for k, raw in enumerate(encoded):
            offset = HEADER_SIZE + k * NAME_SLOT
            segment.buf[offset : offset + len(raw)] = raw
        q = segment.buf.cast("q")
        q[1], q[2], q[3], q[4] = VERSION, len(names), counters, row_size
        q[0] = MAGIC
        q.release()
        return cls(segment, names, counters, row_size)

    @classmethod
    def attach(cls, name: str) -> StatusBoard:
        segment = Segment.attach(name)
        try:
            q = segment.buf.cast("q")
            magic, version, procs, counters, row_size = q[0:5].tolist()
            q.release()
            if magic != MAGIC:
                raise ValueError(f"segment {name!r} is not a status board (magic {magic:#x})")
            if version != VERSION:
                raise ValueError(f"status board {name!r} has version {version}, expected {VERSION}")
            names = [
                bytes(segment.buf[HEADER_SIZE + k * NAME_SLOT : HEADER_SIZE + (k + 1) * NAME_SLOT])
                .rstrip(b"\0")
                .decode()
                for k in range(procs)
            ]
        except BaseException:
            segment.close()
            raise
        return cls(segment, names, counters, row_size)

    def names(self) -> list[str]:
        return list(self._names)

    def _row(self, proc: str) -> int:
        try:
            return self._rows[proc]
        except KeyError:
            raise KeyError(f"process {proc!r} is not on status board {self.name!r} ({self._names})") from None

    def beat(self, proc: str, now_mono_ns: int) -> None:
        self._q[self._row(proc) + _HEARTBEAT] = now_mono_ns

    def set_state(self, proc: str, state: ProcState) -> None:
        self._q[self._row(proc) + _STATE] = int(state)

    def set_pid(self, proc: str, pid: int) -> None:
        self._q[self._row(proc) + _PID] = pid

    def add_restart(self, proc: str) -> None:
        i = self._row(proc) + _RESTARTS
        self._q[i] = self._q[i] + 1

    def incr(self, proc: str, counter: int, n: int = 1) -> None:
        """Add to one of the process's own counters (only that process writes them)."""
        if not 0 <= counter < self._counters:
            raise IndexError(f"counter {counter} out of range 0..{self._counters - 1}")
        i = self._row(proc) + _COUNTERS + counter
        self._q[i] = self._q[i] + n

    def read(self, proc: str) -> ProcStatus:
        i = self._row(proc)
        q = self._q
        return ProcStatus(
            name=proc,
            pid=int(q[i + _PID]),
            state=ProcState(q[i + _STATE]),
            heartbeat_mono_ns=int(q[i + _HEARTBEAT]),
            restarts=int(q[i + _RESTARTS]),
            counters=tuple(q[i + _COUNTERS : i + _COUNTERS + self._counters].tolist()),
        )

    def close(self) -> None:
        if self._segment.closed:
            return
        self._q.release()
        self._segment.close()

    def unlink(self) -> None:
        self._segment.unlink()

    def __enter__(self) -> StatusBoard:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
