"""core's CPU cost per intent: PREPARE + CONFIRM + the venue's FILL through the real engine.

In process, no rings: the outbox msgpack-encodes every reply, order and event exactly as the `core`
process does (then drops the bytes), the journal is core's: records batched and written through to
a real file once per message, as core's flush does before it pushes the outputs (core batches up to
32 messages per write; fsync off the hot path, as in `core`), quotes come from a constant row.
``run()`` returns a dict of results; ``python -m bench.core_cpu [N]`` prints it.
Target: < 30 µs of CPU per intent.

Two figures: *hot* (intents back to back, so the interpreter's code and core's data stay in the CPU
caches) and *cold* (between two messages the caches are flushed by walking ``COLD_EVICT_BYTES``,
four times a core's L2 here; that walk is not counted). In the running engine each message arrives
after other processes have had the core, so core's CPU per intent there lies between the two.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from titan.config import load_config
from titan.engine.engine import Engine
from titan.engine.ports import Quote
from titan.engine.settings import EngineSettings, settings_from_config
from titan.messages import FILL, Confirm, Intent, OrderRequest, Prepare, VenueReport, encoder
from titan.risk.state import HaltState
from titan.state.journal import BufferedJournal, JournalWriter


class _Clock:
    def __init__(self) -> None:
        self.mono_ns = time.monotonic_ns

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class _Quotes:
    def __init__(self) -> None:
        self.rows = {
            s: (Decimal("49999.9"), Decimal("50000.1")) for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT")
        }

    def get(self, venue: str, symbol: str) -> Quote | None:
        row = self.rows.get(symbol)
        if row is None:
            return None
        return Quote(
            bid=row[0],
            ask=row[1],
            receive_mono_ns=time.monotonic_ns(),
            bid_size=Decimal(3),
            ask_size=Decimal(3),
            exchange_ts_ms=0,
        )


class _EncodingOutbox:
    """Like core's RingOutbox: every output is encoded; nothing leaves before the message's flush,
    which writes the journal first (``run`` calls ``journal.write()`` after each message)."""

    def __init__(self) -> None:
        self.enc = encoder().encode
        self.orders: list[OrderRequest] = []
        self.bytes = 0

    def reply(self, reply: Any) -> None:
        self.bytes += len(self.enc(reply))

    def order(self, venue: str, msg: Any) -> None:
        if isinstance(msg, OrderRequest):
            self.orders.append(msg)
        self.bytes += len(self.enc(msg))

    def event(self, event: Any) -> None:
        self.bytes += len(self.enc(event))


class _Journal(BufferedJournal):
    """core's journal port (SyncingJournal without the fsync thread)."""

    def __init__(self, path: Path) -> None:
        super().__init__(JournalWriter(path))

    def write(self) -> int:
        seq = super().write()
        self.writer.mark_synced()
        return seq


class _Files:
    def save(self, armed: bool, armed_reason: str, halt: HaltState) -> None:
        pass


def _settings() -> EngineSettings:
    return settings_from_config(load_config(None))


COLD_EVICT_BYTES = 4 << 20


