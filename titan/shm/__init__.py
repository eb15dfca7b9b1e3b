"""Shared memory: SPSC rings, doorbells, the ticker table and the status board.

The supervisor creates (and at shutdown unlinks) every object; other processes attach by name and
only ``close()``. See each module's docstring for layout, ordering and crash semantics.

Typical use::

    # supervisor, at start (clear leftovers of a crashed run first)
    unlink_quietly("titan.cmd.ingress"); unlink_doorbell_quietly("titan.bell.core")
    Ring.create("titan.cmd.ingress", slots=4096, slot_size=512)
    Doorbell.create("titan.bell.core")

    # producer (ingress)
    ring, bell = Ring.attach("titan.cmd.ingress"), Doorbell.attach("titan.bell.core")
    ring.push(msgspec.msgpack.encode(cmd), timeout=1.0)   # RingFull if core stays behind
    bell.ring()                                           # after publishing; ~0.1-0.4 µs if core is awake

    # consumer (core: one thread, no asyncio)
    while running:
        if wait_any(rings, bell, timeout=0.2):            # short spin, then sleep on the doorbell
            for ring in rings:
                while (view := ring.peek()) is not None:
                    handle(decoder.decode(view))          # decode before advance(): the slot is reused after
                    ring.advance()

    # consumer in an asyncio process: ``await wait_any_async(rings, bell, timeout)`` (no spin).
"""

from titan.shm.board import ProcState, ProcStatus, StatusBoard
from titan.shm.doorbell import Doorbell, unlink_doorbell_quietly, wait_any, wait_any_async
from titan.shm.ring import MessageTooLarge, Ring, RingFull, RingLayoutError
from titan.shm.segment import Segment, unlink_quietly
from titan.shm.ticker import (
    PRICE_EXP,
    SIZE_EXP,
    TickerBusy,
    TickerIndex,
    TickerSnapshot,
    TickerTable,
    price_to_units,
    size_to_units,
    units_to_price,
    units_to_size,
)

__all__ = [
    "PRICE_EXP",
    "SIZE_EXP",
    "Doorbell",
    "MessageTooLarge",
    "ProcState",
    "ProcStatus",
    "Ring",
    "RingFull",
    "RingLayoutError",
    "Segment",
    "StatusBoard",
    "TickerBusy",
    "TickerIndex",
    "TickerSnapshot",
    "TickerTable",
    "price_to_units",
    "size_to_units",
    "units_to_price",
    "units_to_size",
    "unlink_doorbell_quietly",
    "unlink_quietly",
    "wait_any",
    "wait_any_async",
]
