"""Fast paths of event formatting give exactly what the reference code gives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.events import subjects
from titan.events.payloads import (
    FillEvent,
    OrderReportEvent,
    RejectEvent,
    plain,
    publications,
    text_publications,
    text_union,
)
from titan.messages import CORE_TO_BRIDGE, IntakeDone, decoder, encoder


def reference_plain(value: Decimal) -> str:
    """The original plain(): format 'f', then trailing fractional zeros stripped."""
    if not value.is_finite():
        raise ValueError(f"non-finite decimal {value}")
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_plain_matches_the_reference(value: Decimal) -> None:
    assert plain(value) == reference_plain(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50000", "50000"),
        ("0.100", "0.1"),
        ("-0", "0"),
        ("-0.000", "0"),
        ("0E-8", "0"),
        ("1E+3", "1000"),
        ("1.2300E-7", "0.000000123"),
        ("-12.50", "-12.5"),
        ("100", "100"),
    ],
)
def test_plain_examples(text: str, expected: str) -> None:
    assert plain(Decimal(text)) == expected


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "Infinity", "sNaN"])
def test_plain_refuses_non_finite(text: str) -> None:
    with pytest.raises(ValueError):
        plain(Decimal(text))


def test_cached_subjects_are_built_and_validated_like_before() -> None:
    for _ in range(2):  # the second call comes from the cache
        assert (
            subjects.fill_subject("Paper", "BTC/USDT", "main")
            == "titan.evt.execution.fill.v1.paper.main.BTC_USDT"
        )
        assert (
            subjects.report_subject("paper", "ETH/USDT", "")
            == "titan.evt.execution.report.v1.paper.main.ETH_USDT"
        )
        assert subjects.shadow_fill_subject("BTC/USDT") == "titan.evt.execution.shadow_fill.v1.BTC_USDT"
    for _ in range(2):  # an invalid token is refused every time (never cached)
        with pytest.raises(subjects.SubjectError):
            subjects.fill_subject("paper", "BTC USDT", "main")
        with pytest.raises(subjects.SubjectError):
            subjects.shadow_fill_subject("BTC.USDT")


decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [Decimal(t) for t in ("0", "-0", "0.000", "0E-8", "1E+3", "50010.50", "-1.2300E-7", "7")]
    ),
)
optional_decimals = st.none() | decimals
ints = st.integers(0, 2**62)
names = st.sampled_from(["paper", "bybit", "Binance"])
symbols = st.sampled_from(["BTC/USDT", "ETHUSDT", "SOL/USDC"])
words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
optional_words = st.none() | words

fills = st.builds(
    FillEvent,
    venue=names,
    account=st.sampled_from(["main", "alt"]),
    symbol=symbols,
    trade_id=st.text("abc123-", min_size=1, max_size=8),
    signal_id=words,
    client_order_id=words,
    venue_order_id=words,
    side=st.sampled_from(["BUY", "SELL"]),
    price=decimals,
    qty=decimals,
    fee=decimals,
    fee_currency=words,
    status=words,
    cum_qty=decimals,
    avg_price=decimals,
    leaves_qty=decimals,
    is_maker=st.booleans(),
    leg=st.integers(0, 5),
    t_signal=ints,
    t_ingress=ints,
    t_decision=ints,
    t_ack=ints,
    t_exchange=ints,
    ts=ints,
    correlation_id=optional_words,
)
reports = st.builds(
    OrderReportEvent,
    signal_id=words,
    client_order_id=words,
    venue=names,
    account=st.sampled_from(["main", "", "alt"]),
    symbol=symbols,
    venue_symbol=words,
    leg=st.integers(0, 5),
    side=st.sampled_from(["BUY", "SELL"]),
    order_type=words,
    time_in_force=words,
    post_only=st.booleans(),
    reduce_only=st.booleans(),
    price=optional_decimals,
    quantity=decimals,
    status=words,
    prev_status=optional_words,
    seq=st.integers(0, 1000),
    venue_order_id=optional_words,
    venue_status=optional_words,
    filled_qty=decimals,
    avg_fill_price=optional_decimals,
    last_fill_qty=optional_decimals,
    last_fill_price=optional_decimals,
    fee_total=decimals,
    fee_asset=optional_words,
    reason_code=optional_words,
    reason=optional_words,
    venue_error_code=optional_words,
    intent_status=words,
    t_signal=ints,
    t_ingress=st.none() | ints,
    t_sent=st.none() | ints,
    t_ack=st.none() | ints,
    t_exchange=st.none() | ints,
    ts=ints,
    correlation_id=optional_words,
)
TEXT_DECODE = decoder(text_union(CORE_TO_BRIDGE)).decode


@given(st.one_of(fills, reports))
def test_the_bridge_text_path_publishes_exactly_what_the_typed_path_does(
    event: FillEvent | OrderReportEvent,
) -> None:
    """Ring bytes -> text mirror -> publication equals the typed event's publication, byte for byte."""
    mirrored = TEXT_DECODE(encoder().encode(event))
    assert type(mirrored).__name__ == f"Text{type(event).__name__}"
    assert text_publications(mirrored, "prod", "inst") == publications(event, "prod", "inst")


def test_other_events_decode_as_themselves_and_publish_alike() -> None:
    reject = RejectEvent(reason="r", intent_id="i", brain_instance_id="b", timestamp=1, code="c", message="m")
    done = IntakeDone(ref=3, outcome="accepted")
    assert TEXT_DECODE(encoder().encode(reject)) == reject
    assert TEXT_DECODE(encoder().encode(done)) == done
    assert text_publications(reject, "p", "i") == publications(reject, "p", "i")
