"""Pieces of the ingress process's hot path that must stay equal to what they replace."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan.ingress.signals import decimal_text
from titan.messages import Confirm, Intent, Prepare, encoder
from titan.procs.ingress import _stamp_growth

SIZES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1]


@pytest.mark.parametrize("req", SIZES)
@pytest.mark.parametrize("t_ring", SIZES)
def test_stamp_growth_is_what_the_stamps_add(req: int, t_ring: int) -> None:
    enc = encoder().encode
    intent = Intent("sig", "brain", "BTCUSDT", 1, "BUY_SETUP", 1, entry_zone=["1", "2"])
    for make in (lambda r, t: Prepare(7, r, intent, 5, t), lambda r, t: Confirm(7, r, "sig", 5, t)):
        assert len(enc(make(req, t_ring))) - len(enc(make(0, 0))) == _stamp_growth(req, t_ring)


@pytest.mark.parametrize(
    "x",
    [
        *(0.01, 50024.99, -3.25, 1e-4, 0.00012, 123456789012.5, 999999999999999.9, 9.999999999999998e15),
        *(1e-5, -1e-5, 1.5e16, 1e21, 2.5e-7, 1.2345e-4, 5.0, 0.0),
    ],
)
def test_decimal_text_as_before(x: float) -> None:
    """repr() is used as it is where it is plain notation; the result is the Decimal formatting's."""
    expected = str(int(x)) if x.is_integer() else format(Decimal(repr(x)), "f")
    assert decimal_text(x) == expected
