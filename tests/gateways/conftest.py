"""Fixtures: the venue simulator (in-process, manual quotes) and a real gateway process on real rings.

The test plays core: it creates the shared memory the way the supervisor does
(``Supervisor.create_segments``), pushes ``OrderRequest``/``CancelRequest``/``ReconcileRequest`` on
the core→gateway ring, rings the gateway's doorbell, and reads the gateway's reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from titan.config import load_config
from titan.messages import (
    GATEWAY_TO_CORE,
    CancelRequest,
    OrderRequest,
    ReconcileRequest,
    ReconcileSnapshot,
    VenueReport,
    VenueStatus,
    decoder,
    encoder,
)
from titan.procs.common import CORE, ENV_CONFIG, ENV_PREFIX, Layout, gateway_name
from titan.shm.board import StatusBoard
from titan.shm.doorbell import Doorbell, wait_any_async
from titan.shm.ring import Ring
from titan.shm.segment import exists
from titan.shm.ticker import TickerTable
from titan.symbols import venue_symbol
from titan.venues.gateway.buckets import bucket_segment_name
from titan.venues.sim import SimConfig, SimServer

SIM_PRIVATE_PATH = {"bybit": "/v5/private", "binance": "/private", "mexc": "/edge"}
BTC = "BTC/USDT"
ETH = "ETH/USDT"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sim_config(**overrides: Any) -> SimConfig:
    fields: dict[str, Any] = {"price_source": "manual", "seed": 5}
    fields.update(overrides)
    return SimConfig(**fields)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(sim_config()) as server:
        await quote(server)
        yield server


async def quote(server: SimServer, bid: str = "65000.0", ask: str = "65000.1") -> None:
    await server.set_quote(BTC, Decimal(bid), Decimal(ask), "5", "5")
    await server.set_quote(ETH, Decimal("3200.00"), Decimal("3200.01"), "100", "100")


NO_STREAM_URL = "ws://127.0.0.1:9"  # nothing listens: the private stream never connects


def venue_toml(venue: str, sim: SimServer, read_timeout_s: float = 1.0, private_stream: bool = True) -> str:
    account = next(a for a in sim.cfg.accounts if a.venue == venue)
    private = f"{sim.ws_urls[venue]}{SIM_PRIVATE_PATH[venue]}" if private_stream else NO_STREAM_URL
    return f"""
[venues.{venue}]
enabled = true
api_key = "{account.api_key}"
api_secret = "{account.secret}"
rest_url = "{sim.urls[venue]}"
ws_public_url = "{sim.ws_urls[venue]}"
ws_private_url = "{private}"
read_timeout_s = {read_timeout_s}
write_timeout_s = 1.0
connect_timeout_s = 1.0
pool_timeout_s = 1.0
"""


class Rig:
    """One gateway process and the shared memory it attaches to; the test is its core."""

    def __init__(
        self,
        tmp: Path,
        venue: str,
        sim: SimServer,
        read_timeout_s: float = 1.0,
        private_stream: bool = True,
        extra: str = "",
    ) -> None:
        self.private_stream = private_stream
        self.tmp = tmp
        self.venue = venue
        self.sim = sim
        self.prefix = f"/tg{uuid.uuid4().hex[:8]}"
        self.cfg_path = tmp / f"gw-{venue}.toml"
        self.cfg_path.write_text(
            f"""
[engine]
instance = "{self.prefix[1:]}"
log_level = "INFO"

[shm]
ring_slots = 512
slot_size = 1024

