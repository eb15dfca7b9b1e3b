"""The README quick start: `titan send` against a running engine, then `titan replay` of its journal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from titan.harness import start_engine


def titan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "titan.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_send_then_replay_the_journal(tmp_path: Path) -> None:
    engine = start_engine(tmp_path)
    cfg = str(tmp_path / "engine.toml")
    try:
        ping = titan("--config", cfg, "send", "ping")
        assert ping.returncode == 0, ping.stderr
        assert json.loads(ping.stdout)["pong"] is True

        prep = titan(
            "--config", cfg, "send", "prepare", "cli-1",
            "--entry", "50000", "50100", "--size", "100", "--velocity", "0.01",
        )  # fmt: skip
        assert prep.returncode == 0, prep.stderr
        prepared = json.loads(prep.stdout)
        assert prepared["prepared"] is True and prepared["order_type"] == "MARKET"

        conf = titan("--config", cfg, "send", "confirm", "cli-1")
        assert conf.returncode == 0, conf.stderr
        confirmed = json.loads(conf.stdout)
        assert confirmed["executed"] is True and confirmed["status"] == "FILLED"

        abort = titan("--config", cfg, "send", "abort", "cli-1")
        assert json.loads(abort.stdout)["reason"] == "ALREADY_CONFIRMED"

        missing = titan("--config", cfg, "send", "prepare", "cli-2")
        assert missing.returncode == 2 and "--entry" in missing.stderr
    finally:
        assert engine.stop() == 0

    journal = engine.run_dir / "journal" / "core.journal"
    first = titan("replay", str(journal))
    second = titan("replay", str(journal))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout  # byte-identical across runs
    assert "cli-1" in first.stdout
    state = json.loads(first.stdout.strip().splitlines()[-1])["state"]  # printed last
    [position] = state["shadow"]["positions"]
    assert (position["symbol"], position["side"], position["size"]) == ("BTC/USDT", 1, "0.002")
    assert position["signal_id"] == "cli-1"

    bad = titan("replay", str(tmp_path / "nope.journal"))
    assert bad.returncode == 2
