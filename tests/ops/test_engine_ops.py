"""Ops endpoints, `titan top`, supervision and drain against real running engines."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import start_ops_engine
from titan.client import FastPathClient
from titan.harness import SECRET, Engine, eventually, pid_alive
from titan.top import render_once

API_KEY = "ops-test-api-key-1234"
VENUE_SECRET = "bybit-secret-never-logged-5678"
ENV = {
    "TITAN_EXECUTION_API_KEY": API_KEY,
    "BYBIT_API_SECRET": VENUE_SECRET,
    "BYBIT_API_KEY": "bybit-key-9876",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = start_ops_engine(tmp_path_factory.mktemp("ops"), env_extra=ENV)
    try:
        yield eng
    finally:
        eng.stop()


def get(engine: Engine, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{engine.http_port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def metrics(engine: Engine) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, body = get(engine, "/metrics")
    assert code == 200
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(engine: Engine, name: str, **labels: str) -> float:
    return metrics(engine).get((name, tuple(sorted(labels.items()))), 0.0)


async def drive(engine: Engine, n: int, secret: str = SECRET) -> list[Any]:
    client = FastPathClient(engine.socket_path, secret, timeout=5.0)
    await client.connect()
    replies: list[Any] = []
    try:
        for i in range(n):
            sid = f"ops-{os.getpid()}-{i}-{secret[:4]}"
            try:
                replies.append(await client.prepare(sid, "BTCUSDT", "LONG", 50000, 50100, position_size=100))
                replies.append(await client.confirm(sid))
            except Exception as exc:  # a protocol error reply raises in the client: still an answer
                replies.append(exc)
    finally:
        await client.close()
    return replies


def test_live_and_health_shape(engine: Engine) -> None:
    assert get(engine, "/live")[0] == 200
    code, body = engine.health()
    assert code == 200 and body["status"] == "ok"
    assert set(body["processes"]) >= {"ingress", "core", "marketdata", "bridge", "gateway.paper"}
    for p in body["processes"].values():
        assert p["pid"] > 0 and p["state"] == "READY" and p["heartbeat_age_ms"] is not None
    assert "ingress->core" in body["ring_depths"]
    assert {(m["venue"], m["symbol"]) for m in body["marketdata"]} >= {("sim", "BTC/USDT")}
    assert all(m["age_ms"] is not None for m in body["marketdata"])
    assert body["nats"]["embedded"] is True and body["nats"]["url"].startswith("nats://127.0.0.1:")
    assert "paper" in body["venues"] and body["halt"] in ("OPEN", "SOFT_HALT", "HARD_HALT")


def test_metrics_and_health_change_as_intents_flow(engine: Engine) -> None:
    before = metrics(engine)
    received0 = before.get(("titan_execution_fastpath_messages_received_total", ()), 0.0)
    latency0 = before.get(("titan_execution_latency_us_count", ()), 0.0)
    replies = asyncio.run(drive(engine, 20))
    assert len(replies) == 40

    def counted() -> bool:
        m = metrics(engine)
        return (
            m.get(("titan_execution_fastpath_messages_received_total", ()), 0) >= received0 + 40
            and m.get(("titan_execution_latency_us_count", ()), 0) >= latency0 + 40
            and m.get(("titan_execution_stage_latency_us_count", (("stage", "core"),)), 0) >= 40
        )

    eventually(counted, timeout=10, interval=0.1)
    _, body = engine.health()
    assert body["fastpath"]["messagesReceived"] >= received0 + 40
    assert body["latency_us"]["total"]["count"] >= 40
    assert body["latency_us"]["total"]["p50_us"] is not None


def test_active_connections_gauge_follows_clients(engine: Engine) -> None:
    async def hold() -> None:
        client = FastPathClient(engine.socket_path, SECRET, timeout=5.0)
        await client.connect()
        try:
            await client.ping()
            await asyncio.to_thread(
                eventually, lambda: metric(engine, "titan_execution_active_connections") >= 1, 10, 0.1
            )
        finally:
            await client.close()

    asyncio.run(hold())
    eventually(lambda: metric(engine, "titan_execution_active_connections") == 0, timeout=10, interval=0.1)


def test_top_once_renders_a_running_engine(engine: Engine) -> None:
    text = render_once(f"http://127.0.0.1:{engine.http_port}", API_KEY, width=140, interval=0.2)
    for expected in (
        "OK",
        "processes",
        "gateway.paper",
        "READY",
        "latency",
        "market data",
        "BTC/USDT",
        "NATS",
    ):
        assert expected in text, text
    assert "positions" in text


@pytest.mark.parametrize(
    ("path", "headers", "code", "error"),
    [
        ("/status", {}, 401, "Invalid API Key"),
        ("/status", {"x-api-key": "wrong"}, 401, "Invalid API Key"),
        ("/positions", {}, 401, "Invalid API Key"),
        ("/status", {"x-api-key": API_KEY}, 200, None),
        ("/positions", {"x-api-key": API_KEY}, 200, None),
    ],
)
def test_status_and_positions_need_the_api_key(
    engine: Engine, path: str, headers: dict[str, str], code: int, error: str | None
) -> None:
    got, body = get(engine, path, headers)
    doc = json.loads(body)
    assert got == code
    if error is not None:
        assert doc == {"error": error}
    elif path == "/status":
        assert doc["mode"] in ("Normal", "Cautious", "Defensive", "Emergency")
        assert isinstance(doc["actions"], list) and "unsafe_actions" in doc
    else:
        assert "paper" in doc["venues"]


def test_sigkilled_process_is_restarted_and_counted(engine: Engine) -> None:
    old = engine.pids()["gateway.paper"]
    os.kill(old, signal.SIGKILL)
    eventually(lambda: engine.health()[1].get("processes", {}).get("gateway.paper", {}).get("restarts") == 1)
    eventually(lambda: engine.health()[0] == 200, timeout=20, interval=0.1)
    assert engine.pids()["gateway.paper"] != old
    assert metric(engine, "titan_execution_process_restarts_total", process="gateway.paper") == 1
    assert metric(engine, "titan_execution_process_up", process="gateway.paper") == 1


def test_no_secret_in_logs_or_errors(engine: Engine) -> None:
    asyncio.run(drive(engine, 2, secret="wrong-secret-for-this-engine"))  # bad signatures: errors logged
    eventually(lambda: metric(engine, "titan_execution_fastpath_invalid_signatures_total") >= 2)
    log = engine.log_path.read_text()
    for secret in (SECRET, API_KEY, VENUE_SECRET, "bybit-key-9876"):
        assert secret not in log
    _, health = get(engine, "/health")
    _, status = get(engine, "/status", {"x-api-key": API_KEY})
    for secret in (SECRET, API_KEY, VENUE_SECRET):
        assert secret.encode() not in health + status


def test_crash_loop_halts_trading_and_says_why(tmp_path: Path) -> None:
    eng = start_ops_engine(
        tmp_path, extra="[supervisor]\ncrash_loop_max_restarts = 2\nrestart_backoff_ms = [10]\n"
    )
    try:
        assert get(eng, "/status")[1] == b'{"error": "API Key not configured on server"}'
        for _ in range(3):
            pid: int = eventually(lambda: eng.pids().get("gateway.paper"), timeout=10)
            eventually(lambda: engine_state(eng, "gateway.paper") == "READY", timeout=20)
            os.kill(pid, signal.SIGKILL)
            eventually(functools.partial(replaced_or_halted, eng, pid), timeout=20)
        eventually(lambda: engine_halted(eng), timeout=20)
        code, body = eng.health()
        assert code == 503 and body["status"] == "halted" and body["halt"] == "HARD_HALT"
        assert "gateway.paper" in body["halt_reason"]
        assert metric(eng, "titan_execution_supervisor_halt") == 1
    finally:
        assert eng.stop() == 0


def engine_state(eng: Engine, proc: str) -> str:
    return str(eng.health()[1].get("processes", {}).get(proc, {}).get("state"))


def replaced_or_halted(eng: Engine, pid: int) -> bool:
    return eng.pids().get("gateway.paper") != pid or engine_halted(eng)


def engine_halted(eng: Engine) -> bool:
    return eng.health()[1].get("status") == "halted"


def test_sigterm_drain_with_simulator_leaves_nothing_behind(tmp_path: Path) -> None:
    eng = start_ops_engine(tmp_path, env_extra={"TITAN__ENGINE__START_SIM": "true"})
    stopped = False
    try:
        code, body = eng.health()
        assert code == 200
        assert set(body["sim"]) == {"bybit", "binance", "mexc"}
        assert body["processes"]["sim"]["state"] == "READY"
        pids = eng.pids()
        assert (tmp_path / "run" / "sim.json").exists()

        async def load_then_stop() -> list[Any]:
            task = asyncio.create_task(drive(eng, 30))
            await asyncio.sleep(0)  # let the first intents go out before the stop signal
            eng.proc.send_signal(signal.SIGTERM)
            return await task

        replies = asyncio.run(load_then_stop())
        assert replies, "the client got answers (or clear errors) while the engine drained"
        assert eng.stop() == 0
        stopped = True
        assert not [n for n, p in pids.items() if pid_alive(p)], "a child outlived the engine"
        assert not os.path.exists(eng.socket_path)
        assert eng.shm_leftovers() == []
        assert not (tmp_path / "run" / "sim.json").exists()
    finally:
        if not stopped:
            eng.stop()
