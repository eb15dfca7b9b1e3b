"""Replay: live state equals journal-rebuilt state; replaying twice is identical; `titan replay` output."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.fakes import FileJournal, MemJournal, Rig
from titan.engine.replay_cli import main as replay_main
from titan.state.records import FillRecord
from titan.state.replay import CoreState, render_state, replay_entries, replay_journal

STEP = st.tuples(st.sampled_from([1, -1]), st.integers(50, 400), st.booleans())


def drive(rig: Rig, steps: list[tuple[int, int, bool]]) -> None:
    for k, (direction, notional, partial) in enumerate(steps):
        sid = f"s{k}"
        fields = rig.prepare(rig.intent(sid, direction, notional=str(notional)))
        if not fields.get("prepared"):
            continue
        n = len(rig.out.new_orders())
        rig.confirm(sid)
        for order in rig.out.new_orders()[n:]:
            price = str(50_000 + 7 * k if direction > 0 else 50_000 - 3 * k)
            if partial and order.qty != "0.001":
                rig.fill(order, qty="0.001", price=price, trade="a")
                rig.clock.advance_ms(3)
                left = str(Decimal(order.qty) - Decimal("0.001"))
                rig.fill(order, qty=left, price=price, trade="b")
            else:
                rig.fill(order, price=price)
        rig.clock.advance_ms(11)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=25))
def test_live_state_equals_replayed_state(steps: list[tuple[int, int, bool]]) -> None:
    rig = Rig()
    drive(rig, steps)
    journal = rig.journal
    assert isinstance(journal, MemJournal)
    live = render_state(rig.engine.state)
    once = render_state(replay_entries(journal.entries, CoreState()))
    twice = render_state(replay_entries(journal.entries, CoreState()))
    assert live == once == twice
    # Position = Σ signed fills, exactly.
    fills = [e.record.fill for e in journal.entries if isinstance(e.record, FillRecord)]
    net = sum((f.side * f.qty for f in fills), Decimal(0))
    assert rig.engine.state.shadow.net_position("BTC/USDT") == net


def test_file_journal_replay_and_cli_are_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "core.journal"
    file_journal = FileJournal(path)
    rig = Rig(journal=file_journal)
    drive(rig, [(1, 100, False), (1, 200, True), (-1, 150, False)])
    file_journal.writer.close()
    state, torn = replay_journal(path)
    assert torn is None and render_state(state) == render_state(rig.engine.state)
    runs = [
        subprocess.run(
            [sys.executable, "-m", "titan.engine.replay_cli", str(path)],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and b'"state":' in runs[0] and runs[0].count(b"\n") > 5


def test_replay_cli_rejects_a_missing_file(tmp_path: Path) -> None:
    assert replay_main([str(tmp_path / "nope")]) == 2
    assert replay_main([]) == 2