[venues.paper]
enabled = false
{venue_toml(venue, sim, read_timeout_s, private_stream)}
{extra}
"""
        )
        cfg = load_config(self.cfg_path, env={})
        self.layout = Layout(prefix=self.prefix, venues=(venue,))
        self.name = gateway_name(venue)
        self.objects: list[Ring | Doorbell | TickerTable | StatusBoard] = []
        for spec in self.layout.rings():
            ring = Ring.create(spec.name, cfg.shm.ring_slots, cfg.shm.slot_size)
            self.objects.append(ring)
            if spec.producer == CORE and spec.consumer == self.name:
                self.orders = ring
            if spec.producer == self.name and spec.consumer == CORE:
                self.reports = ring
        for consumer in self.layout.consumers():
            bell = Doorbell.create(self.layout.bell(consumer))
            self.objects.append(bell)
            if consumer == CORE:
                self.core_bell = bell
            if consumer == self.name:
                self.gw_bell = bell
        self.objects.append(TickerTable.create(self.layout.ticker, 2))
        self.board = StatusBoard.create(self.layout.board, list(self.layout.processes))
        self.objects.append(self.board)
        self.enc = encoder().encode
        self.dec = decoder(GATEWAY_TO_CORE).decode
        self.received: list[VenueReport | ReconcileSnapshot | VenueStatus] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"gw-{venue}.log"
        self._seq = 0

    # ------------------------------------------------------------------ process
    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TITAN")}
        env[ENV_CONFIG] = str(self.cfg_path)
        env[ENV_PREFIX] = self.prefix
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "titan.procs.gateway", "--venue", self.venue],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        self.proc = None
        return code

    def close(self) -> None:
        self.stop()
        for obj in reversed(self.objects):
            with contextlib.suppress(Exception):
                obj.close()
            with contextlib.suppress(Exception):
                obj.unlink()
        self.objects.clear()

    def bucket_segment_exists(self) -> bool:
        return exists(bucket_segment_name(self.prefix, self.venue))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ------------------------------------------------------------------ core's side
    def send(self, msg: OrderRequest | CancelRequest | ReconcileRequest) -> None:
        self.orders.push(self.enc(msg), timeout=5.0)
        self.gw_bell.ring()

    def order(
        self,
        qty: str = "0.01",
        side: str = "BUY",
        order_type: str = "MARKET",
        price: str | None = None,
        tif: str = "IOC",
        symbol: str = BTC,
        coid: str | None = None,
        reduce_only: bool = False,
    ) -> OrderRequest:
        self._seq += 1
        code = {"bybit": "y", "binance": "b", "mexc": "m"}[self.venue]
        req = OrderRequest(
            coid=coid or f"te{uuid.uuid4().hex[:20]}{code}000",
            signal_id=f"sig-{self._seq}",
            leg=0,
            venue=self.venue,
            account="main",
            symbol=symbol,
            venue_symbol=venue_symbol(symbol, self.venue),
            side=side,
            order_type=order_type,
            tif=tif if order_type == "LIMIT" else "IOC",
            qty=qty,
            price=price,
            reduce_only=reduce_only,
            t_signal_ms=time.time_ns() // 1_000_000,
            t_core_in=time.monotonic_ns(),
            t_core_out=time.monotonic_ns(),
        )
        self.send(req)
        return req

    def cancel(self, req: OrderRequest) -> None:
        self.send(
            CancelRequest(
                coid=req.coid,
                venue=self.venue,
                symbol=req.symbol,
                venue_symbol=req.venue_symbol,
                reason="test",
                t_core_out=time.monotonic_ns(),
            )
        )

    def reconcile(self, coids: list[str], symbols: list[str] | None = None, since_ms: int = 0) -> None:
        self.send(
            ReconcileRequest(
                venue=self.venue,
                reason="start",
                coids=coids,
                symbols=symbols or [BTC],
                fills_since_ms=since_ms,
                t_core_out=time.monotonic_ns(),
            )
        )

    def drain(self) -> None:
        while (view := self.reports.peek()) is not None:
            self.received.append(self.dec(view))
            self.reports.advance()

    async def until(self, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Poll the report ring (sleeping on core's doorbell) until ``check()`` is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            result = check()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"condition not met in {timeout}s; reports: {self.received[-12:]!r}\n"
                    f"gateway log:\n{self.log_text()[-3000:]}"
                )
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            await wait_any_async([self.reports], self.core_bell, 0.05)

    async def ready(self) -> None:
        """The venue session is up (and the private stream connected, unless the rig has none)."""
        if self.private_stream:
            await self.until(lambda: self.statuses(private_stream="UP"), timeout=30)
        else:
            await self.until(lambda: self.statuses(session="UP"), timeout=30)

    # ------------------------------------------------------------------ views
    def reports_for(self, coid: str, kind: str | None = None) -> list[VenueReport]:
        self.drain()
        return [
            r
            for r in self.received
            if isinstance(r, VenueReport) and r.coid == coid and (kind is None or r.kind == kind)
        ]

    def kinds(self, coid: str) -> list[str]:
        return [r.kind for r in self.reports_for(coid)]

    def filled(self, coid: str) -> Decimal:
        return sum((Decimal(r.qty) for r in self.reports_for(coid, "FILL")), Decimal(0))

    def statuses(self, **match: str) -> list[VenueStatus]:
        self.drain()
        return [
            s
            for s in self.received
            if isinstance(s, VenueStatus) and all(getattr(s, k) == v for k, v in match.items())
        ]

    def snapshots(self) -> list[ReconcileSnapshot]:
        self.drain()
        return [s for s in self.received if isinstance(s, ReconcileSnapshot)]


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path) -> Any:
    rigs: list[Rig] = []

    def factory(
        venue: str, sim: SimServer, read_timeout_s: float = 1.0, private_stream: bool = True, extra: str = ""
    ) -> Rig:
        rig = Rig(tmp_path, venue, sim, read_timeout_s, private_stream, extra)
        rigs.append(rig)
        rig.start()
        return rig

    yield factory
    for rig in rigs:  # stop them side by side, then release the shared memory
        if rig.proc is not None and rig.proc.poll() is None:
            rig.proc.send_signal(signal.SIGTERM)
    for rig in rigs:
        rig.close()
        assert not rig.bucket_segment_exists(), "gateway left its bucket segment behind"


def sim_orders(sim: SimServer, venue: str) -> list[Any]:
    """Every order the simulated venue holds (whatever its state)."""
    return list(sim.venues[venue].engine.orders.values())


async def settle(seconds: float) -> None:
    """Let time pass for a negative check (nothing more happens); never used to wait for an event."""
    await asyncio.sleep(seconds)


VENUES = ("bybit", "binance", "mexc")


async def on_each_venue(
    make_rig: Callable[..., Rig],
    sim: SimServer,
    case: Callable[[Rig], Awaitable[None]],
    venues: Sequence[str] = VENUES,
    **rig_options: object,
) -> None:
    rigs = [make_rig(v, sim, **rig_options) for v in venues]
    await asyncio.gather(*(r.ready() for r in rigs))
    await asyncio.gather(*(case(r) for r in rigs))


def venue_count(sim: SimServer, venue: str, coid: str) -> int:
    return len([o for o in sim_orders(sim, venue) if o.client_id == coid])
