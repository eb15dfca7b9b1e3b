"""Pure pieces of the bridge: subject matching, settings, board gauges, request-reply view, watch."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.config import load_config
from titan.events.payloads import BalanceEvent, Publication, TruthEvent, publications
from titan.events.rpc import EngineView
from titan.events.watch import format_event, watch
from titan.procs.bridge import BoardCounters, settings_from, subject_matches
from titan.shm.board import StatusBoard

from .conftest import SECRET, NatsServer, until, write_config
from .test_bridge_rig import _position

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("titan.evt.>", "titan.evt.execution.fill.v1.paper.main.BTC_USDT", True),
        ("titan.evt.>", "titan.evt", False),
        ("titan.execution.>", "titan.execution.dlq", True),
        ("titan.execution.>", "titan.dlq.execution.core", False),
        ("titan.*.dlq", "titan.execution.dlq", True),
        ("titan.*.dlq", "titan.execution.dlq.x", False),
        ("exposure.update", "exposure.update", True),
        ("exposure.update", "exposure.updates", False),
    ],
)
def test_subject_matches_nats_wildcards(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


tokens = st.lists(st.sampled_from(["a", "b", "titan", "evt"]), min_size=1, max_size=5)


@given(tokens)
def test_a_subject_matches_itself_and_its_full_wildcard(parts: list[str]) -> None:
    subject = ".".join(parts)
    assert subject_matches(subject, subject)
    assert subject_matches(">", subject)
    assert subject_matches(".".join("*" for _ in parts), subject)
    assert not subject_matches(subject + ".>", subject)


def test_settings_from_config_and_upstream_env(tmp_path: Path) -> None:
    path = write_config(tmp_path, "inst1", '[nats]\nurl = "nats://10.0.0.1:4222"\nuser = "u"\n')
    cfg = load_config(path, env={})
    s = settings_from(cfg, env={"HMAC_TIMESTAMP_TOLERANCE": "60"})
    assert s.url == "nats://10.0.0.1:4222" and s.instance == "inst1"
    assert s.hmac_keys == {"default": SECRET} and s.tolerance_s == 60
    assert s.spool_dir == str(cfg.run_dir() / "spool")
    assert s.account is None and s.operator_auth == "required"
    assert s.venues == ["paper"]


def test_board_gauges_continue_from_what_a_previous_bridge_left(tmp_path: Path) -> None:
    board = StatusBoard.create(f"/tbunit{id(tmp_path) % 100000}", ["bridge"])
    try:
        first = BoardCounters(board, "bridge")
        first.set(1, 40)
        first.add(4, 3)
        second = BoardCounters(board, "bridge")  # a restarted bridge
        second.set(1, 5)
        second.add(4)
        assert board.read("bridge").counters[1] == 5
        assert board.read("bridge").counters[4] == 4
    finally:
        board.close()
        board.unlink()


def test_engine_view_replies_before_and_after_core_published() -> None:
    view = EngineView(["paper", "bybit"])
    assert view.policy_hash_reply(5) == {"policy_hash": None, "timestamp": 5}
    assert view.balances_reply() == {"balances": []}
    assert "error" in view.positions_reply("titan.rpc.execution.get_positions.v1.paper")
    truth = TruthEvent(
        instance="i",
        timestamp=9,
        policy_hash="h1",
        version="v",
        venue_positions=(_position("paper", "BTC/USDT"), _position("bybit", "ETH/USDT")),
        armed=True,
        halted=False,
        risk_state="Normal",
    )
    balance = BalanceEvent(venue="paper", free=Decimal("1"), total=Decimal("3"), locked=Decimal("2"), ts=4)
    for p in publications(truth) + publications(balance):
        view.observe(p)
    view.observe(Publication("titan.evt.execution.truth.v1", "x", b"not json"))  # ignored, state kept
    assert view.policy_hash_reply(10)["policy_hash"] == "h1"
    bybit = view.positions_reply("titan.rpc.execution.get_positions.v1.BYBIT")
    assert [p["symbol"] for p in bybit["positions"]] == ["ETH/USDT"]
    assert view.positions_reply("titan.rpc.execution.get_positions.v1.mexc")["error"] == (
        "Configuration error: Exchange 'mexc' not found"
    )
    reply = view.reply("titan.rpc.execution.get_balances.v1.main", 0)
    assert reply is not None and msgspec.json.decode(reply)["balances"][0]["total"] == "3"
    assert view.reply("titan.something.else", 0) is None


def test_format_event_is_one_line() -> None:
    assert format_event("a.b", b'{"x":1}') == 'a.b {"x":1}'
    assert "\n" not in format_event("a.b", b"line1\nline2")


async def test_watch_prints_each_event(nats_server: NatsServer) -> None:
    out = io.StringIO()
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(watch(nats_server.url, "titan.evt.>", out, stop))
    nc = await nats.connect(nats_server.url)
    try:

        async def published() -> bool:
            await nc.publish("titan.evt.execution.reject.v1", b'{"reason":"x"}')
            await nc.flush()
            return "titan.evt.execution.reject.v1" in out.getvalue()

        for _ in range(100):  # the watcher subscribes asynchronously: publish until it sees one
            if await published():
                break
            await asyncio.sleep(0.05)
        await nc.publish("other.subject", b"{}")
        await nc.flush()
        await until(lambda: out.getvalue().count("\n") >= 1, 5, "a line printed")
    finally:
        await nc.close()
        stop.set()
        await asyncio.wait_for(task, 5)
    lines = out.getvalue().splitlines()
    assert lines and all(line == 'titan.evt.execution.reject.v1 {"reason":"x"}' for line in lines)
