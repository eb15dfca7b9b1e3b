"""Bounded on-disk spool for events while NATS is unreachable (nats.md §13.5).

Records are appended in order to segment files as ``[u32 length][u32 crc32][bytes]`` frames
(little endian). Appends are buffered until the caller's :meth:`Spool.write` (to the OS) or
:meth:`Spool.flush` (write and fsync once for the whole group). :meth:`Spool.read` replays
unpublished records in order; :meth:`Spool.commit` marks them published (the head position is
persisted atomically) and deletes fully published segments.

Every record written since the spool was opened is also kept in memory (up to ``memory_bytes`` of
the newest unpublished ones), so a publisher that keeps up reads what it just wrote without touching
the disk; only records from before a restart (recovery) or older than that window are read back
from the segment files. An appended record may carry an ``item`` (the bridge's decoded
publication) that :meth:`Spool.read` hands back with it while it comes from memory.

On open, a torn or corrupt tail (crash mid-write) is detected by length and checksum and truncated
away. The spool is bounded by ``max_bytes`` of unpublished frames; a full spool raises
:class:`SpoolFull`, it never drops silently.
"""

from __future__ import annotations

import os
import struct
import zlib
from bisect import bisect_right
from pathlib import Path
from typing import Any

import msgspec

from titan.events.payloads import Publication

