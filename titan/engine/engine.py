"""The sans-I/O trading engine `core` runs: commands, bridge messages and venue reports in; replies,
orders, typed events and journal records out.

Deterministic given its input sequence and the injected clock: no I/O, no clock reads but through
:class:`~titan.engine.ports.Clock`, no randomness. Every state change is a journal record, appended
(:class:`~titan.engine.ports.Journal`) and then applied to :class:`~titan.state.replay.CoreState` by
the same code replay uses, *before* anything it causes leaves through the outbox.

Hot path (issue #4, core CPU per intent): CONFIRM reuses PREPARE's approval when nothing the checks
read has changed since (:meth:`Engine._reusable` says exactly what voids it; otherwise the checks
run again in full); a fill's records are journaled and its CONFIRM answered before its events are
built; ``exposure.update`` after fills is coalesced to one per ``EXPOSURE_COALESCE_NS`` (the last
state always follows). :meth:`Engine.resume` sends again what a crashed core's last records caused.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal, localcontext
from types import MappingProxyType
from typing import Any, Final

import msgspec

from titan.engine.events import (
    drift_event,
    exposure_event,
    fill_event,
    report_after_sent,
    report_event,
    trade_event,
    truth_event,
)
from titan.engine.ports import Clock, FlagFiles, Journal, Outbox, Quote, Quotes
from titan.engine.settings import EngineSettings
from titan.events.payloads import DlqEvent, DriftEvent, RejectEvent, ShadowFillEvent
from titan.messages import (
    ACK,
    CANCELED,
    DENIED,
    EXPIRED,
    FAILED,
    FILL,
    FILL_CONFLICT,
    REJECTED,
    UNKNOWN,
    Abort,
    CancelRequest,
    Confirm,
    IntakeDone,
    Intent,
    OperatorCommand,
    OrderRequest,
    PlaceIntent,
    Prepare,
    ReconcileRequest,
    ReconcileSnapshot,
    Reply,
    Stages,
    VenueReport,
    VenueStatus,
)
from titan.risk.checks import Approval, CheckInputs, Denial, RiskIntent, TickerView, run_checks, still_valid
from titan.risk.drift import detect_drift
from titan.risk.intake import IntakeError, risk_intent, with_size
from titan.risk.policy import PolicyError, RiskPolicy, RiskState, parse_policy
from titan.risk.reasons import DLQ_PREFIX, ReasonCode
from titan.risk.state import HaltMode, HaltState, RiskControl
from titan.routing.coid import client_order_id, flatten_signal_id, is_our_coid
from titan.routing.router import InstrumentMeta
from titan.state.decimals import MONEY_CONTEXT, ZERO, plain
from titan.state.fsm import LEGAL_TRANSITIONS, TERMINAL_STATES, LegState, LegStates
from titan.state.reconcile import position_correction
from titan.state.records import (
    CashRecord,
    CoidAdopted,
    FillRecord,
    IntentAccepted,
    IntentDenied,
    JournalEntry,
    LegPlan,
    LegTransitionRecord,
    PolicyRecord,
    Record,
    RiskRecord,
)
from titan.state.replay import CoreState, TrackedLeg
from titan.state.shadow import Fill, FillEffect
from titan.symbols import venue_symbol

log = logging.getLogger("titan.core.engine")

S = LegStates
_OPEN: Final = HaltMode.OPEN  # plain globals: Enum class attributes are slower to read
_SOFT: Final = HaltMode.SOFT
_HARD: Final = HaltMode.HARD
_FIRST_OUTCOME_PENDING: Final = frozenset({S.ACCEPTED, S.SENT})
_LEG_FAILED: Final = frozenset({S.REJECTED, S.DENIED, S.FAILED})
_REPORT_STATE: Final[dict[str, LegState]] = {
    ACK: S.ACKED,
    REJECTED: S.REJECTED,
    DENIED: S.DENIED,
    FAILED: S.FAILED,
    UNKNOWN: S.UNKNOWN,
    CANCELED: S.CANCELED,
    EXPIRED: S.EXPIRED,
}
# Outcomes a gateway reports for an order that never left it: no SENT before them.
_NOT_SENT: Final = frozenset({DENIED, FAILED})
_CLOSE_TYPES: Final = frozenset({"CLOSE", "CLOSE_LONG", "CLOSE_SHORT"})
_LEGACY_MIN_NOTIONAL: Final = Decimal(10)
RECONCILE_ANSWER_NS: Final = 10_000_000_000
# exposure.update after fills is coalesced: at most one per window, the last state always published
# (nats.md §9.6 asks for it "after each fill"; a burst of fills gets one event at the window's end).
EXPOSURE_COALESCE_NS: Final = 100_000_000
DAY_MS: Final = 86_400_000
# Quantities of the latest applied fills by (venue, trade id): a repeat of one of them with another
# quantity is a conflicting duplicate (R5). The shadow's dedupe keeps ids only; conflicts come from
# stream replays and re-fetches soon after the fill, so the latest ones are enough.
FILL_QTY_KEPT: Final = 16_384
_NO_METAS: Final[Mapping[str, InstrumentMeta]] = MappingProxyType({})
_NO_COOLDOWNS: Final[Mapping[str, int]] = MappingProxyType({})
_NO_VENUES: Final[frozenset[str]] = frozenset()
_NO_TICKERS: Final[Mapping[str, Quote]] = MappingProxyType({})


class Prepared(msgspec.Struct, gc=False):
    """A PREPARE waiting for its CONFIRM (memory only: a restart forgets it, CONFIRM then says so).

    ``approval`` is PREPARE's verdict with what it depended on (see :meth:`Engine._reusable`).
    """

    intent: Intent
    risk: RiskIntent
    notional: Decimal
    prepared_ns: int
    t_ingress_ms: int
    approval: Approval | None = None
    epoch: int = -1
    tickers: Mapping[str, TickerView] = {}
    effective_state: RiskState = RiskState.NORMAL
    halt: HaltMode = HaltMode.OPEN
    armed: bool = False
    cooling: frozenset[str] = frozenset()
    day: int = 0


class PendingReply(msgspec.Struct, gc=False):
    """A CONFIRM answered when every leg has its first venue outcome, or at the deadline."""

    conn: int
    req: int
    deadline_ns: int
    stages: Stages


class Counters(msgspec.Struct, gc=False):
    """Local counters the process publishes on its status-board row."""

    intents_accepted: int = 0
    replies: int = 0
    denials: dict[str, int] = msgspec.field(default_factory=dict)
    duplicates: int = 0
    prepared_swept: int = 0
    full_rechecks: int = 0  # CONFIRMs whose PREPARE approval could not be reused
    illegal_reports: int = 0
    foreign_orders: int = 0
    drift_events: int = 0  # drift events published (titan_reconciliation_drift_detected_total)
    conflicting_fills: int = 0  # conflicting duplicate fills dropped (same trade id, other qty; R5)


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        clock: Clock,
        quotes: Quotes,
        out: Outbox,
        journal: Journal,
        files: FlagFiles | None = None,
        state: CoreState | None = None,
    ) -> None:
        self.s = settings
        self.clock = clock
        self.quotes = quotes
        self.out = out
        self.journal = journal
        self.files = files
        self.state = state or CoreState()
        self.policy: RiskPolicy = settings.policy
        self.control = RiskControl(
            heartbeat_required=settings.heartbeat_required,
            heartbeat_timeout_ms=settings.heartbeat_timeout_ms,
            escalate_only_events=settings.risk_state_events == "escalate_only",
        )
        self.prepared: dict[str, Prepared] = {}
        self.pending: dict[str, PendingReply] = {}
        # (deadline, signal id) in deadline order: the next one is found in O(1), not by a scan.
        self.pending_order: deque[tuple[int, str]] = deque()
        self.counters = Counters()
        self.reconciling: dict[str, int] = {}  # venue → when its request went out (ns)
        self.reconciled_once: set[str] = set()
        self.answered_by: dict[str, int] = {}  # venue → pid of the gateway that last reconciled it
        self.cooldown_until_ms: dict[str, int] = {}
        self.supervisor_halt = False
        self.fatal: str | None = None  # set when the engine must stop (reconcile start timeout)
        self.started_ns = 0
        self.next_truth_ns = 0
        self.next_sweep_ns = 0
        self.next_periodic_reconcile_ns = 0
        self.armed_reason = ""
        # Bumped by every change the pre-trade checks read outside the ticker table and the clock
        # (journal records, marks, venue health): a PREPARE approval is reused only within one epoch.
        self.epoch = 0
        self.exposure_dirty = False
        self.next_exposure_ns = 0
        self._venue_symbols: dict[tuple[str, str], str] = {}
        self._confirm_tickers: Mapping[str, Quote] = _NO_TICKERS  # rows CONFIRM just read
        self.fill_qty: dict[tuple[str, str], Decimal] = {}  # latest FILL_QTY_KEPT applied fills
        self._fill_qty_order: deque[tuple[str, str]] = deque()  # their keys, oldest first

    # --- start ----------------------------------------------------------------------------------

    def restore(self, entries: Iterable[JournalEntry]) -> int:
        """Rebuild state from journal entries (same code as live); returns how many were applied."""
        n = 0
        for entry in entries:
            self.state.apply_entry(entry)
            if isinstance(entry.record, FillRecord):
                self._remember_fill(entry.record.fill)
            n += 1
        return n

    def start(self, armed_file: bool | None, halt_file: HaltState | None, first_start: bool) -> None:
        """After :meth:`restore`: adopt persisted risk control and the flag files, then reconcile.

        ``armed_file``/``halt_file`` are what the state directory holds (None: no such file). A first
        start (empty journal) arms when ``execution.armed_at_start`` is set and books paper cash.
        """
        now_ns, now_ms = self.clock.mono_ns(), self.clock.wall_ms()
        self.started_ns = now_ns
        self.control = RiskControl(
            self.state.risk,
            heartbeat_required=self.s.heartbeat_required,
            heartbeat_timeout_ms=self.s.heartbeat_timeout_ms,
            started_ms=now_ms,
            escalate_only_events=self.s.risk_state_events == "escalate_only",
        )
        if self.state.policy_document is not None:
            try:
                self.policy = parse_policy(self.state.policy_document)
            except PolicyError:
                log.error("journaled policy update no longer parses; keeping the configured policy")
        armed = bool(armed_file) or (first_start and self.s.armed_at_start)
        halt = halt_file or HaltState()
        if first_start and self.s.initial_cash is not None:
            self._record(CashRecord(self.s.account, self.s.initial_cash), now_ms, now_ns)
        if armed != self.control.armed or halt != self.control.halt:
            self.control.set_armed(armed)
            self.control.set_halt(halt)
            self.armed_reason = "armed at start (execution.armed_at_start)" if armed else ""
            self._persist_control(now_ms, now_ns)
        elif first_start and self.files is not None:
            self.files.save(armed, self.armed_reason, halt)
        for venue in self.s.venues:
            if venue in self.s.reconcile_venues:
                self._request_reconcile(venue, "start", now_ns)
            else:
                self.reconciled_once.add(venue)
        self.next_truth_ns = now_ns  # first truth snapshot at start
        self.next_sweep_ns = now_ns + self.s.prepare_sweep_ms * 1_000_000
        self.next_periodic_reconcile_ns = now_ns + self.s.reconcile_interval_ms * 1_000_000
        self.on_timer()

    def resume(self, entries: Iterable[JournalEntry]) -> int:
        """Apply the journal's tail whose outputs may not all have left core, and send them again.

        ``entries`` follow the last record whose outputs were all pushed (the caller's mark; the
        entries before it went through :meth:`restore`). Each is applied with replay's code, then
        what the live engine sent for it is sent again, rebuilt from the record and the state:
        accepted intents' orders, cancels, execution reports, venue rejections, fills, closed
        trades and exposure. Receivers deduplicate: gateways by client order id, JetStream by the
        events' deterministic Nats-Msg-Id (report seq, trade id, fill trade id). Returns how many
        entries were applied. What is not rebuilt (not in the records): shadow fills, NATS
        intake rejections and DLQ copies, drift events.
        """
        n = 0
        state = self.state
        last_fills: dict[str, tuple[Decimal, Decimal]] = {}
        for entry in entries:
            record, t_ms = entry.record, entry.t_ms
            now_ns = self.clock.mono_ns()
            coid = (
                record.coid
                if isinstance(record, LegTransitionRecord)
                else record.fill.client_order_id
                if isinstance(record, FillRecord)
                else None
            )
            leg = None if coid is None else state.legs.get(coid)
            tracked = None if leg is None else state.intents.get(leg.signal_id)
            accepted = None if tracked is None else tracked.accepted
            before = None if leg is None else (leg.fsm.state, len(leg.fsm.transitions))
            effect = state.apply_entry(entry)
            self.epoch += 1
            n += 1
            if isinstance(record, IntentAccepted):
                self._send_orders(record, t_ms, now_ns, None)
            elif isinstance(record, LegTransitionRecord) and leg is not None and before is not None:
                if len(leg.fsm.transitions) == before[1]:
                    continue  # refused transition: it sent nothing
                via_sent = record.via_sent and before[0] is S.ACCEPTED
                self._emit_reports(leg, accepted, via_sent, last_fills.pop(record.coid, None), t_ms)
                if record.to_state is S.REJECTED and accepted is not None:
                    self.out.event(
                        RejectEvent(
                            reason="venue_rejected",
                            intent_id=leg.signal_id,
                            brain_instance_id=accepted.correlation_id or leg.signal_id,
                            timestamp=t_ms,
                            code=ReasonCode.VENUE_REJECTED,
                            message=record.reason or "",
                            venue=leg.venue,
                            message_id=record.coid,
                        )
                    )
                elif record.to_state is S.PENDING_CANCEL and leg.plan is not None:
                    self.out.order(
                        leg.venue,
                        CancelRequest(
                            record.coid,
                            leg.venue,
                            leg.fsm.symbol,
                            leg.plan.venue_symbol,
                            record.reason or "",
                            now_ns,
                        ),
                    )
            elif isinstance(record, FillRecord) and effect is not None and effect.applied:
                fill = record.fill
                self._remember_fill(fill)
                last_fills[fill.client_order_id] = (fill.qty, fill.price)
                self.out.event(fill_event(fill, leg, accepted, None, t_ms))
                for trade in effect.trades:
                    self.out.event(trade_event(trade, t_ms, accepted.correlation_id if accepted else None))
                self.exposure_dirty = True
        return n

    @property
    def ready(self) -> bool:
        """Accepting intents: every venue reconciled once since start."""
        return len(self.reconciled_once) == len(self.s.venues)

    @property
    def halt_mode(self) -> HaltMode:
        return _HARD if self.supervisor_halt else self.control.halt.state

    # --- journal --------------------------------------------------------------------------------

    def _record(self, record: Record, now_ms: int, now_ns: int) -> FillEffect | None:
        """Journal first, then apply with replay's code: nothing leaves core before its record."""
        seq = self.journal.append(record, now_ms, now_ns)
        self.epoch += 1
        self.state.last_seq = seq
        return self.state.apply(record, now_ms)

    def _persist_control(self, now_ms: int, now_ns: int) -> None:
        self._record(RiskRecord(self.control.persisted()), now_ms, now_ns)
        if self.files is not None:
            self.files.save(self.control.armed, self.armed_reason, self.control.halt)

    # --- check inputs ---------------------------------------------------------------------------

    def quote(self, venue: str, symbol: str) -> Quote | None:
        return self.quotes.get(self.s.price_sources.get(venue, venue), symbol)

    def tickers(self, symbol: str) -> dict[str, Quote]:
        """The ticker rows of ``symbol`` on every venue listing it (venue → row; absent rows left out)."""
        rows: dict[str, Quote] = {}
        get, sources = self.quotes.get, self.s.price_sources
        for venue in self.s.instruments.get(symbol, _NO_METAS):
            quote = get(sources.get(venue, venue), symbol)  # self.quote(), inlined
            if quote is not None:
                rows[venue] = quote
        return rows

    def active_cooldowns(self, now_ms: int) -> Mapping[str, int]:
        if not self.cooldown_until_ms:
            return _NO_COOLDOWNS
        return {v: t for v, t in self.cooldown_until_ms.items() if t > now_ms}

    def check_inputs(
        self, intent: RiskIntent, now_ms: int, now_ns: int, known_new: bool = False
    ) -> CheckInputs:
        """``known_new``: the caller has just seen that the signal id was never accepted."""
        # CoreState.check_views, inlined (no intermediate struct).
        state, symbol = self.state, intent.symbol
        positions, equity, gross = state.shadow.account_view(intent.account, symbol)
        metas = self.s.instruments.get(intent.symbol, _NO_METAS)
        tickers = self.tickers(intent.symbol)
        cooldowns = self.active_cooldowns(now_ms)
        return CheckInputs(  # positional: a call with over 15 keywords goes through a dict (~2 µs)
            intent,  # intent
            self.policy,  # policy
            self.s.checks,  # config
            now_ms,  # now_ms
            now_ns,  # now_mono_ns
            self.control.effective_state(now_ms),  # effective_state
            self.control.armed or intent.flatten,  # armed
            _OPEN if intent.flatten else self.halt_mode,  # halt
            not known_new and intent.signal_id in state.accepted_ids,  # duplicate_signal_id
            self.state.causation.is_duplicate(intent.causation_id, now_ms),  # duplicate_causation_id
            self.s.venues,  # registered_venues
            frozenset(self.reconciling) if self.reconciling else _NO_VENUES,  # reconciling_venues
            cooldowns,  # cooldown_until_ms
            metas,  # instruments
            tickers,  # tickers
            positions,  # positions
            state.working_signed_qty(symbol),  # working_signed_qty
            state.open_intents(symbol),  # open_intents
            state.shadow.daily_pnl(now_ms, self.s.daily_loss_net),  # daily_pnl
            equity,  # equity
            gross,  # gross_exposure
        )

    def _deny_counted(self, code: str) -> None:
        self.counters.denials[code] = self.counters.denials.get(code, 0) + 1

    # --- FastPath -------------------------------------------------------------------------------

    def on_command(self, cmd: Prepare | Confirm | Abort) -> None:
        now_ns, now_ms = self.clock.mono_ns(), self.clock.wall_ms()
        stages = Stages(cmd.t_read, cmd.t_ring, now_ns)  # t_read, t_ring, t_core_in
        fields: dict[str, Any] | None
        if isinstance(cmd, Abort):
            fields = self._abort(cmd.signal_id)
        elif not self.ready:
            sid = cmd.intent.signal_id if isinstance(cmd, Prepare) else cmd.signal_id
            code = ReasonCode.ENGINE_NOT_READY
            fields = {
                "signal_id": sid,
                "rejected": True,
                "reason": code,
                "error": code,
                "message": "core is reconciling with the venues",
            }
        elif isinstance(cmd, Prepare):
            fields = self._prepare(cmd.intent, now_ns, now_ms)
        else:
            fields = self._confirm(cmd, stages, now_ns, now_ms)
        if fields is not None:  # None: answered when the legs' first outcomes arrive
            self._reply(cmd.conn, cmd.req, fields, stages)

    def _reply(self, conn: int, req: int, fields: dict[str, Any], stages: Stages) -> None:
        self.counters.replies += 1
        self.out.reply(Reply(conn, req, fields, stages))

    @staticmethod
    def _denied(key: str, sid: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
        return {"signal_id": sid, key: False, "rejected": True, "reason": code, "message": message, **extra}

    def _size_notional(self, intent: Intent, account: str) -> Decimal:
        """fastpath.md §8 step 2: ``position_size`` when > 0, else the configured sizer (USD)."""
        if intent.position_size:  # exact from its text: no context needed
            proposed = Decimal(intent.position_size)
            if proposed > 0:
                return proposed
        with localcontext(MONEY_CONTEXT):
            if self.s.sizing == "fixed_notional":
                return self.s.fixed_notional
            equity = self.state.shadow.equity(account) or ZERO
            conf = Decimal(str(intent.confidence if intent.confidence is not None else 0))
            conf_pct = conf * 100 if conf <= 1 else conf
            lev = Decimal(str(intent.leverage)) if intent.leverage else Decimal(1)
            legacy = equity * Decimal("0.02") * (conf_pct / 100 * Decimal("0.25")) / lev
            return max(_LEGACY_MIN_NOTIONAL, legacy)

    def _prepare(self, intent: Intent, now_ns: int, now_ms: int) -> dict[str, Any]:
        sid = intent.signal_id
        if sid in self.state.accepted_ids:
            self._deny_counted(ReasonCode.DUPLICATE_SIGNAL_ID)
            return self._denied(
                "prepared", sid, ReasonCode.DUPLICATE_SIGNAL_ID, f"signal {sid} was already confirmed"
            )
        try:
            base = risk_intent(intent, ZERO)
            notional = self._size_notional(intent, base.account)
        except (IntakeError, ArithmeticError, ValueError) as exc:
            self._deny_counted(ReasonCode.INVALID_INTENT)
            return self._denied("prepared", sid, ReasonCode.INVALID_INTENT, str(exc))
        ref = base.entry_zone[0] if base.entry_zone and base.entry_zone[0] > 0 else None
        if ref is None:
            metas = self.s.instruments.get(base.symbol, {})
            quote = next((q for v in metas if (q := self.quote(v, base.symbol)) is not None), None)
            ref = None if quote is None else quote.mid
        qty = ZERO if ref is None or ref <= 0 else MONEY_CONTEXT.divide(notional, ref)
        risk = with_size(base, qty)
        inputs = self.check_inputs(risk, now_ms, now_ns, known_new=True)  # tested on entry
        verdict = run_checks(inputs)
        if isinstance(verdict, Denial):
            code = self._fastpath_code(verdict.code)
            self._deny_counted(code)
            return self._denied("prepared", sid, code, verdict.text)
        # A repeat PREPARE of a prepared id replaces it and restarts the TTL.
        cooldowns = inputs.cooldown_until_ms
        self.prepared[sid] = Prepared(  # positional (keywords cost ~50 ns each here)
            intent,
            risk,
            notional,
            now_ns,
            now_ms,
            verdict,  # approval
            self.epoch,  # epoch
            inputs.tickers,  # tickers
            inputs.effective_state,  # effective_state
            inputs.halt,  # halt
            inputs.armed,  # armed
            frozenset(cooldowns) if cooldowns else _NO_VENUES,  # cooling
            now_ms // DAY_MS,  # day
        )
        legs = verdict.legs
        quantity = ZERO + legs[0].qty if len(legs) == 1 else sum((leg.qty for leg in legs), ZERO)
        return {
            "signal_id": sid,
            "prepared": True,
            "position_size": float(notional),
            "quantity": plain(quantity),
            "order_type": _order_type_label(verdict),
        }

    @staticmethod
    def _fastpath_code(code: ReasonCode) -> str:
        return ReasonCode.EXECUTION_DISABLED_BY_OPERATOR if code is ReasonCode.SYSTEM_DISARMED else code

    def _confirm(self, cmd: Confirm, stages: Stages, now_ns: int, now_ms: int) -> dict[str, Any] | None:
        sid = cmd.signal_id
        if sid in self.state.accepted_ids:
            self.counters.duplicates += 1
            fields = self.outcome_fields(sid, final=False)
            fields["duplicate"] = True
            return fields
        prep = self.prepared.pop(sid, None)  # deleted in every case (fastpath.md §9)
        if prep is None:
            return self._denied(
                "executed", sid, ReasonCode.PREPARE_NOT_FOUND, "CONFIRM received without prior PREPARE"
            )
        age_ms = (now_ns - prep.prepared_ns) // 1_000_000
        if age_ms > self.s.prepare_ttl_ms:
            return {
                "signal_id": sid,
                "executed": False,
                "rejected": True,
                "reason": ReasonCode.STALE_SIGNAL,
                "age_ms": age_ms,
                "max_age_ms": self.s.prepare_ttl_ms,
            }
        halt = self.halt_mode
        if halt is _HARD or (halt is _SOFT and not prep.risk.reduce_only):
            return self._denied("executed", sid, ReasonCode.SYSTEM_HALTED, f"System halted ({halt.value})")
        if not self.control.armed:
            return {
                "signal_id": sid,
                "executed": False,
                "rejected": True,
                "reason": ReasonCode.EXECUTION_DISABLED_BY_OPERATOR,
                "master_arm": False,
            }
        self._confirm_tickers = _NO_TICKERS
        verdict: Approval | Denial | None = self._reusable(prep, now_ms, now_ns)
        if verdict is None:
            self.counters.full_rechecks += 1
            verdict = run_checks(self.check_inputs(prep.risk, now_ms, now_ns, known_new=True))
        if isinstance(verdict, Denial):
            code = self._fastpath_code(verdict.code)
            self._deny_counted(code)
            self._record(IntentDenied(sid, code, verdict.text, prep.risk.causation_id), now_ms, now_ns)
            return self._denied("executed", sid, code, verdict.text)
        intent = prep.intent
        self._accept(
            prep.risk, verdict, intent.t_signal_ms, prep.t_ingress_ms, sid, (), now_ms, now_ns, stages
        )
        if self.s.shadow_fills:
            self._shadow_fill(intent, prep.risk, prep.t_ingress_ms, now_ms)
        self._confirm_tickers = _NO_TICKERS
        deadline_ns = now_ns + self.s.confirm_reply_deadline_ms * 1_000_000
        self.pending[sid] = PendingReply(cmd.conn, cmd.req, deadline_ns, stages)
        self._add_pending_deadline(deadline_ns, sid)
        return None

    def _reusable(self, prep: Prepared, now_ms: int, now_ns: int) -> Approval | None:
        """PREPARE's approval, when CONFIRM's run of the same checks could not decide differently.

        It is void (None: run the checks again) when anything they read changed since PREPARE:
        - ``epoch``: any journal record (positions, working orders, open intents, fills, cash, daily
          PnL, policy, persisted risk state, arm, halt), a mark update, a venue's reconciliation or
          cooldown state;
        - effective risk state (breaker, Brain heartbeat), halt mode (incl. the supervisor's), arm,
          the set of venues in an active cooldown, the UTC day (daily loss);
        - :func:`~titan.risk.checks.still_valid`: a ticker row's book, its freshness, the intent's
          freshness window.
        The prepared TTL is the caller's check.
        """
        approval = prep.approval
        if approval is None or prep.epoch != self.epoch:
            return None
        risk = prep.risk
        if (
            self.control.effective_state(now_ms) is not prep.effective_state
            or (_OPEN if risk.flatten else self.halt_mode) is not prep.halt
            or (self.control.armed or risk.flatten) != prep.armed
            or now_ms // DAY_MS != prep.day
            or (
                (bool(self.cooldown_until_ms) or bool(prep.cooling))
                and frozenset(self.active_cooldowns(now_ms)) != prep.cooling
            )
        ):
            return None
        tickers = self.tickers(risk.symbol)
        if not still_valid(risk, self.s.checks, self.policy, prep.tickers, tickers, now_ms, now_ns):
            return None
        self._confirm_tickers = tickers
        return approval

    def _venue_symbol(self, symbol: str, venue: str) -> str:
        key = (symbol, venue)
        spelled = self._venue_symbols.get(key)
        if spelled is None:
            spelled = self._venue_symbols[key] = venue_symbol(symbol, venue)
        return spelled

    def _add_pending_deadline(self, deadline_ns: int, sid: str) -> None:
        order = self.pending_order
        if order and order[-1][0] > deadline_ns:  # the clock or the setting went back: keep it sorted
            self.pending_order = deque(sorted((*order, (deadline_ns, sid))))
        else:
            order.append((deadline_ns, sid))

    def _abort(self, sid: str) -> dict[str, Any]:
        if sid in self.state.accepted_ids:
            return {"signal_id": sid, "aborted": False, "reason": ReasonCode.ALREADY_CONFIRMED}
        self.prepared.pop(sid, None)
        return {"signal_id": sid, "aborted": True}

    def outcome_fields(self, sid: str, final: bool) -> dict[str, Any]:
        """The CONFIRM reply for an accepted intent (fastpath.md §9, reply-timing table)."""
        outcome = self.state.outcome(sid)
        fields: dict[str, Any] = {"signal_id": sid}
        if outcome is None:
            fields.update(executed=True, status="UNKNOWN")
            return fields
        fields["order_ids"] = list(outcome.coids)
        tracked = self.state.intents.get(sid)
        states = (
            [self.state.legs[p.coid].fsm.state for p in tracked.accepted.legs if p.coid in self.state.legs]
            if tracked is not None
            else []
        )
        if outcome.filled_qty <= 0 and (
            (states and all(s in _LEG_FAILED for s in states))
            or (not states and outcome.status == "REJECTED")
        ):
            fields.update(
                executed=False,
                rejected=True,
                reason=ReasonCode.VENUE_REJECTED,
                venue_errors=list(outcome.venue_errors),
            )
            return fields
        fields["executed"] = True
        if outcome.filled_qty > 0:
            done = outcome.status == "EXECUTED"
            fields["status"] = "FILLED" if done else "PARTIALLY_FILLED"
            fields["fill_price"] = float(MONEY_CONTEXT.divide(outcome.filled_notional, outcome.filled_qty))
            fields["filled_qty"] = plain(outcome.filled_qty)
        elif any(s is S.UNKNOWN or s in _FIRST_OUTCOME_PENDING for s in states):
            fields["status"] = "UNKNOWN"
        elif states and all(s in (S.ACKED, S.PENDING_CANCEL) for s in states if s not in TERMINAL_STATES):
            fields["status"] = "ACKED" if any(s not in TERMINAL_STATES for s in states) else "CANCELED"
        else:
            fields["status"] = outcome.status.value if not states else "ACKED"
        return fields

    def _shadow_fill(self, intent: Intent, risk: RiskIntent, t_ingress_ms: int, now_ms: int) -> None:
        """nats.md §9.3: one simulated fill per processed intent, at the touch (FastPath and NATS)."""
        venue = next(iter(self.s.instruments.get(risk.symbol, _NO_METAS)), None)
        if venue is None:
            return
        quote = self._confirm_tickers.get(venue) or self.quote(venue, risk.symbol)
        if quote is None:
            return
        self.out.event(
            ShadowFillEvent(
                shadow_id=intent.signal_id,
                signal_id=intent.signal_id,
                symbol_as_given=intent.symbol,
                direction=intent.direction,
                best_bid=quote.bid,
                best_ask=quote.ask,
                size=risk.size,
                t_signal=intent.t_signal_ms,
                t_ingress=t_ingress_ms,
                t_decision=now_ms,
                t_exchange=quote.exchange_ts_ms or now_ms,
            )
        )

    # --- accepting an intent: journal, then orders ----------------------------------------------

    def _accept(
        self,
        risk: RiskIntent,
        approval: Approval,
        t_signal_ms: int,
        t_ingress_ms: int,
        correlation_id: str | None,
        dedupe_ids: tuple[str, ...],
        now_ms: int,
        now_ns: int,
        stages: Stages | None,
    ) -> IntentAccepted:
        decision = approval.decision
        metas = self.s.instruments.get(risk.symbol, _NO_METAS)
        plans: list[LegPlan] = []
        for leg in approval.legs:
            meta = metas[leg.venue]
            price = None
            if decision.order_type == "LIMIT" and decision.price is not None:
                price = meta.round_price(decision.price, approval.side)
            plans.append(
                LegPlan(  # positional: keywords cost ~50 ns each here
                    client_order_id(risk.signal_id, leg.venue, leg.index),  # coid
                    leg.index,  # leg
                    leg.venue,  # venue
                    leg.qty,  # qty
                    decision.order_type,  # order_type
                    decision.tif,  # tif
                    price,  # price
                    self._venue_symbol(risk.symbol, leg.venue),  # venue_symbol
                )
            )
        close_reason = (
            "FLATTEN" if risk.flatten else ("MANUAL" if risk.intent_type in _CLOSE_TYPES else "OPPOSITE_FILL")
        )
        record = IntentAccepted(  # positional: a call with over 15 keywords goes through a dict (~2 µs)
            risk.signal_id,  # signal_id
            risk.account,  # account
            risk.symbol,  # symbol
            approval.side,  # side
            approval.quantity,  # quantity
            approval.unallocated,  # unallocated
            approval.reference_price,  # reference_price
            tuple(plans),  # legs
            approval.reduce_only,  # reduce_only
            risk.causation_id,  # causation_id
            risk.source,  # source
            t_signal_ms,  # t_signal_ms
            t_ingress_ms,  # t_ingress_ms
            now_ns,  # t_mono_ns
            correlation_id,  # correlation_id
            dedupe_ids,  # dedupe_ids
            risk.entry_zone,  # entry_zone
            close_reason,  # close_reason
        )
        self._record(record, now_ms, now_ns)
        self.counters.intents_accepted += 1
        self._send_orders(record, now_ms, now_ns, stages)
        return record

    def _send_orders(self, record: IntentAccepted, now_ms: int, now_ns: int, stages: Stages | None) -> None:
        """The orders of an accepted intent to their gateways, then each leg's ACCEPTED report."""
        metas = self.s.instruments.get(record.symbol, _NO_METAS)
        side = "BUY" if record.side > 0 else "SELL"
        for plan in record.legs:
            meta = metas.get(plan.venue)
            venue_qty = plan.qty if meta is None else meta.to_venue_units(plan.qty)
            self.out.order(
                plan.venue,
                OrderRequest(  # positional: a call with over 15 keywords goes through a dict (~2 µs)
                    plan.coid,  # coid
                    record.signal_id,  # signal_id
                    plan.leg,  # leg
                    plan.venue,  # venue
                    record.account,  # account
                    record.symbol,  # symbol
                    plan.venue_symbol,  # venue_symbol
                    side,  # side
                    plan.order_type,  # order_type
                    plan.tif,  # tif
                    plain(venue_qty),  # qty
                    None if plan.price is None else plain(plan.price),  # price
                    record.reduce_only,  # reduce_only
                    record.t_signal_ms,  # t_signal_ms
                    now_ns if stages is None else stages.t_core_in,  # t_core_in
                    self.clock.mono_ns(),  # t_core_out
                ),
            )
            if stages is not None and not stages.t_order_out:
                stages.t_order_out = self.clock.mono_ns()  # the real push time of the first order
        for plan in record.legs:
            leg_state = self.state.legs.get(plan.coid)
            if leg_state is not None:
                self.out.event(report_event(self, leg_state, record, None, now_ms))

    # --- NATS intake (nats.md §5 rows 0–2, 8–11) -------------------------------------------------

    def on_bridge(self, msg: PlaceIntent | OperatorCommand) -> None:
        if isinstance(msg, PlaceIntent):
            self._place(msg)
        else:
            self._operator(msg)

    def _place(self, msg: PlaceIntent) -> None:
        now_ns, now_ms = self.clock.mono_ns(), self.clock.wall_ms()
        intent = msg.intent
        sid = intent.signal_id
        dedupe = tuple(msg.dedupe_ids)
        corr = msg.correlation_id or sid
        mid = dedupe[0] if dedupe else f"ref:{msg.ref}"
        # Row 0: a redelivery of an envelope core already journaled.
        if any(i in self.state.journaled_ids for i in dedupe):
            self.counters.duplicates += 1
            self.out.event(IntakeDone(msg.ref, "duplicate"))
            return

        def reject(reason: str, code: str, text: str, dlq: str | None, **extra: Any) -> None:
            self._deny_counted(code)
            self._record(
                IntentDenied(
                    sid,
                    code,
                    text,
                    intent.causation_id,
                    duplicate=code == "DUPLICATE_SIGNAL_ID",
                    dedupe_ids=dedupe,
                ),
                now_ms,
                now_ns,
            )
            self.out.event(
                RejectEvent(
                    reason=reason,
                    intent_id=sid,
                    brain_instance_id=corr,
                    timestamp=now_ms,
                    code=code,
                    message=text,
                    message_id=mid,
                    **extra,
                )
            )
            if dlq is not None:
                self.out.event(
                    DlqEvent(
                        reason=dlq,
                        original=msg.original,
                        t_ingress=msg.t_ingress_ms,
                        message_id=mid,
                        code=code,
                    )
                )
            self.out.event(IntakeDone(msg.ref, "rejected"))

        halt = self.halt_mode
        if halt is HaltMode.HARD or (halt is HaltMode.SOFT and intent.intent_type not in _CLOSE_TYPES):
            return reject(
                "system_halted", "SYSTEM_HALTED", f"System halted ({halt.value}): new intents denied", None
            )
        if not self.control.armed:
            return reject("system_disarmed", "SYSTEM_DISARMED", "System disarmed", None)
        active = self.policy.policy_hash
        if intent.policy_hash is not None and intent.policy_hash != active:
            got = intent.policy_hash
            return reject(
                "policy_hash_mismatch",
                "POLICY_HASH_MISMATCH",
                f"Policy Hash Mismatch: Expected {active}, Got {got}",
                f"Policy Hash mismatch: exp {active} got {got}",
                expected_policy_hash=active,
                got_policy_hash=got,
            )
        if sid in self.state.accepted_ids:
            text = f"Invalid intent: Duplicate signal_id {sid}"
            return reject("duplicate_signal_id", "DUPLICATE_SIGNAL_ID", text, text)
        if not self.ready:
            return reject(
                "engine_not_ready", "ENGINE_NOT_READY", "Engine not ready", "Invalid intent: Engine not ready"
            )
        try:
            risk = risk_intent(intent)
        except IntakeError as exc:
            text = f"Invalid intent: {exc}"
            return reject("risk_rejected", "INVALID_INTENT", text, DLQ_PREFIX + text)
        verdict = run_checks(self.check_inputs(risk, now_ms, now_ns))
        if isinstance(verdict, Denial):
            if verdict.code is ReasonCode.INTENT_EXPIRED:
                latency = now_ms - intent.t_signal_ms
                text = f"Intent EXPIRED: {latency} ms latency"
                return reject("intent_expired", "INTENT_EXPIRED", text, text, venue=intent.exchange)
            return reject(
                "risk_rejected",
                verdict.code,
                verdict.text,
                DLQ_PREFIX + verdict.text,
                venue=verdict.venue or intent.exchange,
            )
        self._accept(risk, verdict, intent.t_signal_ms, msg.t_ingress_ms, corr, dedupe, now_ms, now_ns, None)
        if self.s.shadow_fills:
            self._shadow_fill(intent, risk, msg.t_ingress_ms, now_ms)
        self.out.event(IntakeDone(msg.ref, "accepted"))
        return None

    # --- operator commands (nats.md §10) ---------------------------------------------------------

    def _operator(self, cmd: OperatorCommand) -> None:
        now_ns, now_ms = self.clock.mono_ns(), self.clock.wall_ms()
        kind = cmd.kind
        outcome = "accepted"
        if kind == "HEARTBEAT":
            self.control.on_heartbeat(now_ms)
        elif kind in ("ARM", "DISARM"):
            self.armed_reason = cmd.reason if kind == "ARM" else ""
            self.control.set_armed(kind == "ARM")
            self._persist_control(now_ms, now_ns)
        elif kind in ("HALT", "SOFT_HALT", "RESUME"):
            mode = {"HALT": HaltMode.HARD, "SOFT_HALT": HaltMode.SOFT, "RESUME": HaltMode.OPEN}[kind]
            self.control.set_halt(HaltState(mode, cmd.reason, cmd.actor, now_ms))
            self._persist_control(now_ms, now_ns)
            if mode is HaltMode.HARD:
                self.cancel_working(f"halt by {cmd.actor or 'operator'}", now_ms, now_ns)
        elif kind == "FLATTEN":
            self.flatten(
                cmd.command_id or f"ref{cmd.ref}",
                cmd.args.get("venue"),
                cmd.args.get("symbol"),
                now_ms,
                now_ns,
            )
        elif kind == "POLICY":
            outcome = self._policy_update(cmd.args.get("policy"), now_ms, now_ns)
        elif kind == "RISK_STATE":
            try:
                state = RiskState.parse(str(cmd.args.get("state", "")))
            except ValueError:
                outcome = "rejected"
            else:
                if self.control.on_state_event(state):
                    self._persist_control(now_ms, now_ns)
        else:
            outcome = "rejected"
        if cmd.ref:
            self.out.event(IntakeDone(cmd.ref, outcome))

    def _policy_update(self, body: Any, now_ms: int, now_ns: int) -> str:
        if isinstance(body, dict) and isinstance(body.get("policy"), dict):
            body = body["policy"]  # Brain's {timestamp, policy, source}
        if not isinstance(body, dict):
            return "rejected"
        document = msgspec.json.encode(body).decode()
        try:
            policy = parse_policy(document)
        except PolicyError as exc:
            log.warning("policy update refused: %s", exc)
            return "rejected"
        self._record(PolicyRecord(document, policy.policy_hash), now_ms, now_ns)
        self.policy = policy
        if self.control.on_state_event(policy.current_state):
            self._persist_control(now_ms, now_ns)
        return "accepted"

    def cancel_working(self, reason: str, now_ms: int, now_ns: int) -> int:
        """Cancel every working (acknowledged, open) order: HARD halt."""
        n = 0
        for leg in list(self.state.legs.values()):
            if leg.fsm.state not in (S.ACKED, S.PARTIAL_FILL) or leg.plan is None:
                continue
            self._record(
                LegTransitionRecord(leg.fsm.client_order_id, S.PENDING_CANCEL, now_ns, now_ms, reason),
                now_ms,
                now_ns,
            )
            # Every order state change is reported (nats.md §9.2; seq gapless), as resume() does.
            tracked = self.state.intents.get(leg.signal_id)
            self._emit_reports(leg, tracked.accepted if tracked is not None else None, False, None, now_ms)
            self.out.order(
                leg.venue,
                CancelRequest(
                    leg.fsm.client_order_id,
                    leg.venue,
                    leg.fsm.symbol,
                    leg.plan.venue_symbol,
                    reason,
                    self.clock.mono_ns(),
                ),
            )
            n += 1
        return n

    def flatten(
        self, command_id: str, venue: str | None, symbol: str | None, now_ms: int, now_ns: int
    ) -> int:
        """Reduce-only MARKET per (venue, symbol) position, on the venue that holds it (bypasses arm/halt)."""
        n = 0
        for pos in sorted(
            self.state.shadow.iter_positions(self.s.account), key=lambda p: (p.venue, p.symbol)
        ):
            if (venue and pos.venue != venue) or (symbol and pos.symbol != symbol) or pos.size <= 0:
                continue
            if pos.venue not in self.s.venues:
                continue
            sid = flatten_signal_id(command_id, pos.venue, pos.symbol)
            if sid in self.state.accepted_ids:
                continue
            risk = RiskIntent(
                signal_id=sid,
                source="operator",
                symbol=pos.symbol,
                intent_type="CLOSE",
                direction=0,
                size=pos.size,
                t_signal_ms=now_ms,
                exchange=pos.venue,
                account=pos.account,
                flatten=True,
            )
            verdict = run_checks(self.check_inputs(risk, now_ms, now_ns))
            if isinstance(verdict, Denial):
                log.warning("flatten %s denied: %s", sid, verdict.text)
                continue
            market = msgspec.structs.replace(verdict.decision, order_type="MARKET", tif="IOC", price=None)
            self._accept(
                risk,
                msgspec.structs.replace(verdict, decision=market),
                now_ms,
                now_ms,
                command_id,
                (),
                now_ms,
                now_ns,
                None,
            )
            n += 1
        return n

    # --- venue reports --------------------------------------------------------------------------

    def on_report(self, msg: VenueReport | ReconcileSnapshot | VenueStatus) -> None:
        now_ns, now_ms = self.clock.mono_ns(), self.clock.wall_ms()
        if isinstance(msg, VenueReport):
            self._venue_report(msg, now_ms, now_ns)
        elif isinstance(msg, ReconcileSnapshot):
            self._reconciled(msg, now_ms, now_ns)
        else:
            self._venue_status(msg, now_ms, now_ns)

    def _venue_report(self, rep: VenueReport, now_ms: int, now_ns: int) -> None:
        leg = self.state.legs.get(rep.coid)
        if leg is None:
            if rep.kind == FILL:
                self._late_fill(rep, now_ms, now_ns)
            elif rep.kind == FILL_CONFLICT:
                self._reported_conflict(rep, None, now_ms)
            return
        tracked = self.state.intents.get(leg.signal_id)
        accepted = tracked.accepted if tracked is not None else None
        via_sent = leg.fsm.state is S.ACCEPTED and rep.kind not in _NOT_SENT
        if rep.kind == FILL:
            self._fill(leg, accepted, rep, via_sent, now_ms, now_ns)
        else:
            to = _REPORT_STATE.get(rep.kind)
            if to is None:
                if rep.kind == FILL_CONFLICT:
                    self._reported_conflict(rep, leg, now_ms)
                else:
                    self.counters.illegal_reports += 1
                return
            current = S.SENT if via_sent else leg.fsm.state
            if current is to and to is not S.PARTIAL_FILL:
                return  # a repeated report (gateway restart, reconciliation): nothing new
            reason = rep.message or rep.reason_code or None
            self._transition(leg, accepted, to, via_sent, reason, rep.venue_order_id or None, now_ms, now_ns)
            if to is S.REJECTED and accepted is not None:
                self.out.event(
                    RejectEvent(
                        reason="venue_rejected",
                        intent_id=leg.signal_id,
                        brain_instance_id=accepted.correlation_id or leg.signal_id,
                        timestamp=now_ms,
                        code=ReasonCode.VENUE_REJECTED,
                        message=rep.message or rep.venue_error_code,
                        venue=leg.venue,
                        message_id=rep.coid,
                    )
                )
        self._maybe_reply(leg.signal_id, rep)

    def _transition(
        self,
        leg: TrackedLeg,
        accepted: IntentAccepted | None,
        to: LegState,
        via_sent: bool,
        reason: str | None,
        venue_order_id: str | None,
        now_ms: int,
        now_ns: int,
        last_fill: tuple[Decimal, Decimal] | None = None,
        emit: bool = True,
    ) -> bool:
        from_state = S.SENT if via_sent else leg.fsm.state
        if to not in _legal(from_state):
            if from_state in TERMINAL_STATES and to is not S.RECONCILED:
                self.counters.illegal_reports += 1
                log.warning(
                    "Illegal FSM transition for %s: %s → %s (reason: %s)",
                    leg.fsm.client_order_id,
                    from_state,
                    to,
                    reason,
                )
            return False
        coid = leg.fsm.client_order_id
        self._record(
            LegTransitionRecord(coid, to, now_ns, now_ms, reason, via_sent, venue_order_id), now_ms, now_ns
        )
        if emit:
            self._emit_reports(leg, accepted, via_sent, last_fill, now_ms)
        return True

    def _emit_reports(
        self,
        leg: TrackedLeg,
        accepted: IntentAccepted | None,
        via_sent: bool,
        last_fill: tuple[Decimal, Decimal] | None,
        now_ms: int,
    ) -> None:
        if accepted is not None:
            if via_sent:
                sent = report_event(self, leg, accepted, None, now_ms, sent_only=True)
                self.out.event(sent)
                self.out.event(report_after_sent(sent, leg, last_fill))
            else:
                self.out.event(report_event(self, leg, accepted, last_fill, now_ms))

    def _fill(
        self,
        leg: TrackedLeg,
        accepted: IntentAccepted | None,
        rep: VenueReport,
        via_sent: bool,
        now_ms: int,
        now_ns: int,
    ) -> None:
        try:
            qty, price, fee = Decimal(rep.qty), Decimal(rep.price), Decimal(rep.fee or "0")
        except ArithmeticError:
            self.counters.illegal_reports += 1
            return
        fill = Fill(  # positional: keywords cost ~50 ns each here
            leg.account,  # account
            leg.venue,  # venue
            leg.fsm.symbol,  # symbol
            leg.side,  # side
            qty,  # qty
            price,  # price
            fee,  # fee
            rep.trade_id,  # trade_id
            rep.t_exchange_ms or now_ms,  # ts_ms
            rep.fee_asset,  # fee_asset
            leg.signal_id,  # signal_id
            leg.fsm.client_order_id,  # client_order_id
            close_reason=accepted.close_reason if accepted is not None else "OPPOSITE_FILL",
        )
        if fill.qty <= 0 or fill.side not in (1, -1):
            self.counters.illegal_reports += 1
            return
        if (fill.venue, fill.trade_id) in self.state.shadow.seen_trades:
            # The same execution again: (venue, trade id) dedupe; with another quantity, a conflict.
            self._repeated_fill(fill, leg.signal_id, leg.fsm.symbol, now_ms)
            return
        state_before = S.SENT if via_sent else leg.fsm.state
        effect = self._record(FillRecord(fill), now_ms, now_ns)
        if effect is None or not effect.applied:
            return
        self._remember_fill(fill)
        to = S.FILLED if leg.filled_qty >= leg.qty else S.PARTIAL_FILL
        reconciled = to not in _legal(state_before)
        if reconciled:
            to = S.RECONCILED  # a fill on a terminal order is applied, never dropped (§13)
        via_sent = via_sent and not reconciled
        moved = self._transition(
            leg, accepted, to, via_sent, None, rep.venue_order_id or None, now_ms, now_ns, emit=False
        )
        # Both records are journaled: answer the waiting CONFIRM first, then publish the events.
        self._maybe_reply(leg.signal_id, rep)
        if reconciled:
            self._drift(
                drift_event(
                    leg.signal_id,
                    leg.fsm.symbol,
                    leg.venue,
                    "ClassPPosition",
                    leg.qty,
                    leg.filled_qty,
                    now_ms,
                )
            )
        self._after_fill(fill, effect, leg, accepted, rep, now_ms, now_ns)
        if moved:
            self._emit_reports(leg, accepted, via_sent, (qty, price), now_ms)

    def _after_fill(
        self,
        fill: Fill,
        effect: FillEffect,
        leg: TrackedLeg | None,
        accepted: IntentAccepted | None,
        rep: VenueReport | None,
        now_ms: int,
        now_ns: int,
    ) -> None:
        self.out.event(fill_event(fill, leg, accepted, rep, now_ms))
        for trade in effect.trades:
            self.out.event(trade_event(trade, now_ms, accepted.correlation_id if accepted else None))
        if accepted is not None and fill.source == "TRADE":
            for report in detect_drift(
                fill.signal_id,
                fill.symbol,
                fill.venue,
                fill.side,
                fill.price,
                fill.ts_ms,
                accepted.t_signal_ms,
                accepted.entry_zone,
                self.s.drift_latency_budget_ms,
                self.s.drift_spread_bps,
            ):
                self._drift(
                    drift_event(
                        report.signal_id,
                        report.symbol,
                        report.venue,
                        report.drift_class,
                        report.expected,
                        report.actual,
                        report.timestamp,
                        report.deviation_bps,
                    )
                )
                self._drift_action(now_ms, now_ns)
            expected = (leg.plan.price if leg is not None and leg.plan is not None else None) or (
                accepted.entry_zone[0] if accepted.entry_zone else None
            )
            if self.control.on_fill(fill.side, fill.price, expected, self.policy.max_slippage_bps):
                self._persist_control(now_ms, now_ns)
        self._exposure_after_fill(now_ns)

    def _exposure_after_fill(self, now_ns: int) -> None:
        """``exposure.update`` after fills, at most one per EXPOSURE_COALESCE_NS window: the first fill
        of a quiet period publishes at once, later ones mark it due and :meth:`on_timer` publishes the
        state at the end of the window (so the last state is always published)."""
        if now_ns >= self.next_exposure_ns:
            self._publish_exposure(now_ns)
        else:
            self.exposure_dirty = True

    def _publish_exposure(self, now_ns: int) -> None:
        self.exposure_dirty = False
        self.next_exposure_ns = now_ns + EXPOSURE_COALESCE_NS
        self.out.event(exposure_event(self.state.shadow.exposure(self.s.account)))

    def _drift_action(self, now_ms: int, now_ns: int) -> None:
        if self.s.drift_action == "defensive" and self.control.current_state < RiskState.DEFENSIVE:
            self.control.on_state_event(RiskState.DEFENSIVE)
            self._persist_control(now_ms, now_ns)
        elif self.s.drift_action == "halt" and self.control.halt.state is not HaltMode.HARD:
            self.control.set_halt(HaltState(HaltMode.HARD, "drift", "core", now_ms))
            self._persist_control(now_ms, now_ns)

    def _late_fill(self, rep: VenueReport, now_ms: int, now_ns: int) -> None:
        """A fill for an order that already left memory: applied to the shadow, never dropped."""
        gone = self.state.finished_legs.get(rep.coid)
        if gone is None:
            if is_our_coid(rep.coid):
                log.warning("fill for unknown own order %s: left to reconciliation", rep.coid)
            return
        try:
            fill = Fill(
                account=gone.account,
                venue=gone.venue,
                symbol=gone.symbol,
                side=gone.side,
                qty=Decimal(rep.qty),
                price=Decimal(rep.price),
                fee=Decimal(rep.fee or "0"),
                trade_id=rep.trade_id,
                ts_ms=rep.t_exchange_ms or now_ms,
                fee_asset=rep.fee_asset,
                signal_id=gone.signal_id,
                client_order_id=rep.coid,
            )
        except ArithmeticError:
            return
        if fill.qty <= 0:
            return
        if (fill.venue, fill.trade_id) in self.state.shadow.seen_trades:
            self._repeated_fill(fill, gone.signal_id, gone.symbol, now_ms)
            return
        effect = self._record(FillRecord(fill), now_ms, now_ns)
        if effect is not None and effect.applied:
            self._remember_fill(fill)
            self._drift(
                drift_event(gone.signal_id, gone.symbol, gone.venue, "ClassPPosition", ZERO, fill.qty, now_ms)
            )
            self._after_fill(fill, effect, None, None, rep, now_ms, now_ns)

    # --- drift and conflicting duplicates (risk-and-state.md §16, R5) ----------------------------

    def _drift(self, event: DriftEvent) -> None:
        """Publish a drift event and count it (``titan_reconciliation_drift_detected_total``)."""
        self.counters.drift_events += 1
        self.out.event(event)

    def _remember_fill(self, fill: Fill) -> None:
        # A deque of keys, not next(iter(dict)): that scans every slot deleted at the front (O(n)).
        key = (fill.venue, fill.trade_id)
        known = self.fill_qty
        n = len(known)
        known[key] = fill.qty
        if len(known) != n:  # a new key (the usual case: the shadow applies a trade id once)
            order = self._fill_qty_order
            order.append(key)
            if n >= FILL_QTY_KEPT:
                del known[order.popleft()]

    def _repeated_fill(self, fill: Fill, signal_id: str, symbol: str, now_ms: int) -> None:
        """An execution core already applied: dropped; a drift event when its quantity differs (R5)."""
        kept = self.fill_qty.get((fill.venue, fill.trade_id))
        if kept is None or kept == fill.qty:
            return  # an exact repeat (or too old to compare): nothing new
        log.warning(
            "conflicting duplicate fill dropped: venue %s trade %s order %s: qty %s applied, this one %s",
            fill.venue,
            fill.trade_id,
            fill.client_order_id,
            plain(kept),
            plain(fill.qty),
        )
        self._conflict(signal_id, symbol, fill.venue, kept, fill.qty, now_ms)

    def _reported_conflict(self, rep: VenueReport, leg: TrackedLeg | None, now_ms: int) -> None:
        """The gateway dropped a conflicting duplicate (it logged it): count it, publish drift (R5)."""
        if leg is not None:
            signal_id, symbol = leg.signal_id, leg.fsm.symbol
        elif (gone := self.state.finished_legs.get(rep.coid)) is not None:
            signal_id, symbol = gone.signal_id, gone.symbol
        else:
            signal_id, symbol = "", ""
        try:
            dropped = Decimal(rep.qty)
            kept = self.fill_qty.get((rep.venue, rep.trade_id)) or Decimal(rep.cum_qty or "0")
        except ArithmeticError:
            self.counters.illegal_reports += 1
            return
        self._conflict(signal_id, symbol, rep.venue, kept, dropped, now_ms)

    def _conflict(
        self, signal_id: str, symbol: str, venue: str, kept: Decimal, dropped: Decimal, now_ms: int
    ) -> None:
        self.counters.conflicting_fills += 1
        self._drift(drift_event(signal_id, symbol, venue, "ClassPPosition", kept, dropped, now_ms))

    def _maybe_reply(self, sid: str, rep: VenueReport | None) -> None:
        pending = self.pending.get(sid)
        if pending is None:
            return
        tracked = self.state.intents.get(sid)
        if tracked is not None:
            for plan in tracked.accepted.legs:
                leg = self.state.legs.get(plan.coid)
                if leg is not None and leg.fsm.state in _FIRST_OUTCOME_PENDING:
                    return
        del self.pending[sid]
        if rep is not None:
            pending.stages.t_gw_in = rep.t_gw_in
            pending.stages.t_gw_out = rep.t_gw_out
        pending.stages.t_report_in = self.clock.mono_ns()
        self._reply(pending.conn, pending.req, self.outcome_fields(sid, final=True), pending.stages)

    # --- reconciliation (risk-and-state.md §17) --------------------------------------------------

    def _request_reconcile(self, venue: str, reason: str, now_ns: int) -> None:
        legs = sorted(
            (c, leg.fsm.symbol)
            for c, leg in self.state.legs.items()
            if leg.venue == venue and not leg.fsm.terminal
        )
        symbols = sorted(self.s.instruments)
        self.reconciling[venue] = now_ns + RECONCILE_ANSWER_NS  # ask again if no answer by then
        self.epoch += 1
        self.out.order(
            venue,
            ReconcileRequest(
                venue,
                reason,
                [c for c, _ in legs],
                symbols,
                self.state.last_fill_ms.get(venue, 0),
                self.clock.mono_ns(),
                coid_symbols={c: s for c, s in legs if s},  # a restarted gateway queries each there
            ),
        )

    def _venue_status(self, st: VenueStatus, now_ms: int, now_ns: int) -> None:
        self.epoch += 1
        if st.limited_until_ms > now_ms:
            self.cooldown_until_ms[st.venue] = st.limited_until_ms
        else:
            self.cooldown_until_ms.pop(st.venue, None)
        if st.venue not in self.s.reconcile_venues:
            return
        if st.private_stream == "RECONNECTED":
            self._request_reconcile(st.venue, "reconnect", now_ns)
        elif (
            st.private_stream == "UP"
            and st.gateway_pid
            and st.venue not in self.reconciling
            and self.answered_by.get(st.venue) != st.gateway_pid
        ):
            # A gateway process whose private stream is up and that has not answered a
            # reconciliation: a restarted gateway, which does not know what the killed one had in
            # flight. Reconcile now (not at the next periodic run). Not doubled: a reconciliation in
            # flight (core's start) is answered by it, or asked again if the killed one took it.
            self._request_reconcile(st.venue, "restart", now_ns)

    def _reconciled(self, snap: ReconcileSnapshot, now_ms: int, now_ns: int) -> None:
        venue = snap.venue
        if snap.gateway_pid:
            self.answered_by[venue] = snap.gateway_pid
        if venue not in self.reconciling:
            return
        if not snap.ok:
            log.warning("reconciliation of %s failed: %s (retrying)", venue, snap.error)
            self.reconciling[venue] = now_ns + self.s.reconcile_retry_ms * 1_000_000  # ask again then
            return
        for order in snap.open_orders:
            if order.coid in self.state.legs:
                continue
            if is_our_coid(order.coid):
                self._record(
                    CoidAdopted(order.coid, "", order.symbol, 0, venue, self.s.account, S.ACKED),
                    now_ms,
                    now_ns,
                )
                log.warning("adopted our order %s found open on %s", order.coid, venue)
            else:
                self.counters.foreign_orders += 1
                # The gateway cancels foreign orders itself when reconcile.cancel_foreign is set.
                what = "cancelled by the gateway" if order.state == "CANCELED" else "left alone"
                log.warning("foreign open order %s on %s (%s)", order.coid, venue, what)
        venue_sizes = {p.symbol: p for p in snap.positions}
        symbols = set(venue_sizes) | {
            p.symbol for p in self.state.shadow.iter_positions(self.s.account) if p.venue == venue
        }
        metas_by_symbol = self.s.instruments
        for symbol in sorted(symbols):
            shadow = self.state.shadow.positions.get((self.s.account, venue, symbol))
            vp = venue_sizes.get(symbol)
            size = Decimal(vp.size) if vp is not None else ZERO
            entry = Decimal(vp.entry_price) if vp is not None else ZERO
            quote = self.quote(venue, symbol)
            mark = (
                (Decimal(vp.mark_price) if vp is not None and vp.mark_price else None)
                or (quote.mid if quote is not None else None)
                or entry
            )
            meta = metas_by_symbol.get(symbol, {}).get(venue)
            step = meta.base_step if meta is not None else ZERO
            fills, report = position_correction(
                self.s.account,
                venue,
                symbol,
                shadow,
                size,
                entry,
                mark or ZERO,
                step,
                now_ms,
                f"{venue}:{self.state.last_seq}",
            )
            for fill in fills:
                effect = self._record(FillRecord(fill), now_ms, now_ns)
                if effect is not None and effect.applied:
                    self._after_fill(fill, effect, None, None, None, now_ms, now_ns)
            if report is not None:
                self._drift(
                    drift_event("", symbol, venue, "ClassPPosition", report.expected, report.actual, now_ms)
                )
        if snap.balance is not None:
            self._record(CashRecord(self.s.account, Decimal(snap.balance)), now_ms, now_ns)
        del self.reconciling[venue]
        self.epoch += 1
        self.reconciled_once.add(venue)

    # --- timers ---------------------------------------------------------------------------------

    def on_timer(self) -> None:
        now_ns, now_ms = self.clock.mono_ns(), self.clock.wall_ms()
        order = self.pending_order
        while order and order[0][0] <= now_ns:
            deadline_ns, sid = order.popleft()
            p = self.pending.get(sid)
            if p is None or p.deadline_ns != deadline_ns:
                continue  # answered already (or replaced): a stale entry
            del self.pending[sid]
            p.stages.t_report_in = 0
            self._reply(p.conn, p.req, self.outcome_fields(sid, final=True), p.stages)
        if now_ns >= self.next_sweep_ns:
            self.next_sweep_ns = now_ns + self.s.prepare_sweep_ms * 1_000_000
            ttl_ns = self.s.prepare_ttl_ms * 1_000_000
            for sid, prep in list(self.prepared.items()):
                if now_ns - prep.prepared_ns > ttl_ns:
                    del self.prepared[sid]  # STALE_INTENT_CLEANUP: no order ever existed
                    self.counters.prepared_swept += 1
            self.state.causation.prune(now_ms)
        for venue, resend_at in list(self.reconciling.items()):
            late = now_ns - self.started_ns > self.s.reconcile_start_timeout_ms * 1_000_000
            if venue not in self.reconciled_once and late:
                self.fatal = f"venue {venue} did not reconcile within {self.s.reconcile_start_timeout_ms} ms"
            if now_ns >= resend_at:
                self._request_reconcile(venue, "retry", now_ns)
        if self.s.reconcile_venues and now_ns >= self.next_periodic_reconcile_ns:
            self.next_periodic_reconcile_ns = now_ns + self.s.reconcile_interval_ms * 1_000_000
            for venue in sorted(self.s.reconcile_venues - set(self.reconciling)):
                if venue in self.reconciled_once:
                    self._request_reconcile(venue, "periodic", now_ns)
        if self.exposure_dirty and now_ns >= self.next_exposure_ns:
            self._publish_exposure(now_ns)
        if now_ns >= self.next_truth_ns:
            self.next_truth_ns = now_ns + self.s.truth_interval_ms * 1_000_000
            self._mark_positions(now_ms)
            self.out.event(truth_event(self, now_ms))
            self._publish_exposure(now_ns)

    def _mark_positions(self, now_ms: int) -> None:
        self.epoch += 1  # unrealised PnL moved: equity and gross exposure (checks 15-17)
        for pos in list(self.state.shadow.iter_positions()):
            quote = self.quote(pos.venue, pos.symbol)
            mark = None if quote is None else (quote.mark or quote.mid)
            if mark is not None:
                self.state.shadow.mark(pos.venue, pos.symbol, mark, now_ms)

    def next_deadline_ns(self) -> int:
        deadline = min(self.next_truth_ns, self.next_sweep_ns, *self.reconciling.values())
        if self.exposure_dirty and self.next_exposure_ns < deadline:
            deadline = self.next_exposure_ns
        order, pending = self.pending_order, self.pending
        while order:  # drop answered replies' entries; the first live one is the earliest
            deadline_ns, sid = order[0]
            p = pending.get(sid)
            if p is not None and p.deadline_ns == deadline_ns:
                return min(deadline, deadline_ns)
            order.popleft()
        return deadline


def _legal(state: LegState) -> frozenset[LegState]:
    return LEGAL_TRANSITIONS[state]


def _order_type_label(approval: Approval) -> str:
    d = approval.decision
    if d.tif == "POST_ONLY":
        return "POST_ONLY"
    return d.order_type
