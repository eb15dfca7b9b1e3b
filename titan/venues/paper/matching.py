"""Paper venue matching (venues.md §7), sans-I/O: orders, cancels and quotes in, reports out.

* MARKET fills at once at the best ask (buy) / best bid (sell) moved by ``slippage_bps`` against the
  taker, rounded to the tick, with the taker fee.
* IOC / FOK limits fill the same way only when they cross at their limit or better (the fill price
  is never worse than the limit); otherwise they are EXPIRED, as a venue expires them.
* LIMIT GTC that crosses on arrival fills at once as a taker at the touch (never worse than its limit);
  otherwise it rests (ACK) and fills whole at its own price, as a maker, once the opposite best crosses
  it (a buy when the ask falls to its price, a sell when the bid rises to it).
* POST_ONLY that would cross is REJECTED (``VENUE_REJECTED``), as a venue rejects it; else it rests.
* Latency model: an order is matched ``ack_latency_ns`` after it arrived (against the quote of that
  moment), a fill is reported ``fill_latency_ns`` after the cross was seen. A cancel that arrives
  before the fill is reported wins; fills are always reported before a CANCELED.

Paper fills whole orders (it models no depth), so every order has at most one execution and its trade
id is derived from the client order id alone: a restarted gateway that sees the same order again
reports the same trade id, which core deduplicates — paper never invents a second execution.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec

from titan.messages import (
    ACK,
    CANCELED,
    EXPIRED,
    FILL,
    REJECTED,
    CancelRequest,
    OrderRequest,
    ReconcileRequest,
    ReconcileSnapshot,
    VenueOrderSnapshot,
    VenueReport,
)

ZERO = Decimal(0)
BPS = Decimal(10_000)
DONE_MEMORY = 16_384  # finished coids remembered (repeated orders, late cancels, reconciliation)
NO_PRICE = "NO_PRICE"
RESTART_REASON = "PAPER_RESTART"
FORGOTTEN = "PAPER_FINISHED_BEFORE_RESTART"  # a coid a previous paper process finished (details gone)


class Quote(msgspec.Struct, frozen=True, gc=False):
    """The price source's top of book (0: side absent)."""

    bid: Decimal
    ask: Decimal


QuoteSource = Callable[[str], Quote | None]  # canonical symbol → current quote


class PaperModel(msgspec.Struct, frozen=True, kw_only=True):
    """Fees, slippage, latency and the instrument grid of the paper venue (``venues.paper.*``)."""

    taker_fee: Decimal = Decimal("0.0005")
    maker_fee: Decimal = Decimal("0.0002")
    slippage_bps: Decimal = ZERO
    ack_latency_ns: int = 0
    fill_latency_ns: int = 0
    ticks: dict[str, Decimal] = {}  # canonical symbol → tick size


class PaperOrder(msgspec.Struct, kw_only=True):
    """An order paper holds: waiting for its ack latency (``acked`` False) or resting in the book."""

    order: OrderRequest
    t_gw_in: int
    acked: bool = False
    cross_ns: int = 0  # when the resting order was first seen crossed (0: not crossed)


class PaperBookState(msgspec.Struct, kw_only=True):
    """What survives a gateway restart (see :mod:`titan.venues.paper.store`)."""

    orders: list[OrderRequest] = []  # held (queued or resting) when last saved
    done: list[str] = []  # recently finished coids


def venue_order_id(coid: str) -> str:
    return f"paper-{coid}"


def trade_id(coid: str) -> str:
    """The one execution of ``coid`` (paper fills whole orders): a pure function of the coid."""
    return f"{coid}-1"


def plain(d: Decimal) -> str:
    return "0" if d == 0 else format(d.normalize(), "f")


