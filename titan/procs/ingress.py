"""`ingress`: the FastPath Unix-socket server (fastpath.md §1-§13, issue #3).

One process, one epoll loop (:class:`Poller`). Per connection a sans-I/O
:class:`~titan.ingress.session.Session` turns bytes into replies (protocol failures, answered here)
and accepted requests. PING is answered here;
PREPARE/CONFIRM/ABORT go to core over the command ring, and core's replies come back on the reply ring,
routed by request id to the connection that asked, with correlationId/timestamp/server_time added.

Backpressure: a full command ring never drops and never blocks the event loop. Requests wait in one
FIFO (so a CONFIRM can never overtake its PREPARE), the connections that fed it stop being read, and a
request still waiting at its deadline gets ``BUSY`` (it never reached core). A request core does not
answer by its deadline gets ``ENGINE_NOT_READY``. A connection whose unread replies exceed
``ingress.max_output_bytes`` is closed, so a client that never reads costs the others nothing.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import select
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
_EV_OUT: Final = select.EPOLLOUT
_EV_HUP_ERR: Final = select.EPOLLHUP | select.EPOLLERR
_EV_IN_HUP_ERR: Final = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP
TICK_S: Final = 0.05  # heartbeat, deadlines, held-request retry when idle
HELD_RETRY_NS: Final = 500_000  # retry pushing held requests while the command ring is full
ACCEPTS_PER_WAKE: Final = 100
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


class Connection:
    """One client socket on the server's epoll loop (level-triggered).

    Reads go straight into the server's buffer (``recv_into``, one read per readiness, as asyncio
    does); replies are sent at once and only what the socket did not take is buffered (and sent when
    it is writable again). ``close`` stops reading, sends what is buffered, then closes; ``abort``
    drops it. ``closed`` is set by either: nothing is written after it.
    """

    __slots__ = (
        "_mask",
        "_out",
        "_sock",
        "closed",
        "conn_id",
        "counted",
        "fd",
        "paused",
        "server",
        "session",
    )

    def __init__(self, server: IngressServer, conn_id: int, sock: socket.socket) -> None:
        self.server = server
        self.conn_id = conn_id
        self.session = Session(server.processor, server.cfg.ingress.max_frame_bytes)
        self._sock: socket.socket | None = sock
        self.fd = sock.fileno()
        self._out = bytearray()  # replies the socket has not taken yet
        self._mask = 0  # events registered with the loop (0: not registered)
        self.closed = False
        self.paused = False
        self.counted = False

    # --- loop callbacks -------------------------------------------------------------------

    def on_event(self, events: int) -> None:
        if events & _EV_OUT or (events & _EV_HUP_ERR and self._out):
            self._flush()
        if events & _EV_IN_HUP_ERR and not self.paused and not self.closed and self._sock is not None:
            server = self.server
            buf = server.read_buffer
            try:
                n = self._sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._lost()
                return
            if n == 0:  # the client closed its side: what it sent was answered, nothing more comes
                self.close()
                return
            # The buffer is shared: its bytes are copied out before anything else can read into it.
            self.data_received(buf[:n].tobytes())

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
        # core's doorbell is rung once per loop turn, after every ready connection was read
        # (in serve, after the poll batch), not once per connection.

    # --- output ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        sock = self._sock
        if self.closed or sock is None:
            return
        out = self._out
        if not out:
            try:
                n = sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._lost()
                return
            if n == len(data):
                return
            out += memoryview(data)[n:]
            self._update_mask()
        else:
            out += data
        if len(out) > self.server.cfg.ingress.max_output_bytes:
            # A client that does not read its replies: bounded memory, nobody else waits on it.
            self.server.stats_extra["slowReaderCloses"] += 1
            self.abort()

    def _flush(self) -> None:
        sock = self._sock
        out = self._out
        if sock is None:
            return
        if out:
            try:
                n = sock.send(out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._lost()
                return
            del out[:n]
        if not out:
            if self.closed:
                self._finish()
            else:
                self._update_mask()

    def _update_mask(self) -> None:
        want = 0
        if not self.paused and not self.closed:
            want |= select.EPOLLIN
        if self._out:
            want |= select.EPOLLOUT
        if want != self._mask:
            self.server.poller.set_mask(self.fd, want, self.on_event)
            self._mask = want

    def close(self) -> None:
        """Stop reading; send what is buffered, then close (a write after this is dropped)."""
        if self.closed or self._sock is None:
            return
        self.closed = True
        if self._out:
            self._update_mask()  # writable events only, until the buffer is sent
        else:
            self._finish()

    def abort(self) -> None:
        """Close now, dropping anything unsent."""
        self.closed = True
        self._out.clear()
        self._finish()

    def _lost(self) -> None:
        self.closed = True
        self._out.clear()
        self._finish()

    def _finish(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        if self._mask:
            self.server.poller.set_mask(self.fd, 0, None)
            self._mask = 0
        sock.close()
        self.closed = True
        self.server.on_disconnect(self)

    def pause(self) -> None:
        if not self.paused and not self.closed:
            self.paused = True
            self._update_mask()

    def resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self._update_mask()


class Poller:
    """epoll with one callback per descriptor: the whole event loop ingress needs.

    asyncio costs tens of µs of Python per wake-up on this path (its run queue, handles, selector
    key maps, transports); this costs a dict lookup and a call.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.on_wake: Callable[[], None] | None = None  # called when the wait ends, before the handlers

    def set_mask(self, fd: int, mask: int, handler: Callable[[int], None] | None) -> None:
        """Watch ``fd`` for ``mask`` with ``handler``; mask 0 stops watching it."""
        if not mask or handler is None:
            if self.handlers.pop(fd, None) is not None:
                self._epoll.unregister(fd)
            return
        if fd in self.handlers:
            self._epoll.modify(fd, mask)
        else:
            self._epoll.register(fd, mask)
        self.handlers[fd] = handler

    def poll(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` and run the handler of every ready descriptor."""
        try:
            events = self._epoll.poll(timeout_s)
        except InterruptedError:
            events = []
        if self.on_wake is not None:
            self.on_wake()
        handlers = self.handlers
        for fd, ev in events:
            handler = handlers.get(fd)  # gone if an earlier handler of this batch closed it
            if handler is None:
                continue
            try:
                handler(ev)
            except Exception:  # a bug in one callback must not stop the server (asyncio logs and goes on)
                logging.getLogger("titan.ingress").exception("error in an event handler")

    def close(self) -> None:
        self._epoll.close()


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
        self.retry_at_ns = 0  # when to retry pushing held requests (0: nothing held)
        self.poller = Poller()
        self._encode = encoder().encode
        self._decode_reply = decoder(CORE_TO_INGRESS).decode
        self.timeout_ns = ic.core_reply_timeout_ms * 1_000_000
        self.stats_extra = {"busyReplies": 0, "notReadyReplies": 0, "slowReaderCloses": 0}
        # (t_write_ns, stamps) per written batch; turned into latency histograms on the tick (titan.health).
        self.stage_samples: list[tuple[int, list[Stages]]] = []
        self.listener: socket.socket | None = None

    # --- connections ----------------------------------------------------------------------

    def listen(self, sock: socket.socket) -> None:
        self.listener = sock
        self.poller.set_mask(sock.fileno(), select.EPOLLIN, self.on_accept)

    def on_accept(self, events: int) -> None:
        listener = self.listener
        assert listener is not None
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of descriptors: the client waits in the backlog
                logging.getLogger("titan.ingress").warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            self.new_connection(sock)

    def new_connection(self, sock: socket.socket) -> Connection:
        conn = Connection(self, next(self._conn_ids), sock)
        conn._update_mask()  # registers it for reading
        self.on_connect(conn)
        return conn

    def on_connect(self, conn: Connection) -> None:
        if len(self.connections) >= self.cfg.ingress.max_connections:
            conn.write(max_connections_line(self.wall_ms()))
            conn.close()
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
        if not self.retry_at_ns:
            self.retry_at_ns = time.monotonic_ns() + HELD_RETRY_NS

    def retry_held(self) -> None:
        self.retry_at_ns = 0
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

    def on_bell(self, events: int = 0) -> None:
        """The reply ring's doorbell fired: consume the wake-up, route what core sent."""
        self.bell.drain()
        self.take_replies()

    def take_replies(self) -> None:
        """Route every waiting reply; then push held requests, as core made room."""
        replies = self.replies
        while replies.has_data():
            self.drain_replies()
        if self.held:
            self.push_held()
            self.flush_commands()

    def wake(self) -> None:
        """Back from the poll: core need not ring until :meth:`sleep_unless_work`."""
        self.bell.cancel_sleep()

    def sleep_unless_work(self) -> bool:
        """Tell core we are about to sleep; False when replies already wait (then do not sleep).

        The doorbell's protocol: flag, fence, re-check the ring. Between :meth:`wake` and this, core
        pushes replies without a write to the FIFO and the end of the loop turn takes them.
        """
        self.bell.prepare_sleep()
        return not self.replies.has_data()

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


def serve(ctx: ChildContext) -> None:
    cfg = ctx.cfg
    stopping: list[int] = []
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # a signal wakes the poll at once
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
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
    poller = server.poller
    poller.on_wake = server.wake

    def drain_wakeup(events: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(wake_r, 512):
                pass

    poller.set_mask(wake_r, select.EPOLLIN, drain_wakeup)
    path = socket_path(cfg)
    sock = bind_socket(path)
    server.listen(sock)
    bell_fd = server.bell.fileno()
    poller.set_mask(bell_fd, select.EPOLLIN, server.on_bell)
    server.on_bell()  # replies left on the ring by a previous incarnation are consumed (and dropped)
    gc.collect()
    gc.freeze()
    ctx.set_state(ProcState.READY)
    ctx.log.info("FastPath listening on %s (max %d connections)", path, cfg.ingress.max_connections)
    published = dict.fromkeys(COUNTER_NAMES, 0)
    health = CounterWriter(ctx.board, INGRESS)
    latency = LatencyRecorder(health, INGRESS_HISTOGRAMS)
    health.set(INGRESS_SLOTS["accepting"], 1)
    tick_ns = int(TICK_S * 1e9)
    next_tick = time.monotonic_ns() + tick_ns
    try:
        while not stopping:
            now = time.monotonic_ns()
            wake_at = next_tick
            if server.retry_at_ns and server.retry_at_ns < wake_at:
                wake_at = server.retry_at_ns
            poller.poll(max(0, wake_at - now) / 1e9 if server.sleep_unless_work() else 0.0)
            server.take_replies()  # what core sent while this turn ran (no FIFO write for those)
            server.flush_commands()  # one doorbell ring for every command this turn pushed
            now = time.monotonic_ns()
            if server.retry_at_ns and now >= server.retry_at_ns:
                server.retry_held()
            if now < next_tick:
                continue
            next_tick = now + tick_ns
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
        poller.set_mask(bell_fd, 0, None)
        poller.set_mask(sock.fileno(), 0, None)
        sock.close()
        for conn in list(server.connections.values()):
            conn.close()
            conn._flush()  # one last try for what is buffered; then it is dropped
            conn.abort()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        poller.close()
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
        ctx.log.info("ingress stopped: %s", server.counters())


def main() -> None:
    ctx = ChildContext.from_env(INGRESS)
    try:
        serve(ctx)
    finally:
        ctx.set_state(ProcState.STOPPED)
        ctx.close()


if __name__ == "__main__":
    main()
