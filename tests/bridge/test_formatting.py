"""Fast paths of event formatting give exactly what the reference code gives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from titan.events import subjects
from titan.events.payloads import plain


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
