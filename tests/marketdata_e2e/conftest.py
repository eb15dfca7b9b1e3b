"""One real engine trading on the simulated Bybit, Binance and MEXC, with their public feeds.

The supervisor runs the venue simulator (``engine.start_sim``); ``marketdata --market venues``
writes the ticker table from the three public streams; core checks staleness per (venue, symbol).
Each FastPath source is routed to one venue (scavenger → bybit, hunter → binance, sentinel → mexc),
so a test chooses the venue of an intent by its source. The simulator's admin endpoint freezes
feeds and drops connections; the marketdata row of the status board shows (re)connections.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from titan.client import FastPathClient, Reply
from titan.harness import SECRET, Engine, eventually, start_engine
from titan.procs.marketdata import MARKETDATA_CELLS
from titan.shm.board import StatusBoard
from titan.shm.ticker import TickerIndex, TickerSnapshot, TickerTable
from titan.symbols import normalize_symbol

VENUES = ("bybit", "binance", "mexc")
SYMBOLS = ("BTC/USDT", "ETH/USDT")
# Route name → the FastPath source routed there ("bybit+binance": a weighted route over both, R25).
SOURCE_OF = {"bybit": "scavenger", "binance": "hunter", "mexc": "sentinel", "bybit+binance": "brain"}
# Entry zones around the simulator's walks (BTC starts at 65000, ETH at 3200: titan/venues/sim/config.py).
ZONES = {"BTC/USDT": (60000.0, 70000.0), "ETH/USDT": (3000.0, 3400.0)}
SILENCE_MS = 3000  # receive-silence watchdog: above MEXC's 1 s cadence, short enough for a test
FIRST_DATA_MS = 1000  # no data this long after subscribing: alarm (R15)
ROUTING = """
[routing]
weights = { bybit = 1 }
[routing.per_source.scavenger]
weights = { bybit = 1 }
[routing.per_source.hunter]
weights = { binance = 1 }
[routing.per_source.sentinel]
weights = { mexc = 1 }
[routing.per_source.brain]
weights = { bybit = 1, binance = 1 }
"""
ENV = {
    "TITAN__ENGINE__START_SIM": "true",
    "TITAN__MARKETDATA__MODE": '"venues"',
    "TITAN__MARKETDATA__SYMBOLS": '["BTC/USDT", "ETH/USDT"]',
    "TITAN__MARKETDATA__SILENCE_MS": str(SILENCE_MS),
    "TITAN__MARKETDATA__FIRST_DATA_MS": str(FIRST_DATA_MS),
    "TITAN__VENUES__PAPER__ENABLED": "false",
    **{f"TITAN__VENUES__{v.upper()}__ENABLED": "true" for v in VENUES},
    # Staleness thresholds are the defaults (risk-and-state.md §7): 200 ms, MEXC 1500 ms.
}


def post_json(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


class Rig:
    """The engine, its simulator's admin endpoints and the marketdata row of its status board."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sim_urls: dict[str, str] = json.loads((engine.run_dir / "sim.json").read_text())
        # Segment names: "/<instance>-<supervisor pid>-..." (titan.procs.supervisor.Supervisor.prefix).
        prefix = f"/{engine.instance}-{engine.proc.pid}"
        self.board = StatusBoard.attach(f"{prefix}-board")
        self.table = TickerTable.attach(f"{prefix}-ticker")
        # Rows in config order: marketdata.venues × marketdata.symbols (Config.ticker_pairs).
        self.index = TickerIndex([(v, s) for v in VENUES for s in SYMBOLS])
        self._ids = itertools.count()

    # ------------------------------------------------------------------ simulator
    def faults(self, venue: str, **switches: Any) -> dict[str, Any]:
        out: dict[str, Any] = post_json(f"{self.sim_urls[venue]}/_admin/faults", switches)
        return out

    def drop_public(self, venue: str) -> int:
        return int(
            post_json(f"{self.sim_urls[venue]}/_admin/drop", {"kind": "public", "abrupt": True})["dropped"]
        )

    # ------------------------------------------------------------------ observations
    def md(self, name: str) -> int:
        """A marketdata board cell by name (``connected.bybit``, ``silence_reconnects.mexc``, …)."""
        return int(self.board.read("marketdata").counters[MARKETDATA_CELLS[name]])

    def row_updates(self, venue: str, symbol: str) -> int:
        """How many times marketdata wrote the (venue, symbol) row of the ticker table."""
        row = self.index.row(venue, symbol)
        assert row is not None
        return self.table.updates(row)

    def row(self, venue: str, symbol: str) -> TickerSnapshot | None:
        row = self.index.row(venue, symbol)
        assert row is not None
        return self.table.read(row)

    def age_ms(self, venue: str, symbol: str) -> int | None:
        """Age of the (venue, symbol) ticker row as /health reports it (None: no row yet)."""
        _, body = self.engine.health()
        for row in body.get("marketdata", []):
            if row["venue"] == venue and row["symbol"] == symbol:
                return None if row["age_ms"] is None else int(row["age_ms"])
        return None

    def wait_age_at_least(self, venue: str, symbol: str, ms: int, timeout: float) -> int:
        def old_enough() -> int | None:
            age = self.age_ms(venue, symbol)
            return age if age is not None and age >= ms else None

        return int(eventually(old_enough, timeout=timeout, interval=0.01))

    # ------------------------------------------------------------------ intents
    def intent(self, route: str, symbol: str, *, confirm: bool = False) -> tuple[Reply, Reply | None]:
        """PREPARE a marketable LONG routed to ``route`` (a venue or a key of :data:`SOURCE_OF`), then
        CONFIRM (``confirm``) or ABORT it. ``symbol`` in any spelling (``BTCUSDT``, ``BTC_USDT``, …)."""
        signal_id = f"md-{route.replace('+', '-')}-{next(self._ids)}"
        low, high = ZONES[normalize_symbol(symbol)]

        async def run() -> tuple[Reply, Reply | None]:
            async with FastPathClient(
                self.engine.socket_path, SECRET, timeout=10.0, source=SOURCE_OF[route]
            ) as client:
                prep = await client.prepare(
                    signal_id, symbol, "LONG", low, high, position_size=3000, velocity=0.01
                )
                if not prep.prepared:
                    return prep, None
                if confirm:
                    return prep, await client.confirm(signal_id)
                return prep, await client.abort(signal_id)

        return asyncio.run(run())

    def passes(self, venue: str, symbol: str, timeout: float) -> Reply:
        """Poll until an intent for (venue, symbol) is prepared; returns the PREPARE reply."""

        def prepared() -> Reply | None:
            prep, _ = self.intent(venue, symbol)
            return prep if prep.prepared else None

        result: Reply = eventually(prepared, timeout=timeout, interval=0.05)
        return result

    def trade(self, venue: str, symbol: str, timeout: float) -> Reply:
        """Poll until an intent for (venue, symbol) is prepared and executed; returns the CONFIRM reply."""

        def executed() -> Reply | None:
            _, conf = self.intent(venue, symbol, confirm=True)
            return conf if conf is not None and conf.executed else None

        result: Reply = eventually(executed, timeout=timeout, interval=0.05)
        return result

    def close(self) -> None:
        self.table.close()
        self.board.close()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    engine = start_engine(tmp_path_factory.mktemp("md-e2e"), extra=ROUTING, env_overrides=ENV)
    try:
        r = Rig(engine)
        try:
            # Every pair has quotes before a test starts.
            for venue in VENUES:
                for symbol in SYMBOLS:
                    r.passes(venue, symbol, timeout=15)
            yield r
        finally:
            r.close()
    finally:
        engine.stop()


@pytest.fixture
def sim(rig: Rig) -> Iterator[Rig]:
    """The shared rig; every fault a test switched on is switched off after it."""
    try:
        yield rig
    finally:
        for venue in VENUES:
            rig.faults(venue, frozen_symbols=[], silent_subscriptions=False)
