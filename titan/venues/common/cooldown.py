"""Venue cooldown after a rate-limit answer (risk-and-state.md §9), sans-I/O."""

from __future__ import annotations

from titan.venues.common.outcome import Outcome, OutcomeKind

DEFAULT_FIRST_COOLDOWN_MS = 2_000
DEFAULT_MAX_COOLDOWN_MS = 60_000


class VenueCooldown:
    """Tracks when a venue may receive new submissions again.

    The venue's own time (Retry-After, "banned until", reset timestamp) wins; without one the
    default is 2 s, doubling per consecutive limit up to 60 s. A success resets the doubling.
    Cancels continue during a cooldown except under an IP ban.
    """

    def __init__(
        self, first_ms: int = DEFAULT_FIRST_COOLDOWN_MS, max_ms: int = DEFAULT_MAX_COOLDOWN_MS
    ) -> None:
        self._first_ms = first_ms
        self._max_ms = max_ms
        self._next_default_ms = first_ms
        self.until_ms = 0
        self.ip_ban = False

    def on_outcome(self, outcome: Outcome, now_ms: int) -> None:
        if outcome.kind is OutcomeKind.RATE_LIMITED:
            if outcome.until_ms is not None:
                until = outcome.until_ms
            else:
                until = now_ms + self._next_default_ms
                self._next_default_ms = min(self._next_default_ms * 2, self._max_ms)
            # Never shorten a cooldown already in force.
            if until > self.until_ms:
                self.until_ms = until
            self.ip_ban = self.ip_ban or outcome.ip_ban
        elif outcome.kind is OutcomeKind.ACK:
            self._next_default_ms = self._first_ms

    def _expire(self, now_ms: int) -> None:
        if now_ms >= self.until_ms:
            self.ip_ban = False

    def may_submit(self, now_ms: int) -> bool:
        self._expire(now_ms)
        return now_ms >= self.until_ms

    def may_cancel(self, now_ms: int) -> bool:
        self._expire(now_ms)
        return not self.ip_ban or now_ms >= self.until_ms
