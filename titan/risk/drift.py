"""Per-fill drift detection (risk-and-state.md §16): class B latency and class A spread."""

from __future__ import annotations

from decimal import Decimal, localcontext

import msgspec

from titan.state.decimals import MONEY_CONTEXT


class DriftReport(msgspec.Struct, frozen=True, gc=False):
    """``titan.evt.execution.drift.v1`` content; ``expected``/``actual`` in ms (B) or price (A)."""

    signal_id: str
    symbol: str
    venue: str
    drift_class: str  # ClassASpread | ClassBLatency | ClassPPosition
    expected: Decimal
    actual: Decimal
    deviation_bps: Decimal
    timestamp: int


def detect_drift(
    signal_id: str,
    symbol: str,
    venue: str,
    side: int,
    fill_price: Decimal,
    fill_time_ms: int,
    t_signal_ms: int,
    entry_zone: tuple[Decimal, ...] = (),
    latency_budget_ms: int = 2_000,
    spread_bps: Decimal = Decimal(20),
) -> list[DriftReport]:
    """Reports for one fill; the action (alert / defensive / halt) is the caller's configuration."""
    reports: list[DriftReport] = []
    latency = fill_time_ms - t_signal_ms
    if latency > latency_budget_ms:
        reports.append(DriftReport(signal_id, symbol, venue, "ClassBLatency", Decimal(latency_budget_ms),
                                   Decimal(latency), Decimal(0), fill_time_ms))  # fmt: skip
    if not entry_zone:
        return reports
    zone = [p for p in entry_zone if p > 0]
    if not zone:
        return reports
    # Comparisons do not depend on the context: a fill inside the zone needs no arithmetic.
    if side > 0 and fill_price > (bound := max(zone)):
        with localcontext(MONEY_CONTEXT):
            bps = (fill_price - bound) / bound * 10_000
    elif side < 0 and fill_price < (bound := min(zone)):
        with localcontext(MONEY_CONTEXT):
            bps = (bound - fill_price) / bound * 10_000
    else:
        return reports
    if bps > spread_bps:
        reports.append(DriftReport(signal_id, symbol, venue, "ClassASpread", bound, fill_price, bps,
                                       fill_time_ms))  # fmt: skip
    return reports
