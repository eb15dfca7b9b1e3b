"""The spool's in-memory tail: what the publisher reads without touching the disk, and recovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from titan.events.spool import Spool, SpooledRecord, SpoolPosition
from titan.procs.bridge import _puback_error


def records(n: int, start: int = 0) -> list[bytes]:
    return [f"rec-{i:05d}".encode() * (1 + i % 3) for i in range(start, start + n)]


def test_reads_come_from_memory_with_their_item_and_match_the_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=256)
    for i, r in enumerate(records(40)):
        spool.append(r, ("item", i))
        spool.write()
    got = spool.read(100)
    assert [r.item for r in got] == [("item", i) for i in range(40)]  # served from memory
    assert [r.data for r in got] == records(40)
    assert len({r.end.segment for r in got}) > 1  # segments rotated on the way
    check_disk(spool, got, 100, None)  # the same records and positions a reader of the files sees
    spool.close()


def test_a_restart_republishes_exactly_the_unacknowledged_records_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=512)
    for r in records(30):
        spool.append(r, r)
    spool.write()  # handed to the OS, as the bridge does before it moves the ring cursor
    batch = spool.read(12)
    spool.commit(batch[-1].end)  # the first 12 were acknowledged and committed
    in_flight = spool.read(10, start=batch[-1].end)  # published, never acknowledged
    assert [r.data for r in in_flight] == records(10, 12)
    assert spool.backlog_records == 18
    os.close(spool._fd)  # SIGKILL: no flush, no close, the memory is gone
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=512) as reopened:
        assert reopened.backlog_records == 18
        replay = reopened.read(100)
        assert [r.data for r in replay] == records(18, 12)  # exactly those, in order
        assert all(r.item is None for r in replay)  # recovered from the segment files
        reopened.append(b"after-restart", "new")
        more = reopened.read(100, start=replay[-1].end)
        assert [(r.data, r.item) for r in more] == [(b"after-restart", "new")]  # memory again
        reopened.commit(more[-1].end)
        assert reopened.backlog_records == 0 and reopened.backlog_bytes == 0


def test_memory_is_bounded_and_older_records_come_from_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300, memory_bytes=100)
    data = records(50)
    for r in data:
        spool.append(r, r)
        spool.write()
    assert spool._mem_bytes <= 100
    got = spool.read(100)
    assert [r.data for r in got] == data
    assert got[0].item is None and got[-1].item == data[-1]  # disk first, then memory
    spool.commit(got[24].end)
    assert [r.data for r in spool.read(100)] == data[25:]
    assert spool.backlog_records == 25
    spool.commit(got[-1].end)
    assert spool.backlog_records == 0 and spool.backlog_bytes == 0
    spool.close()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 40)),
        st.tuples(st.just("write"), st.none()),
        st.tuples(st.just("read"), st.integers(1, 8)),
        st.tuples(st.just("commit"), st.integers(0, 8)),
        st.tuples(st.just("crash"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops, mem=st.sampled_from([0, 60, 1 << 20]))
def test_memory_and_disk_reads_agree(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int | None]], mem: int
) -> None:
    """Whatever the memory window, reads equal the reads of a disk-only spool in the same state."""
    path = tmp_path_factory.mktemp("spool")
    spool = Spool(path, max_bytes=1 << 20, segment_bytes=96, memory_bytes=mem)
    cursor: SpoolPosition | None = None
    unpublished: list[bytes] = []  # the model: written or appended, not committed
    n = 0
    try:
        for op, value in steps:
            arg = value or 0
            if op == "append":
                record = f"r{n}".encode() + b"x" * int(arg)
                n += 1
                spool.append(record, record)
                unpublished.append(record)
            elif op == "write":
                spool.write()
            elif op == "read":
                got = spool.read(int(arg), cursor)
                check_disk(spool, got, int(arg), cursor)
                assert [r.data for r in spool.read(len(unpublished) + 1)] == unpublished
                if got:
                    cursor = got[-1].end
            elif op == "commit":
                got = spool.read(int(arg))
                if got:
                    spool.commit(got[-1].end)
                    del unpublished[: len(got)]
                    if cursor is not None and cursor < spool.head:
                        cursor = None
                assert spool.backlog_records == len(unpublished)
            else:
                spool.write()  # the bridge writes before it advances the ring: a crash keeps these
                os.close(spool._fd)
                spool = Spool(path, max_bytes=1 << 20, segment_bytes=96, memory_bytes=mem)
                cursor = None
                assert [r.data for r in spool.read(len(unpublished) + 1)] == unpublished
        assert spool.backlog_records == len(unpublished)
        assert spool.backlog_bytes == sum(8 + len(r) for r in unpublished)
        live = spool._mem[spool._mem_lo :]
        assert spool._mem_bytes == sum(8 + len(r.data) for r in live)
        assert spool._mem_bytes <= mem  # the memory window holds
        assert len(spool._mem_at) == len(spool._mem)
    finally:
        spool.close()


def check_disk(spool: Spool, got: list[SpooledRecord], k: int, cursor: SpoolPosition | None) -> None:
    saved = spool._mem_start
    spool._mem_start = SpoolPosition(1 << 40, 0)  # the disk path for the same read
    try:
        disk = spool.read(k, cursor)
    finally:
        spool._mem_start = saved
    assert [(r.data, r.end) for r in disk] == [(r.data, r.end) for r in got]


def test_puback_errors_are_told_from_acks() -> None:
    assert _puback_error(b'{"stream":"TITAN_EVT","seq":7}') is None
    assert _puback_error(b'{"stream":"error","seq":7,"duplicate":true}') is None
    err = _puback_error(b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}')
    assert err is not None and "maximum messages exceeded" in err and "10077" in err
    assert _puback_error(b"not json") is not None
