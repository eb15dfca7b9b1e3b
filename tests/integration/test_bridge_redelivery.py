"""R29 over real NATS: redelivery after a bridge killed between core's journal and the ACK, a new
envelope with an accepted ``signal_id``, and a captured envelope published again.

The engine (paper venue) runs on an external JetStream nats-server (``tests/bridge/conftest.NatsServer``).
For the redelivery the window is made exact with SIGSTOP: core is frozen while the bridge takes a
batch of signed place intents from JetStream onto core's ring, then the bridge is frozen while core
journals them (and answers IntakeDone, unread); the consumer shows every one delivered and not
ACKed. The bridge is SIGKILLed and the supervisor restarts it; after JetStream's ack wait they come
again: core absorbs them (row 0), the bridge ACKs them, nothing is placed, filled or published twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from bench.nats_path import signed_intent
from tests.bridge import conftest as bridge_conftest
from tests.bridge.conftest import NatsServer, stream_messages
from titan.canonical import canonical_json
from titan.events import subjects
from titan.events.envelope import sign
from titan.harness import SECRET, Engine, eventually, start_engine
from titan.procs import bridge as bridge_mod
from titan.procs.core import journal_path
from titan.shm.board import StatusBoard
from titan.state.journal import scan_journal
from titan.state.records import FillRecord, IntentAccepted, IntentDenied

SUBJECT = subjects.place_intent_subject("paper", "BTC/USDT")
CONSUMER = ("TITAN_CMD", "EXECUTION_CORE")
BATCH = 20

nats_server = bridge_conftest.nats_server  # the bridge tests' fixture: an external JetStream server


@pytest.fixture
def engine(tmp_path: Path, nats_server: NatsServer) -> Iterator[Engine]:
    (tmp_path / "engine").mkdir()
    extra = f'\n[nats]\nurl = "{nats_server.url}"\n'
    extra += "\n[supervisor]\ncrash_loop_max_restarts = 100\nrestart_backoff_ms = [50]\n"
    eng = start_engine(tmp_path / "engine", extra=extra)
    try:
        eventually(lambda: eng.health()[1].get("nats", {}).get("connected"), timeout=30)
        yield eng
    finally:
        eng.stop()


async def publish(url: str, *messages: bytes) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for data in messages:
            await js.publish(SUBJECT, data)
    finally:
        await nc.close()


async def consumer(url: str) -> Any:
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info(*CONSUMER)
    finally:
        await nc.close()


def events(url: str, subject: str) -> list[dict[str, Any]]:
    return [msgspec.json.decode(d) for _, _, d in asyncio.run(stream_messages(url, "TITAN_EVT", subject))]


def fills(url: str) -> Counter[str]:
    return Counter(e["payload"]["signalId"] for e in events(url, "titan.evt.execution.fill.v1.>"))


def shadow_fills(url: str) -> Counter[str]:
    return Counter(e["signalId"] for e in events(url, "titan.evt.execution.shadow_fill.v1.>"))


def rejects(url: str) -> list[dict[str, Any]]:
    return events(url, subjects.EVT_REJECT)


def journal(engine: Engine) -> list[Any]:
    return [e.record for e in scan_journal(journal_path(engine.run_dir)).entries]


def accepted(engine: Engine, sids: set[str]) -> Counter[str]:
    return Counter(
        r.signal_id for r in journal(engine) if isinstance(r, IntentAccepted) and r.signal_id in sids
    )


def new_envelope(signal_id: str) -> bytes:
    """A signed place intent for ``signal_id`` under a new envelope identity (id, idempotency key,
    nonce): not a redelivery of an earlier envelope."""
    env = json.loads(signed_intent(signal_id, SECRET))
    env["id"] = env["idempotency_key"] = f"again-{uuid.uuid4().hex}"
    env["nonce"] = uuid.uuid4().hex
    env["sig"] = sign(SECRET, env["ts"], env["nonce"], canonical_json(env["payload"]))
    return json.dumps(env, separators=(",", ":")).encode()


def settled(url: str) -> bool:
    info = asyncio.run(consumer(url))
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


def bridge_counter(engine: Engine, slot: int) -> int:
    board = StatusBoard.attach(f"/{engine.instance}-{engine.proc.pid}-board")
    try:
        return int(board.read("bridge").counters[slot])
    finally:
        board.close()


@pytest.mark.timeout(240)
def test_bridge_killed_between_journal_and_ack_redelivers_without_a_second_order(
    engine: Engine, nats_server: NatsServer
) -> None:
    url = nats_server.url
    sids = [f"r29-{uuid.uuid4().hex[:6]}-{i}" for i in range(BATCH)]
    wanted = set(sids)
    pids = engine.pids()
    core, bridge = pids["core"], pids["bridge"]
    forwarded = bridge_counter(engine, bridge_mod.INTENTS_FORWARDED)

    # core frozen: the bridge takes the intents from JetStream and puts them on core's ring; then the
    # bridge is frozen and core runs: it journals them and answers IntakeDone, which nobody reads.
    os.kill(core, signal.SIGSTOP)
    try:
        asyncio.run(publish(url, *(signed_intent(sid, SECRET) for sid in sids)))
        eventually(
            lambda: bridge_counter(engine, bridge_mod.INTENTS_FORWARDED) == forwarded + BATCH, timeout=20
        )
        os.kill(bridge, signal.SIGSTOP)
    finally:
        os.kill(core, signal.SIGCONT)
    try:
        eventually(lambda: accepted(engine, wanted) == dict.fromkeys(sids, 1), timeout=20)
        info = asyncio.run(consumer(url))
        assert info.num_ack_pending == BATCH and info.num_pending == 0, info  # journaled, not ACKed
    finally:
        os.kill(bridge, signal.SIGKILL)
    eventually(lambda: engine.pids().get("bridge") not in (None, bridge), timeout=60)
    eventually(lambda: engine.health()[1]["processes"]["bridge"]["state"] == "READY", timeout=60)

    # The new bridge cannot ACK them before JetStream's ack wait: still pending; then they come
    # again, core absorbs them (already journaled), the bridge ACKs them, nothing stays pending.
    assert asyncio.run(consumer(url)).num_ack_pending == BATCH
    eventually(lambda: settled(url), timeout=120, interval=0.5)

    records = journal(engine)
    assert accepted(engine, wanted) == dict.fromkeys(sids, 1)  # each accepted once
    assert [r for r in records if isinstance(r, IntentDenied) and r.signal_id in wanted] == []
    # One order (one leg, one trade) per intent on the paper venue.
    legs = {
        leg.coid for r in records if isinstance(r, IntentAccepted) and r.signal_id in wanted for leg in r.legs
    }
    assert len(legs) == BATCH
    trades = Counter(
        r.fill.client_order_id
        for r in records
        if isinstance(r, FillRecord) and r.fill.client_order_id in legs
    )
    assert trades == dict.fromkeys(legs, 1)
    # One fill event and one shadow fill per intent on TITAN_EVT, no reject event.
    eventually(lambda: set(fills(url)) >= wanted, timeout=30, interval=0.5)
    assert {s: c for s, c in fills(url).items() if s in wanted} == dict.fromkeys(sids, 1)
    assert {s: c for s, c in shadow_fills(url).items() if s in wanted} == dict.fromkeys(sids, 1)
    assert [r for r in rejects(url) if r.get("intent_id") in wanted] == []


@pytest.mark.timeout(120)
def test_duplicate_signal_id_and_replayed_envelope_are_rejected(
    engine: Engine, nats_server: NatsServer
) -> None:
    url = nats_server.url
    sid = f"r29-dup-{uuid.uuid4().hex[:6]}"
    captured = signed_intent(sid, SECRET)
    asyncio.run(publish(url, captured))
    eventually(lambda: fills(url).get(sid) == 1, timeout=30, interval=0.2)

    # A new envelope (new id, nonce, signature) with the accepted signal_id.
    again = new_envelope(sid)
    asyncio.run(publish(url, again))
    eventually(
        lambda: [r["reason"] for r in rejects(url) if r.get("intent_id") == sid] == ["duplicate_signal_id"]
    )

    # The captured bytes once more, within the tolerance window: a replay.
    asyncio.run(publish(url, captured))
    eventually(
        lambda: len([r for r in rejects(url) if r.get("intent_id") == sid]) == 2, timeout=30, interval=0.2
    )
    reasons = [r["reason"] for r in rejects(url) if r.get("intent_id") == sid]
    assert reasons == ["duplicate_signal_id", "replay_detected"], reasons
    eventually(lambda: settled(url), timeout=30, interval=0.2)
    assert fills(url)[sid] == 1  # still one execution
    assert accepted(engine, {sid}) == {sid: 1}
