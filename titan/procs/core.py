"""`core`: the single writer of trading state.

One thread owns all state: read command, bridge and report rings, run the sans-I/O
:class:`~titan.engine.engine.Engine`, push replies, orders and typed events. Work goes in batches
(:func:`take`: what is waiting, at most BATCH messages or BATCH_NS of work; a lone message is a batch
of one, flushed at once): the engine runs on each message while its outputs queue in the outbox;
then the batch's records reach the OS in one ``write`` (:class:`BufferedJournal`), then its outputs
are pushed with one wake-up per output ring, then the mark is stored, and only then are the input
messages consumed (ring cursors advanced). A core killed mid-batch sees the batch's messages again
when restarted (journal dedupe absorbs the repeats).

The bridge sends a message larger than a ring slot (a signed NATS intent with its multi-KiB original
envelope, a big risk policy) as consecutive :class:`~titan.messages.ArrayFragment`s. core takes such
a message only once all its pieces are on the ring, joins them in place and hands the whole message
to the engine as one message of the batch (:class:`BridgeInput`); the ring is advanced through its
last piece with the rest of the batch. A core killed between two pieces, or before the batch was
pushed, reads the whole sequence again when restarted: nothing is lost for lack of a piece.

Nothing is pushed before the records it follows are written (:meth:`RingOutbox.flush` writes the
journal first). After a batch's outputs are all in their rings, core stores the journal sequence
number they cover in a small mapped file (:class:`PushedMark`).
A core killed after journaling but before pushing (a fill journaled, its event not yet out) finds
records past the mark on restart and sends their outputs again (:meth:`Engine.resume`); receivers
deduplicate them (client order ids, deterministic Nats-Msg-Id), so nothing is lost or doubled.

Start: replay the journal, adopt the flag files (``execution.armed``, ``system.halt`` in the run
directory), reconcile every venue, and only then mark the process READY (ingress answers
``ENGINE_NOT_READY`` until then). The journal is written through on every record; a helper thread
fsyncs it on a short timer (``os.fsync`` releases the GIL), so the hot path never waits on the disk.
Core never blocks on a full output ring: overflow waits in a local queue and new commands wait
(reports keep flowing, so a gateway and core can never deadlock).
"""

from __future__ import annotations

import gc
import logging
import mmap
import os
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from titan.engine.engine import Engine
from titan.engine.ports import Quote, SystemClock
from titan.engine.settings import settings_from_config
from titan.events.payloads import EVENT
from titan.health import (
    CORE_SLOTS,
    CORE_VENUE_READY_BASE,
    CORE_VENUE_RECONCILING_BASE,
    CounterWriter,
    reason_cell,
    supervisor_halt,
)
from titan.messages import (
    BRIDGE_TO_CORE,
    GATEWAY_TO_CORE,
    INGRESS_TO_CORE,
    ArrayFragment,
    CancelRequest,
    IntakeDone,
    OrderRequest,
    ReconcileRequest,
    Reply,
    decoder,
    encoder,
)
from titan.procs.common import BRIDGE, CORE, INGRESS, ChildContext, gateway_name
from titan.risk.state import ARMED_FILE, HALT_FILE, HaltMode, HaltState, parse_halt_file, render_halt_file
from titan.shm.board import ProcState
from titan.shm.doorbell import Doorbell, wait_any
from titan.shm.fragment import gather, split
from titan.shm.ring import Ring
from titan.shm.ticker import TickerIndex, TickerSnapshot, TickerTable, units_to_price, units_to_size
from titan.state.journal import BufferedJournal, JournalWriter
from titan.state.records import JournalEntry

JOURNAL_NAME = "core.journal"
PUSHED_NAME = "core.pushed"
BATCH = 32  # messages per batch at most (all input rings together)
BATCH_NS = 1_000_000  # and no message starts a batch's work after this long: replies wait for its end
STUCK_RETRY_NS = 200_000  # first retry of outputs waiting for room in a ring (no doorbell says "room")
STUCK_RETRY_MAX_NS = 2_000_000  # at most this long between retries (reports wake core anyway)


