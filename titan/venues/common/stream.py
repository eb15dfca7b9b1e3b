"""Venue-neutral control events from private streams (auth, pong, subscription acks)."""

from __future__ import annotations

import msgspec


class StreamAuthResult(msgspec.Struct, frozen=True):
    ok: bool
    message: str = ""


class StreamPong(msgspec.Struct, frozen=True):
    pass


class StreamSubscribed(msgspec.Struct, frozen=True):
    ok: bool
    message: str = ""


class StreamIgnored(msgspec.Struct, frozen=True):
    """A well-formed message this adapter does not turn into state (other topics, funding, …)."""

    topic: str


class ListenKeyExpired(msgspec.Struct, frozen=True):
    """Binance: the user-data stream's key expired; create a new one and reconcile."""

    event_time_ms: int
