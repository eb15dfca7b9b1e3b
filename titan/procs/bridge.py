"""`bridge`: publishes core's events on NATS JetStream.

The trading path never waits on NATS: events are drained from the ring into a local queue at
once and published with a bounded window of asynchronous JetStream publishes, each with its
deterministic ``Nats-Msg-Id`` so a re-publish after a reconnect is deduplicated by the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections import deque

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from titan.messages import CORE_TO_BRIDGE, Event, decoder
from titan.procs.common import BRIDGE, CORE, ChildContext
from titan.shm.board import ProcState

# Stream definitions of nats.md §8 (created when missing, never changed here).
STREAMS = [
    StreamConfig(
        name="TITAN_EVT",
        subjects=["titan.evt.>"],
        storage=StorageType.FILE,
        max_age=30 * 24 * 3600.0,
        max_bytes=10 << 30,
        duplicate_window=600.0,
    ),
    StreamConfig(
        name="TITAN_EXECUTION",
        subjects=["titan.execution.>"],
        storage=StorageType.FILE,
        max_age=24 * 3600.0,
        max_bytes=1 << 30,
    ),
]

WINDOW = 512  # JetStream publishes in flight
MAX_QUEUE = 1_000_000  # events held while NATS is slow or away (the ring pushes back past this)


async def ensure_streams(js: JetStreamContext) -> None:
    for cfg in STREAMS:
        assert cfg.name is not None
        try:
            await js.stream_info(cfg.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(cfg)


class Bridge:
    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.log = ctx.log
        self.ring = ctx.ring_in(CORE)
        self.bell = ctx.bell()
        self.decode = decoder(CORE_TO_BRIDGE).decode
        self.queue: deque[Event] = deque()
        self.wake = asyncio.Event()
        self.stop = asyncio.Event()
        self.published = 0
        self.nc: NATS | None = None

    def drain_ring(self) -> None:
        self.bell.drain()
        n = 0
        while len(self.queue) < MAX_QUEUE and (view := self.ring.peek()) is not None:
            msg = self.decode(view)
            if isinstance(msg, Event):
                self.queue.append(msg)
            self.ring.advance()
            n += 1
        if n:
            self.wake.set()

    async def publisher(self, js: JetStreamContext) -> None:
        while not self.stop.is_set():
            if not self.queue:
                self.wake.clear()
                self.drain_ring()
                if not self.queue:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), 0.1)
                    self.drain_ring()
                    continue
            batch = [self.queue[i] for i in range(min(WINDOW, len(self.queue)))]
            try:
                futs = [
                    await js.publish_async(
                        e.subject, e.data, headers={"Nats-Msg-Id": e.msg_id} if e.msg_id else None
                    )
                    for e in batch
                ]
                await asyncio.gather(*futs)
            except Exception as exc:  # NATS away or slow: keep the batch, retry in order
                self.log.warning(
                    "publish failed (%s: %s); %d events queued", type(exc).__name__, exc, len(self.queue)
                )
                await asyncio.sleep(0.2)
                continue
            for _ in batch:
                self.queue.popleft()
            self.published += len(batch)
            self.drain_ring()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.bell.fileno(), self.drain_ring)
        url = self.ctx.cfg.nats.url or "nats://127.0.0.1:4222"
        opts: dict[str, object] = {
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": self.ctx.cfg.nats.connect_timeout_s,
        }
        if self.ctx.cfg.nats.user and self.ctx.cfg.nats.password:
            opts.update(user=self.ctx.cfg.nats.user, password=self.ctx.cfg.nats.password)
        if self.ctx.cfg.nats.token:
            opts["token"] = self.ctx.cfg.nats.token
        while not self.stop.is_set():
            try:
                self.nc = await nats.connect(url, **opts)
                break
            except Exception as exc:
                self.log.warning("NATS %s unreachable (%s); retrying", url, exc)
                await asyncio.sleep(1.0)
        if self.nc is None:
            return
        js = self.nc.jetstream()
        await ensure_streams(js)
        self.ctx.set_state(ProcState.READY)
        self.log.info("bridge connected to %s", url)
        pub = asyncio.create_task(self.publisher(js))
        try:
            while not self.stop.is_set():
                self.ctx.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 0.1)
            # Drain what core already produced before going (bounded).
            deadline = time.monotonic() + 2.0
            while (self.queue or self.ring.depth()) and time.monotonic() < deadline:
                self.drain_ring()
                await asyncio.sleep(0.01)
        finally:
            self.stop.set()
            await pub
            loop.remove_reader(self.bell.fileno())
            with contextlib.suppress(Exception):
                await self.nc.drain()


def main() -> None:
    ctx = ChildContext.from_env(BRIDGE)
    bridge = Bridge(ctx)

    async def amain() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop.set)
        gc.collect()
        gc.freeze()
        await bridge.run()

    asyncio.run(amain())
    ctx.set_state(ProcState.STOPPED)
    ctx.close()


if __name__ == "__main__":
    main()
