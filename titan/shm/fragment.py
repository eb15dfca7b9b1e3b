"""Messages larger than a ring slot travel as consecutive :class:`~titan.messages.Fragment`s.

A ring's slots are fixed-size, and most messages are far smaller; the rare large one (a truth
snapshot with many positions, a signed NATS intent with its multi-KiB original envelope, a big risk
policy) is split by the producer and joined by the consumer. An SPSC ring keeps the pieces
consecutive and in order (a producer pushes one message's pieces with nothing in between).

Two ways to consume them:

- :class:`Reassembler` (the bridge, core → bridge): pieces are consumed as they are read. A consumer
  killed between two pieces of one message loses that message (its earlier pieces were consumed);
  only periodic snapshots are that large there.
- :func:`gather` (core, bridge → core, :class:`~titan.messages.ArrayFragment`): a message is taken
  only once all its pieces are on the ring, read in place (``peek_at``) and consumed together, so a
  consumer killed at any point reads the whole sequence again after a restart and nothing is lost.
  The producer must never push a message of more pieces than the ring has slots
  (:func:`fits`), or it would wait for room the consumer never frees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from titan.messages import ArrayFragment, Fragment

_OVERHEAD = 64  # msgpack framing of a Fragment around its data, with room to spare

AnyFragment = Fragment | ArrayFragment


def split(
    data: bytes,
    max_payload: int,
    encode: Callable[[Any], bytes],
    kind: type[Fragment] | type[ArrayFragment] = Fragment,
) -> list[bytes]:
    """``data`` as encoded fragments of type ``kind`` that each fit ``max_payload`` (``[data]``
    when it fits)."""
    if len(data) <= max_payload:
        return [data]
    chunk = max_payload - _OVERHEAD
    if chunk <= 0:
        raise ValueError(f"ring slots of {max_payload} bytes are too small to carry fragments")
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return [encode(kind(index=i, count=len(pieces), data=p)) for i, p in enumerate(pieces)]


def fits(pieces: list[bytes], capacity: int) -> bool:
    """Whether a consumer that takes a message only whole (:func:`gather`) can ever take these
    pieces from a ring of ``capacity`` slots."""
    return len(pieces) <= capacity


class Reassembler:
    """Joins fragments back into the original encoded message."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.dropped = 0  # fragments discarded because their sequence was broken

    def feed(self, frag: AnyFragment) -> bytes | None:
        """The whole message once its last fragment arrived, else None.

        A piece that does not continue the current sequence ends it: its pieces are dropped; a
        first piece (index 0, a sequence read again from its start) then begins a new one.
        """
        if frag.index != len(self.parts):
            # A sequence started before a restart of this consumer: its head is gone, or it is
            # being read again from the start.
            self.dropped += len(self.parts) + (frag.index != 0)
            self.parts.clear()
            if frag.index != 0:
                return None
        self.parts.append(frag.data)
        if frag.index + 1 < frag.count:
            return None
        whole = b"".join(self.parts)
        self.parts.clear()
        return whole


def gather(
    peek: Callable[[int], memoryview | None],
    at: int,
    first: ArrayFragment,
    decode: Callable[[memoryview], ArrayFragment],
) -> tuple[bytes | None, int]:
    """Join, without consuming them, the pieces of the message whose piece ``first`` is unconsumed
    message ``at`` of a ring (``peek`` is the ring's ``peek_at``; ``decode`` reads one piece).

    Returns ``(whole, n)`` when all n pieces are there; ``(None, 0)`` while some are still to come;
    ``(None, n)`` when the first n messages from ``at`` are a broken sequence (a producer killed
    between two pieces, then restarted: the message is redelivered upstream), for the caller to
    consume and drop.
    """
    count = first.count
    if first.index != 0 or count < 1:
        return None, 1  # the tail of a broken sequence
    if peek(at + count - 1) is None:  # not all there yet, unless what is there breaks the sequence
        for i in range(1, count):
            view = peek(at + i)
            if view is None:
                return None, 0
            if not _continues(view, i, count, decode):
                return None, i
    parts = [first.data]
    for i in range(1, count):
        view = peek(at + i)
        assert view is not None  # the last piece is there, and so is every one before it
        try:
            frag = decode(view)
        except msgspec.DecodeError:
            return None, i
        if frag.index != i or frag.count != count:
            return None, i
        parts.append(frag.data)
    return b"".join(parts), count


def _continues(
    view: memoryview, index: int, count: int, decode: Callable[[memoryview], ArrayFragment]
) -> bool:
    try:
        frag = decode(view)
    except msgspec.DecodeError:
        return False
    return frag.index == index and frag.count == count
