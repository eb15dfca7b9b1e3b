"""Sans-I/O resolver for orders whose outcome is UNKNOWN (venues.md §1, risk-and-state.md §13, R1/R9).

The gateway queries the venue by client order id until it says what happened. "Not found" is
terminal only after ``probes_required`` not-found answers spanning at least ``min_span_ms``,
because a venue may not yet know an order it is still processing. Failed probes (timeouts, 5xx,
rate limits) count for nothing.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from titan.venues.common.types import VenueOrderState

DEFAULT_NOT_FOUND_PROBES = 3
DEFAULT_MIN_SPAN_MS = 5_000
DEFAULT_PROBE_INTERVAL_MS = 2_500


class ResolutionStatus(StrEnum):
    PENDING = "PENDING"  # keep probing at ``next_probe_at_ms``
    FOUND = "FOUND"  # the venue knows the order: ``state`` says where it is
    GONE = "GONE"  # the venue confirmed the order never existed: leg → REJECTED


class Resolution(msgspec.Struct, frozen=True):
    client_order_id: str
    status: ResolutionStatus
    state: VenueOrderState | None = None
    not_found_count: int = 0
    next_probe_at_ms: int | None = None


class _Pending(msgspec.Struct):
    started_at_ms: int
    next_probe_at_ms: int
    not_found_at_ms: list[int] = msgspec.field(default_factory=list)


class UnknownOrderResolver:
    """Schedules probes for unknown orders and decides when an answer is final."""

    def __init__(
        self,
        probes_required: int = DEFAULT_NOT_FOUND_PROBES,
        min_span_ms: int = DEFAULT_MIN_SPAN_MS,
        probe_interval_ms: int = DEFAULT_PROBE_INTERVAL_MS,
    ) -> None:
        if probes_required < 1 or min_span_ms < 0 or probe_interval_ms <= 0:
            raise ValueError("invalid probe rule")
        self.probes_required = probes_required
        self.min_span_ms = min_span_ms
        self.probe_interval_ms = probe_interval_ms
        self._pending: dict[str, _Pending] = {}

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def start(self, client_order_id: str, now_ms: int) -> None:
        """An order became UNKNOWN: probe it at once (idempotent for an order already pending)."""
        if client_order_id not in self._pending:
            self._pending[client_order_id] = _Pending(started_at_ms=now_ms, next_probe_at_ms=now_ms)

    def due(self, now_ms: int) -> list[str]:
        """Client ids whose next probe is due, oldest first."""
        ready = [
            (p.next_probe_at_ms, coid) for coid, p in self._pending.items() if p.next_probe_at_ms <= now_ms
        ]
        return [coid for _, coid in sorted(ready)]

    def next_due_ms(self) -> int | None:
        return min((p.next_probe_at_ms for p in self._pending.values()), default=None)

    def on_found(self, client_order_id: str, state: VenueOrderState) -> Resolution:
        """A query (or a stream message) showed the order: resolved."""
        pending = self._pending.pop(client_order_id, None)
        count = len(pending.not_found_at_ms) if pending is not None else 0
        return Resolution(client_order_id, ResolutionStatus.FOUND, state=state, not_found_count=count)

    def on_not_found(self, client_order_id: str, now_ms: int) -> Resolution:
        pending = self._pending.get(client_order_id)
        if pending is None:
            raise KeyError(client_order_id)
        pending.not_found_at_ms.append(now_ms)
        count = len(pending.not_found_at_ms)
        span = pending.not_found_at_ms[-1] - pending.not_found_at_ms[0]
        if count >= self.probes_required and span >= self.min_span_ms:
            del self._pending[client_order_id]
            return Resolution(client_order_id, ResolutionStatus.GONE, not_found_count=count)
        pending.next_probe_at_ms = self._next_probe_at(pending, now_ms)
        return Resolution(
            client_order_id,
            ResolutionStatus.PENDING,
            not_found_count=count,
            next_probe_at_ms=pending.next_probe_at_ms,
        )

    def on_probe_failed(self, client_order_id: str, now_ms: int) -> Resolution:
        """The probe itself failed (timeout, 5xx, limited): it proves nothing; try again later."""
        pending = self._pending.get(client_order_id)
        if pending is None:
            raise KeyError(client_order_id)
        pending.next_probe_at_ms = now_ms + self.probe_interval_ms
        return Resolution(
            client_order_id,
            ResolutionStatus.PENDING,
            not_found_count=len(pending.not_found_at_ms),
            next_probe_at_ms=pending.next_probe_at_ms,
        )

    def _next_probe_at(self, pending: _Pending, now_ms: int) -> int:
        nxt = now_ms + self.probe_interval_ms
        if len(pending.not_found_at_ms) >= self.probes_required - 1:
            # The final probe must not come before the span is covered.
            nxt = max(nxt, pending.not_found_at_ms[0] + self.min_span_ms)
        return nxt
