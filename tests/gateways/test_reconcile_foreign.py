"""R8 through a real gateway on the venue simulator: foreign orders and per-symbol corrections.

A foreign order (no client id of our shape, titan.routing.coid) found open at reconciliation is
reported in the snapshot and left alone by default; with ``reconcile.cancel_foreign = true`` it is
cancelled at the venue and reported as the venue shows it afterwards. Our own resting order is
never touched. And the real gateway's snapshots, fed to core's logic, correct a position mismatch
on one symbol only: the other symbol gets no synthetic fill and no drift report.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from tests.core.fakes import Rig as CoreRig
from tests.core.fakes import make_settings
from tests.gateways.conftest import BTC, ETH, Rig, on_each_venue, settle
from titan.events.payloads import DriftEvent
from titan.messages import ReconcileRequest, ReconcileSnapshot
from titan.routing.coid import client_order_id, is_our_coid
from titan.state.records import FillRecord
from titan.venues.sim import SimServer
from titan.venues.sim.engine import NewOrder, Order

pytestmark = pytest.mark.anyio

CANCEL_FOREIGN = "[reconcile]\ncancel_foreign = true\n"


def place_foreign(sim: SimServer, venue: str, client_id: str, price: str) -> Order:
    """An order someone else placed on our account (a person on the venue's UI, another bot)."""
    account = next(a for a in sim.cfg.accounts if a.venue == venue)
    engine = sim.venues[venue].engine
    order = engine.place(
        NewOrder(
            api_key=account.api_key,
            symbol=BTC,
            side="BUY",
            type="LIMIT",
            tif="GTC",
            qty=Decimal("0.01"),
            price=Decimal(price),
            reduce_only=False,
            client_id=client_id,
        )
    )
    assert isinstance(order, Order), order
    engine.execute(order.order_id)  # below the ask: rests
    return order


def open_at_venue(sim: SimServer, venue: str, order: Order) -> bool:
    return sim.venues[venue].engine.orders[order.order_id].is_open


async def rest_our_order(rig: Rig, name: str) -> str:
    coid = client_order_id(f"{name}-{rig.venue}", rig.venue, 0)
    assert is_our_coid(coid)
    rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC", coid=coid)
    await rig.until(lambda: rig.reports_for(coid, "ACK"))
    return coid


async def restart_and_reconcile(rig: Rig, coids: list[str]) -> ReconcileSnapshot:
    """A restarted gateway (it knows nothing) reconciles what core lists."""
    rig.stop()
    rig.received.clear()
    rig.start()
    await rig.ready()
    rig.reconcile(coids, symbols=[BTC])
    (snap,) = await rig.until(lambda: rig.snapshots())
    assert snap.ok, (rig.venue, snap.error)
    return snap


async def test_R8_foreign_orders_are_reported_and_left_alone_by_default(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    async def case(rig: Rig) -> None:
        ours = await rest_our_order(rig, "keep")
        foreign = place_foreign(sim, rig.venue, f"manual{rig.venue}1", "59000.0")
        snap = await restart_and_reconcile(rig, [ours])
        states = {o.coid: o.state for o in snap.open_orders}
        assert states == {ours: "ACKED", f"manual{rig.venue}1": "ACKED"}, (rig.venue, states)
        await settle(0.5)  # nothing is sent after the snapshot either
        assert open_at_venue(sim, rig.venue, foreign), rig.venue
        assert "left alone (reconcile.cancel_foreign = false)" in rig.log_text(), rig.venue

    await on_each_venue(make_rig, sim, case)


async def test_R8_cancel_foreign_cancels_them_at_the_venue_and_reports_them(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    async def case(rig: Rig) -> None:
        ours = await rest_our_order(rig, "mine")
        foreign = place_foreign(sim, rig.venue, f"bot{rig.venue}7", "59000.0")
        snap = await restart_and_reconcile(rig, [ours])
        states = {o.coid: o.state for o in snap.open_orders}
        # Reported as the venue shows it after the cancel; ours untouched.
        assert states == {ours: "ACKED", f"bot{rig.venue}7": "CANCELED"}, (rig.venue, states)
        assert not open_at_venue(sim, rig.venue, foreign), rig.venue
        ours_at_venue = [o for o in sim.venues[rig.venue].engine.orders.values() if o.client_id == ours]
        assert [o.is_open for o in ours_at_venue] == [True], rig.venue
        assert f"foreign open order bot{rig.venue}7" in rig.log_text(), rig.venue
        assert "cancelled (reconcile.cancel_foreign = true)" in rig.log_text(), rig.venue

    await on_each_venue(make_rig, sim, case, extra=CANCEL_FOREIGN)


async def test_R8_foreign_order_without_a_client_id_is_reported_not_cancelled(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    """Orders are cancelled by client id only: one without is reported and left (with the switch on)."""

    async def case(rig: Rig) -> None:
        anonymous = place_foreign(sim, rig.venue, "", "58000.0")
        snap = await restart_and_reconcile(rig, [])
        assert [(o.coid, o.state) for o in snap.open_orders] == [("", "ACKED")], rig.venue
        assert snap.open_orders[0].venue_order_id == anonymous.order_id, rig.venue
        assert open_at_venue(sim, rig.venue, anonymous), rig.venue
        assert "has no client id: cannot cancel, left alone" in rig.log_text(), rig.venue

    await on_each_venue(make_rig, sim, case, extra=CANCEL_FOREIGN)


async def test_R8_a_mismatch_is_corrected_only_for_its_symbol(
    sim: SimServer, make_rig: Callable[..., Rig]
) -> None:
    """Real gateway snapshots into core's logic: the venue's ETH position changes, BTC does not."""
    rig = make_rig("bybit", sim)
    await rig.ready()
    for symbol, qty in ((BTC, "0.01"), (ETH, "0.1")):
        done = rig.order(qty=qty, symbol=symbol)
        await rig.until(lambda done=done: rig.reports_for(done.coid, "FILL"))

    async def snapshot() -> ReconcileSnapshot:
        rig.received.clear()
        rig.reconcile([], symbols=[BTC, ETH])
        (snap,) = await rig.until(lambda: rig.snapshots())
        assert snap.ok, snap.error
        return snap

    core = CoreRig(make_settings(venues=("bybit",)))
    core.engine.on_report(await snapshot())  # start: the venue's positions adopted
    assert core.engine.ready
    shadow = core.engine.state.shadow.positions
    assert shadow[("main", "bybit", BTC)].signed_size == Decimal("0.01")
    assert shadow[("main", "bybit", ETH)].signed_size == Decimal("0.1")
    btc_before = shadow[("main", "bybit", BTC)]

    # ETH changes at the venue behind core's back (a fill core never saw); BTC does not.
    done = rig.order(qty="0.1", symbol=ETH, coid="manualethbuy1")
    await rig.until(lambda: rig.reports_for(done.coid, "FILL"))

    journaled = len(core.journal.entries)
    drifts = len(core.out.of(DriftEvent))
    core.clock.advance_ms(core.settings.reconcile_interval_ms)
    core.engine.on_timer()  # periodic reconciliation
    (request,) = [m for _, m in core.out.orders if isinstance(m, ReconcileRequest) and m.reason == "periodic"]
    assert request.venue == "bybit"
    core.engine.on_report(await snapshot())

    assert shadow[("main", "bybit", ETH)].signed_size == Decimal("0.2")
    assert shadow[("main", "bybit", BTC)] == btc_before  # untouched
    corrections = [
        e.record.fill for e in core.journal.entries[journaled:] if isinstance(e.record, FillRecord)
    ]
    assert corrections and {f.symbol for f in corrections} == {ETH}
    assert all(f.source == "RECONCILIATION" for f in corrections)
    new_drifts = core.out.of(DriftEvent)[drifts:]
    assert [(d.symbol, d.drift_class) for d in new_drifts] == [(ETH, "ClassPPosition")]


async def test_not_found_probes_is_honoured(sim: SimServer, make_rig: Callable[..., Rig]) -> None:
    """reconcile.not_found_probes = 5: an order the venue never got is given up only after five
    "not found" answers (2.5 s apart: ≥ 10 s), not after the default three (≥ 5 s)."""
    rig = make_rig("bybit", sim, private_stream=False, extra="[reconcile]\nnot_found_probes = 5\n")
    await rig.ready()
    sim.set_faults("bybit", unknown_5xx_next_orders=1, unknown_5xx_executes=False)
    req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
    await rig.until(lambda: rig.reports_for(req.coid, "UNKNOWN"))
    await rig.until(lambda: rig.reports_for(req.coid, "REJECTED"), timeout=30)
    (unknown,) = rig.reports_for(req.coid, "UNKNOWN")
    (rejected,) = rig.reports_for(req.coid, "REJECTED")
    assert rejected.reason_code == "NOT_FOUND"
    assert rejected.t_gw_out - unknown.t_gw_out >= 10_000_000_000
