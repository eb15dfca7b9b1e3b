"""Venue failures through the real gateway processes: R2, R3, R5, R9, R10, R12, R19, R39, R48."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest

from tests.gateways.conftest import Rig, on_each_venue, quote, settle, sim_config, sim_orders, venue_count
from titan.venues.sim import SimServer

pytestmark = pytest.mark.anyio
MakeRig = Callable[..., Rig]


async def test_R2_retried_leg_and_unknown_5xx_never_place_twice(sim: SimServer, make_rig: MakeRig) -> None:
    async def case(rig: Rig) -> None:
        venue = rig.venue
        sim.set_faults(venue, unknown_5xx_next_orders=1, unknown_5xx_executes=True)
        req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
        await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
        rig.send(req)  # core retries the same leg (same client id): the gateway asks, never resends
        await settle(0.5)
        assert venue_count(sim, venue, req.coid) == 1, venue
        assert sim.venues[venue].order_requests == 1, venue
        assert not {"REJECTED", "FAILED"} & set(rig.kinds(req.coid)), venue

    await on_each_venue(make_rig, sim, case)


async def test_R2_duplicate_client_id_after_restart_is_may_exist(sim: SimServer, make_rig: MakeRig) -> None:
    rig = make_rig("binance", sim)
    await rig.ready()
    req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
    await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
    rig.stop()
    rig.received.clear()
    rig.start()  # a fresh gateway knows nothing of the order; -4116 must not reject it
    await rig.ready()
    rig.send(req)
    await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
    assert rig.kinds(req.coid) == ["UNKNOWN", "ACK"]
    assert venue_count(sim, "binance", req.coid) == 1


async def test_R3_partial_fill_then_cancel(sim: SimServer, make_rig: MakeRig) -> None:
    async def case(rig: Rig) -> None:
        sim.set_faults(rig.venue, partial_fill_ratio=Decimal("0.4"))
        req = rig.order(qty="0.01", order_type="LIMIT", price="65001", tif="GTC")  # crosses the ask
        await rig.until(lambda: rig.filled(req.coid) == Decimal("0.004"))
        rig.cancel(req)
        await rig.until(lambda: rig.reports_for(req.coid, "CANCELED"))
        kinds = rig.kinds(req.coid)
        assert kinds.index("CANCELED") > max(i for i, k in enumerate(kinds) if k == "FILL"), rig.venue
        (canceled,) = rig.reports_for(req.coid, "CANCELED")
        assert Decimal(canceled.cum_qty) == Decimal("0.004"), rig.venue
        assert rig.filled(req.coid) == Decimal("0.004"), rig.venue
        assert venue_count(sim, rig.venue, req.coid) == 1, rig.venue  # no automatic re-place

    await on_each_venue(make_rig, sim, case)


async def test_R5_duplicate_fills_reported_once(sim: SimServer, make_rig: MakeRig) -> None:
    async def case(rig: Rig) -> None:
        sim.set_faults(rig.venue, duplicate_fills=True)
        req = rig.order(qty="0.02")
        await rig.until(lambda: rig.filled(req.coid) == Decimal("0.02"))
        # Reconciliation fetches the same executions again over REST: still reported once.
        rig.reconcile([req.coid])
        await rig.until(lambda: rig.snapshots())
        fills = rig.reports_for(req.coid, "FILL")
        assert len(fills) == len({f.trade_id for f in fills}), rig.venue
        assert rig.filled(req.coid) == Decimal("0.02"), rig.venue
        (order,) = [o for o in sim_orders(sim, rig.venue) if o.client_id == req.coid]
        assert order.status == "FILLED" and order.filled == Decimal("0.02"), rig.venue

    await on_each_venue(make_rig, sim, case)


async def test_R9_not_found_is_terminal_only_after_three_probes_over_five_seconds(
    sim: SimServer, make_rig: MakeRig
) -> None:
    async def case(rig: Rig) -> None:
        sim.set_faults(rig.venue, unknown_5xx_next_orders=1, unknown_5xx_executes=False)
        req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
        await rig.until(lambda: rig.reports_for(req.coid, "UNKNOWN"))
        await settle(2.0)
        assert rig.kinds(req.coid) == ["UNKNOWN"], rig.venue  # span not covered yet: still unknown
        await rig.until(lambda: rig.reports_for(req.coid, "REJECTED"), timeout=20)
        (rejected,) = rig.reports_for(req.coid, "REJECTED")
        assert rejected.reason_code == "NOT_FOUND", rig.venue
        (unknown,) = rig.reports_for(req.coid, "UNKNOWN")
        assert rejected.t_gw_out - unknown.t_gw_out >= 5_000_000_000, rig.venue
        assert venue_count(sim, rig.venue, req.coid) == 0, rig.venue

    await on_each_venue(make_rig, sim, case, private_stream=False)


async def test_R10_rate_limit_starts_cooldown_and_denies_at_once(sim: SimServer, make_rig: MakeRig) -> None:
    async def case(rig: Rig) -> None:
        venue = rig.venue
        sim.set_faults(venue, rate_limit_storm=True, storm_retry_after_s=30)
        first = rig.order(qty="0.01")
        await rig.until(lambda: rig.reports_for(first.coid, "REJECTED"))
        assert rig.reports_for(first.coid, "REJECTED")[0].reason_code == "RATE_LIMITED", venue
        await rig.until(lambda: [s for s in rig.statuses() if s.limited_until_ms > 0])
        requests_before = sim.venues[venue].order_requests
        burst = [rig.order(qty="0.01") for _ in range(10)]
        for req in burst:
            await rig.until(lambda r=req: rig.reports_for(r.coid, "DENIED"))
            assert rig.reports_for(req.coid, "DENIED")[0].reason_code == "VENUE_COOLDOWN", venue
        await settle(0.3)
        assert sim.venues[venue].order_requests == requests_before, venue  # no retry storm

    await on_each_venue(make_rig, sim, case)


async def test_R12_R19_clock_skew_uses_offset_and_clock_error_is_never_resent(make_rig: MakeRig) -> None:
    async with SimServer(sim_config()) as sim:
        await quote(sim)
        for venue in ("bybit", "binance", "mexc"):
            sim.set_faults(venue, clock_skew_ms=1500)

        async def case(rig: Rig) -> None:
            venue = rig.venue
            ok = rig.order(qty="0.01")  # REST and stream auth (ready) signed with the synced clock
            await rig.until(lambda: rig.filled(ok.coid) == Decimal("0.01"))
            sim.set_faults(venue, clock_skew_ms=15_000)  # the offset the gateway holds is now wrong
            stale = rig.order(qty="0.01")
            await rig.until(lambda: rig.reports_for(stale.coid, "REJECTED"))
            assert rig.reports_for(stale.coid, "REJECTED")[0].reason_code == "CLOCK_ERROR", venue
            after = rig.order(qty="0.01")  # resynced before this one
            await rig.until(lambda: rig.filled(after.coid) == Decimal("0.01"))
            assert venue_count(sim, venue, stale.coid) == 0, venue  # never re-signed and resent

        try:
            await on_each_venue(make_rig, sim, case)
        finally:
            for venue in ("bybit", "binance", "mexc"):
                sim.set_faults(venue, clock_skew_ms=0)


async def test_R39_slow_venue_does_not_stall_other_orders(sim: SimServer, make_rig: MakeRig) -> None:
    slow = make_rig("binance", sim, read_timeout_s=3.0)
    fast = make_rig("bybit", sim)
    await asyncio.gather(slow.ready(), fast.ready())
    sim.set_faults("binance", timeout_next_orders=1, hold_ms=1500)
    held = slow.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
    behind = slow.order(qty="0.01")  # same gateway, right behind the held create
    other = fast.order(qty="0.01")
    await fast.until(lambda: fast.filled(other.coid) == Decimal("0.01"))
    await slow.until(lambda: slow.filled(behind.coid) == Decimal("0.01"))
    # Both completed while the first create was still waiting for its HTTP answer.
    assert not slow.reports_for(held.coid, "UNKNOWN")


async def test_R48_stream_drop_during_cancel_resolved_by_query(sim: SimServer, make_rig: MakeRig) -> None:
    async def case(rig: Rig) -> None:
        req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
        await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
        await sim.drop(rig.venue, "private")
        rig.cancel(req)
        await rig.until(lambda: rig.reports_for(req.coid, "CANCELED"))
        assert len(rig.reports_for(req.coid, "CANCELED")) == 1, rig.venue
        await rig.until(lambda: rig.statuses(private_stream="RECONNECTED"))

    await on_each_venue(make_rig, sim, case)
