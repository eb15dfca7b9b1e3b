"""CONFIRM reusing PREPARE's approval, coalesced exposure, and re-sending a crashed core's outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.core.fakes import MemJournal, Rig
from titan.engine.engine import EXPOSURE_COALESCE_NS
from titan.events.payloads import ExposureEvent, FillEvent, OrderReportEvent, TradeClosedEvent, msg_id
from titan.messages import ACK, CANCELED, REJECTED, OperatorCommand, OrderRequest, VenueStatus
from titan.procs.core import PushedMark, split_at_mark
from titan.risk.policy import RiskState
from titan.state.records import FillRecord, IntentAccepted, LegTransitionRecord


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_confirm_reuses_the_prepare_approval_when_nothing_changed(rig: Rig) -> None:
    rig.prepare(rig.intent("r1"))
    rig.clock.advance_ms(5)
    rig.confirm("r1")
    assert rig.engine.counters.full_rechecks == 0
    assert len(rig.out.new_orders()) == 1


def _fill_another(rig: Rig) -> None:
    rig.roundtrip("other", direction=-1)


def _move_the_book(rig: Rig) -> None:
    rig.quotes.set("sim", "BTC/USDT", "49998", "50002")


def risk_state(state: str) -> OperatorCommand:
    return OperatorCommand(ref=0, kind="RISK_STATE", actor="brain", reason="", args={"state": state},
                           command_id="", t_read=0)  # fmt: skip


def _risk_event(rig: Rig) -> None:
    rig.engine.on_bridge(risk_state("CAUTIOUS"))


def _venue_status(rig: Rig) -> None:
    rig.engine.on_report(VenueStatus("paper", "UP", "UP", 0, "", 0))


def _marks(rig: Rig) -> None:
    rig.clock.advance_ms(5_001)  # the truth timer marks positions
    rig.engine.on_timer()


@pytest.mark.parametrize(
    "change", [_fill_another, _move_the_book, _risk_event, _venue_status, _marks], ids=lambda f: f.__name__
)
def test_anything_the_checks_read_voids_the_approval(rig: Rig, change: Callable[[Rig], None]) -> None:
    rig.prepare(rig.intent("r2"))
    change(rig)
    before = rig.engine.counters.full_rechecks
    rig.confirm("r2")
    assert rig.engine.counters.full_rechecks == before + 1


def test_a_ticker_gone_stale_after_prepare_is_denied_at_confirm(rig: Rig) -> None:
    rig.prepare(rig.intent("r3"))
    rig.quotes.stale.add(("sim", "BTC/USDT"))
    fields = rig.confirm("r3")
    assert fields is not None and fields["reason"] == "MARKET_DATA_STALE"
    assert not rig.out.new_orders()


def test_a_risk_state_change_applies_at_confirm(rig: Rig) -> None:
    rig.prepare(rig.intent("r4"))
    rig.engine.on_bridge(risk_state(RiskState.DEFENSIVE.label))
    fields = rig.confirm("r4")
    assert fields is not None and fields["reason"] == "RISK_STATE_DEFENSIVE"


def test_exposure_after_fills_is_coalesced_and_the_last_state_published(rig: Rig) -> None:
    rig.roundtrip("e1")
    assert len(rig.out.of(ExposureEvent)) == 1  # the first fill of a quiet period: at once
    rig.roundtrip("e2")
    assert len(rig.out.of(ExposureEvent)) == 1  # within the window: due, not yet sent
    assert rig.engine.exposure_dirty
    assert rig.engine.next_deadline_ns() <= rig.engine.next_exposure_ns
    rig.clock.mono += EXPOSURE_COALESCE_NS
    rig.engine.on_timer()
    published = rig.out.of(ExposureEvent)
    assert len(published) == 2 and published[-1].position_count == 1
    assert published[-1].gross_notional == rig.engine.state.shadow.exposure("main").gross_notional


def _live_run() -> tuple[Rig, list[OrderRequest]]:
    rig = Rig()
    rig.roundtrip("a", direction=1)
    rig.prepare(rig.intent("b", direction=-1))
    rig.confirm("b")
    order = rig.out.new_orders()[-1]
    rig.report(order, ACK, venue_order_id="vb")
    rig.fill(order, price="49999")
    return rig, rig.out.new_orders()


@pytest.mark.parametrize("kind", [IntentAccepted, FillRecord, LegTransitionRecord])
def test_resume_sends_again_what_a_crash_may_have_lost(kind: type) -> None:
    live, orders = _live_run()
    entries = live.journal.entries
    # The crash: everything from the last record of this kind on was journaled, its outputs lost.
    cut = max(i for i, e in enumerate(entries) if isinstance(e.record, kind))
    restarted = Rig(journal=MemJournal(), start=False)
    restarted.engine.restore(entries[:cut])
    assert restarted.engine.resume(entries[cut:]) == len(entries) - cut
    again = restarted.out.events
    assert again, "nothing was sent again"
    live_ids = {msg_id(e) for e in live.out.events if not isinstance(e, ExposureEvent)}
    for event in again:
        if isinstance(event, (OrderReportEvent, FillEvent, TradeClosedEvent)):
            assert msg_id(event) in live_ids  # the same Nats-Msg-Id: deduplicated downstream
    if kind is IntentAccepted:
        assert [o.coid for o in restarted.out.new_orders()] == [orders[-1].coid]
    if kind is FillRecord:
        fills = restarted.out.of(FillEvent)
        assert [f.trade_id for f in fills] == [live.out.of(FillEvent)[-1].trade_id]
        assert fills[0].cum_qty == live.out.of(FillEvent)[-1].cum_qty
    assert restarted.engine.state.snapshot() == live.engine.state.snapshot()


def test_resume_of_nothing_sends_nothing() -> None:
    live, _ = _live_run()
    restarted = Rig(journal=MemJournal(), start=False)
    restarted.engine.restore(live.journal.entries)
    assert restarted.engine.resume([]) == 0 and not restarted.out.events and not restarted.out.orders


def test_pushed_mark_survives_reopening_and_splits_the_journal(tmp_path: Path) -> None:
    mark = PushedMark(tmp_path / "core.pushed")
    assert mark.seq == 0
    mark.store(7)
    mark.close()
    reopened = PushedMark(tmp_path / "core.pushed")
    assert reopened.seq == 7
    reopened.close()
    live, _ = _live_run()
    entries = live.journal.entries
    done, tail = split_at_mark(entries, 7)
    assert [e.seq for e in done] == list(range(1, 8)) and done + tail == entries
    assert split_at_mark(entries, 10_000) == (entries, [])


def test_kept_views_equal_a_scan_through_every_kind_of_leg_change() -> None:
    rig = Rig()
    state = rig.engine.state

    def same() -> None:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            assert state.open_intents(symbol) == state.scan_open_intents(symbol)
            assert state.working_signed_qty(symbol) == state.scan_working_signed_qty(symbol)

    for k, outcome in enumerate(["fill", "partial", "ack", "reject", "cancel", "fill", "partial"]):
        sid = f"v{k}"
        rig.prepare(rig.intent(sid, 1 if k % 2 else -1, notional="500"))
        rig.confirm(sid)
        same()
        order = rig.out.new_orders()[-1]
        if outcome == "fill":
            rig.fill(order)
        elif outcome == "partial":
            rig.fill(order, qty="0.001")
        elif outcome == "ack":
            rig.report(order, ACK, venue_order_id="x")
        elif outcome == "reject":
            rig.report(order, REJECTED, message="no")
        else:
            rig.report(order, ACK, venue_order_id="y")
            rig.report(order, CANCELED)
        same()
    assert state.open_intents("BTC/USDT") > 0 and state.working_signed_qty("BTC/USDT") != 0
    rig.engine.on_bridge(
        OperatorCommand(ref=0, kind="HALT", actor="op", reason="t", args={}, command_id="", t_read=0)
    )
    same()  # PENDING_CANCEL for every working leg
    replayed = Rig(journal=MemJournal(), start=False)
    replayed.engine.restore(rig.journal.entries)
    for symbol in ("BTC/USDT", "ETH/USDT"):
        assert replayed.engine.state.working_signed_qty(symbol) == state.working_signed_qty(symbol)
        assert replayed.engine.state.open_intents(symbol) == state.open_intents(symbol)
