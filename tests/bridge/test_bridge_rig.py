"""The bridge in-process against a real nats-server, with the test playing core on the rings."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.msg import Msg

from tests.events.helpers import encode, envelope_dict, form_b, intent_payload
from titan.events import subjects
from titan.events.payloads import (
    BalanceEvent,
    DlqEvent,
    ExposureEvent,
    PositionSnapshot,
    RejectEvent,
    ShadowFillEvent,
    TruthEvent,
)
from titan.messages import (
    BRIDGE_TO_CORE,
    ArrayFragment,
    Event,
    IntakeDone,
    OperatorCommand,
    PlaceIntent,
    decoder,
)
from titan.procs import bridge as bridge_mod
from titan.shm.board import ProcState

from .conftest import SECRET, NatsServer, Rig, make_rig, running_bridge, stream_messages, until

pytestmark = pytest.mark.timeout(60)

D = Decimal


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def shadow_event(i: int, symbol: str = "BTCUSDT") -> Event:
    """A pre-formatted event as core emits it today; the body carries its sequence number."""
    return Event(
        subject=f"titan.evt.execution.shadow_fill.v1.{symbol}",
        msg_id=f"shadow:{symbol}:{i}",
        data=msgspec.json.encode({"seq": i, "symbol": symbol}),
    )


def signed_intent(signal_id: str, **payload: Any) -> bytes:
    ts = now_ms()
    body = intent_payload(signal_id=signal_id, t_signal=ts, **payload)
    env = envelope_dict(
        body,
        secret=SECRET,
        ts=ts,
        nonce=uuid.uuid4().hex,
        id=f"env-{signal_id}",
        idempotency_key=signal_id,
        correlation_id=signal_id,
    )
    return encode(env)


async def consumer_state(url: str, durable: str) -> tuple[int, int]:
    """(num_ack_pending, num_pending) of a durable on TITAN_CMD."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info("TITAN_CMD", durable)
        return info.num_ack_pending or 0, info.num_pending or 0
    finally:
        await nc.close()


async def wait_connected(rig: Rig) -> None:
    await until(lambda: rig.counters()[bridge_mod.NATS_CONNECTED] == 1, 15, "bridge connected")


async def forwarded(rig: Rig, n: int, timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []

    def check() -> bool:
        got.extend(rig.pop_all())
        return len(got) >= n

    await until(check, timeout, f"{n} messages forwarded to core")
    return got


async def test_events_of_both_forms_are_published_once_with_their_msg_id(
    rig: Rig, nats_server: NatsServer
) -> None:
    async with running_bridge(rig, rig.settings(nats_server.url)):
        await wait_connected(rig)
        nc = await nats.connect(nats_server.url)
        exposure: list[bytes] = []
        legacy_dlq: list[bytes] = []
        await nc.subscribe(subjects.EXPOSURE_UPDATE, cb=_collector(exposure))
        await nc.subscribe("titan.dlq.execution.core", cb=_collector(legacy_dlq))
        await nc.flush()
        reject = RejectEvent(
            reason="system_disarmed",
            intent_id="sig-9",
            brain_instance_id="sig-9",
            timestamp=1,
            code="X",
            message="m",
        )
        shadow = ShadowFillEvent(
            shadow_id="7",
            signal_id="sig-7",
            symbol_as_given="ETHUSDT",
            direction=1,
            best_bid=D("3000"),
            best_ask=D("3000.5"),
            size=D("0.1"),
            t_signal=1,
            t_ingress=2,
            t_decision=3,
            t_exchange=4,
        )
        dlq = DlqEvent(reason="Invalid intent: Invalid JSON", original=b"nope", t_ingress=5, message_id="12")
        exposure_event = ExposureEvent(
            net_exposure=D("1"),
            gross_notional=D("1"),
            long_notional=D("1"),
            short_notional=D("0"),
            position_count=1,
        )
        # The same pre-formatted event twice (a core replay): JetStream keeps one.
        rig.push(shadow_event(1), shadow_event(1), reject, shadow, dlq, exposure_event, shadow_event(2))
        await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 8, 10, "all published")
        await until(lambda: exposure and legacy_dlq, 5, "core-NATS subjects delivered")
        await nc.close()
    evt = await stream_messages(nats_server.url, "TITAN_EVT")
    assert [(s, h["Nats-Msg-Id"]) for s, h, _ in evt] == [
        ("titan.evt.execution.shadow_fill.v1.BTCUSDT", "shadow:BTCUSDT:1"),
        ("titan.evt.execution.reject.v1", "reject:sig-9:system_disarmed"),
        ("titan.evt.execution.shadow_fill.v1.ETHUSDT", "shadow:7"),
        ("titan.evt.execution.shadow_fill.v1.BTCUSDT", "shadow:BTCUSDT:2"),
    ]
    assert msgspec.json.decode(evt[2][2])["price"] == "3000.5"
    execution = await stream_messages(nats_server.url, "TITAN_EXECUTION")
    assert [(s, h["Nats-Msg-Id"]) for s, h, _ in execution] == [("titan.execution.dlq", "dlq:12")]
    assert msgspec.json.decode(exposure[0])["position_count"] == 1
    assert msgspec.json.decode(legacy_dlq[0])["payload"] == "nope"
    counters = rig.counters()
    assert counters[bridge_mod.SPOOL_RECORDS] == 0 and counters[bridge_mod.SPOOL_FULL] == 0


