"""A truth snapshot larger than a ring slot crosses core → bridge in fragments (no crash loop)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import nats

from titan.client import FastPathClient
from titan.harness import SECRET, Engine, start_engine

SYMBOLS = {"BTCUSDT": (50000, 50100), "ETHUSDT": (3000, 3010), "SOLUSDT": (150, 151)}


async def open_positions_and_wait_for_truth(engine: Engine) -> dict[str, Any]:
    nc = await nats.connect(engine.nats_url)
    truths: list[dict[str, Any]] = []

    async def on_truth(msg: Any) -> None:
        truths.append(msgspec.json.decode(msg.data))

    await nc.subscribe("titan.evt.execution.truth.v1", cb=on_truth)
    try:
        async with FastPathClient(engine.socket_path, SECRET, timeout=5.0) as client:
            for i, (symbol, (lo, hi)) in enumerate(SYMBOLS.items()):
                sid = f"big-{i}"
                prep = await client.prepare(sid, symbol, "LONG", lo, hi, position_size=500, velocity=0.01)
                assert getattr(prep, "prepared", False), prep
                conf = await client.confirm(sid)
                assert getattr(conf, "status", None) == "FILLED", conf
        for _ in range(300):  # the snapshot goes out every 5 s
            if any(len(t.get("positions", {})) == len(SYMBOLS) for t in truths):
                break
            await asyncio.sleep(0.05)
    finally:
        await nc.drain()
    return next(t for t in truths if len(t.get("positions", {})) == len(SYMBOLS))


def test_truth_snapshot_larger_than_a_slot(tmp_path: Path) -> None:
    engine = start_engine(tmp_path, env_overrides={"TITAN__SHM__SLOT_SIZE": "512"})
    try:
        truth = asyncio.run(open_positions_and_wait_for_truth(engine))
        assert set(truth["positions"]) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
        assert len(msgspec.json.encode(truth)) > 512  # it really did not fit one slot
        _, health = engine.health()
        assert health["processes"]["core"]["restarts"] == 0
    finally:
        assert engine.stop() == 0
