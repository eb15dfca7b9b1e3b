"""Rebuild core's trading state from journal records, deterministically (risk-and-state.md §15.5).

:class:`CoreState` is the state the journal describes: shadow book, live intents and their legs
(finished ones leave memory), idempotency windows and the persisted risk control. The engine can
apply each record as it journals it, so live state and replayed state are built by the same code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from decimal import Decimal, localcontext, setcontext
from pathlib import Path
from typing import Any, Final

import msgspec

from titan.risk.dedupe import CausationWindow, SeenIds
from titan.risk.state import RiskControlState
from titan.state.decimals import MONEY_CONTEXT, ZERO, money_enter
from titan.state.fsm import (
    TERMINAL_STATES,
    IntentStatus,
    LegFsm,
    LegProgress,
    LegState,
    LegStates,
    Transition,
    intent_status,
)
from titan.state.journal import TornTail, scan_journal
from titan.state.records import (
    CashRecord,
    CoidAdopted,
    FillRecord,
    FundingRecord,
    IntentAccepted,
    IntentDenied,
    JournalEntry,
    LegPlan,
    LegTransitionRecord,
    PolicyRecord,
    Record,
    RiskRecord,
)
from titan.state.shadow import FillEffect, ShadowBook, ShadowSnapshot

S = LegStates


class TrackedLeg(msgspec.Struct, gc=False):
    fsm: LegFsm
    signal_id: str
    venue: str
    leg: int
    account: str
    side: int
    qty: Decimal
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    fee_total: Decimal = ZERO
    venue_order_id: str = ""
    plan: LegPlan | None = None

    @property
    def avg_price(self) -> Decimal | None:
        if self.filled_qty <= 0:
            return None
        return MONEY_CONTEXT.divide(self.filled_notional, self.filled_qty)


class IntentOutcome(msgspec.Struct, frozen=True, gc=False):
    """What a finished intent came to: answers a duplicate CONFIRM after it left memory."""

    signal_id: str
    status: IntentStatus
    filled_qty: Decimal
    filled_notional: Decimal
    coids: tuple[str, ...]
    venue_errors: tuple[str, ...] = ()


class FinishedLeg(msgspec.Struct, frozen=True, gc=False):
    """Identity of a leg that left memory: a late fill still lands on the right position."""

    signal_id: str
    symbol: str
    venue: str
    account: str
    side: int
    leg: int


class TrackedIntent(msgspec.Struct, gc=False):
    accepted: IntentAccepted
    status: IntentStatus = IntentStatus.PENDING


class CheckViews(msgspec.Struct, frozen=True, gc=False):
    """The account/symbol views :class:`titan.risk.checks.CheckInputs` takes (same field names)."""

    positions: dict[str, Decimal]
    working_signed_qty: Decimal
    open_intents: int
    daily_pnl: Decimal
    equity: Decimal | None
    gross_exposure: Decimal


class CoreSnapshot(msgspec.Struct, frozen=True):
    """A deterministic, comparable picture of :class:`CoreState`."""

    last_seq: int
    shadow: ShadowSnapshot
    legs: tuple[TrackedLeg, ...]
    intents: tuple[tuple[str, IntentStatus], ...]
    risk: RiskControlState
    policy_hash: str | None
    accepted_ids: int
    illegal_transitions: int


class CoreState:
    def __init__(
        self,
        quote_asset: str = "USDT",
        signal_ids_kept: int = 1_000_000,
        causation_ttl_ms: int = 5_000,
        finished_kept: int = 100_000,
    ) -> None:
        self.shadow = ShadowBook(quote_asset)
        self.legs: dict[str, TrackedLeg] = {}
        self.intents: dict[str, TrackedIntent] = {}
        self.accepted_ids: SeenIds[str] = SeenIds(signal_ids_kept)
        self.journaled_ids: SeenIds[str] = SeenIds(signal_ids_kept)  # NATS envelope identities
        self.finished: dict[str, IntentOutcome] = {}  # bounded, oldest first
        self.finished_legs: dict[str, FinishedLeg] = {}  # bounded, oldest first
        self.finished_kept = finished_kept
        self._kept_order: dict[int, deque[str]] = {}  # id(bounded dict) → its keys, oldest first
        # The checks' per-symbol views (13, 16), kept as legs and intents change instead of scanned.
        self._open_by_symbol: dict[str, int] = {}
        self._working_by_symbol: dict[str, Decimal] = {}
        self.venue_errors: dict[str, list[str]] = {}  # live intents' venue rejection texts
        self.last_fill_ms: dict[str, int] = {}  # venue → latest execution time (reconciliation lookback)
        self.causation = CausationWindow(causation_ttl_ms)
        self.risk = RiskControlState()
        self.policy_document: str | None = None
        self.policy_hash: str | None = None
        self.last_seq = 0
        self.illegal_transitions = 0

    def reserve(self) -> None:
        """Preallocate the idempotency windows' digest tiers (a long-running process, not replay)."""
        self.accepted_ids.reserve()
        self.journaled_ids.reserve()
        self.shadow.seen_trades.reserve()

    # --- apply ----------------------------------------------------------------------------------

    def apply_entry(self, entry: JournalEntry) -> FillEffect | None:
        self.last_seq = entry.seq
        return self.apply(entry.record, entry.t_ms)

    def apply(self, record: Record, t_ms: int) -> FillEffect | None:
        """Apply one state change; returns the shadow effect for fills (trades to publish)."""
        # The three records of every intent first, most frequent first, then the rest.
        if isinstance(record, LegTransitionRecord):
            self._transition(record)
            return None
        if isinstance(record, FillRecord):
            return self._fill(record)
        if isinstance(record, IntentAccepted):
            self._accept(record, t_ms)
            return None
        match record:
            case IntentAccepted():
                self._accept(record, t_ms)
            case IntentDenied():
                for ident in record.dedupe_ids:
                    self.journaled_ids.add(ident)
                if not record.duplicate:
                    self.causation.record(record.causation_id, t_ms)
            case LegTransitionRecord():
                self._transition(record)
            case CoidAdopted():
                old = self.legs.get(record.coid)
                if old is not None:
                    self._add_working(old, -1)
                fsm = LegFsm(record.signal_id, record.coid, record.symbol, state=record.state)
                leg = TrackedLeg(fsm, record.signal_id, record.venue, record.leg, record.account, 0, ZERO)
                self.legs[record.coid] = leg
                self._add_working(leg, 1)
            case FillRecord():
                return self._fill(record)
            case FundingRecord():
                self.shadow.apply_funding(
                    record.account, record.venue, record.symbol, record.amount, record.ts_ms, record.asset
                )
            case CashRecord():
                self.shadow.set_cash(record.account, record.amount)
            case RiskRecord():
                self.risk = record.state
            case PolicyRecord():
                self.policy_document = record.document
                self.policy_hash = record.policy_hash
        return None

    def _accept(self, record: IntentAccepted, t_ms: int) -> None:
        self.accepted_ids.add(record.signal_id)
        for ident in record.dedupe_ids:
            self.journaled_ids.add(ident)
        self.causation.record(record.causation_id, t_ms)
        if record.signal_id not in self.intents:
            self._open_by_symbol[record.symbol] = self._open_by_symbol.get(record.symbol, 0) + 1
        self.intents[record.signal_id] = TrackedIntent(record)
        t_ns = record.t_mono_ns
        for plan in record.legs:
            # Validation and acceptance happened in this one step: both transitions carry its stamp.
            fsm = LegFsm(
                record.signal_id,
                plan.coid,
                record.symbol,
                S.ACCEPTED,  # state
                [  # transitions
                    Transition(S.RECEIVED, S.VALIDATED, t_ns, t_ms, None),
                    Transition(S.VALIDATED, S.ACCEPTED, t_ns, t_ms, None),
                ],
            )
            # Positional (keywords cost ~50 ns each): filled qty, filled notional, fees, venue order id.
            leg = TrackedLeg(
                fsm, record.signal_id, plan.venue, plan.leg, record.account, record.side, plan.qty,
                ZERO, ZERO, ZERO, "", plan,
            )  # fmt: skip
            old = self.legs.get(plan.coid)
            if old is not None:
                self._add_working(old, -1)
            self.legs[plan.coid] = leg
            self._add_working(leg, 1)

    def _transition(self, record: LegTransitionRecord) -> None:
        leg = self.legs.get(record.coid)
        if leg is None:
            return  # the order finished and left memory; the journal keeps its history
        if record.venue_order_id:
            leg.venue_order_id = record.venue_order_id
        if record.via_sent and leg.fsm.state is S.ACCEPTED:
            leg.fsm.advance(S.SENT, record.t_mono_ns, record.t_wall_ms, None)  # not terminal
        self._add_working(leg, -1)
        moved = leg.fsm.advance(record.to_state, record.t_mono_ns, record.t_wall_ms, record.reason)
        self._add_working(leg, 1)
        if not moved:
            self.illegal_transitions += 1
            return
        if record.to_state in _FAILED_LEG and record.reason:
            self.venue_errors.setdefault(leg.signal_id, []).append(record.reason)
        self._update_intent(leg.signal_id)

    def _fill(self, record: FillRecord) -> FillEffect:
        fill = record.fill
        leg = self.legs.get(fill.client_order_id)
        # One money context for the shadow book and the leg's new sums (applied below, between the
        # working-quantity updates, which keep running outside it as before).
        saved = money_enter()  # ``with localcontext(MONEY_CONTEXT)`` without a copy per call
        try:
            effect = self.shadow.apply_fill_in_context(fill)
            if effect.applied and leg is not None:
                filled_qty = leg.filled_qty + fill.qty
                filled_notional = leg.filled_notional + fill.qty * fill.price
                fee_total = leg.fee_total + fill.fee
        finally:
            setcontext(saved)
        if not effect.applied:
            return effect
        if fill.source == "TRADE" and fill.ts_ms > self.last_fill_ms.get(fill.venue, 0):
            self.last_fill_ms[fill.venue] = fill.ts_ms
        if leg is not None:
            self._add_working(leg, -1)
            leg.filled_qty, leg.filled_notional, leg.fee_total = filled_qty, filled_notional, fee_total
            self._add_working(leg, 1)
            self._update_intent(leg.signal_id)
        return effect

    def _update_intent(self, signal_id: str) -> None:
        tracked = self.intents.get(signal_id)
        if tracked is None:
            return
        plans = tracked.accepted.legs
        by_coid = self.legs
        if len(plans) == 1:  # the common case, without a comprehension and a generator
            only = by_coid.get(plans[0].coid)
            legs = [] if only is None else [only]
            finished = only is not None and only.fsm.state in TERMINAL_STATES
        else:
            legs = [leg for p in plans if (leg := by_coid.get(p.coid)) is not None]
            finished = bool(legs) and all(x.fsm.state in TERMINAL_STATES for x in legs)
        target = tracked.accepted.quantity - tracked.accepted.unallocated
        tracked.status = status_of(legs, target)
        if finished:
            # Finished: leave memory (bounded state); a late report is applied to the shadow only.
            del self.intents[signal_id]
            acc = tracked.accepted
            self._open_by_symbol[acc.symbol] -= 1  # its legs are terminal: none of them is working
            for plan in plans:
                gone = self.legs.pop(plan.coid, None)
                if gone is not None:
                    self._keep(self.finished_legs, plan.coid, FinishedLeg(
                        signal_id, acc.symbol, plan.venue, acc.account, acc.side, plan.leg))  # fmt: skip
            self._keep(self.finished, signal_id, self.outcome_of(signal_id, tracked.status, legs))
            self.venue_errors.pop(signal_id, None)

    def _keep(self, bounded: dict[str, Any], key: str, value: Any) -> None:
        order = self._kept_order.get(id(bounded))
        if order is None:
            order = self._kept_order[id(bounded)] = deque()
        if key not in bounded:
            order.append(key)
        bounded[key] = value
        if len(bounded) > self.finished_kept:
            # The deque, not next(iter(dict)): that scans every slot deleted at the front (O(n)).
            del bounded[order.popleft()]

    def outcome_of(self, signal_id: str, status: IntentStatus, legs: list[TrackedLeg]) -> IntentOutcome:
        errors = self.venue_errors.get(signal_id)
        if len(legs) == 1:  # the common case, without generators and a context switch: same sums
            # A leg's amounts are sums that started at ZERO, so 0 + x is x (same digits, same
            # exponent): the outcome shares the leg's Decimal objects (100 000 outcomes are kept).
            leg = legs[0]
            return IntentOutcome(
                signal_id,
                status,
                leg.filled_qty,
                leg.filled_notional,
                (leg.fsm.client_order_id,),
                tuple(errors) if errors else (),
            )
        with localcontext(MONEY_CONTEXT):
            return IntentOutcome(
                signal_id,
                status,
                sum((x.filled_qty for x in legs), ZERO),
                sum((x.filled_notional for x in legs), ZERO),
                tuple(x.fsm.client_order_id for x in legs),
                tuple(self.venue_errors.get(signal_id, ())),
            )

    def outcome(self, signal_id: str) -> IntentOutcome | None:
        """The intent's current (live) or final outcome; None when unknown."""
        tracked = self.intents.get(signal_id)
        if tracked is None:
            return self.finished.get(signal_id)
        legs = [self.legs[p.coid] for p in tracked.accepted.legs if p.coid in self.legs]
        return self.outcome_of(signal_id, tracked.status, legs)

    # --- views the checks need -------------------------------------------------------------------

    def _add_working(self, leg: TrackedLeg, sign: int) -> None:
        """Add (``sign`` 1) or take away (−1) a leg's part of its symbol's working quantity."""
        if leg.side == 0 or leg.fsm.state in TERMINAL_STATES:
            return
        open_qty = MONEY_CONTEXT.subtract(leg.qty, leg.filled_qty)
        if open_qty <= 0:
            return
        symbol = leg.fsm.symbol
        part = open_qty if leg.side * sign > 0 else -open_qty
        self._working_by_symbol[symbol] = MONEY_CONTEXT.add(self._working_by_symbol.get(symbol, ZERO), part)

    def open_intents(self, symbol: str) -> int:
        """Non-terminal intents for ``symbol`` (kept up to date, O(1))."""
        return self._open_by_symbol.get(symbol, 0)

    def working_signed_qty(self, symbol: str) -> Decimal:
        """W: signed open quantity of the symbol's working legs (kept up to date, O(1))."""
        return self._working_by_symbol.get(symbol, ZERO)

    def scan_open_intents(self, symbol: str) -> int:
        """:meth:`open_intents` counted from scratch (tests compare the two)."""
        return sum(1 for t in self.intents.values() if t.accepted.symbol == symbol)

    def scan_working_signed_qty(self, symbol: str) -> Decimal:
        """:meth:`working_signed_qty` summed from scratch (tests compare the two)."""
        total = ZERO
        for leg in self.legs.values():
            if not leg.fsm.terminal and leg.fsm.symbol == symbol:
                total += leg.side * max(leg.qty - leg.filled_qty, ZERO)
        return total

    def check_views(self, account: str, symbol: str, now_ms: int, daily_net: bool = True) -> CheckViews:
        positions, equity, gross = self.shadow.account_view(account, symbol)
        return CheckViews(
            positions=positions,
            working_signed_qty=self.working_signed_qty(symbol),
            open_intents=self.open_intents(symbol),
            daily_pnl=self.shadow.daily_pnl(now_ms, daily_net),
            equity=equity,
            gross_exposure=gross,
        )

    def snapshot(self) -> CoreSnapshot:
        return CoreSnapshot(
            last_seq=self.last_seq,
            shadow=self.shadow.snapshot(),
            legs=tuple(_copy_leg(self.legs[k]) for k in sorted(self.legs)),
            intents=tuple((k, self.intents[k].status) for k in sorted(self.intents)),
            risk=self.risk,
            policy_hash=self.policy_hash,
            accepted_ids=len(self.accepted_ids),
            illegal_transitions=self.illegal_transitions,
        )