def _collector(out: list[bytes]) -> Callable[[Msg], Awaitable[None]]:
    async def collect(msg: Msg) -> None:
        out.append(msg.data)

    return collect


async def test_intent_is_acked_only_after_core_reports_it_journaled(
    rig: Rig, nats_server: NatsServer
) -> None:
    async with running_bridge(rig, rig.settings(nats_server.url)):
        await wait_connected(rig)
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await js.publish(
            subjects.place_intent_subject("paper", "BTC/USDT"),
            signed_intent("sig-ack"),
            headers={"Nats-Msg-Id": "m1"},
        )
        (place,) = await forwarded(rig, 1)
        assert isinstance(place, PlaceIntent)
        assert place.intent.signal_id == "sig-ack" and place.intent.symbol == "BTC/USDT"
        assert place.dedupe_ids[0] == "m1" and "sig-ack" in place.dedupe_ids
        assert b'"sig-ack"' in place.original
        await asyncio.sleep(0.3)  # give a wrong early ACK the chance to happen
        assert await consumer_state(nats_server.url, "EXECUTION_CORE") == (1, 0)
        rig.push(IntakeDone(ref=place.ref, outcome="accepted"))
        await until(lambda: rig.counters()[bridge_mod.INTENTS_ACKED] == 1, 10, "ACK after IntakeDone")
        await until(lambda: True, 0.1)
        for _ in range(50):
            if await consumer_state(nats_server.url, "EXECUTION_CORE") == (0, 0):
                break
            await asyncio.sleep(0.05)
        assert await consumer_state(nats_server.url, "EXECUTION_CORE") == (0, 0)
        await nc.close()


@pytest.mark.parametrize(
    ("body", "subject", "reason"),
    [
        (b"{not json", "titan.execution.dlq", "Invalid intent: Invalid JSON"),
        (
            encode(intent_payload()),
            "titan.execution.dlq",
            "Invalid intent: Unsigned intents rejected in strict mode",
        ),
        (b"BAD-SIG", "titan.evt.execution.reject.v1", "hmac_signature_mismatch"),
    ],
    ids=["row3-not-json", "row4-unsigned", "row6-bad-signature"],
)
async def test_refused_intents_publish_their_event_and_are_acked(
    rig: Rig, nats_server: NatsServer, body: bytes, subject: str, reason: str
) -> None:
    if body == b"BAD-SIG":
        env = msgspec.json.decode(signed_intent("sig-bad"))
        env["payload"]["size"] = 5  # tampered after signing
        body = encode(env)
    async with running_bridge(rig, rig.settings(nats_server.url)):
        await wait_connected(rig)
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().publish(subjects.place_intent_subject("paper", "BTC/USDT"), body)
        await until(lambda: rig.counters()[bridge_mod.INTENTS_REFUSED] == 1, 10, "refused")
        await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 1, 10, "event published")
        for _ in range(50):
            if await consumer_state(nats_server.url, "EXECUTION_CORE") == (0, 0):
                break
            await asyncio.sleep(0.05)
        assert await consumer_state(nats_server.url, "EXECUTION_CORE") == (0, 0)
        await nc.close()
    assert rig.pop_all() == []  # nothing reached core
    stream = "TITAN_EXECUTION" if subject == "titan.execution.dlq" else "TITAN_EVT"
    msgs = await stream_messages(nats_server.url, stream, subject)
    assert len(msgs) == 1
    assert msgspec.json.decode(msgs[0][2])["reason"] == reason


