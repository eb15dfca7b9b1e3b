"""Core reconciles a venue whose gateway restarted (R47, risk-and-state.md §17).

Gateways put their pid in every status and reconciliation snapshot. Core reconciles a venue when its
private stream is "UP" in a gateway process that has not answered a reconciliation yet — a restarted
gateway, which does not know what the killed one had in flight — and lists every non-terminal leg with
its symbol so the gateway can query (and settle) an order it does not track. The start
reconciliation is not doubled: while one is in flight, the gateway that is up answers it.
"""

from __future__ import annotations

from tests.core.fakes import Rig, make_settings
from tests.core_logic.test_core_conflicting_fills import confirmed
from titan.messages import REJECTED, UNKNOWN, ReconcileRequest, ReconcileSnapshot, VenueStatus
from titan.state.fsm import LegState
from titan.state.records import LegTransitionRecord

OLD, NEW = 101, 202  # gateway pids


def status(rig: Rig, pid: int, private_stream: str, limited_until_ms: int = 0) -> None:
    rig.engine.on_report(VenueStatus("bybit", "UP", private_stream, limited_until_ms, "", 0, gateway_pid=pid))


def answer(rig: Rig, pid: int, reason: str) -> None:
    rig.engine.on_report(ReconcileSnapshot("bybit", reason, True, "", [], [], "10000", 0, gateway_pid=pid))


def reasons(rig: Rig) -> list[str]:
    return [m.reason for _, m in rig.out.orders if isinstance(m, ReconcileRequest)]


def last_request(rig: Rig) -> ReconcileRequest:
    *_, req = [m for _, m in rig.out.orders if isinstance(m, ReconcileRequest)]
    return req


def new_rig() -> Rig:
    return Rig(make_settings(venues=("bybit",), initial_cash=None))


def test_a_restarted_gateway_is_reconciled_once_with_each_leg_and_its_symbol() -> None:
    rig = new_rig()
    # The gateway running at core start comes up while the start reconciliation is in flight: it
    # answers that one, no second request.
    status(rig, OLD, "DOWN")
    status(rig, OLD, "UP")
    answer(rig, OLD, "start")
    assert rig.engine.ready and reasons(rig) == ["start"]
    status(rig, OLD, "UP", limited_until_ms=rig.clock.wall + 1000)  # repeated (a cooldown starts)
    status(rig, OLD, "UP")  # and ends
    assert reasons(rig) == ["start"]

    order = confirmed(rig, "restart-1")
    assert order.venue == "bybit"
    rig.report(order, UNKNOWN, reason_code="UNKNOWN")  # 5xx: the venue's answer is unknown
    # The gateway is killed while it probes; the restarted one reports its session, then its stream.
    status(rig, NEW, "DOWN")
    assert reasons(rig) == ["start"]
    status(rig, NEW, "UP")
    assert reasons(rig) == ["start", "restart"]
    req = last_request(rig)
    assert req.coids == [order.coid]
    assert req.coid_symbols == {order.coid: order.symbol} == {order.coid: "BTC/USDT"}
    status(rig, NEW, "UP")  # repeated while it reconciles: no second request
    assert reasons(rig) == ["start", "restart"]

    # The gateway queried it on its symbol; the venue does not know it: the probe rule settles it.
    rig.report(order, REJECTED, reason_code="NOT_FOUND", message="venue does not know this order")
    moves = [
        e.record.to_state
        for e in rig.journal.entries
        if isinstance(e.record, LegTransitionRecord) and e.record.coid == order.coid
    ]
    assert moves[-2:] == [LegState.UNKNOWN, LegState.REJECTED], moves
    answer(rig, NEW, "restart")
    assert not rig.engine.reconciling
    status(rig, NEW, "UP")  # the same gateway again: it answered already
    assert reasons(rig) == ["start", "restart"]

    # A stream reconnect of a running gateway is reconciled as before.
    status(rig, NEW, "DOWN")
    status(rig, NEW, "RECONNECTED")
    assert reasons(rig) == ["start", "restart", "reconnect"]
    assert last_request(rig).coids == []  # nothing open any more


def test_a_gateway_restarted_after_a_core_restart_is_reconciled() -> None:
    """The new core never saw the old gateway's stream come up; it knows who answered its start."""
    rig = new_rig()
    answer(rig, OLD, "start")  # the running gateway answers the (re)started core
    status(rig, OLD, "UP")  # e.g. a cooldown change: the same gateway
    assert reasons(rig) == ["start"]
    status(rig, NEW, "DOWN")
    status(rig, NEW, "UP")
    assert reasons(rig) == ["start", "restart"]


def test_the_start_reconciliation_answered_before_the_stream_is_up_is_not_doubled() -> None:
    rig = new_rig()
    status(rig, OLD, "DOWN")
    answer(rig, OLD, "start")
    status(rig, OLD, "UP")
    assert reasons(rig) == ["start"]


def test_a_status_without_a_pid_an_older_gateway_triggers_nothing() -> None:
    rig = new_rig()
    answer(rig, 0, "start")
    status(rig, 0, "DOWN")
    status(rig, 0, "UP")
    assert reasons(rig) == ["start"]
