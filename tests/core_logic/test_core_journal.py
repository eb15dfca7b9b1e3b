"""Journal framing, torn tails, grouped fsync and deterministic replay (§15.5, R37)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from titan.risk.policy import RiskState
from titan.risk.state import RiskControlState
from titan.routing.coid import client_order_id
from titan.state.fsm import IntentStatus, LegState
from titan.state.journal import HEADER, JournalWriter, scan_journal
from titan.state.records import (
    CashRecord,
    FillRecord,
    FundingRecord,
    IntentAccepted,
    LegPlan,
    LegTransitionRecord,
    Record,
    RiskRecord,
)
from titan.state.replay import CoreState, render_state, replay_journal
from titan.state.shadow import Fill

D = Decimal
T0 = 1_800_000_000_000


def scenario() -> list[Record]:
    """An intent split over two venues: one leg fills in two parts, the other is rejected."""
    coid_a, coid_b = client_order_id("sig-1", "bybit", 0), client_order_id("sig-1", "binance", 1)
    records: list[Record] = [
        CashRecord("main", D(10000)),
        IntentAccepted("sig-1", "main", "BTC/USDT", 1, D("0.2"), D(0), D(50000),
                       (LegPlan(coid_a, 0, "bybit", D("0.1")), LegPlan(coid_b, 1, "binance", D("0.1")))),
    ]  # fmt: skip
    for coid in (coid_a, coid_b):
        for i, state in enumerate((LegState.VALIDATED, LegState.ACCEPTED, LegState.SENT)):
            records.append(LegTransitionRecord(coid, state, 1000 + i, T0 + i))
    records += [
        LegTransitionRecord(coid_a, LegState.ACKED, 2000, T0 + 5),
        FillRecord(Fill("main", "bybit", "BTC/USDT", 1, D("0.04"), D(50000), D("1"), "e1", T0 + 6,
                        signal_id="sig-1", client_order_id=coid_a)),
        LegTransitionRecord(coid_a, LegState.PARTIAL_FILL, 2001, T0 + 6),
        LegTransitionRecord(coid_b, LegState.REJECTED, 2002, T0 + 7, "VENUE_REJECTED"),
        FillRecord(Fill("main", "bybit", "BTC/USDT", 1, D("0.06"), D(50010), D("1.5"), "e2", T0 + 8,
                        signal_id="sig-1", client_order_id=coid_a)),
        LegTransitionRecord(coid_a, LegState.FILLED, 2003, T0 + 8),
        FundingRecord("main", "bybit", "BTC/USDT", D("0.25"), T0 + 9),
        RiskRecord(RiskControlState(breaker_state=RiskState.CAUTIOUS, armed=True)),
    ]  # fmt: skip
    return records


def write(path: Path, records: list[Record]) -> None:
    with JournalWriter(path) as writer:
        for i, record in enumerate(records):
            writer.append(record, T0 + i, now_mono_ns=i)


def test_round_trip_and_replay_rebuilds_state(tmp_path: Path) -> None:
    path = tmp_path / "core.journal"
    write(path, scenario())
    scan = scan_journal(path)
    assert scan.torn is None and [e.record for e in scan.entries] == scenario()
    assert [e.seq for e in scan.entries] == list(range(1, len(scenario()) + 1))
    state, torn = replay_journal(path)
    assert torn is None
    position = state.shadow.positions[("main", "bybit", "BTC/USDT")]
    assert position.size == D("0.1") and position.entry_price == D("50006")
    assert state.shadow.cash["main"] == D(10000) - D("2.5") - D("0.25")
    assert state.risk.breaker_state is RiskState.CAUTIOUS and state.risk.armed
    # Both legs terminal: the intent (FAILED_WITH_EXPOSURE) and its legs left memory.
    assert state.intents == {} and state.legs == {}
    assert "sig-1" in state.accepted_ids


def test_intent_status_and_working_quantity_while_live() -> None:
    state = CoreState()
    records = scenario()
    for record in records[:11]:  # up to the first partial fill
        state.apply(record, T0)
    assert state.intents["sig-1"].status is IntentStatus.PARTIALLY_FILLED
    assert state.open_intents("BTC/USDT") == 1
    assert state.working_signed_qty("BTC/USDT") == D("0.16")
    state.apply(records[11], T0)  # binance leg rejected
    assert state.working_signed_qty("BTC/USDT") == D("0.06")


def test_replaying_twice_is_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "core.journal"
    write(path, scenario())
    first, _ = replay_journal(path)
    second, _ = replay_journal(path)
    assert first.snapshot() == second.snapshot()
    assert render_state(first) == render_state(second)


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size + 1])
def test_torn_last_record_is_dropped_and_reported(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "core.journal"
    records = scenario()
    write(path, records)
    full = path.read_bytes()
    write(tmp_path / "prefix.journal", records[:-1])
    valid = len((tmp_path / "prefix.journal").read_bytes())
    last_frame = len(full) - valid
    path.write_bytes(full[: valid + (cut if cut < last_frame else last_frame - 1)])
    scan = scan_journal(path)
    assert scan.torn is not None and scan.torn.offset == valid
    assert [e.record for e in scan.entries] == records[:-1]
    # Reopening truncates the tail and continues the sequence.
    with JournalWriter(path) as writer:
        assert writer.recovered.torn is not None
        assert writer.append(records[-1], T0, 0) == len(records)
    assert [e.record for e in scan_journal(path).entries] == records


def test_corrupt_checksum_in_last_record(tmp_path: Path) -> None:
    path = tmp_path / "core.journal"
    write(path, scenario())
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    scan = scan_journal(path)
    assert scan.torn is not None and scan.torn.reason == "checksum"
    assert len(scan.entries) == len(scenario()) - 1


def test_fsync_is_grouped_on_the_callers_timer(tmp_path: Path) -> None:
    with JournalWriter(tmp_path / "j", fsync_interval_ns=2_000_000) as writer:
        writer.append(CashRecord("main", D(1)), T0, now_mono_ns=10_000_000)
        writer.append(CashRecord("main", D(2)), T0, now_mono_ns=10_500_000)
        assert not writer.flush(now_mono_ns=11_000_000)
        assert writer.flush(now_mono_ns=12_000_000)
        assert writer.fsyncs == 1 and not writer.pending_sync
        assert not writer.flush(now_mono_ns=20_000_000)  # nothing new to sync


fills_st = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.decimals(min_value=D("0.001"), max_value=D(3), places=3),
        st.decimals(min_value=D(1), max_value=D(1000), places=1),
        st.integers(0, 5),  # trade ids repeat: duplicates must be ignored identically
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fills=fills_st)
def test_replay_equals_live_state(tmp_path: Path, fills: list[tuple[int, Decimal, Decimal, int]]) -> None:
    path = tmp_path / "prop.journal"
    path.unlink(missing_ok=True)
    live = CoreState()
    with JournalWriter(path) as writer:
        for n, (side, qty, price, trade) in enumerate(fills):
            record = FillRecord(
                Fill("main", "bybit", "ETH/USDT", side, qty, price, D("0.1"), f"t{trade}", T0 + n)
            )
            writer.append(record, T0 + n, n)
            live.apply(record, T0 + n)
    replayed, torn = replay_journal(path)
    again, _ = replay_journal(path)
    assert torn is None
    assert replayed.shadow.snapshot() == live.shadow.snapshot()
    assert render_state(replayed) == render_state(again)
