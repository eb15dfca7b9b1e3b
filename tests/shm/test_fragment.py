"""Messages larger than a slot cross a real ring as fragments and come out whole."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.messages import CORE_TO_BRIDGE, ArrayFragment, Event, Fragment, decoder, encoder
from titan.shm.fragment import Reassembler, fits, gather, split
from titan.shm.ring import Ring

ENC = encoder().encode


@pytest.fixture
def ring() -> Iterator[Ring]:
    r = Ring.create(f"titan-test-frag-{uuid.uuid4().hex[:8]}", 64, 256)
    try:
        yield r
    finally:
        r.close()
        r.unlink()


@given(st.binary(min_size=0, max_size=5000))
@settings(max_examples=200, deadline=None)
def test_split_then_reassemble_is_identity(data: bytes) -> None:
    pieces = split(data, 256, ENC)
    assert all(len(p) <= 256 for p in pieces)
    if len(data) <= 256:
        assert pieces == [data]
        return
    dec = decoder(CORE_TO_BRIDGE).decode
    r = Reassembler()
    out = [r.feed(dec(p)) for p in pieces]
    assert out[:-1] == [None] * (len(pieces) - 1)
    assert out[-1] == data


def test_a_large_event_crosses_a_ring_whole(ring: Ring) -> None:
    event = Event(subject="titan.evt.execution.truth.v1", msg_id="truth:x:1", data=b"x" * 3000)
    small = Event(subject="s", msg_id="m", data=b"y")
    for msg in (event, small):
        for piece in split(ENC(msg), ring.max_payload, ENC):
            assert ring.try_push(piece)
    dec = decoder(CORE_TO_BRIDGE).decode
    r = Reassembler()
    got = []
    while (raw := ring.try_pop()) is not None:
        msg = dec(raw)
        if isinstance(msg, Fragment):
            whole = r.feed(msg)
            if whole is None:
                continue
            msg = dec(whole)
        got.append(msg)
    assert got == [event, small]


def test_a_broken_sequence_is_dropped_and_the_next_one_survives() -> None:
    data = bytes(range(256)) * 10
    pieces = [decoder(CORE_TO_BRIDGE).decode(p) for p in split(data, 256, ENC)]
    r = Reassembler()
    # A consumer restarted mid-message sees its tail first: dropped, counted.
    assert r.feed(pieces[2]) is None
    assert r.dropped == 1
    results = [r.feed(p) for p in pieces]
    assert results[-1] == data


def test_slots_too_small_for_fragments_are_an_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        split(b"z" * 100, 48, ENC)


# --- bridge → core: ArrayFragment pieces joined in place (gather) ------------------------------------

ARRAY_DEC = decoder(ArrayFragment).decode


def _array_pieces(data: bytes, ring: Ring) -> list[bytes]:
    return split(data, ring.max_payload, ENC, ArrayFragment)


def _head(ring: Ring) -> ArrayFragment:
    view = ring.peek_at(0)
    assert view is not None
    return ARRAY_DEC(view)


def test_a_reassembler_fed_again_from_the_start_joins_the_message_once() -> None:
    data = bytes(range(256)) * 10
    pieces = [decoder(CORE_TO_BRIDGE).decode(p) for p in split(data, 256, ENC)]
    r = Reassembler()
    assert [r.feed(p) for p in pieces[:2]] == [None, None]
    # A consumer that re-reads the sequence from its first piece (it consumed none of them).
    results = [r.feed(p) for p in pieces]
    assert results[-1] == data and results[:-1] == [None] * (len(pieces) - 1)
    assert r.dropped == 2  # the two pieces read before; the re-read first piece is kept


def test_gather_joins_in_place_and_waits_for_missing_pieces(ring: Ring) -> None:
    data = b"q" * 1000
    pieces = _array_pieces(data, ring)
    assert len(pieces) == 6
    for p in pieces[:4]:
        assert ring.try_push(p)
    first = _head(ring)
    assert gather(ring.peek_at, 0, first, ARRAY_DEC) == (None, 0)  # two still to come
    for p in pieces[4:]:
        assert ring.try_push(p)
    assert gather(ring.peek_at, 0, first, ARRAY_DEC) == (data, 6)
    assert ring.depth() == 6  # nothing consumed


def test_gather_reports_a_broken_sequence_to_drop(ring: Ring) -> None:
    old = _array_pieces(b"o" * 1000, ring)
    new = _array_pieces(b"n" * 500, ring)
    # A producer killed after two pieces, restarted: a new message follows.
    for p in [*old[:2], *new]:
        assert ring.try_push(p)
    first = _head(ring)
    assert gather(ring.peek_at, 0, first, ARRAY_DEC) == (None, 2)
    ring.advance(2)
    first = _head(ring)
    assert gather(ring.peek_at, 0, first, ARRAY_DEC) == (b"n" * 500, len(new))
    # A lone tail piece (index ≠ 0) is dropped by itself.
    tail = ArrayFragment(index=3, count=6, data=b"t")
    assert gather(ring.peek_at, 0, tail, ARRAY_DEC) == (None, 1)


def test_gather_drops_a_sequence_broken_by_a_whole_message(ring: Ring) -> None:
    pieces = _array_pieces(b"o" * 1000, ring)
    whole = ENC(Event(subject="s", msg_id="m", data=b"y"))  # anything that is not the next piece
    for p in [*pieces[:3], whole]:
        assert ring.try_push(p)
    first = _head(ring)
    assert gather(ring.peek_at, 0, first, ARRAY_DEC) == (None, 3)


def test_fits_bounds_the_pieces_by_the_ring_capacity(ring: Ring) -> None:
    assert fits(_array_pieces(b"z" * 100, ring), ring.capacity)
    pieces = _array_pieces(b"z" * (ring.capacity * (ring.max_payload - 64) + 1), ring)
    assert len(pieces) == ring.capacity + 1 and not fits(pieces, ring.capacity)
