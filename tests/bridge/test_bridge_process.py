"""The bridge as a real process: SIGKILLed mid-stream, restarted, nothing lost and nothing doubled."""

from __future__ import annotations

import msgspec
import pytest

from titan.messages import Event
from titan.procs import bridge as bridge_mod
from titan.shm.board import ProcState

from .conftest import BridgeProcess, NatsServer, Rig, stream_messages, until

pytestmark = pytest.mark.timeout(90)

SUBJECTS = ("titan.evt.execution.shadow_fill.v1.BTCUSDT", "titan.evt.execution.fill.v1.paper.main.ETH_USDT")


def event(i: int) -> Event:
    subject = SUBJECTS[i % 2]
    return Event(subject=subject, msg_id=f"e:{i}", data=msgspec.json.encode({"seq": i}))


async def test_events_survive_a_sigkilled_bridge(rig: Rig, nats_server: NatsServer) -> None:
    proc = BridgeProcess(rig, nats_server.url)
    proc.start()
    try:
        await until(lambda: rig.counters()[bridge_mod.NATS_CONNECTED] == 1, 30, "bridge connected")
        for i in range(300):
            rig.push(event(i))
        # Kill it while it is still working through the burst (or just after: both must hold).
        await until(lambda: rig.counters()[bridge_mod.EVENTS_SPOOLED] >= 50, 10, "bridge busy")
        proc.kill()
        for i in range(300, 600):
            rig.push(event(i))  # produced while no bridge runs: they wait on the ring
        assert rig.to_bridge.depth() > 0
        proc.start()
        await until(lambda: rig.to_bridge.depth() == 0, 30, "ring drained by the new bridge")
        await until(lambda: rig.counters()[bridge_mod.SPOOL_RECORDS] == 0, 30, "spool published")
        assert rig.board.read("bridge").state == ProcState.READY
    finally:
        proc.stop()
    msgs = await stream_messages(nats_server.url, "TITAN_EVT")
    seqs = [msgspec.json.decode(d)["seq"] for _, _, d in msgs]
    assert sorted(seqs) == list(range(600))  # exactly once: the replayed tail was deduplicated
    for subject in SUBJECTS:
        per_subject = [msgspec.json.decode(d)["seq"] for s, _, d in msgs if s == subject]
        assert per_subject == sorted(per_subject)
    assert proc.proc is not None and proc.proc.returncode == 0  # the second bridge stopped cleanly


async def test_spooled_events_survive_a_sigkill_during_an_outage(rig: Rig, nats_server: NatsServer) -> None:
    proc = BridgeProcess(rig, nats_server.url)
    proc.start()
    try:
        await until(lambda: rig.counters()[bridge_mod.NATS_CONNECTED] == 1, 30, "bridge connected")
        nats_server.kill()
        await until(lambda: rig.counters()[bridge_mod.NATS_CONNECTED] == 0, 10, "disconnect seen")
        for i in range(200):
            rig.push(event(i))
        # Everything is in the spool (the ring is empty) and nothing was published.
        await until(lambda: rig.counters()[bridge_mod.SPOOL_RECORDS] == 200, 10, "200 records spooled")
        assert rig.to_bridge.depth() == 0
        proc.kill()
        nats_server.start()
        proc.start()
        await until(lambda: rig.counters()[bridge_mod.SPOOL_RECORDS] == 0, 30, "spool replayed")
    finally:
        proc.stop()
    msgs = await stream_messages(nats_server.url, "TITAN_EVT")
    assert [msgspec.json.decode(d)["seq"] for _, _, d in msgs] == list(range(200))
