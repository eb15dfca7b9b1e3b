"""Pre-trade checks (risk-and-state.md §3), in the specified order; the first failure wins.

:func:`run_checks` is pure: everything it needs is in :class:`CheckInputs`, including the clock.
An approval carries what the engine needs next: targets, legs, reference price and order decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, localcontext, setcontext
from typing import Final

import msgspec

from titan.risk.decision import BookTop, OrderDecision, decide_order
from titan.risk.policy import RiskPolicy, RiskState
from titan.risk.reasons import ReasonCode, render_reason
from titan.risk.state import HaltMode
from titan.routing.router import (
    InstrumentMeta,
    Leg,
    RouteDenial,
    RouteTarget,
    RoutingConfig,
    resolve_targets,
    split_quantity,
)
from titan.state.decimals import MONEY_CONTEXT, ZERO, money_enter

REDUCE_ONLY_TYPES: Final = frozenset({"CLOSE", "CLOSE_LONG", "CLOSE_SHORT"})
INTENT_TYPES: Final = frozenset({"BUY_SETUP", "SELL_SETUP"}) | REDUCE_ONLY_TYPES
ACTIVE_STATUSES: Final = frozenset({"PENDING", "VALIDATED"})
LEVERAGE_UNKNOWN: Final = Decimal(999)
# Plain globals for the enum members the checks compare against (Enum class attributes read slower).
_HARD: Final = HaltMode.HARD
_SOFT: Final = HaltMode.SOFT
_CAUTIOUS: Final = RiskState.CAUTIOUS
_DEFENSIVE: Final = RiskState.DEFENSIVE
_EMERGENCY: Final = RiskState.EMERGENCY


class RiskIntent(msgspec.Struct, frozen=True, gc=False):
    """The intent as the checks see it: canonical symbol, exact decimals."""

    signal_id: str
    source: str
    symbol: str  # canonical BASE/QUOTE
    intent_type: str  # BUY_SETUP | SELL_SETUP | CLOSE_LONG | CLOSE_SHORT | CLOSE (| FORCE_SYNC)
    direction: int  # 1 / −1; 0 only for CLOSE types
    size: Decimal  # base-asset quantity
    t_signal_ms: int
    entry_zone: tuple[Decimal, ...] = ()
    exchange: str | None = None
    policy_hash: str | None = None
    ttl_ms: int | None = None
    causation_id: str | None = None
    account: str = "main"
    status: str = "PENDING"
    flatten: bool = False  # operator flatten orders are reduce-only
    velocity: Decimal | None = None  # the producer's urgency (fastpath.md §8): picks the order type

    @property
    def reduce_only(self) -> bool:
        return self.flatten or self.intent_type in REDUCE_ONLY_TYPES


class TickerView(msgspec.Struct, frozen=True, gc=False):
    """One ticker-table row for (venue, symbol)."""

    bid: Decimal
    ask: Decimal
    receive_mono_ns: int
    bid_size: Decimal = ZERO
    ask_size: Decimal = ZERO
    mark: Decimal | None = None

    @property
    def mid(self) -> Decimal | None:
        if self.bid <= 0 or self.ask <= 0:
            return None
        with localcontext(MONEY_CONTEXT):
            return (self.bid + self.ask) / 2


class StalenessConfig(msgspec.Struct, frozen=True):
    """``risk.staleness.<venue>_ms`` (§7): default 200 ms, MEXC 1500 ms; 0 disables a venue."""

    default_ms: int = 200
    per_venue_ms: dict[str, int] = msgspec.field(default_factory=lambda: {"mexc": 1500})
    paper_price_source: str | None = None

    def threshold_ms(self, venue: str, policy_ceiling_ms: int) -> int | None:
        """Effective threshold, or None when the check is disabled for ``venue``."""
        if venue == "paper" and self.paper_price_source:
            venue = self.paper_price_source
        configured = self.per_venue_ms.get(venue, self.default_ms)
        if configured <= 0:
            return None
        return min(configured, policy_ceiling_ms) if policy_ceiling_ms > 0 else configured


class Constraints(msgspec.Struct, frozen=True):
    """Execution constraints for a symbol (check 11)."""

    expires_ms: int
    reduce_only: bool = False
    max_order_notional: Decimal | None = None
    max_leverage: Decimal | None = None


class CheckConfig(msgspec.Struct, frozen=True):
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    staleness: StalenessConfig = msgspec.field(default_factory=StalenessConfig)
    emergency_allow_reduce_only: bool = True
    constraints_enabled: bool = False
    freshness_ms: int = 5_000
    cautious_size_multiplier: Decimal = Decimal(1)


class CheckInputs(msgspec.Struct, frozen=True, gc=False):
    """Everything one evaluation reads; views are for this intent's account and symbol."""

    intent: RiskIntent
    policy: RiskPolicy
    config: CheckConfig
    now_ms: int  # wall clock (freshness, constraint expiry)
    now_mono_ns: int  # monotonic (ticker ages)
    effective_state: RiskState = RiskState.NORMAL  # RiskControl.effective_state(now_ms)
    armed: bool = True
    halt: HaltMode = HaltMode.OPEN
    duplicate_signal_id: bool = False
    duplicate_causation_id: bool = False
    registered_venues: tuple[str, ...] = ()
    reconciling_venues: frozenset[str] = frozenset()
    cooldown_until_ms: Mapping[str, int] = msgspec.field(default_factory=dict)  # active cooldowns
    instruments: Mapping[str, InstrumentMeta] = msgspec.field(default_factory=dict)  # venue → meta
    tickers: Mapping[str, TickerView] = msgspec.field(default_factory=dict)  # venue → row
    positions: Mapping[str, Decimal] = msgspec.field(default_factory=dict)  # venue → signed size
    working_signed_qty: Decimal = ZERO  # W: signed open quantity of working orders in the symbol
    open_intents: int = 0  # non-terminal intents for the symbol
    daily_pnl: Decimal = ZERO  # today's realised PnL (net when risk.daily_loss_net)
    equity: Decimal | None = None
    gross_exposure: Decimal = ZERO  # Σ abs(S)·mark over the account
    constraints: Constraints | None = None