_FAILED_LEG: Final = frozenset({LegState.REJECTED, LegState.FAILED, LegState.DENIED})


class IS:
    """:class:`IntentStatus` members as plain class attributes (cheaper to read on hot paths)."""

    PENDING: Final = IntentStatus.PENDING
    PARTIALLY_FILLED: Final = IntentStatus.PARTIALLY_FILLED
    EXECUTED: Final = IntentStatus.EXECUTED
    PARTIALLY_COMPLETED: Final = IntentStatus.PARTIALLY_COMPLETED
    CANCELLED: Final = IntentStatus.CANCELLED
    FAILED_WITH_EXPOSURE: Final = IntentStatus.FAILED_WITH_EXPOSURE
    REJECTED: Final = IntentStatus.REJECTED
    EXPIRED: Final = IntentStatus.EXPIRED


def status_of(legs: list[TrackedLeg], target_qty: Decimal) -> IntentStatus:
    """:func:`~titan.state.fsm.intent_status` over tracked legs; one leg without building progress
    structs (same rules, same order)."""
    if len(legs) != 1:
        return intent_status([LegProgress(x.fsm.state, x.filled_qty) for x in legs], target_qty)
    leg = legs[0]
    state, filled = leg.fsm.state, leg.filled_qty
    if target_qty > 0 and filled >= target_qty:
        return IS.EXECUTED
    if state not in TERMINAL_STATES:
        return IS.PARTIALLY_FILLED if filled > 0 else IS.PENDING
    failed = state in _FAILED_LEG
    if filled > 0:
        return IS.FAILED_WITH_EXPOSURE if failed else IS.PARTIALLY_COMPLETED
    if failed:
        return IS.REJECTED
    if state is S.EXPIRED:
        return IS.EXPIRED
    return IS.CANCELLED


def _copy_leg(leg: TrackedLeg) -> TrackedLeg:
    fsm = msgspec.structs.replace(leg.fsm, transitions=list(leg.fsm.transitions))
    return msgspec.structs.replace(leg, fsm=fsm)


def replay_entries(entries: Iterable[JournalEntry], state: CoreState | None = None) -> CoreState:
    state = state or CoreState()
    for entry in entries:
        state.apply_entry(entry)
    return state


def replay_journal(path: str | Path, state: CoreState | None = None) -> tuple[CoreState, TornTail | None]:
    """Rebuild state from the journal at ``path``; also returns where a torn tail was dropped."""
    scan = scan_journal(path)
    return replay_entries(scan.entries, state), scan.torn


def render_state(state: CoreState) -> bytes:
    """Canonical JSON of the replayed state (``titan replay``): byte-identical across runs."""
    return msgspec.json.encode(state.snapshot(), order="deterministic")
