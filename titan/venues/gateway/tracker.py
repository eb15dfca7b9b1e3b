"""Sans-I/O order tracking of one gateway: venue answers, stream updates and queries in, reports out.

Every source of truth about an order (the REST answer to its create, private-stream order and
execution messages, queries by client id, reconciliation fetches) goes through one
:class:`OrderTracker`, which turns them into the :class:`~titan.messages.VenueReport` sequence core
expects:

* one FILL per venue execution, deduplicated by (venue symbol, trade id) — a replayed or
  duplicated stream message never reaches core twice from this process; a *conflicting* duplicate
  (same trade id, another quantity) is dropped too, logged once as a warning and told to core as
  one FILL_CONFLICT report (core publishes a drift event, R5);
* an ACK only while nothing further is known (a fill that came before the REST ack wins, R4);
* a terminal CANCELED / EXPIRED only after the fills it includes were reported, so core never sees
  "canceled" followed by a fill of the same order (R3). While the fills are missing the order is
  *short of fills* and the driver fetches them over REST after a grace period.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from decimal import Decimal

import msgspec

from titan.messages import ACK, CANCELED, EXPIRED, FILL, FILL_CONFLICT, REJECTED, UNKNOWN, VenueReport
from titan.venues.common.decimals import plain
from titan.venues.common.types import OrderState, VenueFill, VenueOrderState

log = logging.getLogger(__name__)

ZERO = Decimal(0)
DEFAULT_DEDUPE_CAPACITY = 200_000
CONFLICTS_KEPT = 10_000  # conflicts already reported: the same one repeated is not reported again

_TERMINAL_REPORT: dict[OrderState, str] = {
    OrderState.CANCELED: CANCELED,
    OrderState.EXPIRED: EXPIRED,
    OrderState.REJECTED: REJECTED,
}


class TrackedOrder(msgspec.Struct):
    coid: str
    venue_symbol: str
    qty: Decimal  # ordered, base units (0 when adopted from a venue message without it)
    t_order_out: int = 0
    t_gw_in: int = 0
    sent_ms: int = 0  # local wall clock when the create left (0: adopted from the venue)
    venue_order_id: str = ""
    cum_qty: Decimal = ZERO  # sum of the fills reported to core
    acked: bool = False  # ACK (or anything later) reported
    terminal: str = ""  # terminal kind reported ("" while live); FILLED when fully filled
    pending: VenueOrderState | None = None  # terminal venue state waiting for its fills
    short_since_ms: int = 0  # venue says more is filled than we reported since then (0: not short)
    target_qty: Decimal = ZERO  # the venue's cumulative filled qty we have to catch up with


class OrderTracker:
    def __init__(self, venue: str, dedupe_capacity: int = DEFAULT_DEDUPE_CAPACITY) -> None:
        self.venue = venue
        self.orders: dict[str, TrackedOrder] = {}
        self._by_venue_id: dict[str, str] = {}
        self._seen: OrderedDict[tuple[str, str], Decimal] = OrderedDict()
        self._dedupe_capacity = dedupe_capacity
        self._conflicts: OrderedDict[tuple[str, str, Decimal], None] = OrderedDict()
        self.duplicate_fills = 0
        self.conflicting_fills = 0  # distinct (trade, quantity) conflicts, each reported once

    # ------------------------------------------------------------------ lookups
    def get(self, coid: str) -> TrackedOrder | None:
        return self.orders.get(coid)

    def coid_for(self, venue_order_id: str) -> str:
        return self._by_venue_id.get(venue_order_id, "")

    def _adopt(self, coid: str, venue_symbol: str, qty: Decimal = ZERO) -> TrackedOrder:
        order = self.orders.get(coid)
        if order is None:
            order = TrackedOrder(coid=coid, venue_symbol=venue_symbol, qty=qty)
            self.orders[coid] = order
        return order

    def _set_venue_id(self, order: TrackedOrder, venue_order_id: str) -> None:
        if venue_order_id and not order.venue_order_id:
            order.venue_order_id = venue_order_id
            self._by_venue_id[venue_order_id] = order.coid

    def _report(self, order: TrackedOrder, kind: str, **fields: object) -> VenueReport:
        return VenueReport(
            coid=order.coid,
            venue=self.venue,
            kind=kind,
            venue_order_id=order.venue_order_id,
            t_order_out=order.t_order_out,
            t_gw_in=order.t_gw_in,
            t_gw_out=time.monotonic_ns(),
            **fields,  # type: ignore[arg-type]  # keyword fields of VenueReport, checked by msgspec
        )

    # ------------------------------------------------------------------ the create path
    def sent(
        self, coid: str, venue_symbol: str, qty: Decimal, t_order_out: int, t_gw_in: int, now_ms: int
    ) -> None:
        """Register an order before its request leaves, so a fill racing the ack attaches (R4)."""
        order = self._adopt(coid, venue_symbol, qty)
        order.qty = qty
        order.sent_ms = now_ms
        order.t_order_out = t_order_out
        order.t_gw_in = t_gw_in

    def on_ack(self, coid: str, venue_order_id: str, venue_status: str = "") -> list[VenueReport]:
        order = self.orders.get(coid)
        if order is None:
            return []
        self._set_venue_id(order, venue_order_id)
        if order.acked or order.terminal or order.cum_qty > 0:
            return []  # the stream already said more: a late ack must not regress the state
        order.acked = True
        return [self._report(order, ACK, venue_status=venue_status)]

    def on_unknown(self, coid: str, code: str, message: str) -> list[VenueReport]:
        order = self.orders.get(coid)
        if order is None or order.acked or order.terminal or order.cum_qty > 0:
            return []
        return [self._report(order, UNKNOWN, reason_code="UNKNOWN", venue_error_code=code, message=message)]

    def on_rejected(
        self, coid: str, reason_code: str, code: str, message: str, kind: str = REJECTED
    ) -> list[VenueReport]:
        """A definitive answer: the order does not exist at the venue (REJECTED, or FAILED: never sent)."""
        order = self.orders.get(coid)
        if order is None or order.terminal or order.cum_qty > 0:
            return []
        order.terminal = kind
        return [self._report(order, kind, reason_code=reason_code, venue_error_code=code, message=message)]

    # ------------------------------------------------------------------ venue truth
    def on_state(self, state: VenueOrderState, now_ms: int) -> list[VenueReport]:
        coid = state.client_order_id or self.coid_for(state.venue_order_id)
        if not coid:
            return []  # a foreign order without a client id: reconciliation reports it
        order = self._adopt(coid, state.venue_symbol, state.qty)
        self._set_venue_id(order, state.venue_order_id)
        if order.terminal:
            return []
        if state.filled_qty > order.cum_qty:
            if state.filled_qty > order.target_qty:
                order.target_qty = state.filled_qty
            if not order.short_since_ms:
                order.short_since_ms = now_ms
        if state.state in (OrderState.ACKED, OrderState.PARTIAL_FILL):
            if order.acked or order.cum_qty > 0 or state.filled_qty > 0:
                return []
            order.acked = True
            return [self._report(order, ACK, venue_status=state.venue_status)]
        if state.state is OrderState.FILLED:
            if state.filled_qty <= order.cum_qty:
                order.terminal = FILL
            return []
        if state.filled_qty > order.cum_qty:
            order.pending = state  # report the end once its fills are in
            return []
        return [self._terminal(order, state)]

    def _terminal(self, order: TrackedOrder, state: VenueOrderState) -> VenueReport:
        kind = _TERMINAL_REPORT[state.state]
        order.terminal = kind
        order.pending = None
        return self._report(
            order,
            kind,
            venue_status=state.venue_status,
            cum_qty=plain(order.cum_qty),
            leaves_qty="0",
            reason_code="VENUE_REJECTED" if kind == REJECTED else "",
            message=state.reject_reason,
            t_exchange_ms=state.update_time_ms,
        )

    def on_fill(self, fill: VenueFill, emit_unattributed: bool = True) -> list[VenueReport]:
        """A venue execution; ``emit_unattributed=False`` skips fills of orders this tracker cannot name.

        A fill whose order is unknown (Binance ``userTrades`` carry no client id) is not remembered as
        seen, so the same trade still reaches core with its client id once the order is known.
        """
        coid = fill.client_order_id or self.coid_for(fill.venue_order_id)
        if not coid and not emit_unattributed:
            return []
        key = (fill.venue_symbol, fill.trade_id)
        seen = self._seen.get(key)
        if seen is not None:
            self.duplicate_fills += 1
            if seen != fill.qty:
                return self._conflict(fill, coid, seen)
            return []
        if not coid:
            return [
                VenueReport(
                    coid="",
                    venue=self.venue,
                    kind=FILL,
                    venue_order_id=fill.venue_order_id,
                    trade_id=fill.trade_id,
                    qty=plain(fill.qty),
                    price=plain(fill.price),
                    fee=plain(fill.fee),
                    fee_asset=fill.fee_asset,
                    is_maker=fill.is_maker,
                    t_exchange_ms=fill.exchange_time_ms,
                    t_gw_out=time.monotonic_ns(),
                )
            ]
        self._seen[key] = fill.qty
        if len(self._seen) > self._dedupe_capacity:
            self._seen.popitem(last=False)
        order = self._adopt(coid, fill.venue_symbol)
        self._set_venue_id(order, fill.venue_order_id)
        order.cum_qty += fill.qty
        order.acked = True
        leaves = plain(max(order.qty - order.cum_qty, ZERO)) if order.qty > 0 else ""
        out = [
            self._report(
                order,
                FILL,
                trade_id=fill.trade_id,
                qty=plain(fill.qty),
                price=plain(fill.price),
                fee=plain(fill.fee),
                fee_asset=fill.fee_asset,
                is_maker=fill.is_maker,
                cum_qty=plain(order.cum_qty),
                leaves_qty=leaves,
                t_exchange_ms=fill.exchange_time_ms,
            )
        ]
        if order.cum_qty >= order.target_qty:
            order.short_since_ms = 0
            if order.pending is not None:
                out.append(self._terminal(order, order.pending))
            elif order.qty > 0 and order.cum_qty >= order.qty:
                order.terminal = FILL
        return out

    def _conflict(self, fill: VenueFill, coid: str, kept: Decimal) -> list[VenueReport]:
        """Same trade id, another quantity: keep the first, warn and tell core once per such pair (R5)."""
        conflict = (fill.venue_symbol, fill.trade_id, fill.qty)
        if conflict in self._conflicts:
            return []
        self._conflicts[conflict] = None
        if len(self._conflicts) > CONFLICTS_KEPT:
            self._conflicts.popitem(last=False)
        self.conflicting_fills += 1
        log.warning(
            "conflicting duplicate fill dropped: venue %s symbol %s trade %s order %s: qty %s applied, "
            "this one says qty %s (price %s)",
            self.venue,
            fill.venue_symbol,
            fill.trade_id,
            coid or fill.venue_order_id,
            plain(kept),
            plain(fill.qty),
            plain(fill.price),
        )
        order = self.orders.get(coid) if coid else None
        return [
            VenueReport(
                coid=coid,
                venue=self.venue,
                kind=FILL_CONFLICT,
                venue_order_id=fill.venue_order_id or (order.venue_order_id if order else ""),
                trade_id=fill.trade_id,
                qty=plain(fill.qty),
                price=plain(fill.price),
                fee=plain(fill.fee),
                fee_asset=fill.fee_asset,
                is_maker=fill.is_maker,
                cum_qty=plain(kept),
                t_exchange_ms=fill.exchange_time_ms,
                message=f"conflicting duplicate of trade {fill.trade_id}: qty {plain(kept)} applied, "
                f"{plain(fill.qty)} dropped",
                t_order_out=order.t_order_out if order else 0,
                t_gw_in=order.t_gw_in if order else 0,
                t_gw_out=time.monotonic_ns(),
            )
        ]

    def on_gone(self, coid: str) -> list[VenueReport]:
        """The probe rule confirmed the order never existed (R9)."""
        return self.on_rejected(coid, "NOT_FOUND", "NOT_FOUND", "venue does not know this order")

    # ------------------------------------------------------------------ for the driver
    def short_of_fills(self, now_ms: int, grace_ms: int) -> list[TrackedOrder]:
        """Orders the venue says are filled further than we reported, for longer than ``grace_ms``."""
        return [
            o
            for o in self.orders.values()
            if o.short_since_ms and now_ms - o.short_since_ms >= grace_ms and not o.terminal
        ]

    def forget_terminal(self, keep: int = 10_000) -> None:
        """Bound memory: drop the oldest terminal orders beyond ``keep`` (fill dedupe stays)."""
        terminal = [c for c, o in self.orders.items() if o.terminal]
        for coid in terminal[: max(0, len(terminal) - keep)]:
            order = self.orders.pop(coid)
            self._by_venue_id.pop(order.venue_order_id, None)
