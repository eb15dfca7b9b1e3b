"""SPSC ring: geometry, backpressure, crash/restart semantics, and cross-process integrity."""

from __future__ import annotations

import multiprocessing.context
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.shm.ring import HEADER_SIZE, MessageTooLarge, Ring, RingFull, RingLayoutError
from titan.shm.segment import Segment

from . import workers

Names = Callable[[str], str]


@pytest.fixture
def make_ring(shm_name: Names) -> Iterator[Callable[[int, int], Ring]]:
    rings: list[Ring] = []

    def make(slots: int, slot_size: int) -> Ring:
        ring = Ring.create(shm_name("ring"), slots, slot_size)
        rings.append(ring)
        return ring

    yield make
    for ring in rings:
        ring.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


# ---------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("slots", "slot_size", "message"),
    [
        (0, 64, "power of two"),
        (1, 64, "power of two"),
        (3, 64, "power of two"),
        (1000, 64, "power of two"),
        (8, 0, "multiple of 8"),
        (8, 12, "multiple of 8"),
        (8, 100, "multiple of 8"),
        (1 << 30, 64, "<="),
    ],
)
def test_invalid_geometry_is_rejected_with_a_clear_error(slots: int, slot_size: int, message: str) -> None:
    with pytest.raises(RingLayoutError, match=message):
        Ring.segment_size(slots, slot_size)


def test_invalid_geometry_creates_nothing(shm_name: Names) -> None:
    name = shm_name("bad")
    with pytest.raises(RingLayoutError):
        Ring.create(name, 3, 64)
    with pytest.raises(FileNotFoundError):
        Segment.attach(name)


@pytest.mark.parametrize(("slots", "slot_size"), [(2, 16), (8, 64), (1024, 256), (64, 4096)])
def test_attach_reads_geometry_from_the_header(
    make_ring: Callable[[int, int], Ring], slots: int, slot_size: int
) -> None:
    ring = make_ring(slots, slot_size)
    with Ring.attach(ring.name) as attached:
        assert (attached.capacity, attached.max_payload) == (slots, slot_size - 4)
    assert ring.capacity == slots
    assert Ring.segment_size(slots, slot_size) == HEADER_SIZE + slots * slot_size


def test_attach_rejects_a_segment_that_is_not_a_ring(shm_name: Names) -> None:
    name = shm_name("plain")
    with Segment.create(name, 4096), pytest.raises(RingLayoutError, match="not a ring"):
        Ring.attach(name)


def test_attach_missing_and_create_existing(shm_name: Names) -> None:
    name = shm_name("ring")
    with pytest.raises(FileNotFoundError, match=name):
        Ring.attach(name)
    with Ring.create(name, 4, 64), pytest.raises(FileExistsError, match=name):
        Ring.create(name, 4, 64)


# ---------------------------------------------------------------------------------------- single process


def test_messages_come_out_in_order_across_wraparound(make_ring: Callable[[int, int], Ring]) -> None:
    ring = make_ring(4, 32)
    expected: list[bytes] = []
    got: list[bytes] = []
    for i in range(50):
        payload = bytes([i]) * (i % 29)
        assert ring.try_push(payload)
        expected.append(payload)
        if i % 3 == 0:
            while (item := ring.try_pop()) is not None:
                got.append(item)
    while (item := ring.try_pop()) is not None:
        got.append(item)
    assert got == expected
    assert ring.depth() == 0


def test_full_ring_pushes_back_and_overwrites_nothing(make_ring: Callable[[int, int], Ring]) -> None:
    ring = make_ring(8, 32)
    for i in range(8):
        assert ring.try_push(bytes([i]) * 10)
    assert ring.depth() == 8
    assert ring.try_push(b"overflow") is False
    with pytest.raises(RingFull, match="stayed full"):
        ring.push(b"overflow", timeout=0.02)
    assert ring.depth() == 8
    assert [ring.try_pop() for _ in range(8)] == [bytes([i]) * 10 for i in range(8)]
    assert ring.try_pop() is None
    ring.push(b"room again", timeout=0.0)
    assert ring.try_pop() == b"room again"


