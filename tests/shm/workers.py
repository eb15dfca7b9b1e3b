"""Child-process entry points for the shared-memory tests (importable, so "spawn" can start them)."""

from __future__ import annotations

import os
import signal
import threading
import time

from titan.shm.ring import Ring
from titan.shm.segment import Segment

SEQ_BYTES = 8


def payload_size(seq: int, max_payload: int) -> int:
    """Pseudo-random size in 1..max_payload derived from the sequence number."""
    return 1 + ((seq * 2654435761) >> 7) % max_payload


def make_payload(seq: int, max_payload: int) -> bytes:
    """Content derived from ``seq``: its 8 little-endian bytes repeated, cut to a pseudo-random size."""
    size = payload_size(seq, max_payload)
    return (seq.to_bytes(SEQ_BYTES, "little") * (size // SEQ_BYTES + 1))[:size]


def idle_pause(idle_rounds: int) -> None:
    """Back off while a ring is empty/full without a doorbell: yield first, then short sleeps."""
    if idle_rounds < 8:
        os.sched_yield()
    else:
        time.sleep(50e-6)


def produce_sequence(ring_name: str, first: int, count: int) -> None:
    """Push messages first..first+count-1 (``make_payload``), waiting while full."""
    ring = Ring.attach(ring_name)
    try:
        max_payload = ring.max_payload
        for seq in range(first, first + count):
            ring.push(make_payload(seq, max_payload), timeout=60.0)
    finally:
        ring.close()


def tagged_payload(seq: int) -> bytes:
    """Sequence number first (so a consumer can read it), then a variable-length tail."""
    return seq.to_bytes(SEQ_BYTES, "little") + bytes(seq % 41)


def produce_tagged(ring_name: str, first: int, count: int) -> None:
    """Push ``tagged_payload(seq)`` for seq in first..first+count-1, waiting while full."""
    ring = Ring.attach(ring_name)
    try:
        for seq in range(first, first + count):
            ring.push(tagged_payload(seq), timeout=60.0)
    finally:
        ring.close()


def consume_and_verify(ring_name: str, count: int, deadline_s: float, result_name: str) -> None:
    """Pop ``count`` messages and check each is exactly ``make_payload(expected_seq)``.

    Writes [received, mismatches, first_bad_seq] into the u64 segment ``result_name``.
    """
    ring = Ring.attach(ring_name)
    result = Segment.attach(result_name)
    out = result.buf.cast("q")
    try:
        max_payload = ring.max_payload
        deadline = time.monotonic() + deadline_s
        received = mismatches = 0
        first_bad = -1
        idle = 0
        while received < count:
            data = ring.try_pop()
            if data is None:
                idle += 1
                idle_pause(idle)
                if idle % 1024 == 0 and time.monotonic() > deadline:
                    break
                continue
            idle = 0
            if data != make_payload(received, max_payload):
                mismatches += 1
                if first_bad < 0:
                    first_bad = received
            received += 1
        out[0], out[1], out[2] = received, mismatches, first_bad
    finally:
        out.release()
        result.close()
        ring.close()


def consume_with_log(ring_name: str, log_name: str, stop_after_seq: int, hang_at_seq: int) -> None:
    """Consume messages, recording each sequence number in the log *before* advance().

    Log segment (int64): [0] = entries, [1 + k] = seq of the k-th processed message. Returns after
    processing ``stop_after_seq``. At ``hang_at_seq`` it records the message and then blocks before
    advance(), so the parent can kill it in exactly that state.
    """
    ring = Ring.attach(ring_name)
    log_segment = Segment.attach(log_name)
    log = log_segment.buf.cast("q")
    idle = 0
    while True:
        view = ring.peek()
        if view is None:
            idle += 1
            idle_pause(idle)
            continue
        idle = 0
        seq = int.from_bytes(view[:SEQ_BYTES], "little")
        del view
        entries = log[0]
        log[1 + entries] = seq
        log[0] = entries + 1  # after the entry: a killed consumer never leaves a counted hole
        if seq == hang_at_seq:
            threading.Event().wait()  # killed here by the parent; never advances
        ring.advance()
        if seq == stop_after_seq:
            break
    log.release()
    log_segment.close()
    ring.close()


def attach_and_exit(segment_name: str) -> None:
    """Attach, touch, and exit without closing (the resource_tracker trap scenario)."""
    segment = Segment.attach(segment_name)
    segment.buf[0] = 1


def kill_self_after_attach(segment_name: str) -> None:
    """Attach and die by SIGKILL (no cleanup code runs at all)."""
    Segment.attach(segment_name)
    os.kill(os.getpid(), signal.SIGKILL)


def echo_with_doorbell(
    in_ring: str, out_ring: str, my_bell: str, peer_bell: str, count: int, result: str
) -> None:
    """Echo ``count`` messages from in_ring to out_ring, always sleeping (spin 0) between them.

    Writes [echoed, timeouts] into the u64 segment ``result``.
    """
    from titan.shm.doorbell import Doorbell, wait_any

    rx, tx = Ring.attach(in_ring), Ring.attach(out_ring)
    bell, peer = Doorbell.attach(my_bell), Doorbell.attach(peer_bell)
    out_segment = Segment.attach(result)
    out = out_segment.buf.cast("q")
    echoed = timeouts = 0
    while echoed < count:
        if not wait_any([rx], bell, timeout=2.0, spin_s=0.0):
            timeouts += 1
            if timeouts > 5:
                break
            continue
        while (message := rx.try_pop()) is not None:
            tx.push(message, timeout=10.0)
            peer.ring()
            echoed += 1
    out[0], out[1] = echoed, timeouts
    out.release()
    for closeable in (out_segment, rx, tx, bell, peer):
        closeable.close()


def paced_producer(ring_name: str, bell_name: str, count: int, seed: int) -> None:
    """Push ``tagged_payload(0..count-1)`` in random bursts separated by random short pauses, ringing
    the consumer's doorbell after each publish: the pauses land on every phase of its sleep cycle."""
    import random

    from titan.shm.doorbell import Doorbell

    rng = random.Random(seed)
    ring, bell = Ring.attach(ring_name), Doorbell.attach(bell_name)
    seq = 0
    while seq < count:
        for _ in range(rng.randint(1, 3)):
            if seq == count:
                break
            ring.push(tagged_payload(seq), timeout=10.0)
            bell.ring()
            seq += 1
        pause = rng.random()
        if pause < 0.3:
            continue
        if pause < 0.6:
            os.sched_yield()
        else:
            time.sleep(pause * 1e-4)
    ring.close()
    bell.close()


def ticker_fields(counter: int) -> dict[str, int]:
    """Every field of a ticker row derived from one counter, so a reader can check consistency."""
    return {
        "bid": 1_000_000_000 * 50_000 + counter,
        "bid_size": 2 * counter + 1,
        "ask": 1_000_000_000 * 50_001 + counter,
        "ask_size": 3 * counter + 2,
        "last": 5 * counter,
        "mark": 7 * counter,
        "exchange_ts_ms": 1_700_000_000_000 + counter,
        "recv_mono_ns": 11 * counter,
        "recv_wall_ms": 1_700_000_000_000 + 2 * counter,
    }


def hammer_ticker_row(table_name: str, row: int, control_name: str, max_seconds: float) -> None:
    """Rewrite one row with counter 1, 2, 3, ... until control[0] != 0 (or max_seconds).

    Writes the last counter to control[1].
    """
    from titan.shm.ticker import TickerTable

    table = TickerTable.attach(table_name)
    control_segment = Segment.attach(control_name)
    control = control_segment.buf.cast("q")
    deadline = time.monotonic() + max_seconds
    counter = 0
    while not control[0]:
        for _ in range(1000):
            counter += 1
            table.write(row, **ticker_fields(counter))
        control[1] = counter
        if time.monotonic() > deadline:
            break
    control.release()
    control_segment.close()
    table.close()


def board_child(board_name: str, proc: str) -> None:
    """A child that reports on its own row and exits without cleanup."""
    from titan.shm.board import ProcState, StatusBoard

    board = StatusBoard.attach(board_name)
    board.set_state(proc, ProcState.READY)
    board.beat(proc, 123_456_789)
    board.incr(proc, 3, 5)
