"""Router (§11, R16), client order ids (§12, R17) and token buckets (§9, R13)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.risk.buckets import BucketSpec, RequestKind, VenueCooldown, VenueLimiter, full_bucket, try_acquire
from titan.risk.reasons import ReasonCode
from titan.routing.coid import client_order_id, is_our_coid
from titan.routing.router import (
    InstrumentMeta,
    RouteDenial,
    RouteTarget,
    RoutingConfig,
    SourceRouting,
    SplitResult,
    resolve_targets,
    split_quantity,
)

D = Decimal
VENUES = ("bybit", "binance", "mexc")


def r16_instruments(mexc_min_contracts: str = "1") -> dict[str, InstrumentMeta]:
    return {
        "bybit": InstrumentMeta("bybit", "BTC/USDT", D("0.1"), D("0.001"), D("0.001")),
        "binance": InstrumentMeta("binance", "BTC/USDT", D("0.1"), D("0.001"), D("0.001")),
        "mexc": InstrumentMeta(
            "mexc", "BTC/USDT", D("0.1"), D(1), D(mexc_min_contracts), contract_size=D("0.0001")
        ),
    }


R16_CONFIG = RoutingConfig(weights={"bybit": D("0.5"), "binance": D("0.3"), "mexc": D("0.2")})


def test_r16_legs_rounded_to_each_lot_step() -> None:
    targets = resolve_targets(R16_CONFIG, "hunter", None, VENUES)
    assert isinstance(targets, tuple)
    assert [t.venue for t in targets] == ["bybit", "binance", "mexc"]
    results = {repr(split_quantity(D("0.0137"), targets, r16_instruments())) for _ in range(3)}
    assert len(results) == 1  # identical on every run
    result = split_quantity(D("0.0137"), targets, r16_instruments())
    assert isinstance(result, SplitResult)
    assert [(leg.venue, leg.qty, leg.index) for leg in result.legs] == [
        ("bybit", D("0.007"), 0),
        ("binance", D("0.004"), 1),
        ("mexc", D("0.0027"), 2),
    ]
    assert result.unallocated == 0


def test_r16_mexc_minimum_drops_leg_and_residual_walk_reassigns() -> None:
    targets = resolve_targets(R16_CONFIG, "hunter", None, VENUES)
    assert isinstance(targets, tuple)
    result = split_quantity(D("0.0137"), targets, r16_instruments(mexc_min_contracts="30"))
    assert isinstance(result, SplitResult)
    assert [(leg.venue, leg.qty) for leg in result.legs] == [("bybit", D("0.009")), ("binance", D("0.004"))]
    assert result.unallocated == D("0.0007")
    assert result.allocated + result.unallocated == D("0.0137")


@pytest.mark.parametrize(
    ("min_notional", "price", "code"),
    [(D(0), None, ReasonCode.BELOW_MIN_QTY), (D(100), D(50000), ReasonCode.BELOW_MIN_NOTIONAL)],
)
def test_nothing_above_minimums_is_denied(
    min_notional: Decimal, price: Decimal | None, code: ReasonCode
) -> None:
    meta = {"bybit": InstrumentMeta("bybit", "BTC/USDT", D("0.1"), D("0.001"), D("0.001"), min_notional)}
    qty = D("0.0005") if code == ReasonCode.BELOW_MIN_QTY else D("0.001")
    result = split_quantity(qty, (RouteTarget("bybit", D(1)),), meta, price)
    assert result == RouteDenial(code)


def test_reduce_only_caps_at_venue_position() -> None:
    targets = (RouteTarget("bybit", D(1)), RouteTarget("binance", D(1)))
    result = split_quantity(
        D("0.010"), targets, r16_instruments(), caps={"bybit": D("0.002"), "binance": D("0.003")}
    )
    assert isinstance(result, SplitResult)
    assert [(leg.venue, leg.qty) for leg in result.legs] == [("bybit", D("0.002")), ("binance", D("0.003"))]
    assert result.unallocated == D("0.005")


@pytest.mark.parametrize(
    ("config", "source", "exchange", "expected"),
    [
        (RoutingConfig(), "hunter", "BYBIT", ["bybit"]),
        (RoutingConfig(), "scavenger", None, ["bybit"]),  # fanout off: first of bybit, mexc
        (RoutingConfig(fanout=True), "scavenger", None, ["bybit", "mexc"]),
        (RoutingConfig(), "brain", None, ["binance"]),
        (RoutingConfig(weights={"mexc": D(1), "bybit": D(1), "binance": D(2)}), "x", None,
         ["binance", "bybit", "mexc"]),
        (RoutingConfig(per_source={"hunter": SourceRouting(weights={"mexc": D(1)})}), "hunter", None,
         ["mexc"]),
    ],
)  # fmt: skip
def test_targets_deterministic(
    config: RoutingConfig, source: str, exchange: str | None, expected: list[str]
) -> None:
    targets = resolve_targets(config, source, exchange, VENUES)
    assert isinstance(targets, tuple)
    assert [t.venue for t in targets] == expected


def test_unknown_explicit_venue_and_no_route() -> None:
    assert resolve_targets(RoutingConfig(), "hunter", "kraken", VENUES) == RouteDenial(
        ReasonCode.UNKNOWN_VENUE, "kraken"
    )
    assert resolve_targets(RoutingConfig(), "hunter", None, ("mexc",)) == RouteDenial(ReasonCode.NO_ROUTE)


steps_st = st.sampled_from([D("0.001"), D("0.01"), D("0.0001"), D("1"), D("0.005")])


@settings(max_examples=200, deadline=None)
@given(
    qty=st.decimals(min_value=D("0.0001"), max_value=D("1000"), places=4),
    venues=st.lists(st.tuples(steps_st, st.integers(1, 5), st.integers(0, 10)), min_size=1, max_size=4),
)
def test_split_invariants(qty: Decimal, venues: list[tuple[Decimal, int, int]]) -> None:
    names = ["bybit", "binance", "mexc", "paper"][: len(venues)]
    instruments = {
        n: InstrumentMeta(n, "BTC/USDT", D("0.1"), step, step * mult)
        for n, (step, mult, _) in zip(names, venues, strict=True)
    }
    targets = tuple(RouteTarget(n, D(w)) for n, (_, _, w) in zip(names, venues, strict=True))
    first = split_quantity(qty, targets, instruments)
    assert first == split_quantity(qty, targets, instruments)  # same input, same legs
    if isinstance(first, RouteDenial):
        assert first.code == ReasonCode.BELOW_MIN_QTY
        return
    assert first.allocated + first.unallocated == qty
    assert first.unallocated >= 0
    for leg in first.legs:
        meta = instruments[leg.venue]
        assert leg.qty % meta.base_step == 0
        assert leg.qty >= meta.base_min_qty
        assert first.unallocated < meta.base_step


def test_r17_client_ids_within_every_limit() -> None:
    signal_id = "s" * 100 + "é-ünïcode/" + "x" * 18
    assert len(signal_id) == 128
    ids = {client_order_id(signal_id, venue, leg) for leg, venue in enumerate(VENUES)}
    assert len(ids) == 3  # distinct per leg
    assert ids == {client_order_id(signal_id, venue, leg) for leg, venue in enumerate(VENUES)}
    for coid in ids:
        assert len(coid) == 26 and len(coid) <= 32
        assert re.fullmatch(r"[a-z0-9]+", coid)
        assert is_our_coid(coid)
    assert client_order_id("sig-1", "bybit", 0) != client_order_id("sig-1", "bybit", 0, attempt=1)
    assert client_order_id("sig-1", "bybit", 3).endswith("y030")
    with pytest.raises(ValueError, match="venue code"):
        client_order_id("sig-1", "kraken", 0)


def test_r13_throttler_is_deterministic() -> None:
    spec = BucketSpec("create", capacity=10, rate_per_s=10)
    state = full_bucket(spec, now_ns=0)
    burst = [try_acquire(spec, state, 1, now_ns=0) for _ in range(15)]
    assert burst.count(True) == 10 and burst[10:] == [False] * 5
    later = [try_acquire(spec, state, 1, now_ns=100_000_000) for _ in range(2)]
    assert later == [True, False]


def test_limiter_names_the_empty_bucket_and_takes_all_or_nothing() -> None:
    limiter = VenueLimiter("bybit", now_ns=0)
    results = [limiter.try_acquire(RequestKind.CREATE, now_ns=0) for _ in range(12)]
    assert results[:10] == [None] * 10 and results[10:] == ["create", "create"]
    # The IP bucket was charged only for granted requests; cancels have their own bucket.
    assert limiter.states["ip"].level_nt // 10**9 == 590
    assert limiter.try_acquire(RequestKind.CANCEL, now_ns=0) is None


def test_cooldown_backoff_doubles_and_expires() -> None:
    cooldown = VenueCooldown()
    assert cooldown.trigger("mexc", now_ms=0) == 2_000
    assert cooldown.cooling_until("mexc", 1_000) == 2_000
    assert cooldown.trigger("mexc", now_ms=1_000) == 5_000  # doubled
    assert cooldown.cooling_until("mexc", 5_000) is None
    assert cooldown.trigger("bybit", now_ms=0, until_ms=600_000) == 600_000


@settings(max_examples=100, deadline=None)
@given(
    signal_id=st.text(min_size=1, max_size=128),
    venue=st.sampled_from(["bybit", "binance", "mexc", "paper"]),
    leg=st.integers(0, 99),
    attempt=st.integers(0, 35),
)
def test_client_ids_always_fit_every_venue(signal_id: str, venue: str, leg: int, attempt: int) -> None:
    coid = client_order_id(signal_id, venue, leg, attempt)
    assert len(coid) == 26 and re.fullmatch(r"[a-z0-9]{26}", coid) and is_our_coid(coid)
    assert coid == client_order_id(signal_id, venue, leg, attempt)


@settings(max_examples=100, deadline=None)
@given(requests=st.lists(st.tuples(st.integers(0, 300_000_000), st.integers(1, 3)), max_size=60))
def test_bucket_never_grants_more_than_capacity_plus_refill(requests: list[tuple[int, int]]) -> None:
    spec = BucketSpec("create", capacity=10, rate_per_s=10)
    state = full_bucket(spec, now_ns=0)
    now = granted = 0
    for step_ns, n in requests:
        now += step_ns
        if try_acquire(spec, state, n, now):
            granted += n
    # Tokens granted ≤ initial capacity + everything refilled since (10 per second).
    assert granted * 10**9 <= spec.capacity * 10**9 + now * spec.rate_per_s
    assert 0 <= state.level_nt <= spec.capacity * 10**9
