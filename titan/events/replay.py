"""Replay cache for nonces (signed envelopes) and command ids (risk-command signatures).

An entry lives as long as the message that carried it could still pass the timestamp window
(``ts + tolerance``), so memory is bounded by the window and by ``max_entries``. Each entry
remembers the JetStream message that first carried it: a *redelivery* of that same message (core
crashed before journaling, nats.md §5 ACK timing) is not a replay, a new message with the same
nonce is.
"""

from __future__ import annotations

import heapq


class ReplayCache:
    """Remembers ``key → (owner, expiry)``; ``owner`` identifies the carrying stream message."""

    def __init__(self, tolerance_ms: int, max_entries: int = 1_000_000) -> None:
        if tolerance_ms < 0 or max_entries <= 0:
            raise ValueError("tolerance_ms must be >= 0 and max_entries > 0")
        self._tolerance_ms = tolerance_ms
        self._max_entries = max_entries
        self._entries: dict[str, tuple[str, int]] = {}
        self._expiry_heap: list[tuple[int, str]] = []
        self.evicted_early = 0  # entries dropped before expiry because the cache was full

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now_ms: int) -> None:
        heap = self._expiry_heap
        while heap and (heap[0][0] < now_ms or len(self._entries) > self._max_entries):
            expiry, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == expiry:
                if expiry >= now_ms:
                    self.evicted_early += 1
                del self._entries[key]

    def seen_elsewhere(self, key: str, owner: str, now_ms: int) -> bool:
        """True when ``key`` was recorded by a different message still inside the window."""
        self._expire(now_ms)
        entry = self._entries.get(key)
        return entry is not None and entry[0] != owner

    def record(self, key: str, owner: str, ts_ms: int, now_ms: int) -> None:
        """Remember ``key`` until the carrying message (timestamp ``ts_ms``) leaves the window."""
        expiry = ts_ms + self._tolerance_ms
        previous = self._entries.get(key)
        if previous is not None and previous[1] >= expiry:
            return
        self._entries[key] = (owner, expiry)
        heapq.heappush(self._expiry_heap, (expiry, key))
        self._expire(now_ms)

    def check_and_record(self, key: str, owner: str, ts_ms: int, now_ms: int) -> bool:
        """Record ``key``; False when it is a replay (already carried by another message)."""
        if self.seen_elsewhere(key, owner, now_ms):
            return False
        self.record(key, owner, ts_ms, now_ms)
        return True
