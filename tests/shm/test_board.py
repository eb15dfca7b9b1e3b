"""Status board basics, and segment lifecycle across processes (the resource_tracker trap)."""

from __future__ import annotations

import multiprocessing.context
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from titan.shm.board import ProcState, ProcStatus, StatusBoard
from titan.shm.doorbell import Doorbell
from titan.shm.ring import Ring
from titan.shm.segment import Segment, exists, unlink_quietly
from titan.shm.ticker import TickerTable

from . import workers

Names = Callable[[str], str]


class ShmObject(Protocol):
    def close(self) -> None: ...
    def unlink(self) -> None: ...


def test_board_rows_and_names(shm_name: Names) -> None:
    name = shm_name("board")
    with StatusBoard.create(name, ["supervisor", "core", "gateway.paper"], counters=4) as board:
        board.set_pid("core", 4242)
        board.set_state("core", ProcState.READY)
        board.beat("core", 987_654_321)
        board.add_restart("core")
        board.add_restart("core")
        board.incr("core", 0)
        board.incr("core", 3, 10)
        with StatusBoard.attach(name) as reader:
            assert reader.names() == ["supervisor", "core", "gateway.paper"]
            assert reader.read("core") == ProcStatus(
                name="core",
                pid=4242,
                state=ProcState.READY,
                heartbeat_mono_ns=987_654_321,
                restarts=2,
                counters=(1, 0, 0, 10),
            )
            assert reader.read("gateway.paper").state is ProcState.STOPPED
        with pytest.raises(KeyError, match="nope"):
            board.beat("nope", 1)
        with pytest.raises(IndexError):
            board.incr("core", 4)
        board.unlink()


@pytest.mark.parametrize(
    ("names", "message"), [([], "at least one"), (["a", "a"], "duplicate"), (["x" * 64], "UTF-8 bytes")]
)
def test_board_rejects_bad_names(shm_name: Names, names: list[str], message: str) -> None:
    name = shm_name("board")
    with pytest.raises(ValueError, match=message):
        StatusBoard.create(name, names)
    assert not exists(name)


def test_child_writes_its_row_and_exiting_does_not_unlink(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext
) -> None:
    with StatusBoard.create(shm_name("board"), ["core"]) as board:
        child = spawn.Process(target=workers.board_child, args=(board.name, "core"))
        child.start()
        child.join(timeout=30)
        assert child.exitcode == 0
        status = board.read("core")
        assert (status.state, status.heartbeat_mono_ns, status.counters[3]) == (
            ProcState.READY,
            123_456_789,
            5,
        )
        assert exists(board.name)
        board.unlink()


@pytest.mark.parametrize("worker", [workers.attach_and_exit, workers.kill_self_after_attach])
def test_attaching_child_exiting_does_not_unlink_the_segment(
    shm_name: Names, spawn: multiprocessing.context.SpawnContext, worker: Callable[[str], None]
) -> None:
    """Python 3.11's resource_tracker would unlink a segment attached with multiprocessing's
    SharedMemory when the attaching process exits; ours must survive both a clean exit and SIGKILL."""
    with Segment.create(shm_name("seg"), 4096) as segment:
        for _ in range(2):
            child = spawn.Process(target=worker, args=(segment.name,))
            child.start()
            child.join(timeout=30)
            assert child.exitcode in (0, -9)
            assert exists(segment.name)
            with Segment.attach(segment.name) as again:
                assert again.buf[0] in (0, 1)
        segment.unlink()


def test_create_attach_unlink_leave_nothing_in_dev_shm(shm_name: Names) -> None:
    names = {k: shm_name(k) for k in ("seg", "ring", "bell", "ticker", "board")}
    before = set(os.listdir("/dev/shm"))
    objects: list[ShmObject] = [
        Segment.create(names["seg"], 10_000),
        Ring.create(names["ring"], 16, 64),
        Doorbell.create(names["bell"]),
        TickerTable.create(names["ticker"], 3),
        StatusBoard.create(names["board"], ["a", "b"]),
    ]
    attached: list[ShmObject] = [
        Segment.attach(names["seg"]),
        Ring.attach(names["ring"]),
        Doorbell.attach(names["bell"]),
        TickerTable.attach(names["ticker"]),
        StatusBoard.attach(names["board"]),
    ]
    created = set(os.listdir("/dev/shm")) - before
    assert created == {*names.values(), f"{names['bell']}.fifo"}
    for obj in attached:
        obj.close()
    for obj in objects:
        obj.unlink()
        obj.close()
        obj.close()  # idempotent
    assert set(os.listdir("/dev/shm")) - before == set()
    assert not any(unlink_quietly(n) for n in names.values())


def test_segment_names_and_sizes(shm_name: Names) -> None:
    name = shm_name("seg")
    with Segment.create(name, 5000) as segment:
        assert segment.size == 5000
        assert Path(f"/dev/shm/{name}").stat().st_size == 5000
        segment.buf[4999] = 7
        with Segment.attach("/" + name) as same:
            assert (same.size, same.buf[4999]) == (5000, 7)
        with pytest.raises(FileExistsError):
            Segment.create(name, 10)
        segment.unlink()
        with pytest.raises(FileNotFoundError):
            segment.unlink()
    with pytest.raises(ValueError, match="invalid"):
        Segment.create("a/b", 10)
    with pytest.raises(ValueError, match="positive"):
        Segment.create(name, 0)