async def test_unsigned_operator_command_is_refused_and_signed_one_forwarded(
    rig: Rig, nats_server: NatsServer
) -> None:
    async with running_bridge(rig, rig.settings(nats_server.url)):
        await wait_connected(rig)
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await js.publish(subjects.CMD_OPERATOR_DISARM, b'{"reason":"unsigned"}')
        await until(lambda: rig.counters()[bridge_mod.OPERATOR_REJECTED] == 1, 10, "unsigned refused")
        signed = form_b("DISARM", secret=SECRET, ts=now_ms(), command_id="cmd-disarm-1", reason="maintenance")
        await js.publish(subjects.CMD_OPERATOR_DISARM, encode(signed))
        (command,) = await forwarded(rig, 1)
        assert isinstance(command, OperatorCommand)
        assert (command.kind, command.actor, command.command_id) == ("DISARM", "ops-1", "cmd-disarm-1")
        rig.push(IntakeDone(ref=command.ref, outcome="accepted"))
        for _ in range(100):
            if await consumer_state(nats_server.url, "OPERATOR_CONTROL") == (0, 0):
                break
            await asyncio.sleep(0.05)
        assert await consumer_state(nats_server.url, "OPERATOR_CONTROL") == (0, 0)
        # The same signed command again is a replay: refused, not forwarded.
        await js.publish(subjects.CMD_OPERATOR_DISARM, encode(signed))
        await until(lambda: rig.counters()[bridge_mod.OPERATOR_REJECTED] == 2, 10, "replay refused")
        assert rig.pop_all() == []
        await nc.close()
    rejects = [msgspec.json.decode(d) for _, _, d in await stream_messages(nats_server.url, "TITAN_EVT")]
    assert [(r["reason"], r["event_type"], r["command"]) for r in rejects] == [
        ("operator_auth_failed", "execution.command.rejected", subjects.CMD_OPERATOR_DISARM)
    ] * 2


async def test_heartbeats_and_risk_state_events_reach_core(rig: Rig, nats_server: NatsServer) -> None:
    async with running_bridge(rig, rig.settings(nats_server.url)):
        await wait_connected(rig)
        nc = await nats.connect(nats_server.url)
        await nc.publish("titan.sys.heartbeat.v1.brain", b"{}")
        await nc.publish(subjects.SYS_HEARTBEAT, b"{}")
        await nc.publish(subjects.EVT_RISK_STATE, b'"Defensive"')
        await nc.publish(subjects.EVT_RISK_STATE, b'"Sideways"')  # not a state: ignored
        await nc.flush()
        got = await forwarded(rig, 3)
        await nc.close()
    kinds = sorted((m.kind, m.actor, msgspec.json.encode(m.args)) for m in got)
    assert kinds == [
        ("HEARTBEAT", "", b'{"subject":"titan.sys.heartbeat.v1"}'),
        ("HEARTBEAT", "brain", b'{"subject":"titan.sys.heartbeat.v1.brain"}'),
        ("RISK_STATE", "", b'{"state":"Defensive"}'),
    ]


def _position(venue: str, symbol: str) -> PositionSnapshot:
    return PositionSnapshot(
        venue=venue,
        symbol=symbol,
        side="LONG",
        size=D("0.5"),
        entry_price=D("50000"),
        stop_loss=D("0"),
        take_profits=(),
        signal_id="sig-1",
        opened_at="2026-01-01T00:00:00Z",
        regime_state=None,
        phase=None,
        metadata=None,
        realized_pnl=D("0"),
        unrealized_pnl=D("1.5"),
        fees_paid=D("0.1"),
        funding_paid=D("0"),
        last_mark_price=None,
        last_update_ts=1,
    )


