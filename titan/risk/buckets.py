"""Token buckets and venue cooldowns (risk-and-state.md §9).

Bucket state is two integers so the gateway can keep it in shared memory: the level in
nano-tokens and the monotonic time of the last refill. A bucket refills ``rate`` tokens per second,
i.e. ``rate`` nano-tokens per nanosecond, so refilling is exact integer arithmetic.
``try_acquire`` never blocks: an empty bucket is a deterministic denial that names the bucket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Final

import msgspec

NANO: Final = 1_000_000_000


class RequestKind(StrEnum):
    CREATE = "create"
    AMEND = "amend"
    CANCEL = "cancel"
    QUERY = "query"


class BucketSpec(msgspec.Struct, frozen=True):
    name: str
    capacity: int  # tokens
    rate_per_s: int  # tokens refilled per second


class BucketState(msgspec.Struct, gc=False):
    """Mutable bucket state: plain integers, storable anywhere (shared memory included)."""

    level_nt: int  # nano-tokens
    last_ns: int  # monotonic ns of the last refill


def full_bucket(spec: BucketSpec, now_ns: int) -> BucketState:
    """A bucket starts full."""
    return BucketState(level_nt=spec.capacity * NANO, last_ns=now_ns)


def refill(spec: BucketSpec, state: BucketState, now_ns: int) -> None:
    """Bring ``state`` up to ``now_ns``; a clock that goes backwards refills nothing."""
    elapsed = now_ns - state.last_ns
    if elapsed > 0:
        state.level_nt = min(spec.capacity * NANO, state.level_nt + elapsed * spec.rate_per_s)
        state.last_ns = now_ns


def available(spec: BucketSpec, state: BucketState, now_ns: int) -> int:
    """Whole tokens available at ``now_ns``."""
    refill(spec, state, now_ns)
    return state.level_nt // NANO


def try_acquire(spec: BucketSpec, state: BucketState, n: int, now_ns: int) -> bool:
    """Take ``n`` tokens if present; otherwise take nothing and return False."""
    refill(spec, state, now_ns)
    need = n * NANO
    if state.level_nt < need:
        return False
    state.level_nt -= need
    return True


def resync(spec: BucketSpec, state: BucketState, remaining: int, now_ns: int) -> None:
    """Align with the venue's own count (e.g. ``X-Bapi-Limit-Status``): never raise the level."""
    refill(spec, state, now_ns)
    state.level_nt = min(state.level_nt, max(0, min(remaining, spec.capacity)) * NANO)


# Defaults per venue (§9): bucket specs, and which buckets a request of each kind draws from.
DEFAULT_BUCKETS: Final[dict[str, tuple[BucketSpec, ...]]] = {
    "bybit": (
        BucketSpec("create", 10, 10),
        BucketSpec("amend", 10, 10),
        BucketSpec("cancel", 10, 10),
        BucketSpec("query", 50, 50),
        BucketSpec("ip", 600, 120),
    ),
    "binance": (
        BucketSpec("orders_10s", 300, 30),
        BucketSpec("orders_1m", 1200, 20),
        BucketSpec("ip_weight", 2400, 40),
    ),
    "mexc": (
        BucketSpec("create", 4, 2),
        BucketSpec("cancel_query", 20, 10),
    ),
    "paper": (),
}

# (bucket name, tokens) per request kind. Binance order placement weighs 0 on REQUEST_WEIGHT.
DEFAULT_COSTS: Final[dict[str, dict[RequestKind, tuple[tuple[str, int], ...]]]] = {
    "bybit": {
        RequestKind.CREATE: (("create", 1), ("ip", 1)),
        RequestKind.AMEND: (("amend", 1), ("ip", 1)),
        RequestKind.CANCEL: (("cancel", 1), ("ip", 1)),
        RequestKind.QUERY: (("query", 1), ("ip", 1)),
    },
    "binance": {
        RequestKind.CREATE: (("orders_10s", 1), ("orders_1m", 1)),
        RequestKind.AMEND: (("orders_10s", 1), ("orders_1m", 1), ("ip_weight", 1)),
        RequestKind.CANCEL: (("ip_weight", 1),),
        RequestKind.QUERY: (("ip_weight", 1),),
    },
    "mexc": {
        RequestKind.CREATE: (("create", 1),),
        RequestKind.AMEND: (("create", 1),),
        RequestKind.CANCEL: (("cancel_query", 1),),
        RequestKind.QUERY: (("cancel_query", 1),),
    },
    "paper": {kind: () for kind in RequestKind},
}


class VenueLimiter:
    """All buckets of one venue account; a request takes from all its buckets or from none."""

    def __init__(
        self,
        venue: str,
        now_ns: int,
        specs: Sequence[BucketSpec] | None = None,
        costs: Mapping[RequestKind, Sequence[tuple[str, int]]] | None = None,
    ) -> None:
        self.venue = venue
        self.specs: dict[str, BucketSpec] = {
            s.name: s for s in (DEFAULT_BUCKETS.get(venue, ()) if specs is None else specs)
        }
        self.states: dict[str, BucketState] = {n: full_bucket(s, now_ns) for n, s in self.specs.items()}
        self.costs: dict[RequestKind, tuple[tuple[str, int], ...]] = {
            kind: tuple(cost)
            for kind, cost in (DEFAULT_COSTS.get(venue, {}) if costs is None else costs).items()
        }
        for kind, cost in self.costs.items():
            for name, _ in cost:
                if name not in self.specs:
                    raise ValueError(f"{venue}: request kind {kind} draws from unknown bucket {name!r}")

    def try_acquire(self, kind: RequestKind, now_ns: int, n: int = 1) -> str | None:
        """Take the tokens for ``n`` requests of ``kind``; None when granted, else the empty bucket's name."""
        cost = self.costs.get(kind, ())
        for name, tokens in cost:
            if available(self.specs[name], self.states[name], now_ns) < tokens * n:
                return name
        for name, tokens in cost:
            try_acquire(self.specs[name], self.states[name], tokens * n, now_ns)
        return None


class VenueCooldown:
    """Per-venue cooldown after rate-limit / ban responses (§9): memory only, with expiry.

    Without an explicit end time the cooldown is 2 s, doubling on each consecutive trigger up to
    60 s; the doubling resets once a cooldown has fully expired without a new trigger.
    """

    BASE_MS: Final = 2_000
    MAX_MS: Final = 60_000

    def __init__(self) -> None:
        self._until_ms: dict[str, int] = {}
        self._next_backoff_ms: dict[str, int] = {}

    def trigger(self, venue: str, now_ms: int, until_ms: int | None = None) -> int:
        """Start (or extend) a cooldown; returns its end time in ms."""
        current = self._until_ms.get(venue)
        if current is not None and current <= now_ms:
            self._next_backoff_ms.pop(venue, None)  # expired quietly: start over
        if until_ms is None:
            backoff = self._next_backoff_ms.get(venue, self.BASE_MS)
            until_ms = now_ms + backoff
            self._next_backoff_ms[venue] = min(backoff * 2, self.MAX_MS)
        end = max(until_ms, current or 0)
        self._until_ms[venue] = end
        return end

    def cooling_until(self, venue: str, now_ms: int) -> int | None:
        """End of the venue's cooldown if it is still cooling at ``now_ms``."""
        until = self._until_ms.get(venue)
        return until if until is not None and until > now_ms else None

    def clear(self, venue: str) -> None:
        self._until_ms.pop(venue, None)
        self._next_backoff_ms.pop(venue, None)
