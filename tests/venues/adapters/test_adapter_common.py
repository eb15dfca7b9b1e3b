"""Venue-neutral helpers: decimals, grid, client ids, outcomes, cooldown, clock offset, unknown resolver."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.venues.common.client_id import CLIENT_ID_RULES, ClientIdError, check_client_order_id
from titan.venues.common.clock import ServerClock, server_time_offset_ms
from titan.venues.common.cooldown import VenueCooldown
from titan.venues.common.decimals import (
    DecimalFormatError,
    is_on_grid,
    plain,
    round_price_to_tick,
    round_qty_down,
    to_decimal,
    to_decimal_or_zero,
)
from titan.venues.common.orders import OrderValidationError, to_grid
from titan.venues.common.outcome import (
    ErrorClass,
    Outcome,
    OutcomeKind,
    error,
    retry_after_until_ms,
    transport_failure,
)
from titan.venues.common.resolver import ResolutionStatus, UnknownOrderResolver
from titan.venues.common.types import (
    Credentials,
    HttpResponse,
    Instrument,
    OrderSpec,
    OrderState,
    Side,
    VenueOrderState,
)

NOW_MS = 1_700_000_000_000

decimals = st.decimals(
    min_value=Decimal("0"), max_value=Decimal("1e9"), allow_nan=False, allow_infinity=False, places=12
)
steps = st.sampled_from(
    [Decimal(s) for s in ("1", "0.1", "0.10", "0.001", "0.5", "0.00000001", "25", "1E-8", "1E+1")]
)


# --- decimals --------------------------------------------------------------------------------


@given(qty=decimals, step=steps)
def test_round_qty_down_never_increases_and_lands_on_grid(qty: Decimal, step: Decimal) -> None:
    rounded = round_qty_down(qty, step)
    assert rounded <= qty
    assert qty - rounded < step
    assert is_on_grid(rounded, step)


@given(price=decimals.filter(lambda d: d > 0), tick=steps)
def test_price_rounding_is_passive_and_on_grid(price: Decimal, tick: Decimal) -> None:
    buy = round_price_to_tick(price, tick, Side.BUY)
    sell = round_price_to_tick(price, tick, Side.SELL)
    nearest = round_price_to_tick(price, tick)
    assert buy <= price <= sell
    assert sell - buy <= tick
    assert all(is_on_grid(p, tick) for p in (buy, sell, nearest))
    assert abs(nearest - price) <= tick / 2


@given(value=st.decimals(allow_nan=False, allow_infinity=False))
def test_plain_never_has_exponent_and_round_trips(value: Decimal) -> None:
    text = plain(value)
    assert "E" not in text and "e" not in text
    assert Decimal(text) == value
    assert text == "0" or not text.endswith(".")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("0.0100"), "0.01"),
        (Decimal("1E-8"), "0.00000001"),
        (Decimal("-0"), "0"),
        (Decimal("0E-8"), "0"),
        (Decimal("50000.10"), "50000.1"),
        (Decimal("-2.50"), "-2.5"),
    ],
)
def test_plain_examples(value: Decimal, text: str) -> None:
    assert plain(value) == text


def test_to_decimal_refuses_garbage_and_empty_means_zero_only_where_allowed() -> None:
    assert to_decimal("0.1") == Decimal("0.1")
    assert to_decimal_or_zero("") == 0 and to_decimal_or_zero(None) == 0
    for bad in ("", "abc", "NaN", "Infinity"):
        with pytest.raises(DecimalFormatError):
            to_decimal(bad)
    with pytest.raises(DecimalFormatError):
        plain(Decimal("NaN"))


@pytest.mark.parametrize("step", [Decimal(0), Decimal(-1)])
def test_non_positive_step_is_refused(step: Decimal) -> None:
    with pytest.raises(ValueError):
        round_qty_down(Decimal(1), step)


# --- grid / validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"qty": Decimal("0.0004")}, "rounds to zero"),
        ({"qty": Decimal("-1")}, "positive"),
        ({"qty": Decimal("101")}, "above maximum"),
        ({"price": None}, "needs a positive price"),
        ({"price": Decimal("0.01")}, "rounds to zero"),
        ({"qty": Decimal("0.001"), "price": Decimal("100")}, "notional"),
    ],
)
def test_to_grid_refuses(
    btc_linear: Instrument, limit_buy: OrderSpec, change: dict[str, object], message: str
) -> None:
    with pytest.raises(OrderValidationError, match=message):
        to_grid(msgspec.structs.replace(limit_buy, **change), btc_linear)


def test_to_grid_below_min_qty(btc_linear: Instrument, limit_buy: OrderSpec) -> None:
    instrument = msgspec.structs.replace(btc_linear, min_qty=Decimal("0.01"))
    with pytest.raises(OrderValidationError, match="below minimum"):
        to_grid(msgspec.structs.replace(limit_buy, qty=Decimal("0.009")), instrument)


def test_to_grid_market_has_no_price(btc_linear: Instrument, market_sell: OrderSpec) -> None:
    grid = to_grid(market_sell, btc_linear)
    assert grid.price is None and grid.qty == Decimal("0.5")


# --- client ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", ["bybit", "binance", "mexc"])
def test_section12_client_id_fits_every_venue(venue: str, coid: str) -> None:
    assert len(coid) == 26
    assert check_client_order_id(venue, coid) == coid


@pytest.mark.parametrize(
    ("venue", "max_len"),
    [("bybit", 36), ("binance", 36), ("mexc", 32)],
)
def test_client_id_length_limits(venue: str, max_len: int) -> None:
    assert CLIENT_ID_RULES[venue].accepts("a" * max_len)
    assert not CLIENT_ID_RULES[venue].accepts("a" * (max_len + 1))
    assert not CLIENT_ID_RULES[venue].accepts("")
    with pytest.raises(ClientIdError):
        check_client_order_id(venue, "a" * (max_len + 1))


@pytest.mark.parametrize(
    ("venue", "coid", "ok"),
    [
        ("bybit", "a-b_C9", True),
        ("bybit", "a.b", False),
        ("bybit", "a:b", False),
        ("binance", "a.b:c/d_e-F", True),
        ("binance", "a b", False),
        ("binance", "a+b", False),
        ("mexc", "abcXYZ019", True),
        ("mexc", "a_b", False),
    ],
)
def test_client_id_charsets(venue: str, coid: str, ok: bool) -> None:
    assert CLIENT_ID_RULES[venue].accepts(coid) is ok


# --- outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_class", "kind", "may_exist", "not_placed"),
    [
        (ErrorClass.RATE_LIMITED, OutcomeKind.RATE_LIMITED, False, True),
        (ErrorClass.INSUFFICIENT_BALANCE, OutcomeKind.REJECTED, False, True),
        (ErrorClass.CLOCK_ERROR, OutcomeKind.CLOCK_ERROR, False, True),
        (ErrorClass.DUPLICATE_CLIENT_ID, OutcomeKind.DUPLICATE_CLIENT_ID, True, False),
        (ErrorClass.UNKNOWN, OutcomeKind.UNKNOWN, True, False),
        (ErrorClass.AUTH_ERROR, OutcomeKind.AUTH_ERROR, False, True),
        (ErrorClass.INVALID_REQUEST, OutcomeKind.REJECTED, False, True),
        (ErrorClass.NOT_FOUND, OutcomeKind.NOT_FOUND, False, False),
        (ErrorClass.SERVICE_UNAVAILABLE, OutcomeKind.REJECTED, False, True),
        (ErrorClass.OTHER, OutcomeKind.REJECTED, False, True),
    ],
)
def test_error_class_to_outcome_kind(
    error_class: ErrorClass, kind: OutcomeKind, may_exist: bool, not_placed: bool
) -> None:
    outcome = error(error_class, "c")
    assert outcome.kind is kind and outcome.may_exist is may_exist and outcome.not_placed is not_placed


def test_transport_failures() -> None:
    sent = transport_failure(sent=True, message="read timeout")
    assert sent.kind is OutcomeKind.UNKNOWN and sent.may_exist
    unsent = transport_failure(sent=False, message="connection refused")
    assert unsent.kind is OutcomeKind.FAILED and unsent.not_placed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", NOW_MS + 5000),
        (" 0 ", NOW_MS),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 1_700_000_010_000),
        ("Tue, 14 Nov 2023 22:00:00 GMT", NOW_MS),  # a date in the past never goes backwards
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, expected: int | None) -> None:
    assert retry_after_until_ms(value, NOW_MS) == expected


def test_http_response_header_lookup_is_case_insensitive() -> None:
    response = HttpResponse(200, b"", {"retry-after": "1"})
    assert response.header("Retry-After") == "1" and response.header("X-Other") is None


def test_credentials_repr_hides_secret() -> None:
    assert "s3cr3t" not in repr(Credentials("key", "s3cr3t"))


# --- cooldown (risk-and-state.md §9) ---------------------------------------------------------


def _limited(until: int | None = None, ip_ban: bool = False) -> Outcome:
    return error(ErrorClass.RATE_LIMITED, "x", until_ms=until, ip_ban=ip_ban)


def test_cooldown_uses_venue_time_and_never_shortens() -> None:
    cooldown = VenueCooldown()
    assert cooldown.may_submit(NOW_MS)
    cooldown.on_outcome(_limited(NOW_MS + 7000), NOW_MS)
    assert not cooldown.may_submit(NOW_MS + 6999) and cooldown.may_submit(NOW_MS + 7000)
    assert cooldown.may_cancel(NOW_MS + 1)
    cooldown.on_outcome(_limited(NOW_MS + 100), NOW_MS)
    assert cooldown.until_ms == NOW_MS + 7000


def test_cooldown_default_doubles_to_cap_and_resets_on_ack() -> None:
    cooldown = VenueCooldown(first_ms=2000, max_ms=60_000)
    ends = []
    for _ in range(7):
        cooldown.on_outcome(_limited(), NOW_MS)
        ends.append(cooldown.until_ms - NOW_MS)
    assert ends == [2000, 4000, 8000, 16000, 32000, 60000, 60000]
    cooldown.on_outcome(Outcome(OutcomeKind.ACK), NOW_MS + 60_000)
    cooldown.on_outcome(_limited(), NOW_MS + 60_000)
    assert cooldown.until_ms == NOW_MS + 62_000


def test_ip_ban_stops_cancels_until_it_ends() -> None:
    cooldown = VenueCooldown()
    cooldown.on_outcome(_limited(NOW_MS + 600_000, ip_ban=True), NOW_MS)
    assert not cooldown.may_cancel(NOW_MS + 1) and not cooldown.may_submit(NOW_MS + 1)
    assert cooldown.may_cancel(NOW_MS + 600_000) and cooldown.may_submit(NOW_MS + 600_000)
    assert not cooldown.ip_ban


# --- server clock ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "send", "recv", "offset"),
    [
        (1_000_150, 1_000_000, 1_000_100, 100),
        (999_000, 1_000_000, 1_000_000, -1000),
        (1_001_500, 1_000_000, 1_000_001, 1500),
    ],
)
def test_offset_is_server_minus_local_midpoint(server: int, send: int, recv: int, offset: int) -> None:
    assert server_time_offset_ms(server, send, recv) == offset


def test_server_clock_signs_with_offset_and_refreshes() -> None:
    clock = ServerClock(refresh_interval_ms=30_000)
    assert clock.needs_refresh(0) and clock.now_ms(5) == 5
    sample = clock.record(server_ms=1_001_550, local_send_ms=1_000_000, local_recv_ms=1_000_100)
    assert sample.offset_ms == 1500 and sample.rtt_ms == 100
    assert clock.now_ms(2_000_000) == 2_001_500
    assert not clock.needs_refresh(1_000_100 + 29_999) and clock.needs_refresh(1_000_100 + 30_000)
    clock.mark_stale()  # after -1021 / 10002 / 513
    assert clock.needs_refresh(1_000_101)
    with pytest.raises(ValueError):
        clock.record(0, 10, 5)


# --- unknown-order resolver (R1, R9) ---------------------------------------------------------


def _state(coid: str, state: OrderState = OrderState.ACKED) -> VenueOrderState:
    return VenueOrderState("bybit", "BTCUSDT", coid, "1", state, "New", Decimal(0), Decimal(0))


def test_found_resolves_at_once() -> None:
    resolver = UnknownOrderResolver()
    resolver.start("c1", NOW_MS)
    assert resolver.due(NOW_MS) == ["c1"]
    resolution = resolver.on_found("c1", _state("c1", OrderState.FILLED))
    assert resolution.status is ResolutionStatus.FOUND and resolution.state is not None
    assert "c1" not in resolver and len(resolver) == 0


def test_not_found_is_terminal_only_after_three_probes_over_five_seconds() -> None:
    resolver = UnknownOrderResolver(probes_required=3, min_span_ms=5000, probe_interval_ms=1000)
    resolver.start("c1", NOW_MS)
    # Three quick not-founds are not enough: the span is under 5 s.
    first = resolver.on_not_found("c1", NOW_MS)
    second = resolver.on_not_found("c1", NOW_MS + 1000)
    assert first.status is second.status is ResolutionStatus.PENDING
    assert second.next_probe_at_ms == NOW_MS + 5000  # the last probe waits for the span
    third = resolver.on_not_found("c1", NOW_MS + 2000)
    assert third.status is ResolutionStatus.PENDING and third.not_found_count == 3
    assert resolver.due(NOW_MS + 4999) == [] and resolver.due(NOW_MS + 5000) == ["c1"]
    gone = resolver.on_not_found("c1", NOW_MS + 5000)
    assert gone.status is ResolutionStatus.GONE and gone.not_found_count == 4
    assert "c1" not in resolver


def test_default_schedule_covers_the_span_in_three_probes() -> None:
    resolver = UnknownOrderResolver()
    resolver.start("c1", NOW_MS)
    now = NOW_MS
    statuses = []
    for _ in range(3):
        [due] = resolver.due(now)
        statuses.append(resolver.on_not_found(due, now).status)
        next_at = resolver.next_due_ms()
        now = next_at if next_at is not None else now
    assert statuses == [ResolutionStatus.PENDING, ResolutionStatus.PENDING, ResolutionStatus.GONE]


def test_failed_probes_count_for_nothing_and_found_after_not_found_wins() -> None:
    resolver = UnknownOrderResolver(probes_required=3, min_span_ms=5000, probe_interval_ms=2500)
    resolver.start("c1", NOW_MS)
    resolver.start("c1", NOW_MS + 10)  # idempotent
    resolver.on_not_found("c1", NOW_MS)
    failed = resolver.on_probe_failed("c1", NOW_MS + 2500)
    assert failed.status is ResolutionStatus.PENDING and failed.not_found_count == 1
    resolver.on_not_found("c1", NOW_MS + 5000)
    found = resolver.on_found("c1", _state("c1"))
    assert found.status is ResolutionStatus.FOUND and found.not_found_count == 2


def test_resolver_orders_due_probes_and_rejects_unknown_ids() -> None:
    resolver = UnknownOrderResolver()
    resolver.start("late", NOW_MS + 10)
    resolver.start("early", NOW_MS)
    assert resolver.due(NOW_MS + 10) == ["early", "late"]
    with pytest.raises(KeyError):
        resolver.on_not_found("nope", NOW_MS)
    with pytest.raises(ValueError):
        UnknownOrderResolver(probes_required=0)