class Approval(msgspec.Struct, frozen=True, gc=False):
    targets: tuple[RouteTarget, ...]
    legs: tuple[Leg, ...]
    side: int  # +1 BUY / −1 SELL
    quantity: Decimal  # after reduce-only cap / cautious sizing
    unallocated: Decimal
    reference_price: Decimal
    decision: OrderDecision
    reduce_only: bool


class Denial(msgspec.Struct, frozen=True, gc=False):
    code: ReasonCode
    text: str
    venue: str | None = None


def deny(code: ReasonCode, **fields: object) -> Denial:
    """A denial with its rendered text; ``venue`` (when a field) also names the venue at fault."""
    venue = fields.get("venue")
    return Denial(code, render_reason(code, **fields), venue if isinstance(venue, str) else None)


def _reduce_side(
    intent: RiskIntent, positions: Mapping[str, Decimal], targets: tuple[RouteTarget, ...]
) -> int:
    """The order side that reduces: CLOSE_LONG sells, CLOSE_SHORT buys, CLOSE reduces what is held."""
    if intent.intent_type == "CLOSE_LONG":
        return -1
    if intent.intent_type == "CLOSE_SHORT":
        return 1
    if intent.direction in (1, -1) and not intent.flatten:
        return -intent.direction  # a CLOSE naming the position's direction closes it
    for target in targets:
        held = positions.get(target.venue, ZERO)
        if held != 0:
            return -1 if held > 0 else 1
    return 0