class TableQuotes:
    """Engine quotes read from the shared-memory ticker table."""

    def __init__(self, table: TickerTable, index: TickerIndex) -> None:
        self.table = table
        self.index = index
        # Last conversion per row: an unchanged row (same snapshot) reuses its Quote (5 Decimals).
        self._last: dict[int, tuple[TickerSnapshot, Quote]] = {}

    def get(self, venue: str, symbol: str) -> Quote | None:
        row = self.index.row(venue, symbol)
        if row is None:
            return None
        snap = self.table.read(row)
        if snap is None or snap.bid <= 0 or snap.ask <= 0:
            return None
        last = self._last.get(row)
        if last is not None and last[0] == snap:
            return last[1]
        quote = Quote(
            bid=units_to_price(snap.bid),
            ask=units_to_price(snap.ask),
            receive_mono_ns=snap.recv_mono_ns,
            bid_size=units_to_size(snap.bid_size),
            ask_size=units_to_size(snap.ask_size),
            mark=units_to_price(snap.mark) if snap.mark > 0 else None,
            exchange_ts_ms=snap.exchange_ts_ms,
        )
        self._last[row] = (snap, quote)
        return quote


_FRAGMENT_ENCODE = encoder().encode


class OutRing:
    """A producer end with a local queue: never drops, never blocks core.

    :meth:`put` only queues; :meth:`flush` pushes what the ring has room for (the rest waits for the
    next flush) and rings the consumer once.

    A ``lazy`` ring (the event ring: nothing waits on it) rings its consumer only when core goes
    idle (:meth:`wake`), when LAZY_DEPTH messages wait, or LAZY_NS after the last wake-up — so the
    bridge does not take a core away from the order path in the middle of an intent. A wake-up
    costs tens of µs on this 2-core VM (a FIFO write that schedules another process).
    """

    LAZY_DEPTH = 256
    LAZY_NS = 2_000_000

    def __init__(self, ring: Ring, bell: Doorbell, lazy: bool = False) -> None:
        self.ring = ring
        self.bell = bell
        self.backlog: deque[bytes] = deque()
        self.dirty = False
        self.lazy = lazy
        self.last_wake_ns = 0

    def put(self, data: bytes) -> None:
        if len(data) > self.ring.max_payload:  # rare (a large truth snapshot): send it in pieces
            for piece in split(data, self.ring.max_payload, _FRAGMENT_ENCODE):
                self.put(piece)
            return
        self.backlog.append(data)

    def flush(self) -> None:
        backlog, push = self.backlog, self.ring.try_push
        while backlog and push(backlog[0]):
            backlog.popleft()
            self.dirty = True
        if not self.dirty:
            return
        if (
            self.lazy
            and not self.backlog
            and self.ring.depth() < self.LAZY_DEPTH
            and time.monotonic_ns() - self.last_wake_ns < self.LAZY_NS
        ):
            return  # the bridge is woken when core goes idle (or soon)
        self.wake()

    def wake(self) -> None:
        """Ring the consumer if something was pushed since the last wake-up."""
        if self.dirty:
            self.dirty = False
            self.last_wake_ns = time.monotonic_ns()
            self.bell.ring()


class RingOutbox:
    """The engine's outbox over core's output rings: outputs queue until :meth:`flush`, which writes
    the journal before it pushes anything."""

    def __init__(self, ctx: ChildContext, journal: SyncingJournal) -> None:
        self.journal = journal
        self.enc = encoder().encode
        self.replies = OutRing(ctx.ring_out(INGRESS), ctx.bell(INGRESS))
        self.events = OutRing(ctx.ring_out(BRIDGE), ctx.bell(BRIDGE), lazy=True)
        self.orders = {
            v: OutRing(ctx.ring_out(gateway_name(v)), ctx.bell(gateway_name(v))) for v in ctx.layout.venues
        }
        self.order_rings = list(self.orders.values())
        self.all = [*self.order_rings, self.replies, self.events]
        self.mono = time.monotonic_ns
        self.pending_replies: list[Reply] = []  # encoded at flush, stamped t_core_out then

    def reply(self, reply: Reply) -> None:
        self.pending_replies.append(reply)

    def order(self, venue: str, msg: OrderRequest | CancelRequest | ReconcileRequest) -> None:
        self.orders[venue].put(self.enc(msg))

    def event(self, event: EVENT | IntakeDone) -> None:
        self.events.put(self.enc(event))

    def flush(self) -> bool:
        """Write the journal, then push what is queued; True when nothing is left waiting.

        Orders go first: a gateway starts on its order while core encodes and pushes the replies.
        """
        self.journal.write()
        idle = True
        for o in self.order_rings:
            o.flush()
            if o.backlog:
                idle = False
        replies = self.pending_replies
        if replies:
            now, enc, put = self.mono(), self.enc, self.replies.put
            for reply in replies:
                reply.stages.t_core_out = now
                put(enc(reply))
            replies.clear()
        for o in (self.replies, self.events):
            o.flush()
            if o.backlog:
                idle = False
        return idle

    def stuck(self) -> bool:
        """Something waits for room in an output ring."""
        return any(o.backlog for o in self.all)


