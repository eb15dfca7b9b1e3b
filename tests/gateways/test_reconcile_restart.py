"""A restarted gateway reconciles the orders core lists with their symbols (R47, risk-and-state.md §13/§17).

The gateway killed while an order was in flight does not track it after its restart (core sees the
restart by the gateway pid in its statuses and snapshots and reconciles). Core lists each
non-terminal leg with its symbol (``ReconcileRequest.coid_symbols``); the gateway queries it there,
reports what the venue holds and, for an order the venue never placed, runs the not-found probes
(``reconcile.not_found_probes``) until it settles it REJECTED/NOT_FOUND, reported to core — also when
core asks about several symbols (before, such an order was skipped and its leg stayed UNKNOWN).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import msgspec
import pytest

from tests.gateways.conftest import BTC, ETH, Rig, on_each_venue
from titan.messages import CORE_TO_GATEWAY, REJECTED, ReconcileRequest, decoder
from titan.venues.sim import SimServer

CODE = {"bybit": "y", "binance": "b", "mexc": "m"}


def ghost_coid(venue: str) -> str:
    """One of our client ids that was never sent (the venue does not know it)."""
    return f"te{uuid.uuid4().hex[:20]}{CODE[venue]}000"


def reconcile(rig: Rig, coids: list[str], coid_symbols: dict[str, str]) -> None:
    rig.send(
        ReconcileRequest(
            venue=rig.venue,
            reason="restart",
            coids=coids,
            symbols=[BTC, ETH],  # core asks about every symbol it has metadata for
            fills_since_ms=0,
            t_core_out=time.monotonic_ns(),
            coid_symbols=coid_symbols,
        )
    )


@pytest.mark.anyio
async def test_restarted_gateway_settles_a_never_placed_order_by_its_symbol(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    async def case(rig: Rig) -> None:
        resting = rig.order(qty="0.1", order_type="LIMIT", price="3000", tif="GTC", symbol=ETH)
        await rig.until(lambda: rig.reports_for(resting.coid, "ACK"))
        rig.stop()
        rig.received.clear()
        rig.start()  # restarted: it tracks neither order
        await rig.ready()
        ghost = ghost_coid(rig.venue)
        reconcile(rig, [ghost, resting.coid], {ghost: BTC, resting.coid: ETH})
        await rig.until(lambda: rig.snapshots())
        (snap,) = rig.snapshots()
        assert snap.ok, (rig.venue, snap.error)
        # Statuses and snapshots carry the gateway's pid: core sees a restarted gateway by it.
        assert rig.proc is not None
        assert {s.gateway_pid for s in rig.statuses()} == {snap.gateway_pid} == {rig.proc.pid}
        assert rig.kinds(resting.coid) == ["ACK"], rig.venue  # found on its symbol, reported
        assert [o.coid for o in snap.open_orders] == [resting.coid], rig.venue
        # The venue does not know the ghost: the probe rule settles it (>= 5 s), and reports it once.
        (gone,) = await rig.until(lambda: rig.reports_for(ghost), timeout=30)
        assert (gone.kind, gone.reason_code) == (REJECTED, "NOT_FOUND"), (rig.venue, gone)
        assert [r.kind for r in rig.reports_for(ghost)] == [REJECTED], rig.venue
        assert not [o for o in sim.venues[rig.venue].engine.orders.values() if o.client_id == ghost]

    await on_each_venue(make_rig, sim, case)


@pytest.mark.anyio
async def test_a_reconcile_request_without_symbols_still_finds_the_order_on_the_requested_symbols(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    """The fallback (an older core: no ``coid_symbols``): the gateway tries each requested symbol."""

    async def case(rig: Rig) -> None:
        resting = rig.order(qty="0.1", order_type="LIMIT", price="3000", tif="GTC", symbol=ETH)
        await rig.until(lambda: rig.reports_for(resting.coid, "ACK"))
        rig.stop()
        rig.received.clear()
        rig.start()
        await rig.ready()
        reconcile(rig, [resting.coid], {})
        await rig.until(lambda: rig.snapshots())
        assert rig.kinds(resting.coid) == ["ACK"], rig.venue

    await on_each_venue(make_rig, sim, case, venues=("bybit",))


def test_a_reconcile_request_of_an_older_core_decodes_with_no_symbols() -> None:
    """The field was added with a default: a request encoded without it (an older core) decodes."""
    old = msgspec.msgpack.encode(["rec", "bybit", "periodic", ["te1"], [BTC], 0, 1])
    req = decoder(CORE_TO_GATEWAY).decode(old)
    assert isinstance(req, ReconcileRequest)
    assert (req.coids, req.symbols, req.coid_symbols) == (["te1"], [BTC], {})
