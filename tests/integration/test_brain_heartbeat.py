"""R24 end to end: Brain heartbeats on NATS keep a real engine Normal; silence turns it Defensive.

The whole chain: ``titan.sys.heartbeat.v1.brain`` on NATS → bridge → core's risk state → the
pre-trade check, seen from both intake paths. With ``risk.brain_heartbeat_required`` and a short
``risk.brain_heartbeat_timeout_ms``: heartbeats flowing → an open passes; heartbeats stop → after the
timeout opens are denied ``RISK_STATE_DEFENSIVE`` (FastPath reply, and a NATS open's reject event)
while a reduce-only CLOSE_LONG still fills; heartbeats resume → opens pass again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from titan.canonical import canonical_json
from titan.client import FastPathClient
from titan.events import subjects
from titan.events.envelope import sign
from titan.harness import SECRET, Engine, start_engine

TIMEOUT_MS = 1500
BEAT_S = 0.2


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = start_engine(
        tmp_path,
        log_level="WARNING",
        env_overrides={
            "TITAN__RISK__BRAIN_HEARTBEAT_REQUIRED": "true",
            "TITAN__RISK__BRAIN_HEARTBEAT_TIMEOUT_MS": str(TIMEOUT_MS),
        },
    )
    try:
        yield eng
    finally:
        assert eng.stop() == 0, eng.log_path.read_text()[-3000:]
        assert eng.shm_leftovers() == []


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def envelope(payload: dict[str, Any], signal_id: str) -> bytes:
    """A signed titan.cmd.execution.place.v1 envelope (nats.md §4; as in test_large_intents)."""
    ts, nonce = now_ms(), uuid.uuid4().hex
    env = {
        "id": f"env-{uuid.uuid4().hex[:8]}",
        "type": "titan.cmd.execution.place.v1",
        "version": 1,
        "ts": ts,
        "producer": "titan-brain",
        "nonce": nonce,
        "sig": sign(SECRET, ts, nonce, canonical_json(payload)),
        "payload": payload,
        "correlation_id": signal_id,
        "idempotency_key": signal_id,
    }
    return json.dumps(env, separators=(",", ":")).encode()


def nats_intent(signal_id: str, intent_type: str, direction: int, size: str) -> bytes:
    payload = {
        "signal_id": signal_id,
        "symbol": "BTC/USDT",
        "direction": direction,
        "type": intent_type,
        "status": "PENDING",
        "size": float(size),
        "t_signal": now_ms(),
        "entry_zone": [50000],
        "exchange": "paper",
        "velocity": 0.01,  # marketable: fills on paper at once
    }
    return envelope(payload, signal_id)


async def poll(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Await ``check()`` until truthy; fail at the deadline with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not met within {timeout}s (last value: {last!r})")


class Brain:
    """Publishes the Brain heartbeat every BEAT_S while switched on."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.task: asyncio.Task[None] | None = None
        self.last_beat = 0.0

    async def _beat(self) -> None:
        subject = subjects.heartbeat_subject("brain")
        assert subject == "titan.sys.heartbeat.v1.brain"
        while True:
            body = {"service": "brain", "timestamp": now_ms(), "status": "ok"}
            await self.nc.publish(subject, json.dumps(body).encode())
            await self.nc.flush()
            self.last_beat = time.monotonic()
            await asyncio.sleep(BEAT_S)  # the publishing cadence, not a wait for anything

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._beat())

    async def stop(self) -> float:
        """Stop beating; the time of the last beat sent."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return self.last_beat


async def scenario(engine: Engine) -> None:
    nc = await nats.connect(engine.nats_url)
    fills: dict[str, list[dict[str, Any]]] = {}
    rejects: dict[str, dict[str, Any]] = {}

    async def on_fill(msg: Any) -> None:
        payload = msgspec.json.decode(msg.data)["payload"]
        fills.setdefault(payload["signalId"], []).append(payload)

    async def on_reject(msg: Any) -> None:
        body = msgspec.json.decode(msg.data)
        rejects[body["intent_id"]] = body

    await nc.subscribe("titan.evt.execution.fill.v1.>", cb=on_fill)
    await nc.subscribe(subjects.EVT_REJECT, cb=on_reject)
    await nc.flush()
    js = nc.jetstream()
    client = FastPathClient(engine.socket_path, SECRET, timeout=5.0)
    await client.connect()
    brain = Brain(nc)
    n = 0

    async def prepare_open() -> Any:
        nonlocal n
        n += 1
        sid = f"hb-open-{n}"
        reply = await client.prepare(sid, "BTCUSDT", "LONG", 50000, 50100, position_size=100, velocity=0.01)
        return sid, reply

    async def risk_state() -> str:
        _, body = await asyncio.to_thread(engine.health)
        return str(body.get("risk_state"))

    async def open_passes() -> Any:
        sid, reply = await prepare_open()
        return sid if getattr(reply, "prepared", False) else None

    async def open_denied_defensive() -> Any:
        _, reply = await prepare_open()
        return getattr(reply, "reason", None) == "RISK_STATE_DEFENSIVE" and reply

    try:
        # 1. Heartbeats flow: Normal, and an open passes and fills (the position the close reduces).
        brain.start()
        await poll(lambda: _eq(risk_state(), "Normal"), 30, "Normal while heartbeats flow")
        sid = await poll(open_passes, 10, "an open passes while heartbeats flow")
        confirm = await client.confirm(sid)
        assert getattr(confirm, "executed", False) and confirm.status == "FILLED", confirm

        # 2. Silence: Defensive after the timeout (not before), opens denied on both paths.
        last_beat = await brain.stop()
        denied = await poll(open_denied_defensive, 15, "an open denied RISK_STATE_DEFENSIVE after silence")
        silent_for = time.monotonic() - last_beat
        assert silent_for >= (TIMEOUT_MS - 300) / 1000, f"Defensive after only {silent_for:.2f}s of silence"
        assert denied.prepared is False
        # /health shows the effective state from core's status-board row (written every 100 ms).
        await poll(lambda: _eq(risk_state(), "Defensive"), 5, "/health risk_state Defensive")
        await js.publish(
            subjects.place_intent_subject("paper", "BTC/USDT"),
            nats_intent("hb-nats-open", "BUY_SETUP", 1, "0.002"),
        )
        rejected = await poll(lambda: _get(rejects, "hb-nats-open"), 15, "the NATS open's reject event")
        assert (rejected["reason"], rejected["code"]) == ("risk_rejected", "RISK_STATE_DEFENSIVE"), rejected
        #    …while a reduce-only close still passes and fills.
        await js.publish(
            subjects.place_intent_subject("paper", "BTC/USDT"),
            nats_intent("hb-nats-close", "CLOSE_LONG", 0, "0.002"),
        )
        (fill,) = await poll(lambda: _get(fills, "hb-nats-close"), 15, "the reduce-only close fills")
        assert (fill["side"], fill["qty"]) == ("SELL", "0.002"), fill
        assert "hb-nats-close" not in rejects
        assert "hb-nats-open" not in fills
        assert await risk_state() == "Defensive"  # the close went through in Defensive

        # 3. Heartbeats resume: Normal again, opens pass.
        brain.start()
        await poll(lambda: _eq(risk_state(), "Normal"), 15, "Normal once heartbeats resume")
        sid = await poll(open_passes, 10, "an open passes once heartbeats resume")
        confirm = await client.confirm(sid)
        assert getattr(confirm, "executed", False) and confirm.status == "FILLED", confirm
        await brain.stop()
    finally:
        if brain.task is not None and not brain.task.done():
            await brain.stop()
        await client.close()
        await nc.drain()


async def _eq(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def _get(table: dict[str, Any], key: str) -> Any:
    return table.get(key)


@pytest.mark.timeout(180)
def test_R24_heartbeat_silence_turns_opens_defensive_and_resume_restores(engine: Engine) -> None:
    asyncio.run(scenario(engine))