class StateDirFlags:
    """``execution.armed`` (present iff armed; content = reason) and ``system.halt`` (JSON; absent = open)."""

    def __init__(self, run_dir: Path, journal: SyncingJournal | None = None) -> None:
        self.armed_path = run_dir / ARMED_FILE
        self.halt_path = run_dir / HALT_FILE
        self.journal = journal

    def load(self) -> tuple[bool, HaltState | None]:
        halt = parse_halt_file(self.halt_path.read_bytes()) if self.halt_path.exists() else None
        return self.armed_path.exists(), halt

    def save(self, armed: bool, armed_reason: str, halt: HaltState) -> None:
        if self.journal is not None:
            self.journal.write()  # the RiskRecord before the files that mirror it
        if armed:
            _atomic_write(self.armed_path, armed_reason.encode())
        else:
            self.armed_path.unlink(missing_ok=True)
        if halt.state is HaltMode.OPEN:
            self.halt_path.unlink(missing_ok=True)
        else:
            _atomic_write(self.halt_path, render_halt_file(halt))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class GroupSync(threading.Thread):
    """fsyncs the journal every ``interval`` while it has unsynced appends (off core's hot path)."""

    def __init__(self, journal: JournalWriter, interval_s: float) -> None:
        super().__init__(name="journal-fsync", daemon=True)
        self.journal = journal
        self.interval_s = interval_s
        self.written = 0  # appended sequence (core thread writes it)
        self.synced = 0  # fsynced up to here (this thread writes it)
        self.stop_flag = threading.Event()

    def run(self) -> None:
        fd = self.journal.fileno()
        while not self.stop_flag.wait(self.interval_s):
            target = self.written
            if target > self.synced:
                os.fsync(fd)
                self.synced = target


class SyncingJournal(BufferedJournal):
    """The engine's journal port: batched writes through the writer, :class:`GroupSync` fsyncs."""

    def __init__(self, writer: JournalWriter, sync: GroupSync) -> None:
        super().__init__(writer)
        self.sync = sync

    def write(self) -> int:
        seq = super().write()
        self.writer.mark_synced()  # the writer's own timer is unused: GroupSync owns fsync
        self.sync.written = seq
        return seq


class PushedMark:
    """The journal sequence number whose outputs are all in core's output rings, in a mapped file.

    A store is a memory write (no system call); the page cache keeps it across a killed process.
    """

    _FORMAT: Final = struct.Struct("<Q")

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < self._FORMAT.size:
                os.ftruncate(fd, self._FORMAT.size)
            self._map = mmap.mmap(fd, self._FORMAT.size)
        finally:
            os.close(fd)
        self.seq = self._FORMAT.unpack_from(self._map)[0]

    def store(self, seq: int) -> None:
        if seq != self.seq:
            self.seq = seq
            self._FORMAT.pack_into(self._map, 0, seq)

    def close(self) -> None:
        self._map.close()


def split_at_mark(entries: list[JournalEntry], mark: int) -> tuple[list[JournalEntry], list[JournalEntry]]:
    """Entries whose outputs were pushed (seq ≤ mark) and the tail to :meth:`Engine.resume`.

    A mark beyond the journal (a journal truncated by hand) pushes nothing again.
    """
    k = len(entries)
    while k > 0 and entries[k - 1].seq > mark:
        k -= 1
    return entries[:k], entries[k:]


