"""Published event payloads (nats.md §6, §7, §9) and their deterministic ``Nats-Msg-Id`` (§13.2).

``core`` emits the flat, tagged event structs below on its event ring; :func:`publications` turns
one into the NATS publication(s) — subject, ``Nats-Msg-Id`` and exact JSON bytes. The bytes are a
pure function of the struct, so a republish after a crash or spool replay is byte-identical and
JetStream deduplicates it; the envelope ``id`` equals the ``Nats-Msg-Id``.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from titan.canonical import JsonError, parse_json
from titan.events import subjects

DEFAULT_PRODUCER = "titan-execution-rs"
DEFAULT_SERVICE = "titan-execution-rs"
SHADOW_FEE_RATE = Decimal("0.0005")
NA = "N/A"


def plain(value: Decimal) -> str:
    """Decimal in plain notation without exponent or trailing fractional zeros (``50000``, ``0.1``)."""
    text = str(value)  # plain already unless it has an exponent (or is not finite: NaN, Infinity)
    if "E" not in text and text[-1] not in "yN":
        if "." in text and text[-1] == "0":
            text = text.rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return _plain_slow(value)


def _plain_slow(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"non-finite decimal {value}")
    if value == 0:
        return "0"
    text = format(value, "f")  # exact: no context rounding (normalize() would round to 28 digits)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _opt_plain(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


# --- event structs (core → bridge) --------------------------------------------------------------


class FillEvent(msgspec.Struct, tag="fill", frozen=True, gc=False):  # core calls it positionally
    """One venue execution (§9.1)."""

    venue: str
    account: str
    symbol: str  # canonical BASE/QUOTE
    trade_id: str  # the venue's execution id
    signal_id: str
    client_order_id: str
    venue_order_id: str
    side: str  # BUY | SELL
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    status: str  # order status after this fill: PARTIALLY_FILLED | FILLED
    cum_qty: Decimal
    avg_price: Decimal
    leaves_qty: Decimal
    is_maker: bool
    leg: int
    t_signal: int
    t_ingress: int
    t_decision: int
    t_ack: int
    t_exchange: int
    ts: int  # envelope ts (ms)
    correlation_id: str | None = None


class OrderReportEvent(msgspec.Struct, tag="report", frozen=True, gc=False):  # core calls it positionally
    """One order (leg) state transition (§9.2)."""

    signal_id: str
    client_order_id: str
    venue: str
    account: str
    symbol: str
    venue_symbol: str
    leg: int
    side: str
    order_type: str
    time_in_force: str
    post_only: bool
    reduce_only: bool
    price: Decimal | None
    quantity: Decimal
    status: str
    prev_status: str | None
    seq: int
    venue_order_id: str | None
    venue_status: str | None
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    last_fill_qty: Decimal | None
    last_fill_price: Decimal | None
    fee_total: Decimal
    fee_asset: str | None
    reason_code: str | None
    reason: str | None
    venue_error_code: str | None
    intent_status: str
    t_signal: int
    t_ingress: int | None
    t_sent: int | None
    t_ack: int | None
    t_exchange: int | None
    ts: int
    correlation_id: str | None = None


class ShadowFillEvent(msgspec.Struct, tag="shadow", frozen=True, kw_only=True, gc=False):
    """Simulated fill per processed intent (§9.3); fee = price·size·0.0005."""

    shadow_id: str
    signal_id: str
    symbol_as_given: str
    direction: int
    best_bid: Decimal
    best_ask: Decimal
    size: Decimal
    t_signal: int
    t_ingress: int
    t_decision: int
    t_exchange: int  # the ticker's exchange time


class TradeClosedEvent(msgspec.Struct, tag="trade", frozen=True, gc=False):  # core calls it positionally
    """A (partial) position close (§9.4)."""

    trade_id: str
    signal_id: str
    symbol: str
    side: str  # LONG | SHORT
    entry_price: Decimal
    exit_price: Decimal
    size: Decimal
    pnl: Decimal
    pnl_pct: Decimal
    fee: Decimal
    fee_asset: str
    opened_at: str  # RFC 3339 UTC
    closed_at: str
    close_reason: str  # MANUAL | OPPOSITE_FILL | FLATTEN | RECONCILIATION | LIQUIDATION
    venue: str
    partial: bool
    ts: int
    metadata: dict[str, Any] | None = None
    correlation_id: str | None = None


class PositionSnapshot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One venue position as in the truth snapshot (§9.5)."""

    venue: str
    symbol: str
    side: str  # LONG | SHORT
    size: Decimal  # absolute
    entry_price: Decimal
    stop_loss: Decimal
    take_profits: tuple[Decimal, ...]
    signal_id: str
    opened_at: str
    regime_state: int | None
    phase: int | None
    metadata: dict[str, Any] | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees_paid: Decimal
    funding_paid: Decimal
    last_mark_price: Decimal | None
    last_update_ts: int
    position_mode: str = "ONE_WAY"


