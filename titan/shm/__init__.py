"""Shared memory: SPSC rings, doorbells, the ticker table and the status board.

The supervisor creates (and at shutdown unlinks) every object; other processes attach by name and
only ``close()``. See each module's docstring for layout, ordering and crash semantics.
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
