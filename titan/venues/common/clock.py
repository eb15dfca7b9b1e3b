"""Server-time offset (venues.md §1): offset = server time − midpoint of the local request."""

from __future__ import annotations

import msgspec

REFRESH_INTERVAL_MS = 30_000


def server_time_offset_ms(server_ms: int, local_send_ms: int, local_recv_ms: int) -> int:
    """Offset to add to the local clock to get the venue's clock."""
    return server_ms - (local_send_ms + local_recv_ms) // 2


class OffsetSample(msgspec.Struct, frozen=True):
    offset_ms: int
    rtt_ms: int
    measured_at_local_ms: int


class ServerClock:
    """Keeps the measured offset; signed timestamps come from :meth:`now_ms`, never the raw local clock."""

    def __init__(self, refresh_interval_ms: int = REFRESH_INTERVAL_MS) -> None:
        self._refresh_interval_ms = refresh_interval_ms
        self.sample: OffsetSample | None = None
        self._stale = True

    @property
    def offset_ms(self) -> int:
        return self.sample.offset_ms if self.sample is not None else 0

    def record(self, server_ms: int, local_send_ms: int, local_recv_ms: int) -> OffsetSample:
        if local_recv_ms < local_send_ms:
            raise ValueError("receive time before send time")
        self.sample = OffsetSample(
            offset_ms=server_time_offset_ms(server_ms, local_send_ms, local_recv_ms),
            rtt_ms=local_recv_ms - local_send_ms,
            measured_at_local_ms=local_recv_ms,
        )
        self._stale = False
        return self.sample

    def mark_stale(self) -> None:
        """After an invalid-timestamp answer: resync before the next signed request."""
        self._stale = True

    def needs_refresh(self, local_ms: int) -> bool:
        if self._stale or self.sample is None:
            return True
        return local_ms - self.sample.measured_at_local_ms >= self._refresh_interval_ms

    def now_ms(self, local_ms: int) -> int:
        """Venue-clock timestamp for signing, from the local clock reading."""
        return local_ms + self.offset_ms
