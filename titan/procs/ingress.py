"""`ingress`: the FastPath Unix-socket server (fastpath.md §1-§13, issue #3).

asyncio, one process. Per connection a sans-I/O :class:`~titan.ingress.session.Session` turns bytes
into replies (protocol failures, answered here) and accepted requests. PING is answered here;
PREPARE/CONFIRM/ABORT go to core over the command ring, and core's replies come back on the reply ring,
routed by request id to the connection that asked, with correlationId/timestamp/server_time added.

Backpressure: a full command ring never drops and never blocks the event loop. Requests wait in one
FIFO (so a CONFIRM can never overtake its PREPARE), the connections that fed it stop being read, and a
request still waiting at its deadline gets ``BUSY`` (it never reached core). A request core does not
answer by its deadline gets ``ENGINE_NOT_READY``. A connection whose unread replies exceed
``ingress.max_output_bytes`` is closed, so a client that never reads costs the others nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import signal
import socket
import stat
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
from msgspec.structs import astuple

from titan.config import Config, hmac_secret, socket_path
from titan.health import INGRESS_HISTOGRAMS, INGRESS_SLOTS, CounterWriter, LatencyRecorder, record_replies
from titan.ingress import codes
from titan.ingress.protocol import Accepted, RequestProcessor
from titan.ingress.replay import ReplayGuard
from titan.ingress.replies import error_fields, js_int, max_connections_line
from titan.ingress.session import Session
from titan.ingress.signals import AbortSignal, ConfirmSignal, PingSignal, PrepareSignal, to_intent
from titan.ingress.signing import secret_key
from titan.messages import CORE_TO_INGRESS, Abort, Confirm, Prepare, Reply, Stages, decoder, encoder
from titan.procs.common import CORE, INGRESS, ChildContext
from titan.shm.board import ProcState
from titan.shm.doorbell import Doorbell
from titan.shm.ring import Ring

READ_BUFFER_BYTES: Final = 1 << 16  # one socket read at most
TICK_S: Final = 0.05  # heartbeat, deadlines, held-request retry when idle
HELD_RETRY_S: Final = 0.0005  # retry pushing held requests while the command ring is full
READY_CACHE_NS: Final = 5_000_000
# Reply.req of an unsolicited report core pushes to a connection (ingress.push_reports);
# request ids start far above it.
PUSH_REQ: Final = 0
_STAGE_FIELDS: Final = Stages.__struct_fields__
TRACE_ROOM: Final = 32  # req id and stamps grow the encoded command a little after the size check

# Status-board counter slots of the ingress row (titan top reads them).
COUNTER_NAMES: Final = (
    "messagesReceived",
    "messagesProcessed",
    "messagesFailed",
    "invalidSignatures",
    "replaysRejected",
    "activeConnections",
    "busyReplies",
    "notReadyReplies",
    "slowReaderCloses",
)


def _msgpack_uint_size(n: int) -> int:
    """Bytes msgpack spends on a non-negative int."""
    if n < 0x80:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    return 5 if n < 0x100000000 else 9


def _stamp_growth(req: int, t_ring: int) -> int:
    """How much longer a command is with ``req``/``t_ring`` set than with both still 0: the size check
    is on the command as it was before they were stamped (one encoding serves both)."""
    return _msgpack_uint_size(req) + _msgpack_uint_size(t_ring) - 2


class SocketInUse(RuntimeError):
    """Another live server answers on the configured socket path."""


def prepare_socket_path(path: str) -> None:
    """§1: refuse a world-writable non-sticky directory; remove a stale socket; refuse a live one."""
    parent = Path(path).parent
    st = parent.stat()
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise PermissionError(f"socket directory {parent} is world-writable without the sticky bit")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: stale file from a crashed engine
        return
    finally:
        probe.close()
    raise SocketInUse(f"another engine answers on {path}")


def bind_socket(path: str) -> socket.socket:
    prepare_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)  # the file is born 0660: never a moment with wider permissions
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o660)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass(slots=True)
class Pending:
    """A request sent (or waiting to be sent) to core."""

    conn: Connection
    correlation_id: str | None
    signal_id: str
    envelope_ts: float | None
    trace: bool
    t_read: int
    deadline_ns: int
    command: Prepare | Confirm | Abort | None = None  # set while it is held (ring full)
    sent: bool = False


class Connection(asyncio.BufferedProtocol):
    """One client. Reads go straight into the server's buffer (``recv_into``): a plain Protocol makes
    asyncio allocate 256 KiB per read, an mmap + mremap + munmap (and page faults) per request."""

    def __init__(self, server: IngressServer, conn_id: int) -> None:
        self.server = server
        self.conn_id = conn_id
        self.session = Session(server.processor, server.cfg.ingress.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.paused = False
        self.counted = False

    # --- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.on_connect(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # The buffer is shared: its bytes are copied out before anything else can read into it.
        self.data_received(self.server.read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        t_read = time.monotonic_ns()
        result = self.session.feed(data)
        server = self.server
        out = result.replies
        for accepted in result.accepted:
            try:
                reply = server.handle(self, accepted, t_read)
            except Exception as exc:  # one bad request must not cost the connection (§11: internal error)
                server.log_exception(exc)
                body = error_fields(codes.IPC_ERROR, f"{codes.MSG_INTERNAL}: {type(exc).__name__}")
                reply = self.session.reply(
                    body, correlation_id=accepted.correlation_id, envelope_ts=accepted.envelope_ts
                )
            if reply is not None:
                out.append(reply)
        if out:
            self.write(b"".join(out) if len(out) > 1 else out[0])
        if result.close:
            self.close()
        server.flush_commands()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.on_disconnect(self)

    # --- output ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if self.closed or transport is None:
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.cfg.ingress.max_output_bytes:
            # A client that does not read its replies: bounded memory, nobody else waits on it.
            self.server.stats_extra["slowReaderCloses"] += 1
            self.closed = True
            transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()


class IngressServer:
    def __init__(
        self,
        cfg: Config,
        *,
        secret: str,
        commands: Ring,
        core_bell: Doorbell,
        replies: Ring,
        bell: Doorbell,
        core_ready: Callable[[], bool],
        wall_ms: Callable[[], float] = lambda: time.time() * 1000.0,
    ) -> None:
        self.cfg = cfg
        ic = cfg.ingress
        start_ms = wall_ms()
        guard = ReplayGuard(
            window_ms=ic.replay_window_ms, capacity=ic.replay_cache_entries, start_ms=start_ms
        )
        self.processor = RequestProcessor(secret_key(secret), guard, wall_ms)
        self.commands = commands
        self.core_bell = core_bell
        self.replies = replies
        self.bell = bell
        self._core_ready = core_ready
        self._ready_cache = (False, 0)
        self.wall_ms = wall_ms
        self.connections: dict[int, Connection] = {}
        self.read_buffer = memoryview(bytearray(READ_BUFFER_BYTES))  # every connection reads into it
        self._conn_ids = itertools.count(1)
        # Request ids start at the (system-wide) monotonic clock, so a reply core sends for a previous
        # ingress incarnation's request can never match a request of this one.
        self._req_ids = itertools.count(time.monotonic_ns())
        self.pending: dict[int, Pending] = {}
        self._deadlines: deque[tuple[int, int]] = deque()  # (deadline_ns, req) in send order
        self.held: deque[int] = deque()  # requests waiting for room on the command ring
        self._paused_for_ring: set[Connection] = set()
        self._commands_dirty = False
        self._retry_handle: asyncio.TimerHandle | None = None
        self._encode = encoder().encode
        self._decode_reply = decoder(CORE_TO_INGRESS).decode
        self.timeout_ns = ic.core_reply_timeout_ms * 1_000_000
        self.stats_extra = {"busyReplies": 0, "notReadyReplies": 0, "slowReaderCloses": 0}
        # (t_write_ns, stamps) per written batch; turned into latency histograms on the tick (titan.health).
        self.stage_samples: list[tuple[int, list[Stages]]] = []
        self.server: asyncio.AbstractServer | None = None

    # --- connections ----------------------------------------------------------------------

    def new_connection(self) -> Connection:
        return Connection(self, next(self._conn_ids))

    def on_connect(self, conn: Connection) -> None:
        if len(self.connections) >= self.cfg.ingress.max_connections:
            assert conn.transport is not None
            conn.transport.write(max_connections_line(self.wall_ms()))
            conn.closed = True
            conn.transport.close()
            return
        conn.counted = True
        self.connections[conn.conn_id] = conn
        self.processor.stats.activeConnections = len(self.connections)

    def on_disconnect(self, conn: Connection) -> None:
        if conn.counted:
            self.connections.pop(conn.conn_id, None)
            self._paused_for_ring.discard(conn)
            self.processor.stats.activeConnections = len(self.connections)
        # Its requests already sent still get core's answer (dropped on arrival); held ones still go to core:
        # a CONFIRM the client sent must not silently vanish because the socket closed.

    def log_exception(self, exc: Exception) -> None:
        logging.getLogger("titan.ingress").error("internal error handling a request", exc_info=exc)

    def core_ready(self) -> bool:
        now = time.monotonic_ns()
        ready, at = self._ready_cache
        if now - at > READY_CACHE_NS:
            ready = self._core_ready()
            self._ready_cache = (ready, now)
        return ready

    # --- requests -------------------------------------------------------------------------

    def _reply_bytes(
        self, conn: Connection, body: dict[str, Any], accepted: Accepted, signal_id: str | None
    ) -> bytes:
        return conn.session.reply(
            body,
            correlation_id=accepted.correlation_id,
            signal_id=signal_id,
            envelope_ts=accepted.envelope_ts,
        )

    def handle(self, conn: Connection, accepted: Accepted, t_read: int) -> bytes | None:
        """§7 steps 7-8 for one accepted request: a reply to write now, or None (core will answer)."""
        signal = accepted.signal
        signal_id = None if isinstance(signal, PingSignal) else signal.signal_id
        if not self.core_ready():
            self.stats_extra["notReadyReplies"] += 1
            body = error_fields(codes.ENGINE_NOT_READY, "core is not running or still reconciling")
            return self._reply_bytes(conn, body, accepted, signal_id)
        if isinstance(signal, PingSignal):
            return self._reply_bytes(conn, {"pong": True}, accepted, None)
        assert signal_id is not None
        command: Prepare | Confirm | Abort
        if isinstance(signal, PrepareSignal):
            command = Prepare(conn.conn_id, 0, to_intent(signal), t_read, 0)
        elif isinstance(signal, ConfirmSignal):
            command = Confirm(conn.conn_id, 0, signal.signal_id, t_read, 0)
        else:
            assert isinstance(signal, AbortSignal)
            command = Abort(conn.conn_id, 0, signal.signal_id, t_read, 0)
        req = next(self._req_ids)
        command.req = req
        command.t_ring = time.monotonic_ns()
        data = self._encode(command)
        if (
            type(command) is Prepare
            and len(data) + TRACE_ROOM > self.commands.max_payload
            and (len(data) - _stamp_growth(req, command.t_ring) + TRACE_ROOM > self.commands.max_payload)
        ):
            # Valid JSON but too big for one ring slot (e.g. hundreds of take-profits): refuse, never crash.
            body = error_fields(codes.INVALID_SIGNAL, "signal too large for the engine's command slot")
            return self._reply_bytes(conn, body, accepted, signal_id)
        pending = Pending(
            conn,
            accepted.correlation_id,
            signal_id,
            accepted.envelope_ts,
            accepted.trace,
            t_read,
            time.monotonic_ns() + self.timeout_ns,
        )
        self.pending[req] = pending
        self._deadlines.append((pending.deadline_ns, req))
        if self.held or not self._try_send(pending, command, data):
            self._hold(req, pending, command, conn)
        return None

    def _try_send(
        self, pending: Pending, command: Prepare | Confirm | Abort, data: bytes | None = None
    ) -> bool:
        """Push ``command`` (``data``: encoded with a fresh ``t_ring``); False when the ring is full."""
        if data is None:
            command.t_ring = time.monotonic_ns()
            data = self._encode(command)
        if not self.commands.try_push(data):
            return False
        pending.sent = True
        pending.command = None
        self._commands_dirty = True
        return True

    def _hold(self, req: int, pending: Pending, command: Prepare | Confirm | Abort, conn: Connection) -> None:
        pending.command = command
        self.held.append(req)
        conn.pause()
        self._paused_for_ring.add(conn)
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry_handle is None:
            loop = asyncio.get_running_loop()
            self._retry_handle = loop.call_later(HELD_RETRY_S, self._retry_held)

    def _retry_held(self) -> None:
        self._retry_handle = None
        self.push_held()
        self.flush_commands()
        if self.held:
            self._schedule_retry()

    def push_held(self) -> None:
        held = self.held
        while held:
            req = held[0]
            pending = self.pending.get(req)
            if pending is None:  # answered BUSY at its deadline
                held.popleft()
                continue
            assert pending.command is not None
            if not self._try_send(pending, pending.command):
                return
            held.popleft()
        for conn in self._paused_for_ring:
            conn.resume()
        self._paused_for_ring.clear()

    def flush_commands(self) -> None:
        if self._commands_dirty:
            self._commands_dirty = False
            self.core_bell.ring()

    # --- replies from core ----------------------------------------------------------------

    def drain_replies(self) -> int:
        """Route every reply waiting on the reply ring; returns how many were taken."""
        ring = self.replies
        decode = self._decode_reply
        batches: dict[Connection, list[bytes]] = {}
        stamped: list[Stages] = []
        n = 0
        server_time = -1  # taken once per batch, at its first reply
        while True:
            view = ring.peek()
            if view is None:
                break
            reply: Reply | None
            try:
                reply = decode(view)
            except (msgspec.DecodeError, msgspec.ValidationError):
                reply = None  # a corrupt slot is skipped, not fatal
            ring.advance()
            n += 1
            if reply is None:
                continue
            if reply.req == PUSH_REQ:
                self._push_report(reply, batches)
                continue
            pending = self.pending.get(reply.req)
            if pending is None or pending.conn.conn_id != reply.conn:
                continue  # answered at its deadline already, or not ours
            del self.pending[reply.req]
            if pending.conn.closed:
                continue  # the client left
            if server_time < 0:
                server_time = int(self.wall_ms())
            data = self._render(pending, reply.fields, reply.stages, server_time)
            stamped.append(reply.stages)
            chunks = batches.get(pending.conn)
            if chunks is None:
                batches[pending.conn] = [data]
            else:
                chunks.append(data)
        for conn, chunks in batches.items():
            conn.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])
        if stamped:
            self.stage_samples.append((time.monotonic_ns(), stamped))
        return n

    def _push_report(self, reply: Reply, batches: dict[Connection, list[bytes]]) -> None:
        """An unsolicited line for one connection (§9 ``ingress.push_reports``): no correlationId."""
        conn = self.connections.get(reply.conn)
        if conn is None or conn.closed or not self.cfg.ingress.push_reports:
            return
        body = reply.fields if "type" in reply.fields else {"type": "execution_report", **reply.fields}
        data = conn.session.reply(body, correlation_id=None, signal_id=None, envelope_ts=None)
        batches.setdefault(conn, []).append(data)

    def _render(
        self, pending: Pending, fields: dict[str, Any], stages: Stages | None, server_time: int
    ) -> bytes:
        """Core's reply fields as the client gets them (what ``build_reply`` makes, built in one go)."""
        reply: dict[str, Any] = {}
        if pending.correlation_id is not None:
            reply["correlationId"] = pending.correlation_id
        if "signal_id" not in fields:
            reply["signal_id"] = pending.signal_id
        reply.update(fields)
        if pending.trace and stages is not None:
            trace = dict(zip(_STAGE_FIELDS, astuple(stages), strict=True))
            trace["t_write"] = time.monotonic_ns()
            reply["stages"] = trace
        envelope_ts = pending.envelope_ts
        reply["timestamp"] = js_int(envelope_ts) if envelope_ts is not None else server_time
        reply["server_time"] = server_time
        return pending.conn.session.encode(reply)

    def on_bell(self) -> None:
        """The reply ring's doorbell fired: drain, then sleep again without losing a wake-up."""
        self.bell.drain()
        while True:
            self.bell.cancel_sleep()
            self.drain_replies()
            self.bell.prepare_sleep()
            if not self.replies.has_data():
                break
        if self.held:
            self.push_held()
            self.flush_commands()

    # --- deadlines ------------------------------------------------------------------------

    def expire(self, now_ns: int) -> None:
        dl = self._deadlines
        while dl and dl[0][0] <= now_ns:
            _, req = dl.popleft()
            pending = self.pending.pop(req, None)
            if pending is None:
                continue
            if pending.sent:
                code, message = codes.ENGINE_NOT_READY, "core did not answer in time"
                self.stats_extra["notReadyReplies"] += 1
            else:
                code, message = codes.BUSY, "command ring full: request not sent, safe to retry"
                self.stats_extra["busyReplies"] += 1
            if not pending.conn.closed:
                body = error_fields(code, message)
                pending.conn.write(
                    pending.conn.session.reply(
                        body,
                        correlation_id=pending.correlation_id,
                        signal_id=pending.signal_id,
                        envelope_ts=pending.envelope_ts,
                    )
                )

    def counters(self) -> dict[str, int]:
        st = self.processor.stats
        values = {name: int(getattr(st, name, 0)) for name in COUNTER_NAMES if hasattr(st, name)}
        values.update(self.stats_extra)
        return values