class TruthEvent(msgspec.Struct, tag="truth", frozen=True, kw_only=True, gc=False):
    """Periodic truth snapshot (§9.5); ``positions`` map is derived from ``venue_positions``."""

    instance: str
    timestamp: int
    policy_hash: str
    version: str
    venue_positions: tuple[PositionSnapshot, ...]
    armed: bool
    halted: bool
    risk_state: str
    service: str = DEFAULT_SERVICE


class ExposureEvent(msgspec.Struct, tag="exposure", frozen=True, kw_only=True, gc=False):
    """``exposure.update`` (§9.6): core NATS, not a stream subject."""

    net_exposure: Decimal
    gross_notional: Decimal
    long_notional: Decimal
    short_notional: Decimal
    position_count: int


class BalanceEvent(msgspec.Struct, tag="balance", frozen=True, kw_only=True, gc=False):
    """Balance change (§9.7); ``venue`` only feeds the Nats-Msg-Id."""

    venue: str
    free: Decimal
    total: Decimal
    locked: Decimal
    ts: int
    asset: str = "USDT"


class FundingEvent(msgspec.Struct, tag="funding", frozen=True, kw_only=True, gc=False):
    """Venue funding settlement (§9.7); positive amount = paid."""

    venue: str
    venue_id: str
    symbol: str
    amount: Decimal
    asset: str
    ts: int
    correlation_id: str | None = None


class DriftEvent(msgspec.Struct, tag="drift", frozen=True, kw_only=True, gc=False):
    """Drift report (risk-and-state.md §16)."""

    signal_id: str
    symbol: str
    venue: str
    drift_class: str  # ClassASpread | ClassBLatency | ClassPPosition
    expected: Decimal
    actual: Decimal
    deviation_bps: Decimal
    timestamp: int


class RejectEvent(msgspec.Struct, tag="reject", frozen=True, kw_only=True, gc=False):
    """Reject event (§7). Unknown values are ``"N/A"``; ``message_id`` feeds the Nats-Msg-Id only."""

    reason: str
    intent_id: str
    brain_instance_id: str
    timestamp: int
    code: str
    message: str
    expected_policy_hash: str = NA
    got_policy_hash: str = NA
    event_type: str = "execution.intent.rejected"
    venue: str | None = None
    command: str | None = None  # operator rejections: the subject
    message_id: str = ""  # Nats-Msg-Id / stream sequence of the rejected message


class DlqEvent(msgspec.Struct, tag="dlq", frozen=True, kw_only=True, gc=False):
    """DLQ message (§6). ``original`` is the whole original message, embedded as JSON when it parses."""

    reason: str
    original: bytes
    t_ingress: int
    message_id: str  # original stream sequence or message id
    code: str | None = None


