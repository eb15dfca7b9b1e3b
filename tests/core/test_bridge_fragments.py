"""core's bridge input (titan.procs.core.BridgeInput): messages larger than a slot, in pieces.

A fragmented message is handed to the engine whole, as one message of the batch, only once all its
pieces are on the ring; the ring is advanced (by core's loop, after the batch) through its last
piece. A core restarted with pieces on the ring reads them again: nothing is lost or doubled.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from titan.messages import (
    BRIDGE_TO_CORE,
    ArrayFragment,
    Intent,
    OperatorCommand,
    PlaceIntent,
    decoder,
    encoder,
)
from titan.procs.core import BridgeInput
from titan.shm.fragment import split
from titan.shm.ring import Ring

ENC = encoder().encode
FAR = 2**62  # an end_ns no batch reaches


@pytest.fixture
def ring() -> Iterator[Ring]:
    r = Ring.create(f"titan-test-bridge-in-{uuid.uuid4().hex[:8]}", 64, 512)
    try:
        yield r
    finally:
        r.close()
        r.unlink()


def op(ref: int, policy_size: int = 0) -> OperatorCommand:
    args: dict[str, Any] = {"policy": {"pad": "p" * policy_size}} if policy_size else {}
    kind = "POLICY" if policy_size else "ARM"
    return OperatorCommand(
        ref=ref, kind=kind, actor="ops", reason="t", args=args, command_id=f"c{ref}", t_read=0
    )


def place(ref: int, original_size: int) -> PlaceIntent:
    intent = Intent(
        signal_id=f"s{ref}",
        source="nats",
        symbol="BTC/USDT",
        direction=1,
        intent_type="BUY_SETUP",
        t_signal_ms=1,
    )
    return PlaceIntent(
        ref=ref,
        dedupe_ids=[f"s{ref}"],
        correlation_id=f"s{ref}",
        intent=intent,
        original=bytes(range(256)) * (original_size // 256),
        t_ingress_ms=1,
        t_read=0,
        t_ring=0,
    )


def pieces(ring: Ring, msg: Any) -> list[bytes]:
    out = split(ENC(msg), ring.max_payload, ENC, ArrayFragment)
    assert len(out) > 1
    return out


def push(ring: Ring, *data: bytes) -> None:
    for d in data:
        assert ring.try_push(d)


class Core:
    """core's use of its bridge input: take a batch, then advance the ring through what it took."""

    def __init__(self, ring: Ring) -> None:
        self.input = BridgeInput(ring, decoder(BRIDGE_TO_CORE).decode)
        self.ring = ring
        self.handled: list[Any] = []

    def batch(self, room: int = 32, end_ns: int = FAR, advance: bool = True) -> tuple[int, int]:
        k, slots = self.input.take(self.handled.append, room, end_ns)
        if advance and slots:
            self.ring.advance(slots)
        return k, slots


def test_pieces_are_joined_and_counted_as_one_message(ring: Ring) -> None:
    big = place(1, 3000)
    parts = pieces(ring, big)
    push(ring, ENC(op(1)), *parts, ENC(op(2)))
    core = Core(ring)
    assert core.batch() == (3, len(parts) + 2)
    assert core.handled == [op(1), big, op(2)]
    assert ring.depth() == 0


def test_an_incomplete_message_is_not_consumed_and_nothing_overtakes_it(ring: Ring) -> None:
    big = place(2, 3000)
    parts = pieces(ring, big)
    push(ring, ENC(op(1)), *parts[:2])
    core = Core(ring)
    assert core.batch() == (1, 1)  # the whole message before it; the ring stops at its first piece
    assert core.handled == [op(1)]
    assert ring.depth() == 2
    assert core.batch() == (0, 0)  # still waiting
    assert core.input.waiting()  # an idle core waits on its other rings: no spinning on these pieces
    push(ring, parts[2])
    assert not core.input.waiting()  # a new piece: look again
    assert core.batch() == (0, 0) and core.input.waiting()
    push(ring, *parts[3:], ENC(op(3)))
    assert core.batch() == (2, len(parts) + 1)
    assert core.handled == [op(1), big, op(3)]
    assert not core.input.waiting()


def test_a_core_restarted_mid_sequence_reads_it_again_and_delivers_it_once(ring: Ring) -> None:
    big = place(3, 4000)
    parts = pieces(ring, big)
    push(ring, *parts[:3])
    first = Core(ring)
    assert first.batch() == (0, 0)
    del first  # killed: nothing of the sequence was handed to the engine, nothing consumed
    push(ring, *parts[3:])
    again = Core(ring)  # a new process attaches to the same ring, from its cursors
    assert again.batch() == (1, len(parts))
    assert again.handled == [big]
    assert ring.depth() == 0
    assert again.batch() == (0, 0) and again.handled == [big]  # exactly once


def test_a_core_killed_before_advancing_sees_the_whole_message_again(ring: Ring) -> None:
    big = place(4, 2000)
    parts = pieces(ring, big)
    push(ring, *parts)
    first = Core(ring)
    assert first.batch(advance=False) == (1, len(parts))  # handled, then killed before the batch ended
    again = Core(ring)
    assert again.batch() == (1, len(parts))  # the journal's dedupe absorbs the repeat (row 0)
    assert again.handled == [big]


def test_a_sequence_longer_than_the_batch_room_still_goes_through(ring: Ring) -> None:
    big = op(5, policy_size=20 * ring.max_payload)
    parts = pieces(ring, big)
    assert len(parts) > 20
    push(ring, *parts, ENC(op(6)))
    core = Core(ring)
    assert core.batch(room=1) == (1, len(parts))
    assert core.handled == [big]
    assert core.batch(room=1) == (1, 1)


def test_the_batch_room_and_time_bound_count_messages_not_pieces(ring: Ring) -> None:
    a, b = place(7, 2000), place(8, 2000)
    pa, pb = pieces(ring, a), pieces(ring, b)
    push(ring, *pa, ENC(op(9)), *pb)
    core = Core(ring)
    assert core.batch(room=2) == (2, len(pa) + 1)
    assert core.batch(end_ns=time.monotonic_ns()) == (1, len(pb))  # time is up after one message
    assert core.handled == [a, op(9), b]


def test_a_sequence_broken_by_a_restarted_bridge_is_dropped_and_counted(ring: Ring) -> None:
    lost, fresh = place(10, 3000), place(11, 2000)
    old, new = pieces(ring, lost), pieces(ring, fresh)
    push(ring, *old[:2], *new, ENC(op(12)))  # the bridge died after two pieces
    core = Core(ring)
    assert core.batch() == (3, 2 + len(new) + 1)  # dropped sequence, fresh, op
    assert core.handled == [fresh, op(12)] and ring.depth() == 0
    assert core.input.dropped == 2


def test_a_broken_sequence_waiting_for_pieces_is_dropped_once_another_message_arrives(ring: Ring) -> None:
    old = pieces(ring, place(13, 3000))
    push(ring, *old[:2])
    core = Core(ring)
    assert core.batch() == (0, 0)  # might still be completed
    push(ring, ENC(op(14)))  # a restarted bridge's first message
    assert core.batch() == (2, 3)
    assert core.handled == [op(14)] and core.input.dropped == 2
