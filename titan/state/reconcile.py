"""Position reconciliation (risk-and-state.md §17): synthetic fills that make the shadow equal the venue.

A difference in size above one lot step is corrected by closing the shadow position at the current
mark and opening the venue's size at the venue's average entry. The fills carry source
``RECONCILIATION``: their PnL is an adjustment, outside the daily-loss check.
"""

from __future__ import annotations

from decimal import Decimal

from titan.risk.drift import DriftReport
from titan.state.decimals import ZERO
from titan.state.shadow import Fill, Position


def position_correction(
    account: str,
    venue: str,
    symbol: str,
    shadow: Position | None,
    venue_signed_size: Decimal,
    venue_entry: Decimal,
    mark: Decimal,
    lot_step: Decimal,
    ts_ms: int,
    correction_id: str,
) -> tuple[list[Fill], DriftReport | None]:
    """Synthetic fills (possibly none) and the ``ClassPPosition`` drift report that goes with them.

    ``correction_id`` must be unique per correction (e.g. the journal sequence): it makes the
    synthetic trade ids, which the shadow deduplicates like any other.
    """
    shadow_size = ZERO if shadow is None else shadow.signed_size
    if abs(shadow_size - venue_signed_size) <= lot_step:
        return [], None

    def synthetic(side: int, qty: Decimal, price: Decimal, leg: str, signal_id: str = "") -> Fill:
        return Fill(account=account, venue=venue, symbol=symbol, side=side, qty=qty, price=price, fee=ZERO,
                    trade_id=f"recon:{correction_id}:{leg}", ts_ms=ts_ms, signal_id=signal_id,
                    source="RECONCILIATION", close_reason="RECONCILIATION")  # fmt: skip

    fills: list[Fill] = []
    if shadow is not None:
        fills.append(synthetic(-shadow.side, shadow.size, mark, "close", shadow.signal_id))
    if venue_signed_size != 0:
        fills.append(
            synthetic(1 if venue_signed_size > 0 else -1, abs(venue_signed_size), venue_entry, "open")
        )
    report = DriftReport("", symbol, venue, "ClassPPosition", venue_signed_size, shadow_size, ZERO, ts_ms)
    return fills, report
