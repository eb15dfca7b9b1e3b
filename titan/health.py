"""Health facts on the status board: which counter cell of which process means what.

Every process owns one row of the shared-memory :class:`~titan.shm.board.StatusBoard` (created by
the supervisor with :data:`BOARD_COUNTERS` counters per row) and is its row's only writer. This
module is the convention all processes share, so the supervisor can serve ``/health``,
``/metrics`` and ``titan top`` by reading the board at scrape time, with nothing on the hot path
but a local increment:

- cells ``0 .. SCALARS-1``: per-role scalars, named below (:data:`INGRESS_SLOTS`, :data:`CORE_SLOTS`,
  :data:`GATEWAY_SLOTS`, :data:`BRIDGE_SLOTS`, :data:`MARKETDATA_SLOTS`, :data:`SUPERVISOR_SLOTS`);
- cells ``HIST_BASE ..``: up to :data:`HIST_SLOTS` latency histograms of :data:`HIST_WORDS` words each
  (cumulative-free bucket counts for :data:`BUCKETS_US`, then +Inf, sum in µs, count);
- cells ``REASON_BASE ..``: core's denials/rejections per :class:`~titan.risk.reasons.ReasonCode`.

Writers: :class:`CounterWriter` sets absolute values (gauges) or adds (counters) through the board's
``incr`` (one aligned 8-byte store per changed cell); :class:`LatencyRecorder` keeps histograms in
process-local lists (one ``bisect`` and one list increment per sample, ~0.3 µs) and copies them to
the board on :meth:`LatencyRecorder.flush`, called on the process's heartbeat tick.

**Supervisor halt** (for the core developer): the supervisor has its own row, named
:data:`SUPERVISOR`. When a child crash-loops past ``supervisor.crash_loop_max_restarts`` the
supervisor sets cell ``SUPERVISOR_SLOTS["halt"]`` to 1 and ``SUPERVISOR_SLOTS["halt_proc"]`` to the
1-based board index of the process that looped. Core should treat ``supervisor_halt(board)`` being
truthy as a HARD halt (deny every new intent with ``SYSTEM_HALTED``) until the engine is restarted.
"""

from __future__ import annotations

from bisect import bisect_left as _bisect_left
from collections.abc import Sequence
from typing import Final

from titan.messages import Stages
from titan.risk.reasons import ReasonCode
from titan.shm.board import StatusBoard

SUPERVISOR: Final = "supervisor"

BOARD_COUNTERS: Final = 256
SCALARS: Final = 32
BUCKETS_US: Final[tuple[int, ...]] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
)
HIST_WORDS: Final = len(BUCKETS_US) + 3  # buckets, +Inf, sum_us, count
HIST_BASE: Final = SCALARS
HIST_SLOTS: Final = 8
REASON_BASE: Final = HIST_BASE + HIST_SLOTS * HIST_WORDS  # 184
REASON_CODES: Final[tuple[str, ...]] = tuple(c.value for c in ReasonCode)
assert REASON_BASE + len(REASON_CODES) <= BOARD_COUNTERS

# --- scalar cells per role -------------------------------------------------------------------

# Ingress: the FastPath server counters of fastpath.md §11, in titan.procs.ingress.COUNTER_NAMES order.
INGRESS_SLOTS: Final[dict[str, int]] = {
    "messagesReceived": 0,
    "messagesProcessed": 1,
    "messagesFailed": 2,
    "invalidSignatures": 3,
    "replaysRejected": 4,
    "activeConnections": 5,
    "busyReplies": 6,
    "notReadyReplies": 7,
    "slowReaderCloses": 8,
    "accepting": 9,  # 1 while the socket takes new connections (0 while draining)
}
CORE_SLOTS: Final[dict[str, int]] = {
    "armed": 0,  # 1 armed, 0 disarmed
    "halt": 1,  # 0 open, 1 soft halt, 2 hard halt
    "risk_state": 2,  # 0 Normal, 1 Cautious, 2 Defensive, 3 Emergency (titan_execution_risk_state)
    "open_orders": 3,
    "prepared": 4,  # prepared intents waiting for CONFIRM
    "intents_total": 5,  # intents accepted (counter)
    "replies_total": 6,
    "positions": 7,  # symbols with a non-zero position
    "accepting": 8,  # 1 when core takes intents (replayed and reconciled)
    "drift_events": 9,  # drift events published (counter; risk-and-state.md §16)
    "conflicting_fills": 10,  # conflicting duplicate fills dropped (counter; R5)
    # 16 + k: 1 while venue k (order of Layout.venues) is ready, 24 + k: 1 while it reconciles.
}
CORE_VENUE_READY_BASE: Final = 16
CORE_VENUE_RECONCILING_BASE: Final = 24
GATEWAY_SLOTS: Final[dict[str, int]] = {
    "session_up": 0,
    "private_stream_up": 1,
    "limited_until_ms": 2,  # wall-clock epoch ms until which the venue is rate-limited / cooling down
    "reconciling": 3,
    "orders_sent": 4,
    "filled": 5,
    "rejected": 6,
    "unknown": 7,
    "canceled": 8,
    "conflicting_fills": 9,  # duplicates of a reported trade id with another quantity, dropped (R5)
}
ORDER_OUTCOMES: Final = ("filled", "rejected", "unknown", "canceled")
# Bridge: defined by titan/procs/bridge.py (its module docstring); mirrored here for the readers.
BRIDGE_SLOTS: Final[dict[str, int]] = {
    "nats_connected": 0,
    "spool_records": 1,
    "spool_bytes": 2,
    "spool_full": 3,
    "events_published": 4,
    "events_spooled": 5,
    "intents_forwarded": 6,
    "intents_acked": 7,
    "intents_refused": 8,
    "invalid_intents": 9,
    "operator_forwarded": 10,
    "operator_rejected": 11,
    "nats_reconnects": 12,
    "publish_retries": 13,
    "heartbeats": 14,
    "rpc_replies": 15,
    "permission_errors": 16,
    "events_denied": 17,
}
# Marketdata: cell k is 1 while venue MARKETDATA_VENUES[k] is connected; updates_total after them.
MARKETDATA_VENUES: Final = ("sim", "bybit", "binance", "mexc")
MARKETDATA_SLOTS: Final[dict[str, int]] = {
    **{f"connected.{v}": k for k, v in enumerate(MARKETDATA_VENUES)},
    "updates_total": 8,
}
SUPERVISOR_SLOTS: Final[dict[str, int]] = {
    "halt": 0,  # 1: crash-loop halt, trading must stop (see module docstring)
    "halt_proc": 1,  # 1-based board index of the process that crash-looped
    "draining": 2,  # 1 during a graceful stop
}