class BoardPublisher:
    """core's health facts on its status-board row (titan.health.CORE_SLOTS)."""

    def __init__(self, ctx: ChildContext, engine: Engine) -> None:
        self.w = CounterWriter(ctx.board, CORE)
        self.engine = engine
        self.venues = ctx.layout.venues
        self.reported: dict[str, int] = {}

    def publish(self) -> None:
        e, w = self.engine, self.w
        now_ms = e.clock.wall_ms()
        w.set(CORE_SLOTS["armed"], int(e.control.armed))
        w.set(CORE_SLOTS["halt"], {HaltMode.OPEN: 0, HaltMode.SOFT: 1, HaltMode.HARD: 2}[e.halt_mode])
        w.set(CORE_SLOTS["risk_state"], int(e.control.effective_state(now_ms)))
        w.set(CORE_SLOTS["open_orders"], sum(1 for leg in e.state.legs.values() if not leg.fsm.terminal))
        w.set(CORE_SLOTS["prepared"], len(e.prepared))
        w.set(CORE_SLOTS["positions"], len(e.state.shadow.symbol_positions()))
        w.set(CORE_SLOTS["accepting"], int(e.ready))
        w.add(CORE_SLOTS["intents_total"], e.counters.intents_accepted - self.reported.get("intents", 0))
        w.add(CORE_SLOTS["replies_total"], e.counters.replies - self.reported.get("replies", 0))
        self.reported["intents"] = e.counters.intents_accepted
        self.reported["replies"] = e.counters.replies
        w.add(CORE_SLOTS["drift_events"], e.counters.drift_events - self.reported.get("drift", 0))
        conflicts = e.counters.conflicting_fills
        w.add(CORE_SLOTS["conflicting_fills"], conflicts - self.reported.get("conflicts", 0))
        self.reported["drift"] = e.counters.drift_events
        self.reported["conflicts"] = conflicts
        for k, venue in enumerate(self.venues[:8]):
            w.set(CORE_VENUE_READY_BASE + k, int(venue in e.reconciled_once and venue not in e.reconciling))
            w.set(CORE_VENUE_RECONCILING_BASE + k, int(venue in e.reconciling))
        for code, n in e.counters.denials.items():
            cell = reason_cell(code)
            key = f"deny:{code}"
            if cell is not None and n != self.reported.get(key, 0):
                w.add(cell, n - self.reported.get(key, 0))
                self.reported[key] = n


def done(journal: SyncingJournal, out: RingOutbox, mark: PushedMark) -> bool:
    """After a batch: its records to the OS, its outputs to the rings, then the mark (only when
    nothing waits in a backlog: a backlog dies with the process). True when nothing is stuck."""
    if out.flush():
        mark.store(journal.written_seq)
        return True
    return False


def take(
    ring: Ring, handle: Callable[[Any], object], decode: Callable[[memoryview], Any], room: int, end_ns: int
) -> int:
    """Run ``handle`` on up to ``room`` waiting messages of ``ring`` without consuming them (the
    caller advances the ring after the batch is journaled and pushed); stops once the monotonic clock
    passes ``end_ns``. Returns how many were handled."""
    k = 0
    peek = ring.peek_at
    mono = time.monotonic_ns
    while k < room:
        view = peek(k)
        if view is None:
            break
        handle(decode(view))
        k += 1
        if mono() >= end_ns:
            break
    return k


class BridgeInput:
    """The bridge's ring, whose large messages come in :class:`~titan.messages.ArrayFragment`s.

    Design: a fragmented message is taken whole or not at all. :meth:`take` hands it to the engine
    only when all its pieces are on the ring (:func:`~titan.shm.fragment.gather` reads them in
    place), counts it as one message of the batch whatever its number of pieces (so a sequence
    longer than the batch's room still goes through: no batch ends in the middle of one), and
    reports the ring slots it used so the caller advances through its last piece after the batch.
    While pieces are still to come, taking stops at the sequence's first piece (nothing behind it
    may overtake it) and the ring is advanced only through the complete messages before it. No
    state is kept between batches: a restarted core reads the same pieces again and joins them
    once. The bridge pushes a message's pieces under one lock with nothing in between, and never
    more pieces than the ring has slots (:func:`~titan.shm.fragment.fits`), so the rest always
    arrives; a sequence broken by a bridge killed between two pieces (then a new message after it)
    is dropped, logged and counted (the bridge had not ACKed that NATS message: it is redelivered).
    """

    def __init__(
        self, ring: Ring, decode: Callable[[bytes | memoryview], Any], log: logging.Logger | None = None
    ) -> None:
        self.ring = ring
        self.decode = decode
        self.decode_piece = decoder(ArrayFragment).decode
        self.log = log
        self.dropped = 0  # ring messages of broken sequences consumed without a message
        # The ring's producer cursor when the last take stopped at pieces still to come (else None):
        # while it has not moved, the ring's data is nothing core can take (see :meth:`waiting`).
        self.blocked_at: int | None = None

    def waiting(self) -> bool:
        """The ring holds only the first pieces of a message and nothing was pushed since: a core
        waiting for input must not count it as data (it would spin until the rest arrives)."""
        return self.blocked_at is not None and self.ring.head == self.blocked_at

    def take(self, handle: Callable[[Any], object], room: int, end_ns: int) -> tuple[int, int]:
        """Like :func:`take`: ``handle`` whole messages, at most ``room`` of them, without consuming
        them. Returns (messages handled or broken sequences dropped, ring slots they used)."""
        k = 0
        at = 0
        peek, decode = self.ring.peek_at, self.decode
        mono = time.monotonic_ns
        head = self.ring.head  # before peeking: a piece pushed after this read moves it
        self.blocked_at = None
        while k < room:
            view = peek(at)
            if view is None:
                break
            msg = decode(view)
            if isinstance(msg, ArrayFragment):
                whole, used = gather(peek, at, msg, self.decode_piece)
                if not used:  # its other pieces are on their way (the bridge rings core after them)
                    self.blocked_at = head
                    break
                at += used
                k += 1
                if whole is None:
                    self.dropped += used
                    if self.log is not None:
                        self.log.warning("bridge ring: %d pieces of a broken sequence dropped", used)
                    continue
                msg = decode(whole)
            else:
                at += 1
                k += 1
            handle(msg)
            if mono() >= end_ns:
                break
        return k, at