EVENT = (
    FillEvent
    | OrderReportEvent
    | ShadowFillEvent
    | TradeClosedEvent
    | TruthEvent
    | ExposureEvent
    | BalanceEvent
    | FundingEvent
    | DriftEvent
    | RejectEvent
    | DlqEvent
)


class Publication(msgspec.Struct, frozen=True, gc=False):
    """One NATS publish: ``msg_id`` goes in the ``Nats-Msg-Id`` header (empty: core NATS subject)."""

    subject: str
    msg_id: str
    data: bytes


# --- Nats-Msg-Id (§13.2) -------------------------------------------------------------------------


def msg_id(event: EVENT, instance: str = "") -> str:
    """Deterministic ``Nats-Msg-Id`` of an event (stable across retries and spool replays)."""
    match event:
        case FillEvent():
            return f"fill:{event.venue}:{event.trade_id}"
        case OrderReportEvent():
            return f"report:{event.client_order_id}:{event.seq}"
        case TradeClosedEvent():
            return f"trade:{event.trade_id}"
        case RejectEvent():
            ident = event.intent_id if event.intent_id != NA else (event.message_id or NA)
            return f"reject:{ident}:{event.reason}"
        case DlqEvent():
            return f"dlq:{event.message_id}"
        case TruthEvent():
            return f"truth:{instance or event.instance}:{event.timestamp}"
        case FundingEvent():
            return f"funding:{event.venue}:{event.venue_id}"
        case BalanceEvent():
            return f"balance:{event.venue}:{event.ts}"
        case ShadowFillEvent():
            return f"shadow:{event.shadow_id}"
        case DriftEvent():  # with both values: two drifts of one signal in one ms are two events
            e = event
            return f"drift:{e.signal_id}:{e.venue}:{e.drift_class}:{e.timestamp}:{e.expected}:{e.actual}"
        case ExposureEvent():
            return ""  # exposure.update is not captured by any stream
    raise TypeError(f"not an event: {type(event).__name__}")


# --- payload builders ---------------------------------------------------------------------------


def envelope(
    event_type: str, msg_id_: str, ts: int, correlation_id: str | None, payload: Any, producer: str
) -> dict[str, Any]:
    """Published envelope (§9): unsigned, no schema_version, no idempotency_key; ``id`` = Nats-Msg-Id."""
    return {
        "id": msg_id_,
        "type": event_type,
        "version": 1,
        "ts": ts,
        "producer": producer,
        "correlation_id": correlation_id,
        "payload": payload,
    }


def fill_payload(e: FillEvent, plain: Callable[[Any], str] = plain) -> dict[str, Any]:
    """FillReport, camelCase, decimals as strings (§9.1).

    ``plain`` formats the decimals: :func:`plain_text` for a :data:`TextFillEvent`.
    """
    return {
        "fillId": f"{e.venue}:{e.trade_id}",
        "signalId": e.signal_id,
        "symbol": e.symbol,
        "side": e.side,
        "price": plain(e.price),
        "qty": plain(e.qty),
        "fee": plain(e.fee),
        "feeCurrency": e.fee_currency,
        "tSignal": e.t_signal,
        "tIngress": e.t_ingress,
        "tDecision": e.t_decision,
        "tAck": e.t_ack,
        "tExchange": e.t_exchange,
        "clientOrderId": e.client_order_id,
        "executionId": e.venue_order_id,
        "status": e.status,
        "timestamp": e.t_exchange,
        "dexProof": None,
        "venue": e.venue,
        "account": e.account,
        "tradeId": e.trade_id,
        "cumQty": plain(e.cum_qty),
        "avgPrice": plain(e.avg_price),
        "leavesQty": plain(e.leaves_qty),
        "isMaker": e.is_maker,
        "leg": e.leg,
    }


