"""bridge → core messages larger than a ring slot (1 KiB by default) cross in fragments, end to end.

A signed NATS place intent whose envelope is several KiB (padded ``metadata``, nats.md §4) executes,
and when core refuses it (row 8, policy hash) the DLQ message carries the entire original envelope
(§5, §6); a risk-policy update larger than a slot (§10.2 form A) reaches core and takes effect.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.js.errors
import pytest

from tests.bridge.conftest import stream_messages
from titan.canonical import canonical_json
from titan.events import subjects
from titan.events.envelope import sign
from titan.harness import SECRET, Engine, start_engine
from titan.risk.policy import policy_hash

REPO = Path(__file__).resolve().parents[2]
SLOT = 1024  # the default shm.slot_size


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def envelope(payload: dict[str, Any], type_: str, signal_id: str = "") -> bytes:
    ts = now_ms()
    nonce = uuid.uuid4().hex
    env: dict[str, Any] = {
        "id": f"env-{uuid.uuid4().hex[:8]}",
        "type": type_,
        "version": 1,
        "ts": ts,
        "producer": "titan-brain",
        "nonce": nonce,
        "sig": sign(SECRET, ts, nonce, canonical_json(payload)),
        "payload": payload,
    }
    if signal_id:
        env.update(correlation_id=signal_id, idempotency_key=signal_id)
    return json.dumps(env, separators=(",", ":")).encode()


def big_intent(signal_id: str, expected_policy_hash: str) -> bytes:
    payload: dict[str, Any] = {
        "signal_id": signal_id,
        "symbol": "BTC/USDT",
        "direction": 1,
        "type": "BUY_SETUP",
        "status": "PENDING",
        "size": 0.002,
        "t_signal": now_ms(),
        "entry_zone": [50000],
        "exchange": "paper",
        "velocity": 0.01,  # marketable: fills on paper
        "policy_hash": expected_policy_hash,
        "metadata": {"note": "n" * 6000, "tags": [f"tag-{i}" for i in range(100)]},
    }
    data = envelope(payload, "titan.cmd.execution.place.v1", signal_id)
    assert len(data) > 6 * SLOT
    return data


async def request_json(nc: Any, subject: str) -> dict[str, Any]:
    reply = await nc.request(subject, b"", timeout=2.0)
    body: dict[str, Any] = msgspec.json.decode(reply.data)
    return body


async def poll(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s")


async def scenario(engine: Engine) -> None:
    url = engine.nats_url
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        old_hash = await poll(
            lambda: _policy_hash(nc), 30, "the engine publishes its policy hash (first truth snapshot)"
        )
        # The bridge answers requests before it has created its streams: a publish before that
        # finds no stream (NoStreamResponseError).
        await poll(lambda: _streams_exist(js), 30, "the engine's streams exist")
        # A policy update of several KiB: the default policy with a long whitelist.
        policy = json.loads((REPO / "config" / "risk_policy.json").read_text())
        policy["symbolWhitelist"] = [*policy["symbolWhitelist"], *(f"PAD{i:04d}/USDT" for i in range(400))]
        new_hash = policy_hash(policy)
        assert new_hash != old_hash
        command = envelope(
            {"timestamp": now_ms(), "policy": policy, "source": "test"}, "titan.cmd.risk.policy.v1"
        )
        assert len(command) > 6 * SLOT
        await js.publish(subjects.CMD_RISK_POLICY, command)

        async def new_hash_active() -> bool:
            return await _policy_hash(nc) == new_hash

        await poll(new_hash_active, 30, "the new policy's hash is the active one")
        info = await js.consumer_info("TITAN_CMD", "OPERATOR_CONTROL")
        assert info.num_ack_pending == 0  # ACKed on core's IntakeDone

        # A several-KiB intent under the new policy executes.
        sid_ok = f"big-ok-{uuid.uuid4().hex[:6]}"
        await js.publish(subjects.place_intent_subject("paper", "BTC/USDT"), big_intent(sid_ok, new_hash))

        async def filled() -> bool:
            msgs = await stream_messages(url, "TITAN_EVT", "titan.evt.execution.fill.v1.>")
            return any(msgspec.json.decode(d)["payload"]["signalId"] == sid_ok for _, _, d in msgs)

        await poll(filled, 30, "the large intent filled")

        # One refused in core (row 8: the hash it expects is no longer active): DLQ with the whole envelope.
        sid_no = f"big-no-{uuid.uuid4().hex[:6]}"
        refused = big_intent(sid_no, old_hash)
        await js.publish(subjects.place_intent_subject("paper", "BTC/USDT"), refused)

        async def dlq() -> list[dict[str, Any]]:
            msgs = await stream_messages(url, "TITAN_EXECUTION", "titan.execution.dlq")
            bodies = [msgspec.json.decode(d) for _, _, d in msgs]
            return [b for b in bodies if isinstance(b["payload"], dict) and b["payload"].get("sig")]

        (message,) = await poll(dlq, 30, "the DLQ message of the refused intent")
        assert message["reason"] == f"Policy Hash mismatch: exp {new_hash} got {old_hash}"
        assert message["payload"] == json.loads(refused)  # the entire original envelope
        info = await js.consumer_info("TITAN_CMD", "EXECUTION_CORE")
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        await nc.close()


async def _streams_exist(js: Any) -> bool:
    try:
        for stream in ("TITAN_CMD", "TITAN_EVT", "TITAN_EXECUTION"):
            await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return False
    return True


async def _policy_hash(nc: Any) -> str | None:
    body = await request_json(nc, subjects.REQ_POLICY_HASH)
    value = body.get("policy_hash")
    return value if isinstance(value, str) else None


@pytest.mark.timeout(180)
def test_large_intents_and_policy_cross_the_bridge_ring_in_fragments(tmp_path: Path) -> None:
    engine = start_engine(tmp_path)
    try:
        asyncio.run(scenario(engine))
        _, health = engine.health()
        assert health["processes"]["core"]["restarts"] == 0
    finally:
        assert engine.stop() == 0
