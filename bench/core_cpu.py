"""core's CPU cost per intent: PREPARE + CONFIRM + the venue's FILL through the real engine.

In process, no rings: the outbox msgpack-encodes every reply, order and event exactly as the `core`
process does (then drops the bytes), the journal is core's: records batched and written through to
a real file once per message, as core's flush does before it pushes the outputs (core batches up to
32 messages per write; fsync off the hot path, as in `core`), quotes come from a constant row.
``run(n)`` returns a dict of results; ``python -m bench.core_cpu [N]`` prints it.
Target: < 30 µs of CPU per intent.
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


def run(n: int = 20_000) -> dict[str, Any]:
    """Drive ``n`` intents (after 1 000 warm-up); CPU µs per intent and per message kind."""
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
            t0 = time.process_time_ns()
            engine.on_command(Prepare(conn=1, req=k, intent=intent, t_read=0, t_ring=0))
            journal.write()  # core's loop does this after every message
            t1 = time.process_time_ns()
            engine.on_command(Confirm(conn=1, req=k, signal_id=sid, t_read=0, t_ring=0))
            journal.write()
            t2 = time.process_time_ns()
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
            t3 = time.process_time_ns()
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
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000), indent=2))