def report_payload(e: OrderReportEvent, plain: Callable[[Any], str] = plain) -> dict[str, Any]:
    """Execution report, snake_case (§9.2).

    ``plain`` formats the decimals: :func:`plain_text` for a :data:`TextOrderReportEvent`.
    """
    price, avg_fill_price = e.price, e.avg_fill_price
    last_fill_qty, last_fill_price = e.last_fill_qty, e.last_fill_price
    return {
        "signal_id": e.signal_id,
        "client_order_id": e.client_order_id,
        "venue": e.venue,
        "account": e.account,
        "symbol": e.symbol,
        "venue_symbol": e.venue_symbol,
        "leg": e.leg,
        "side": e.side,
        "order_type": e.order_type,
        "time_in_force": e.time_in_force,
        "post_only": e.post_only,
        "reduce_only": e.reduce_only,
        "price": None if price is None else plain(price),
        "quantity": plain(e.quantity),
        "status": e.status,
        "prev_status": e.prev_status,
        "seq": e.seq,
        "venue_order_id": e.venue_order_id,
        "venue_status": e.venue_status,
        "filled_qty": plain(e.filled_qty),
        "avg_fill_price": None if avg_fill_price is None else plain(avg_fill_price),
        "last_fill_qty": None if last_fill_qty is None else plain(last_fill_qty),
        "last_fill_price": None if last_fill_price is None else plain(last_fill_price),
        "fee_total": plain(e.fee_total),
        "fee_asset": e.fee_asset,
        "reason_code": e.reason_code,
        "reason": e.reason,
        "venue_error_code": e.venue_error_code,
        "intent_status": e.intent_status,
        "t_signal": e.t_signal,
        "t_ingress": e.t_ingress,
        "t_sent": e.t_sent,
        "t_ack": e.t_ack,
        "t_exchange": e.t_exchange,
        "ts": e.ts,
    }


def shadow_fill_payload(e: ShadowFillEvent) -> dict[str, Any]:
    """Raw FillReport with sim- ids and the snake_case aliases the upstream benchmark reads (§9.3)."""
    buy = e.direction == 1
    price = e.best_ask if buy else e.best_bid
    return {
        "fillId": f"sim-{e.shadow_id}",
        "signalId": e.signal_id,
        "symbol": e.symbol_as_given,
        "side": "BUY" if buy else "SELL",
        "price": plain(price),
        "qty": plain(e.size),
        "fee": plain(price * e.size * SHADOW_FEE_RATE),
        "feeCurrency": "USDT",
        "tSignal": e.t_signal,
        "tIngress": e.t_ingress,
        "tDecision": e.t_decision,
        "tAck": e.t_exchange,
        "tExchange": e.t_exchange,
        "clientOrderId": f"sim-oid-{e.shadow_id}",
        "executionId": f"sim-exec-{e.shadow_id}",
        "status": "FILLED",
        "timestamp": e.t_exchange,
        "dexProof": None,
        "signal_id": e.signal_id,
        "t_signal": e.t_signal,
    }


def trade_payload(e: TradeClosedEvent) -> dict[str, Any]:
    """TradeRecord (§9.4)."""
    return {
        "signal_id": e.signal_id,
        "symbol": e.symbol,
        "side": e.side,
        "entry_price": plain(e.entry_price),
        "exit_price": plain(e.exit_price),
        "size": plain(e.size),
        "pnl": plain(e.pnl),
        "pnl_pct": plain(e.pnl_pct),
        "fee": plain(e.fee),
        "fee_asset": e.fee_asset,
        "opened_at": e.opened_at,
        "closed_at": e.closed_at,
        "close_reason": e.close_reason,
        "metadata": e.metadata,
        "trade_id": e.trade_id,
        "venue": e.venue,
        "partial": e.partial,
    }


