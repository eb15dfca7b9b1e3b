"""Account-wide buckets in shared memory: R13 (deterministic, injected clock) and R11 (survive a restart)."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gateways.conftest import Rig
from titan.risk.buckets import BucketSpec, RequestKind
from titan.shm.segment import exists
from titan.venues.gateway.buckets import SharedLimiter, bucket_segment_name
from titan.venues.sim import SimServer

SPEC = (BucketSpec("create", 10, 10),)
COSTS = {RequestKind.CREATE: (("create", 1),)}
MS = 1_000_000


@pytest.fixture
def segment_name() -> Iterator[str]:
    name = bucket_segment_name(f"/tb{uuid.uuid4().hex[:8]}", "bybit")
    yield name
    from titan.shm.segment import unlink_quietly

    unlink_quietly(name)


def open_limiter(name: str, now_ns: int) -> SharedLimiter:
    return SharedLimiter.open(name, "bybit", now_ns, SPEC, COSTS)


def test_R13_fifteen_at_once_then_two_after_100ms(segment_name: str) -> None:
    t0 = 1_000_000 * MS
    limiter = open_limiter(segment_name, t0)
    results = [limiter.try_acquire(RequestKind.CREATE, t0) for _ in range(15)]
    assert results.count(None) == 10
    assert [r for r in results if r is not None] == ["create"] * 5  # denied, naming the bucket
    later = [limiter.try_acquire(RequestKind.CREATE, t0 + 100 * MS) for _ in range(2)]
    assert later == [None, "create"]  # exactly one token refilled; nothing queued
    limiter.close(unlink=True)
    assert not exists(segment_name)


def test_R11_state_is_shared_by_every_attachment(segment_name: str) -> None:
    t0 = 5_000 * MS
    first = open_limiter(segment_name, t0)
    for _ in range(7):
        assert first.try_acquire(RequestKind.CREATE, t0) is None
    second = open_limiter(segment_name, t0)  # a restarted gateway attaches: it does not start full
    assert not second.created
    assert second.level("create") == 3
    assert [second.try_acquire(RequestKind.CREATE, t0) for _ in range(4)].count(None) == 3
    first.close()
    second.close(unlink=True)


@settings(max_examples=50, deadline=None)
@given(gaps_ms=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=60))
def test_R13_never_more_than_capacity_plus_refill(gaps_ms: list[int]) -> None:
    name = bucket_segment_name(f"/tb{uuid.uuid4().hex[:8]}", "bybit")
    t = 10_000 * MS
    limiter = open_limiter(name, t)
    granted: list[int] = []
    try:
        for gap in gaps_ms:
            t += gap * MS
            if limiter.try_acquire(RequestKind.CREATE, t) is None:
                granted.append(t)
    finally:
        limiter.close(unlink=True)
    # In any window of w ms at most 10 + 10·w/1000 requests pass (the venue's rolling limit).
    for i, start in enumerate(granted):
        inside = [g for g in granted[i:] if g - start <= 1000 * MS]
        assert len(inside) <= 10 + 10 * (inside[-1] - start) // (1000 * MS) + 1


@pytest.mark.anyio
async def test_R11_restarted_gateway_resumes_the_shared_budget(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    rig = make_rig("bybit", sim)
    await rig.ready()
    burst = [rig.order(qty="0.001") for _ in range(15)]
    await rig.until(lambda: all(rig.kinds(r.coid) for r in burst))
    denied = [r for r in burst if rig.reports_for(r.coid, "DENIED")]
    assert denied and all(rig.reports_for(r.coid, "DENIED")[0].reason_code == "RATE_LIMITED" for r in denied)
    assert sim.venues["bybit"].order_requests <= 11  # 10 tokens plus at most one refilled meanwhile
    rig.stop(signal.SIGKILL)  # a crash: the segment stays
    name = bucket_segment_name(rig.prefix, "bybit")
    assert exists(name)
    shared = SharedLimiter.open(name, "bybit", time.monotonic_ns())
    shared.set_state("create", 0, time.monotonic_ns() + 60_000 * MS)  # empty, no refill for a minute
    shared.close()
    rig.received.clear()
    rig.start()
    await rig.ready()
    after = rig.order(qty="0.001")
    await rig.until(lambda: rig.kinds(after.coid))
    assert rig.kinds(after.coid) == ["DENIED"]  # the new process resumed the budget, it did not start full
