"""Fault-injection switches of one simulated venue (venues.md §8), settable in-process or over ``/_admin``."""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

import msgspec


class Faults(msgspec.Struct, kw_only=True):
    latency_ms: int = 0  # added before every REST response
    timeout_next_orders: int = 0  # accept the order, then withhold the response for hold_ms
    hold_ms: int = 30_000
    drop_next_orders: int = 0  # accept the order, then cut the TCP connection without answering
    unknown_5xx_next_orders: int = 0  # answer the venue's HTTP 5xx "unknown status"
    unknown_5xx_executes: bool = True  # ... and whether the order was really placed behind it
    duplicate_fills: bool = False  # every fill pushed twice on the private stream
    replay_fills_on_connect: bool = False  # a (re)authenticated private stream first gets past fills again
    replay_fills_qty_factor: Decimal | None = None  # ... with each quantity times this: conflicting (R5)
    reorder_pushes: bool = False  # private messages of one order pushed in reverse order
    fill_before_ack: bool = False  # private order/fill pushes sent before the REST response
    frozen_symbols: list[str] = msgspec.field(default_factory=list)  # canonical; socket stays open
    silent_subscriptions: bool = False  # subscriptions acknowledged, then never served
    clock_skew_ms: int = 0  # venue clock = local clock + skew
    rate_limit_storm: bool = False  # every request rate-limited; then a ban (418 / 403) after a few
    storm_retry_after_s: int = 1
    partial_fill_ratio: Decimal | None = None  # next limit orders fill this fraction, the rest is held
    cancel_after_partial: bool = False  # ... and the venue cancels the rest at once
    fill_delay_ms: int | None = None  # overrides SimConfig.fill_delay_ms


def patch_faults(current: Faults, patch: dict[str, Any]) -> Faults:
    """A new Faults with ``patch`` applied; unknown fields raise ``msgspec.ValidationError``."""
    unknown = set(patch) - set(Faults.__struct_fields__)
    if unknown:
        raise msgspec.ValidationError(f"unknown fault switches: {sorted(unknown)}")
    merged: dict[str, Any] = msgspec.to_builtins(current)
    merged.update(patch)
    return msgspec.convert(merged, Faults, strict=False)


def scale_fill_qty(frame: bytes, keys: frozenset[str], factor: Decimal) -> bytes:
    """A fill push whose quantity fields (``keys``, at any depth) are multiplied by ``factor``: the same
    trade id with another quantity, a conflicting duplicate (fault ``replay_fills_qty_factor``, R5)."""

    def scale(value: Any) -> Any:
        if isinstance(value, str):
            return str(Decimal(value) * factor)
        if isinstance(value, int):
            return int(value * factor)
        if isinstance(value, float):
            return float(Decimal(str(value)) * factor)
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: scale(v) if k in keys else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return msgspec.json.encode(walk(msgspec.json.decode(frame)))


class RollingWindow:
    """Counts events in a rolling window of ``window_ms``; ``hit`` records one if under the limit."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._times: deque[int] = deque()

    def _expire(self, now_ms: int) -> None:
        while self._times and self._times[0] <= now_ms - self.window_ms:
            self._times.popleft()

    def hit(self, now_ms: int, weight: int = 1) -> bool:
        self._expire(now_ms)
        if len(self._times) + weight > self.limit:
            return False
        self._times.extend([now_ms] * weight)
        return True

    def used(self, now_ms: int) -> int:
        self._expire(now_ms)
        return len(self._times)

    def reset_at_ms(self, now_ms: int) -> int:
        self._expire(now_ms)
        return (self._times[0] + self.window_ms) if self._times else now_ms
