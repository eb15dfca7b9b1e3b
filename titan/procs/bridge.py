"""`bridge`: the engine's only NATS client (nats.md): JetStream events out, signed commands in.

Out: core's event ring (``Event`` as formatted by core, or a typed event of
:mod:`titan.events.payloads` formatted here) is drained into the disk spool at once — the trading
path never waits on NATS — and the spool is published in order, each record with its deterministic
``Nats-Msg-Id`` so a re-publish after a reconnect, a timeout or a crash is deduplicated by
JetStream. A record is handed to the OS (``Spool.write``) before the ring cursor moves past it, so a
killed bridge loses nothing (the ring is in shared memory, which a power loss erases as well, so the
fsync is grouped on a short timer). Spool records are committed only after their publish acks.
While NATS is away the spool grows (bounded by ``spool_max_bytes``); when it is full the ring is
simply not drained any further (core keeps the overflow, nothing is dropped) and the board says so.

CPU per event (bench/bridge_cpu.py): the ring is drained in batches (one spool write, one ring
advance), with a short linger while events keep coming (``EVENT_LINGER_S``); the publisher reads
what it just spooled from the spool's memory (the segment files only after a restart); fills and
order reports are formatted from their decimals' text (``payloads.text_union``); a batch goes to
nats-py's write buffer as one piece of protocol lines (:class:`_WireWriter`) and its PubAcks, on
one ack inbox of ours, are counted per batch (:meth:`Bridge._hook_acks`).

In: durable pull consumers of §8 (``EXECUTION_CORE`` or this instance's partition,
``RISK_ENFORCER``, ``OPERATOR_CONTROL``) fetched in batches. Place intents pass rows 3–7 of §5 here
(:meth:`IntentIntake.authenticate`); refused ones get their reject event / DLQ message spooled and
are ACKed; accepted ones go to core as :class:`PlaceIntent` and are ACKed only when core's
``IntakeDone(ref)`` arrives (after its journal has them). Operator and risk commands (§10) are
authenticated here and forwarded as :class:`OperatorCommand`; they are ACKed on ``IntakeDone(ref)``
or, if core does not answer operator commands, ``operator_ack_after_s`` after they reached the ring
(the ring survives a core restart). Heartbeats (§10.4) and risk-state events (§10.5) are core-NATS
subscriptions forwarded as ``HEARTBEAT`` / ``RISK_STATE`` commands; §11 request-reply is answered from
the latest truth snapshot and balance event core published (:mod:`titan.events.rpc`).

Messages larger than a ring slot: core → bridge ``Fragment``s are joined here; bridge → core ones
(a signed intent with its multi-KiB original envelope, a big policy) are split into
``ArrayFragment``s, pushed under one lock, which core joins and takes only once all are on its ring
(titan.shm.fragment). Only a message of more pieces than core's ring has slots cannot travel (core
would wait for pieces that never find room): a PlaceIntent then goes without its original envelope
(only core's DLQ payload uses it) and an operator command is refused with a ``COMMAND_TOO_LARGE``
reject event. With the default geometry (8192 slots of 1 KiB, ~7.8 MB) no NATS message reaches that.

Status board counters of the ``bridge`` row (``board.read("bridge").counters[i]``):

====  ======================  ==================================================================
 i    name                    meaning
====  ======================  ==================================================================
 0    nats_connected          gauge: 1 while connected to NATS
 1    spool_backlog_records   gauge: records in the spool not yet acknowledged by NATS
 2    spool_backlog_bytes     gauge: bytes of those records
 3    spool_full              gauge: 1 while the spool refuses records (the event ring backs up)
 4    events_published        counter: records acknowledged by JetStream (or sent on core NATS)
 5    events_spooled          counter: records appended to the spool
 6    intents_forwarded       counter: PlaceIntent pushed to core
 7    intents_acked           counter: place intents ACKed after core's IntakeDone
 8    intents_refused         counter: place intents refused here (§5 rows 3–7)
 9    invalid_intents         counter: this process's share of titan_execution_invalid_intents_total
 10   operator_forwarded      counter: operator/risk commands pushed to core
 11   operator_rejected       counter: operator_rejected_total (all reasons)
 12   nats_reconnects         counter: reconnections after a lost connection
 13   publish_retries         counter: publish batches re-sent after a timeout or disconnect
 14   heartbeats              counter: Brain heartbeats forwarded
 15   rpc_replies             counter: §11 requests answered
 16   permission_errors       counter: publishes/subscriptions the NATS server denied (§12, R38)
 17   events_denied           counter: spooled events not published: the server denies their subject
====  ======================  ==================================================================

Cells 16 and 17 exist only on a board with more than 16 cells per row (the supervisor's has 256).

Permission errors (nats.md §12, R38): the server answers a denied PUB or SUB with an asynchronous
``-ERR``; nats-py hands it to the error callback and keeps the connection. Each one is counted and
logged once per subject (reply subjects ``_INBOX.…`` and ``$JS.ACK.<stream>.<consumer>.…`` once per
pattern). A denied publish subject is remembered: its events are skipped (counted ``events_denied``)
instead of being re-sent forever — a JetStream publish the server drops never gets its ack, and
retrying it would hold up every event behind it in the spool. A batch waiting on acks is cut short
as soon as a denial arrives, so the events behind it wait one retry, not ``ack_timeout_s`` each.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import re
import signal
import ssl
import time
import typing
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from titan.config import Config, ConfigError, hmac_secret
from titan.events import streams, subjects
from titan.events.envelope import DEFAULT_KEY_ID, DEFAULT_TOLERANCE_S, EnvelopeVerifier
from titan.events.intake import Action, InboundMessage, IntentIntake
from titan.events.operator import OperatorCommand, OperatorIgnored, OperatorIntake, parse_risk_state_event
from titan.events.payloads import (
    DlqEvent,
    Publication,
    RejectEvent,
    publications,
    text_publications,
    text_union,
)
from titan.events.replay import ReplayCache
from titan.events.ring import to_operator_message, to_place_intent
from titan.events.rpc import EngineView
from titan.events.spool import Spool, SpooledRecord, SpoolPosition, decode_publication, encode_publication
from titan.messages import (
    CORE_TO_BRIDGE,
    ArrayFragment,
    Event,
    Fragment,
    IntakeDone,
    PlaceIntent,
    decoder,
    encoder,
)
from titan.messages import OperatorCommand as OperatorMessage
from titan.procs.common import BRIDGE, CORE, ChildContext
from titan.shm.board import ProcState, StatusBoard
from titan.shm.doorbell import wait_any_async
from titan.shm.fragment import Reassembler, fits, split

# --- status board counters (see the module docstring) ----------------------------------------------
NATS_CONNECTED = 0
SPOOL_RECORDS = 1
SPOOL_BYTES = 2
SPOOL_FULL = 3
EVENTS_PUBLISHED = 4
EVENTS_SPOOLED = 5
INTENTS_FORWARDED = 6
INTENTS_ACKED = 7
INTENTS_REFUSED = 8
INVALID_INTENTS = 9
OPERATOR_FORWARDED = 10
OPERATOR_REJECTED = 11
NATS_RECONNECTS = 12
PUBLISH_RETRIES = 13
HEARTBEATS = 14
RPC_REPLIES = 15
PERMISSION_ERRORS = 16
EVENTS_DENIED = 17
_PERMISSION_ERROR = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"')

MIB = 1024 * 1024
DRAIN_BATCH = 1024  # ring messages per drain before yielding to the loop
# After a drain that found events, wait before the next one: 1 ms, then 1 ms more after every drain
# that found events again, up to 3 ms under sustained load (bench/bridge_cpu at 10 000 events/s:
# ~37 µs per event with a flat 1 ms, ~32 with 3 ms; nats-server's share drops alike). An event
# waits at most that long; the first one after a quiet spell is drained at once (the bell).
EVENT_LINGER_S = 0.001
EVENT_LINGER_MAX_S = 0.003
SYNC_INTERVAL_S = 0.05  # grouped fsync of the spool (power loss only: a killed bridge loses nothing)
COMMIT_INTERVAL_S = 0.25  # spool head commits (fsyncs of the head file and the directory; a crash
# re-publishes at most this much, which JetStream deduplicates by Nats-Msg-Id)


class BridgeSettings(msgspec.Struct, kw_only=True):
    """Everything the bridge reads from the config (and the upstream environment variables)."""

    url: str = "nats://127.0.0.1:4222"
    user: str = ""
    password: str = ""
    token: str = ""
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_hostname: str = ""
    connect_timeout_s: float = 2.0
    producer: str = "titan-execution-rs"
    instance: str = "titan"
    account: str | None = None  # partition: consume only …place.v1.{venue}.{account}.*
    venue: str | None = None
    manage_streams: bool = False
    operator_auth: str = "required"
    hmac_keys: dict[str, str] = msgspec.field(default_factory=dict)
    tolerance_s: int = DEFAULT_TOLERANCE_S
    accept_serde_number_forms: bool = False
    spool_dir: str = "spool"
    spool_max_bytes: int = 256 * MIB
    spool_segment_bytes: int = 8 * MIB
    fetch_batch: int = 256
    publish_window: int = 512
    ack_timeout_s: float = 5.0
    operator_ack_after_s: float = 5.0
    venues: list[str] = msgspec.field(default_factory=lambda: ["paper"])


def settings_from(cfg: Config, env: Mapping[str, str] | None = None) -> BridgeSettings:
    """Bridge settings from the config's ``nats`` section, then the upstream env vars."""
    env = os.environ if env is None else env
    n = cfg.nats
    try:
        secret = hmac_secret(cfg)
    except ConfigError:
        secret = ""  # every signed message then fails "HMAC validation enabled but no secret configured"
    keys = {DEFAULT_KEY_ID: secret, **n.hmac_keys}
    tolerance = n.hmac_timestamp_tolerance_s or env.get("HMAC_TIMESTAMP_TOLERANCE")
    return BridgeSettings(
        url=n.url or env.get("NATS_URL") or "nats://127.0.0.1:4222",
        user=n.user,
        password=n.password,
        token=n.token,
        tls_ca_file=n.tls_ca_file,
        tls_cert_file=n.tls_cert_file,
        tls_key_file=n.tls_key_file,
        tls_hostname=n.tls_hostname,
        connect_timeout_s=n.connect_timeout_s,
        producer=n.producer,
        instance=cfg.engine.instance,
        account=n.account,
        venue=n.venue,
        manage_streams=n.manage_streams,
        operator_auth=n.operator_auth,
        hmac_keys=keys,
        tolerance_s=int(tolerance) if tolerance else DEFAULT_TOLERANCE_S,
        accept_serde_number_forms=n.accept_serde_number_forms,
        spool_dir=str(cfg.run_dir() / "spool"),
        spool_max_bytes=n.spool_max_bytes,
        venues=cfg.venues_enabled(),
    )