async def test_request_reply_answers_from_what_core_published(rig: Rig, nats_server: NatsServer) -> None:
    truth = TruthEvent(
        instance="t",
        timestamp=now_ms(),
        policy_hash="abc123",
        version="1",
        venue_positions=(_position("paper", "BTC/USDT"),),
        armed=True,
        halted=False,
        risk_state="Normal",
    )
    balance = BalanceEvent(venue="paper", free=D("900"), total=D("1000"), locked=D("100"), ts=7)
    async with running_bridge(rig, rig.settings(nats_server.url, venues=["paper"])):
        await wait_connected(rig)
        rig.push(truth, balance)
        await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 2, 10, "truth published")
        nc = await nats.connect(nats_server.url)
        policy = msgspec.json.decode((await nc.request(subjects.REQ_POLICY_HASH, b"", timeout=5)).data)
        paper = msgspec.json.decode(
            (await nc.request("titan.rpc.execution.get_positions.v1.paper", b"", timeout=5)).data
        )
        bybit = msgspec.json.decode(
            (await nc.request("titan.rpc.execution.get_positions.v1.bybit", b"", timeout=5)).data
        )
        balances = msgspec.json.decode(
            (await nc.request("titan.rpc.execution.get_balances.v1.main", b"", timeout=5)).data
        )
        await nc.close()
    assert policy["policy_hash"] == "abc123" and isinstance(policy["timestamp"], int)
    assert [(p["symbol"], p["size"], p["exchange"]) for p in paper["positions"]] == [
        ("BTC/USDT", "0.5", "PAPER")
    ]
    assert bybit == {"positions": [], "error": "Configuration error: Exchange 'bybit' not found"}
    assert balances["balances"] == [
        {"currency": "USDT", "available": "900", "locked": "100", "total": "1000", "updateTime": 7}
    ]


async def test_partitioned_instances_consume_only_their_account(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    rig_a = make_rig(tmp_path / "a")
    rig_b = make_rig(tmp_path / "b")
    try:
        async with (
            running_bridge(rig_a, rig_a.settings(nats_server.url, account="acct-a")),
            running_bridge(rig_b, rig_b.settings(nats_server.url, account="acct-b")),
        ):
            await wait_connected(rig_a)
            await wait_connected(rig_b)
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            for i in range(3):
                await js.publish(
                    subjects.place_intent_subject("paper", "BTC/USDT", "acct-a"), signed_intent(f"a-{i}")
                )
                await js.publish(
                    subjects.place_intent_subject("paper", "ETH/USDT", "acct-b"), signed_intent(f"b-{i}")
                )
            got_a = await forwarded(rig_a, 3)
            got_b = await forwarded(rig_b, 3)
            await asyncio.sleep(0.3)  # anything misrouted would arrive by now
            got_a += rig_a.pop_all()
            got_b += rig_b.pop_all()
            await nc.close()
        assert sorted(p.intent.signal_id for p in got_a) == ["a-0", "a-1", "a-2"]
        assert sorted(p.intent.signal_id for p in got_b) == ["b-0", "b-1", "b-2"]
        nc = await nats.connect(nats_server.url)
        names = [c.name for c in await nc.jetstream().consumers_info("TITAN_CMD")]
        await nc.close()
        assert "EXECUTION_CORE" not in names  # no catch-all consumer competes with the partitions
        assert {"EXECUTION_CORE_ALL_ACCT-A", "EXECUTION_CORE_ALL_ACCT-B"} <= set(names)
    finally:
        rig_a.close()
        rig_b.close()


async def test_outage_spools_and_replays_every_event_once_in_order(rig: Rig, nats_server: NatsServer) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    async with running_bridge(rig, rig.settings(nats_server.url)):
        await wait_connected(rig)
        for i in range(150):
            rig.push(shadow_event(i, symbols[i % 3]))
        nats_server.kill()
        await until(lambda: rig.counters()[bridge_mod.NATS_CONNECTED] == 0, 10, "disconnect seen")
        for i in range(150, 400):
            rig.push(shadow_event(i, symbols[i % 3]))
        # The ring is drained into the spool while NATS is away.
        await until(lambda: rig.to_bridge.depth() == 0, 10, "ring drained")
        assert rig.counters()[bridge_mod.SPOOL_RECORDS] > 0
        nats_server.start()
        await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 400, 30, "backlog replayed")
        await until(lambda: rig.counters()[bridge_mod.SPOOL_RECORDS] == 0, 10, "spool empty")
        assert rig.counters()[bridge_mod.NATS_RECONNECTS] >= 1
    msgs = await stream_messages(nats_server.url, "TITAN_EVT")
    seqs = [msgspec.json.decode(d)["seq"] for _, _, d in msgs]
    assert sorted(seqs) == list(range(400))  # every event exactly once
    for symbol in symbols:
        per_subject = [msgspec.json.decode(d)["seq"] for s, _, d in msgs if s.endswith(symbol)]
        assert per_subject == sorted(per_subject)  # in order per subject


