"""Orders through the real gateway process against the simulator: happy path, R1, R2, R4, R30."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.gateways.conftest import VENUES, sim_orders
from titan.venues.sim import SimServer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("venue", VENUES)
async def test_market_order_acks_and_fills_once(venue: str, sim: SimServer, make_rig) -> None:
    rig = make_rig(venue, sim)
    await rig.ready()
    req = rig.order(qty="0.01")
    await rig.until(lambda: rig.filled(req.coid) == Decimal("0.01"))
    fills = rig.reports_for(req.coid, "FILL")
    assert len({f.trade_id for f in fills}) == len(fills)
    assert all(f.venue == venue and f.t_gw_in > 0 for f in fills)
    venue_orders = [o for o in sim_orders(sim, venue) if o.client_id == req.coid]
    assert len(venue_orders) == 1 and venue_orders[0].status == "FILLED"
