"""R38 / nats.md §12: the bridge on a nats-server with upstream's hardened ACLs.

Each denied publish/subscribe is logged once with its subject and counted, /health shows it, the
bridge keeps running and a denied subject never holds up the events behind it in the spool.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from tests.bridge.conftest import Rig, free_port, make_rig, port_open, running_bridge, until, wait_for
from tests.ops_gaps.helpers import scrape, trade
from titan.events import subjects
from titan.harness import eventually, start_engine
from titan.health import BOARD_COUNTERS
from titan.messages import Event
from titan.procs import bridge as bridge_mod
from titan.procs.supervisor import nats_server_binary
from titan.shm.board import StatusBoard

EXEC_PASSWORD = "exec-acl-pass"
ADMIN_PASSWORD = "admin-acl-pass"
# Upstream's hardened config/nats.conf (nats.md §12), for user `execution`.
EXECUTION_PUBLISH = [
    "titan.evt.execution.>",
    "$JS.API.>",
    "titan.execution.>",
    "titan.evt.phase.>",
    "titan.sys.>",
]
EXECUTION_SUBSCRIBE = [
    "titan.cmd.>",
    "_INBOX.>",
    "titan.execution.>",
    "titan.data.market.>",
    "titan.rpc.>",
    "titan.sys.>",
    "titan.evt.>",
]


def _quoted(items: list[str]) -> str:
    return ", ".join(f'"{s}"' for s in items)


@dataclass
class AclNats:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"nats://admin:{ADMIN_PASSWORD}@127.0.0.1:{self.port}"


@pytest.fixture
def acl_nats(tmp_path: Path) -> Iterator[AclNats]:
    port = free_port()
    conf = tmp_path / "nats-acl.conf"
    conf.write_text(
        f"""