def run_checks(inp: CheckInputs) -> Approval | Denial:
    """Checks 0–20 of §3 in order; returns the first denial or an approval with the legs."""
    intent, policy, cfg = inp.intent, inp.policy, inp.config
    reduce_only = intent.reduce_only
    symbol = intent.symbol

    # 0. Interlocks.
    halt = inp.halt
    if halt is _HARD or (halt is _SOFT and not reduce_only):
        return deny(ReasonCode.SYSTEM_HALTED, mode=inp.halt.value)
    if not inp.armed:
        return deny(ReasonCode.SYSTEM_DISARMED)
    # 1. Intent validity.
    if intent.intent_type not in INTENT_TYPES:
        return deny(ReasonCode.INVALID_INTENT, detail=f"type {intent.intent_type} not executable")
    if intent.direction not in (-1, 0, 1) or (intent.direction == 0 and not reduce_only):
        return deny(ReasonCode.INVALID_INTENT, detail="direction must be -1 or 1 (0 only for CLOSE types)")
    if intent.status not in ACTIVE_STATUSES:
        return deny(ReasonCode.INTENT_NOT_ACTIVE, status=intent.status)
    if inp.duplicate_signal_id:
        return deny(ReasonCode.DUPLICATE_SIGNAL_ID, signal_id=intent.signal_id)
    if inp.duplicate_causation_id:
        return deny(ReasonCode.DUPLICATE_CAUSATION_ID, causation_id=intent.causation_id)
    # 2. Policy hash.
    if intent.policy_hash and intent.policy_hash != policy.policy_hash:
        return deny(ReasonCode.POLICY_HASH_MISMATCH, expected=policy.policy_hash, actual=intent.policy_hash)
    # 3. Instrument metadata on some registered venue (a known venue: listed and registered).
    instruments, registered = inp.instruments, inp.registered_venues
    for venue in instruments:
        if venue in registered:
            break
    else:
        return deny(ReasonCode.UNKNOWN_SYMBOL, symbol=symbol)
    # 4. Routing: registered, listed and healthy targets.
    resolved = resolve_targets(cfg.routing, intent.source, intent.exchange, registered)
    if isinstance(resolved, RouteDenial):
        return deny(resolved.code, venue=resolved.venue, symbol=symbol)
    listed: tuple[RouteTarget, ...]
    if len(resolved) == 1:  # the common case without a generator
        only = resolved[0].venue
        listed = resolved if only in instruments and only in registered else ()
    else:
        listed = tuple(t for t in resolved if t.venue in instruments and t.venue in registered)
    if not listed:
        return deny(ReasonCode.NO_ROUTE, symbol=symbol)
    targets: list[RouteTarget] = []
    first_unhealthy: Denial | None = None
    for target in listed:
        if target.venue in inp.reconciling_venues:
            first_unhealthy = first_unhealthy or deny(ReasonCode.VENUE_RECONCILING, venue=target.venue)
        elif target.venue in inp.cooldown_until_ms:
            first_unhealthy = first_unhealthy or deny(
                ReasonCode.VENUE_COOLDOWN, venue=target.venue,
                until=inp.cooldown_until_ms[target.venue],
            )  # fmt: skip
        else:
            targets.append(target)
    if not targets:
        assert first_unhealthy is not None
        return first_unhealthy
    # 5 feeds 7 through ``effective_state``. 6. Market data fresh on every target venue.
    for target in targets:
        limit = cfg.staleness.threshold_ms(target.venue, policy.max_staleness_ms)
        if limit is None:
            continue
        row = inp.tickers.get(target.venue)
        age_ms = None if row is None else (inp.now_mono_ns - row.receive_mono_ns) // 1_000_000
        if age_ms is None or age_ms > limit:
            return deny(
                ReasonCode.MARKET_DATA_STALE, symbol=symbol, venue=target.venue,
                age="none" if age_ms is None else age_ms, limit=limit,
            )  # fmt: skip
    # 7. Effective risk state.
    state = inp.effective_state
    if state is _EMERGENCY and not (reduce_only and cfg.emergency_allow_reduce_only):
        return deny(ReasonCode.RISK_STATE_EMERGENCY, mode="reduce-only" if cfg.emergency_allow_reduce_only
                    else "all blocked")  # fmt: skip
    if state is _DEFENSIVE and not reduce_only:
        return deny(ReasonCode.RISK_STATE_DEFENSIVE)
    # 8. Reduce-only needs something to reduce on the targets, in the right direction.
    side = intent.direction
    caps: dict[str, Decimal] | None = None
    quantity = intent.size
    if reduce_only:
        side = _reduce_side(intent, inp.positions, tuple(targets))
        caps = {}
        for target in targets:
            held = inp.positions.get(target.venue, ZERO)
            if side != 0 and held * side < 0:  # position opposite to the reducing side
                caps[target.venue] = abs(held)
        targets = [t for t in targets if t.venue in caps]
        if not targets:
            return deny(ReasonCode.REDUCE_ONLY_NO_POSITION, symbol=symbol)
        quantity = min(quantity, sum(caps.values(), ZERO))
    # 9. Whitelist (a reduce-only intent got here only with a position to reduce).
    if policy.symbol_whitelist and symbol not in policy.symbol_whitelist and not reduce_only:
        return deny(ReasonCode.SYMBOL_NOT_WHITELISTED, symbol=symbol)
    # 10. Size.
    if intent.size <= 0:
        return deny(ReasonCode.INVALID_SIZE)
    saved = money_enter()  # ``with localcontext(MONEY_CONTEXT)`` without a copy per call
    try:
        return _priced_checks(inp, targets, side, quantity, caps)
    finally:
        setcontext(saved)