def test_oversize_message_is_rejected_with_both_sizes(make_ring: Callable[[int, int], Ring]) -> None:
    ring = make_ring(4, 64)
    assert ring.try_push(b"x" * 60)
    with pytest.raises(MessageTooLarge, match=r"61 bytes exceeds max_payload 60"):
        ring.try_push(b"x" * 61)
    with pytest.raises(MessageTooLarge):
        ring.push(b"x" * 1000, timeout=0.0)
    assert ring.depth() == 1


def test_peek_does_not_consume_and_advance_does(make_ring: Callable[[int, int], Ring]) -> None:
    ring = make_ring(4, 64)
    assert ring.peek() is None
    with pytest.raises(RuntimeError, match="no message"):
        ring.advance()
    ring.try_push(b"first")
    ring.try_push(b"second")
    view = ring.peek()
    assert view is not None and bytes(view) == b"first"
    again = ring.peek()
    assert again is not None and bytes(again) == b"first"
    del view, again
    ring.advance()
    assert ring.try_pop() == b"second"
    assert ring.peek() is None


def test_a_batch_is_read_with_peek_at_and_consumed_by_one_advance(
    make_ring: Callable[[int, int], Ring],
) -> None:
    ring = make_ring(4, 64)
    assert ring.peek_at(0) is None
    for word in (b"a", b"bb", b"ccc"):
        assert ring.try_push(word)
    views = [ring.peek_at(k) for k in range(4)]
    assert [bytes(v) if v is not None else None for v in views] == [b"a", b"bb", b"ccc", None]
    assert ring.tail == 0  # reading a batch consumes nothing
    del views
    with pytest.raises(RuntimeError, match="no message"):
        ring.advance(4)
    with pytest.raises(RuntimeError, match="no message"):
        ring.advance(0)
    assert ring.tail == 0
    ring.advance(2)
    assert ring.tail == 2 and ring.depth() == 1
    assert ring.try_push(b"dddd") and ring.try_push(b"e") and ring.try_push(b"f")  # slots reused
    assert not ring.try_push(b"g")
    later = ring.peek_at(3)
    assert later is not None and bytes(later) == b"f"  # across the wrap
    del later
    ring.advance(4)
    assert ring.peek() is None and ring.depth() == 0


@pytest.mark.parametrize(
    "payload",
    [
        bytearray(b"abc"),
        memoryview(b"hello"),
        memoryview(b""),
        memoryview(bytes(range(16))).cast("Q"),
        memoryview(bytes(range(12))).cast("b"),
        memoryview(bytes(range(12))).cast("B", (3, 4)),
    ],
)
def test_accepts_bytes_like_payloads(
    make_ring: Callable[[int, int], Ring], payload: bytearray | memoryview
) -> None:
    ring = make_ring(4, 64)
    assert ring.try_push(payload)
    assert ring.try_pop() == bytes(payload)


def test_restarted_sides_resume_from_the_shared_cursors(make_ring: Callable[[int, int], Ring]) -> None:
    ring = make_ring(8, 32)
    for i in range(5):
        ring.try_push(bytes([i]))
    assert ring.try_pop() == b"\x00"
    view = ring.peek()  # being processed when the consumer "dies"
    assert view is not None
    del view
    with Ring.attach(ring.name) as consumer, Ring.attach(ring.name) as producer:
        assert producer.try_push(b"\x05")
        assert [consumer.try_pop() for _ in range(5)] == [bytes([i]) for i in range(1, 6)]
        assert consumer.try_pop() is None