host: "127.0.0.1"
port: {port}
jetstream {{ store_dir: "{tmp_path / "js"}" }}
authorization {{
  users = [
    {{ user: "execution", password: "{EXEC_PASSWORD}", permissions: {{
        publish: {{ allow: [{_quoted(EXECUTION_PUBLISH)}] }}
        subscribe: {{ allow: [{_quoted(EXECUTION_SUBSCRIBE)}] }}
    }} }}
    {{ user: "admin", password: "{ADMIN_PASSWORD}" }}
  ]
}}
"""
    )
    proc = subprocess.Popen(
        [nats_server_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: port_open(port), 10, "nats-server listening")
        yield AclNats(port, proc)
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def acl_rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path / "rig")
    try:
        # The rig's board has 16 cells per row; the supervisor's has BOARD_COUNTERS (the bridge's
        # permission cells are 16 and 17): swap in a full-size board under the same name.
        r.board.close()
        r.board.unlink()
        r.objects.remove(r.board)
        r.board = StatusBoard.create(r.layout.board, list(r.layout.processes), BOARD_COUNTERS)
        r.objects.append(r.board)
        yield r
    finally:
        r.close()


async def stream_subjects(url: str, stream: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out: list[str] = []
        if info.state.messages:
            sub = await js.subscribe(">", stream=stream, ordered_consumer=True)
            for _ in range(info.state.messages):
                msg = await sub.next_msg(timeout=2)
                out.append(msg.subject)
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


FILL_SUBJECT = "titan.evt.execution.fill.v1.paper.main.BTCUSDT"


def test_denied_subjects_are_counted_and_never_block_the_spool(acl_rig: Rig, acl_nats: AclNats) -> None:
    asyncio.run(denied_subjects_scenario(acl_rig, acl_nats))


async def denied_subjects_scenario(acl_rig: Rig, acl_nats: AclNats) -> None:
    settings = acl_rig.settings(acl_nats.url, user="execution", password=EXEC_PASSWORD, ack_timeout_s=30.0)
    async with running_bridge(acl_rig, settings) as bridge:
        await until(lambda: acl_rig.counters()[bridge_mod.NATS_CONNECTED] == 1, 15, "connected with ACLs")
        acl_rig.push(
            Event(subjects.EVT_TRADE_COMPLETED, "tc-1", b'{"n": 1}'),  # stream subject, denied
            Event(subjects.EXPOSURE_UPDATE, "", b'{"n": 2}'),  # core NATS, denied
            Event(FILL_SUBJECT, "fill-1", b'{"n": 3}'),  # allowed
            Event(subjects.EVT_TRADE_COMPLETED, "tc-2", b'{"n": 4}'),
            Event(FILL_SUBJECT, "fill-2", b'{"n": 5}'),
        )
        t0 = time.monotonic()
        # Far below ack_timeout_s: a denied publish is given up at once, not waited out.
        await until(lambda: acl_rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 2, 10, "allowed events out")
        assert time.monotonic() - t0 < 10
        got = await stream_subjects(acl_nats.admin_url, "TITAN_EVT")
        assert got == [FILL_SUBJECT, FILL_SUBJECT]
        counters = acl_rig.counters()
        assert counters[bridge_mod.EVENTS_DENIED] >= 2  # both trade_completed (+ exposure once known)
        assert counters[bridge_mod.PERMISSION_ERRORS] >= 2
        await until(lambda: acl_rig.counters()[bridge_mod.SPOOL_RECORDS] == 0, 10, "spool drained")
        assert not bridge.stop.is_set()
        assert bridge.denied_subjects >= {subjects.EVT_TRADE_COMPLETED, subjects.EXPOSURE_UPDATE}
        # One log key per denied subject (the subscription §12 names is among them).
        assert f"subscription {subjects.REQ_POLICY_HASH}" in bridge.permission_errors
        assert f"publish {subjects.EVT_TRADE_COMPLETED}" in bridge.permission_errors
        # More of the same denied subject: counted, skipped, no new log key, nothing blocked.
        keys = set(bridge.permission_errors)
        acl_rig.push(Event(subjects.EVT_TRADE_COMPLETED, "tc-3", b"{}"), Event(FILL_SUBJECT, "fill-3", b"{}"))
        await until(lambda: acl_rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 3, 10, "third fill out")
        assert acl_rig.counters()[bridge_mod.EVENTS_DENIED] >= 3
        assert bridge.permission_errors == keys


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('nats: permissions violation for publish to "exposure.update"', ("publish", "exposure.update")),
        (
            'nats: permissions violation for subscription to "titan.req.exec.policy_hash.v1"',
            ("subscription", "titan.req.exec.policy_hash.v1"),
        ),
        ('nats: Permissions Violation for Publish to "A.B"', ("publish", "a.b")),
        ("nats: stale connection", None),
    ],
)
def test_permission_denial_parsing(text: str, expected: tuple[str, str] | None) -> None:
    assert bridge_mod.permission_denial(text) == expected


@pytest.mark.parametrize(
    ("subject", "key"),
    [
        ("_inbox.abc.def", "_inbox.>"),
        ("$js.ack.titan_cmd.execution_core.1.2.3.4.5", "$js.ack.titan_cmd.execution_core.>"),
        ("titan.dlq.execution.core", "titan.dlq.execution.core"),
    ],
)
def test_reply_subjects_are_logged_once_per_pattern(subject: str, key: str) -> None:
    assert bridge_mod.denial_key(subject) == key


def test_engine_on_hardened_acls_keeps_trading_and_shows_denials(tmp_path: Path, acl_nats: AclNats) -> None:
    env = {
        "TITAN__NATS__URL": f'"{acl_nats.url}"',
        "TITAN__NATS__USER": '"execution"',
        "TITAN__NATS__PASSWORD": f'"{EXEC_PASSWORD}"',
    }
    eng = start_engine(tmp_path, log_level="WARNING", env_overrides=env)
    try:
        eventually(lambda: eng.health()[1].get("nats", {}).get("connected"), timeout=20, interval=0.1)
        # The denied subscription (titan.req.exec.policy_hash.v1) is counted as soon as it is made.
        nats_health = eventually(
            lambda: (n := eng.health()[1]["nats"]).get("permission_errors") and n, timeout=10, interval=0.1
        )
        assert nats_health["embedded"] is False
        confirms = asyncio.run(trade(eng, 3, "BTCUSDT", 50000, 50100, 100))
        assert len(confirms) == 3 and all(getattr(c, "executed", False) for c in confirms), confirms

        async def fills_in_stream() -> int:
            return sum(1 for s in await stream_subjects(acl_nats.admin_url, "TITAN_EVT") if ".fill." in s)

        eventually(lambda: asyncio.run(fills_in_stream()) >= 3, timeout=20, interval=0.2)
        code, body = eng.health()
        assert code == 200 and body["processes"]["bridge"]["state"] == "READY"
        assert body["nats"]["connected"] is True and body["nats"]["spool_full"] is False
        assert any("NATS denied" in w for w in body["warnings"])
        assert scrape(eng)[("titan_execution_nats_permission_errors_total", ())] >= 1
    finally:
        eng.stop()
