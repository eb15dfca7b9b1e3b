"""Single-producer single-consumer ring of variable-length messages in shared memory.

Layout (all offsets 64-byte aligned, all integers native little-endian on x86-64)::

    0    header line: magic u64, version u64, slots u64, slot_size u64
    64   head u64   (producer cursor, alone on its cache line)
    128  tail u64   (consumer cursor, alone on its cache line)
    192  slots[slots] of slot_size bytes: u32 length + payload (max_payload = slot_size - 4)

Cursors are monotonically increasing message counts; the slot of cursor ``c`` is ``c & (slots - 1)``.
They are read and written only through an aligned ``memoryview.cast('Q')`` element, which is one
8-byte ``mov`` and cannot tear (``struct.pack_into`` zeroes first and tears; see measurements).

Ordering (x86-64 TSO; CPython never reorders across bytecodes):
producer writes length + payload, then stores head; consumer loads head, then reads the slot, and
stores tail only in :meth:`Ring.advance`. The producer writes a slot only when ``head - tail < slots``,
so a slot the consumer is still reading is never overwritten.

Crash semantics: a message is consumed only by :meth:`Ring.advance`. A consumer killed between
:meth:`Ring.peek` and :meth:`Ring.advance` sees the same message again when restarted (at-least-once for
exactly that one message; every other message exactly once). A restarted producer resumes at head; a
producer killed mid-push loses only the message it had not yet published (no consumer ever saw it).
A full ring pushes back (``try_push`` False / ``push`` waits); nothing is ever dropped or overwritten.
"""

from __future__ import annotations

import os
import time
from types import TracebackType

from titan.shm.segment import Segment

MAGIC = 0x474E4952_4E415449  # "ITANRING" little-endian
VERSION = 1
CACHE_LINE = 64
HEADER_SIZE = 3 * CACHE_LINE  # header, head, tail
LENGTH_SIZE = 4
MAX_SLOTS = 1 << 24

# indices into the u64 view of the segment
_MAGIC_I = 0
_VERSION_I = 1
_SLOTS_I = 2
_SLOT_SIZE_I = 3
_HEAD_I = CACHE_LINE // 8
_TAIL_I = 2 * CACHE_LINE // 8


class MessageTooLarge(ValueError):
    """A payload longer than the ring's ``max_payload``."""


class RingFull(TimeoutError):
    """``push()`` timed out while the ring stayed full (the consumer is not keeping up)."""


class RingLayoutError(ValueError):
    """Invalid ring geometry, or a segment that is not a ring of this version."""


def _validate_geometry(slots: int, slot_size: int) -> None:
    if slots < 2 or slots & (slots - 1):
        raise RingLayoutError(f"ring slots must be a power of two >= 2, got {slots}")
    if slots > MAX_SLOTS:
        raise RingLayoutError(f"ring slots must be <= {MAX_SLOTS}, got {slots}")
    if slot_size < 16 or slot_size % 8:
        raise RingLayoutError(f"ring slot_size must be a multiple of 8 and >= 16, got {slot_size}")
    if slot_size - LENGTH_SIZE > 0xFFFFFFFF:
        raise RingLayoutError(f"ring slot_size too large: {slot_size}")


