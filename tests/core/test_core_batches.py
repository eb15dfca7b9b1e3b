"""core's outbox in batches (titan.procs.core): outputs wait until the batch's journal write."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from titan.harness import eventually
from titan.messages import IntakeDone, Reply, Stages, decoder
from titan.procs.core import GroupSync, RingOutbox, SyncingJournal
from titan.shm.doorbell import Doorbell
from titan.shm.ring import Ring
from titan.state.journal import JournalWriter, scan_journal
from titan.state.records import CashRecord


class Ctx:
    """What RingOutbox takes from a ChildContext: core's output rings and their consumers' doorbells."""

    def __init__(self, prefix: str, venues: tuple[str, ...], slots: int) -> None:
        self.layout = type("Layout", (), {"venues": venues})()
        self.rings: dict[str, Ring] = {}
        self.bells: dict[str, Doorbell] = {}
        for consumer in ("ingress", "bridge", *(f"gateway.{v}" for v in venues)):
            name = f"{prefix}-{consumer.replace('.', '_')}"
            self.rings[consumer] = Ring.create(name, slots, 256)
            self.bells[consumer] = Doorbell.create(name + "-bell")

    def ring_out(self, consumer: str) -> Ring:
        return self.rings[consumer]

    def bell(self, consumer: str) -> Doorbell:
        return self.bells[consumer]

    def close(self) -> None:
        for ring in self.rings.values():
            ring.close()
            ring.unlink()
        for bell in self.bells.values():
            bell.close()
            bell.unlink()


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    c = Ctx(f"/titan-batch-{uuid.uuid4().hex[:8]}", ("paper",), slots=2)
    try:
        yield c
    finally:
        c.close()


def _journal(path: Path) -> SyncingJournal:
    writer = JournalWriter(path)
    return SyncingJournal(writer, GroupSync(writer, 1.0))  # the fsync thread is not started here


def _reply(req: int) -> Reply:
    return Reply(conn=1, req=req, fields={"prepared": True}, stages=Stages(t_ring=5))


def test_outputs_wait_for_the_batch_and_leave_after_its_journal_write(ctx: Ctx, tmp_path: Path) -> None:
    path = tmp_path / "core.journal"
    journal = _journal(path)
    out = RingOutbox(ctx, journal)  # type: ignore[arg-type]  # a stand-in for ChildContext
    pushes_saw: list[int] = []
    real_push = ctx.rings["ingress"].try_push

    class Spy:  # records how many records the journal file held at each push
        def __getattr__(self, name: str) -> object:
            return getattr(ctx.rings["ingress"], name)

        def try_push(self, data: bytes) -> bool:
            pushes_saw.append(len(scan_journal(path).entries))
            return real_push(data)

    out.replies.ring = Spy()  # type: ignore[assignment]  # wraps the real ring
    journal.append(CashRecord(account="paper", amount=Decimal(1)), 1, 1)
    out.reply(_reply(1))
    out.event(IntakeDone(ref=7, outcome="accepted"))
    journal.append(CashRecord(account="paper", amount=Decimal(2)), 2, 2)
    out.reply(_reply(2))
    assert ctx.rings["ingress"].depth() == 0 and ctx.rings["bridge"].depth() == 0  # nothing out yet
    assert scan_journal(path).entries == []  # and nothing written yet

    ctx.bells["ingress"].prepare_sleep()  # ingress is asleep: the batch must wake it, once
    assert out.flush()
    assert pushes_saw == [2, 2]  # both records were in the file before the first push
    assert not ctx.bells["ingress"].is_sleeping()
    assert ctx.rings["ingress"].depth() == 2 and ctx.rings["bridge"].depth() == 1
    dec = decoder(Reply).decode
    first, second = (dec(ctx.rings["ingress"].try_pop() or b"") for _ in range(2))
    assert (first.req, second.req) == (1, 2)  # in order
    assert first.stages.t_core_out > 0 and first.stages.t_core_out == second.stages.t_core_out  # at the push
    assert first.stages.t_ring == 5


def test_a_full_ring_keeps_the_rest_queued_in_order_until_there_is_room(ctx: Ctx, tmp_path: Path) -> None:
    out = RingOutbox(ctx, _journal(tmp_path / "core.journal"))  # type: ignore[arg-type]  # a stand-in
    for req in range(3):
        out.reply(_reply(req))
    assert not out.flush()  # two slots: one reply waits
    assert out.stuck()
    ring = ctx.rings["ingress"]
    dec = decoder(Reply).decode
    assert dec(ring.try_pop() or b"").req == 0
    assert out.flush() and not out.stuck()
    assert [dec(ring.try_pop() or b"").req for _ in range(2)] == [1, 2]


def test_group_sync_fsyncs_at_most_once_per_interval_under_constant_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = JournalWriter(tmp_path / "core.journal")
    sync = GroupSync(writer, 0.02)
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(time.monotonic_ns())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    sync.start()
    try:
        start = time.monotonic()
        while time.monotonic() - start < 0.3:  # appends all the time, holding the GIL as core does
            sync.written += 1
        eventually(lambda: sync.synced == sync.written)  # then it catches up within an interval
    finally:
        sync.stop_flag.set()
        sync.join(1.0)
        writer.close()
    gaps = [b - a for a, b in itertools.pairwise(synced)]
    assert len(synced) >= 3, synced  # it does sync under load
    assert min(gaps) >= 0.02 * 1e9 * 0.9, gaps  # never sooner than the interval after the last one
