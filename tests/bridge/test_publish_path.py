"""The bridge's lean publish path writes what nats-py's publish writes, and both paths deliver."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NATS

from titan.messages import Event
from titan.procs import bridge as bridge_mod
from titan.procs.bridge import Bridge, _WireWriter

from .conftest import NatsServer, Rig, running_bridge, stream_messages, until

pytestmark = pytest.mark.timeout(60)


def capturing_client(max_payload: int = 1 << 20, connected: bool = True) -> tuple[NATS, list[bytes]]:
    """A nats-py client without a socket whose write buffer is a list (what each publish would send)."""
    nc = NATS()
    out: list[bytes] = []

    async def send_command(cmd: bytes, priority: bool = False) -> None:
        out.append(bytes(cmd))

    async def flush_pending(force_flush: bool = False) -> None:
        return None

    nc._send_command = send_command  # type: ignore[method-assign]  # capture instead of a socket
    nc._flush_pending = flush_pending  # type: ignore[method-assign,assignment]  # nothing to flush
    nc._max_payload = max_payload
    nc._flush_queue = None  # publish() then skips its own flush
    if connected:
        nc._status = NATS.CONNECTED
    return nc, out


CASES: list[tuple[str, str, str, bytes]] = [
    ("titan.evt.execution.fill.v1.paper.main.BTC_USDT", "_INBOX.abc.7", "fill:paper:t1", b'{"a":1}'),
    ("titan.evt.execution.report.v1.bybit.alt.ETH_USDT", "_INBOX.x.123456", "report:T0001L0:3", b""),
    ("titan.dlq.execution.core", "_INBOX.q.1", "dlq:ünïcode-id", "é€".encode() * 50),
]


@pytest.mark.parametrize(("subject", "reply", "msg_id", "data"), CASES)
async def test_hpub_bytes_equal_nats_py_publish(subject: str, reply: str, msg_id: str, data: bytes) -> None:
    nc, reference = capturing_client()
    await nc.publish(subject, data, reply=reply, headers={"Nats-Msg-Id": msg_id})
    await nc.publish(subject, data)
    lean, sent = capturing_client()
    wire = _WireWriter.of(lean)
    assert wire is not None
    assert wire.hpub(subject, reply, msg_id, data) and wire.pub(subject, data)
    await wire.send()
    assert sent == [
        b"".join(reference).replace(b"PUB " + subject.encode() + b"  ", b"PUB " + subject.encode() + b" ")
    ]


@pytest.mark.parametrize(
    ("subject", "msg_id", "size"),
    [
        ("titan.evt.bad subject", "id", 10),
        ("titan.evt.ok", "id with space", 10),
        ("titan.evt.ok", "id\r\nX-Injected: 1", 10),
        ("titan.evt.ok", "id\x0c", 10),  # nats-py strips it: left to nats-py
        ("titan.evt.ok", "id", 2000),  # over max_payload: nats-py raises MaxPayloadError
    ],
)
async def test_what_the_lean_form_cannot_carry_exactly_is_left_to_nats_py(
    subject: str, msg_id: str, size: int
) -> None:
    nc, _ = capturing_client(max_payload=1000)
    wire = _WireWriter.of(nc)
    assert wire is not None
    assert not wire.hpub(subject, "_INBOX.a.1", msg_id, b"x" * size)
    if " " in subject or size > 1000:
        assert not wire.pub(subject, b"x" * size)


async def test_send_refuses_while_disconnected() -> None:
    nc, sent = capturing_client(connected=False)
    wire = _WireWriter.of(nc)
    assert wire is not None and wire.pub("a.b", b"1")
    with pytest.raises(ConnectionError):
        await wire.send()
    assert sent == []


def shadow(i: int) -> Event:
    return Event(
        subject="titan.evt.execution.shadow_fill.v1.BTCUSDT",
        msg_id=f"shadow:lean:{i}",
        data=msgspec.json.encode({"seq": i}),
    )


@pytest.mark.parametrize("lean", [True, False])
async def test_both_publish_paths_deliver_every_event_once_in_order(
    rig: Rig, nats_server: NatsServer, lean: bool
) -> None:
    async with running_bridge(rig, rig.settings(nats_server.url)) as bridge:
        bridge.lean_publish = lean
        await until(lambda: rig.counters()[bridge_mod.NATS_CONNECTED] == 1, 15, "connected")
        for i in range(300):
            rig.push(shadow(i))
        await until(lambda: rig.counters()[bridge_mod.EVENTS_PUBLISHED] >= 300, 20, "300 published")
        assert (
            bridge.hooked_acks >= 300
        ) is lean  # the parser hook took the acks (or nats-py's callback did)
    msgs: list[Any] = await stream_messages(nats_server.url, "TITAN_EVT")
    assert [msgspec.json.decode(d)["seq"] for _, _, d in msgs] == list(range(300))
    assert [h["Nats-Msg-Id"] for _, h, _ in msgs] == [f"shadow:lean:{i}" for i in range(300)]


class Batch:
    """The publish state _puback reads and writes (a bridge's, without the rest of it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tokens: set[int], sent: bool = True) -> None:
        self._batch_waiter: asyncio.Future[None] = loop.create_future()
        self._outstanding = set(tokens)
        self._batch_sent = sent

    def ack(
        self, token: str | bytes, data: bytes = b'{"stream":"TITAN_EVT","seq":1}', status: str | None = None
    ) -> None:
        Bridge._puback(self, token, data, status)  # type: ignore[arg-type]  # duck-typed state


async def test_pubacks_complete_a_batch_only_when_all_its_tokens_are_in() -> None:
    loop = asyncio.get_running_loop()
    batch = Batch(loop, {7, 8, 9})
    batch.ack(b"7")
    batch.ack("7")  # twice: still one
    batch.ack(b"6")  # an abandoned attempt's ack
    batch.ack(b"x")  # not ours
    assert not batch._batch_waiter.done()
    batch.ack(b"8", b'{"stream":"TITAN_EVT","seq":2,"duplicate":true}')  # deduplicated: landed before
    batch.ack("9")
    assert batch._batch_waiter.done() and batch._batch_waiter.exception() is None


async def test_a_batch_still_being_sent_is_not_complete() -> None:
    batch = Batch(asyncio.get_running_loop(), {1}, sent=False)
    batch.ack(b"1")
    assert not batch._batch_waiter.done()  # _publish resolves it once the last line is queued


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (
            b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}',
            None,
            RuntimeError,
        ),
        (b"", "503", ConnectionError),
    ],
)
async def test_an_error_reply_fails_the_batch(
    data: bytes, status: str | None, error: type[Exception]
) -> None:
    batch = Batch(asyncio.get_running_loop(), {1, 2})
    batch.ack(b"1", data, status)
    assert isinstance(batch._batch_waiter.exception(), error)
