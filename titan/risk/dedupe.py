"""Bounded idempotency windows: seen ids (FIFO-evicted at a capacity) and causation ids with a TTL.

Memory must stay flat in a long run, so neither set grows without bound; the journal keeps the full
history. Capacities are configuration: size them to cover every realistic redelivery.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)


EXACT_KEPT: Final = 20_000  # newest ids kept as they are; older ones as digests (flat memory)
_EMPTY: Final = 0  # a hash is never 0 (see _hash64)


def _hash64(key: Hashable) -> int:
    """A 64-bit digest of an id, never 0: Python's own hash (cached on str objects, so nearly free).

    It is seeded per process, which is fine here: the digests live in memory only and are rebuilt
    from the journal at every start. A false "seen" needs a 64-bit collision among the remembered ids.
    """
    return (hash(key) & 0x7FFF_FFFF_FFFF_FFFF) or 1


class HashedIds:
    """A FIFO set of 64-bit id digests in fixed, preallocated arrays: flat memory at any fill.

    Open addressing with linear probing in a table twice the capacity; the oldest digest is
    removed (backward-shift deletion, no tombstones) when a new one would exceed the capacity.
    Memory is 24 bytes per remembered id, all of it touched at construction.
    """

    def __init__(self, capacity: int) -> None:
        size = 1
        while size < 2 * capacity:
            size <<= 1
        self.capacity = capacity
        self._mask = size - 1
        # array('q') from a bytes object: allocated and written (every page touched) now, so resident
        # memory does not grow later; its items index as plain ints (numpy scalars are ~5x slower).
        self._table = array("q", bytes(8 * size))
        self._order = array("q", bytes(8 * capacity))  # ring of digests, oldest at _head
        self._head = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _slot(self, digest: int) -> int:
        """The slot holding ``digest``, or the empty slot where it would go."""
        table, mask = self._table, self._mask
        i = digest & mask
        while True:
            held = table[i]
            if held == digest or not held:  # found, or an empty slot (_EMPTY is 0)
                return i
            i = (i + 1) & mask

    def contains(self, digest: int) -> bool:
        return self._table[self._slot(digest)] == digest

    def add(self, digest: int) -> bool:
        i = self._slot(digest)
        if self._table[i] == digest:
            return False
        if self._count == self.capacity:
            self._remove(self._order[self._head])
            self._count -= 1
            i = self._slot(digest)
        self._table[i] = digest
        self._order[(self._head + self._count) % self.capacity] = digest
        self._count += 1
        return True

    def _remove(self, digest: int) -> None:
        """Delete the oldest digest (at ``_head``) from the table, shifting its probe chain back."""
        self._head = (self._head + 1) % self.capacity
        table, mask = self._table, self._mask
        i = self._slot(digest)
        if table[i] != digest:
            return
        j = i
        while True:
            j = (j + 1) & mask
            held = table[j]
            if held == _EMPTY:
                break
            home = held & mask
            # ``held`` may move into the hole at i unless its home lies cyclically in (i, j].
            if (j > i and (home <= i or home > j)) or (j < i and home <= i and home > j):
                table[i] = held
                i = j
        table[i] = _EMPTY


class SeenIds(Generic[K]):
    """An insertion-ordered set that forgets its oldest members beyond ``capacity``.

    The newest ``exact`` members are kept as they are; older ones as 64-bit digests in a
    preallocated :class:`HashedIds` (a false "seen" needs a 63-bit collision: ~1e-13 at a million
    ids), so a long run's resident memory stops growing once ``exact`` is reached.
    """

    def __init__(self, capacity: int = 1_000_000, exact: int = EXACT_KEPT) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.exact = min(exact, capacity)
        self._ids: dict[K, None] = {}
        # Insertion order for eviction: ``next(iter(dict))`` after many front deletions scans every
        # deleted slot (~30 µs at 100 000 entries), a deque pops the oldest in O(1).
        self._order: deque[K] = deque()
        self._older: HashedIds | None = None  # allocated when first needed, or by reserve()
        self._last_key: Hashable = None
        self._last_digest = 0

    def reserve(self) -> None:
        """Allocate (and touch) the digest tier now, so resident memory is flat from here on."""
        if self._older is None and self.capacity > self.exact:
            self._older = HashedIds(self.capacity - self.exact)

    def _digest(self, key: Hashable) -> int:
        """``_hash64(key)``, memoised for the last key (checked several times per intent)."""
        if key == self._last_key:
            return self._last_digest
        digest = _hash64(key)
        self._last_key, self._last_digest = key, digest
        return digest

    def add(self, key: K) -> bool:
        """Remember ``key``; False if it was already remembered."""
        ids = self._ids
        if key in ids:
            return False
        older = self._older
        if older is not None and len(older) and older.contains(self._digest(key)):
            return False
        ids[key] = None
        self._order.append(key)
        if len(ids) > self.exact:
            oldest = self._order.popleft()
            del ids[oldest]
            if older is None and self.capacity > self.exact:
                self.reserve()
                older = self._older
            if older is not None:
                older.add(_hash64(oldest))
        return True

    def __contains__(self, key: object) -> bool:
        if key in self._ids:
            return True
        older = self._older
        return (
            older is not None
            and len(older) > 0
            and isinstance(key, (str, tuple))
            and older.contains(self._digest(key))
        )

    def __len__(self) -> int:
        return len(self._ids) + (len(self._older) if self._older is not None else 0)

    def snapshot(self) -> list[K]:
        """The members kept as they are (the newest ``exact``)."""
        return list(self._ids)


class CausationWindow:
    """``causation_id`` idempotency keys, each valid for ``ttl_ms`` after it was first seen (check 1)."""

    def __init__(self, ttl_ms: int = 5_000) -> None:
        self.ttl_ms = ttl_ms
        self._first_seen: dict[str, int] = {}
        self._order: deque[tuple[str, int]] = deque()  # (id, first seen) in time order; may hold stale pairs

    def is_duplicate(self, causation_id: str | None, now_ms: int) -> bool:
        if not causation_id:
            return False
        seen = self._first_seen.get(causation_id)
        return seen is not None and now_ms - seen <= self.ttl_ms

    def record(self, causation_id: str | None, now_ms: int) -> None:
        if not causation_id:
            return
        self.prune(now_ms)
        if not self.is_duplicate(causation_id, now_ms):
            self._first_seen[causation_id] = now_ms
            self._order.append((causation_id, now_ms))

    def prune(self, now_ms: int) -> None:
        """Drop expired keys from the oldest end (the deque is in time order)."""
        order, first_seen = self._order, self._first_seen
        while order and now_ms - order[0][1] > self.ttl_ms:
            key, seen = order.popleft()
            if first_seen.get(key) == seen:  # not re-recorded since
                del first_seen[key]

    def __len__(self) -> int:
        return len(self._first_seen)