async def serve(ctx: ChildContext) -> None:
    cfg = ctx.cfg
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    secret = hmac_secret(cfg)  # fail closed; never logged
    max_age_ns = cfg.supervisor.heartbeat_timeout_ms * 1_000_000
    server = IngressServer(
        cfg,
        secret=secret,
        commands=ctx.ring_out(CORE),
        core_bell=ctx.bell(CORE),
        replies=ctx.ring_in(CORE),
        bell=ctx.bell(),
        core_ready=lambda: ctx.is_ready(CORE, max_age_ns),
    )
    path = socket_path(cfg)
    sock = bind_socket(path)
    aserver = await loop.create_unix_server(server.new_connection, sock=sock)
    server.server = aserver
    bell_fd = server.bell.fileno()
    server.bell.prepare_sleep()
    loop.add_reader(bell_fd, server.on_bell)
    server.on_bell()  # replies left on the ring by a previous incarnation are consumed (and dropped)
    gc.collect()
    gc.freeze()
    ctx.set_state(ProcState.READY)
    ctx.log.info("FastPath listening on %s (max %d connections)", path, cfg.ingress.max_connections)
    published = dict.fromkeys(COUNTER_NAMES, 0)
    health = CounterWriter(ctx.board, INGRESS)
    latency = LatencyRecorder(health, INGRESS_HISTOGRAMS)
    health.set(INGRESS_SLOTS["accepting"], 1)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            now = time.monotonic_ns()
            server.expire(now)
            if server.replies.has_data():
                server.on_bell()
            ctx.beat()
            if server.stage_samples:
                record_replies(latency, server.stage_samples)
                server.stage_samples.clear()
                latency.flush()
            counters = server.counters()
            for i, name in enumerate(COUNTER_NAMES):
                value = counters.get(name, 0)
                if value != published[name]:
                    ctx.board.incr(INGRESS, i, value - published[name])
                    published[name] = value
    finally:
        ctx.set_state(ProcState.DRAINING)
        health.set(INGRESS_SLOTS["accepting"], 0)
        loop.remove_reader(bell_fd)
        aserver.close()
        for conn in list(server.connections.values()):
            conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        ctx.log.info("ingress stopped: %s", server.counters())


def main() -> None:
    ctx = ChildContext.from_env(INGRESS)
    try:
        asyncio.run(serve(ctx))
    finally:
        ctx.set_state(ProcState.STOPPED)
        ctx.close()


if __name__ == "__main__":
    main()
