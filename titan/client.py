"""Async FastPath client for strategies, ``titan send`` and ``bench/`` (fastpath.md §4, §12, §13.2).

Speaks NDJSON exactly like the TypeScript ``FastPathClient`` (same correlationId format, signed
canonical JSON) or the binary framing. Many requests may be in flight on one connection; replies
are matched by correlationId. Replies are typed (:class:`Reply`) and returned as they are, error
replies included (check ``reply.error`` / ``reply.ok``); transport failures raise
:class:`FastPathError` (:class:`FastPathTimeout` when no reply arrives in time). After a lost
connection the client reconnects in the background with exponential backoff and jitter; requests
made while disconnected fail fast with ``NOT_CONNECTED`` (as the TypeScript client does).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import time
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

from titan.ingress.envelope import BINARY_MODE_MARKER, binary_request, ndjson_request
from titan.ingress.framing import BinaryFramer, FrameError, NdjsonFramer
from titan.ingress.replies import Reply
from titan.ingress.signing import secret_key

__all__ = ["FastPathClient", "FastPathError", "FastPathTimeout", "Reply"]

Framing = Literal["ndjson", "binary"]
MAX_REPLY_BYTES = 1 << 22
WRITE_HIGH_WATER = 1 << 16


class FastPathError(Exception):
    """The request could not be completed at the transport level (not connected, connection lost)."""


class FastPathTimeout(FastPathError, TimeoutError):
    """No reply within the timeout (the request may still have been processed)."""


def _expire(fut: asyncio.Future[Reply], limit: float) -> None:
    if not fut.done():
        fut.set_exception(FastPathTimeout(f"IPC_TIMEOUT: No response received within {int(limit * 1000)}ms"))


class FastPathClient:
    def __init__(
        self,
        socket_path: str,
        secret: str,
        *,
        source: str = "scavenger",
        framing: Framing = "ndjson",
        timeout: float = 1.0,
        max_reconnect_attempts: int = 10,
        base_reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        on_message: Callable[[Reply], None] | None = None,
    ) -> None:
        if framing not in ("ndjson", "binary"):
            raise ValueError(f"framing must be 'ndjson' or 'binary', not {framing!r}")
        self.socket_path = socket_path
        self.source = source
        self.framing: Framing = framing
        self.timeout = timeout
        self.max_reconnect_attempts = max_reconnect_attempts
        self.base_reconnect_delay = base_reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.on_message = on_message  # unsolicited lines (no correlationId), e.g. execution reports
        self._key = secret_key(secret)
        self._counter = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self._decode = (
            msgspec.json.Decoder(Reply).decode
            if framing == "ndjson"
            else msgspec.msgpack.Decoder(Reply).decode
        )
        self.reconnects = 0

    # --- connection -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open the connection (raises ``OSError`` if nobody listens)."""
        self._closing = False
        sock = await self._connect_socket()
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_REPLY_BYTES)
        if self.framing == "binary":
            writer.write(BINARY_MODE_MARKER)
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read_loop(reader, writer))

    async def _connect_socket(self) -> socket.socket:
        """Non-blocking connect that retries while the server's accept backlog is full.

        For AF_UNIX, EAGAIN from connect() means "backlog full, try again", not "in progress";
        asyncio's sock_connect treats it as in progress and hands back an unconnected socket.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        deadline = time.monotonic() + max(self.timeout, 1.0)
        pause = 0.001
        try:
            while True:
                try:
                    sock.connect(self.socket_path)
                    return sock
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ConnectionRefusedError(
                            f"{self.socket_path}: accept backlog stayed full"
                        ) from None
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.05)
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        self._closing = True
        for task in (self._reconnect_task, self._reader_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._reconnect_task = self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None
        self._fail_pending("Client disconnecting")

    async def __aenter__(self) -> FastPathClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _fail_pending(self, message: str) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(FastPathError(message))

    async def _read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = NdjsonFramer(MAX_REPLY_BYTES) if self.framing == "ndjson" else BinaryFramer(MAX_REPLY_BYTES)
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for item in framer.feed(data):
                    if isinstance(item, FrameError):
                        return  # a server we cannot parse: drop the connection
                    self._dispatch(item)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
                self._fail_pending("Connection closed")
                if not self._closing:
                    self._reconnect_task = asyncio.create_task(self._reconnect())

    def _dispatch(self, frame: bytes) -> None:
        try:
            reply = self._decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return  # the TypeScript client also drops unparsable lines
        corr = reply.correlationId
        fut = self._pending.pop(corr, None) if corr is not None else None
        if fut is not None:
            if not fut.done():
                fut.set_result(reply)
        elif self.on_message is not None:
            self.on_message(reply)

    async def _reconnect(self) -> None:
        for attempt in range(1, self.max_reconnect_attempts + 1):
            delay = min(self.base_reconnect_delay * 2 ** (attempt - 1), self.max_reconnect_delay)
            await asyncio.sleep(delay * (1 + random.random() * 0.1))
            if self._closing:
                return
            try:
                await self.connect()
            except OSError:
                continue
            self.reconnects += 1
            return

    # --- requests ---------------------------------------------------------------------------

    def _next_correlation_id(self) -> str:
        n = next(self._counter)
        if self.framing == "binary":
            return str(n)
        return f"{self.source}-{int(time.time() * 1000)}-{n}"

    async def send_raw(
        self, signal: dict[str, object], *, trace: bool = False, timeout: float | None = None
    ) -> Reply:
        """Sign and send any signal; wait for its reply."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise FastPathError("NOT_CONNECTED")
        corr = self._next_correlation_id()
        now_ms = int(time.time() * 1000)
        if self.framing == "ndjson":
            data = ndjson_request(self._key, signal, corr, now_ms)
            if trace:
                data = data[:-2] + b',"trace":true}\n'
        else:
            data = binary_request(self._key, signal, corr, now_ms, trace=trace)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Reply] = loop.create_future()
        self._pending[corr] = fut
        writer.write(data)
        if writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            await writer.drain()
        limit = self.timeout if timeout is None else timeout
        # One timer on the future itself: asyncio.wait_for adds a second future and callbacks per request.
        timer = loop.call_later(limit, _expire, fut, limit)
        try:
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(corr, None)

    def _stamp(self, signal: dict[str, object]) -> dict[str, object]:
        signal["timestamp"] = int(time.time() * 1000)
        return signal

    async def prepare(
        self,
        signal_id: str,
        symbol: str,
        direction: Literal["LONG", "SHORT"],
        entry_min: float,
        entry_max: float,
        *,
        position_size: float | None = None,
        stop_loss: float = 0,
        take_profits: Sequence[float] = (),
        confidence: float = 90,
        leverage: float = 1,
        trace: bool = False,
        **extra: object,
    ) -> Reply:
        signal: dict[str, object] = {
            "signal_id": signal_id,
            "source": self.source,
            "symbol": symbol,
            "direction": direction,
            "entry_zone": {"min": entry_min, "max": entry_max},
            "stop_loss": stop_loss,
            "take_profits": list(take_profits),
            "confidence": confidence,
            "leverage": leverage,
        }
        if position_size is not None:
            signal["position_size"] = position_size
        signal.update(extra)
        self._stamp(signal)
        signal["signal_type"] = "PREPARE"
        return await self.send_raw(signal, trace=trace)

    async def confirm(self, signal_id: str, *, trace: bool = False) -> Reply:
        signal: dict[str, object] = {"signal_id": signal_id, "signal_type": "CONFIRM"}
        self._stamp(signal)
        signal["source"] = self.source
        return await self.send_raw(signal, trace=trace)

    async def abort(self, signal_id: str) -> Reply:
        signal: dict[str, object] = {"signal_id": signal_id, "signal_type": "ABORT"}
        self._stamp(signal)
        signal["source"] = self.source
        return await self.send_raw(signal)

    async def ping(self) -> Reply:
        """PING waits 5 s, as the TypeScript client does."""
        return await self.send_raw(self._stamp({"signal_type": "PING"}), timeout=max(self.timeout, 5.0))
