"""Messages larger than a slot cross a real ring as fragments and come out whole."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.messages import CORE_TO_BRIDGE, Event, Fragment, decoder, encoder
from titan.shm.fragment import Reassembler, split
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