async def test_full_spool_holds_events_on_the_ring_and_says_so(rig: Rig, tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "late-store")  # not running yet: NATS unreachable from the start
    try:
        settings = rig.settings(server.url, spool_max_bytes=8_000)
        async with running_bridge(rig, settings):
            for i in range(100):
                rig.push(shadow_event(i))
            await until(lambda: rig.counters()[bridge_mod.SPOOL_FULL] == 1, 10, "spool full reported")
            assert rig.to_bridge.depth() > 0  # not dropped: waiting on the ring
            assert rig.board.read("bridge").state == ProcState.DRAINING
            server.start()
            await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 100, 30, "all published")
            await until(lambda: rig.counters()[bridge_mod.SPOOL_FULL] == 0, 10, "spool has room")
            assert rig.board.read("bridge").state == ProcState.READY
        msgs = await stream_messages(server.url, "TITAN_EVT")
        assert [msgspec.json.decode(d)["seq"] for _, _, d in msgs] == list(range(100))
    finally:
        server.kill()


class _NatsAt:
    def __init__(self, url: str) -> None:
        self.nats_url = url


async def _fake_core(rig: Rig, stop: asyncio.Event) -> None:
    """Answers every PlaceIntent with its shadow fill and IntakeDone, as core does."""
    from titan.shm.doorbell import wait_any_async

    while not stop.is_set():
        await wait_any_async([rig.from_bridge], rig.core_bell, 0.05)
        for msg in rig.pop_all():
            if isinstance(msg, PlaceIntent):
                intent = msg.intent
                shadow = ShadowFillEvent(
                    shadow_id=intent.signal_id,
                    signal_id=intent.signal_id,
                    symbol_as_given=intent.symbol,
                    direction=intent.direction,
                    best_bid=D("50000"),
                    best_ask=D("50001"),
                    size=D(intent.size),
                    t_signal=intent.t_signal_ms,
                    t_ingress=msg.t_ingress_ms,
                    t_decision=now_ms(),
                    t_exchange=now_ms(),
                )
                rig.push(shadow, IntakeDone(ref=msg.ref, outcome="accepted"))


async def test_nats_path_bench_measures_publish_to_shadow_fill(rig: Rig, nats_server: NatsServer) -> None:
    from bench.nats_path import run

    stop = asyncio.Event()
    async with running_bridge(rig, rig.settings(nats_server.url)):
        await wait_connected(rig)
        core = asyncio.get_running_loop().create_task(_fake_core(rig, stop))
        try:
            result = await run(_NatsAt(nats_server.url), 30, warmup=3, secret=SECRET)
        finally:
            stop.set()
            await core
    assert result["n"] == 30 and result["timeouts"] == 0 and "error" not in result
    assert 0 < result["p50"] <= result["p99"] <= result["max"]
    assert rig.counters()[bridge_mod.INTENTS_ACKED] == 33


async def test_fragmented_event_is_joined_and_survives_a_full_spool(rig: Rig, tmp_path: Path) -> None:
    from titan.messages import encoder
    from titan.shm.fragment import split

    big = Event(
        subject=subjects.EVT_TRUTH,
        msg_id="truth:big:1",
        data=msgspec.json.encode({"seq": "big", "blob": "x" * 12_000}),
    )
    enc = encoder().encode
    fragments = split(enc(big), rig.to_bridge.max_payload, enc)
    assert len(fragments) > 2
    server = NatsServer(tmp_path / "late-store")  # unreachable at first: everything waits in the spool
    try:
        async with running_bridge(rig, rig.settings(server.url, spool_max_bytes=14_000)):
            for i in range(20):
                rig.push(shadow_event(i))
            rig.push_raw(*fragments)
            rig.push(shadow_event(20))
            # The joined snapshot does not fit behind the small events: its last fragment waits.
            await until(lambda: rig.counters()[bridge_mod.SPOOL_FULL] == 1, 10, "spool full")
            server.start()
            await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 22, 30, "all published")
        msgs = await stream_messages(server.url, "TITAN_EVT")
        seqs = [msgspec.json.decode(d)["seq"] for _, _, d in msgs]
        assert seqs == [*range(20), "big", 20]
        assert len(msgspec.json.decode(msgs[20][2])["blob"]) == 12_000
    finally:
        server.kill()