def _reference_price(inp: CheckInputs, targets: list[RouteTarget]) -> Decimal | None:
    zone = inp.intent.entry_zone
    if zone and zone[0] > 0:
        return zone[0]
    row = inp.tickers.get(targets[0].venue)
    return None if row is None else row.mid


def _leverage(inp: CheckInputs, add_notional: Decimal) -> Decimal:
    equity = inp.equity
    if equity is None or equity <= 0:
        return LEVERAGE_UNKNOWN
    return (inp.gross_exposure + add_notional) / equity


def _priced_checks(
    inp: CheckInputs,
    targets: list[RouteTarget],
    side: int,
    quantity: Decimal,
    caps: dict[str, Decimal] | None,
) -> Approval | Denial:
    intent, policy, cfg = inp.intent, inp.policy, inp.config
    reduce_only, symbol = intent.reduce_only, intent.symbol
    price = _reference_price(inp, targets)
    # 11. Execution constraints (fail-closed: missing or expired → reduce-only).
    if cfg.constraints_enabled:
        constraint = inp.constraints
        if constraint is None or constraint.expires_ms <= inp.now_ms or constraint.reduce_only:
            if not reduce_only:
                return deny(ReasonCode.CONSTRAINT_REDUCE_ONLY, symbol=symbol)
        elif not reduce_only and price is not None:
            notional = quantity * price
            if constraint.max_order_notional is not None and notional > constraint.max_order_notional:
                return deny(ReasonCode.CONSTRAINT_MAX_ORDER_NOTIONAL, notional=notional,
                            limit=constraint.max_order_notional, symbol=symbol)  # fmt: skip
            leverage = _leverage(inp, notional)
            if constraint.max_leverage is not None and leverage > constraint.max_leverage:
                return deny(
                    ReasonCode.CONSTRAINT_MAX_LEVERAGE, current=leverage, limit=constraint.max_leverage
                )
    # 12. Reference price.
    if price is None:
        return deny(ReasonCode.NO_PRICE, symbol=symbol)
    if not reduce_only:
        # 13. Open intents for the symbol.
        if inp.open_intents >= policy.max_open_orders_per_symbol:
            return deny(ReasonCode.MAX_OPEN_ORDERS, symbol=symbol, current=inp.open_intents,
                        limit=policy.max_open_orders_per_symbol)  # fmt: skip
        # 14. Daily loss (equality triggers).
        if inp.daily_pnl <= policy.max_daily_loss:
            return deny(ReasonCode.DAILY_LOSS_LIMIT, current=inp.daily_pnl, limit=policy.max_daily_loss)
    # 15. Equity known.
    if inp.equity is None:
        return deny(ReasonCode.EQUITY_UNKNOWN, account=intent.account)
    if inp.effective_state is _CAUTIOUS and not reduce_only:
        quantity = quantity * cfg.cautious_size_multiplier
    add = quantity * price
    if not reduce_only:
        # 16. Position notional, signed: S + W + q.
        net = sum(inp.positions.values(), ZERO)
        current = abs(net + inp.working_signed_qty)
        if abs(net + inp.working_signed_qty + side * quantity) * price > policy.max_position_notional:
            return deny(ReasonCode.MAX_POSITION_NOTIONAL, symbol=symbol, current=current * price, add=add,
                        limit=policy.max_position_notional)  # fmt: skip
        # 17. Account leverage, existing positions at mark.
        leverage = _leverage(inp, add)
        if leverage > policy.max_account_leverage:
            return deny(ReasonCode.MAX_ACCOUNT_LEVERAGE, current=leverage, limit=policy.max_account_leverage)
    # 18. Order decision.
    row = inp.tickers.get(targets[0].venue)
    book = None if row is None else BookTop(row.bid, row.ask, row.bid_size, row.ask_size)
    zone = intent.entry_zone
    limit_price = zone[0] if zone and zone[0] > 0 else None
    decision = decide_order(
        side, add, limit_price, reduce_only, inp.halt is _SOFT, book, intent.velocity, zone
    )
    if not decision.feasible:
        return deny(ReasonCode.IMPACT_TOO_HIGH, impact_bps=decision.impact_bps)
    # 19. Freshness.
    freshness = cfg.freshness_ms if intent.ttl_ms is None else min(cfg.freshness_ms, intent.ttl_ms)
    latency = inp.now_ms - intent.t_signal_ms
    if latency > freshness:
        return deny(ReasonCode.INTENT_EXPIRED, latency_ms=latency)
    # 20. Leg sizing.
    split = split_quantity(quantity, targets, inp.instruments, price, caps)
    if isinstance(split, RouteDenial):
        return deny(split.code, quantity=quantity, symbol=symbol)
    return Approval(  # positional: keywords cost ~50 ns each here
        tuple(targets),  # targets
        split.legs,  # legs
        side,  # side
        quantity,  # quantity
        split.unallocated,  # unallocated
        price,  # reference_price
        decision,  # decision
        reduce_only,  # reduce_only
    )


