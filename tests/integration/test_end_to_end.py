"""The walking skeleton end to end: real processes, real socket, real NATS, shared-memory rings."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from tests.bridge.conftest import stream_messages
from titan.client import FastPathClient
from titan.harness import SECRET, Engine, eventually, pid_alive, start_engine

N_INTENTS = 1000
KILL_AT = 500


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = start_engine(tmp_path)
    try:
        yield eng
    finally:
        eng.stop()


def field(reply: Any, name: str) -> Any:
    return getattr(reply, name, None)


def assert_clean_shutdown(engine: Engine, pids: dict[str, int]) -> None:
    rc = engine.stop()
    assert rc == 0, engine.log_path.read_text()[-3000:]
    assert not [n for n, p in pids.items() if pid_alive(p)], "a child process outlived the engine"
    assert not os.path.exists(engine.socket_path), "FastPath socket left behind"
    assert engine.shm_leftovers() == [], "shared-memory segments left behind"


async def drive(engine: Engine) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int], int]:
    fills: list[dict[str, Any]] = []
    nc = await nats.connect(engine.nats_url)

    async def on_fill(msg: Any) -> None:
        fills.append(msgspec.json.decode(msg.data))

    await nc.subscribe("titan.evt.execution.fill.v1.>", cb=on_fill)
    await nc.flush()
    client = FastPathClient(engine.socket_path, SECRET, timeout=5.0)
    await client.connect()
    outcomes: dict[str, Any] = {}
    not_ready = 0
    pids_before = engine.pids()
    try:
        for i in range(N_INTENTS):
            if i == KILL_AT:
                os.kill(pids_before["core"], signal.SIGKILL)
            sid = f"e2e-{i}"
            # A strategy retries ENGINE_NOT_READY (nothing happened) until core is back, within a
            # deadline generous enough for a restart on a loaded 2-core machine.
            deadline = time.monotonic() + 60
            while True:
                outcome = await one_intent(client, sid)
                if "ENGINE_NOT_READY" not in str(outcome[1]) or time.monotonic() > deadline:
                    break
                not_ready += 1
                await asyncio.sleep(0.01)
            outcomes[sid] = outcome
        n_filled = sum(1 for kind, status in outcomes.values() if kind == "executed" and status == "FILLED")
        # Distinct events: a re-sent duplicate (same id) must not end the wait early.
        await asyncio.wait_for(_until(lambda: len({f["id"] for f in fills}) >= n_filled), 30)
    finally:
        await client.close()
        await nc.drain()
    return outcomes, fills, pids_before, not_ready


async def one_intent(client: FastPathClient, sid: str) -> tuple[str, Any]:
    """PREPARE then CONFIRM; returns (kind, status or reason)."""
    try:
        # Marketable (velocity > 0.005 → MARKET): the paper venue fills it at once, as a real venue would.
        prep = await client.prepare(sid, "BTCUSDT", "LONG", 50000, 50100, position_size=100, velocity=0.01)
    except Exception as exc:  # a protocol error the client raises is a clear error too
        return ("prepare-error", str(exc))
    if not field(prep, "prepared"):
        return ("prepare-rejected", field(prep, "reason"))
    try:
        conf = await client.confirm(sid)
    except Exception as exc:
        return ("confirm-error", str(exc))
    if field(conf, "executed"):
        return ("executed", field(conf, "status"))
    return ("confirm-rejected", field(conf, "reason"))


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.02)


def test_thousand_intents_survive_a_core_kill(engine: Engine) -> None:
    outcomes, fills, pids, not_ready = asyncio.run(drive(engine))

    # Every request got an answer: a fill, or a clear error code — never silence.
    assert len(outcomes) == N_INTENTS
    kinds = [k for k, _ in outcomes.values()]
    filled = {sid for sid, (k, s) in outcomes.items() if k == "executed" and s == "FILLED"}
    errors = {sid: v for sid, v in outcomes.items() if sid not in filled}
    for _sid, (kind, detail) in errors.items():
        assert detail, f"{kind} without a reason"
    # While core was down, ingress answered ENGINE_NOT_READY at once (the clear error; how many
    # depends on how fast core restarts) or the request waited in the ring for the restarted core;
    # either way, once the supervisor had restarted core every intent went through, exactly once.
    assert len(filled) == N_INTENTS, (kinds.count("executed"), not_ready, errors)

    # One fill event per filled intent, none for anything else. A core killed between pushing an
    # event and recording that it did re-sends it on restart with the same id: JetStream stores it
    # once (Nats-Msg-Id), and a plain subscriber that sees it twice dedupes by the envelope id.
    by_id = {f["id"]: f for f in fills}
    fill_sids = [f["payload"]["signalId"] for f in by_id.values()]
    assert len(fill_sids) == len(set(fill_sids))
    assert set(fill_sids) == filled
    stored = asyncio.run(stream_messages(engine.nats_url, "TITAN_EVT", "titan.evt.execution.fill.v1.>"))
    stored_sids = [msgspec.json.decode(data)["payload"]["signalId"] for _, _, data in stored]
    assert sorted(stored_sids) == sorted(filled)  # in the stream exactly once each
    assert all(headers.get("Nats-Msg-Id") for _, headers, _ in stored)
    for f in fills:
        p = f["payload"]
        assert p["side"] == "BUY" and p["symbol"] == "BTC/USDT" and p["status"] == "FILLED"
        assert float(p["price"]) > 0 and p["qty"] == "0.002"  # 100 USD at the 50000 entry, lot 0.001

    # core was restarted by the supervisor and is healthy again.
    new_pids = engine.pids()
    assert new_pids["core"] != pids["core"]
    eventually(lambda: engine.health()[0] == 200, timeout=10)
    _, body = engine.health()
    assert body["processes"]["core"]["restarts"] == 1

    assert_clean_shutdown(engine, engine.pids())


def test_engine_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    eng = start_engine(tmp_path)
    pids = eng.pids()
    assert set(pids) >= {"ingress", "marketdata", "core", "gateway.paper", "bridge"}
    assert all(pid_alive(p) for p in pids.values())
    assert eng.shm_leftovers(), "the running engine should own shared-memory segments"
    eng.proc.send_signal(signal.SIGINT)
    assert eng.proc.wait(30) == 0
    assert not [n for n, p in pids.items() if pid_alive(p)]
    assert not os.path.exists(eng.socket_path)
    assert eng.shm_leftovers() == []
