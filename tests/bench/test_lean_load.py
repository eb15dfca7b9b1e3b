"""The lean load generator (bench/lean_load.py) against a fake FastPath server: requests framed as
FastPathClient frames them, CONFIRM sent from the PREPARE's reply, failures, expiry and lost connections."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.lean_load import LeanLoad, LeanReply, failure_reason
from titan.client import FastPathClient

SECRET = "s" * 32
SAME_KEYS_ONLY = ("signal_id", "timestamp", "entry_zone")  # the zone follows the fill price in between


class FakeServer:
    """Answers PREPARE ``prepared`` (``refused`` intents: not), CONFIRM ``executed`` with stages (``silent``
    intents: no answer); keeps every request it read, decoded (envelope, signal)."""

    def __init__(self, framing: str, refused: set[str], silent: set[str]) -> None:
        self.framing, self.refused, self.silent = framing, refused, silent
        self.requests: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        binary = self.framing == "binary"
        if binary:
            assert await reader.readexactly(1) == b"\xb1"
        try:
            while True:
                if binary:
                    body = await reader.readexactly(int.from_bytes(await reader.readexactly(4), "big"))
                    env = msgspec.msgpack.decode(body)
                    signal = msgspec.msgpack.decode(env["signal"])
                else:
                    env = json.loads(await reader.readuntil(b"\n"))
                    signal = env["signal"]
                self.requests.append((env, signal))
                sid = signal["signal_id"]
                reply: dict[str, Any] = {"correlationId": env["correlationId"]}
                if signal["signal_type"] == "PREPARE":
                    reply["prepared"] = sid not in self.refused
                    if sid in self.refused:
                        reply["reason"] = "RISK_REJECTED"
                elif sid in self.silent:
                    continue
                else:
                    reply |= {"executed": True, "fill_price": 50010.0}
                if env.get("trace"):
                    reply["stages"] = {"t_ring": 1, "t_core_out": 2}
                out = msgspec.msgpack.encode(reply) if binary else json.dumps(reply).encode() + b"\n"
                writer.write(len(out).to_bytes(4, "big") + out if binary else out)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


class Recorder(LeanLoad):
    def __init__(self, framing: str) -> None:
        super().__init__(SECRET, prefix="t", framing=framing, trace_prepare=False)  # type: ignore[arg-type]  # parametrized str; validated by the callee
        self.stamps: list[dict[str, int]] = []
        self.confirms: list[int] = []
        self.done: dict[int, str] = {}

    def on_stamps(self, stages: dict[str, int]) -> None:
        self.stamps.append(stages)

    def confirm_sent(self, i: int, t_ns: int) -> None:
        self.confirms.append(i)

    def finished(self, i: int, ok: bool, phase: str, r: LeanReply | None) -> None:
        self.done[i] = "ok" if ok else failure_reason(phase, r)


async def _run(tmp_path: Path, framing: str) -> tuple[FakeServer, Recorder]:
    server = FakeServer(framing, refused={"t-1"}, silent={"t-2", "x-1"})
    path = str(tmp_path / "fp.sock")
    srv = await asyncio.start_unix_server(server.handle, path)
    gen = Recorder(framing)
    conns = await gen.connect(path, 2)
    for i in range(4):
        assert gen.prepare(conns[i % 2], i)
    assert gen.in_flight == 4

    async def settled() -> None:
        while len(gen.done) < 3:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(settled(), 5)
    assert gen.expire(10**12, time.monotonic_ns()) == 0  # not late yet
    assert gen.expire(0, time.monotonic_ns() + 1) == 1  # intent 2: its CONFIRM got no answer
    assert gen.idle.is_set() and gen.in_flight == 0 and gen.executed == 2
    # the same PREPARE from FastPathClient, for the framing comparison
    client = FastPathClient(path, SECRET, framing=framing)  # type: ignore[arg-type]  # parametrized str; validated by the callee
    await client.connect()
    with pytest.raises(Exception, match="IPC_TIMEOUT"):
        await asyncio.wait_for(client.confirm("x-1", trace=True), 5)  # silent: only its bytes matter
    await client.prepare(
        "x-0", "BTCUSDT", "LONG", *gen.prices.zone("BTCUSDT"), position_size=100, velocity=0.01
    )
    await client.close()
    # a lost connection finishes what was in flight on it
    assert gen.prepare(conns[0], 5)
    for w in server.writers:
        w.close()
    await LeanLoad.close(conns)
    srv.close()
    return server, gen


@pytest.mark.timeout(30)
@pytest.mark.parametrize("framing", ["binary", "ndjson"])
def test_lean_load_pipelines_confirms_and_accounts_every_intent(tmp_path: Path, framing: str) -> None:
    server, gen = asyncio.run(_run(tmp_path, framing))
    assert gen.done == {
        0: "ok",
        1: "PREPARE: RISK_REJECTED",
        2: "FastPathTimeout",
        3: "ok",
        5: "FastPathError",
    }
    assert sorted(gen.confirms) == [0, 2, 3]
    assert gen.stamps == [{"t_ring": 1, "t_core_out": 2}] * 2  # CONFIRMs traced, PREPAREs not
    assert gen.prices.price["BTCUSDT"] == 50010.0  # the reference follows the fills
    by_sid = {(s["signal_id"], s["signal_type"]): (env, s) for env, s in server.requests}
    # same signal keys in the same order and the same envelope as FastPathClient's
    lean_env, lean_prep = by_sid[("t-0", "PREPARE")]
    client_env, client_prep = by_sid[("x-0", "PREPARE")]
    assert list(lean_prep) == list(client_prep)
    assert {k: v for k, v in lean_prep.items() if k not in SAME_KEYS_ONLY} == {
        k: v for k, v in client_prep.items() if k not in SAME_KEYS_ONLY
    }
    assert list(lean_env) == list(client_env)
    lean_env, lean_conf = by_sid[("t-0", "CONFIRM")]
    client_env, client_conf = by_sid[("x-1", "CONFIRM")]
    assert list(lean_conf) == list(client_conf) and list(lean_env) == list(client_env)
    assert lean_env["trace"] is True
    # correlation ids: 2i for the PREPARE, 2i + 1 for the CONFIRM, in the client's format
    corr = lean_env["correlationId"]
    if framing == "binary":
        assert corr == "1"
    else:
        source, ms, n = corr.split("-")
        assert source == "scavenger" and ms.isdigit() and n == "1"
