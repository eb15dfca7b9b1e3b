"""The sans-I/O order tracker: one FILL per trade, no ACK after a fill, terminal after its fills."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from titan.messages import VenueReport
from titan.venues.common.types import OrderState, Side, VenueFill, VenueOrderState
from titan.venues.gateway.tracker import OrderTracker

COID = "te0000000000000000000y000"


def fill(trade: int, qty: str, coid: str = COID, order_id: str = "42") -> VenueFill:
    return VenueFill(
        venue="bybit",
        venue_symbol="BTCUSDT",
        trade_id=str(trade),
        venue_order_id=order_id,
        client_order_id=coid,
        side=Side.BUY,
        qty=Decimal(qty),
        price=Decimal("100"),
        fee=Decimal("0.01"),
        fee_asset="USDT",
        is_maker=False,
        exchange_time_ms=1,
    )


def state(kind: OrderState, filled: str, coid: str = COID) -> VenueOrderState:
    return VenueOrderState(
        venue="bybit",
        venue_symbol="BTCUSDT",
        client_order_id=coid,
        venue_order_id="42",
        state=kind,
        venue_status=kind.value,
        filled_qty=Decimal(filled),
        avg_price=Decimal("100"),
        qty=Decimal("1"),
    )


def sent_tracker() -> OrderTracker:
    tracker = OrderTracker("bybit")
    tracker.sent(COID, "BTCUSDT", Decimal("1"), 1, 2, 0)
    return tracker


def test_R4_fill_before_ack_then_late_ack_is_silent() -> None:
    tracker = sent_tracker()
    assert [r.kind for r in tracker.on_fill(fill(1, "1"))] == ["FILL"]
    assert tracker.on_ack(COID, "42") == []
    assert tracker.on_unknown(COID, "TRANSPORT", "timeout") == []


def test_R3_cancel_waits_for_its_fills() -> None:
    tracker = sent_tracker()
    assert [r.kind for r in tracker.on_ack(COID, "42")] == ["ACK"]
    assert tracker.on_state(state(OrderState.CANCELED, "0.4"), now_ms=10) == []  # fills not seen yet
    assert [o.coid for o in tracker.short_of_fills(now_ms=2000, grace_ms=1000)] == [COID]
    out = tracker.on_fill(fill(7, "0.4"))
    assert [r.kind for r in out] == ["FILL", "CANCELED"]
    assert out[1].cum_qty == "0.4"
    assert tracker.short_of_fills(now_ms=5000, grace_ms=1000) == []


def test_binance_trade_without_client_id_attaches_by_venue_order_id() -> None:
    tracker = sent_tracker()
    assert tracker.on_fill(fill(3, "0.5", coid=""), emit_unattributed=False) == []  # venue id unknown yet
    tracker.on_ack(COID, "42")
    (report,) = tracker.on_fill(fill(3, "0.5", coid=""), emit_unattributed=False)
    assert report.coid == COID and report.trade_id == "3"


def test_R5_conflicting_duplicate_dropped_and_counted() -> None:
    tracker = sent_tracker()
    tracker.on_fill(fill(9, "0.3"))
    (conflict,) = tracker.on_fill(fill(9, "0.5"))  # dropped: told to core as FILL_CONFLICT, never a FILL
    assert conflict.kind == "FILL_CONFLICT" and (conflict.qty, conflict.cum_qty) == ("0.5", "0.3")
    assert tracker.duplicate_fills == 1 and tracker.conflicting_fills == 1


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=6),
    order=st.randoms(use_true_random=False),
    dupes=st.lists(st.integers(min_value=0, max_value=5), max_size=6),
)
def test_stream_in_any_order_gives_each_trade_once_and_one_end(
    sizes: list[int], order: object, dupes: list[int]
) -> None:
    import random

    assert isinstance(order, random.Random)
    total = Decimal(sum(sizes)) / 10
    tracker = OrderTracker("bybit")
    tracker.sent(COID, "BTCUSDT", Decimal("10"), 1, 2, 0)
    events: list[VenueFill | VenueOrderState] = [fill(i, str(Decimal(s) / 10)) for i, s in enumerate(sizes)]
    events += [events[d % len(sizes)] for d in dupes]
    events.append(state(OrderState.ACKED, "0"))
    events.append(state(OrderState.CANCELED, str(total)))
    order.shuffle(events)
    reports: list[VenueReport] = [tracker.on_ack(COID, "42")[0]] if order.random() < 0.5 else []
    for event in events:
        if isinstance(event, VenueFill):
            reports += tracker.on_fill(event)
        else:
            reports += tracker.on_state(event, now_ms=0)
    kinds = [r.kind for r in reports]
    fills = [r for r in reports if r.kind == "FILL"]
    assert sorted(int(f.trade_id) for f in fills) == list(range(len(sizes)))
    assert sum(Decimal(f.qty) for f in fills) == total
    assert kinds.count("CANCELED") == 1 and kinds[-1] == "CANCELED"
    assert kinds.count("ACK") <= 1
    if "ACK" in kinds:
        assert kinds.index("ACK") < kinds.index("FILL")
