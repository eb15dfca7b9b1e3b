"""A whole engine (`titan run`) on an external nats-server that tests kill and restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from bench.nats_path import signed_intent
from tests.events.helpers import encode, form_b
from titan.client import FastPathClient
from titan.events import subjects
from titan.harness import SECRET, Engine, start_engine
from titan.procs import bridge as bridge_mod
from titan.shm.board import StatusBoard

from .conftest import NatsServer, stream_messages, until

FILL_PREFIX = "titan.evt.execution.fill.v1."
SHADOW_PREFIX = "titan.evt.execution.shadow_fill.v1."


@pytest.fixture
def engine(tmp_path: Path, nats_server: NatsServer) -> Iterator[Engine]:
    (tmp_path / "engine").mkdir()
    eng = start_engine(tmp_path / "engine", extra=f'\n[nats]\nurl = "{nats_server.url}"\n')
    try:
        yield eng
    finally:
        eng.stop()


def bridge_counters(engine: Engine) -> tuple[int, ...]:
    board = StatusBoard.attach(f"/{engine.instance}-{engine.proc.pid}-board")
    try:
        return board.read("bridge").counters
    finally:
        board.close()


async def send_intents(
    engine: Engine, nats_server: NatsServer, n: int, kill_at: int, down_s: float
) -> tuple[list[str], dict[str, int]]:
    """Prepare+confirm ``n`` intents; NATS dies before intent ``kill_at`` and returns ``down_s`` later."""
    client = FastPathClient(engine.socket_path, SECRET, timeout=5.0)
    await client.connect()
    filled: list[str] = []
    seen_during_outage: dict[str, int] = {}
    killed_at: float | None = None
    try:
        for i in range(n):
            if i == kill_at:
                nats_server.kill()
                killed_at = time.monotonic()
            if killed_at is not None and time.monotonic() - killed_at >= down_s:
                counters = bridge_counters(engine)
                seen_during_outage = {
                    "connected": counters[bridge_mod.NATS_CONNECTED],
                    "backlog": counters[bridge_mod.SPOOL_RECORDS],
                }
                nats_server.start()
                killed_at = None
            sid = f"out-{i}"
            prep = await client.prepare(
                sid, "BTCUSDT", "LONG", 50000, 50100, position_size=100, velocity=0.01
            )
            if not getattr(prep, "prepared", False):
                continue
            conf = await client.confirm(sid)
            if getattr(conf, "executed", False) and getattr(conf, "status", None) == "FILLED":
                filled.append(sid)
        if killed_at is not None:  # the run was shorter than the outage
            await asyncio.sleep(max(0.0, down_s - (time.monotonic() - killed_at)))
            counters = bridge_counters(engine)
            seen_during_outage = {
                "connected": counters[bridge_mod.NATS_CONNECTED],
                "backlog": counters[bridge_mod.SPOOL_RECORDS],
            }
            nats_server.start()
    finally:
        await client.close()
    return filled, seen_during_outage


def check_stream(msgs: list[tuple[str, dict[str, str], bytes]], filled: list[str]) -> None:
    fills = [msgspec.json.decode(d)["payload"]["signalId"] for s, _, d in msgs if s.startswith(FILL_PREFIX)]
    shadows = [msgspec.json.decode(d)["signalId"] for s, _, d in msgs if s.startswith(SHADOW_PREFIX)]
    order = {sid: k for k, sid in enumerate(filled)}
    # Every fill event exactly once, and in the order the intents were filled (per subject).
    assert sorted(fills) == sorted(filled)
    assert fills == sorted(fills, key=order.__getitem__)
    assert len(shadows) == len(set(shadows)) and set(filled) <= set(shadows)
    known = [s for s in shadows if s in order]
    assert known == sorted(known, key=order.__getitem__)
    ids = [h.get("Nats-Msg-Id") for _, h, _ in msgs]
    assert all(ids) and len(ids) == len(set(ids))


async def outage_run(engine: Engine, nats_server: NatsServer, n: int, kill_at: int, down_s: float) -> None:
    filled, during = await send_intents(engine, nats_server, n, kill_at, down_s)
    assert len(filled) >= n * 0.9, f"only {len(filled)} of {n} intents filled"
    assert during["connected"] == 0 and during["backlog"] > 0  # health showed the outage and the backlog
    expected = 2 * len(filled)  # a fill and a shadow fill per filled intent

    async def count() -> int:
        nc = await nats.connect(nats_server.url)
        try:
            info = await nc.jetstream().stream_info("TITAN_EVT")
            return int(info.state.messages)
        finally:
            await nc.close()

    deadline = time.monotonic() + 60
    while await count() < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await until(lambda: bridge_counters(engine)[bridge_mod.SPOOL_RECORDS] == 0, 30, "spool drained")
    check_stream(await stream_messages(nats_server.url, "TITAN_EVT"), filled)


@pytest.mark.timeout(120)
async def test_nats_outage_mid_run_loses_and_doubles_nothing(engine: Engine, nats_server: NatsServer) -> None:
    await outage_run(engine, nats_server, n=240, kill_at=80, down_s=2.0)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_nats_down_10s_during_5000_intents(engine: Engine, nats_server: NatsServer) -> None:
    await outage_run(engine, nats_server, n=5000, kill_at=1500, down_s=10.0)


@pytest.mark.timeout(90)
async def test_unsigned_operator_command_is_refused_by_the_engine(
    engine: Engine, nats_server: NatsServer
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await until(lambda: bridge_counters(engine)[bridge_mod.NATS_CONNECTED] == 1, 30, "bridge connected")
        await js.publish(subjects.CMD_OPERATOR_DISARM, encode({"reason": "no signature", "operator_id": "x"}))
        await js.publish(subjects.CMD_SYS_HALT, encode({"state": "HARD_HALT"}))
        await until(lambda: bridge_counters(engine)[bridge_mod.OPERATOR_REJECTED] == 2, 30, "both refused")
        await until(
            lambda: bridge_counters(engine)[bridge_mod.EVENTS_PUBLISHED] >= 2, 15, "rejects published"
        )
    finally:
        await nc.close()
    msgs = await stream_messages(nats_server.url, "TITAN_EVT", subjects.EVT_REJECT)
    rejects = [msgspec.json.decode(d) for _, _, d in msgs]
    assert sorted(r["command"] for r in rejects) == sorted(
        [subjects.CMD_OPERATOR_DISARM, subjects.CMD_SYS_HALT]
    )
    assert {r["reason"] for r in rejects} == {"operator_auth_failed"}
    # Nothing changed: the engine is still armed and not halted, an intent still fills.
    client = FastPathClient(engine.socket_path, SECRET, timeout=5.0)
    await client.connect()
    try:
        sid = f"after-{uuid.uuid4().hex[:6]}"
        prep: Any = await client.prepare(
            sid, "BTCUSDT", "LONG", 50000, 50100, position_size=100, velocity=0.01
        )
        assert getattr(prep, "prepared", False), prep
        conf: Any = await client.confirm(sid)
        assert getattr(conf, "executed", False), conf
    finally:
        await client.close()


def signed(signal_id: str) -> bytes:
    return signed_intent(signal_id, SECRET)


async def fills_by_signal(url: str) -> dict[str, int]:
    msgs = await stream_messages(url, "TITAN_EVT", "titan.evt.execution.fill.v1.>")
    counts: dict[str, int] = {}
    for _, _, data in msgs:
        sid = msgspec.json.decode(data)["payload"]["signalId"]
        counts[sid] = counts.get(sid, 0) + 1
    return counts


@pytest.mark.timeout(120)
async def test_nats_intents_execute_once_across_a_core_sigkill(
    engine: Engine, nats_server: NatsServer
) -> None:
    await until(lambda: bridge_counters(engine)[bridge_mod.NATS_CONNECTED] == 1, 30, "bridge connected")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    sids = [f"nk-{uuid.uuid4().hex[:6]}-{i}" for i in range(30)]
    try:
        for i, sid in enumerate(sids):
            if i == 10:
                os.kill(engine.pids()["core"], signal.SIGKILL)
            await js.publish(subjects.place_intent_subject("paper", "BTC/USDT"), signed(sid))
        deadline = time.monotonic() + 60
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = await fills_by_signal(nats_server.url)
            if set(sids) <= set(counts):
                break
            await asyncio.sleep(0.2)
        info = await js.consumer_info("TITAN_CMD", "EXECUTION_CORE")
    finally:
        await nc.close()
    assert {sid: counts.get(sid, 0) for sid in sids} == dict.fromkeys(sids, 1)  # each exactly once
    assert info.num_ack_pending == 0 and info.num_pending == 0  # every intent ACKed after core had it


@pytest.mark.timeout(90)
async def test_signed_disarm_over_nats_stops_new_intents(engine: Engine, nats_server: NatsServer) -> None:
    await until(lambda: bridge_counters(engine)[bridge_mod.NATS_CONNECTED] == 1, 30, "bridge connected")
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        ts = time.time_ns() // 1_000_000
        await js.publish(subjects.CMD_OPERATOR_DISARM, encode(form_b("DISARM", secret=SECRET, ts=ts)))
        await until(lambda: bridge_counters(engine)[bridge_mod.OPERATOR_FORWARDED] == 1, 30, "forwarded")
        info = None
        for _ in range(100):  # ACKed once core applied it
            info = await js.consumer_info("TITAN_CMD", "OPERATOR_CONTROL")
            if info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.1)
        assert info is not None and info.num_ack_pending == 0
        sid = f"dis-{uuid.uuid4().hex[:6]}"
        await js.publish(subjects.place_intent_subject("paper", "BTC/USDT"), signed(sid))
        rejects: list[dict[str, Any]] = []
        for _ in range(150):
            msgs = await stream_messages(nats_server.url, "TITAN_EVT", subjects.EVT_REJECT)
            rejects = [msgspec.json.decode(d) for _, _, d in msgs]
            if any(r["intent_id"] == sid for r in rejects):
                break
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
    assert [r["reason"] for r in rejects if r["intent_id"] == sid] == ["system_disarmed"]
    assert sid not in await fills_by_signal(nats_server.url)