# --- histograms ------------------------------------------------------------------------------

# Histogram slots per role. Ingress records every FastPath round trip from its stamps (Stages).
INGRESS_HISTOGRAMS: Final = ("total", "ingress", "core", "gateway", "ring")
GATEWAY_HISTOGRAMS: Final = ("venue",)
BRIDGE_HISTOGRAMS: Final = ("bridge",)
HISTOGRAMS_BY_ROLE: Final[dict[str, tuple[str, ...]]] = {
    "ingress": INGRESS_HISTOGRAMS,
    "gateway": GATEWAY_HISTOGRAMS,
    "bridge": BRIDGE_HISTOGRAMS,
}


def role_of(proc: str) -> str:
    """``gateway.bybit`` → ``gateway``; other names are their role."""
    return proc.split(".", 1)[0]


def hist_offset(slot: int) -> int:
    if not 0 <= slot < HIST_SLOTS:
        raise IndexError(f"histogram slot {slot} out of range 0..{HIST_SLOTS - 1}")
    return HIST_BASE + slot * HIST_WORDS


class CounterWriter:
    """One process's writer for its own row: absolute ``set`` for gauges, ``add`` for counters.

    It mirrors the row locally (read once at start, so a restarted process continues its
    counters), and writes only cells that changed.
    """

    def __init__(self, board: StatusBoard, proc: str) -> None:
        self.board = board
        self.proc = proc
        self.values = list(board.read(proc).counters)

    def set(self, cell: int, value: int) -> None:
        delta = value - self.values[cell]
        if delta:
            self.board.incr(self.proc, cell, delta)
            self.values[cell] = value

    def add(self, cell: int, n: int = 1) -> None:
        if n:
            self.board.incr(self.proc, cell, n)
            self.values[cell] += n


class LatencyRecorder:
    """Process-local latency histograms, copied to the board in batches (:meth:`flush`)."""

    __slots__ = ("_bounds", "_counts", "_names", "_writer")

    def __init__(self, writer: CounterWriter, names: Sequence[str]) -> None:
        if len(names) > HIST_SLOTS:
            raise ValueError(f"at most {HIST_SLOTS} histograms per process")
        self._writer = writer
        self._names = tuple(names)
        self._bounds = BUCKETS_US
        # Continue from what the board holds (a restarted process keeps its counts).
        self._counts = [
            writer.values[hist_offset(k) : hist_offset(k) + HIST_WORDS] for k in range(len(names))
        ]

    def observe(self, slot: int, value_us: int) -> None:
        """Record one sample (µs, clamped at 0) into histogram ``slot``; local only."""
        if value_us < 0:
            value_us = 0
        c = self._counts[slot]
        c[_bisect_left(self._bounds, value_us)] += 1
        c[-2] += value_us
        c[-1] += 1

    def flush(self) -> None:
        """Copy changed cells to the board (a few stores; call on the heartbeat tick)."""
        w = self._writer
        for k, counts in enumerate(self._counts):
            base = hist_offset(k)
            for j, v in enumerate(counts):
                w.set(base + j, v)


