"""Scale-out by partition: two engines on one NATS, each consuming only its own account's intents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import nats

from bench.nats_path import signed_intent
from titan.harness import SECRET, Engine, start_engine

from .conftest import NatsServer, until

ACCOUNTS = ("alpha", "beta")
PER_ACCOUNT = 5


def journaled_signal_ids(engine: Engine) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "titan.cli", "replay", str(engine.run_dir / "journal" / "core.journal")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return {sid for acct in ACCOUNTS for i in range(PER_ACCOUNT) if (sid := f"{acct}-{i}") in out}


async def test_two_engines_partitioned_by_account(tmp_path: Path, nats_server: NatsServer) -> None:
    engines: dict[str, Engine] = {}
    try:
        for acct in ACCOUNTS:
            (tmp_path / acct).mkdir()
            engines[acct] = start_engine(
                tmp_path / acct, extra=f'\n[nats]\nurl = "{nats_server.url}"\naccount = "{acct}"\n'
            )
        nc = await nats.connect(nats_server.url)
        fills: list[Any] = []

        async def on_fill(msg: Any) -> None:
            fills.append(msg.subject)

        await nc.subscribe("titan.evt.execution.fill.v1.>", cb=on_fill)
        js = nc.jetstream()
        for acct in ACCOUNTS:
            for i in range(PER_ACCOUNT):
                sid = f"{acct}-{i}"
                await js.publish(
                    f"titan.cmd.execution.place.v1.paper.{acct}.BTC_USDT",
                    signed_intent(sid, SECRET),
                    headers={"Nats-Msg-Id": sid},
                )
        await until(lambda: len(fills) >= len(ACCOUNTS) * PER_ACCOUNT, timeout=30, what="every intent filled")
        await nc.drain()
    finally:
        for eng in engines.values():
            eng.stop()
    for acct, eng in engines.items():
        ids = journaled_signal_ids(eng)
        assert ids == {f"{acct}-{i}" for i in range(PER_ACCOUNT)}, (acct, ids)