class _CpuClock:
    """``time.process_time_ns`` that, for a cold run, first evicts the caches and leaves that out."""

    def __init__(self, evict_bytes: int) -> None:
        self.evict = np.ones(evict_bytes // 8) if evict_bytes else None
        self.excluded = 0

    def __call__(self) -> int:
        if self.evict is None:
            return time.process_time_ns()
        t0 = time.process_time_ns()
        self.evict.sum()  # reads every cache line of a buffer larger than L2
        t1 = time.process_time_ns()
        self.excluded += t1 - t0
        return t1 - self.excluded


def run(quick: bool = False, intents: int | None = None) -> dict[str, Any]:
    """``make bench``: the hot figure over ``intents`` (20 000; 5 000 if ``quick``) and the cold one
    over a quarter as many."""
    n = intents or (5_000 if quick else 20_000)
    hot = measure(n)
    cold = measure(max(n // 4, 500), evict_bytes=COLD_EVICT_BYTES)
    summary = (
        f"core CPU per intent {hot['cpu_us_per_intent']} µs hot, {cold['cpu_us_per_intent']} µs cold "
        f"(medians PREPARE/CONFIRM/fill {hot['cpu_us_median_prepare']}/{hot['cpu_us_median_confirm']}/"
        f"{hot['cpu_us_median_fill']} hot); target < {hot['target_us']} µs"
    )
    return (
        hot
        | {f"cold_{k}": v for k, v in cold.items() if k.startswith("cpu_us") or k == "intents"}
        | {"cold_evict_bytes": COLD_EVICT_BYTES, "summary": summary}
    )


def measure(n: int, evict_bytes: int = 0) -> dict[str, Any]:
    """Drive ``n`` intents (after 1 000 warm-up); CPU µs per intent and per message kind."""
    cpu = _CpuClock(evict_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        journal = _Journal(Path(tmp) / "core.journal")
        out = _EncodingOutbox()
        engine = Engine(_settings(), _Clock(), _Quotes(), out, journal, _Files())
        engine.start(None, None, first_start=True)
        engine.control.set_armed(True)
        costs = {"prepare": 0, "confirm": 0, "fill": 0}
        samples: dict[str, list[int]] = {"prepare": [], "confirm": [], "fill": []}

        def one(k: int, measure: bool) -> None:
            sid = f"bench-{k}"
            intent = Intent(
                signal_id=sid,
                source="scavenger",
                symbol="BTCUSDT",
                direction=1 if k % 2 else -1,
                intent_type="BUY_SETUP" if k % 2 else "SELL_SETUP",
                t_signal_ms=time.time_ns() // 1_000_000,  # fresh: a long run outlasts the 5 s window
                position_size="100",
                entry_zone=["50000", "50100"],
            )
            t0 = cpu()
            engine.on_command(Prepare(conn=1, req=k, intent=intent, t_read=0, t_ring=0))
            journal.write()  # core's loop does this after every message
            t1 = cpu()
            engine.on_command(Confirm(conn=1, req=k, signal_id=sid, t_read=0, t_ring=0))
            journal.write()
            t2 = cpu()
            order = out.orders.pop()
            engine.on_report(
                VenueReport(
                    coid=order.coid,
                    venue=order.venue,
                    kind=FILL,
                    venue_order_id="v",
                    trade_id=order.coid,
                    qty=order.qty,
                    price="50000.1",
                    fee="0.05" if k % 2 else "-0.05",  # fee, then rebate: daily PnL stays flat
                )
            )
            journal.write()
            t3 = cpu()
            if measure:
                for step, ns in (("prepare", t1 - t0), ("confirm", t2 - t1), ("fill", t3 - t2)):
                    costs[step] += ns
                    samples[step].append(ns)

        for k in range(1_000):
            one(k, False)
        gc.collect()
        gc.freeze()
        wall0 = time.perf_counter()
        for k in range(1_000, 1_000 + n):
            one(k, True)
        wall = time.perf_counter() - wall0
        gc.unfreeze()
        journal.writer.close()
        total = sum(costs.values())
        return {
            "intents": n,
            "cpu_us_per_intent": round(total / n / 1000, 2),
            "cpu_us_prepare": round(costs["prepare"] / n / 1000, 2),
            "cpu_us_confirm": round(costs["confirm"] / n / 1000, 2),
            "cpu_us_fill": round(costs["fill"] / n / 1000, 2),
            # Medians: on a shared machine a few preempted, cache-cold intents pull the means up.
            **{f"cpu_us_median_{k}": round(statistics.median(v) / 1000, 2) for k, v in samples.items()},
            "wall_s": round(wall, 3),
            "live_intents_after": len(engine.state.intents),
            "confirm_full_rechecks": engine.counters.full_rechecks,
            "journal_records": journal.last_seq,
            "encoded_bytes": out.bytes,
            "target_us": 30,
        }


if __name__ == "__main__":
    print(json.dumps(run(intents=int(sys.argv[1]) if len(sys.argv) > 1 else None), indent=2))
