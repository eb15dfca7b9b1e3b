"""One client connection, sans-I/O: bytes in → replies to write, requests to dispatch, or close.

The first byte selects the framing (§2). Every complete frame yields exactly one reply or one
:class:`~titan.ingress.protocol.Accepted` request; framing errors that cannot be resynchronised
(unknown framing, bad binary length) yield one reply and a close.
"""

from __future__ import annotations

from collections.abc import Callable

from titan.ingress import codes
from titan.ingress.framing import BinaryFramer, FrameError, Framing, NdjsonFramer, select_framing
from titan.ingress.protocol import Accepted, Rejected, RequestProcessor
from titan.ingress.replies import ReplyFields, build_reply, encode_binary, encode_ndjson


class FeedResult:
    """What one read produced, in stream order: ``replies`` are already encoded for this connection."""

    __slots__ = ("accepted", "close", "replies")

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.accepted: list[Accepted] = []
        self.close = False


class Session:
    def __init__(self, processor: RequestProcessor, max_frame: int) -> None:
        self.processor = processor
        self.max_frame = max_frame
        self.framing: Framing | None = None
        self._framer: NdjsonFramer | BinaryFramer | None = None
        self._encode: Callable[[ReplyFields], bytes] = encode_ndjson
        self.closed = False

    @property
    def buffered(self) -> int:
        return self._framer.buffered if self._framer is not None else 0

    def encode(self, reply: ReplyFields) -> bytes:
        """Encode a complete reply map in this connection's framing."""
        return self._encode(reply)

    def reply(
        self,
        body: ReplyFields,
        *,
        correlation_id: str | None = None,
        signal_id: str | None = None,
        envelope_ts: float | None = None,
    ) -> bytes:
        """Build (mandatory fields added) and encode one reply."""
        full = build_reply(
            body,
            correlation_id=correlation_id,
            signal_id=signal_id,
            envelope_ts=envelope_ts,
            server_now_ms=self.processor.clock_ms(),
        )
        return self._encode(full)

    def reply_rejected(self, rejected: Rejected) -> bytes:
        return self.reply(
            rejected.body,
            correlation_id=rejected.correlation_id,
            signal_id=rejected.signal_id,
            envelope_ts=rejected.envelope_ts,
        )

    def _fatal(self, result: FeedResult, code: str, message: str) -> FeedResult:
        rejected = self.processor.framing_error(code, message)
        result.replies.append(self.reply_rejected(rejected))
        result.close = True
        self.closed = True
        return result

    def feed(self, data: bytes) -> FeedResult:
        result = FeedResult()
        if self.closed or not data:
            return result
        if self._framer is None:
            self.framing = select_framing(data[0])
            if self.framing is None:
                return self._fatal(result, codes.IPC_ERROR, codes.MSG_UNKNOWN_FRAMING)
            if self.framing is Framing.BINARY:
                self._framer = BinaryFramer(self.max_frame)
                self._encode = encode_binary
                data = data[1:]
            else:
                self._framer = NdjsonFramer(self.max_frame)
        binary = self.framing is Framing.BINARY
        process = self.processor.process_binary if binary else self.processor.process_json
        for item in self._framer.feed(data):
            if isinstance(item, FrameError):
                if item is FrameError.TOO_LARGE:
                    rejected = self.processor.framing_error(
                        codes.FRAME_TOO_LARGE, "frame exceeds max_frame_bytes"
                    )
                    result.replies.append(self.reply_rejected(rejected))
                    continue
                if item is FrameError.ZERO_LENGTH:
                    return self._fatal(result, codes.IPC_ERROR, codes.MSG_BAD_LENGTH)
                return self._fatal(result, codes.FRAME_TOO_LARGE, "frame exceeds max_frame_bytes")
            try:
                verdict = process(item)
            except Exception as exc:  # never let one frame kill the connection (§11: internal exception)
                verdict = self.processor.framing_error(
                    codes.IPC_ERROR, f"{codes.MSG_INTERNAL}: {type(exc).__name__}"
                )
            if isinstance(verdict, Accepted):
                result.accepted.append(verdict)
            else:
                result.replies.append(self.reply_rejected(verdict))
        return result
