"""What a real-venue gateway does with each message from core (orders, cancels, reconciliations).

Every message becomes its own asyncio task, so a slow venue answer never holds up the next order
(R39), and the gateway's own checks — venue cooldown, account-wide token buckets — run before
anything is sent, answering DENIED at once instead of queueing (R10, R13). UNKNOWN outcomes are
resolved by queries by client id under the adapters' probe rule (R1, R9); the private stream and
REST fetches feed one :class:`~titan.venues.gateway.tracker.OrderTracker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from typing import Any

from titan.config import ReconcileSection
from titan.messages import (
    DENIED,
    FAILED,
    CancelRequest,
    OrderRequest,
    ReconcileRequest,
    ReconcileSnapshot,
    VenueOrderSnapshot,
    VenuePositionSnapshot,
    VenueReport,
    VenueStatus,
)
from titan.risk.buckets import RequestKind
from titan.routing.coid import is_our_coid
from titan.symbols import venue_symbol
from titan.venues.common.adapter import StreamEvent
from titan.venues.common.cooldown import VenueCooldown
from titan.venues.common.decimals import plain
from titan.venues.common.orders import OrderValidationError, to_grid
from titan.venues.common.outcome import ErrorClass, Outcome, OutcomeKind
from titan.venues.common.resolver import ResolutionStatus, UnknownOrderResolver
from titan.venues.common.types import (
    TERMINAL_ORDER_STATES,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
    VenueFill,
    VenueOrderState,
)
from titan.venues.gateway.buckets import SharedLimiter
from titan.venues.gateway.driver import SendFailed, VenueCallError, VenueDriver, local_ms
from titan.venues.gateway.tracker import OrderTracker, TrackedOrder

GatewayMessage = VenueReport | ReconcileSnapshot | VenueStatus
Emit = Callable[[GatewayMessage], None]

FILL_GRACE_MS = 1_000  # venue says filled, fills not seen on the stream for this long: fetch them
FILL_LOOKBACK_MS = 24 * 3600 * 1000  # adopted orders (no send time): fetch fills this far back
CANCEL_CONFIRM_S = (1.0, 2.0, 4.0, 8.0)  # after a cancel, query if no terminal state came by then
PROBE_CONCURRENCY = 8
IDLE_TICK_S = 0.5
START_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)

_REASON_OF_CLASS: dict[ErrorClass, str] = {
    ErrorClass.RATE_LIMITED: "RATE_LIMITED",
    ErrorClass.CLOCK_ERROR: "CLOCK_ERROR",
    ErrorClass.AUTH_ERROR: "AUTH_ERROR",
    ErrorClass.INSUFFICIENT_BALANCE: "INSUFFICIENT_BALANCE",
}


def reason_of(outcome: Outcome) -> str:
    """Reject reason for core: the error class where it matters, else ``VENUE_REJECTED``."""
    if outcome.error_class is None:
        return "VENUE_REJECTED"
    return _REASON_OF_CLASS.get(outcome.error_class, "VENUE_REJECTED")


def order_spec(req: OrderRequest) -> OrderSpec:
    tif = TimeInForce(req.tif)
    return OrderSpec(
        client_order_id=req.coid,
        symbol=req.symbol,
        venue_symbol=req.venue_symbol,
        side=Side(req.side),
        order_type=OrderType(req.order_type),
        qty=Decimal(req.qty),
        price=Decimal(req.price) if req.price else None,
        tif=tif,
        post_only=tif is TimeInForce.POST_ONLY,
        reduce_only=req.reduce_only,
    )


class GatewayService:
    def __init__(
        self,
        driver: VenueDriver,
        limiter: SharedLimiter | None,
        emit: Emit,
        log: logging.Logger | None = None,
        resolver: UnknownOrderResolver | None = None,
        reconcile: ReconcileSection | None = None,
    ) -> None:
        self.driver = driver
        self.venue = driver.venue
        self.limiter = limiter
        self._emit = emit
        self.log = log or logging.getLogger(f"titan.gateway.{self.venue}")
        self.tracker = OrderTracker(self.venue)
        self.cooldown = VenueCooldown()
        settings = reconcile or ReconcileSection()
        # risk-and-state.md §13/§17: "not found" is terminal after reconcile.not_found_probes answers.
        self.resolver = resolver or UnknownOrderResolver(probes_required=settings.not_found_probes)
        self.cancel_foreign = settings.cancel_foreign  # §17: foreign open orders cancelled, not only reported
        self.session = "DOWN"
        self.private_stream = "DOWN"
        self.pid = os.getpid()  # in statuses and snapshots: core sees a restarted gateway
        self.started = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resolver_wake = asyncio.Event()
        self._probing: set[str] = set()
        self._fills_wanted: dict[str, int] = {}  # venue symbol -> fetch executions since (ms)
        self._fetching: set[str] = set()
        self.denied = 0

    # ------------------------------------------------------------------ plumbing
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%s gateway task failed", self.venue, exc_info=task.exception())

    def emit_all(self, reports: Sequence[GatewayMessage]) -> None:
        for report in reports:
            self._emit(report)

    def emit_status(self) -> None:
        now = local_ms()
        limited = self.cooldown.until_ms if self.cooldown.until_ms > now else 0
        self._emit(
            VenueStatus(
                venue=self.venue,
                session=self.session,
                private_stream=self.private_stream,
                limited_until_ms=limited,
                limited_reason=("IP_BAN" if self.cooldown.ip_ban else "RATE_LIMITED") if limited else "",
                t_gw_out=time.monotonic_ns(),
                gateway_pid=self.pid,
            )
        )

    def _on_outcome(self, outcome: Outcome) -> None:
        """Every venue answer passes here: rate limits start (or extend) the venue cooldown."""
        if outcome.kind is OutcomeKind.RATE_LIMITED:
            before = self.cooldown.until_ms
            self.cooldown.on_outcome(outcome, local_ms())
            if self.cooldown.until_ms != before:
                self.emit_status()
        elif outcome.kind is OutcomeKind.ACK:
            self.cooldown.on_outcome(outcome, local_ms())

    def _acquire(self, kind: RequestKind) -> str | None:
        if self.limiter is None:
            return None
        return self.limiter.try_acquire(kind, time.monotonic_ns())

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect (retrying while the venue is unreachable), then run the background loops."""
        attempt = 0
        while True:
            try:
                await self.driver.start()
                break
            except (SendFailed, VenueCallError) as exc:
                self.log.warning("%s: start failed (%s), retrying", self.venue, exc)
                await self.driver.aclose()
                await asyncio.sleep(START_BACKOFF_S[min(attempt, len(START_BACKOFF_S) - 1)])
                attempt += 1
        self.session = "UP"
        self.started.set()
        self.emit_status()
        self.spawn(self.driver.run_stream(self.on_stream_events, self.on_stream_status))
        self.spawn(self._resolver_loop())
        self.spawn(self._upkeep_loop())
        self.spawn(self._clock_loop())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.driver.aclose()

    def submit(self, msg: OrderRequest | CancelRequest | ReconcileRequest, t_gw_in: int) -> None:
        """A message from core; handled in its own task (a slow venue call blocks nothing else)."""
        if isinstance(msg, OrderRequest):
            if not self.started.is_set():
                self._not_sent(msg, t_gw_in, FAILED, "VENUE_UNAVAILABLE", "venue session not up")
                return
            self.spawn(self.place(msg, t_gw_in))
        elif isinstance(msg, CancelRequest):
            self.spawn(self.cancel(msg))
        else:
            self.spawn(self.reconcile(msg))

    # ------------------------------------------------------------------ orders
    def _not_sent(self, req: OrderRequest, t_gw_in: int, kind: str, reason: str, message: str) -> None:
        if kind == DENIED:
            self.denied += 1
        self._emit(
            VenueReport(
                coid=req.coid,
                venue=self.venue,
                kind=kind,
                reason_code=reason,
                message=message,
                t_order_out=req.t_core_out,
                t_gw_in=t_gw_in,
                t_gw_out=time.monotonic_ns(),
            )
        )

    async def place(self, req: OrderRequest, t_gw_in: int) -> None:
        now = local_ms()
        if not self.cooldown.may_submit(now):
            until = self.cooldown.until_ms
            self._not_sent(
                req, t_gw_in, DENIED, "VENUE_COOLDOWN", f"Venue {self.venue} cooling down until {until}"
            )
            return
        instrument = self.driver.instruments.get(req.venue_symbol)
        if instrument is None:
            self._not_sent(req, t_gw_in, FAILED, "UNKNOWN_SYMBOL", f"Unknown symbol '{req.venue_symbol}'")
            return
        try:
            spec = order_spec(req)
            to_grid(spec, instrument)
        except (ValueError, OrderValidationError) as exc:
            self._not_sent(req, t_gw_in, FAILED, "INVALID_INTENT", str(exc))
            return
        if self.tracker.get(req.coid) is not None:
            # Sent before (core retried the same leg): never a second create — ask the venue instead.
            self.log.warning("%s: %s already sent; querying instead of resending", self.venue, req.coid)
            self.resolver.start(req.coid, now)
            self._resolver_wake.set()
            return
        empty = self._acquire(RequestKind.CREATE)
        if empty is not None:
            self._not_sent(req, t_gw_in, DENIED, "RATE_LIMITED", f"Rate limit {empty} on {self.venue}")
            return
        self.tracker.sent(req.coid, req.venue_symbol, spec.qty, req.t_core_out, t_gw_in, now)
        outcome, resp = await self.driver.create(spec, instrument)
        if resp is not None and self.limiter is not None:
            for bucket, remaining in self.driver.remaining_from_headers(resp):
                self.limiter.resync(bucket, remaining, time.monotonic_ns())
        self._on_outcome(outcome)
        coid = req.coid
        if outcome.kind is OutcomeKind.ACK:
            self.emit_all(self.tracker.on_ack(coid, outcome.venue_order_id))
        elif outcome.may_exist:
            self.emit_all(self.tracker.on_unknown(coid, outcome.code, outcome.message))
            self.resolver.start(coid, local_ms())
            self._resolver_wake.set()
        elif outcome.kind is OutcomeKind.FAILED:
            self.emit_all(
                self.tracker.on_rejected(coid, "NOT_SENT", outcome.code, outcome.message, kind=FAILED)
            )
        else:
            self.emit_all(self.tracker.on_rejected(coid, reason_of(outcome), outcome.code, outcome.message))

    async def cancel(self, req: CancelRequest) -> None:
        """Cancel by client id; the venue's answer arrives as a state (stream or query), never assumed."""
        deadline = time.monotonic() + 5.0
        while self._acquire(RequestKind.CANCEL) is not None or not self.cooldown.may_cancel(local_ms()):
            if time.monotonic() >= deadline:
                self.log.warning("%s: cancel of %s not sent (rate limited)", self.venue, req.coid)
                return
            await asyncio.sleep(0.1)  # cancels are idempotent: waiting for a token is safe
        outcome = await self.driver.cancel(req.venue_symbol, req.coid)
        self._on_outcome(outcome)
        # Confirm by query unless the stream reports the end first (R48: a drop mid-cancel).
        for delay in CANCEL_CONFIRM_S:
            order = self.tracker.get(req.coid)
            if order is not None and order.terminal:
                return
            await asyncio.sleep(delay if outcome.kind is OutcomeKind.ACK else 0)
            order = self.tracker.get(req.coid)
            if order is not None and order.terminal:
                return
            if await self._query_once(req.venue_symbol, req.coid) is not None:
                order = self.tracker.get(req.coid)
                if order is not None and (order.terminal or order.pending is not None):
                    return

    async def _query_once(self, symbol: str, coid: str) -> VenueOrderState | None:
        if self._acquire(RequestKind.QUERY) is not None:
            return None
        result = await self.driver.query(symbol, coid)
        self._on_outcome(result.outcome)
        if result.state is not None:
            await self.apply_state(result.state)
        return result.state

    # ------------------------------------------------------------------ venue truth
    async def apply_state(self, state: VenueOrderState) -> None:
        coid = state.client_order_id or self.tracker.coid_for(state.venue_order_id)
        if coid in self.resolver:
            self.resolver.on_found(coid, state)
        self.emit_all(self.tracker.on_state(state, local_ms()))
        order = self.tracker.get(coid) if coid else None
        if order is not None and order.short_since_ms and state.state in TERMINAL_ORDER_STATES:
            self.want_fills(order)

    def apply_fills(self, fills: Sequence[VenueFill], emit_unattributed: bool = True) -> None:
        for fill in fills:
            self.emit_all(self.tracker.on_fill(fill, emit_unattributed))

    async def on_stream_events(self, events: Sequence[StreamEvent]) -> None:
        for event in events:
            if isinstance(event, VenueFill):
                self.emit_all(self.tracker.on_fill(event))
            elif isinstance(event, VenueOrderState):
                coid = event.client_order_id or self.tracker.coid_for(event.venue_order_id)
                if coid in self.resolver:
                    self.resolver.on_found(coid, event)
                self.emit_all(self.tracker.on_state(event, local_ms()))

    async def on_stream_status(self, status: str) -> None:
        self.private_stream = status
        self.emit_status()  # RECONNECTED: core reconciles (fills missed meanwhile, R6)

    def want_fills(self, order: TrackedOrder) -> None:
        """Fetch the executions of ``order``'s symbol: one fetch per symbol in flight, requests coalesced."""
        since = (order.sent_ms - 60_000) if order.sent_ms else local_ms() - FILL_LOOKBACK_MS
        symbol = order.venue_symbol
        self._fills_wanted[symbol] = min(since, self._fills_wanted.get(symbol, since))
        if symbol not in self._fetching:
            self._fetching.add(symbol)
            self.spawn(self._fetch_fills(symbol))

    async def _fetch_fills(self, symbol: str) -> None:
        try:
            while (since := self._fills_wanted.pop(symbol, None)) is not None:
                if not self.cooldown.may_submit(local_ms()) or self._acquire(RequestKind.QUERY) is not None:
                    return  # the upkeep loop asks again after the grace period
                try:
                    fills = await self.driver.fetch_fills(symbol, since)
                except (SendFailed, VenueCallError) as exc:
                    if isinstance(exc, VenueCallError):
                        self._on_outcome(exc.outcome)
                    self.log.warning("%s: fetching fills of %s failed: %s", self.venue, symbol, exc)
                    return
                # Only fills of orders we can name: the rest are another order's or foreign.
                self.apply_fills(fills, emit_unattributed=False)
        finally:
            self._fetching.discard(symbol)

    # ------------------------------------------------------------------ loops
    async def _resolver_loop(self) -> None:
        sem = asyncio.Semaphore(PROBE_CONCURRENCY)
        while True:
            now = local_ms()
            for coid in self.resolver.due(now):
                if coid not in self._probing:
                    self._probing.add(coid)
                    self.spawn(self._probe(coid, sem))
            nxt = self.resolver.next_due_ms()
            wait = IDLE_TICK_S if nxt is None else min(IDLE_TICK_S, max(0.01, (nxt - local_ms()) / 1000))
            self._resolver_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._resolver_wake.wait()

    async def _probe(self, coid: str, sem: asyncio.Semaphore) -> None:
        try:
            async with sem:
                await self._probe_once(coid)
        finally:
            self._probing.discard(coid)
            self._resolver_wake.set()

    async def _probe_once(self, coid: str) -> None:
        order = self.tracker.get(coid)
        if order is None or coid not in self.resolver:
            return
        if not self.cooldown.may_submit(local_ms()) or self._acquire(RequestKind.QUERY) is not None:
            self.resolver.on_probe_failed(coid, local_ms())  # never probe into a limit
            return
        result = await self.driver.query(order.venue_symbol, coid)
        self._on_outcome(result.outcome)
        if coid not in self.resolver:
            return  # the stream resolved it meanwhile
        if result.state is not None:
            await self.apply_state(result.state)
        elif result.outcome.kind is OutcomeKind.NOT_FOUND:
            resolution = self.resolver.on_not_found(coid, local_ms())
            if resolution.status is ResolutionStatus.GONE:
                self.emit_all(self.tracker.on_gone(coid))
        else:
            self.resolver.on_probe_failed(coid, local_ms())

    async def _upkeep_loop(self) -> None:
        """Fetch fills the stream missed; renew the dead-man switch; bound the tracker's memory."""
        interval = self.driver.periodic_interval_s()
        next_periodic = time.monotonic()
        while True:
            await asyncio.sleep(IDLE_TICK_S)
            for order in self.tracker.short_of_fills(local_ms(), FILL_GRACE_MS):
                order.short_since_ms = local_ms()  # at most one fetch per grace period
                self.want_fills(order)
            if interval is not None and time.monotonic() >= next_periodic:
                next_periodic = time.monotonic() + interval
                working = {o.venue_symbol for o in self.tracker.orders.values() if not o.terminal}
                try:
                    await self.driver.periodic(working)
                except (SendFailed, VenueCallError) as exc:
                    self.log.warning("%s: periodic upkeep failed: %s", self.venue, exc)
            self.tracker.forget_terminal()

    async def _clock_loop(self) -> None:
        while True:
            await asyncio.sleep(self.driver.clock._refresh_interval_ms / 1000)
            try:
                await self.driver.sync_clock()
            except (SendFailed, VenueCallError) as exc:
                self.log.warning("%s: server time refresh failed: %s", self.venue, exc)

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(self, req: ReconcileRequest) -> None:
        """Reports for every listed coid and the fills since, then one snapshot (risk-and-state.md §17)."""
        await self.started.wait()
        # core asks for every symbol it has metadata for; one this venue does not list holds nothing
        # here (and querying it is an "invalid symbol" error that would fail the whole reconciliation).
        listed = self.driver.instruments
        symbols = [s for s in req.symbols if not listed or venue_symbol(s, self.venue) in listed]
        try:
            for coid in req.coids:
                order = self.tracker.get(coid)
                symbol = order.venue_symbol if order is not None else ""
                if not symbol and (known := req.coid_symbols.get(coid)):
                    # Core knows the leg's symbol: a coid this process does not track (it restarted
                    # while the order was in flight) is queried there; the venue not knowing it
                    # starts the not-found probes below, which settle it and report to core.
                    symbol = venue_symbol(known, self.venue) if "/" in known else known
                if not symbol:
                    symbol = await self._find_symbol(coid, symbols)  # an older core: no symbol given
                if not symbol:
                    continue
                result = await self.driver.query(symbol, coid)
                self._on_outcome(result.outcome)
                if result.state is not None:
                    await self.apply_state(result.state)
                elif result.outcome.kind is OutcomeKind.NOT_FOUND or result.outcome.may_exist:
                    if self.tracker.get(coid) is None:
                        self.tracker.sent(coid, symbol, Decimal(0), 0, 0, local_ms())
                    self.resolver.start(coid, local_ms())  # the probe rule decides, never one answer
                    self._resolver_wake.set()
                elif result.outcome.kind is not OutcomeKind.ACK:
                    raise VenueCallError(result.outcome)
            for symbol in symbols:
                self.apply_fills(
                    await self.driver.fetch_fills(venue_symbol(symbol, self.venue), req.fills_since_ms)
                )
            open_orders = await self.driver.open_orders()
            for state in open_orders:
                if state.client_order_id and self.tracker.get(state.client_order_id) is None:
                    self.emit_all(self.tracker.on_state(state, local_ms()))
            open_orders = await self._foreign_orders(open_orders)
            positions = await self.driver.positions()
            balances = await self.driver.balance()
        except (SendFailed, VenueCallError) as exc:
            if isinstance(exc, VenueCallError):
                self._on_outcome(exc.outcome)
            self._emit(self._snapshot(req, ok=False, error=str(exc)))
            return
        balance = next((b.wallet_balance for b in balances if b.asset == "USDT"), None)
        self._emit(
            self._snapshot(
                req,
                ok=True,
                error="",
                open_orders=[self._order_snapshot(s) for s in open_orders],
                positions=[
                    VenuePositionSnapshot(
                        symbol=self._canonical(p.venue_symbol),
                        size=plain(p.qty),
                        entry_price=plain(p.entry_price),
                        mark_price=plain(p.mark_price) if p.mark_price else None,
                    )
                    for p in positions
                    if p.qty != 0
                ],
                balance=plain(balance) if balance is not None else None,
            )
        )

    async def _foreign_orders(self, open_orders: list[VenueOrderState]) -> list[VenueOrderState]:
        """Open orders without our client-id prefix: reported (in the snapshot); cancelled as well
        under ``reconcile.cancel_foreign``, each then reported as the venue shows it after the cancel.

        A foreign order without a client id cannot be cancelled (orders are cancelled by client id
        only); it is reported and left. A cancel that fails is logged; the next reconciliation retries.
        """
        foreign = [s for s in open_orders if not is_our_coid(s.client_order_id)]
        if not foreign:
            return open_orders
        if not self.cancel_foreign:
            for s in foreign:
                self.log.warning(
                    "%s: foreign open order %s (%s, venue id %s) reported, left alone"
                    " (reconcile.cancel_foreign = false)",
                    self.venue,
                    s.client_order_id or "<no client id>",
                    s.venue_symbol,
                    s.venue_order_id,
                )
            return open_orders
        after: dict[int, VenueOrderState] = {}
        for s in foreign:
            label = f"{s.client_order_id or '<no client id>'} ({s.venue_symbol}, venue id {s.venue_order_id})"
            if not s.client_order_id:
                self.log.warning(
                    "%s: foreign open order %s has no client id: cannot cancel, left alone", self.venue, label
                )
                continue
            if self._acquire(RequestKind.CANCEL) is not None or not self.cooldown.may_cancel(local_ms()):
                self.log.warning(
                    "%s: foreign open order %s not cancelled now (rate limited)", self.venue, label
                )
                continue
            outcome = await self.driver.cancel(s.venue_symbol, s.client_order_id)
            self._on_outcome(outcome)
            if outcome.kind not in (OutcomeKind.ACK, OutcomeKind.NOT_FOUND):
                self.log.warning(
                    "%s: cancelling foreign order %s failed: %s", self.venue, label, outcome.message
                )
                continue
            self.log.warning(
                "%s: foreign open order %s cancelled (reconcile.cancel_foreign = true)", self.venue, label
            )
            result = await self.driver.query(s.venue_symbol, s.client_order_id)
            self._on_outcome(result.outcome)
            if result.state is not None:
                after[id(s)] = result.state
        return [after.get(id(s), s) for s in open_orders]

    async def _find_symbol(self, coid: str, symbols: Sequence[str]) -> str:
        """A coid core knows but this process does not (restarted): try each requested symbol."""
        for symbol in symbols:
            vs = venue_symbol(symbol, self.venue)
            result = await self.driver.query(vs, coid)
            if result.state is not None:
                return vs
        return venue_symbol(symbols[0], self.venue) if len(symbols) == 1 else ""

    def _canonical(self, vsym: str) -> str:
        instrument = self.driver.instruments.get(vsym)
        return instrument.symbol if instrument is not None else vsym

    def _order_snapshot(self, s: VenueOrderState) -> VenueOrderSnapshot:
        return VenueOrderSnapshot(
            coid=s.client_order_id,
            venue_order_id=s.venue_order_id,
            symbol=self._canonical(s.venue_symbol),
            side=s.side.value if s.side is not None else "",
            qty=plain(s.qty),
            price=plain(s.price) if s.price else None,
            filled_qty=plain(s.filled_qty),
            state=s.state.value,
        )

    def _snapshot(
        self,
        req: ReconcileRequest,
        ok: bool,
        error: str,
        open_orders: list[VenueOrderSnapshot] | None = None,
        positions: list[VenuePositionSnapshot] | None = None,
        balance: str | None = None,
    ) -> ReconcileSnapshot:
        return ReconcileSnapshot(
            venue=self.venue,
            reason=req.reason,
            ok=ok,
            error=error,
            open_orders=open_orders or [],
            positions=positions or [],
            balance=balance,
            t_gw_out=time.monotonic_ns(),
            gateway_pid=self.pid,
        )