def tls_context(s: BridgeSettings) -> ssl.SSLContext | None:
    """TLS options passed through to nats-py (None: plain TCP unless the URL says ``tls://``)."""
    if not (s.tls_ca_file or s.tls_cert_file):
        return None
    ctx = ssl.create_default_context(cafile=s.tls_ca_file or None)
    if s.tls_cert_file:
        ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file or None)
    return ctx


def permission_denial(text: str) -> tuple[str, str] | None:
    """``(operation, subject)`` of a server permission error (``publish``/``subscription``), else None.

    nats-py lowercases the server's error text, so the subject comes back lowercased.
    """
    m = _PERMISSION_ERROR.search(text.lower())
    return (m.group(1), m.group(2)) if m else None


def denial_key(subject: str) -> str:
    """The subject a denial is logged under: reply subjects collapse to their pattern (not one per reply)."""
    if subject.startswith("_inbox."):
        return "_inbox.>"
    if subject.startswith("$js.ack."):
        tokens = subject.split(".")
        return ".".join(tokens[:4]) + ".>" if len(tokens) > 4 else subject
    return subject


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard match: ``*`` one token, ``>`` one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


class BoardCounters:
    """The bridge's row of counters; gauges are set by adding the difference (``incr`` only)."""

    def __init__(self, board: StatusBoard, proc: str) -> None:
        self.board = board
        self.proc = proc
        self.values = list(board.read(proc).counters)  # a restarted bridge continues from these

    def add(self, index: int, n: int = 1) -> None:
        if index >= len(self.values):
            return  # a small board (a test rig's 16 cells) has no room for the later cells
        self.board.incr(self.proc, index, n)
        self.values[index] += n

    def set(self, index: int, value: int) -> None:
        delta = value - self.values[index]
        if delta:
            self.add(index, delta)


