"""Spool: order, grouped flush, replay/commit, crash (torn tail), bounds; a model-based property."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.events.payloads import Publication
from titan.events.spool import Spool, SpoolFull, decode_publication, encode_publication


def _drain(spool: Spool, batch: int = 3) -> list[bytes]:
    out: list[bytes] = []
    while True:
        records = spool.read(batch)
        if not records:
            return out
        out.extend(r.data for r in records)
        spool.commit(records[-1].end)


def test_order_across_segments_and_reopen(tmp_path: Path) -> None:
    records = [f"event-{i}".encode() * (i % 5 + 1) for i in range(200)]
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=256) as spool:
        for r in records:
            spool.append(r)
            if len(r) % 3 == 0:
                spool.flush()
        spool.flush()
        assert spool.backlog_records == 200
        first = spool.read(50)
        spool.commit(first[-1].end)
        assert spool.backlog_records == 150
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=256) as reopened:
        assert reopened.backlog_records == 150
        assert _drain(reopened) == records[50:]
        assert reopened.backlog_records == 0 and reopened.backlog_bytes == 0
    assert len(list(tmp_path.glob("spool-*.log"))) == 1  # published segments deleted


def test_unflushed_records_are_replayed_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=4096) as spool:
        spool.append(b"a")
        spool.flush()
        spool.append(b"b")
        assert [r.data for r in spool.read(10)] == [b"a", b"b"]


def test_written_records_survive_without_close_and_read_resumes_from_a_cursor(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    for i in range(20):
        spool.append(f"r{i}".encode())
        spool.write()  # handed to the OS: a killed process loses nothing
    first = spool.read(5)
    second = spool.read(5, start=first[-1].end)  # a publisher with batches in flight
    assert [r.data for r in first + second] == [f"r{i}".encode() for i in range(10)]
    assert spool.head < first[-1].end  # reading does not consume
    spool.commit(second[-1].end)
    assert spool.head >= second[-1].end and spool.backlog_records == 10
    assert [r.data for r in spool.read(100, start=first[0].end)] == [f"r{i}".encode() for i in range(10, 20)]
    os.close(spool._fd)  # simulate a SIGKILL: no flush, no close
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64) as reopened:
        assert [r.data for r in reopened.read(100)] == [f"r{i}".encode() for i in range(10, 20)]


@pytest.mark.parametrize(
    "tail", [b"\x05\x00", b"\x09\x00\x00\x00\x00\x00\x00\x00abc", b"\x01\x00\x00\x00\xff\xff\xff\xffx"]
)
def test_torn_tail_is_dropped(tmp_path: Path, tail: bytes) -> None:
    with Spool(tmp_path, max_bytes=4096) as spool:
        for r in (b"one", b"two", b"three"):
            spool.append(r)
        spool.flush()
    (segment,) = tmp_path.glob("spool-*.log")
    with segment.open("ab") as f:
        f.write(tail)  # a crash mid-write
    with Spool(tmp_path, max_bytes=4096) as spool:
        assert spool.truncated_bytes == len(tail)
        assert spool.backlog_records == 3
        spool.append(b"four")
        assert _drain(spool) == [b"one", b"two", b"three", b"four"]


def test_bounded_spool_says_full(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=64) as spool:
        spool.append(b"x" * 20)
        spool.append(b"y" * 20)
        with pytest.raises(SpoolFull):
            spool.append(b"z" * 20)
        assert spool.backlog_records == 2 and spool.full is False
        records = spool.read(1)
        spool.commit(records[0].end)
        spool.append(b"z" * 20)  # room again once published
        assert _drain(spool) == [b"y" * 20, b"z" * 20]


def test_publication_records_round_trip(tmp_path: Path) -> None:
    pub = Publication("titan.evt.execution.reject.v1", "reject:sig-1:system_halted", b'{"a":1}')
    with Spool(tmp_path, max_bytes=4096) as spool:
        spool.append(encode_publication(pub))
        assert decode_publication(spool.read(1)[0].data) == pub


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=40)),
        st.tuples(st.just("flush"), st.none()),
        st.tuples(st.just("publish"), st.integers(1, 5)),
        st.tuples(st.just("crash"), st.binary(max_size=12)),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_spool_matches_model(ops: list[tuple[str, object]]) -> None:
    """Never reorders, never loses a flushed record, never exceeds its bound; a crash loses only unflushed."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        max_bytes = 400
        spool = Spool(path, max_bytes=max_bytes, segment_bytes=64)
        durable: list[bytes] = []  # flushed, unpublished
        pending: list[bytes] = []  # appended, unflushed
        try:
            for op, arg in ops:
                if op == "append":
                    assert isinstance(arg, bytes)
                    try:
                        spool.append(arg)
                        pending.append(arg)
                    except SpoolFull:
                        assert spool.backlog_bytes + 8 + len(arg) > max_bytes
                elif op == "flush":
                    spool.flush()
                    durable.extend(pending)
                    pending.clear()
                elif op == "publish":
                    assert isinstance(arg, int)
                    records = spool.read(arg)
                    expected = (durable + pending)[: len(records)]
                    assert [r.data for r in records] == expected
                    if records:
                        spool.commit(records[-1].end)
                        written = len(records)
                        moved = min(written, len(durable))
                        del durable[:moved]
                        del pending[: written - moved]
                        # read() wrote pending records to the file (not fsynced): they survive a process crash
                        durable.extend(pending)
                        pending.clear()
                else:
                    assert isinstance(arg, bytes)
                    os.close(spool._fd)  # simulated process crash: unflushed appends are lost
                    pending.clear()
                    segments = sorted(path.glob("spool-*.log"))
                    if segments:
                        with segments[-1].open("ab") as f:
                            f.write(arg)  # torn garbage after the last good frame
                    spool = Spool(path, max_bytes=max_bytes, segment_bytes=64)
                assert spool.backlog_bytes <= max_bytes
                assert spool.backlog_records == len(durable) + len(pending)
            assert _drain(spool) == durable + pending
        finally:
            spool.close()
