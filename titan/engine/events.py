"""Typed events core emits (titan.events.payloads), built from core's state; the bridge formats them."""

from __future__ import annotations

import time as _time
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import msgspec

from titan.events.payloads import (
    DriftEvent,
    ExposureEvent,
    FillEvent,
    OrderReportEvent,
    PositionSnapshot,
    TradeClosedEvent,
    TruthEvent,
)
from titan.messages import VenueReport
from titan.state.decimals import ZERO
from titan.state.fsm import LegState, Transition
from titan.state.records import IntentAccepted
from titan.state.replay import TrackedLeg
from titan.state.shadow import Exposure, Fill, Position, TradeRecord

if TYPE_CHECKING:
    from titan.engine.engine import Engine


_MILLIS: Final = tuple(f"{n:03d}Z" for n in range(1000))
_last_second: list[tuple[int, str]] = [(-1, "")]  # the last second's text (trades come in bursts)


def rfc3339(ms: int) -> str:
    """Epoch ms → ``2026-01-01T00:00:00.000Z`` (UTC)."""
    second = ms // 1000
    last, text = _last_second[0]
    if second != last:
        t = _time.gmtime(second)
        text = f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}."
        _last_second[0] = (second, text)
    return text + _MILLIS[ms % 1000]


def _wall_of(leg: TrackedLeg, state: LegState) -> int | None:
    for t in leg.fsm.transitions:
        if t.to_state is state:
            return t.t_wall_ms
    return None


_SENT: Final = LegState.SENT
_ACKED: Final = LegState.ACKED
_ACCEPTED: Final = LegState.ACCEPTED


def _sent_and_ack(transitions: list[Transition]) -> tuple[int | None, int | None]:
    """Wall times of a leg's first SENT and first ACKED transitions, in one scan (skips the two
    acceptance transitions every leg starts with)."""
    t_sent = t_ack = None
    for t in transitions[2:]:
        to = t.to_state
        if to is _SENT:
            if t_sent is None:
                t_sent = t.t_wall_ms
        elif to is _ACKED and t_ack is None:
            t_ack = t.t_wall_ms
    return t_sent, t_ack


def report_event(
    engine: Engine,
    leg: TrackedLeg,
    accepted: IntentAccepted,
    last_fill: tuple[Decimal, Decimal] | None,
    now_ms: int,
    sent_only: bool = False,
) -> OrderReportEvent:
    """One execution report per leg transition (nats.md §9.2); ``seq`` counts reports, gapless from 1.

    A leg's first two transitions (RECEIVED → VALIDATED → ACCEPTED) happen in one step and are
    reported once, as ACCEPTED (seq 1). States are written as their (str) enum members.
    """
    fsm = leg.fsm
    transitions = fsm.transitions
    n = len(transitions)
    prev: str | None
    if sent_only:
        status, prev, seq = _SENT, _ACCEPTED, n - 2
    else:
        status = fsm.state
        prev = transitions[-1].from_state if n > 2 else None
        seq = n - 1
    state = engine.state
    tracked = state.intents.get(leg.signal_id)
    if tracked is not None:
        intent_status: str = tracked.status
    else:
        done = state.finished.get(leg.signal_id)
        intent_status = done.status if done is not None else "PENDING"
    plan = leg.plan
    if plan is not None:
        tif, order_type, venue_sym, price = plan.tif, plan.order_type, plan.venue_symbol, plan.price
    else:
        tif, order_type, venue_sym, price = "IOC", "MARKET", "", None
    t_sent, t_ack = _sent_and_ack(transitions)
    fee_total = leg.fee_total
    return OrderReportEvent(  # positional: a call with over 15 keywords goes through a dict (~2 µs)
        leg.signal_id,  # signal_id
        fsm.client_order_id,  # client_order_id
        leg.venue,  # venue
        leg.account,  # account
        fsm.symbol,  # symbol
        venue_sym,  # venue_symbol
        leg.leg,  # leg
        "BUY" if leg.side > 0 else "SELL",  # side
        order_type,  # order_type
        "GTC" if tif == "POST_ONLY" else tif,  # time_in_force
        tif == "POST_ONLY",  # post_only
        accepted.reduce_only,  # reduce_only
        price,  # price
        leg.qty,  # quantity
        status,  # status
        prev,  # prev_status
        seq,  # seq
        leg.venue_order_id or None,  # venue_order_id
        None,  # venue_status
        leg.filled_qty,  # filled_qty
        leg.avg_price,  # avg_fill_price
        None if last_fill is None else last_fill[0],  # last_fill_qty
        None if last_fill is None else last_fill[1],  # last_fill_price
        fee_total,  # fee_total
        "USDT" if fee_total else None,  # fee_asset
        None,  # reason_code
        transitions[-1].reason if transitions and not sent_only else None,  # reason
        None,  # venue_error_code
        intent_status,  # intent_status
        accepted.t_signal_ms,  # t_signal
        accepted.t_ingress_ms or None,  # t_ingress
        t_sent,  # t_sent
        t_ack,  # t_ack
        None,  # t_exchange
        now_ms,  # ts
        accepted.correlation_id,  # correlation_id
    )


def report_after_sent(
    sent: OrderReportEvent, leg: TrackedLeg, last_fill: tuple[Decimal, Decimal] | None
) -> OrderReportEvent:
    """The report of the transition that follows a ``sent_only`` report of the same leg in the same
    step: exactly :func:`report_event` (same state, same clock), by replacing what differs."""
    transitions = leg.fsm.transitions
    n = len(transitions)
    last = transitions[-1]
    return msgspec.structs.replace(
        sent,
        status=leg.fsm.state,
        prev_status=last.from_state if n > 2 else None,
        seq=n - 1,
        last_fill_qty=None if last_fill is None else last_fill[0],
        last_fill_price=None if last_fill is None else last_fill[1],
        reason=last.reason,
    )


