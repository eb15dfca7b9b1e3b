"""Bounded idempotency windows: seen ids (FIFO-evicted at a capacity) and causation ids with a TTL.

Memory must stay flat in a long run, so neither set grows without bound; the journal keeps the full
history. Capacities are configuration: size them to cover every realistic redelivery.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class SeenIds(Generic[K]):
    """An insertion-ordered set that forgets its oldest members beyond ``capacity``."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._ids: dict[K, None] = {}

    def add(self, key: K) -> bool:
        """Remember ``key``; False if it was already remembered."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def snapshot(self) -> list[K]:
        return list(self._ids)


class CausationWindow:
    """``causation_id`` idempotency keys, each valid for ``ttl_ms`` after it was first seen (check 1)."""

    def __init__(self, ttl_ms: int = 5_000) -> None:
        self.ttl_ms = ttl_ms
        self._first_seen: dict[str, int] = {}

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
            self._first_seen.pop(causation_id, None)  # re-insert so the dict stays in time order
            self._first_seen[causation_id] = now_ms

    def prune(self, now_ms: int) -> None:
        """Drop expired keys from the oldest end (insertion order is time order)."""
        while self._first_seen:
            key, seen = next(iter(self._first_seen.items()))
            if now_ms - seen <= self.ttl_ms:
                break
            del self._first_seen[key]

    def __len__(self) -> int:
        return len(self._first_seen)
