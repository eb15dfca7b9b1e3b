"""Account-wide token buckets of one venue kept in shared memory (risk-and-state.md §9, R11, R13).

The bucket arithmetic is :mod:`titan.risk.buckets`; this module only stores each bucket's two
integers (level in nano-tokens, monotonic time of the last refill) in a small named segment, so
a restarted gateway resumes the budget its predecessor left instead of starting full. Only the
venue's gateway writes the segment (one process per venue account), so no lock is needed.

Who creates the segment: ideally the supervisor, next to the rings (name :func:`bucket_segment_name`,
size :func:`segment_size`). Until it does, :meth:`SharedLimiter.open` creates it when missing and
the gateway unlinks it whenever it stops cleanly (SIGTERM); a crashed gateway leaves it for its
restarted successor, which is the point. The supervisor, if it creates the segment, should also
unlink it quietly at shutdown (the gateway's unlink on SIGTERM makes that a no-op).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from titan.risk.buckets import BucketSpec, BucketState, RequestKind, VenueLimiter, full_bucket, resync
from titan.shm.segment import Segment, unlink_quietly

MAGIC = 0x544B_4231  # "TKB1"
_HEADER = struct.Struct("<II")  # magic, bucket count
_SLOT = struct.Struct("<qq")  # level_nt, last_ns
MAX_BUCKETS = 16


def bucket_segment_name(prefix: str, venue: str) -> str:
    """Shared-memory name of a venue's buckets, under the engine run's prefix."""
    return f"{prefix}-bk-{venue}".replace(".", "_")


def segment_size() -> int:
    return _HEADER.size + MAX_BUCKETS * _SLOT.size


class SharedLimiter:
    """A :class:`VenueLimiter` whose states live in ``segment`` (loaded before, stored after each use)."""

    def __init__(self, limiter: VenueLimiter, segment: Segment, created: bool) -> None:
        self.limiter = limiter
        self.segment = segment
        self.created = created  # this process created the segment (and unlinks it on a clean stop)
        self.names: list[str] = list(limiter.specs)
        if len(self.names) > MAX_BUCKETS:
            raise ValueError(f"{limiter.venue}: more than {MAX_BUCKETS} buckets")
        magic, count = _HEADER.unpack_from(segment.buf, 0)
        if magic != MAGIC or count != len(self.names):
            self._store()  # fresh (or foreign layout): start from the limiter's full buckets
            _HEADER.pack_into(segment.buf, 0, MAGIC, len(self.names))
        else:
            self._load()

    @classmethod
    def open(
        cls,
        name: str,
        venue: str,
        now_ns: int,
        specs: Sequence[BucketSpec] | None = None,
        costs: Mapping[RequestKind, Sequence[tuple[str, int]]] | None = None,
    ) -> SharedLimiter:
        """Attach to the venue's bucket segment, creating it if missing (defaults: risk-and-state.md §9)."""
        limiter = VenueLimiter(venue, now_ns, specs, costs)
        try:
            return cls(limiter, Segment.attach(name), created=False)
        except FileNotFoundError:
            return cls(limiter, Segment.create(name, segment_size()), created=True)

    def _load(self) -> None:
        for i, name in enumerate(self.names):
            level, last = _SLOT.unpack_from(self.segment.buf, _HEADER.size + i * _SLOT.size)
            self.limiter.states[name] = BucketState(level_nt=level, last_ns=last)

    def _store(self) -> None:
        for i, name in enumerate(self.names):
            st = self.limiter.states[name]
            _SLOT.pack_into(self.segment.buf, _HEADER.size + i * _SLOT.size, st.level_nt, st.last_ns)

    def try_acquire(self, kind: RequestKind, now_ns: int, n: int = 1) -> str | None:
        """None when granted; else the name of the empty bucket (the leg is denied RATE_LIMITED)."""
        self._load()
        empty = self.limiter.try_acquire(kind, now_ns, n)
        self._store()
        return empty

    def resync(self, bucket: str, remaining: int, now_ns: int) -> None:
        """Lower a bucket to what the venue says is left (``X-Bapi-Limit-Status``)."""
        spec = self.limiter.specs.get(bucket)
        if spec is None:
            return
        self._load()
        resync(spec, self.limiter.states[bucket], remaining, now_ns)
        self._store()

    def set_state(self, bucket: str, level_nt: int, last_ns: int) -> None:
        """Overwrite one bucket (operator tools and tests)."""
        self.limiter.states[bucket] = BucketState(level_nt=level_nt, last_ns=last_ns)
        self._store()

    def level(self, bucket: str) -> int:
        """Whole tokens in ``bucket`` as last stored (for tests and metrics)."""
        self._load()
        return self.limiter.states[bucket].level_nt // 1_000_000_000

    def reset(self, now_ns: int) -> None:
        for name, spec in self.limiter.specs.items():
            self.limiter.states[name] = full_bucket(spec, now_ns)
        self._store()

    def close(self, unlink: bool = False) -> None:
        """Unmap; ``unlink`` on a clean stop (a crashed gateway leaves the budget to its successor)."""
        if unlink:
            unlink_quietly(self.segment.name)
        self.segment.close()
