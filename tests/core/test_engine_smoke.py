from __future__ import annotations

from tests.core.fakes import Rig


def test_prepare_confirm_fill_replies_filled() -> None:
    rig = Rig()
    fields = rig.roundtrip("s1")
    assert fields is not None
    assert fields["executed"] is True and fields["status"] == "FILLED", fields
    assert fields["filled_qty"] == "0.002"
