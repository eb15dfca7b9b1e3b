"""R49: disarmed and halted by default, on a real engine trading on the simulated Bybit.

An engine started with ``execution.armed_at_start = false`` and no ``execution.armed`` file denies
every intent (FastPath and NATS). Armed by a signed operator command it trades; SOFT_HALT then lets a
reduce-only intent through and denies opens; HARD_HALT cancels the resting order at the venue and
denies everything; the halt survives a restart of the whole engine on the same run directory and a
SIGKILL of core. And no halt or armed file ships with the repository.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from tests.bridge.conftest import stream_messages
from tests.events.helpers import encode, form_b
from titan.canonical import canonical_json
from titan.client import FastPathClient
from titan.config import ExecutionSection, load_config
from titan.events import subjects
from titan.events.envelope import sign
from titan.harness import SECRET, Engine, eventually, start_engine
from titan.risk.state import ARMED_FILE, HALT_FILE
from titan.venues.sim import SimConfig

from .conftest import BASE_ENV, ThreadSim, send_intent, send_resting_intent

REPO = Path(__file__).resolve().parents[2]
BTC = "BTC/USDT"
ROUTING = "\n[routing]\nweights = { bybit = 1 }\n"


@pytest.fixture
def sim() -> Iterator[ThreadSim]:
    s = ThreadSim(SimConfig(seed=49))
    try:
        yield s
    finally:
        s.close()


def start(tmp_path: Path, sim: ThreadSim) -> Engine:
    env = {
        **BASE_ENV,
        **sim.env(),
        "TITAN__ENGINE__START_SIM": "false",
        "TITAN__EXECUTION__ARMED_AT_START": "false",  # the live default (the harness arms otherwise)
        "TITAN__VENUES__BINANCE__ENABLED": "false",
        "TITAN__VENUES__MEXC__ENABLED": "false",
    }
    return start_engine(tmp_path, extra=ROUTING, env_overrides=env)


def envelope(sid: str, intent_type: str, direction: int, size: str) -> bytes:
    """A signed NATS place intent for Bybit without an entry zone: a market order (also under
    SOFT_HALT, whose order decision is post-only at the zone's price when there is one)."""
    ts = time.time_ns() // 1_000_000
    payload: dict[str, Any] = {
        "signal_id": sid,
        "symbol": BTC,
        "direction": direction,
        "type": intent_type,
        "status": "PENDING",
        "size": float(size),
        "t_signal": ts,
        "exchange": "bybit",
    }
    nonce = uuid.uuid4().hex
    env = {
        "id": f"r49-{sid}",
        "type": "titan.cmd.execution.place.v1",
        "version": 1,
        "ts": ts,
        "producer": "titan-test",
        "correlation_id": sid,
        "idempotency_key": sid,
        "nonce": nonce,
        "sig": sign(SECRET, ts, nonce, canonical_json(payload)),
        "payload": payload,
    }
    return json.dumps(env, separators=(",", ":")).encode()


async def publish(url: str, subject: str, data: bytes) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(subject, data)
    finally:
        await nc.close()


def operator(engine: Engine, action: str) -> None:
    """A signed (form B) operator command over the engine's NATS."""
    subject = subjects.CMD_OPERATOR_ARM if action == "ARM" else subjects.CMD_SYS_HALT
    body = form_b(action, secret=SECRET, ts=time.time_ns() // 1_000_000, command_id=uuid.uuid4().hex)
    asyncio.run(publish(engine.nats_url, subject, encode(body)))


def nats_intent(engine: Engine, sid: str, intent_type: str, direction: int, size: str = "0.01") -> None:
    subject = subjects.place_intent_subject("bybit", BTC)
    asyncio.run(publish(engine.nats_url, subject, envelope(sid, intent_type, direction, size)))


def events(engine: Engine, subject: str) -> list[dict[str, Any]]:
    msgs = asyncio.run(stream_messages(engine.nats_url, "TITAN_EVT", subject))
    return [msgspec.json.decode(d) for _, _, d in msgs]


def rejected(engine: Engine, sid: str) -> list[str]:
    return [r["reason"] for r in events(engine, subjects.EVT_REJECT) if r.get("intent_id") == sid]


def filled(engine: Engine, sid: str) -> bool:
    fills = events(engine, "titan.evt.execution.fill.v1.>")
    return any(f["payload"]["signalId"] == sid for f in fills)


def prepare(engine: Engine, sid: str) -> Any:
    """A LONG FastPath PREPARE (marketable); the reply."""

    async def go() -> Any:
        async with FastPathClient(engine.socket_path, SECRET, timeout=10.0) as client:
            return await client.prepare(sid, BTC, "LONG", 65000, 65100, position_size=3000, velocity=0.01)

    return asyncio.run(go())


def denied(engine: Engine, sid: str, reason: str) -> None:
    reply = prepare(engine, sid)
    assert not reply.prepared and reply.reason == reason, reply


def health(engine: Engine) -> dict[str, Any]:
    return engine.health()[1]


def wait_state(engine: Engine, armed: bool, halt: str) -> None:
    eventually(lambda: (health(engine).get("armed"), health(engine).get("halt")) == (armed, halt), timeout=30)


@pytest.mark.timeout(240)
def test_disarmed_by_default_then_soft_and_hard_halt_survive_restarts(tmp_path: Path, sim: ThreadSim) -> None:
    run_dir = tmp_path / "run"
    engine = start(tmp_path, sim)
    try:
        # Started without an execution.armed file: disarmed, every intent denied.
        assert not (run_dir / ARMED_FILE).exists() and not (run_dir / HALT_FILE).exists()
        wait_state(engine, False, "OPEN")
        denied(engine, "r49-fp-disarmed", "EXECUTION_DISABLED_BY_OPERATOR")
        eventually(lambda: health(engine)["nats"].get("connected"), timeout=30)
        nats_intent(engine, "r49-nats-disarmed", "BUY_SETUP", 1)
        eventually(lambda: rejected(engine, "r49-nats-disarmed") == ["system_disarmed"], timeout=30)
        assert not filled(engine, "r49-nats-disarmed")
        assert sim.read(lambda: len(sim.server.venues["bybit"].engine.orders)) == 0

        # Armed by a signed operator command: it trades; a post-only buy far below rests at the venue.
        operator(engine, "ARM")
        wait_state(engine, True, "OPEN")
        assert (run_dir / ARMED_FILE).exists()
        opened = asyncio.run(send_intent(engine.socket_path, "r49-open", 0.01, 65000, 65100))
        assert opened.executed, opened
        eventually(lambda: sim.position("bybit", BTC) > 0, timeout=20)
        resting, _sniped = asyncio.run(send_resting_intent(engine.socket_path, "r49-rest"))
        assert resting.executed and resting.status == "ACKED", resting
        held = sim.position("bybit", BTC)  # after the tries placed at market (sniped), if any
        eventually(lambda: sim.open_orders("bybit") == 1, timeout=20)

        # SOFT_HALT: opens denied (FastPath and NATS), a reduce-only intent goes through.
        operator(engine, "SOFT_HALT")
        wait_state(engine, True, "SOFT_HALT")
        denied(engine, "r49-fp-soft", "SYSTEM_HALTED")
        nats_intent(engine, "r49-nats-soft-open", "BUY_SETUP", 1)
        eventually(lambda: rejected(engine, "r49-nats-soft-open") == ["system_halted"], timeout=30)
        nats_intent(engine, "r49-nats-soft-close", "CLOSE_LONG", 0, size="0.01")
        eventually(lambda: filled(engine, "r49-nats-soft-close"), timeout=30)
        assert rejected(engine, "r49-nats-soft-close") == []
        eventually(lambda: sim.position("bybit", BTC) == held - Decimal("0.01"), timeout=20)

        # HARD_HALT: the resting order is cancelled at the venue; everything is denied.
        operator(engine, "HALT")
        wait_state(engine, True, "HARD_HALT")
        eventually(lambda: sim.open_orders("bybit") == 0, timeout=20)
        halt_file = json.loads((run_dir / HALT_FILE).read_text())
        assert halt_file["state"] == "HARD_HALT", halt_file
        denied(engine, "r49-fp-hard", "SYSTEM_HALTED")
        nats_intent(engine, "r49-nats-hard-close", "CLOSE_LONG", 0)
        eventually(lambda: rejected(engine, "r49-nats-hard-close") == ["system_halted"], timeout=30)
        assert not filled(engine, "r49-nats-hard-close")
    finally:
        assert engine.stop() == 0, engine.log_path.read_text()[-3000:]
    assert engine.shm_leftovers() == []

    # The whole engine restarted on the same run directory: still hard-halted (and armed).
    orders_before = sim.read(lambda: len(sim.server.venues["bybit"].engine.orders))
    engine = start(tmp_path, sim)
    try:
        wait_state(engine, True, "HARD_HALT")
        denied(engine, "r49-fp-after-restart", "SYSTEM_HALTED")

        # core alone SIGKILLed and restarted by the supervisor: still hard-halted.
        pid = engine.pids()["core"]
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: engine.pids().get("core") not in (None, pid), timeout=60)
        eventually(lambda: health(engine)["processes"]["core"]["state"] == "READY", timeout=60)
        wait_state(engine, True, "HARD_HALT")
        denied(engine, "r49-fp-after-core-kill", "SYSTEM_HALTED")
        assert json.loads((run_dir / HALT_FILE).read_text())["state"] == "HARD_HALT"
        assert sim.read(lambda: len(sim.server.venues["bybit"].engine.orders)) == orders_before
    finally:
        assert engine.stop() == 0, engine.log_path.read_text()[-3000:]
    assert engine.shm_leftovers() == []


def test_no_halt_or_armed_file_ships_and_live_configs_start_disarmed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert tracked, "not a git checkout"
    assert [p for p in tracked if Path(p).name in (HALT_FILE, ARMED_FILE)] == []
    assert [p for p in (REPO / "config").rglob("*") if p.name in (HALT_FILE, ARMED_FILE)] == []
    # The run directory of the default config is not in the repository either.
    default_run = load_config(REPO / "config" / "default.toml", env={}).run_dir()
    rel = os.path.relpath(default_run, REPO)
    assert not any(p == rel or p.startswith(rel + "/") for p in tracked), rel
    # Without a config key, and in the live example, the engine starts disarmed.
    assert ExecutionSection().armed_at_start is False
    live = tomllib.loads((REPO / "config" / "live.example.toml").read_text())
    assert live["execution"]["armed_at_start"] is False
