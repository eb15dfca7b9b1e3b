"""R6 (fetch side): fills missed by the private stream are recovered by reconciliation queries."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from tests.gateways.conftest import BTC, Rig, on_each_venue
from titan.venues.sim import SimServer

pytestmark = pytest.mark.anyio


async def test_R6_fills_missed_without_stream_recovered_by_reconciliation(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    async def case(rig: Rig) -> None:
        first = rig.order(qty="0.01")
        second = rig.order(qty="0.02", side="BUY")
        await rig.until(lambda: all(rig.kinds(r.coid) for r in (first, second)))
        rig.reconcile([first.coid, second.coid], symbols=[BTC], since_ms=0)
        await rig.until(lambda: rig.snapshots())
        assert rig.filled(first.coid) == Decimal("0.01"), rig.venue
        assert rig.filled(second.coid) == Decimal("0.02"), rig.venue
        fills = [r for r in rig.received if getattr(r, "kind", "") == "FILL"]
        assert len(fills) == len({f.trade_id for f in fills}), rig.venue
        (snap,) = rig.snapshots()
        assert snap.ok, (rig.venue, snap.error)
        assert [(p.symbol, Decimal(p.size)) for p in snap.positions] == [(BTC, Decimal("0.03"))], rig.venue
        assert snap.balance is not None and Decimal(snap.balance) > 0, rig.venue
        assert snap.open_orders == [], rig.venue

    await on_each_venue(make_rig, sim, case, private_stream=False)


async def test_reconcile_reports_resting_orders_and_adopts_unknown_coids(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    async def case(rig: Rig) -> None:
        resting = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
        await rig.until(lambda: rig.reports_for(resting.coid, "ACK"))
        rig.stop()
        rig.received.clear()
        rig.start()  # a restarted gateway: core lists its non-terminal coids
        await rig.ready()
        rig.reconcile([resting.coid], symbols=[BTC])
        await rig.until(lambda: rig.snapshots())
        assert rig.kinds(resting.coid) == ["ACK"], rig.venue
        (snap,) = rig.snapshots()
        assert [o.coid for o in snap.open_orders] == [resting.coid], rig.venue
        assert snap.open_orders[0].state == "ACKED", rig.venue

    await on_each_venue(make_rig, sim, case)