class GcWatch:
    """Durations of the cycle collector's runs in this process (longest per generation), via gc.callbacks."""

    def __init__(self) -> None:
        self.longest_ns = [0, 0, 0]
        self.runs = [0, 0, 0]
        self._started = 0
        self._clock = time.perf_counter_ns
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = self._clock()
            return
        generation = info["generation"]
        took = self._clock() - self._started
        self.runs[generation] += 1
        if took > self.longest_ns[generation]:
            self.longest_ns[generation] = took

    def take(self) -> str:
        """A summary since the last call (and reset)."""
        text = ", ".join(
            f"gen{g}: {self.runs[g]} runs, longest {self.longest_ns[g] / 1e6:.2f} ms" for g in range(3)
        )
        self.longest_ns, self.runs = [0, 0, 0], [0, 0, 0]
        return text

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)


def journal_path(run_dir: Path) -> Path:
    return run_dir / "journal" / JOURNAL_NAME


def main() -> None:
    ctx = ChildContext.from_env(CORE)
    log = ctx.log
    stop = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    settings = settings_from_config(ctx.cfg)
    run_dir = ctx.cfg.run_dir()
    jpath = journal_path(run_dir)
    jpath.parent.mkdir(parents=True, exist_ok=True)
    writer = JournalWriter(jpath)
    if writer.recovered.torn is not None:
        log.warning("journal: torn tail dropped at byte %d", writer.recovered.valid_bytes)
    sync = GroupSync(writer, settings.journal_fsync_ms / 1000)
    sync.written = sync.synced = writer.next_seq - 1
    sync.start()

    commands = [ctx.ring_in(INGRESS)]
    bridge_ring = ctx.ring_in(BRIDGE)
    bridge_in = [bridge_ring]
    reports = [ctx.ring_in(gateway_name(v)) for v in ctx.layout.venues]
    all_in = commands + bridge_in + reports
    all_but_bridge = commands + reports
    bell = ctx.bell()
    table, index = ctx.ticker()
    journal = SyncingJournal(writer, sync)
    out = RingOutbox(ctx, journal)
    flags = StateDirFlags(run_dir, journal)
    mark = PushedMark(jpath.with_name(PUSHED_NAME))
    engine = Engine(settings, SystemClock(), TableQuotes(table, index), out, journal, flags)
    engine.state.reserve()  # idempotency windows at full size now: resident memory stays flat
    t0 = time.monotonic()
    entries = writer.recovered.entries
    pushed, tail = split_at_mark(entries, mark.seq)
    n = engine.restore(pushed)
    resent = engine.resume(tail)
    armed, halt = flags.load()
    engine.start(armed, halt, first_start=n + resent == 0)
    journal.write()
    if out.flush():
        mark.store(journal.written_seq)
    log.info(
        "core: replayed %d journal records (outputs of the last %d sent again) in %.3f s; "
        "armed=%s halt=%s policy %s",
        n + resent,
        resent,
        time.monotonic() - t0,
        engine.control.armed,
        engine.halt_mode.value,
        engine.policy.policy_hash[:12],
    )
    del entries, pushed, tail
    writer.recovered = msgspec.structs.replace(writer.recovered, entries=[])  # replayed: free the memory
    board = BoardPublisher(ctx, engine)
    dec_cmd = decoder(INGRESS_TO_CORE).decode
    bridge_input = BridgeInput(bridge_ring, decoder(BRIDGE_TO_CORE).decode, log)
    dec_rep = decoder(GATEWAY_TO_CORE).decode
    spin_s = ctx.cfg.shm.spin_us / 1e6

    # Everything allocated so far lives for the whole process: keep it out of the collector's way.
    gc.collect()
    gc.freeze()
    gc_watch = GcWatch()
    mono = time.monotonic_ns
    next_gc_report = mono() + 60_000_000_000
    ready_published = False
    next_beat = 0
    exit_code = 0
    on_report, on_bridge, on_command = engine.on_report, engine.on_bridge, engine.on_command
    in_order = reports + bridge_in + commands  # the order a batch reads them
    taken = [0] * len(in_order)  # messages of this batch per input ring (advanced after the batch)
    stuck = False  # outputs wait for room in a ring: take no new commands until they are out
    retry_ns = STUCK_RETRY_NS  # how soon to try again while stuck (backs off while it lasts)
    while not stop:
        if stuck:
            stuck = not done(journal, out, mark)
        now = mono()
        end_ns = now + BATCH_NS
        room = BATCH
        i = 0
        for ring in reports:
            k = take(ring, on_report, dec_rep, room, end_ns) if room else 0
            taken[i] = k
            room -= k
            i += 1
        if room and not stuck:  # a fragmented message counts as one, its ring slots as taken
            k, taken[i] = bridge_input.take(on_bridge, room, end_ns)
            room -= k
        else:
            taken[i] = 0
        i += 1
        for ring in commands:
            k = take(ring, on_command, dec_cmd, room, end_ns) if room and not stuck else 0
            taken[i] = k
            room -= k
            i += 1
        busy = room < BATCH
        now = mono()
        deadline = engine.next_deadline_ns()
        if now >= deadline or now >= next_beat:
            engine.on_timer()
            busy_or_timer = True
        else:
            busy_or_timer = busy
        if busy_or_timer:
            stuck = not done(journal, out, mark)  # the batch's records, then its outputs, then the mark
            if busy:
                for ring, k in zip(in_order, taken, strict=True):  # only now: the batch is consumed
                    if k:
                        ring.advance(k)
        if now >= next_beat:
            engine.supervisor_halt = bool(supervisor_halt(ctx.board))
            board.publish()
            if engine.ready and not ready_published:
                ctx.set_state(ProcState.READY)
                ready_published = True
                log.info("core ready (armed=%s, halt=%s)", engine.control.armed, engine.halt_mode.value)
            ctx.beat()
            next_beat = now + 100_000_000
            if now >= next_gc_report:
                next_gc_report = now + 60_000_000_000
                log.info("collector pauses (last 60 s): %s", gc_watch.take())
            if engine.fatal:
                log.error("core cannot become ready: %s", engine.fatal)
                exit_code = 1
                break
        if busy:
            continue
        timeout_ns = min(next_beat, deadline) - now
        # Only the first pieces of a message are on the bridge's ring: wait on the other rings and
        # look again on the same schedule as for a stuck output (the doorbell the bridge rings after
        # the rest does not end a wait on the other rings; a bridge killed mid-message sends no rest).
        pieces_wait = bridge_input.waiting()
        if stuck or pieces_wait:  # retry soon, less often while it lasts
            timeout_ns = min(timeout_ns, retry_ns)
            retry_ns = min(retry_ns * 2, STUCK_RETRY_MAX_NS)
        else:
            retry_ns = STUCK_RETRY_NS
        out.events.wake()  # idle: now the bridge may have the CPU
        wait_any(all_but_bridge if pieces_wait else all_in, bell, max(timeout_ns, 0) / 1e9, spin_s)
    journal.write()
    if out.flush():
        mark.store(journal.written_seq)
    out.events.wake()
    mark.close()
    gc_watch.close()
    sync.stop_flag.set()
    sync.join(1.0)
    writer.close()
    ctx.set_state(ProcState.STOPPED)
    log.info("core stopped")
    ctx.close()
    if exit_code:
        raise SystemExit(exit_code)


if __name__ == "__main__":
    main()