def test_cursor_arithmetic_holds_far_from_zero(make_ring: Callable[[int, int], Ring]) -> None:
    ring = make_ring(4, 32)
    cursors = ring._segment.buf.cast("Q")
    start = (1 << 40) - 3  # not a multiple of the slot count: the slot index wraps mid-test
    cursors[8] = cursors[16] = start
    cursors.release()
    with Ring.attach(ring.name) as ring2:
        for i in range(10):
            assert ring2.try_push(bytes([i]))
            assert ring2.depth() == 1
            assert ring2.try_pop() == bytes([i])
        assert ring2.head == start + 10


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.one_of(st.integers(min_value=0, max_value=28), st.none()),
        max_size=120,
    )
)
def test_any_interleaving_never_loses_or_reorders(ops: list[int | None]) -> None:
    """ints are pushes of that size, None is a pop; model is a bounded deque."""
    name = f"titan-test-{os.getpid()}-hyp"
    ring = Ring.create(name, 4, 32)
    try:
        model: deque[bytes] = deque()
        seq = 0
        for op in ops:
            if op is None:
                got = ring.try_pop()
                assert got == (model.popleft() if model else None)
            else:
                payload = (seq.to_bytes(4, "little") * 8)[:op]
                seq += 1
                accepted = ring.try_push(payload)
                assert accepted == (len(model) < ring.capacity)
                if accepted:
                    model.append(payload)
            assert ring.depth() == len(model)
        while model:
            assert ring.try_pop() == model.popleft()
        assert ring.try_pop() is None
    finally:
        ring.close()
        ring.unlink()


# ---------------------------------------------------------------------------------------- across processes


def test_million_random_size_messages_between_processes(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext
) -> None:
    count = 1_000_000
    ring = Ring.create(shm_name("ring"), 1024, 128)
    result = Segment.create(shm_name("result"), 64)
    consumer = spawn.Process(
        target=workers.consume_and_verify, args=(ring.name, count, 150.0, result.name), daemon=True
    )
    consumer.start()
    try:
        max_payload = ring.max_payload
        for seq in range(count):
            ring.push(workers.make_payload(seq, max_payload), timeout=60.0)
        consumer.join(timeout=150)
        assert consumer.exitcode == 0
        received, mismatches, first_bad = result.buf.cast("q")[:3].tolist()
        assert (received, mismatches, first_bad) == (count, 0, -1)
        assert ring.depth() == 0
    finally:
        ring.close()
        result.close()


def _log_entries(log: Segment) -> list[int]:
    view = log.buf.cast("q")
    entries: list[int] = view[1 : 1 + view[0]].tolist()
    view.release()
    return entries


def _log_count(log: Segment) -> int:
    view = log.buf.cast("q")
    n = int(view[0])
    view.release()
    return n


def test_consumer_killed_before_advance_sees_that_one_message_again(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext
) -> None:
    """Documented semantics: the message being processed at the kill is delivered again, once."""
    total, hang_at = 3000, 1234
    ring = Ring.create(shm_name("ring"), 4096, 64)
    log = Segment.create(shm_name("log"), 8 * (total + 16))
    try:
        for seq in range(total):
            assert ring.try_push(workers.tagged_payload(seq))
        first = spawn.Process(target=workers.consume_with_log, args=(ring.name, log.name, total - 1, hang_at))
        first.start()
        wait_until(lambda: _log_count(log) == hang_at + 1, 60, "the consumer to reach the hang point")
        assert ring.tail == hang_at  # recorded, not advanced
        os.kill(first.pid or 0, signal.SIGKILL)
        first.join(timeout=10)
        assert first.exitcode == -signal.SIGKILL

        second = spawn.Process(target=workers.consume_with_log, args=(ring.name, log.name, total - 1, -1))
        second.start()
        second.join(timeout=60)
        assert second.exitcode == 0
        assert _log_entries(log) == [*range(hang_at + 1), *range(hang_at, total)]
        assert ring.depth() == 0
    finally:
        ring.close()
        log.close()


