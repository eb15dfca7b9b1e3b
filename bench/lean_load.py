"""A lean open-loop FastPath load generator, so the machine's CPU goes to the engine, not to the client.

Used by the open loop of ``make bench`` (bench/fastpath_load.py) and by the soak (tests/core/test_soak.py).
One asyncio protocol per connection frames and decodes replies itself (only the fields the generator
reads) and sends each CONFIRM straight from its PREPARE's reply; the caller paces PREPAREs from a single
coroutine. No task, future or timer per intent. Requests are byte-for-byte what ``FastPathClient``
sends (same signal keys in the same order, same envelope, NDJSON or binary framing), with the
correlation id carrying the intent: ``2 * intent`` for its PREPARE, ``2 * intent + 1`` for its CONFIRM
(binary: the number itself; NDJSON: ``<source>-<ms>-<number>`` as the client formats it).

:class:`LeanLoad` counts what happened; subclasses override :meth:`LeanLoad.on_stamps`,
:meth:`LeanLoad.confirm_sent` and :meth:`LeanLoad.finished` to record more.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import msgspec

from titan.ingress.envelope import BINARY_MODE_MARKER, binary_request, ndjson_request
from titan.ingress.signing import secret_key

Framing = Literal["ndjson", "binary"]
DIRECTIONS = ("LONG", "SHORT")  # alternating, so the paper position stays flat
MAX_REPLY_BYTES = 1 << 22


class LeanReply(msgspec.Struct):
    """The fields of a FastPath reply the generator reads (the rest is skipped by the decoder)."""

    correlationId: str | None = None
    prepared: bool | None = None
    executed: bool | None = None
    status: str | None = None
    reason: str | None = None
    error: str | None = None
    fill_price: float | None = None
    stages: dict[str, int] | None = None


_decode_binary = msgspec.msgpack.Decoder(LeanReply).decode
_decode_json = msgspec.json.Decoder(LeanReply).decode


class LeanConnection(asyncio.Protocol):
    """One FastPath connection, pipelined: PREPAREs from the pacer, each CONFIRM sent from its
    PREPARE's reply; the CONFIRMs one read causes are written with one send."""

    def __init__(self, gen: LeanLoad) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.held: list[bytes] | None = None  # CONFIRMs answering one read, written together
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.gen.framing == "binary":
            transport.write(BINARY_MODE_MARKER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        self.gen.connection_lost(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, n = 0, len(buf)
        gen = self.gen
        on_reply = gen.on_reply
        held: list[bytes] = []
        self.held = held
        gen.recv_ns = time.monotonic_ns()  # one stamp per read: its replies arrived together
        if gen.framing == "binary":
            while n - pos >= 4:
                end = pos + 4 + int.from_bytes(buf[pos : pos + 4], "big")
                if end > n:
                    break
                on_reply(self, _decode_binary(buf[pos + 4 : end]))
                pos = end
        else:
            while (end := buf.find(b"\n", pos)) >= 0:
                line = buf[pos:end]
                pos = end + 1
                if line.strip():
                    try:
                        reply = _decode_json(line)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        continue  # the client library drops unparsable lines too
                    on_reply(self, reply)
        if pos:
            del buf[:pos]
        self.held = None
        if len(buf) > MAX_REPLY_BYTES and self.transport is not None:
            self.transport.close()  # a server we cannot parse
        elif held and self.transport is not None:
            self.transport.write(b"".join(held))  # one send for every CONFIRM this read caused

    def send(self, frame: bytes) -> bool:
        if self.transport is None:
            return False
        if self.held is not None:
            self.held.append(frame)
        else:
            self.transport.write(frame)
        return True


class LeanLoad:
    """PREPARE → CONFIRM intents; ``prepare(conn, i)`` sends intent ``i``'s PREPARE (the caller paces).

    ``in_flight`` counts intents sent and not finished; ``idle`` is set when it drops to zero. An intent
    finishes on its CONFIRM's reply, on a PREPARE reply that is not ``prepared``, on :meth:`expire`
    (no reply in time) or when its connection is lost.
    """

    def __init__(
        self,
        secret: str,
        *,
        prefix: str,
        framing: Framing = "binary",
        symbol: str = "BTCUSDT",
        source: str = "scavenger",
        position_size: float = 100,
        velocity: float = 0.01,
        trace_prepare: bool = True,
        trace_confirm: bool = True,
    ) -> None:
        from bench.fastpath_load import PriceRef  # local: fastpath_load imports this module

        if framing not in ("ndjson", "binary"):
            raise ValueError(f"framing must be 'ndjson' or 'binary', not {framing!r}")
        self.framing: Framing = framing
        self.key = secret_key(secret)
        self.prefix = prefix
        self.symbol = symbol
        self.source = source
        self.position_size = position_size
        self.velocity = velocity
        self.trace_prepare = trace_prepare
        self.trace_confirm = trace_confirm
        self.prices = PriceRef()
        self.in_flight = 0
        self.executed = 0
        self.idle = asyncio.Event()
        self.now_ms = int(time.time() * 1000)  # the pacer refreshes it once per wake-up
        self.recv_ns = 0  # CLOCK_MONOTONIC of the read being handled
        # intent → (connection, phase start ns) while in flight: for expire() and lost connections
        self.pending: dict[int, tuple[LeanConnection, int]] = {}

    async def connect(self, socket_path: str, n: int) -> list[LeanConnection]:
        loop = asyncio.get_running_loop()
        conns: list[LeanConnection] = []
        for _ in range(n):
            _, conn = await loop.create_unix_connection(lambda: LeanConnection(self), socket_path)
            conns.append(conn)
        return conns

    @staticmethod
    async def close(conns: list[LeanConnection]) -> None:
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.gather(*(c.lost for c in conns))

    # --- requests ---------------------------------------------------------------------------

    def _frame(self, signal: dict[str, object], corr: int, now_ms: int, trace: bool) -> bytes:
        if self.framing == "binary":
            return binary_request(self.key, signal, str(corr), now_ms, trace=trace)
        data = ndjson_request(self.key, signal, f"{self.source}-{now_ms}-{corr}", now_ms)
        return data[:-2] + b',"trace":true}\n' if trace else data

    def prepare(self, conn: LeanConnection, i: int) -> bool:
        """Send intent ``i``'s PREPARE; False (nothing counted) if the connection is gone."""
        low, high = self.prices.zone(self.symbol)
        now_ms = self.now_ms
        signal: dict[str, object] = {
            "signal_id": f"{self.prefix}-{i}",
            "source": self.source,
            "symbol": self.symbol,
            "direction": DIRECTIONS[i & 1],
            "entry_zone": {"min": low, "max": high},
            "stop_loss": 0,
            "take_profits": [],
            "confidence": 90,
            "leverage": 1,
            "position_size": self.position_size,
            "velocity": self.velocity,
            "timestamp": now_ms,
            "signal_type": "PREPARE",
        }
        if not conn.send(self._frame(signal, 2 * i, now_ms, self.trace_prepare)):
            return False
        self.in_flight += 1
        self.pending[i] = (conn, time.monotonic_ns())
        return True

    # --- replies ----------------------------------------------------------------------------

    def on_reply(self, conn: LeanConnection, r: LeanReply) -> None:
        if r.stages is not None:
            self.on_stamps(r.stages)
        cid = r.correlationId
        if not cid:
            return  # not an answer to a request (unsolicited lines)
        try:
            corr = int(cid if self.framing == "binary" else cid.rpartition("-")[2])
        except ValueError:
            return
        i, confirm = corr >> 1, corr & 1
        if i not in self.pending:
            return  # already finished (expired, or its connection was lost)
        if not confirm and r.prepared:
            now_ms = int(time.time() * 1000)
            signal: dict[str, object] = {
                "signal_id": f"{self.prefix}-{i}",
                "signal_type": "CONFIRM",
                "timestamp": now_ms,
                "source": self.source,
            }
            if conn.send(self._frame(signal, corr + 1, now_ms, self.trace_confirm)):
                self.pending[i] = (conn, self.recv_ns)
                self.confirm_sent(i, self.recv_ns)
                return
            self._finish(i, False, "NOT_CONNECTED", None)
        elif confirm and r.executed:
            if r.fill_price:
                self.prices.price[self.symbol] = float(r.fill_price)
            self._finish(i, True, "", r)
        else:
            self._finish(i, False, "CONFIRM" if confirm else "PREPARE", r)

    def _finish(self, i: int, ok: bool, phase: str, r: LeanReply | None) -> None:
        del self.pending[i]
        if ok:
            self.executed += 1
        self.in_flight -= 1
        self.finished(i, ok, phase, r)
        if not self.in_flight:
            self.idle.set()

    def expire(self, timeout_ns: int, now_ns: int, reason: str = "FastPathTimeout") -> int:
        """Finish every intent whose current request has waited longer than ``timeout_ns``; how many."""
        late = [i for i, (_, t) in self.pending.items() if now_ns - t > timeout_ns]
        for i in late:
            self._finish(i, False, reason, None)
        return len(late)

    def connection_lost(self, conn: LeanConnection) -> None:
        for i in [i for i, (c, _) in self.pending.items() if c is conn]:
            self._finish(i, False, "FastPathError", None)

    # --- hooks ------------------------------------------------------------------------------

    def on_stamps(self, stages: dict[str, int]) -> None:
        """Every traced reply's stage stamps (before it is matched to its intent)."""

    def confirm_sent(self, i: int, t_ns: int) -> None:
        """Intent ``i``'s CONFIRM was sent (queued for the write at the end of this read) at ``t_ns``."""

    def finished(self, i: int, ok: bool, phase: str, r: LeanReply | None) -> None:
        """Intent ``i`` is done: executed (``ok``), or failed at ``phase`` (``PREPARE``/``CONFIRM`` with the
        reply, or ``FastPathTimeout``/``FastPathError``/``NOT_CONNECTED`` without one)."""


def failure_reason(phase: str, r: LeanReply | None) -> str:
    """The open loop's failure key, as it was with ``FastPathClient``: ``PREPARE: <reason>``,
    ``CONFIRM: <reason>`` or the transport failure's name."""
    if r is None:
        return phase
    return f"{phase}: {r.reason or r.error or r.status or 'unexpected reply'}"
