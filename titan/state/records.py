"""Journal record types: one tagged struct per kind of state change (risk-and-state.md §15.5)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from titan.risk.state import RiskControlState
from titan.state.fsm import LegState
from titan.state.shadow import Fill


class LegPlan(msgspec.Struct, frozen=True, gc=False):
    """One planned leg: its client order id is journaled before the order leaves ``core``."""

    coid: str
    leg: int
    venue: str
    qty: Decimal
    order_type: str = "MARKET"  # MARKET | LIMIT
    tif: str = "IOC"  # GTC | IOC | FOK | POST_ONLY
    price: Decimal | None = None  # limit price, rounded to the tick
    venue_symbol: str = ""


class IntentAccepted(msgspec.Struct, frozen=True, gc=False, tag="intent"):
    signal_id: str
    account: str
    symbol: str
    side: int
    quantity: Decimal
    unallocated: Decimal
    reference_price: Decimal
    legs: tuple[LegPlan, ...]
    reduce_only: bool = False
    causation_id: str | None = None
    source: str = ""
    t_signal_ms: int = 0
    t_ingress_ms: int = 0
    t_mono_ns: int = 0  # when core accepted it (the legs' first transitions carry this stamp)
    correlation_id: str | None = None
    dedupe_ids: tuple[str, ...] = ()  # NATS identities of the envelope (nats.md §5 row 0)
    entry_zone: tuple[Decimal, ...] = ()
    close_reason: str = "OPPOSITE_FILL"  # MANUAL for CLOSE* intents, FLATTEN for operator flattens


class IntentDenied(msgspec.Struct, frozen=True, gc=False, tag="denied"):
    signal_id: str
    code: str
    text: str
    causation_id: str | None = None
    duplicate: bool = False  # a denial as DUPLICATE_SIGNAL_ID must not mark the id as seen again
    dedupe_ids: tuple[str, ...] = ()  # NATS identities of the envelope: a redelivery is absorbed


class LegTransitionRecord(msgspec.Struct, frozen=True, gc=False, tag="leg"):
    coid: str
    to_state: LegState
    t_mono_ns: int
    t_wall_ms: int
    reason: str | None = None
    via_sent: bool = False  # first venue outcome of a leg handed to its gateway: ACCEPTED → SENT → to
    venue_order_id: str | None = None


class CoidAdopted(msgspec.Struct, frozen=True, gc=False, tag="coid"):
    """A client order id mapped outside an intent plan (flatten orders, adopted venue orders)."""

    coid: str
    signal_id: str
    symbol: str
    leg: int
    venue: str
    account: str = "main"
    state: LegState = LegState.ACCEPTED


class FillRecord(msgspec.Struct, frozen=True, gc=False, tag="fill"):
    fill: Fill


class FundingRecord(msgspec.Struct, frozen=True, gc=False, tag="funding"):
    account: str
    venue: str
    symbol: str
    amount: Decimal
    ts_ms: int
    asset: str | None = None


class CashRecord(msgspec.Struct, frozen=True, gc=False, tag="cash"):
    """Cash replaced (venue wallet sync, paper initial balance)."""

    account: str
    amount: Decimal


class RiskRecord(msgspec.Struct, frozen=True, gc=False, tag="risk"):
    """Persisted risk control (state, breaker, armed, halt) after a change."""

    state: RiskControlState


class PolicyRecord(msgspec.Struct, frozen=True, gc=False, tag="policy"):
    """A policy update: the document as loaded (its hash is recomputed from it)."""

    document: str
    policy_hash: str


Record = (
    IntentAccepted
    | IntentDenied
    | LegTransitionRecord
    | CoidAdopted
    | FillRecord
    | FundingRecord
    | CashRecord
    | RiskRecord
    | PolicyRecord
)


class JournalEntry(msgspec.Struct, frozen=True, gc=False, array_like=True):
    seq: int
    t_ms: int  # wall time of the change (injected clock)
    record: Record