class PaperBook:
    """The paper venue's order book against an external quote source; one per gateway process.

    ``submit``/``cancel``/``reconcile`` answer a message from core; ``poll`` advances time (latency
    queue, resting orders against the latest quotes) and must be called whenever quotes may have
    moved — the gateway calls it every few milliseconds while :attr:`busy`.
    """

    def __init__(self, model: PaperModel, quotes: QuoteSource, venue: str = "paper") -> None:
        self.model = model
        self.quotes = quotes
        self.venue = venue
        self.slippage = model.slippage_bps / BPS
        self.held: dict[str, PaperOrder] = {}  # coid → queued or resting order
        self.due: list[tuple[int, str]] = []  # heap of (match time ns, coid) for queued orders
        self.done: OrderedDict[str, VenueReport] = OrderedDict()  # coid → its final report
        self.changed = False  # held orders changed since the last save (the store clears it)

    # --- state -----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Something depends on time or quotes: the caller must poll again soon."""
        return bool(self.held)

    def next_due_ns(self) -> int | None:
        """When the earliest queued order is matched or crossed fill is due (None: only quotes matter)."""
        times = [t for t, coid in self.due if coid in self.held]
        lat = self.model.fill_latency_ns
        times += [o.cross_ns + lat for o in self.held.values() if o.cross_ns]
        return min(times) if times else None

    def resting(self) -> list[PaperOrder]:
        return [o for o in self.held.values() if o.acked]

    def state(self) -> PaperBookState:
        return PaperBookState(orders=[o.order for o in self.held.values()], done=list(self.done)[-4096:])

    def restore(self, saved: PaperBookState, now_ns: int) -> list[VenueReport]:
        """After a restart: every order the previous process held is reported EXPIRED (its quotes and
        timers are gone; core sees a definitive end instead of an order that silently vanished)."""
        out: list[VenueReport] = []
        for coid in saved.done:
            self._remember(VenueReport(coid=coid, venue=self.venue, kind="", reason_code=FORGOTTEN))
        for order in saved.orders:
            rep = self._report(
                order, EXPIRED, now_ns, now_ns, reason_code=RESTART_REASON, message="paper gateway restarted"
            )
            self._finish(order.coid, rep)
            out.append(rep)
        self.changed = bool(saved.orders)
        return out

    # --- messages from core ------------------------------------------------------------------------

    def submit(self, order: OrderRequest, now_ns: int) -> list[VenueReport]:
        if order.coid in self.held:
            return []  # the same order again (ring redelivery after a restart): already held
        if order.coid in self.done:
            return []  # the same order again after it finished: it already had its outcome
        held = PaperOrder(order=order, t_gw_in=now_ns)
        self.held[order.coid] = held
        if self.model.ack_latency_ns > 0:
            heapq.heappush(self.due, (now_ns + self.model.ack_latency_ns, order.coid))
            self.changed = True
            return []
        return self._arrive(held, now_ns)

    def cancel(self, req: CancelRequest, now_ns: int) -> list[VenueReport]:
        held = self.held.get(req.coid)
        if held is None:
            final = self.done.get(req.coid)
            if final is not None:
                return []  # already finished: its final report went out (a fill is never undone)
            # Never seen (a previous paper process lost it, or it was never sent): it cannot be open.
            rep = VenueReport(
                coid=req.coid,
                venue=self.venue,
                kind=CANCELED,
                venue_status="CANCELED",
                message="paper: no such open order",
                t_order_out=req.t_core_out,
                t_gw_in=now_ns,
                t_gw_out=time.monotonic_ns(),
            )
            self._remember(rep)
            return [rep]
        out = self.poll(now_ns, only=req.coid)  # a fill that is due is reported first
        if req.coid not in self.held:
            return out
        rep = self._report(held.order, CANCELED, held.t_gw_in, now_ns, message=req.reason)
        self._finish(req.coid, rep)
        return [*out, rep]

    def reconcile(self, req: ReconcileRequest, now_ns: int) -> tuple[list[VenueReport], ReconcileSnapshot]:
        """Reports of the listed coids, then paper's truth: its open orders, no positions."""
        out: list[VenueReport] = []
        for coid in req.coids:
            held = self.held.get(coid)
            if held is not None:
                if held.acked:
                    out.append(self._report(held.order, ACK, held.t_gw_in, now_ns))
                continue
            final = self.done.get(coid)
            if final is not None:
                if final.reason_code != FORGOTTEN:  # its outcome was reported by the previous process
                    out.append(final)
            else:
                rep = VenueReport(
                    coid=coid,
                    venue=self.venue,
                    kind=EXPIRED,
                    venue_status="EXPIRED",
                    reason_code=RESTART_REASON,
                    message="paper: order unknown to this paper book",
                    t_gw_out=time.monotonic_ns(),
                )
                self._remember(rep)
                out.append(rep)
        snap = ReconcileSnapshot(
            venue=self.venue,
            reason=req.reason,
            ok=True,
            error="",
            open_orders=[
                VenueOrderSnapshot(
                    coid=o.order.coid,
                    venue_order_id=venue_order_id(o.order.coid),
                    symbol=o.order.symbol,
                    side=o.order.side,
                    qty=o.order.qty,
                    price=o.order.price,
                    filled_qty="0",
                    state="ACKED",
                )
                for o in self.resting()
            ],
            positions=[],
            balance=None,
            t_gw_out=time.monotonic_ns(),
        )
        return out, snap

    # --- time and quotes -----------------------------------------------------------------------------

    def poll(self, now_ns: int, only: str | None = None) -> list[VenueReport]:
        """Match queued orders whose latency passed and resting orders the quotes now cross."""
        out: list[VenueReport] = []
        while self.due and self.due[0][0] <= now_ns:
            _, coid = heapq.heappop(self.due)
            held = self.held.get(coid)
            if held is not None and not held.acked:
                out += self._arrive(held, now_ns)
        lat = self.model.fill_latency_ns
        for coid, held in list(self.held.items()):
            if not held.acked or (only is not None and coid != only):
                continue
            if not held.cross_ns:
                quote = self.quotes(held.order.symbol)
                if quote is None or not _rests_crossed(held.order, quote):
                    continue
                held.cross_ns = now_ns
            if now_ns - held.cross_ns >= lat:
                price = Decimal(held.order.price or "0")
                rep = self._fill(held, price, self.model.maker_fee, True, now_ns)
                self._finish(coid, rep)
                out.append(rep)
        return out

    # --- matching ------------------------------------------------------------------------------------

    def _arrive(self, held: PaperOrder, now_ns: int) -> list[VenueReport]:
        """The order reaches the matching engine: fill, expire, reject or rest."""
        order = held.order
        quote = self.quotes(order.symbol)
        touch = None if quote is None else (quote.ask if order.side == "BUY" else quote.bid)
        if touch is None or touch <= 0:
            rep = self._report(
                order,
                REJECTED,
                held.t_gw_in,
                now_ns,
                reason_code=NO_PRICE,
                message=f"paper: no quote for {order.symbol}",
            )
            self._finish(order.coid, rep, remember=False)  # nothing happened: a retry may succeed
            return [rep]
        limit = Decimal(order.price) if order.price else None
        crosses = limit is None or (touch <= limit if order.side == "BUY" else touch >= limit)
        if (
            order.order_type == "MARKET"
            or order.tif in ("IOC", "FOK")
            or (crosses and order.tif != "POST_ONLY")
        ):
            if not crosses:
                rep = self._report(order, EXPIRED, held.t_gw_in, now_ns, message="paper: IOC did not cross")
            else:
                price = self._taker_price(order, touch, limit)
                rep = self._fill(held, price, self.model.taker_fee, False, now_ns)
            self._finish(order.coid, rep)
            return [rep]
        if crosses:  # post-only that would take liquidity
            rep = self._report(
                order,
                REJECTED,
                held.t_gw_in,
                now_ns,
                reason_code="VENUE_REJECTED",
                venue_error_code="POST_ONLY_WOULD_CROSS",
                message="paper: post-only order would cross the book",
            )
            self._finish(order.coid, rep)
            return [rep]
        held.acked = True
        self.changed = True
        return [self._report(order, ACK, held.t_gw_in, now_ns, venue_status="NEW")]

    def _taker_price(self, order: OrderRequest, touch: Decimal, limit: Decimal | None) -> Decimal:
        buy = order.side == "BUY"
        price = touch * (1 + self.slippage) if buy else touch * (1 - self.slippage)
        tick = self.model.ticks.get(order.symbol)
        if tick is not None and self.slippage:
            # Slippage is against the taker: a buy rounds up to the tick, a sell down.
            price = (price / tick).quantize(Decimal(1), ROUND_CEILING if buy else ROUND_FLOOR) * tick
        if limit is not None:
            price = min(price, limit) if buy else max(price, limit)  # never worse than the limit
        return price

    # --- reports -------------------------------------------------------------------------------------

    def _fill(
        self, held: PaperOrder, price: Decimal, fee_rate: Decimal, maker: bool, now_ns: int
    ) -> VenueReport:
        order = held.order
        qty = Decimal(order.qty)
        return VenueReport(
            coid=order.coid,
            venue=self.venue,
            kind=FILL,
            venue_order_id=venue_order_id(order.coid),
            venue_status="FILLED",
            trade_id=trade_id(order.coid),
            qty=order.qty,
            price=plain(price),
            fee=plain(price * qty * fee_rate),
            fee_asset="USDT",
            is_maker=maker,
            cum_qty=order.qty,
            leaves_qty="0",
            t_exchange_ms=time.time_ns() // 1_000_000,
            t_order_out=order.t_core_out,
            t_gw_in=held.t_gw_in,
            t_gw_out=time.monotonic_ns(),
        )

    def _report(
        self,
        order: OrderRequest,
        kind: str,
        t_gw_in: int,
        now_ns: int,
        *,
        venue_status: str = "",
        reason_code: str = "",
        venue_error_code: str = "",
        message: str = "",
    ) -> VenueReport:
        return VenueReport(
            coid=order.coid,
            venue=self.venue,
            kind=kind,
            venue_order_id=venue_order_id(order.coid),
            venue_status=venue_status or kind,
            cum_qty="0",
            leaves_qty="0" if kind != ACK else order.qty,
            reason_code=reason_code,
            venue_error_code=venue_error_code,
            message=message,
            t_exchange_ms=time.time_ns() // 1_000_000,
            t_order_out=order.t_core_out,
            t_gw_in=t_gw_in,
            t_gw_out=time.monotonic_ns(),
        )

    def _finish(self, coid: str, rep: VenueReport, remember: bool = True) -> None:
        held = self.held.pop(coid, None)
        if remember:
            self._remember(rep)
        if self.model.ack_latency_ns > 0 or (held is not None and held.acked):
            self.changed = True  # it was in the saved book: save again (immediate fills never are)

    def _remember(self, rep: VenueReport) -> None:
        self.done[rep.coid] = rep
        self.done.move_to_end(rep.coid)
        while len(self.done) > DONE_MEMORY:
            self.done.popitem(last=False)


def _rests_crossed(order: OrderRequest, quote: Quote) -> bool:
    """A resting limit is reached once the opposite best trades through or at its price."""
    limit = Decimal(order.price or "0")
    if order.side == "BUY":
        return ZERO < quote.ask <= limit
    return quote.bid > 0 and quote.bid >= limit