_FRAME = struct.Struct("<II")
_SEGMENT_GLOB = "spool-*.log"
_HEAD_FILE = "head"
MAX_RECORD_BYTES = 64 * 1024 * 1024


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` of unpublished records; the record was not appended."""


class SpoolPosition(msgspec.Struct, frozen=True, order=True):
    segment: int
    offset: int


class SpooledRecord(msgspec.Struct, frozen=True):
    data: bytes
    end: SpoolPosition  # commit this position once ``data`` (and everything before it) is published
    item: Any = None  # what the writer passed to append() with it (only for a record read from memory)


def _end(record: SpooledRecord) -> SpoolPosition:
    return record.end


def _segment_name(index: int) -> str:
    return f"spool-{index:012d}.log"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan(path: Path, start: int) -> tuple[int, int, int]:
    """``(records, bytes, valid_end)`` of the valid frames of ``path`` from ``start``."""
    records = 0
    size = 0
    with path.open("rb") as f:
        f.seek(start)
        offset = start
        while True:
            header = f.read(_FRAME.size)
            if len(header) < _FRAME.size:
                break
            length, crc = _FRAME.unpack(header)
            if length > MAX_RECORD_BYTES:
                break
            body = f.read(length)
            if len(body) < length or zlib.crc32(body) != crc:
                break
            offset += _FRAME.size + length
            records += 1
            size += _FRAME.size + length
    return records, size, offset


class Spool:
    """Single-writer spool in ``directory`` (one bridge process owns it)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int = 8 * 1024 * 1024,
        memory_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be > 0")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.memory_bytes = memory_bytes
        self.truncated_bytes = 0  # torn/corrupt bytes dropped at open (crash evidence)
        directory.mkdir(parents=True, exist_ok=True)
        self._head_path = str(directory / _HEAD_FILE)
        self._head_tmp_path = str(directory / (_HEAD_FILE + ".tmp"))
        self._head = self._load_head()
        self._backlog_records = 0
        self._backlog_bytes = 0
        self._pending: list[bytes] = []  # frame headers and records appended, not yet written
        self._pending_bytes = 0
        self._pending_items: list[tuple[bytes, Any]] = []  # (record, item) of those
        self._unsynced = False  # written to the OS since the last fsync
        segments = self._segments()
        for index in segments:
            if index < self._head.segment:
                (directory / _segment_name(index)).unlink()  # published before a crash; delete lost
                continue
            path = directory / _segment_name(index)
            start = self._head.offset if index == self._head.segment else 0
            start = min(start, path.stat().st_size)
            records, size, end = _scan(path, start)
            file_size = path.stat().st_size
            if end < file_size:
                self.truncated_bytes += file_size - end
                with path.open("r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
            self._backlog_records += records
            self._backlog_bytes += size
        live = [i for i in segments if i >= self._head.segment]
        self._tail_index = live[-1] if live else self._head.segment
        tail_path = directory / _segment_name(self._tail_index)
        self._fd = os.open(tail_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._tail_size = os.fstat(self._fd).st_size
        if self._head.segment == self._tail_index and self._head.offset > self._tail_size:
            self._head = SpoolPosition(self._tail_index, self._tail_size)
        # Written records in order, from ``_mem[_mem_lo]`` on; every record from ``_mem_start`` to
        # the tail is among them (what came before is only on disk: recovery, or evicted).
        self._mem: list[SpooledRecord] = []
        self._mem_lo = 0
        self._mem_bytes = 0  # frame bytes of the live entries
        # Bytes written before each entry (a running count): the frame bytes of entries i..j-1
        # are ``_at(j) - _mem_at[i]`` without a loop over them.
        self._mem_at: list[int] = []
        self._mem_written = 0
        self._mem_start = SpoolPosition(self._tail_index, self._tail_size)
        _fsync_dir(directory)

    # --- state ----------------------------------------------------------------------------------

    @property
    def backlog_records(self) -> int:
        """Unpublished records, including appended-but-unflushed ones."""
        return self._backlog_records + len(self._pending_items)

    @property
    def backlog_bytes(self) -> int:
        return self._backlog_bytes + self._pending_bytes

    @property
    def head(self) -> SpoolPosition:
        """Position of the oldest unpublished record (everything before it was committed)."""
        return self._head

    @property
    def full(self) -> bool:
        return self.backlog_bytes >= self.max_bytes

    def _segments(self) -> list[int]:
        return sorted(int(p.name[6:18]) for p in self.directory.glob(_SEGMENT_GLOB))

    def _load_head(self) -> SpoolPosition:
        path = self.directory / _HEAD_FILE
        try:
            return msgspec.json.decode(path.read_bytes(), type=SpoolPosition)
        except (FileNotFoundError, msgspec.DecodeError):
            segments = self._segments()
            return SpoolPosition(segments[0] if segments else 0, 0)

    # --- writing --------------------------------------------------------------------------------

    def append(self, record: bytes, item: Any = None) -> None:
        """Queue ``record`` behind every earlier one; durable after :meth:`flush`.

        ``item`` comes back with the record from :meth:`read` while it is served from memory.
        """
        frame_size = _FRAME.size + len(record)
        if len(record) > MAX_RECORD_BYTES:
            raise ValueError(f"record of {len(record)} bytes exceeds {MAX_RECORD_BYTES}")
        if self._backlog_bytes + self._pending_bytes + frame_size > self.max_bytes:
            raise SpoolFull(f"spool full: {self.backlog_bytes} of {self.max_bytes} bytes unpublished")
        pending = self._pending
        pending.append(_FRAME.pack(len(record), zlib.crc32(record)))
        pending.append(record)
        self._pending_bytes += frame_size
        self._pending_items.append((record, item))

    def _write_pending(self) -> bool:
        if not self._pending:
            return False
        size = self._pending_bytes
        if self._tail_size > 0 and self._tail_size + size > self.segment_bytes:
            self._rotate()
        with memoryview(b"".join(self._pending)) as view:
            position = 0
            while position < len(view):
                position += os.write(self._fd, view[position:])
        segment = self._tail_index
        offset = self._tail_size
        mem, at, written = self._mem, self._mem_at, self._mem_written
        for record, item in self._pending_items:
            at.append(written)
            frame = _FRAME.size + len(record)
            written += frame
            offset += frame
            mem.append(SpooledRecord(record, SpoolPosition(segment, offset), item))
        self._mem_written = written
        self._mem_bytes += size
        self._tail_size = offset
        self._backlog_bytes += size
        self._backlog_records += len(self._pending_items)
        self._pending.clear()
        self._pending_bytes = 0
        self._pending_items.clear()
        self._unsynced = True
        if self._mem_bytes > self.memory_bytes:
            self._evict()
        return True

    def _evict(self) -> None:
        """Forget the oldest in-memory records beyond ``memory_bytes`` (they stay on disk)."""
        mem, lo = self._mem, self._mem_lo
        while self._mem_bytes > self.memory_bytes and lo < len(mem):
            self._mem_bytes -= _FRAME.size + len(mem[lo].data)
            self._mem_start = mem[lo].end
            lo += 1
        self._set_mem_lo(lo)

    def _set_mem_lo(self, lo: int) -> None:
        if lo >= len(self._mem):
            self._mem.clear()
            self._mem_at.clear()
            self._mem_lo = 0
            self._mem_start = SpoolPosition(self._tail_index, self._tail_size)
            return
        if lo > 4096 and lo * 2 > len(self._mem):
            del self._mem[:lo]
            del self._mem_at[:lo]
            lo = 0
        self._mem_lo = lo

    def write(self) -> None:
        """Hand every appended record to the OS without fsync: survives a killed process, not power loss.

        The bridge calls this before it advances the event-ring cursor past a record (the ring lives
        in shared memory, which a power loss erases too) and :meth:`flush` once per batch.
        """
        self._write_pending()

    def flush(self) -> None:
        """Write every appended record and fsync once (grouped durability)."""
        self._write_pending()
        if self._unsynced:
            os.fsync(self._fd)
            self._unsynced = False

    def _rotate(self) -> None:
        os.fsync(self._fd)
        self._unsynced = False
        os.close(self._fd)
        self._tail_index += 1
        self._fd = os.open(
            self.directory / _segment_name(self._tail_index), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        self._tail_size = 0
        _fsync_dir(self.directory)

    # --- replay ---------------------------------------------------------------------------------

    def read(self, max_records: int, start: SpoolPosition | None = None) -> list[SpooledRecord]:
        """Unpublished records in order from ``start`` (default: the head); does not consume them.

        A publisher with several batches in flight passes the ``end`` of the last record it read.
        """
        self._write_pending()  # in order behind what is already on disk
        begin = self._head if start is None or start < self._head else start
        out: list[SpooledRecord] = []
        if begin < self._mem_start:  # from before the memory window: the segment files
            out = self._read_disk(max_records, begin)
            if len(out) >= max_records:
                return out
            if out:
                begin = out[-1].end
        # Everything after ``begin`` is in memory: the first record ending after it, and on.
        mem = self._mem
        i = bisect_right(mem, begin, lo=self._mem_lo, key=_end)
        if not out:
            return mem[i : i + max_records]
        out.extend(mem[i : i + max_records - len(out)])
        return out

    def _read_disk(self, max_records: int, begin: SpoolPosition) -> list[SpooledRecord]:
        """Records from ``begin`` read back from the segment files, up to the memory window."""
        out: list[SpooledRecord] = []
        mem_start = self._mem_start
        segment, offset = begin.segment, begin.offset
        while len(out) < max_records and segment <= self._tail_index:
            if SpoolPosition(segment, offset) >= mem_start:
                break
            path = self.directory / _segment_name(segment)
            if not path.exists():
                segment, offset = segment + 1, 0
                continue
            with path.open("rb") as f:
                f.seek(offset)
                while len(out) < max_records and SpoolPosition(segment, offset) < mem_start:
                    header = f.read(_FRAME.size)
                    if len(header) < _FRAME.size:
                        break
                    length, _crc = _FRAME.unpack(header)
                    data = f.read(length)
                    if len(data) < length:
                        break
                    offset += _FRAME.size + length
                    out.append(SpooledRecord(data, SpoolPosition(segment, offset)))
            if len(out) < max_records:
                segment, offset = segment + 1, 0
        return out

    def commit(self, end: SpoolPosition) -> None:
        """Everything before ``end`` was published: advance the head, delete finished segments."""
        if end <= self._head:
            return
        self._write_pending()
        if end >= self._mem_start:  # the disk-only part (if any), then the in-memory records
            released_records, released_bytes = (
                self._count(self._head, self._mem_start) if self._head < self._mem_start else (0, 0)
            )
            mem, first = self._mem, self._mem_lo
            lo = bisect_right(mem, end, lo=first, key=_end)  # entries first..lo-1 end at or before it
            mem_bytes = 0
            if lo > first:
                released_records += lo - first
                upto = self._mem_at[lo] if lo < len(mem) else self._mem_written
                mem_bytes = upto - self._mem_at[first]
                self._mem_start = mem[lo - 1].end
            released_bytes += mem_bytes
            self._mem_bytes -= mem_bytes
            self._set_mem_lo(lo)
        else:
            released_records, released_bytes = self._count(self._head, end)
        if end.segment < self._tail_index:
            size = (self.directory / _segment_name(end.segment)).stat().st_size
            if end.offset >= size:
                end = SpoolPosition(end.segment + 1, 0)  # that segment is done: let it be deleted
        if (
            end.segment == self._tail_index
            and end.offset >= self._tail_size
            and self._tail_size >= self.segment_bytes // 4
        ):
            # Everything published and the segment is big: start a fresh one so it can go (a small
            # one is reused: a new file, its fsyncs and a directory fsync per commit cost more).
            self._rotate()
            end = SpoolPosition(self._tail_index, 0)
        self._store_head(end)
        if end.segment > self._head.segment:
            for index in self._segments():
                if index < end.segment:
                    (self.directory / _segment_name(index)).unlink()
        self._head = end
        self._backlog_records -= released_records
        self._backlog_bytes -= released_bytes

    def _count(self, start: SpoolPosition, end: SpoolPosition) -> tuple[int, int]:
        records = 0
        size = 0
        segment, offset = start.segment, start.offset
        while SpoolPosition(segment, offset) < end and segment <= self._tail_index:
            path = self.directory / _segment_name(segment)
            limit = end.offset if segment == end.segment else None
            if path.exists():
                with path.open("rb") as f:
                    f.seek(offset)
                    while limit is None or offset < limit:
                        header = f.read(_FRAME.size)
                        if len(header) < _FRAME.size:
                            break
                        length, _crc = _FRAME.unpack(header)
                        f.seek(length, os.SEEK_CUR)
                        offset += _FRAME.size + length
                        records += 1
                        size += _FRAME.size + length
            segment, offset = segment + 1, 0
        return records, size

    def _store_head(self, head: SpoolPosition) -> None:
        tmp = self._head_tmp_path
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, msgspec.json.encode(head))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._head_path)
        _fsync_dir(self.directory)

    def close(self) -> None:
        """Flush and close; the spool can be reopened from the same directory."""
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PUBLICATION_ENCODER = msgspec.msgpack.Encoder()
_PUBLICATION_DECODER = msgspec.msgpack.Decoder(Publication)


def encode_publication(publication: Publication) -> bytes:
    """A spool record for one NATS publication (subject, Nats-Msg-Id, bytes)."""
    return _PUBLICATION_ENCODER.encode(publication)


def decode_publication(record: bytes) -> Publication:
    return _PUBLICATION_DECODER.decode(record)
