"""Venue failures through the real gateway process: R2, R3, R5, R9, R10, R12, R19, R39, R48."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.gateways.conftest import VENUES, Rig, settle, sim_orders
from titan.venues.sim import SimServer

pytestmark = pytest.mark.anyio


def venue_count(sim: SimServer, venue: str, coid: str) -> int:
    return len([o for o in sim_orders(sim, venue) if o.client_id == coid])


@pytest.mark.parametrize("venue", VENUES)
async def test_R2_retried_leg_and_unknown_5xx_never_place_twice(venue: str, sim: SimServer, make_rig) -> None:
    rig = make_rig(venue, sim)
    await rig.ready()
    sim.set_faults(venue, unknown_5xx_next_orders=1, unknown_5xx_executes=True)
    req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
    await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
    rig.send(req)  # core retries the same leg (same client id): the gateway asks, it does not resend
    await rig.until(lambda: venue_count(sim, venue, req.coid) == 1)
    await settle(0.5)
    assert venue_count(sim, venue, req.coid) == 1
    assert sim.venues[venue].order_requests == 1
    assert "REJECTED" not in rig.kinds(req.coid) and "FAILED" not in rig.kinds(req.coid)


@pytest.mark.parametrize("venue", ["bybit", "binance"])
async def test_R2_duplicate_client_id_after_restart_is_may_exist(
    venue: str, sim: SimServer, make_rig
) -> None:
    rig: Rig = make_rig(venue, sim)
    await rig.ready()
    req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
    await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
    rig.stop()
    rig.received.clear()
    rig.start()  # a fresh gateway knows nothing of the order: the venue's duplicate-id answer must not reject it
    await rig.ready()
    rig.send(req)
    await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
    assert rig.kinds(req.coid) == ["UNKNOWN", "ACK"]
    assert venue_count(sim, venue, req.coid) == 1


@pytest.mark.parametrize("venue", VENUES)
async def test_R3_partial_fill_then_cancel(venue: str, sim: SimServer, make_rig) -> None:
    rig = make_rig(venue, sim)
    await rig.ready()
    sim.set_faults(venue, partial_fill_ratio=Decimal("0.4"))
    req = rig.order(qty="0.01", order_type="LIMIT", price="65001", tif="GTC")  # crosses the ask
    await rig.until(lambda: rig.filled(req.coid) == Decimal("0.004"))
    rig.cancel(req)
    await rig.until(lambda: rig.reports_for(req.coid, "CANCELED"))
    kinds = rig.kinds(req.coid)
    assert kinds.index("CANCELED") > max(i for i, k in enumerate(kinds) if k == "FILL")
    (canceled,) = rig.reports_for(req.coid, "CANCELED")
    assert Decimal(canceled.cum_qty) == Decimal("0.004")
    assert rig.filled(req.coid) == Decimal("0.004")
    assert venue_count(sim, venue, req.coid) == 1  # no automatic re-place of the residual


@pytest.mark.parametrize("venue", VENUES)
async def test_R5_duplicate_fills_reported_once(venue: str, sim: SimServer, make_rig) -> None:
    rig = make_rig(venue, sim)
    await rig.ready()
    sim.set_faults(venue, duplicate_fills=True)
    req = rig.order(qty="0.02")
    await rig.until(lambda: rig.filled(req.coid) == Decimal("0.02"))
    # Reconciliation fetches the same executions again over REST: still reported once.
    rig.reconcile([req.coid])
    await rig.until(lambda: rig.snapshots())
    fills = rig.reports_for(req.coid, "FILL")
    assert len(fills) == len({f.trade_id for f in fills})
    assert rig.filled(req.coid) == Decimal("0.02")


async def test_R9_not_found_is_terminal_only_after_three_probes_over_five_seconds(
    sim: SimServer, make_rig
) -> None:
    rigs: list[Rig] = [make_rig(v, sim, private_stream=False) for v in VENUES]
    await asyncio.gather(*(r.ready() for r in rigs))
    reqs = []
    for rig in rigs:
        sim.set_faults(rig.venue, unknown_5xx_next_orders=1, unknown_5xx_executes=False)
        reqs.append(rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC"))
    for rig, req in zip(rigs, reqs, strict=True):
        await rig.until(lambda r=rig, q=req: r.reports_for(q.coid, "UNKNOWN"))
    # Before the span is covered the leg stays UNKNOWN.
    await settle(2.0)
    for rig, req in zip(rigs, reqs, strict=True):
        assert rig.kinds(req.coid) == ["UNKNOWN"]
    for rig, req in zip(rigs, reqs, strict=True):
        await rig.until(lambda r=rig, q=req: r.reports_for(q.coid, "REJECTED"), timeout=20)
        (rejected,) = rig.reports_for(req.coid, "REJECTED")
        assert rejected.reason_code == "NOT_FOUND"
        assert rejected.t_gw_out - rig.reports_for(req.coid, "UNKNOWN")[0].t_gw_out >= 5_000_000_000
        assert venue_count(sim, rig.venue, req.coid) == 0


@pytest.mark.parametrize("venue", VENUES)
async def test_R10_rate_limit_starts_cooldown_and_denies_at_once(
    venue: str, sim: SimServer, make_rig
) -> None:
    rig = make_rig(venue, sim)
    await rig.ready()
    sim.set_faults(venue, rate_limit_storm=True, storm_retry_after_s=30)
    first = rig.order(qty="0.01")
    await rig.until(lambda: rig.reports_for(first.coid, "REJECTED"))
    assert rig.reports_for(first.coid, "REJECTED")[0].reason_code == "RATE_LIMITED"
    await rig.until(lambda: [s for s in rig.statuses() if s.limited_until_ms > 0])
    requests_before = sim.venues[venue].order_requests
    burst = [rig.order(qty="0.01") for _ in range(10)]
    for req in burst:
        await rig.until(lambda r=req: rig.reports_for(r.coid, "DENIED"))
        assert rig.reports_for(req.coid, "DENIED")[0].reason_code == "VENUE_COOLDOWN"
    await settle(0.3)
    assert sim.venues[venue].order_requests == requests_before  # no retry storm


@pytest.mark.parametrize("venue", VENUES)
async def test_R12_R19_clock_skew_uses_offset_and_clock_error_is_never_resent(venue: str, make_rig) -> None:
    async with SimServer(__import__("tests.gateways.conftest", fromlist=["sim_config"]).sim_config()) as sim:
        from tests.gateways.conftest import quote

        await quote(sim)
        sim.set_faults(venue, clock_skew_ms=1500)
        rig = make_rig(venue, sim)
        await rig.ready()  # REST and private-stream auth signed with the synced clock
        ok = rig.order(qty="0.01")
        await rig.until(lambda: rig.filled(ok.coid) == Decimal("0.01"))
        sim.set_faults(venue, clock_skew_ms=15_000)  # the offset the gateway holds is now wrong
        stale = rig.order(qty="0.01")
        await rig.until(lambda: rig.reports_for(stale.coid, "REJECTED"))
        assert rig.reports_for(stale.coid, "REJECTED")[0].reason_code == "CLOCK_ERROR"
        after = rig.order(qty="0.01")  # resynced before this one
        await rig.until(lambda: rig.filled(after.coid) == Decimal("0.01"))
        assert venue_count(sim, venue, stale.coid) == 0
        rig.close()


async def test_R39_slow_venue_does_not_stall_other_orders(sim: SimServer, make_rig) -> None:
    slow = make_rig("binance", sim, read_timeout_s=5.0)
    fast = make_rig("bybit", sim)
    await asyncio.gather(slow.ready(), fast.ready())
    sim.set_faults("binance", timeout_next_orders=1, hold_ms=3000)
    held = slow.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
    behind = slow.order(qty="0.01")  # same gateway, right behind the held create
    other = fast.order(qty="0.01")
    await fast.until(lambda: fast.filled(other.coid) == Decimal("0.01"))
    await slow.until(lambda: slow.filled(behind.coid) == Decimal("0.01"))
    # Both completed while the first create was still waiting for its HTTP answer.
    slow.drain()
    assert not [r for r in slow.reports_for(held.coid) if r.kind == "UNKNOWN"]


@pytest.mark.parametrize("venue", VENUES)
async def test_R48_stream_drop_during_cancel_resolved_by_query(venue: str, sim: SimServer, make_rig) -> None:
    rig = make_rig(venue, sim)
    await rig.ready()
    req = rig.order(qty="0.01", order_type="LIMIT", price="60000", tif="GTC")
    await rig.until(lambda: rig.reports_for(req.coid, "ACK"))
    await sim.drop(venue, "private")
    rig.cancel(req)
    await rig.until(lambda: rig.reports_for(req.coid, "CANCELED"))
    assert len(rig.reports_for(req.coid, "CANCELED")) == 1
    await rig.until(lambda: rig.statuses(private_stream="RECONNECTED"))
