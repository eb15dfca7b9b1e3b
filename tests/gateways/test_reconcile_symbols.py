"""Reconciliation asks for every symbol core has metadata for; one the venue does not list is skipped."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.gateways.conftest import BTC, Rig, on_each_venue
from titan.venues.sim import SimServer

pytestmark = pytest.mark.anyio


async def test_reconcile_skips_symbols_the_venue_does_not_list(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    async def case(rig: Rig) -> None:
        done = rig.order(qty="0.01")
        await rig.until(lambda: rig.reports_for(done.coid, "FILL"))
        rig.reconcile([], symbols=[BTC, "SOL/USDT"], since_ms=0)  # the simulator lists no SOL/USDT
        await rig.until(lambda: rig.snapshots())
        (snap,) = rig.snapshots()
        assert snap.ok, (rig.venue, snap.error)
        assert [p.symbol for p in snap.positions] == [BTC], rig.venue

    await on_each_venue(make_rig, sim, case)