class Bridge:
    def __init__(
        self,
        ctx: ChildContext,
        settings: BridgeSettings,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.ctx = ctx
        self.s = settings
        self.log = ctx.log
        self.clock_ms = clock_ms
        self.ring_in = ctx.ring_in(CORE)
        self.bell = ctx.bell()
        self.ring_out = ctx.ring_out(CORE)
        self.core_bell = ctx.bell(CORE)
        # Fills and order reports decode with their decimals as text (titan.events.payloads.text_union).
        self.decode = decoder(text_union(CORE_TO_BRIDGE)).decode
        self.encode = encoder().encode
        self.counters = BoardCounters(ctx.board, BRIDGE)
        self.spool = Spool(Path(settings.spool_dir), settings.spool_max_bytes, settings.spool_segment_bytes)
        if self.spool.truncated_bytes:
            self.log.warning("spool: dropped a torn tail of %d bytes", self.spool.truncated_bytes)
        self.view = EngineView(settings.venues)
        verifier = EnvelopeVerifier(
            settings.hmac_keys,
            tolerance_s=settings.tolerance_s,
            accept_serde_number_forms=settings.accept_serde_number_forms,
        )
        replay = ReplayCache(verifier.tolerance_ms)  # one cache: a nonce is single-use across subjects
        self.intents = IntentIntake(verifier, clock_ms, replay)
        self.operators = OperatorIntake(verifier, clock_ms, replay, settings.operator_auth)
        # Refs unique across bridge restarts (an IntakeDone of the previous instance must not ACK a
        # new message): microseconds since the epoch at start, then one per forwarded message.
        self.refs = itertools.count(time.time_ns() // 1000)
        self.pending: dict[int, Msg] = {}  # ref → JetStream message to ACK on IntakeDone
        self.operator_deadlines: deque[tuple[float, int]] = deque()  # (monotonic, ref) fallback ACKs
        # (monotonic, ref) after which an intent core never answered is forgotten: JetStream has
        # redelivered it by then (ack_wait) and the redelivery carries a new ref.
        self.intent_deadlines: deque[tuple[float, int]] = deque()
        self.heartbeats_dropped = 0
        self.acks: deque[Msg] = deque()
        self.ack_wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.stop = asyncio.Event()
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.session = 0  # bumped after every (re)connect once streams/consumers are ensured
        self.stream_patterns: list[str] = []
        self._captured: dict[str, bool] = {}
        self.published_until: SpoolPosition | None = None  # everything before was acknowledged
        self.spool_refusing = False
        self.permission_errors: set[str] = set()  # denial keys already logged
        self.denied_subjects: set[str] = set()  # publish subjects the server denies (lowercased)
        # Publishing (see _publish): the ack inbox of this connection, the last reply token used,
        # the tokens of the batch in flight and the future its acks (or a failure) resolve.
        self._ack_prefix: str | None = None
        self._ack_token = 0
        self._outstanding: set[int] = set()
        self._batch_sent = False
        self._batch_waiter: asyncio.Future[None] | None = None
        self._publisher_wake: asyncio.Future[None] | None = None
        self.lean_publish = True  # _WireWriter and _hook_acks when nats-py allows (tests turn it off)
        self.hooked_acks = 0  # PubAcks taken through _hook_acks
        self._tasks: list[asyncio.Task[None]] = []
        self.reassembler = Reassembler()
        self.push_lock = asyncio.Lock()
        self.oversize_warned = False
        self._joined: bytes | None = None  # a reassembled message whose last fragment is still on the ring

    # --- event ring → spool --------------------------------------------------------------------

    def _publications(self, msg: Any) -> list[Publication]:
        if isinstance(msg, Event):
            return [Publication(msg.subject, msg.msg_id, bytes(msg.data))]
        return text_publications(msg, self.s.producer, self.s.instance)

    def drain_ring(self) -> int:
        """Move up to DRAIN_BATCH ring messages into the spool; returns how many were consumed.

        The batch is read with ``peek_at``, handed to the OS with one ``write`` and only then
        consumed with one ``advance``: a bridge killed in between reads the same messages again.
        """
        ring = self.ring_in
        n = 0
        spooled = 0
        while n < DRAIN_BATCH and (view := ring.peek_at(n)) is not None:
            msg = self.decode(view)
            if isinstance(msg, Fragment):  # a message larger than a slot (titan.shm.fragment)
                # The joined message is held until its last fragment is consumed: a full spool
                # leaves that fragment on the ring, and it must not be fed to the reassembler twice.
                whole = self._joined if self._joined is not None else self.reassembler.feed(msg)
                if whole is None:
                    n += 1
                    continue
                self._joined = whole
                msg = self.decode(whole)
            if isinstance(msg, IntakeDone):
                self._intake_done(msg)
            else:
                pubs = self._publications(msg)
                if not self._append(pubs):
                    break  # spool full: leave the message on the ring (core holds the overflow)
                spooled += len(pubs)
                for p in pubs:
                    self.view.observe(p)
            self._joined = None
            n += 1
        if n:
            self.spool.write()  # in the OS before the ring cursor moves past the batch
            ring.advance(n)
        if spooled:
            self.counters.add(EVENTS_SPOOLED, spooled)
            self._kick_publisher()
        self._update_gauges()
        return n

    def _append(self, pubs: list[Publication]) -> bool:
        """Append all or nothing (a DLQ event is two records); the caller hands them to the OS."""
        records = [encode_publication(p) for p in pubs]
        needed = 8 * len(records) + sum(map(len, records))
        if self.spool.backlog_bytes + needed > self.spool.max_bytes:
            if not self.spool_refusing:
                self.spool_refusing = True
                self.counters.set(SPOOL_FULL, 1)
                self.ctx.set_state(ProcState.DRAINING)  # /health shows the bridge unhealthy
                self.log.error(
                    "spool full (%d bytes unpublished): events wait on the event ring",
                    self.spool.backlog_bytes,
                )
            return False
        for record, p in zip(records, pubs, strict=True):
            self.spool.append(record, p)
        if self.spool_refusing:
            self.spool_refusing = False
            self.counters.set(SPOOL_FULL, 0)
            self.ctx.set_state(ProcState.READY)
            self.log.info("spool has room again")
        return True

    def emit(self, events: list[RejectEvent | DlqEvent | None]) -> bool:
        """Spool the bridge's own events (refused intents and commands), in order with core's.

        False when the spool is full: the caller leaves the message un-ACKed (it is redelivered).
        """
        pubs = [p for e in events if e is not None for p in publications(e, self.s.producer, self.s.instance)]
        if pubs:
            if not self._append(pubs):
                return False
            self.spool.write()
            self.counters.add(EVENTS_SPOOLED, len(pubs))
            self._kick_publisher()
        return True

    def _update_gauges(self) -> None:
        self.counters.set(SPOOL_RECORDS, self.spool.backlog_records)
        self.counters.set(SPOOL_BYTES, self.spool.backlog_bytes)

    async def pump_events(self) -> None:
        rings = [self.ring_in]
        streak = 0  # consecutive drains that found events
        while True:
            drained = self.drain_ring()
            streak = streak + 1 if drained else 0
            if drained == DRAIN_BATCH:
                await asyncio.sleep(0)  # more waiting: let the publisher and intake run
                continue
            if self.spool_refusing:
                if self.stop.is_set():
                    # What is left stays on the ring (shared memory): the next bridge resumes there.
                    self.log.warning("stopping with %d events left on the event ring", self.ring_in.depth())
                    return
                await asyncio.sleep(0.05)  # the ring has data we cannot take yet: poll, don't spin
                continue
            if self.stop.is_set() and not self.ring_in.has_data():
                return
            if drained and EVENT_LINGER_S > 0:
                # Events are flowing: let more gather before the next drain (core does not ring
                # while nobody sleeps on the bell), so the drain, its spool write, its publish batch
                # (one socket write) and ack round trip are paid per linger, not per intent.
                await asyncio.sleep(min(EVENT_LINGER_MAX_S, EVENT_LINGER_S * streak))
                continue
            await wait_any_async(rings, self.bell, 0.2)

    async def sync_spool(self) -> None:
        """Grouped fsync and head commits on a short timer, off the publish path."""
        last_commit = 0.0
        while True:
            stopping = self.stop.is_set()
            self.spool.flush()
            now = time.monotonic()
            done = self.published_until
            if (
                done is not None
                and done > self.spool.head
                and (now - last_commit >= COMMIT_INTERVAL_S or stopping)
            ):
                self.spool.commit(done)
                last_commit = now
                self._update_gauges()
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), SYNC_INTERVAL_S)

    # --- spool → NATS --------------------------------------------------------------------------

    def captured(self, subject: str) -> bool:
        """Whether a stream captures ``subject`` (publish with JetStream acks; else core NATS)."""
        hit = self._captured.get(subject)
        if hit is None:
            hit = any(subject_matches(p, subject) for p in self.stream_patterns)
            if len(self._captured) < 100_000:
                self._captured[subject] = hit
        return hit

    def _kick_publisher(self) -> None:
        """Wake the publisher if it waits for records (new ones were spooled, or stopping)."""
        wake = self._publisher_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _publisher_nap(self, timeout: float) -> None:
        """Until :meth:`_kick_publisher` or ``timeout``: a future and a timer, no task."""
        loop = asyncio.get_running_loop()
        wake = self._publisher_wake = loop.create_future()
        timer = loop.call_later(timeout, _resolve, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._publisher_wake = None

    async def publish_loop(self) -> None:
        cursor: SpoolPosition | None = None
        while True:
            if self.stop.is_set() and (not self.connected.is_set() or not self.spool.read(1, cursor)):
                return
            if not self.connected.is_set():
                await _first(self.connected.wait(), self.stop.wait())
                continue
            records = self.spool.read(self.s.publish_window, cursor)
            if not records:
                if not self.stop.is_set():
                    await self._publisher_nap(0.5)
                continue
            denied = await self._publish(records)
            if denied is not None:
                cursor = records[-1].end
                self.published_until = cursor
                self.counters.add(EVENTS_PUBLISHED, len(records) - denied)
                self.counters.add(EVENTS_DENIED, denied)
            else:
                self.counters.add(PUBLISH_RETRIES)
                await _first(self.stop.wait(), timeout=0.2)

    async def _publish(self, records: list[SpooledRecord]) -> int | None:
        """Publish one batch in order, skipping subjects the server denies.

        Stream subjects go out as core-NATS publishes with a ``Nats-Msg-Id`` header and a reply
        subject under this connection's ack inbox (``<inbox>.<token>``); JetStream answers each on
        it with a PubAck (``{"stream":…,"seq":…}``, ``"duplicate":true`` for a deduplicated one) or
        ``{"error":…}`` — the "async publish with a window" pattern, with the acks counted in
        :meth:`_on_puback` instead of a future per message. Returns how many records were skipped
        as denied when every JetStream publish was acknowledged; None when the batch must be re-sent
        (JetStream dedupes what already landed).
        """
        nc = self.nc
        assert nc is not None
        prefix = self._ack_prefix
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        outstanding = self._outstanding
        outstanding.clear()
        self._batch_sent = False
        self._batch_waiter = waiter
        denied = 0
        timer: asyncio.TimerHandle | None = None
        try:
            if prefix is None:
                raise ConnectionError("no ack subscription on this connection yet")
            token = self._ack_token
            wire = _WireWriter.of(nc) if self.lean_publish else None
            for record in records:
                p = record.item if record.item is not None else decode_publication(record.data)
                if self.denied_subjects and p.subject.lower() in self.denied_subjects:
                    denied += 1  # never accepted by this server: skipping it unblocks what follows
                    continue
                if p.msg_id and self.captured(p.subject):
                    token += 1
                    outstanding.add(token)
                    if wire is None or not wire.hpub(p.subject, f"{prefix}{token}", p.msg_id, p.data):
                        if wire is not None:
                            await wire.send()  # what is queued goes first: order is kept
                        await nc.publish(
                            p.subject, p.data, reply=f"{prefix}{token}", headers={"Nats-Msg-Id": p.msg_id}
                        )
                elif wire is None or not wire.pub(p.subject, p.data):
                    if wire is not None:
                        await wire.send()
                    await nc.publish(p.subject, p.data)
            if wire is not None:
                await wire.send()
            self._ack_token = token
            self._batch_sent = True
            if outstanding and not waiter.done():
                timer = loop.call_later(
                    self.s.ack_timeout_s,
                    _fail,
                    waiter,
                    TimeoutError(f"no publish acks within {self.s.ack_timeout_s}s"),
                )
            elif not waiter.done():
                waiter.set_result(None)
            await waiter  # raises the first failure: an error ack, a denial, a disconnect, the timeout
            return denied
        except Exception as exc:  # NATS away, slow or refusing: re-send the batch from its start
            self.log.warning(
                "publish failed (%s: %s); %d records wait in the spool",
                type(exc).__name__,
                exc,
                self.spool.backlog_records,
            )
            return None
        finally:
            if timer is not None:
                timer.cancel()
            self._batch_waiter = None
            outstanding.clear()
            if not waiter.done():
                waiter.cancel()

    async def _on_puback(self, msg: Msg) -> None:
        """A JetStream reply on the ack inbox (through the subscription's callback)."""
        prefix = self._ack_prefix
        if prefix is None or not msg.subject.startswith(prefix):
            return
        status = msg.headers.get("Status") if msg.headers else None  # 503: no stream took it
        self._puback(msg.subject[len(prefix) :], msg.data, status)

    def _puback(self, token_text: str | bytes, data: bytes, status: str | None = None) -> None:
        """Count one reply for the batch in flight (late ones, of an abandoned attempt, are ignored)."""
        waiter = self._batch_waiter
        if waiter is None or waiter.done():
            return
        try:
            token = int(token_text)
        except ValueError:
            return
        if token not in self._outstanding:
            return  # an ack of an abandoned attempt
        if status:
            waiter.set_exception(ConnectionError(f"JetStream status {status} for a publish"))
            return
        if b'"error"' in data:
            error = _puback_error(data)
            if error is not None:
                waiter.set_exception(RuntimeError(f"JetStream refused a publish: {error}"))
                return
        self._outstanding.discard(token)
        if not self._outstanding and self._batch_sent:
            waiter.set_result(None)

    def _fail_batch(self, exc: Exception) -> None:
        waiter = self._batch_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # --- NATS connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, retrying with back-off until it works or the bridge stops."""
        delay = 0.25
        with_password = bool(self.s.user and self.s.password)  # §1: only when both are set
        while not self.stop.is_set():
            try:
                self.nc = await nats.connect(
                    self.s.url,
                    name=f"titan-bridge-{self.s.instance}",
                    user=self.s.user if with_password else None,
                    password=self.s.password if with_password else None,
                    token=self.s.token or None,
                    tls=tls_context(self.s),
                    tls_hostname=self.s.tls_hostname or None,
                    connect_timeout=self.s.connect_timeout_s,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    pending_size=0,  # never buffer across a reconnect: the spool is the buffer
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                )
            except Exception as exc:
                self.log.warning("NATS %s unreachable (%s); retrying in %.1fs", self.s.url, exc, delay)
                await _first(self.stop.wait(), timeout=delay)
                delay = min(delay * 2, 5.0)
                continue
            self.js = self.nc.jetstream()
            self.log.info("connected to NATS %s", self.s.url)
            await self._subscribe_acks()
            await self._subscribe_core()
            await self._start_session()
            return

    async def _start_session(self) -> None:
        """Ensure streams and consumers (idempotent), learn what streams capture, resume publishing."""
        assert self.js is not None
        while not self.stop.is_set():
            try:
                await streams.ensure_streams(self.js, self.s.manage_streams, self.s.account, self.s.venue)
                infos = await self.js.streams_info()
                break
            except Exception as exc:
                self.log.warning("ensure_streams failed (%s: %s); retrying", type(exc).__name__, exc)
                await _first(self.stop.wait(), timeout=1.0)
                if self.nc is None or not self.nc.is_connected:
                    return  # the reconnect callback starts a new session
        else:
            return
        self.stream_patterns = [s for info in infos for s in (info.config.subjects or [])]
        self._captured.clear()
        self.session += 1
        self.counters.set(NATS_CONNECTED, 1)
        self.connected.set()

    async def _on_disconnected(self) -> None:
        if self.connected.is_set() and not self.stop.is_set():
            self.log.warning("NATS disconnected: spooling events")
        self.connected.clear()
        self.counters.set(NATS_CONNECTED, 0)
        self._fail_batch(ConnectionError("NATS disconnected"))  # re-sent after the reconnect

    async def _on_reconnected(self) -> None:
        self.counters.add(NATS_RECONNECTS)
        self.log.info("NATS reconnected")
        asyncio.get_running_loop().create_task(self._start_session())

    async def _on_error(self, exc: Exception) -> None:
        text = str(exc)
        denial = permission_denial(text)
        if denial is not None:  # §12: count every one, log each subject once
            operation, subject = denial
            self.counters.add(PERMISSION_ERRORS)
            key = f"{operation} {denial_key(subject)}"
            if key not in self.permission_errors:
                self.permission_errors.add(key)
                self.log.error(
                    "NATS permission error: %s to %r denied by the server (nats.md §12); "
                    "counted in permission_errors, logged once per subject",
                    operation,
                    denial_key(subject),
                )
            if (
                operation == "publish"
                and denial_key(subject) == subject
                and subject not in self.denied_subjects
            ):
                self.denied_subjects.add(subject)
                # Its ack never comes: cut the batch short, it is re-sent without that subject.
                self._fail_batch(PermissionError("the server denied a subject of this batch"))
                self.log.error("events on %r are skipped from now on: grant the publish right", subject)
            return
        if "ermission" in text:
            self.counters.add(PERMISSION_ERRORS)
            if text not in self.permission_errors:
                self.permission_errors.add(text)
                self.log.error("NATS permission error: %s", text)
            return
        self.log.debug("NATS error: %s: %s", type(exc).__name__, text)

    async def _subscribe_acks(self) -> None:
        """The inbox JetStream answers our publishes on (nats-py re-subscribes it after a reconnect)."""
        nc = self.nc
        assert nc is not None
        inbox = nc.new_inbox()
        sub = await nc.subscribe(f"{inbox}.*", cb=self._on_puback)
        self._ack_prefix = f"{inbox}."
        if self.lean_publish:
            self._hook_acks(nc, getattr(sub, "_id", None), f"{inbox}.".encode())

    def _hook_acks(self, nc: NATS, sid: int | None, prefix: bytes) -> None:
        """Take plain PubAcks for our inbox straight from nats-py's parser.

        nats-py hands every ``MSG`` to ``Client._process_msg(sid, subject, reply, data, headers)``,
        which builds a ``Msg`` and queues it for the subscription's task, which awaits the callback:
        ~3 µs per ack. This wraps that method on this client only: a header-less message on the ack
        subscription is counted at once (:meth:`_puback`); everything else — and every ack if this
        nats-py calls it differently — goes on to nats-py unchanged and reaches :meth:`_on_puback`.
        """
        original = getattr(nc, "_process_msg", None)
        if original is None or sid is None:
            return
        plen = len(prefix)

        async def process_msg(*args: Any, **kwargs: Any) -> None:
            if len(args) == 5 and not kwargs and args[0] == sid and not args[4]:
                subject = args[1]
                if isinstance(subject, bytes) and subject.startswith(prefix):
                    self.hooked_acks += 1
                    self._puback(subject[plen:], args[3])
                    return
            await original(*args, **kwargs)

        nc._process_msg = process_msg  # type: ignore[method-assign]  # this client only, see above

    async def _subscribe_core(self) -> None:
        """Core-NATS subscriptions (nats-py re-subscribes them after a reconnect)."""
        nc = self.nc
        assert nc is not None
        await nc.subscribe(subjects.SYS_HEARTBEAT, cb=self._on_heartbeat)
        await nc.subscribe(subjects.SYS_HEARTBEAT_ANY, cb=self._on_heartbeat)
        await nc.subscribe(subjects.EVT_RISK_STATE, cb=self._on_risk_state)
        for subject in (
            subjects.REQ_POLICY_HASH,
            subjects.RPC_GET_POSITIONS_ALL,
            subjects.RPC_GET_BALANCES_ALL,
        ):
            await nc.subscribe(subject, cb=self._on_request)

    # --- NATS → core ---------------------------------------------------------------------------------

    def _pieces(self, data: bytes) -> list[bytes] | None:
        """An encoded message as it goes on core's ring: whole, or as fragments when it is larger
        than a slot; None when it needs more fragments than the ring has slots (core takes a
        fragmented message only once all its pieces are on the ring)."""
        ring = self.ring_out
        if len(data) <= ring.max_payload:
            return [data]
        pieces = split(data, ring.max_payload, self.encode, ArrayFragment)
        return pieces if fits(pieces, ring.capacity) else None

    def _for_core(self, place: PlaceIntent) -> list[bytes]:
        """The encoded PlaceIntent, as fragments when it is larger than a ring slot."""
        data = self.encode(place)
        pieces = self._pieces(data)
        if pieces is not None:
            return pieces
        # Larger than core's whole ring: the original envelope only feeds core's DLQ payload, so
        # the intent goes without it rather than not at all.
        if not self.oversize_warned:
            self.oversize_warned = True
            self.log.warning(
                "PlaceIntent of %d bytes exceeds core's ring: forwarded without the original", len(data)
            )
        place.original = b""
        data = self.encode(place)
        pieces = self._pieces(data)
        if pieces is None:  # the intent alone (its metadata) outgrows the ring: a misconfigured ring
            raise ValueError(
                f"PlaceIntent of {len(data)} bytes exceeds core's ring even without its original"
            )
        return pieces

    async def push_core(self, *messages: bytes) -> None:
        """Push to core's command ring in order, waiting (not dropping) while it is full.

        Under a lock: the fragments of one message must stay consecutive on the ring.
        """
        async with self.push_lock:
            for data in messages:
                pause = 0.0005
                while not self.ring_out.try_push(data):
                    self.core_bell.ring()
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.05)
            self.core_bell.ring()

    def _intake_done(self, done: IntakeDone) -> None:
        msg = self.pending.pop(done.ref, None)
        if msg is None:
            return  # a previous bridge instance's message (redelivered, absorbed by core's row 0)
        self.acks.append(msg)
        self.ack_wake.set()

    async def ack_loop(self) -> None:
        while not (self.stop.is_set() and not self.acks):
            self._expire_operator_acks()
            while self.acks:
                msg = self.acks.popleft()
                try:
                    await msg.ack()
                except Exception as exc:  # not connected: redelivered after ack_wait, core absorbs it
                    self.log.warning("ACK failed (%s); the message will be redelivered", exc)
                    continue
                if subjects.classify_command_subject(msg.subject) is subjects.CommandKind.PLACE_INTENT:
                    self.counters.add(INTENTS_ACKED)
            self.ack_wake.clear()
            await _first(self.ack_wake.wait(), self.stop.wait(), timeout=0.5)

    def _expire_operator_acks(self) -> None:
        now = time.monotonic()
        while self.operator_deadlines and self.operator_deadlines[0][0] <= now:
            _, ref = self.operator_deadlines.popleft()
            msg = self.pending.pop(ref, None)
            if msg is not None:
                self.acks.append(msg)
        while self.intent_deadlines and self.intent_deadlines[0][0] <= now:
            _, ref = self.intent_deadlines.popleft()
            if self.pending.pop(ref, None) is not None:
                self.log.warning("no IntakeDone for intent ref %d within ack_wait: left to redelivery", ref)

    async def consume(self, durable: str, handle: Callable[[list[Msg]], Awaitable[None]]) -> None:
        """Fetch batches from one durable pull consumer, re-binding after every new session."""
        sub: Any = None
        bound = -1
        while not self.stop.is_set():
            if not self.connected.is_set():
                await _first(self.connected.wait(), self.stop.wait())
                continue
            if self.spool_refusing:  # refusals could not be spooled: take nothing new
                await _first(self.stop.wait(), timeout=0.2)
                continue
            js = self.js
            assert js is not None
            try:
                if bound != self.session or sub is None:
                    sub = await js.pull_subscribe_bind(durable=durable, stream=streams.CMD_STREAM)
                    bound = self.session
                msgs = await sub.fetch(self.s.fetch_batch, timeout=1.0)
            except TimeoutError:
                continue
            except Exception as exc:
                if self.stop.is_set():
                    return
                self.log.warning("fetch from %s failed (%s: %s)", durable, type(exc).__name__, exc)
                sub = None
                await _first(self.stop.wait(), timeout=0.5)
                continue
            try:
                await handle(msgs)
            except Exception:  # one bad batch must not end intake: un-ACKed messages are redelivered
                self.log.exception("handling a batch from %s failed", durable)

    @staticmethod
    def inbound(msg: Msg) -> InboundMessage:
        try:
            seq: int | None = msg.metadata.sequence.stream
        except Exception:
            seq = None
        headers = dict(msg.headers) if msg.headers else None
        return InboundMessage(msg.subject, msg.data, headers, seq)

    async def handle_intents(self, msgs: list[Msg]) -> None:
        refused: list[Msg] = []
        for msg in msgs:
            if subjects.classify_command_subject(msg.subject) is not subjects.CommandKind.PLACE_INTENT:
                refused.append(msg)  # not ours (filter overlap): ACK so the work queue moves on
                continue
            t_read = time.monotonic_ns()
            outcome = self.intents.authenticate(self.inbound(msg))
            if outcome.action is Action.FORWARD and outcome.intent is not None:
                ref = next(self.refs)
                place = to_place_intent(
                    outcome.intent, ref, outcome.dedupe_ids, msg.data, self.clock_ms(), t_read, 0
                )
                place.t_ring = time.monotonic_ns()
                pieces = self._for_core(place)
                self.pending[ref] = msg
                self.intent_deadlines.append((time.monotonic() + streams.ACK_WAIT_S + 5.0, ref))
                await self.push_core(*pieces)
                self.counters.add(INTENTS_FORWARDED)
                continue
            if outcome.error:
                self.log.warning("intent refused (row %s): %s", outcome.row, outcome.error)
            if not self.emit([outcome.reject, outcome.dlq]):
                continue
            self.counters.add(INTENTS_REFUSED)
            if "titan_execution_invalid_intents_total" in outcome.counters:
                self.counters.add(INVALID_INTENTS)
            refused.append(msg)
        if refused:
            self.spool.flush()  # the refusal events are durable before the message is gone
            self.acks.extend(refused)
            self.ack_wake.set()

    async def handle_commands(self, msgs: list[Msg]) -> None:
        done: list[Msg] = []
        for msg in msgs:
            t_read = time.monotonic_ns()
            outcome = self.operators.process(self.inbound(msg))
            if isinstance(outcome, OperatorCommand):
                ref = next(self.refs)
                message = to_operator_message(outcome, ref, t_read)
                if message is None:
                    self.log.info("risk command %s: logged only", outcome.action.value)
                    done.append(msg)
                    continue
                self.log.info(
                    "operator %s from %s (form %s): %s",
                    message.kind,
                    message.actor,
                    outcome.form,
                    message.reason,
                )
                data = self.encode(message)
                pieces = self._pieces(data)
                if pieces is None:
                    # A policy document needing more fragments than core's ring has slots.
                    self.log.error(
                        "operator %s of %d bytes exceeds core's ring: refused", message.kind, len(data)
                    )
                    reject = RejectEvent(
                        reason="invalid_command",
                        intent_id=message.command_id or "N/A",
                        brain_instance_id=message.actor or "N/A",
                        timestamp=self.clock_ms(),
                        code="COMMAND_TOO_LARGE",
                        message=f"command of {len(data)} bytes exceeds the engine's ring",
                        event_type="execution.command.rejected",
                        command=msg.subject,
                        message_id=str(self.inbound(msg).stream_seq or ""),
                    )
                    if self.emit([reject]):
                        done.append(msg)
                    continue
                self.pending[ref] = msg
                self.operator_deadlines.append((time.monotonic() + self.s.operator_ack_after_s, ref))
                await self.push_core(*pieces)
                self.counters.add(OPERATOR_FORWARDED)
            elif isinstance(outcome, OperatorIgnored):
                self.log.warning("command on %s ignored: %s", msg.subject, outcome.note)
                done.append(msg)
            else:
                self.log.warning("command on %s refused (%s): %s", msg.subject, outcome.reason, outcome.error)
                if not self.emit([outcome.reject]):
                    continue
                self.counters.add(OPERATOR_REJECTED)
                done.append(msg)
        if done:
            self.spool.flush()
            self.acks.extend(done)
            self.ack_wake.set()

    async def _on_heartbeat(self, msg: Msg) -> None:
        token = (
            msg.subject[len(subjects.SYS_HEARTBEAT) + 1 :] if msg.subject != subjects.SYS_HEARTBEAT else ""
        )
        command = OperatorMessage(
            ref=0,
            kind="HEARTBEAT",
            actor=token,
            reason="",
            args={"subject": msg.subject},
            command_id="",
            t_read=time.monotonic_ns(),
        )
        # A heartbeat only refreshes a timestamp: never wait for room (a later one will do).
        if not self.push_lock.locked() and self.ring_out.try_push(self.encode(command)):
            self.core_bell.ring()
            self.counters.add(HEARTBEATS)
        else:
            self.heartbeats_dropped += 1
            if self.heartbeats_dropped in (1, 100, 10_000):
                self.log.warning("command ring full: %d heartbeats not forwarded", self.heartbeats_dropped)

    async def _on_risk_state(self, msg: Msg) -> None:
        state = parse_risk_state_event(msg.data)
        if state is None:
            self.log.warning("risk state event ignored: %r", msg.data[:64])
            return
        command = OperatorMessage(
            ref=0,
            kind="RISK_STATE",
            actor="",
            reason="",
            args={"state": state},
            command_id="",
            t_read=time.monotonic_ns(),
        )
        await self.push_core(self.encode(command))

    async def _on_request(self, msg: Msg) -> None:
        body = self.view.reply(msg.subject, self.clock_ms())
        if body is None or not msg.reply:
            return
        with contextlib.suppress(Exception):
            await msg.respond(body)
            self.counters.add(RPC_REPLIES)

    # --- lifecycle -----------------------------------------------------------------------------------

    async def run(self) -> None:
        self._update_gauges()
        self.counters.set(NATS_CONNECTED, 0)
        self.counters.set(SPOOL_FULL, 0)
        self.ctx.set_state(ProcState.READY)  # trading never waits on NATS: ready before connecting
        spawn = asyncio.get_running_loop().create_task
        pump = spawn(self.pump_events())
        syncer = spawn(self.sync_spool())
        publisher = spawn(self.publish_loop())
        acker = spawn(self.ack_loop())
        beat = spawn(self._beat())
        execution = streams.execution_consumer(self.s.account, self.s.venue).durable_name
        assert execution is not None
        consumers = [
            spawn(self.consume(execution, self.handle_intents)),
            spawn(self.consume("RISK_ENFORCER", self.handle_commands)),
            spawn(self.consume("OPERATOR_CONTROL", self.handle_commands)),
        ]
        try:
            await self.connect()
            await self.stop.wait()
        finally:
            self.stop.set()
            self._kick_publisher()
            for task in consumers:
                task.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            await pump  # everything core produced is in the spool
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(publisher, 2.0)  # publish what we can, the rest waits on disk
            await asyncio.wait_for(acker, 2.0)
            await syncer
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            self.spool.close()
            if self.nc is not None:
                # Not drain(): it waits up to 30 s on the pull subscriptions. ACKs are flushed first.
                with contextlib.suppress(Exception):
                    await self.nc.flush(timeout=1)
                with contextlib.suppress(Exception):
                    await self.nc.close()

    async def _beat(self) -> None:
        while True:
            self.ctx.beat()
            await asyncio.sleep(0.1)