def position_payload(p: PositionSnapshot, exchange: str | None = None) -> dict[str, Any]:
    """Position shape of §9.5, decimals as strings."""
    return {
        "symbol": p.symbol,
        "side": p.side,
        "size": plain(p.size),
        "entry_price": plain(p.entry_price),
        "stop_loss": plain(p.stop_loss),
        "take_profits": [plain(t) for t in p.take_profits],
        "signal_id": p.signal_id,
        "opened_at": p.opened_at,
        "regime_state": p.regime_state,
        "phase": p.phase,
        "metadata": p.metadata,
        "exchange": exchange if exchange is not None else p.venue.upper(),
        "position_mode": p.position_mode,
        "realized_pnl": plain(p.realized_pnl),
        "unrealized_pnl": plain(p.unrealized_pnl),
        "fees_paid": plain(p.fees_paid),
        "funding_paid": plain(p.funding_paid),
        "last_mark_price": _opt_plain(p.last_mark_price),
        "last_update_ts": p.last_update_ts,
    }


def _signed(p: PositionSnapshot) -> Decimal:
    return p.size if p.side == "LONG" else -p.size


def positions_by_symbol(positions: tuple[PositionSnapshot, ...]) -> dict[str, dict[str, Any]]:
    """Compatibility view keyed by symbol (risk-and-state.md §15.6); flat symbols omitted."""
    grouped: dict[str, list[PositionSnapshot]] = {}
    for p in positions:
        grouped.setdefault(p.symbol, []).append(p)
    view: dict[str, dict[str, Any]] = {}
    for symbol, group in grouped.items():
        net = sum((_signed(p) for p in group), Decimal(0))
        if net == 0:
            continue
        side = "LONG" if net > 0 else "SHORT"
        same_side = [p for p in group if p.side == side]
        side_size = sum((p.size for p in same_side), Decimal(0))
        entry = sum((p.size * p.entry_price for p in same_side), Decimal(0)) / side_size
        opener = max(same_side, key=lambda p: p.size)
        venues = {p.venue for p in group}
        marks = [p.last_mark_price for p in group if p.last_mark_price is not None]
        merged = PositionSnapshot(
            venue=opener.venue,
            symbol=symbol,
            side=side,
            size=abs(net),
            entry_price=entry,
            stop_loss=opener.stop_loss,
            take_profits=opener.take_profits,
            signal_id=opener.signal_id,
            opened_at=min(p.opened_at for p in same_side),
            regime_state=opener.regime_state,
            phase=opener.phase,
            metadata=opener.metadata,
            realized_pnl=sum((p.realized_pnl for p in group), Decimal(0)),
            unrealized_pnl=sum((p.unrealized_pnl for p in group), Decimal(0)),
            fees_paid=sum((p.fees_paid for p in group), Decimal(0)),
            funding_paid=sum((p.funding_paid for p in group), Decimal(0)),
            last_mark_price=marks[0] if marks else None,
            last_update_ts=max(p.last_update_ts for p in group),
            position_mode=opener.position_mode,
        )
        exchange = opener.venue.upper() if len(venues) == 1 else "MULTI"
        view[symbol] = position_payload(merged, exchange)
    return view


def truth_payload(e: TruthEvent) -> dict[str, Any]:
    """Truth snapshot (§9.5)."""
    return {
        "timestamp": e.timestamp,
        "service": e.service,
        "positions": positions_by_symbol(e.venue_positions),
        "policy_hash": e.policy_hash,
        "meta": {"version": e.version},
        "venue_positions": [position_payload(p) for p in e.venue_positions],
        "armed": e.armed,
        "halted": e.halted,
        "risk_state": e.risk_state,
    }


def exposure_payload(e: ExposureEvent) -> dict[str, Any]:
    return {
        "net_exposure": plain(e.net_exposure),
        "gross_notional": plain(e.gross_notional),
        "long_notional": plain(e.long_notional),
        "short_notional": plain(e.short_notional),
        "position_count": e.position_count,
    }


