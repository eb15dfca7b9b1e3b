"""Messages larger than a ring slot travel as consecutive :class:`~titan.messages.Fragment`s.

A ring's slots are fixed-size, and most messages are far smaller; the rare large one (a truth
snapshot with many positions) is split by the producer and joined by the consumer. An SPSC ring
keeps the pieces consecutive and in order. A consumer killed between two pieces of one message
loses that message (its earlier pieces were consumed): only periodic snapshots are that large.
"""

from __future__ import annotations

from collections.abc import Callable

from titan.messages import Fragment

_OVERHEAD = 64  # msgpack framing of a Fragment around its data, with room to spare


def split(data: bytes, max_payload: int, encode: Callable[[Fragment], bytes]) -> list[bytes]:
    """``data`` as encoded fragments that each fit ``max_payload`` (``[data]`` when it fits)."""
    if len(data) <= max_payload:
        return [data]
    chunk = max_payload - _OVERHEAD
    if chunk <= 0:
        raise ValueError(f"ring slots of {max_payload} bytes are too small to carry fragments")
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return [encode(Fragment(index=i, count=len(pieces), data=p)) for i, p in enumerate(pieces)]


class Reassembler:
    """Joins fragments back into the original encoded message."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.dropped = 0  # fragments discarded because their sequence was broken

    def feed(self, frag: Fragment) -> bytes | None:
        """The whole message once its last fragment arrived, else None."""
        if frag.index != len(self.parts):
            # A sequence started before a restart of this consumer: its head is gone.
            self.dropped += 1 + len(self.parts)
            self.parts.clear()
            if frag.index != 0:
                return None
        self.parts.append(frag.data)
        if frag.index + 1 < frag.count:
            return None
        whole = b"".join(self.parts)
        self.parts.clear()
        return whole