_WIRE_UNSAFE = re.compile(r"[ \t\r\n]")  # what nats-py refuses in a subject (and we in a header value)


class _WireWriter:
    """The protocol lines of a publish batch, handed to nats-py's write buffer in one piece.

    ``nc.publish`` costs ~4-7 µs per message in Python (subject and header validation by regex,
    a header dict walk, two copies of the payload, a coroutine); this builds the same ``PUB`` /
    ``HPUB`` bytes with one format each and queues the batch with nats-py's own
    ``_send_command`` + ``_flush_pending`` (what ``publish`` ends in), so ordering with every other
    command and nats-py's flusher, reconnect and error handling stay nats-py's. Those two are not
    public API: :meth:`of` returns None when this nats-py lacks them (the bridge then uses
    ``nc.publish``). A message the fast form cannot carry exactly as ``nc.publish`` would (a
    subject or ``Nats-Msg-Id`` with white space, a payload over the server's ``max_payload``) is
    refused here (False) and goes through ``nc.publish`` after what is queued.
    """

    __slots__ = ("_flush", "_max_payload", "_nc", "_parts", "_send_command", "_valid")

    _valid_subjects: typing.ClassVar[set[str]] = set()

    def __init__(self, nc: NATS, send_command: Any, flush: Any) -> None:
        self._nc = nc
        self._send_command = send_command
        self._flush = flush
        self._max_payload = nc.max_payload
        self._parts: list[bytes] = []
        self._valid = _WireWriter._valid_subjects

    @staticmethod
    def of(nc: NATS) -> _WireWriter | None:
        send_command = getattr(nc, "_send_command", None)
        flush = getattr(nc, "_flush_pending", None)
        if send_command is None or flush is None:
            return None
        return _WireWriter(nc, send_command, flush)

    def _subject_ok(self, subject: str) -> bool:
        if subject in self._valid:
            return True
        if not subject or _WIRE_UNSAFE.search(subject):
            return False
        if len(self._valid) > 10_000:
            self._valid.clear()
        self._valid.add(subject)
        return True

    def hpub(self, subject: str, reply: str, msg_id: str, data: bytes) -> bool:
        """Queue ``HPUB`` with a ``Nats-Msg-Id`` header, exactly as ``nc.publish`` writes it."""
        if (
            len(data) > self._max_payload
            or not self._subject_ok(subject)
            or _WIRE_UNSAFE.search(msg_id)
            or msg_id.strip() != msg_id  # nats-py strips the value: leave that to it
        ):
            return False
        hdr = b"NATS/1.0\r\nNats-Msg-Id: " + msg_id.encode() + b"\r\n\r\n"
        self._parts.append(
            b"HPUB %s %s %d %d\r\n%s%s\r\n"
            % (subject.encode(), reply.encode(), len(hdr), len(hdr) + len(data), hdr, data)
        )
        return True

    def pub(self, subject: str, data: bytes) -> bool:
        """Queue ``PUB`` (no reply)."""
        if len(data) > self._max_payload or not self._subject_ok(subject):
            return False
        self._parts.append(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(data), data))
        return True

    async def send(self) -> None:
        """Hand what is queued to nats-py (refused when not connected, as ``nc.publish`` does)."""
        if not self._parts:
            return
        if not self._nc.is_connected:
            self._parts.clear()
            raise ConnectionError("NATS not connected")
        cmd = b"".join(self._parts)
        self._parts.clear()
        await self._send_command(cmd)
        await self._flush()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[None], exc: Exception) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _puback_error(data: bytes) -> str | None:
    """The ``error`` of a JetStream publish reply, None for a PubAck."""
    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return f"unreadable reply {data[:80]!r}"
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        if isinstance(error, dict):
            code = f"code {error.get('code')}, err_code {error.get('err_code')}"
            return f"{error.get('description', error)} ({code})"
        return str(error)
    return None


async def _first(*aws: Awaitable[Any], timeout: float | None = None) -> None:
    """Wait until the first of ``aws`` completes (or ``timeout``); cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def main() -> None:
    ctx = ChildContext.from_env(BRIDGE)
    bridge = Bridge(ctx, settings_from(ctx.cfg))

    async def amain() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop.set)
        gc.collect()
        gc.freeze()
        await bridge.run()

    asyncio.run(amain())
    ctx.set_state(ProcState.STOPPED)
    ctx.close()


if __name__ == "__main__":
    main()
