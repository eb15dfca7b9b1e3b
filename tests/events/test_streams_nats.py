"""Streams and consumers against a real nats-server; Nats-Msg-Id dedupe and the intake path end to end."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from titan.events import streams
from titan.events.envelope import EnvelopeVerifier
from titan.events.intake import Action, EngineFacts, InboundMessage, IntentIntake
from titan.events.payloads import RejectEvent, publications
from titan.events.subjects import place_intent_subject

from .helpers import SECRET, envelope_dict, intent_payload

SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "nats-server"
pytestmark = pytest.mark.timeout(60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [str(SERVER), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("nats-server did not start") from None
                time.sleep(0.05)  # poll interval of a bounded readiness loop
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _with_js(url: str, body: Any) -> Any:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        return await body(nc, nc.jetstream())
    finally:
        await nc.close()


def test_ensure_streams_is_idempotent(nats_url: str) -> None:
    async def body(nc: Any, js: Any) -> None:
        assert await streams.ensure_streams(js, manage=False) == []
        assert await streams.ensure_streams(js, manage=False) == []
        cmd = await js.stream_info("TITAN_CMD")
        assert cmd.config.retention == RetentionPolicy.WORK_QUEUE and cmd.config.duplicate_window == 60
        evt = await js.stream_info("TITAN_EVT")
        assert evt.config.duplicate_window == 600 and evt.config.max_age == 30 * 24 * 3600
        operator = await js.consumer_info("TITAN_CMD", "OPERATOR_CONTROL")
        assert sorted(operator.config.filter_subjects) == ["titan.cmd.operator.>", "titan.cmd.sys.>"]
        core = await js.consumer_info("TITAN_CMD", "EXECUTION_CORE")
        assert (core.config.max_deliver, core.config.ack_wait, core.config.max_ack_pending) == (5, 30, 1000)

    asyncio.run(_with_js(nats_url, body))


def test_existing_stream_differences_reported_and_changed_only_when_managed(nats_url: str) -> None:
    async def body(nc: Any, js: Any) -> None:
        await js.add_stream(
            config=StreamConfig(
                name="TITAN_EXECUTION",
                subjects=["titan.execution.>"],
                storage=StorageType.FILE,
                max_age=3600.0,
                max_bytes=1024**3,
            )
        )
        report = await streams.ensure_streams(js, manage=False)
        assert any("TITAN_EXECUTION: max_age" in line for line in report)
        assert (await js.stream_info("TITAN_EXECUTION")).config.max_age == 3600
        report = await streams.ensure_streams(js, manage=True)
        assert any(line.endswith("(updated)") for line in report)
        assert (await js.stream_info("TITAN_EXECUTION")).config.max_age == 24 * 3600
        assert await streams.ensure_streams(js, manage=False) == []

    asyncio.run(_with_js(nats_url, body))


def test_event_msg_id_dedupes_a_republish(nats_url: str) -> None:
    async def body(nc: Any, js: Any) -> None:
        await streams.ensure_streams(js)
        event = RejectEvent(
            reason="system_halted",
            intent_id="sig-1",
            brain_instance_id="sig-1",
            timestamp=1,
            code="X",
            message="m",
        )
        for _ in range(3):  # a retry / spool replay of the same event
            for pub in publications(event):
                ack = await js.publish(pub.subject, pub.data, headers={"Nats-Msg-Id": pub.msg_id})
        assert ack.duplicate
        info = await js.stream_info("TITAN_EVT")
        assert info.state.messages == 1

    asyncio.run(_with_js(nats_url, body))


def test_partitioned_consumer_sees_only_its_account(nats_url: str) -> None:
    async def body(nc: Any, js: Any) -> None:
        await streams.ensure_streams(js, account="acct2")
        for account in ("main", "acct2"):
            subject = place_intent_subject("bybit", "BTC/USDT", account)
            await js.publish(subject, json.dumps({"account": account}).encode())
        sub = await js.pull_subscribe_bind("EXECUTION_CORE_ALL_ACCT2", stream="TITAN_CMD")
        msgs = await sub.fetch(10, timeout=2)
        assert [json.loads(m.data)["account"] for m in msgs] == ["acct2"]
        for m in msgs:
            await m.ack()

    asyncio.run(_with_js(nats_url, body))


def test_signed_intent_through_jetstream_to_intake(nats_url: str) -> None:
    async def body(nc: Any, js: Any) -> None:
        await streams.ensure_streams(js)
        now = int(time.time() * 1000)
        envelope = envelope_dict(intent_payload(t_signal=now), ts=now)
        subject = place_intent_subject("bybit", "BTC/USDT")
        await js.publish(subject, json.dumps(envelope).encode(), headers={"Nats-Msg-Id": "sig-1"})
        await js.publish(subject, json.dumps(envelope).encode(), headers={"Nats-Msg-Id": "sig-1"})  # deduped
        sub = await js.pull_subscribe_bind("EXECUTION_CORE", stream="TITAN_CMD")
        (msg,) = await sub.fetch(10, timeout=2)
        intake = IntentIntake(EnvelopeVerifier({"default": SECRET}), clock_ms=lambda: now)
        inbound = InboundMessage(
            subject=msg.subject,
            data=msg.data,
            headers=dict(msg.headers or {}),
            stream_seq=msg.metadata.sequence.stream,
        )
        outcome = intake.process(inbound, EngineFacts(armed=True, ready=True, active_policy_hash="h"))
        assert outcome.action is Action.FORWARD and outcome.intent is not None
        assert "sig-1" in outcome.dedupe_ids
        await msg.ack_sync()
        assert (await js.stream_info("TITAN_CMD")).state.messages == 0  # work queue: gone once ACKed

    asyncio.run(_with_js(nats_url, body))