def fill_event(
    fill: Fill,
    leg: TrackedLeg | None,
    accepted: IntentAccepted | None,
    rep: VenueReport | None,
    now_ms: int,
) -> FillEvent:
    """One event per venue execution (nats.md §9.1); synthetic reconciliation fills too."""
    if leg is not None:
        cum, avg, leaves = leg.filled_qty, leg.avg_price or fill.price, max(leg.qty - leg.filled_qty, ZERO)
        status = "FILLED" if leaves <= 0 else "PARTIALLY_FILLED"
        leg_no, venue_order_id = leg.leg, leg.venue_order_id
        transitions = leg.fsm.transitions
        # transitions[1] is VALIDATED → ACCEPTED for every planned leg (adopted legs have none).
        t_decision = (
            transitions[1].t_wall_ms
            if len(transitions) > 1 and transitions[1].to_state is _ACCEPTED
            else _wall_of(leg, LegState.ACCEPTED) or 0
        )
        t_ack = _sent_and_ack(transitions)[1] or now_ms
    else:
        cum, avg, leaves, status, leg_no, venue_order_id = fill.qty, fill.price, ZERO, "FILLED", 0, ""
        t_decision, t_ack = 0, now_ms
    if rep is not None and rep.venue_order_id:
        venue_order_id = rep.venue_order_id
    return FillEvent(  # positional: a call with over 15 keywords goes through a dict (~2 µs)
        fill.venue,  # venue
        fill.account,  # account
        fill.symbol,  # symbol
        fill.trade_id,  # trade_id
        fill.signal_id,  # signal_id
        fill.client_order_id,  # client_order_id
        venue_order_id,  # venue_order_id
        "BUY" if fill.side > 0 else "SELL",  # side
        fill.price,  # price
        fill.qty,  # qty
        fill.fee,  # fee
        fill.fee_asset,  # fee_currency
        status,  # status
        cum,  # cum_qty
        avg,  # avg_price
        leaves,  # leaves_qty
        rep.is_maker if rep is not None else False,  # is_maker
        leg_no,  # leg
        accepted.t_signal_ms if accepted is not None else 0,  # t_signal
        accepted.t_ingress_ms if accepted is not None else 0,  # t_ingress
        t_decision,  # t_decision
        t_ack,  # t_ack
        fill.ts_ms,  # t_exchange
        now_ms,  # ts
        accepted.correlation_id if accepted is not None else None,  # correlation_id
    )


def trade_event(trade: TradeRecord, now_ms: int, correlation_id: str | None) -> TradeClosedEvent:
    return TradeClosedEvent(  # positional: a call with over 15 keywords goes through a dict (~2 µs)
        trade.trade_id,  # trade_id
        trade.signal_id,  # signal_id
        trade.symbol,  # symbol
        trade.side,  # side
        trade.entry_price,  # entry_price
        trade.exit_price,  # exit_price
        trade.size,  # size
        trade.pnl,  # pnl
        trade.pnl_pct,  # pnl_pct
        trade.fee,  # fee
        trade.fee_asset,  # fee_asset
        rfc3339(trade.opened_at_ms),  # opened_at
        rfc3339(trade.closed_at_ms),  # closed_at
        trade.close_reason,  # close_reason
        trade.venue,  # venue
        trade.partial,  # partial
        now_ms,  # ts
        correlation_id=correlation_id,
    )


def drift_event(
    signal_id: str,
    symbol: str,
    venue: str,
    drift_class: str,
    expected: Decimal,
    actual: Decimal,
    ts_ms: int,
    deviation_bps: Decimal = ZERO,
) -> DriftEvent:
    return DriftEvent(
        signal_id=signal_id,
        symbol=symbol,
        venue=venue,
        drift_class=drift_class,
        expected=expected,
        actual=actual,
        deviation_bps=deviation_bps,
        timestamp=ts_ms,
    )


def exposure_event(e: Exposure) -> ExposureEvent:
    return ExposureEvent(
        net_exposure=e.net_exposure,
        gross_notional=e.gross_notional,
        long_notional=e.long_notional,
        short_notional=e.short_notional,
        position_count=e.position_count,
    )


def position_snapshot(p: Position) -> PositionSnapshot:
    return PositionSnapshot(
        venue=p.venue,
        symbol=p.symbol,
        side=p.side_label,
        size=p.size,
        entry_price=p.entry_price,
        stop_loss=ZERO,
        take_profits=(),
        signal_id=p.signal_id,
        opened_at=rfc3339(p.opened_at_ms),
        regime_state=None,
        phase=None,
        metadata=None,
        realized_pnl=p.realized_pnl,
        unrealized_pnl=p.unrealized_pnl,
        fees_paid=p.fees_paid,
        funding_paid=p.funding_paid,
        last_mark_price=p.last_mark_price,
        last_update_ts=p.last_update_ts,
    )


def truth_event(engine: Engine, now_ms: int) -> TruthEvent:
    positions = sorted(engine.state.shadow.iter_positions(), key=lambda p: (p.account, p.venue, p.symbol))
    return TruthEvent(
        instance=engine.s.instance,
        timestamp=now_ms,
        policy_hash=engine.policy.policy_hash,
        version=engine.s.version,
        venue_positions=tuple(position_snapshot(p) for p in positions),
        armed=engine.control.armed,
        halted=engine.halt_mode.value != "OPEN",
        risk_state=engine.control.effective_state(now_ms).label,
        service=engine.s.service,
    )
