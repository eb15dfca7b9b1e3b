"""NATS intake (nats.md §5 rows 0–2, 8–11), operator commands (§10) and reconciliation (§17)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.core.fakes import Rig, make_settings
from titan.events.payloads import (
    DlqEvent,
    DriftEvent,
    RejectEvent,
    ShadowFillEvent,
    TradeClosedEvent,
    TruthEvent,
)
from titan.messages import (
    ACK,
    CancelRequest,
    IntakeDone,
    OperatorCommand,
    OrderRequest,
    ReconcileRequest,
    ReconcileSnapshot,
    VenueOrderSnapshot,
    VenuePositionSnapshot,
)
from titan.risk.state import HaltMode
from titan.state.records import IntentAccepted, IntentDenied, PolicyRecord, RiskRecord


def op(kind: str, ref: int = 7, **args: Any) -> OperatorCommand:
    return OperatorCommand(
        ref=ref, kind=kind, actor="ops", reason="test", args=args, command_id=f"cmd{ref}", t_read=0
    )


def nats_intent(rig: Rig, sid: str, size: str = "0.002", **kw: Any) -> Any:
    intent = rig.intent(sid, notional="", **kw)
    return intent.__class__(**{**{f: getattr(intent, f) for f in intent.__struct_fields__}, "size": size})


def test_accepted_intent_is_journaled_before_intake_done_and_orders() -> None:
    rig = Rig()
    before = len(rig.journal.entries)
    rig.out.trace.clear()
    rig.place(nats_intent(rig, "n1"))
    accepted_at = next(i for i, e in enumerate(rig.journal.entries) if isinstance(e.record, IntentAccepted))
    assert accepted_at >= before
    assert rig.out.trace and all(n > accepted_at for _, n in rig.out.trace)  # record first, then out
    done = rig.out.of(IntakeDone)
    assert [(d.ref, d.outcome) for d in done] == [(1, "accepted")]
    assert len(rig.out.new_orders()) == 1 and rig.out.new_orders()[0].qty == "0.002"


def test_redelivery_is_absorbed_by_row_0() -> None:
    rig = Rig()
    rig.place(nats_intent(rig, "n2"), ref=1, ids=("msg-1",))
    rig.place(nats_intent(rig, "n2"), ref=2, ids=("msg-1",))
    assert [d.outcome for d in rig.out.of(IntakeDone)] == ["accepted", "duplicate"]
    assert len(rig.out.new_orders()) == 1


@pytest.mark.parametrize(
    ("setup", "reason", "dlq"),
    [
        ("disarm", "system_disarmed", None),
        ("halt", "system_halted", None),
        ("hash", "policy_hash_mismatch", "Policy Hash mismatch: exp "),
        ("dup", "duplicate_signal_id", "Invalid intent: Duplicate signal_id n3"),
        ("risk", "risk_rejected", "❌ RISK REJECTION: Symbol 'XRP/USDT' not in whitelist"),
        ("expired", "intent_expired", "Intent EXPIRED: "),
    ],
)
def test_refusals_publish_reject_and_dlq(setup: str, reason: str, dlq: str | None) -> None:
    rig = Rig()
    kw: dict[str, Any] = {}
    if setup == "disarm":
        rig.engine.on_bridge(op("DISARM", ref=0))
    elif setup == "halt":
        rig.engine.on_bridge(op("HALT", ref=0))
    elif setup == "hash":
        kw["policy_hash"] = "00" * 32
    elif setup == "dup":
        rig.place(nats_intent(rig, "n3"), ref=9, ids=("other",))
    elif setup == "risk":
        kw["symbol"] = "XRPUSDT"
        rig.engine.s.instruments["XRP/USDT"] = rig.engine.s.instruments["BTC/USDT"]
        rig.quotes.set("sim", "XRP/USDT", "0.5", "0.5001")
    intent = nats_intent(rig, "n3", **kw)
    if setup == "expired":
        rig.clock.advance_ms(6_000)
    rig.place(intent, ref=5, ids=("fresh",))
    rejects = rig.out.of(RejectEvent)
    assert rejects[-1].reason == reason and rejects[-1].intent_id == "n3"
    dlqs = rig.out.of(DlqEvent)
    if dlq is None:
        assert not dlqs
    else:
        assert dlqs[-1].reason.startswith(dlq)
    assert rig.out.of(IntakeDone)[-1] == IntakeDone(5, "rejected")
    assert isinstance(rig.journal.entries[-1].record, IntentDenied)
    assert rig.journal.entries[-1].record.dedupe_ids == ("fresh",)


def test_arm_disarm_halt_are_persisted_and_journaled() -> None:
    rig = Rig()
    rig.engine.on_bridge(op("DISARM"))
    assert rig.files.armed is False and rig.engine.control.armed is False
    rig.engine.on_bridge(op("SOFT_HALT"))
    assert rig.files.halt.state is HaltMode.SOFT
    rig.engine.on_bridge(op("RESUME"))
    rig.engine.on_bridge(op("ARM"))
    assert rig.files.armed is True and rig.files.halt.state is HaltMode.OPEN
    risk = [e.record for e in rig.journal.entries if isinstance(e.record, RiskRecord)]
    assert [r.state.armed for r in risk][-4:] == [False, False, False, True]


def test_hard_halt_cancels_working_orders() -> None:
    rig = Rig()
    rig.prepare(rig.intent("w"))
    rig.confirm("w")
    (order,) = rig.out.new_orders()
    rig.report(order, ACK, venue_order_id="v")
    rig.engine.on_bridge(op("HALT"))
    cancels = [m for _, m in rig.out.orders if isinstance(m, CancelRequest)]
    assert [c.coid for c in cancels] == [order.coid]
    assert rig.engine.state.legs[order.coid].fsm.state == "PENDING_CANCEL"


def test_flatten_sells_on_the_venue_holding_the_position_and_closes_the_trade() -> None:
    rig = Rig()
    rig.roundtrip("long1")
    rig.engine.on_bridge(op("HALT", ref=0))  # flatten bypasses halt and arm
    rig.engine.on_bridge(op("DISARM", ref=0))
    rig.engine.on_bridge(op("FLATTEN", ref=3))
    order: OrderRequest = rig.out.new_orders()[-1]
    assert order.signal_id == "flatten:cmd3:paper:BTC/USDT" and order.side == "SELL"
    assert order.reduce_only and order.order_type == "MARKET" and order.qty == "0.002"
    rig.fill(order, price="50011", fee="0")
    (trade,) = rig.out.of(TradeClosedEvent)
    assert trade.close_reason == "FLATTEN" and trade.pnl == Decimal("0.020") and not trade.partial
    assert list(rig.engine.state.shadow.iter_positions()) == []


def test_policy_update_changes_the_hash() -> None:
    rig = Rig()
    before = rig.engine.policy.policy_hash
    doc = {
        "maxPositionNotional": 10,
        "maxAccountLeverage": 1,
        "maxDailyLoss": -1,
        "maxOpenOrdersPerSymbol": 1,
        "symbolWhitelist": ["BTC/USDT"],
    }
    rig.engine.on_bridge(op("POLICY", policy={"timestamp": 1, "policy": doc, "source": "brain"}))
    assert rig.engine.policy.policy_hash != before
    assert isinstance(rig.journal.entries[-1].record, PolicyRecord)
    fields = rig.prepare(rig.intent("big"))
    assert fields["reason"] == "MAX_POSITION_NOTIONAL"


def test_risk_state_defensive_denies_opens() -> None:
    rig = Rig()
    rig.engine.on_bridge(op("RISK_STATE", ref=0, state="Defensive"))
    assert rig.prepare(rig.intent("x"))["reason"] == "RISK_STATE_DEFENSIVE"


def test_truth_snapshot_at_start_and_every_5s() -> None:
    rig = Rig()
    assert len(rig.out.of(TruthEvent)) == 1
    rig.clock.advance_ms(5_000)
    rig.engine.on_timer()
    truths = rig.out.of(TruthEvent)
    assert len(truths) == 2 and truths[-1].policy_hash == rig.engine.policy.policy_hash and truths[-1].armed


def test_weighted_routing_splits_into_legs_per_venue() -> None:
    settings = make_settings(
        venues=("binance", "bybit"), weights={"bybit": Decimal(2), "binance": Decimal(1)}
    )
    rig = Rig(settings)
    requests = [m for _, m in rig.out.orders if isinstance(m, ReconcileRequest)]
    assert sorted(r.venue for r in requests) == ["binance", "bybit"]
    for venue in ("binance", "bybit"):
        rig.engine.on_report(ReconcileSnapshot(venue, "start", True, "", [], [], None, 0))
    assert rig.engine.ready
    fields = rig.prepare(rig.intent("multi", notional="500"))  # 0.01 BTC
    assert fields["prepared"] is True
    rig.confirm("multi")
    legs = {o.venue: o.qty for o in rig.out.new_orders()}
    assert legs == {"bybit": "0.007", "binance": "0.003"}  # floors 0.006/0.003, residual lot to bybit (first)
    assert len({o.coid for o in rig.out.new_orders()}) == 2


def test_R7_R8_reconciliation_gates_readiness_corrects_positions_and_adopts_our_orders() -> None:
    """R7: the venue's position (no fill history) is adopted with a ClassPPosition drift and the
    engine starts; R8: our resting order is adopted, the foreign one reported and left alone."""
    rig = Rig(make_settings(venues=("bybit",)))
    assert not rig.engine.ready
    snap = ReconcileSnapshot(
        "bybit",
        "start",
        True,
        "",
        [
            VenueOrderSnapshot("te" + "a" * 20 + "y000", "1", "BTC/USDT", "BUY", "0.1", "1", "0", "ACKED"),
            VenueOrderSnapshot("foreign-1", "2", "BTC/USDT", "BUY", "0.1", "1", "0", "ACKED"),
        ],
        [VenuePositionSnapshot("BTC/USDT", "-0.5", "48000", "50000")],
        "12345.5",
        0,
    )
    rig.engine.on_report(snap)
    assert rig.engine.ready
    pos = rig.engine.state.shadow.positions[("main", "bybit", "BTC/USDT")]
    assert pos.signed_size == Decimal("-0.5") and pos.entry_price == Decimal(48000)
    assert rig.engine.state.shadow.cash["main"] == Decimal("12345.5")
    assert ("te" + "a" * 20 + "y000") in rig.engine.state.legs
    assert rig.engine.counters.foreign_orders == 1
    assert not [o for o in rig.out.new_orders() if getattr(o, "coid", "") == "foreign-1"]  # never cancelled
    drift = rig.out.of(DriftEvent)
    assert drift and drift[-1].drift_class == "ClassPPosition"


def test_reconcile_start_timeout_is_fatal() -> None:
    rig = Rig(make_settings(venues=("bybit",), reconcile_start_timeout_ms=1_000))
    rig.clock.advance_ms(1_001)
    rig.engine.on_timer()
    assert rig.engine.fatal is not None


@pytest.mark.parametrize("direction", [1, -1])
def test_nats_intent_emits_its_shadow_fill_at_the_touch(direction: int) -> None:
    """nats.md §9.3: one shadow fill per processed intent, on the NATS path too."""
    rig = Rig()
    rig.place(nats_intent(rig, f"sf{direction}", direction=direction))
    [shadow] = rig.out.of(ShadowFillEvent)
    assert shadow.signal_id == f"sf{direction}" and shadow.direction == direction
    assert shadow.size == Decimal("0.002")
    assert shadow.best_ask > shadow.best_bid > 0
