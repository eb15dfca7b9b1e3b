"""FastPath intents through core and the three real gateways to the simulated venues."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from titan.harness import Engine, eventually, start_engine

from .conftest import BASE_ENV, ROUTING, VENUES, send_intent


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = start_engine(
        tmp_path, extra=ROUTING, env_overrides={**BASE_ENV, "TITAN__ENGINE__START_SIM": "true"}
    )
    try:
        yield eng
    finally:
        eng.stop()


async def send(engine: Engine, sid: str, velocity: float | None, low: float, high: float) -> Any:
    return await send_intent(engine.socket_path, sid, velocity, low, high)


async def collect(engine: Engine, subjects: list[str], sink: list[dict[str, Any]]) -> Any:
    nc = await nats.connect(engine.nats_url)

    async def on_msg(msg: Any) -> None:
        sink.append({"subject": msg.subject, **msgspec.json.decode(msg.data)})

    for subject in subjects:
        await nc.subscribe(subject, cb=on_msg)
    await nc.flush()
    return nc


def test_marketable_intent_fills_on_every_venue(engine: Engine) -> None:
    async def scenario() -> tuple[Any, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        nc = await collect(engine, ["titan.evt.execution.fill.v1.>", "titan.evt.execution.report.v1.>"], seen)
        try:
            conf = await send(engine, "e2e-mkt", 0.01, 65000, 65100)
            deadline = asyncio.get_running_loop().time() + 20
            while asyncio.get_running_loop().time() < deadline:
                if {f["subject"].split(".")[5] for f in seen if ".fill." in f["subject"]} >= set(VENUES):
                    break
                await asyncio.sleep(0.05)
        finally:
            await nc.drain()
        return conf, seen

    conf, seen = asyncio.run(scenario())
    assert getattr(conf, "executed", False), conf
    fills = [f for f in seen if ".fill." in f["subject"]]
    by_venue = {f["subject"].split(".")[5] for f in fills}
    assert by_venue == set(VENUES), [f["subject"] for f in seen]
    assert any(".report." in f["subject"] for f in seen)
    _, health = engine.health()
    for venue in VENUES:
        assert health["processes"][f"gateway.{venue}"]["state"] == "READY"
    eventually(lambda: engine.health()[0] == 200)
