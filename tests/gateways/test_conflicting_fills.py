"""R5: a conflicting duplicate fill (same trade id, another quantity) is dropped with a warning and
told to core once (FILL_CONFLICT); the tracker unit, then a real gateway against the simulator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

import pytest

from tests.gateways.conftest import Rig, on_each_venue, sim_orders
from tests.gateways.test_tracker import COID, fill, sent_tracker
from titan.health import GATEWAY_SLOTS
from titan.messages import FILL, FILL_CONFLICT
from titan.venues.gateway.tracker import OrderTracker
from titan.venues.sim import SimServer

MakeRig = Callable[..., Rig]


def test_conflict_is_one_report_and_one_warning_and_the_first_quantity_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = sent_tracker()
    (first,) = tracker.on_fill(fill(9, "0.3"))
    assert first.kind == FILL
    with caplog.at_level(logging.WARNING, logger="titan.venues.gateway.tracker"):
        assert tracker.on_fill(fill(9, "0.3")) == []  # an exact duplicate: silent
        (conflict,) = tracker.on_fill(fill(9, "0.5"))
        assert tracker.on_fill(fill(9, "0.5")) == []  # the same conflict again: reported once
        (other,) = tracker.on_fill(fill(9, "0.7"))  # another quantity: another conflict
    assert conflict.kind == other.kind == FILL_CONFLICT
    assert (conflict.coid, conflict.venue, conflict.trade_id) == (COID, "bybit", "9")
    assert (conflict.qty, conflict.cum_qty, conflict.price) == ("0.5", "0.3", "100")
    assert conflict.venue_order_id == "42" and conflict.t_gw_out > 0 and conflict.t_order_out == 1
    assert other.qty == "0.7" and other.cum_qty == "0.3"
    order = tracker.get(COID)
    assert order is not None and order.cum_qty == Decimal("0.3")  # as after the first fill
    assert tracker.duplicate_fills == 4 and tracker.conflicting_fills == 2
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2
    assert all("bybit" in line and "trade 9" in line and "qty 0.3 applied" in line for line in lines)
    assert "this one says qty 0.5" in lines[0] and "this one says qty 0.7" in lines[1]
    # The next real execution of the order is still reported normally.
    (nxt,) = tracker.on_fill(fill(10, "0.2"))
    assert nxt.kind == FILL and nxt.cum_qty == "0.5"


def test_conflicting_fill_of_a_forgotten_order_is_still_reported() -> None:
    tracker = OrderTracker("bybit")
    tracker.sent(COID, "BTCUSDT", Decimal("1"), 1, 2, 0)
    tracker.on_fill(fill(1, "1"))  # fully filled: terminal
    tracker.forget_terminal(keep=0)
    assert tracker.get(COID) is None
    (conflict,) = tracker.on_fill(fill(1, "2"))
    assert conflict.kind == FILL_CONFLICT and conflict.coid == COID and conflict.cum_qty == "1"


@pytest.mark.anyio
async def test_R5_conflicting_replay_after_reconnect_is_dropped_warned_and_counted(
    sim: SimServer, make_rig: MakeRig
) -> None:
    """Simulator switch ``replay_fills_qty_factor``: the fills replayed on the next private connection
    carry the same trade ids with twice the quantity."""

    async def case(rig: Rig) -> None:
        venue = rig.venue
        req = rig.order(qty="0.02")
        await rig.until(lambda: rig.filled(req.coid) == Decimal("0.02"))
        fills = rig.reports_for(req.coid, FILL)
        sim.set_faults(venue, replay_fills_on_connect=True, replay_fills_qty_factor=Decimal(2))
        await sim.drop(venue, "private")
        trades = {f.trade_id for f in fills}
        await rig.until(lambda: {c.trade_id for c in rig.reports_for(req.coid, FILL_CONFLICT)} == trades)
        conflicts = rig.reports_for(req.coid, FILL_CONFLICT)
        assert len(conflicts) == len(trades), venue  # one per trade, whatever the venue repeats
        kept = {f.trade_id: Decimal(f.qty) for f in fills}
        for c in conflicts:
            assert Decimal(c.cum_qty) == kept[c.trade_id], venue
            assert Decimal(c.qty) == 2 * kept[c.trade_id], venue
        assert rig.filled(req.coid) == Decimal("0.02"), venue  # never a second FILL
        assert len(rig.reports_for(req.coid, FILL)) == len(fills), venue
        (order,) = [o for o in sim_orders(sim, venue) if o.client_id == req.coid]
        assert order.filled == Decimal("0.02"), venue
        await rig.until(lambda: "conflicting duplicate fill dropped" in rig.log_text())
        await rig.until(
            lambda: rig.board.read(rig.name).counters[GATEWAY_SLOTS["conflicting_fills"]] == len(trades)
        )
        sim.set_faults(venue, replay_fills_on_connect=False, replay_fills_qty_factor=None)

    await on_each_venue(make_rig, sim, case)