@pytest.mark.parametrize("kill_after", [500, 7000])
def test_consumer_sigkilled_mid_stream_resumes_exactly(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext, kill_after: int
) -> None:
    """Producer and consumer both running, small ring (so the producer is often blocked on a full ring);
    the consumer is SIGKILLed at an arbitrary point and restarted. Every message is processed once, in
    order, except at most the single one in flight at the kill, which is processed twice."""
    total = 20_000
    ring = Ring.create(shm_name("ring"), 64, 64)
    log = Segment.create(shm_name("log"), 8 * (total + 16))
    try:
        producer = spawn.Process(target=workers.produce_tagged, args=(ring.name, 0, total))
        first = spawn.Process(target=workers.consume_with_log, args=(ring.name, log.name, total - 1, -1))
        producer.start()
        first.start()
        wait_until(lambda: _log_count(log) >= kill_after, 60, "the first consumer to make progress")
        os.kill(first.pid or 0, signal.SIGKILL)
        first.join(timeout=10)
        entries_at_kill = _log_count(log)
        assert entries_at_kill < total, "the kill came too late to be mid-stream"

        second = spawn.Process(target=workers.consume_with_log, args=(ring.name, log.name, total - 1, -1))
        second.start()
        second.join(timeout=90)
        producer.join(timeout=30)
        assert (second.exitcode, producer.exitcode) == (0, 0)

        entries = _log_entries(log)
        boundary = entries[:entries_at_kill]
        assert boundary == list(range(entries_at_kill))
        resumed = entries[entries_at_kill:]
        # The restarted consumer starts at tail: either the first unrecorded message, or the one that
        # was recorded but not yet advanced when the kill landed.
        assert resumed[0] in (entries_at_kill, entries_at_kill - 1)
        assert resumed == list(range(resumed[0], total))
        assert ring.depth() == 0
    finally:
        ring.close()
        log.close()


def test_attach_rejects_another_layout_version(make_ring: Callable[[int, int], Ring]) -> None:
    ring = make_ring(4, 64)
    header = ring._segment.buf.cast("Q")
    header[1] = 99
    header.release()
    with pytest.raises(RingLayoutError, match="version 99"):
        Ring.attach(ring.name)


def test_push_waits_for_the_consumer_to_make_room(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext
) -> None:
    """A producer blocked in push() on a full ring resumes as soon as a consumer in another process
    frees slots; nothing is dropped."""
    count = 2000
    ring = Ring.create(shm_name("ring"), 4, 64)
    result = Segment.create(shm_name("result"), 64)
    try:
        for seq in range(4):
            ring.push(workers.make_payload(seq, ring.max_payload))
        assert not ring.try_push(b"full")
        consumer = spawn.Process(
            target=workers.consume_and_verify, args=(ring.name, count, 60.0, result.name)
        )
        consumer.start()
        for seq in range(4, count):
            ring.push(workers.make_payload(seq, ring.max_payload), timeout=30.0)
        consumer.join(timeout=60)
        assert consumer.exitcode == 0
        assert result.buf.cast("q")[:3].tolist() == [count, 0, -1]
    finally:
        ring.close()
        result.close()


@pytest.mark.slow
def test_soak_ten_million_messages(shm_name: Names, spawn: multiprocessing.context.SpawnContext) -> None:
    count = 10_000_000
    ring = Ring.create(shm_name("ring"), 4096, 256)
    result = Segment.create(shm_name("result"), 64)
    consumer = spawn.Process(target=workers.consume_and_verify, args=(ring.name, count, 900.0, result.name))
    consumer.start()
    try:
        for seq in range(count):
            ring.push(workers.make_payload(seq, ring.max_payload), timeout=60.0)
        consumer.join(timeout=900)
        assert consumer.exitcode == 0
        assert result.buf.cast("q")[:3].tolist() == [count, 0, -1]
    finally:
        ring.close()
        result.close()
