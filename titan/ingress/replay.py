"""Replay protection after the HMAC check (fastpath.md §13.1).

Three layers: the signed timestamp must be within ``window_ms`` of now; it must not predate this
ingress's start (a lost in-memory cache must not reopen old frames); and the signature must not have
been seen while it is still in the window. The cache never evicts a live entry: full means fail closed.
"""

from __future__ import annotations

import heapq
from typing import Final

from titan.ingress import codes

RESTART_FLOOR_SLACK_MS: Final = 50.0


class ReplayGuard:
    """Sans-I/O replay window and seen-signature cache; the caller supplies wall-clock ms."""

    def __init__(
        self, *, window_ms: float, capacity: int, start_ms: float, margin_ms: float = 1000.0
    ) -> None:
        if capacity < 1:
            raise ValueError("replay cache capacity must be ≥ 1")
        self.window_ms = window_ms
        self.capacity = capacity
        self.start_ms = start_ms
        # Entries outlive the window by a margin so a small backward clock step cannot reopen them.
        self.margin_ms = margin_ms
        self._seen: dict[bytes, float] = {}
        self._expiry_heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def _purge(self, now_ms: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] < now_ms:
            _, key = heapq.heappop(heap)
            del self._seen[key]

    def check(
        self, signature: bytes, timestamp_ms: float, now_ms: float, *, cacheable: bool = True
    ) -> str | None:
        """None when the signal may proceed (and is now remembered), else the rejection code."""
        if (
            abs(now_ms - timestamp_ms) > self.window_ms
            or timestamp_ms < self.start_ms - RESTART_FLOOR_SLACK_MS
        ):
            return codes.TIMESTAMP_OUT_OF_WINDOW
        if not cacheable:
            return None
        self._purge(now_ms)
        if signature in self._seen:
            return codes.REPLAY_DETECTED
        if len(self._seen) >= self.capacity:
            return codes.REPLAY_CACHE_FULL
        expiry = timestamp_ms + self.window_ms + self.margin_ms
        self._seen[signature] = expiry
        heapq.heappush(self._expiry_heap, (expiry, signature))
        return None