def exposure_from_positions(positions: tuple[PositionSnapshot, ...]) -> ExposureEvent:
    """Exposure metrics: notional = size × (last_mark_price or entry_price) (§9.6)."""
    long_n = Decimal(0)
    short_n = Decimal(0)
    count = 0
    for p in positions:
        if p.size == 0:
            continue
        count += 1
        notional = p.size * (p.last_mark_price if p.last_mark_price is not None else p.entry_price)
        if p.side == "LONG":
            long_n += notional
        else:
            short_n += notional
    return ExposureEvent(
        net_exposure=long_n - short_n,
        gross_notional=long_n + short_n,
        long_notional=long_n,
        short_notional=short_n,
        position_count=count,
    )


def balance_payload(e: BalanceEvent) -> dict[str, Any]:
    return {
        "asset": e.asset,
        "free": plain(e.free),
        "total": plain(e.total),
        "locked": plain(e.locked),
        "ts": e.ts,
    }


def funding_payload(e: FundingEvent) -> dict[str, Any]:
    return {"symbol": e.symbol, "amount": plain(e.amount), "asset": e.asset}


def drift_payload(e: DriftEvent) -> dict[str, Any]:
    return {
        "signal_id": e.signal_id,
        "symbol": e.symbol,
        "venue": e.venue,
        "drift_class": e.drift_class,
        "expected": plain(e.expected),
        "actual": plain(e.actual),
        "deviation_bps": plain(e.deviation_bps),
        "timestamp": e.timestamp,
    }


def reject_payload(e: RejectEvent) -> dict[str, Any]:
    """Reject event (§7); operator rejections carry ``command`` (the subject)."""
    out: dict[str, Any] = {
        "reason": e.reason,
        "expected_policy_hash": e.expected_policy_hash,
        "got_policy_hash": e.got_policy_hash,
        "intent_id": e.intent_id,
        "brain_instance_id": e.brain_instance_id,
        "timestamp": e.timestamp,
        "event_type": e.event_type,
        "code": e.code,
        "message": e.message,
        "venue": e.venue,
    }
    if e.command is not None:
        out["command"] = e.command
    return out


def original_message(original: bytes) -> Any:
    """The original message as embedded in a DLQ payload: verbatim JSON when it parses, else text."""
    try:
        parse_json(original)
    except JsonError:
        return original.decode("utf-8", errors="replace")
    return msgspec.Raw(original)  # verbatim: no float round-trip of the producer's numbers


def dlq_payload(e: DlqEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reason": e.reason,
        "payload": original_message(e.original),
        "t_ingress": e.t_ingress,
    }
    if e.code is not None:
        out["code"] = e.code
    return out


_ENCODER = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return _ENCODER.encode(obj)


def publications(event: EVENT, producer: str = DEFAULT_PRODUCER, instance: str = "") -> list[Publication]:
    """The NATS publication(s) of one event: subject, Nats-Msg-Id, JSON bytes."""
    mid = msg_id(event, instance)
    match event:
        case FillEvent():
            data = encode(
                envelope(
                    subjects.TYPE_FILL, mid, event.ts, event.correlation_id, fill_payload(event), producer
                )
            )
            return [Publication(subjects.fill_subject(event.venue, event.symbol, event.account), mid, data)]
        case OrderReportEvent():
            body = envelope(
                subjects.TYPE_REPORT, mid, event.ts, event.correlation_id, report_payload(event), producer
            )
            return [
                Publication(
                    subjects.report_subject(event.venue, event.symbol, event.account), mid, encode(body)
                )
            ]
        case TradeClosedEvent():
            body = envelope(
                subjects.TYPE_TRADE_CLOSED,
                mid,
                event.ts,
                event.correlation_id,
                trade_payload(event),
                producer,
            )
            return [Publication(subjects.EVT_TRADE_COMPLETED, mid, encode(body))]
        case FundingEvent():
            body = envelope(
                subjects.TYPE_FUNDING, mid, event.ts, event.correlation_id, funding_payload(event), producer
            )
            return [Publication(subjects.EVT_FUNDING, mid, encode(body))]
        case ShadowFillEvent():
            subject = subjects.shadow_fill_subject(event.symbol_as_given)
            return [Publication(subject, mid, encode(shadow_fill_payload(event)))]
        case TruthEvent():
            return [Publication(subjects.EVT_TRUTH, mid, encode(truth_payload(event)))]
        case ExposureEvent():
            return [Publication(subjects.EXPOSURE_UPDATE, mid, encode(exposure_payload(event)))]
        case BalanceEvent():
            return [Publication(subjects.EVT_BALANCE, mid, encode(balance_payload(event)))]
        case DriftEvent():
            return [Publication(subjects.EVT_DRIFT, mid, encode(drift_payload(event)))]
        case RejectEvent():
            return [Publication(subjects.EVT_REJECT, mid, encode(reject_payload(event)))]
        case DlqEvent():
            data = encode(dlq_payload(event))
            return [Publication(subject, mid, data) for subject in subjects.DLQ_SUBJECTS]
    raise TypeError(f"not an event: {type(event).__name__}")


