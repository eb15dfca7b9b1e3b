"""Stream framers (fastpath.md §2, §3, §13.2): bytes in, complete frames or framing errors out."""

from __future__ import annotations

import enum
from typing import Final

NDJSON_FIRST_BYTES: Final = frozenset(b"{ \t\r\n")
BINARY_MARKER: Final = 0xB1
LENGTH_BYTES: Final = 4


class Framing(enum.Enum):
    NDJSON = "ndjson"
    BINARY = "binary"


def select_framing(first_byte: int) -> Framing | None:
    """Framing chosen by a connection's first byte; None means unknown framing (reply and close)."""
    if first_byte in NDJSON_FIRST_BYTES:
        return Framing.NDJSON
    if first_byte == BINARY_MARKER:
        return Framing.BINARY
    return None


class FrameError(enum.Enum):
    TOO_LARGE = "too_large"  # NDJSON: recoverable (discarded through the next newline)
    ZERO_LENGTH = "zero_length"  # binary: fatal, the stream cannot be resynchronised
    BINARY_TOO_LARGE = "binary_too_large"  # binary: fatal


FrameItem = bytes | FrameError


class NdjsonFramer:
    """Splits on ``\\n``; strips one ``\\r``; skips empty lines; buffers at most ``max_frame + 1`` bytes.

    A line longer than ``max_frame`` yields one ``TOO_LARGE`` as soon as it is known to be too long, and
    everything through its newline is discarded; the connection stays usable.
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._discarding = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[FrameItem]:
        out: list[FrameItem] = []
        start = 0
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return out
            self._discarding = False
            start = nl + 1
        buf = self._buf
        limit = self.max_frame
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if buf:
                buf += data[start:nl]
                line = bytes(buf)
                buf.clear()
            else:
                line = data[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                out.append(FrameError.TOO_LARGE)
            elif line:
                out.append(line)
        rest = len(data) - start
        if rest:
            # One extra byte is allowed for a '\r' that will be stripped.
            if len(buf) + rest > limit + 1:
                buf.clear()
                self._discarding = True
                out.append(FrameError.TOO_LARGE)
            else:
                buf += data[start:]
        return out


class BinaryFramer:
    """``u32 big-endian length ‖ body``; a zero or oversized length is fatal (the framer stops)."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self.failed = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[FrameItem]:
        out: list[FrameItem] = []
        if self.failed:
            return out
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        while n - pos >= LENGTH_BYTES:
            length = int.from_bytes(buf[pos : pos + LENGTH_BYTES], "big")
            if length == 0 or length > self.max_frame:
                self.failed = True
                buf.clear()
                out.append(FrameError.ZERO_LENGTH if length == 0 else FrameError.BINARY_TOO_LARGE)
                return out
            end = pos + LENGTH_BYTES + length
            if end > n:
                break
            out.append(bytes(buf[pos + LENGTH_BYTES : end]))
            pos = end
        if pos:
            del buf[:pos]
        return out


def encode_binary_frame(body: bytes) -> bytes:
    return len(body).to_bytes(LENGTH_BYTES, "big") + body
