"""``titan events``: print every event on a NATS subject as one line, ``subject`` then its JSON body.

Watches core NATS (not a JetStream consumer), so it sees what the bridge publishes from the
moment it subscribes and leaves no state on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TextIO

import nats
from nats.aio.msg import Msg


def format_event(subject: str, data: bytes) -> str:
    """One line: the subject, a space, the body (JSON as published; other bytes decoded leniently)."""
    body = data.decode("utf-8", errors="replace").replace("\n", "\\n")
    return f"{subject} {body}"


async def watch(
    url: str,
    subject: str = "titan.evt.>",
    out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None,
) -> None:
    """Print each message on ``subject`` until cancelled (or ``stop`` is set)."""
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)

    async def on_message(msg: Msg) -> None:
        out.write(format_event(msg.subject, msg.data) + "\n")
        out.flush()

    try:
        await nc.subscribe(subject, cb=on_message)
        await nc.flush()
        await (stop or asyncio.Event()).wait()
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