def _as_bytes_view(payload: bytes | bytearray | memoryview) -> memoryview:
    view = payload if isinstance(payload, memoryview) else memoryview(payload)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class Ring:
    """SPSC ring; see the module docstring for layout, ordering and crash semantics.

    One process pushes, one process consumes. Both may attach by name at any time; each resumes from
    the cursors in shared memory. ``peek()`` returns a view into the ring that stays valid only until
    ``advance()``.
    """

    __slots__ = (
        "_base",
        "_buf",
        "_cur",
        "_head_cache",
        "_len32",
        "_mask",
        "_segment",
        "_slot_size",
        "_slots",
        "_tail_cache",
        "capacity",
        "max_payload",
        "name",
    )

    name: str
    capacity: int
    max_payload: int

    def __init__(self, segment: Segment, slots: int, slot_size: int) -> None:
        self._segment = segment
        self.name = segment.name
        self.capacity = slots
        self.max_payload = slot_size - LENGTH_SIZE
        self._slots = slots
        self._slot_size = slot_size
        self._mask = slots - 1
        self._base = HEADER_SIZE
        self._buf = segment.buf
        self._cur = segment.buf.cast("Q")
        self._len32 = segment.buf.cast("I")
        # Local copies of the *other* side's cursor: stale values are only ever conservative.
        self._tail_cache = self._cur[_TAIL_I]
        self._head_cache = self._cur[_HEAD_I]

    @staticmethod
    def segment_size(slots: int, slot_size: int) -> int:
        _validate_geometry(slots, slot_size)
        return HEADER_SIZE + slots * slot_size

    @classmethod
    def create(cls, name: str, slots: int, slot_size: int) -> Ring:
        size = cls.segment_size(slots, slot_size)
        segment = Segment.create(name, size)
        cur = segment.buf.cast("Q")
        cur[_VERSION_I] = VERSION
        cur[_SLOTS_I] = slots
        cur[_SLOT_SIZE_I] = slot_size
        cur[_MAGIC_I] = MAGIC  # last: an attacher seeing the magic sees a complete header
        cur.release()
        return cls(segment, slots, slot_size)

    @classmethod
    def attach(cls, name: str) -> Ring:
        segment = Segment.attach(name)
        try:
            if segment.size < HEADER_SIZE:
                raise RingLayoutError(f"segment {name!r} is too small to be a ring ({segment.size} bytes)")
            cur = segment.buf.cast("Q")
            magic, version, slots, slot_size = (
                cur[_MAGIC_I],
                cur[_VERSION_I],
                cur[_SLOTS_I],
                cur[_SLOT_SIZE_I],
            )
            cur.release()
            if magic != MAGIC:
                raise RingLayoutError(f"segment {name!r} is not a ring (magic {magic:#x})")
            if version != VERSION:
                raise RingLayoutError(f"ring {name!r} has layout version {version}, expected {VERSION}")
            expected = cls.segment_size(slots, slot_size)
            if segment.size < expected:
                raise RingLayoutError(
                    f"ring {name!r} segment is {segment.size} bytes, geometry needs {expected}"
                )
        except BaseException:
            segment.close()
            raise
        return cls(segment, slots, slot_size)

    # ------------------------------------------------------------------ producer

    def try_push(self, payload: bytes | bytearray | memoryview) -> bool:
        """Append one message; False (and nothing written) when the ring is full."""
        n = len(payload)
        if type(payload) is memoryview and (payload.format != "B" or payload.ndim != 1):
            payload = _as_bytes_view(payload)
            n = len(payload)
        if n > self.max_payload:
            raise MessageTooLarge(
                f"ring {self.name!r}: payload of {n} bytes exceeds max_payload {self.max_payload}"
            )
        cur = self._cur
        head = cur[_HEAD_I]
        if head - self._tail_cache >= self._slots:
            self._tail_cache = cur[_TAIL_I]
            if head - self._tail_cache >= self._slots:
                return False
        off = self._base + (head & self._mask) * self._slot_size
        self._len32[off >> 2] = n
        self._buf[off + LENGTH_SIZE : off + LENGTH_SIZE + n] = payload
        cur[_HEAD_I] = head + 1  # publish: after the slot (TSO keeps store order)
        return True

    def push(self, payload: bytes | bytearray | memoryview, timeout: float | None = None) -> None:
        """Append one message, waiting while the ring is full; ``RingFull`` after ``timeout`` seconds.

        The wait backs off from yielding to sleeps of up to 1 ms: a full ring means the consumer is
        behind, and on two shared cores spinning would only slow it down further.
        """
        if self.try_push(payload):
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 20e-6
        attempts = 0
        while True:
            attempts += 1
            if attempts <= 4:
                os.sched_yield()
            else:
                time.sleep(pause)
                pause = min(pause * 2, 1e-3)
            if self.try_push(payload):
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise RingFull(
                    f"ring {self.name!r} stayed full for {timeout} s "
                    f"(capacity {self.capacity}, depth {self.depth()})"
                )

    # ------------------------------------------------------------------ consumer

    def peek(self) -> memoryview | None:
        """The next unconsumed message, or None; the view is valid until :meth:`advance`."""
        cur = self._cur
        tail = cur[_TAIL_I]
        if tail >= self._head_cache:
            self._head_cache = cur[_HEAD_I]
            if tail >= self._head_cache:
                return None
        off = self._base + (tail & self._mask) * self._slot_size
        n = self._len32[off >> 2]
        return self._buf[off + LENGTH_SIZE : off + LENGTH_SIZE + n]

    def peek_at(self, k: int) -> memoryview | None:
        """The ``k``-th unconsumed message (0 is :meth:`peek`'s), or None if fewer are waiting.

        For a consumer that reads a batch before consuming it: ``peek_at(0)``, ``peek_at(1)``, …,
        then one ``advance(n)``. Every view stays valid until the ``advance`` that consumes it.
        """
        cur = self._cur
        at = cur[_TAIL_I] + k
        if at >= self._head_cache:
            self._head_cache = cur[_HEAD_I]
            if at >= self._head_cache:
                return None
        off = self._base + (at & self._mask) * self._slot_size
        n = self._len32[off >> 2]
        return self._buf[off + LENGTH_SIZE : off + LENGTH_SIZE + n]

    def advance(self, n: int = 1) -> None:
        """Consume the ``n`` oldest messages (as :meth:`peek` / :meth:`peek_at` returned them)."""
        cur = self._cur
        tail = cur[_TAIL_I] + n
        if tail > self._head_cache or n < 1:
            self._head_cache = cur[_HEAD_I]
            if tail > self._head_cache or n < 1:
                raise RuntimeError(f"ring {self.name!r}: advance({n}) with no message to consume")
        cur[_TAIL_I] = tail

    def try_pop(self) -> bytes | None:
        """Copy out and consume the next message, or None when empty."""
        cur = self._cur
        tail = cur[_TAIL_I]
        if tail >= self._head_cache:
            self._head_cache = cur[_HEAD_I]
            if tail >= self._head_cache:
                return None
        off = self._base + (tail & self._mask) * self._slot_size
        n = self._len32[off >> 2]
        data = bytes(self._buf[off + LENGTH_SIZE : off + LENGTH_SIZE + n])
        cur[_TAIL_I] = tail + 1
        return data

    def has_data(self) -> bool:
        """Whether a message is waiting (cheap: two loads; used by wait loops)."""
        cur = self._cur
        return cur[_HEAD_I] != cur[_TAIL_I]

    # ------------------------------------------------------------------ either side

    def depth(self) -> int:
        """Messages published and not yet consumed (head - tail)."""
        cur = self._cur
        tail = cur[_TAIL_I]
        return int(cur[_HEAD_I] - tail)

    @property
    def head(self) -> int:
        return int(self._cur[_HEAD_I])

    @property
    def tail(self) -> int:
        return int(self._cur[_TAIL_I])

    def close(self) -> None:
        """Unmap (idempotent). Views returned by :meth:`peek` must not be used afterwards."""
        if self._segment.closed:
            return
        self._cur.release()
        self._len32.release()
        self._segment.close()

    def unlink(self) -> None:
        """Remove the segment name (supervisor only)."""
        self._segment.unlink()

    def __enter__(self) -> Ring:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ring(name={self.name!r}, capacity={self.capacity}, max_payload={self.max_payload})"
