"""Reliability cases through core (Core Rig): R3, R26, R28, R32, R34 (reliability-cases.md); R5 is in
test_core_conflicting_fills."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.core.fakes import Rig, make_settings
from tests.core_logic.test_core_conflicting_fills import cash, confirmed, op, position, ready, status_of
from titan.config import load_config
from titan.engine.settings import settings_from_config
from titan.events.payloads import DlqEvent, DriftEvent, OrderReportEvent
from titan.messages import (
    CANCELED,
    CancelRequest,
    ReconcileRequest,
    ReconcileSnapshot,
)
from titan.risk.policy import RiskState
from titan.risk.state import HaltMode
from titan.state.fsm import IntentStatus

D = Decimal


# --- R3: partial fill, then cancel ------------------------------------------------------------


@pytest.mark.parametrize("by", ["venue", "operator_halt"])
def test_R3_partial_fill_then_cancel_keeps_40_percent_and_records_the_residual(by: str) -> None:
    rig = Rig()
    order = confirmed(rig, "r3", notional="1000")  # 0.02 BTC @ 50000
    assert order.order_type == "LIMIT" and D(order.qty) == D("0.02")
    rig.report(order, "ACK", venue_order_id="v-1")
    rig.fill(order, qty="0.008", price="50000", trade="1")  # 40 %
    assert rig.engine.state.legs[order.coid].fsm.state == "PARTIAL_FILL"
    assert status_of(rig, "r3") is IntentStatus.PARTIALLY_FILLED
    if by == "operator_halt":  # a HARD halt cancels working orders; the venue then confirms
        rig.engine.on_bridge(op("HALT"))
        (cancel,) = [m for _, m in rig.out.orders if isinstance(m, CancelRequest)]
        assert cancel.coid == order.coid
    orders_before = len(rig.out.orders)
    rig.report(order, CANCELED, cum_qty="0.008", leaves_qty="0", venue_order_id="v-1")
    assert position(rig) == D("0.008")  # the shadow holds the filled 40 %
    outcome = rig.engine.state.outcome("r3")
    assert outcome is not None and outcome.status is IntentStatus.PARTIALLY_COMPLETED
    assert outcome.filled_qty == D("0.008")
    assert len(rig.out.orders) == orders_before  # no automatic re-place of the 60 %
    assert not rig.out.new_orders()[1:]
    # Reports for each transition, gapless; the last one records the 60 % residual.
    reports = [r for r in rig.out.of(OrderReportEvent) if r.client_order_id == order.coid]
    assert [r.seq for r in reports] == list(range(1, len(reports) + 1))
    expected = ["ACCEPTED", "SENT", "ACKED", "PARTIAL_FILL"]
    expected += ["PENDING_CANCEL", "CANCELED"] if by == "operator_halt" else ["CANCELED"]
    assert [r.status for r in reports] == expected
    last = reports[-1]
    assert last.intent_status == "PARTIALLY_COMPLETED"
    assert last.filled_qty == D("0.008") and last.quantity - last.filled_qty == D("0.012")
    fields = rig.engine.outcome_fields("r3", final=True)
    assert fields["executed"] is True and fields["status"] == "PARTIALLY_FILLED"
    assert D(fields["filled_qty"]) == D("0.008")


# --- R26: no leverage 999 from an unknown equity ------------------------------------------------


def test_R26_paper_from_the_default_config_starts_with_10000_usdt_and_opens_pass() -> None:
    settings = settings_from_config(load_config(None, env={}))
    assert settings.venues == ("paper",) and settings.initial_cash == D(10_000)
    rig = Rig(settings)
    assert cash(rig) == D(10_000)
    rig.engine.on_bridge(op("ARM"))  # disarmed by default (execution.armed_at_start = false)
    fields = rig.roundtrip("paper-open")
    assert fields is not None and fields["executed"] is True, fields


def test_R26_live_venue_before_its_first_wallet_sync_denies_opens_equity_unknown() -> None:
    rig = Rig(make_settings(venues=("bybit",), initial_cash=None))
    ready(rig, {"bybit": None})  # reconciled, but the venue gave no wallet balance
    assert rig.settings.account not in rig.engine.state.shadow.cash
    fields = rig.prepare(rig.intent("live-1"))
    assert fields["prepared"] is False and fields["reason"] == "EQUITY_UNKNOWN", fields
    # The NATS path too: DLQ with the code, no order.
    rig.place(rig.intent("live-2", notional="", size="0.002"))
    (dlq,) = rig.out.of(DlqEvent)
    assert dlq.code == "EQUITY_UNKNOWN" and not rig.out.new_orders()
    # The first wallet sync (the next reconciliation, with a balance) lets opens through.
    rig.clock.advance_ms(rig.settings.reconcile_interval_ms + 1)
    rig.engine.on_timer()
    requests = [m for _, m in rig.out.orders if isinstance(m, ReconcileRequest)]
    assert [r.reason for r in requests] == ["start", "periodic"]
    rig.engine.on_report(ReconcileSnapshot("bybit", "periodic", True, "", [], [], "5000", 0))
    assert cash(rig) == D(5000)
    assert rig.prepare(rig.intent("live-3"))["prepared"] is True


# --- R28: the sizer path places a real size on the lot grid ------------------------------------


@pytest.mark.parametrize(
    ("sizing", "changes", "expected"),
    [
        # fixed_notional 1234 USD at the zone's 49 900: 0.024729… → 0.024 (lot 0.001)
        ("fixed_notional", {"fixed_notional": D(1234)}, "0.024"),
        # legacy: 1 000 000 × 0.02 × (73 / 100 × 0.25) = 3650 USD at 49 900: 0.073146… → 0.073
        ("legacy", {"initial_cash": D(1_000_000)}, "0.073"),
    ],
)
@pytest.mark.parametrize("position_size", ["", "0"])
def test_R28_sizer_quantity_is_rounded_down_to_the_lot_and_never_zero(
    sizing: str, changes: dict[str, Any], expected: str, position_size: str
) -> None:
    rig = Rig(make_settings(sizing=sizing, **changes))
    intent = rig.intent("r28", notional=position_size, zone=("49900", "50100"), confidence=0.73)
    prep = rig.prepare(intent)
    assert prep["prepared"] is True, prep
    notional = D(1234) if sizing == "fixed_notional" else D(3650)
    assert D(str(prep["position_size"])) == notional
    assert D(prep["quantity"]) == D(expected)
    rig.confirm("r28")
    (order,) = rig.out.new_orders()
    assert D(order.qty) == D(expected) > 0  # the order carries the PREPARE size
    assert D(order.qty) % D("0.001") == 0


@pytest.mark.parametrize(
    ("sizing", "changes"),
    [("fixed_notional", {"fixed_notional": D(10)}), ("legacy", {})],  # 10 USD: 0.0002 BTC < one lot
)
def test_R28_sizer_below_one_lot_is_denied_below_min_qty_never_a_zero_order(
    sizing: str, changes: dict[str, Any]
) -> None:
    rig = Rig(make_settings(sizing=sizing, **changes))
    prep = rig.prepare(rig.intent("tiny", notional="", confidence=0.73))
    assert prep["prepared"] is False and prep["reason"] == "BELOW_MIN_QTY", prep
    assert rig.confirm("tiny") is not None and not rig.out.new_orders()


# --- R32: a late fill does not halt the engine ------------------------------------------------


def test_R32_late_and_off_zone_fills_publish_drift_and_trading_continues() -> None:
    rig = Rig()
    assert rig.settings.drift_action == "alert"
    saves = rig.files.saves
    late = confirmed(rig, "late")
    rig.clock.advance_ms(3_000)  # the fill arrives 3 s after t_signal
    rig.fill(late, price="50050")  # inside the zone
    wide = confirmed(rig, "wide")  # zone 50000–50100: a long fill 30 bps above its top
    rig.fill(wide, price="50250.3")
    drifts = rig.out.of(DriftEvent)
    assert [(d.signal_id, d.drift_class) for d in drifts] == [
        ("late", "ClassBLatency"),
        ("wide", "ClassASpread"),
    ]
    assert drifts[0].actual == 3000 and drifts[0].expected == 2000
    assert drifts[1].deviation_bps == D(30)
    assert rig.engine.counters.drift_events == 2
    # alert only: no halt, no risk state change, no flag file written
    assert rig.engine.halt_mode is HaltMode.OPEN and rig.engine.control.armed
    assert rig.engine.control.current_state is RiskState.NORMAL
    assert rig.files.saves == saves and rig.files.halt.state is HaltMode.OPEN
    fields = rig.roundtrip("next")
    assert fields is not None and fields["executed"] is True and fields["status"] == "FILLED", fields


# --- R34: flatten goes to the venue holding the position ----------------------------------------


def test_R34_flatten_sells_only_on_the_venue_holding_the_position() -> None:
    rig = Rig(make_settings(venues=("bybit", "binance")))
    ready(rig, {"bybit": "10000", "binance": "10000"})
    order = confirmed(rig, "on-binance", exchange="binance")
    assert order.venue == "binance"
    rig.fill(order)
    assert position(rig, "binance") == D(order.qty) and position(rig, "bybit") == 0
    n = len(rig.out.new_orders())
    rig.engine.on_bridge(op("FLATTEN", venue="bybit"))  # nothing held there: nothing sent
    assert len(rig.out.new_orders()) == n
    rig.engine.on_bridge(op("FLATTEN"))
    (flat,) = rig.out.new_orders()[n:]
    assert flat.venue == "binance" and flat.side == "SELL" and flat.reduce_only
    assert flat.order_type == "MARKET" and flat.qty == order.qty
    assert not [o for o in rig.out.new_orders() if o.venue == "bybit"]
    rig.fill(flat, price="50000", trade="f")
    assert list(rig.engine.state.shadow.iter_positions()) == []
