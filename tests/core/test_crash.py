"""SIGKILL `core` at random points of a real run: nothing lost, nothing executed twice.

A closed-loop FastPath client sends intents (market orders on paper, so each fills once) and,
like a real strategy, retries an intent whose answer it did not get: a PREPARE answered
``DUPLICATE_SIGNAL_ID`` means an earlier CONFIRM went through. A killer thread SIGKILLs core
at random moments while requests are in flight (mid-message: between journal and push too);
the supervisor restarts it, it replays its journal and sends again what the tail's records
caused.

After the run: every intent was executed exactly once (accepted once, its order filled once),
every journaled fill reached JetStream once (deduplicated by Nats-Msg-Id), and the state rebuilt
from the journal equals an uninterrupted engine fed the same intents and the same executions.
The short variant runs by default; the issue's (5 000 intents, ≥ 20 kills) is ``@pytest.mark.slow``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec
import nats
import pytest

from tests.core.fakes import Rig, make_settings
from titan.client import FastPathClient, FastPathError
from titan.harness import SECRET, Engine, eventually, start_engine
from titan.messages import FILL, VenueReport
from titan.procs.core import journal_path
from titan.state.journal import scan_journal
from titan.state.records import CashRecord, FillRecord, IntentAccepted, JournalEntry
from titan.state.replay import CoreState, replay_entries

SUPERVISOR = "\n[supervisor]\ncrash_loop_max_restarts = 1000\nrestart_backoff_ms = [50]\n"
FILL_SUBJECTS = "titan.evt.execution.fill.v1.>"
# Answers meaning "ask again": core is restarting, or a restart forgot the PREPARE (memory only).
_AGAIN = frozenset({"PREPARE_NOT_FOUND", "ENGINE_NOT_READY"})


class Progress:
    def __init__(self) -> None:
        self.done = 0
        self.finished = False


async def _one(client: FastPathClient, sid: str, direction: int) -> str:
    """One intent until it has a definitive answer (retried across core restarts)."""
    side: Literal["LONG", "SHORT"] = "LONG" if direction > 0 else "SHORT"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            prep = await client.prepare(sid, "BTCUSDT", side, 50000, 50100, position_size=100, velocity=0.01)
            if prep.prepared:
                conf = await client.confirm(sid)
                if conf.executed:
                    return "executed"
                if conf.reason not in _AGAIN:
                    return f"confirm:{conf.reason}"
            elif prep.reason == "DUPLICATE_SIGNAL_ID":
                return "executed"  # confirmed before; that answer was lost with the killed core
            elif prep.reason not in _AGAIN:
                return f"prepare:{prep.reason}"
        except FastPathError:
            pass  # no answer (core killed mid-request) or not ready: ask again
        await asyncio.sleep(0.02)
    return "no answer"


async def _client(socket_path: str, n: int, progress: Progress) -> dict[str, str]:
    client = FastPathClient(socket_path, SECRET, timeout=3.0)
    await client.connect()
    outcomes: dict[str, str] = {}
    try:
        for i in range(n):
            outcomes[f"crash-{i}"] = await _one(client, f"crash-{i}", 1 if i % 2 == 0 else -1)
            progress.done = i + 1
    finally:
        progress.finished = True
        await client.close()
    return outcomes


def _killer(engine: Engine, kill_after: list[int], progress: Progress, kills: list[int]) -> None:
    """SIGKILL core once the client passed each mark, a random 0–3 ms later (requests in flight)."""
    rng = random.Random(len(kill_after))
    for mark in sorted(kill_after):
        while progress.done < mark and not progress.finished:
            time.sleep(0.001)
        if progress.finished:
            return
        time.sleep(rng.uniform(0, 0.003))
        pid = int(eventually(lambda: engine.pids().get("core"), timeout=60))
        os.kill(pid, signal.SIGKILL)
        kills.append(pid)
        eventually(functools.partial(_restarted, engine, pid), timeout=60)


def _restarted(engine: Engine, killed_pid: int) -> bool:
    return engine.pids().get("core") not in (None, killed_pid)


async def _fill_trade_ids(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(FILL_SUBJECTS, stream="TITAN_EVT", ordered_consumer=True)
        out: list[str] = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=2.0)
                except TimeoutError:
                    break
                out.append(msgspec.json.decode(msg.data)["payload"]["tradeId"])
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def _uninterrupted(entries: list[JournalEntry]) -> CoreState:
    """A fresh engine fed, without a crash, the intents and executions the crashed run journaled."""
    cash = next(e.record.amount for e in entries if isinstance(e.record, CashRecord))
    rig = Rig(make_settings(policy="risk_policy.paper.json", initial_cash=cash))
    fills = {r.fill.client_order_id: r.fill for e in entries if isinstance(r := e.record, FillRecord)}
    for entry in entries:
        accepted = entry.record
        if not isinstance(accepted, IntentAccepted):
            continue
        intent = rig.intent(accepted.signal_id, accepted.side, velocity=0.01)
        assert rig.prepare(intent).get("prepared"), accepted.signal_id
        rig.confirm(accepted.signal_id)
        order = rig.out.new_orders()[-1]
        fill = fills[order.coid]
        rig.engine.on_report(
            VenueReport(
                coid=order.coid,
                venue=order.venue,
                kind=FILL,
                venue_order_id="v",
                trade_id=fill.trade_id,
                qty=str(fill.qty),
                price=str(fill.price),
                fee=str(fill.fee),
                fee_asset=fill.fee_asset,
                t_exchange_ms=fill.ts_ms,
            )
        )
    return rig.engine.state


def _book(state: CoreState) -> tuple[object, ...]:
    """The trading state that does not depend on when things happened (marks, clocks)."""
    shadow = state.shadow
    positions = tuple(
        (
            p.venue,
            p.symbol,
            p.side,
            p.size,
            p.entry_price,
            p.realized_pnl,
            p.fees_paid,
            p.signal_id,
            p.close_seq,
        )
        for p in shadow.iter_positions()
    )
    daily = tuple((e.realized, e.fees) for _, e in sorted(shadow.daily.items()))
    return positions, tuple(sorted(shadow.cash.items())), shadow.trade_count, shadow.open_seq, daily


def crash_run(tmp_path: Path, n: int, kills: int) -> None:
    engine = start_engine(tmp_path, extra=SUPERVISOR)
    killed: list[int] = []
    try:
        rng = random.Random(n * 31 + kills)
        progress = Progress()
        killer = threading.Thread(
            target=_killer, args=(engine, rng.sample(range(10, n - 10), kills), progress, killed), daemon=True
        )
        killer.start()
        outcomes = asyncio.run(_client(engine.socket_path, n, progress))
        killer.join(120)
        eventually(lambda: engine.health()[0] == 200, timeout=60)

        def all_filled() -> list[JournalEntry] | None:
            entries = scan_journal(journal_path(engine.run_dir)).entries
            accepted = sum(isinstance(e.record, IntentAccepted) for e in entries)
            filled = sum(isinstance(e.record, FillRecord) for e in entries)
            return entries if filled >= accepted else None

        eventually(all_filled, timeout=60)  # an order re-sent after the last kill fills too
        published = asyncio.run(_fill_trade_ids(engine.nats_url))
    finally:
        assert engine.stop() == 0
    assert len(killed) == kills
    assert Counter(outcomes.values()) == {"executed": n}
    entries = scan_journal(journal_path(engine.run_dir)).entries
    accepted = Counter(e.record.signal_id for e in entries if isinstance(e.record, IntentAccepted))
    fills = [e.record.fill for e in entries if isinstance(e.record, FillRecord)]
    # Nothing lost, nothing twice: every intent accepted once, each order filled once.
    assert set(accepted) == set(outcomes) and set(accepted.values()) == {1}
    per_order = Counter(f.client_order_id for f in fills)
    assert len(per_order) == n and set(per_order.values()) == {1}
    # Every execution reached JetStream exactly once, also those whose core died before pushing.
    assert sorted(published) == sorted(f.trade_id for f in fills)
    # The journal rebuilds one state, twice the same, equal to an uninterrupted run's.
    state = replay_entries(entries, CoreState())
    assert state.snapshot() == replay_entries(entries, CoreState()).snapshot()
    assert _book(state) == _book(_uninterrupted(entries))
    net = sum((f.side * f.qty for f in fills), Decimal(0))
    assert state.shadow.net_position("BTC/USDT") == net


@pytest.mark.timeout(240)
def test_core_killed_three_times_during_200_intents(tmp_path: Path) -> None:
    crash_run(tmp_path, 200, 3)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_core_killed_twenty_times_during_5000_intents(tmp_path: Path) -> None:
    crash_run(tmp_path, 5000, 20)