def still_valid(
    intent: RiskIntent,
    config: CheckConfig,
    policy: RiskPolicy,
    before: Mapping[str, TickerView],
    now: Mapping[str, TickerView],
    now_ms: int,
    now_mono_ns: int,
) -> bool:
    """May an approval of :func:`run_checks` from ``before`` stand now, without running them again?

    This covers what moves with time and the market: every ticker row read then is still there with
    the same book (reference price, order decision), still fresh (check 6), and the intent is
    still within its freshness window (check 19). The caller vouches for everything else the checks
    read (state, policy, risk state, halt, arm, venue health, UTC day). False means: run the checks.
    """
    if len(before) != len(now):
        return False
    staleness, ceiling = config.staleness, policy.max_staleness_ms
    for venue, row in before.items():
        fresh = now.get(venue)
        if (
            fresh is None
            or fresh.bid != row.bid
            or fresh.ask != row.ask
            or fresh.bid_size != row.bid_size
            or fresh.ask_size != row.ask_size
        ):
            return False
        limit = staleness.threshold_ms(venue, ceiling)
        if limit is not None and (now_mono_ns - fresh.receive_mono_ns) // 1_000_000 > limit:
            return False
    freshness = config.freshness_ms if intent.ttl_ms is None else min(config.freshness_ms, intent.ttl_ms)
    return now_ms - intent.t_signal_ms <= freshness


def check_leg_at_gateway(
    venue: str,
    symbol: str,
    now_mono_ns: int,
    now_ms: int,
    ticker: TickerView | None,
    staleness_limit_ms: int | None,
    cooldown_until_ms: int | None,
    empty_bucket: str | None,
) -> Denial | None:
    """Per-leg re-check just before sending: cooldown, staleness, then the token bucket result."""
    if cooldown_until_ms is not None and cooldown_until_ms > now_ms:
        return deny(ReasonCode.VENUE_COOLDOWN, venue=venue, until=cooldown_until_ms)
    if staleness_limit_ms is not None:
        age_ms = None if ticker is None else (now_mono_ns - ticker.receive_mono_ns) // 1_000_000
        if age_ms is None or age_ms > staleness_limit_ms:
            return deny(ReasonCode.MARKET_DATA_STALE, symbol=symbol, venue=venue,
                        age="none" if age_ms is None else age_ms, limit=staleness_limit_ms)  # fmt: skip
    if empty_bucket is not None:
        return deny(ReasonCode.RATE_LIMITED, bucket=empty_bucket, venue=venue)
    return None