class Histogram:
    """A histogram as read back from the board: per-bucket counts (non-cumulative), sum, count."""

    __slots__ = ("buckets", "count", "sum_us")

    def __init__(self, buckets: list[int], sum_us: int, count: int) -> None:
        self.buckets = buckets
        self.sum_us = sum_us
        self.count = count

    @classmethod
    def from_counters(cls, counters: Sequence[int], slot: int) -> Histogram:
        base = hist_offset(slot)
        words = list(counters[base : base + HIST_WORDS])
        return cls(words[: len(BUCKETS_US) + 1], words[-2], words[-1])

    def merge(self, other: Histogram) -> Histogram:
        return Histogram(
            [a + b for a, b in zip(self.buckets, other.buckets, strict=True)],
            self.sum_us + other.sum_us,
            self.count + other.count,
        )

    def minus(self, older: Histogram) -> Histogram:
        """Samples recorded since ``older`` (for a rate window in ``titan top``)."""
        return Histogram(
            [max(0, a - b) for a, b in zip(self.buckets, older.buckets, strict=True)],
            max(0, self.sum_us - older.sum_us),
            max(0, self.count - older.count),
        )

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus ``le`` buckets: (upper bound, cumulative count), ending with +Inf."""
        out: list[tuple[str, int]] = []
        acc = 0
        for bound, n in zip([*map(str, BUCKETS_US), "+Inf"], self.buckets, strict=True):
            acc += n
            out.append((bound, acc))
        return out

    def quantile(self, q: float) -> float | None:
        """Upper bound (µs) of the bucket holding quantile ``q``; None without samples."""
        total = sum(self.buckets)
        if total == 0:
            return None
        rank = q * total
        acc = 0
        for k, n in enumerate(self.buckets):
            acc += n
            if acc >= rank and n:
                return float(BUCKETS_US[k]) if k < len(BUCKETS_US) else float("inf")
        return float("inf")


def reason_cell(code: str) -> int | None:
    """Core's counter cell for a reason code (None for a code outside the closed set)."""
    try:
        return REASON_BASE + REASON_CODES.index(code)
    except ValueError:
        return None


def supervisor_halt(board: StatusBoard) -> str:
    """Why the supervisor halted trading ("" when it did not). Core polls this on its tick."""
    if SUPERVISOR not in board.names():
        return ""
    c = board.read(SUPERVISOR).counters
    if not c[SUPERVISOR_SLOTS["halt"]]:
        return ""
    names = board.names()
    k = c[SUPERVISOR_SLOTS["halt_proc"]] - 1
    proc = names[k] if 0 <= k < len(names) else "?"
    return f"crash loop: {proc} restarted too often; trading halted by the supervisor"


def stage_latencies_us(st: Stages, t_write_ns: int) -> tuple[int, int, int, int, int]:
    """(total, ingress, core, gateway, ring) in µs from one reply's stamps; -1 where a stage was not passed.

    ``ring`` is the time spent waiting on rings and doorbells between processes (wake-ups).
    """
    if not st.t_read:
        return (-1, -1, -1, -1, -1)
    total = (t_write_ns - st.t_read) // 1000
    ingress = (st.t_ring - st.t_read) // 1000 if st.t_ring else -1
    core = gateway = ring = -1
    if st.t_core_in and st.t_core_out:
        if st.t_order_out and st.t_report_in:
            core = (st.t_order_out - st.t_core_in + st.t_core_out - st.t_report_in) // 1000
        else:
            core = (st.t_core_out - st.t_core_in) // 1000
        ring = (st.t_core_in - st.t_ring) if st.t_ring else 0
        if st.t_order_out and st.t_gw_in and st.t_gw_out and st.t_report_in:
            ring += (st.t_gw_in - st.t_order_out) + (st.t_report_in - st.t_gw_out)
        ring = (ring + max(0, t_write_ns - st.t_core_out)) // 1000
    if st.t_gw_in and st.t_gw_out:
        gateway = (st.t_gw_out - st.t_gw_in) // 1000
    return (total, ingress, core, gateway, ring)


MAX_REPLIES_PER_FLUSH: Final = 1024  # past this many replies per tick (50 ms), the histograms sample evenly


def record_replies(recorder: LatencyRecorder, batches: list[tuple[int, list[Stages]]]) -> int:
    """Ingress: record the stage latencies of replies written at ``t_write_ns``; returns samples taken.

    Ingress appends ``(t_write_ns, [stages, ...])`` per written batch (one list append on the reply
    path) and calls this on its tick, so the histogram arithmetic stays off the reply path. Above
    :data:`MAX_REPLIES_PER_FLUSH` replies in one tick every k-th reply is recorded (a uniform sample),
    bounding the cost per tick (measured ~6 µs per reply on this loaded 2-core machine).
    """
    total_replies = sum(len(stages) for _, stages in batches)
    stride = max(1, -(-total_replies // MAX_REPLIES_PER_FLUSH))
    n = 0
    observe = recorder.observe
    k = 0
    for t_write, stages in batches:
        for st in stages:
            k += 1
            if k % stride:
                continue
            for slot, value in enumerate(stage_latencies_us(st, t_write)):
                if value >= 0:
                    observe(slot, value)
            n += 1
    return n
