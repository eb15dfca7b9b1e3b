"""FastPath PREPARE / CONFIRM / ABORT against the engine (fastpath.md §8–§10), fake clock and outbox."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.fakes import Rig, make_settings
from titan.messages import ACK, REJECTED, UNKNOWN, Abort
from titan.risk.state import HaltMode, HaltState


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_prepare_reply_carries_size_quantity_and_order_type(rig: Rig) -> None:
    fields = rig.prepare(rig.intent("p1", notional="100"))
    assert fields["prepared"] is True and fields["signal_id"] == "p1"
    assert fields["position_size"] == 100.0
    assert fields["quantity"] == "0.002"  # 100 USD at entry_zone.min 50000, lot 0.001
    assert fields["order_type"] in ("LIMIT", "MARKET", "POST_ONLY")


def test_prepare_of_a_confirmed_id_is_a_duplicate(rig: Rig) -> None:
    rig.roundtrip("d1")
    fields = rig.prepare(rig.intent("d1"))
    assert fields["prepared"] is False and fields["reason"] == "DUPLICATE_SIGNAL_ID"


def test_confirm_without_prepare(rig: Rig) -> None:
    fields = rig.confirm("never")
    assert fields == {
        "signal_id": "never",
        "executed": False,
        "rejected": True,
        "reason": "PREPARE_NOT_FOUND",
        "message": "CONFIRM received without prior PREPARE",
    }


def test_confirm_after_ttl_is_stale_and_deletes_the_entry(rig: Rig) -> None:
    rig.prepare(rig.intent("t1"))
    rig.clock.advance_ms(10_001)
    fields = rig.confirm("t1")
    assert fields is not None and fields["reason"] == "STALE_SIGNAL"
    assert fields["max_age_ms"] == 10_000 and fields["age_ms"] >= 10_001
    assert rig.confirm("t1") == {**rig.out.replies[-1].fields, "reason": "PREPARE_NOT_FOUND"}


def test_sweep_removes_expired_prepares(rig: Rig) -> None:
    rig.prepare(rig.intent("sw"))
    rig.clock.advance_ms(15_001)
    rig.engine.on_timer()
    assert "sw" not in rig.engine.prepared
    assert rig.engine.counters.prepared_swept == 1


def test_confirm_when_hard_halted(rig: Rig) -> None:
    rig.prepare(rig.intent("h1"))
    rig.engine.control.set_halt(HaltState(HaltMode.HARD, "test"))
    fields = rig.confirm("h1")
    assert fields is not None and fields["reason"] == "SYSTEM_HALTED" and fields["executed"] is False
    assert rig.out.new_orders() == []


def test_confirm_when_disarmed(rig: Rig) -> None:
    rig.prepare(rig.intent("a1"))
    rig.engine.control.set_armed(False)
    fields = rig.confirm("a1")
    assert fields == {
        "signal_id": "a1",
        "executed": False,
        "rejected": True,
        "reason": "EXECUTION_DISABLED_BY_OPERATOR",
        "master_arm": False,
    }


def test_duplicate_confirm_reports_current_state_and_never_places_again(rig: Rig) -> None:
    first = rig.roundtrip("dup")
    assert first is not None and first["status"] == "FILLED"
    orders = len(rig.out.new_orders())
    again = rig.confirm("dup")
    assert again is not None and again["duplicate"] is True and again["status"] == "FILLED"
    assert again["fill_price"] == first["fill_price"]
    assert len(rig.out.new_orders()) == orders


def test_abort(rig: Rig) -> None:
    rig.prepare(rig.intent("ab"))
    rig.engine.on_command(Abort(conn=1, req=99, signal_id="ab", t_read=0, t_ring=0))
    assert rig.out.replies[-1].fields == {"signal_id": "ab", "aborted": True}
    assert rig.confirm("ab")["reason"] == "PREPARE_NOT_FOUND"  # type: ignore[index]  # reply exists
    rig.roundtrip("ab2")
    rig.engine.on_command(Abort(conn=1, req=100, signal_id="ab2", t_read=0, t_ring=0))
    assert rig.out.replies[-1].fields == {"signal_id": "ab2", "aborted": False, "reason": "ALREADY_CONFIRMED"}


def test_reply_waits_for_first_outcome_then_acked(rig: Rig) -> None:
    rig.prepare(rig.intent("w1"))
    assert rig.confirm("w1") is None  # answered when the leg's first venue outcome arrives
    (order,) = rig.out.new_orders()
    rig.report(order, ACK, venue_order_id="v1")
    fields = rig.out.replies[-1].fields
    assert fields["executed"] is True and fields["status"] == "ACKED" and fields["order_ids"] == [order.coid]
    stages = rig.out.replies[-1].stages
    assert stages.t_core_in and stages.t_order_out and stages.t_report_in


def test_reply_deadline_answers_unknown(rig: Rig) -> None:
    rig.prepare(rig.intent("dl"))
    assert rig.confirm("dl") is None
    rig.clock.advance_ms(749)
    rig.engine.on_timer()
    assert rig.out.replies[-1].fields.get("signal_id") != "dl" or "prepared" in rig.out.replies[-1].fields
    rig.clock.advance_ms(1)
    rig.engine.on_timer()
    assert rig.out.replies[-1].fields["status"] == "UNKNOWN"
    assert rig.out.replies[-1].fields["executed"] is True


def test_unknown_outcome_is_executed_unknown_then_resolves(rig: Rig) -> None:
    rig.prepare(rig.intent("u1"))
    rig.confirm("u1")
    (order,) = rig.out.new_orders()
    rig.report(order, UNKNOWN, message="timeout")
    assert rig.out.replies[-1].fields["status"] == "UNKNOWN"
    assert rig.engine.state.legs[order.coid].fsm.state == "UNKNOWN"
    rig.fill(order)
    assert order.coid not in rig.engine.state.legs  # filled: the intent left memory
    assert rig.engine.state.finished["u1"].status == "EXECUTED"


def test_every_leg_rejected_is_venue_rejected(rig: Rig) -> None:
    rig.prepare(rig.intent("r1"))
    rig.confirm("r1")
    (order,) = rig.out.new_orders()
    rig.report(order, REJECTED, message="insufficient margin", venue_error_code="110007")
    fields = rig.out.replies[-1].fields
    assert fields["executed"] is False and fields["reason"] == "VENUE_REJECTED"
    assert fields["venue_errors"] == ["insufficient margin"]
    rejects = [e for e in rig.out.events if type(e).__name__ == "RejectEvent"]
    assert rejects and rejects[-1].reason == "venue_rejected"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (dict(symbol="DOGEUSDT"), "UNKNOWN_SYMBOL"),
        (dict(notional="1000000"), "MAX_POSITION_NOTIONAL"),
        (dict(policy_hash="ab" * 32), "POLICY_HASH_MISMATCH"),
        (dict(exchange="kraken"), "UNKNOWN_VENUE"),
    ],
)
def test_prepare_runs_the_pre_trade_checks(rig: Rig, mutate: dict[str, Any], code: str) -> None:
    fields = rig.prepare(rig.intent("c1", **mutate))
    assert fields["prepared"] is False and fields["rejected"] is True and fields["reason"] == code
    assert "error" not in fields  # a business outcome: the client resolves normally


def test_prepare_denies_stale_market_data() -> None:
    rig = Rig()
    rig.quotes.stale.add(("sim", "BTC/USDT"))
    fields = rig.prepare(rig.intent("st"))
    assert fields["reason"] == "MARKET_DATA_STALE"


def test_not_ready_engine_answers_engine_not_ready() -> None:
    rig = Rig(make_settings(venues=("bybit",)))
    fields = rig.prepare(rig.intent("nr"))
    assert fields["reason"] == "ENGINE_NOT_READY" and fields["error"] == "ENGINE_NOT_READY"