# --- the bridge's fast path: decimals kept as the text core wrote -----------------------------------
#
# core's ring encoder writes a Decimal as its ``str()``. The bridge decodes the two most frequent
# events (fills and order reports) into mirrors of their structs whose decimal fields are that text,
# so no Decimal is built only to be turned back into text: :func:`plain_text` gives what
# :func:`plain` gives for the Decimal (tests check every field against the typed path).


def plain_text(text: str) -> str:
    """:func:`plain` of ``Decimal(text)`` for the ``str()`` of a Decimal."""
    if "E" not in text and text[-1] not in "yN":  # no exponent, finite (not NaN, Infinity)
        if "." in text and text[-1] == "0":
            text = text.rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return plain(Decimal(text))


def _text_type(t: Any) -> Any:
    if t is Decimal:
        return str
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, (_text_type(a) for a in typing.get_args(t)))
    return t


def _text_mirror(cls: type[msgspec.Struct]) -> Any:
    """``cls`` with every Decimal field as text: same tag, field names, order and defaults."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(cls):
        t = _text_type(f.type)
        fields.append((f.name, t) if f.required else (f.name, t, f.default))
    config = cls.__struct_config__
    return msgspec.defstruct(
        f"Text{cls.__name__}",
        fields,
        tag=config.tag,
        tag_field=config.tag_field,
        frozen=True,
        kw_only=True,
        gc=False,
        module=__name__,
    )


TextFillEvent = _text_mirror(FillEvent)
TextOrderReportEvent = _text_mirror(OrderReportEvent)
_TEXT_MIRRORS = {FillEvent: TextFillEvent, OrderReportEvent: TextOrderReportEvent}


def text_union(kinds: Any) -> Any:
    """The union ``kinds`` (a ring's message types) with fills and reports as their text mirrors."""
    return functools.reduce(operator.or_, (_TEXT_MIRRORS.get(k, k) for k in typing.get_args(kinds)))


def text_publications(event: Any, producer: str = DEFAULT_PRODUCER, instance: str = "") -> list[Publication]:
    """:func:`publications` of an event decoded with :func:`text_union` (same subject, id, bytes)."""
    kind = type(event)
    if kind is TextOrderReportEvent:
        mid = f"report:{event.client_order_id}:{event.seq}"
        body = envelope(
            subjects.TYPE_REPORT,
            mid,
            event.ts,
            event.correlation_id,
            report_payload(event, plain_text),
            producer,
        )
        return [
            Publication(subjects.report_subject(event.venue, event.symbol, event.account), mid, encode(body))
        ]
    if kind is TextFillEvent:
        mid = f"fill:{event.venue}:{event.trade_id}"
        body = envelope(
            subjects.TYPE_FILL, mid, event.ts, event.correlation_id, fill_payload(event, plain_text), producer
        )
        return [
            Publication(subjects.fill_subject(event.venue, event.symbol, event.account), mid, encode(body))
        ]
    return publications(event, producer, instance)