async def test_messages_larger_than_a_core_ring_slot(tmp_path: Path, nats_server: NatsServer) -> None:
    from titan.shm.fragment import Reassembler

    rig = make_rig(tmp_path / "small", to_core_slot=1024)
    try:
        async with running_bridge(rig, rig.settings(nats_server.url)):
            await wait_connected(rig)
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            big_intent = signed_intent("sig-big", metadata={"note": "n" * 600})
            await js.publish(subjects.place_intent_subject("paper", "BTC/USDT"), big_intent)
            policy = {"policy": {"limits": {f"SYM{i}/USDT": {"max": i} for i in range(80)}}}
            env = envelope_dict(policy, secret=SECRET, ts=now_ms(), nonce=uuid.uuid4().hex)
            await js.publish(subjects.CMD_RISK_POLICY, encode(env))
            raw: list[bytes] = []

            def collected() -> bool:
                raw.extend(_raw_pop(rig))
                return len(raw) >= 4

            await until(collected, 10, "fragments")
            # Both went as pieces that each fit a slot, and core joins them whole.
            assert all(len(r) <= rig.from_bridge.max_payload for r in raw)
            joiner = Reassembler()
            dec = msgspec.msgpack.Decoder(ArrayFragment)
            wholes = [w for r in raw if (w := joiner.feed(dec.decode(r))) is not None]
            assert len(wholes) == 2 and joiner.dropped == 0
            messages = [decoder(BRIDGE_TO_CORE).decode(w) for w in wholes]
            (place,) = [m for m in messages if isinstance(m, PlaceIntent)]
            assert place.intent.signal_id == "sig-big" and place.original == big_intent
            (command,) = [m for m in messages if isinstance(m, OperatorCommand)]
            assert command.kind == "POLICY"
            assert command.args["policy"]["limits"].keys() == policy["policy"]["limits"].keys()
            assert rig.counters()[bridge_mod.OPERATOR_REJECTED] == 0
            await nc.close()
    finally:
        rig.close()


async def test_messages_larger_than_the_whole_core_ring(tmp_path: Path, nats_server: NatsServer) -> None:
    """Only a message of more pieces than core's ring has slots cannot travel (core takes pieces only
    once all are on the ring): the intent goes without its original, the policy is refused visibly."""
    rig = make_rig(tmp_path / "tiny", to_core_slot=1024, to_core_slots=4)
    try:
        async with running_bridge(rig, rig.settings(nats_server.url)):
            await wait_connected(rig)
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            big_intent = signed_intent("sig-huge", metadata={"note": "n" * 5000})
            await js.publish(subjects.place_intent_subject("paper", "BTC/USDT"), big_intent)
            (place,) = await forwarded(rig, 1)
            assert isinstance(place, PlaceIntent) and place.intent.signal_id == "sig-huge"
            assert place.original == b""
            policy = {"policy": {"limits": {f"SYM{i}/USDT": {"max": i} for i in range(400)}}}
            env = envelope_dict(policy, secret=SECRET, ts=now_ms(), nonce=uuid.uuid4().hex)
            await js.publish(subjects.CMD_RISK_POLICY, encode(env))
            await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 1, 10, "reject published")
            msgs = await stream_messages(nats_server.url, "TITAN_EVT", subjects.EVT_REJECT)
            (reject,) = [msgspec.json.decode(d) for _, _, d in msgs]
            assert (reject["reason"], reject["code"], reject["command"]) == (
                "invalid_command",
                "COMMAND_TOO_LARGE",
                subjects.CMD_RISK_POLICY,
            )
            assert rig.pop_all() == []  # nothing of it reached core
            await nc.close()
    finally:
        rig.close()


def _raw_pop(rig: Rig) -> list[bytes]:
    out = []
    while (data := rig.from_bridge.try_pop()) is not None:
        out.append(data)
    return out
