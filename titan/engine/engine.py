"""The sans-I/O trading engine that `core` runs: commands and venue reports in, replies, orders
and events out.

Deterministic given its input sequence and the clock values passed in (``now_ns`` monotonic,
``now_ms`` wall): no I/O, no clock reads, no randomness. The `core` process is a thin driver
that pops ring messages, calls these methods and pushes what the :class:`Outbox` receives.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

import msgspec

from titan.messages import (
    ACK,
    CANCELED,
    DENIED,
    EXPIRED,
    FAILED,
    FILL,
    REJECTED,
    UNKNOWN,
    Abort,
    Confirm,
    Event,
    Intent,
    OrderRequest,
    Prepare,
    Reply,
    Stages,
    VenueReport,
)
from titan.symbols import SymbolError, normalize_symbol, subject_symbol, venue_symbol

ZERO = Decimal(0)
_json = msgspec.json.Encoder()


class Quote(msgspec.Struct, frozen=True, gc=False):
    bid: Decimal
    ask: Decimal
    exchange_ts_ms: int
    recv_mono_ns: int


class Quotes(Protocol):
    """Read access to the ticker table."""

    def get(self, venue: str, symbol: str) -> Quote | None: ...


class Outbox(Protocol):
    def reply(self, reply: Reply) -> None: ...
    def order(self, venue: str, order: OrderRequest) -> None: ...
    def event(self, event: Event) -> None: ...


@dataclass(frozen=True)
class Instrument:
    tick_size: Decimal
    lot_step: Decimal
    min_qty: Decimal
    min_notional: Decimal


@dataclass(frozen=True)
class EngineSettings:
    venue: str  # the (single, for now) venue orders go to
    price_source: str  # the ticker-table venue for that venue's quotes
    instruments: dict[str, Instrument]
    staleness_ms: int = 200
    prepare_ttl_ms: int = 10_000
    confirm_reply_deadline_ms: int = 750
    sizing: str = "legacy"
    fixed_notional: Decimal = Decimal(100)
    equity: Decimal = Decimal(10_000)
    armed: bool = True
    shadow_fills: bool = True
    producer: str = "titan-execution-rs"
    account: str = "main"


def client_order_id(signal_id: str, venue: str, leg: int, attempt: int = 0) -> str:
    """risk-and-state.md §12: ``te`` + base32(sha256(id))[:20] + venue code + leg + attempt (26 chars)."""
    digest = base64.b32encode(hashlib.sha256(signal_id.encode()).digest()).decode().lower()[:20]
    code = {"bybit": "y", "binance": "b", "mexc": "m", "paper": "p"}[venue]
    return f"te{digest}{code}{leg:02d}{'0123456789abcdefghijklmnopqrstuvwxyz'[attempt]}"


def dec_str(d: Decimal) -> str:
    """Plain decimal text: no exponent, ``"0"`` for zero."""
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text


@dataclass
class Prepared:
    intent: Intent
    symbol: str
    qty: Decimal
    notional: Decimal
    order_type: str
    prepared_ns: int


@dataclass
class Order:
    coid: str
    signal_id: str
    venue: str
    symbol: str
    side: str
    qty: Decimal
    state: str = "SENT"
    filled: Decimal = ZERO
    notional_filled: Decimal = ZERO
    venue_order_id: str = ""
    trade_ids: set[str] = field(default_factory=set)


@dataclass
class PendingReply:
    conn: int
    req: int
    signal_id: str
    deadline_ns: int
    stages: Stages


@dataclass
class ConfirmedIntent:
    signal_id: str
    coids: list[str]
    status: str = "PENDING"


@dataclass
class Position:
    size: Decimal = ZERO  # signed
    entry: Decimal = ZERO


class Engine:
    def __init__(self, settings: EngineSettings, quotes: Quotes, out: Outbox) -> None:
        self.s = settings
        self.quotes = quotes
        self.out = out
        self.prepared: dict[str, Prepared] = {}
        self.confirmed: dict[str, ConfirmedIntent] = {}
        self.orders: dict[str, Order] = {}
        self.pending: dict[str, PendingReply] = {}  # signal_id -> the CONFIRM waiting for its outcome
        self.positions: dict[str, Position] = {}
        self.seq = 0

    # --- commands ----------------------------------------------------------------------------

    def on_command(self, cmd: Prepare | Confirm | Abort, now_ns: int, now_ms: int) -> None:
        stages = Stages(t_read=cmd.t_read, t_ring=cmd.t_ring, t_core_in=now_ns)
        fields: dict[str, Any] | None
        if isinstance(cmd, Prepare):
            fields = self._prepare(cmd.intent, now_ns)
        elif isinstance(cmd, Confirm):
            fields = self._confirm(cmd, stages, now_ns, now_ms)
        else:
            fields = self._abort(cmd.signal_id)
        if fields is not None:  # None: answered when the order's first outcome arrives
            self._reply(cmd.conn, cmd.req, fields, stages)

    def _reply(self, conn: int, req: int, fields: dict[str, Any], stages: Stages) -> None:
        self.out.reply(Reply(conn=conn, req=req, fields=fields, stages=stages))

    def _deny(self, key: str, signal_id: str, code: str, message: str) -> dict[str, Any]:
        return {"signal_id": signal_id, key: False, "rejected": True, "reason": code, "message": message}

    def _prepare(self, intent: Intent, now_ns: int) -> dict[str, Any]:
        sid = intent.signal_id
        if sid in self.confirmed:
            return self._deny("prepared", sid, "DUPLICATE_SIGNAL_ID", f"signal {sid} was already confirmed")
        try:
            symbol = normalize_symbol(intent.symbol)
        except SymbolError as exc:
            return self._deny("prepared", sid, "UNKNOWN_SYMBOL", str(exc))
        inst = self.s.instruments.get(symbol)
        if inst is None:
            return self._deny("prepared", sid, "UNKNOWN_SYMBOL", f"Unknown symbol '{symbol}'")
        quote = self.quotes.get(self.s.price_source, symbol)
        if quote is None:
            return self._deny(
                "prepared", sid, "MARKET_DATA_STALE", f"Market Data Stale: {symbol} on {self.s.venue}"
            )
        age_ms = (now_ns - quote.recv_mono_ns) // 1_000_000
        if self.s.staleness_ms and age_ms > self.s.staleness_ms:
            return self._deny(
                "prepared",
                sid,
                "MARKET_DATA_STALE",
                f"Market Data Stale: {symbol} on {self.s.venue} ({age_ms} ms > {self.s.staleness_ms} ms)",
            )
        ref = Decimal(intent.entry_zone[0]) if intent.entry_zone else ZERO
        if ref <= 0:
            ref = (quote.bid + quote.ask) / 2
        notional = self._size(intent)
        if notional <= 0:
            return self._deny("prepared", sid, "INVALID_SIZE", "Invalid size (<= 0)")
        qty = (notional / ref / inst.lot_step).to_integral_value(ROUND_DOWN) * inst.lot_step
        if qty < inst.min_qty or qty <= 0:
            return self._deny(
                "prepared", sid, "BELOW_MIN_QTY", f"quantity {dec_str(qty)} below {inst.min_qty}"
            )
        order_type = "MARKET"
        self.prepared[sid] = Prepared(intent, symbol, qty, notional, order_type, now_ns)
        return {
            "signal_id": sid,
            "prepared": True,
            "position_size": float(notional),
            "quantity": dec_str(qty),
            "order_type": order_type,
        }

    def _size(self, intent: Intent) -> Decimal:
        if intent.position_size:
            ps = Decimal(intent.position_size)
            if ps > 0:
                return ps
        if self.s.sizing == "fixed_notional":
            return self.s.fixed_notional
        conf = Decimal(str(intent.confidence if intent.confidence is not None else 0))
        conf_pct = conf * 100 if conf <= 1 else conf
        lev = Decimal(str(intent.leverage)) if intent.leverage else Decimal(1)
        legacy = self.s.equity * Decimal("0.02") * (conf_pct / 100 * Decimal("0.25")) / lev
        return max(Decimal(10), legacy)

    def _confirm(self, cmd: Confirm, stages: Stages, now_ns: int, now_ms: int) -> dict[str, Any] | None:
        sid = cmd.signal_id
        done = self.confirmed.get(sid)
        if done is not None:
            fields = self._intent_outcome(done)
            fields["duplicate"] = True
            return fields
        prep = self.prepared.pop(sid, None)
        if prep is None:
            return {
                "signal_id": sid,
                "executed": False,
                "rejected": True,
                "reason": "PREPARE_NOT_FOUND",
                "message": "CONFIRM received without prior PREPARE",
            }
        age_ms = (now_ns - prep.prepared_ns) // 1_000_000
        if age_ms > self.s.prepare_ttl_ms:
            return {
                "signal_id": sid,
                "executed": False,
                "rejected": True,
                "reason": "STALE_SIGNAL",
                "age_ms": age_ms,
                "max_age_ms": self.s.prepare_ttl_ms,
            }
        if not self.s.armed:
            return {
                "signal_id": sid,
                "executed": False,
                "rejected": True,
                "reason": "EXECUTION_DISABLED_BY_OPERATOR",
                "master_arm": False,
            }
        intent = prep.intent
        side = "BUY" if intent.direction > 0 else "SELL"
        coid = client_order_id(sid, self.s.venue, 0)
        order = Order(coid, sid, self.s.venue, prep.symbol, side, prep.qty)
        self.orders[coid] = order
        self.confirmed[sid] = ConfirmedIntent(sid, [coid])
        stages.t_order_out = now_ns
        self.out.order(
            self.s.venue,
            OrderRequest(
                coid=coid,
                signal_id=sid,
                leg=0,
                venue=self.s.venue,
                account=self.s.account,
                symbol=prep.symbol,
                venue_symbol=venue_symbol(prep.symbol, self.s.venue),
                side=side,
                order_type=prep.order_type,
                tif="IOC",
                qty=dec_str(prep.qty),
                price=None,
                reduce_only=False,
                t_signal_ms=intent.t_signal_ms,
                t_core_in=stages.t_core_in,
                t_core_out=now_ns,
            ),
        )
        if self.s.shadow_fills:
            self._shadow_fill(intent, prep, now_ms)
        self.pending[sid] = PendingReply(
            cmd.conn, cmd.req, sid, now_ns + self.s.confirm_reply_deadline_ms * 1_000_000, stages
        )
        return None

    def _abort(self, sid: str) -> dict[str, Any]:
        if sid in self.confirmed:
            return {"signal_id": sid, "aborted": False, "reason": "ALREADY_CONFIRMED"}
        self.prepared.pop(sid, None)
        return {"signal_id": sid, "aborted": True}

    def _intent_outcome(self, ci: ConfirmedIntent) -> dict[str, Any]:
        orders = [self.orders[c] for c in ci.coids if c in self.orders]
        filled = sum((o.filled for o in orders), ZERO)
        notional = sum((o.notional_filled for o in orders), ZERO)
        states = {o.state for o in orders}
        fields: dict[str, Any] = {"signal_id": ci.signal_id, "order_ids": ci.coids}
        if orders and states <= {"REJECTED", "DENIED", "FAILED"}:
            fields.update(executed=False, rejected=True, reason="VENUE_REJECTED", venue_errors=[])
            return fields
        fields["executed"] = True
        if filled > 0:
            fields["status"] = "FILLED" if states == {"FILLED"} else "PARTIALLY_FILLED"
            fields["fill_price"] = float(notional / filled)
            fields["filled_qty"] = dec_str(filled)
        elif "UNKNOWN" in states or "SENT" in states:
            fields["status"] = "UNKNOWN"
        else:
            fields["status"] = "ACKED"
        return fields

    # --- venue reports -----------------------------------------------------------------------

    def on_report(self, rep: VenueReport, now_ns: int, now_ms: int) -> None:
        order = self.orders.get(rep.coid)
        if order is None:
            return
        if rep.kind == FILL:
            if rep.trade_id in order.trade_ids:
                return  # duplicate execution (venue, trade id)
            order.trade_ids.add(rep.trade_id)
            qty, price = Decimal(rep.qty), Decimal(rep.price)
            order.filled += qty
            order.notional_filled += qty * price
            order.state = "FILLED" if order.filled >= order.qty else "PARTIAL_FILL"
            self._apply_position(order.symbol, order.side, qty, price)
            self._fill_event(order, rep, now_ms)
        elif rep.kind == ACK:
            order.venue_order_id = rep.venue_order_id or order.venue_order_id
            if order.state == "SENT":
                order.state = "ACKED"
        elif rep.kind in (REJECTED, DENIED, FAILED):
            order.state = rep.kind if rep.kind != DENIED else "DENIED"
        elif rep.kind == UNKNOWN:
            order.state = "UNKNOWN"
        elif rep.kind in (CANCELED, EXPIRED):
            order.state = rep.kind
        pending = self.pending.get(order.signal_id)
        if pending is not None and order.state != "SENT":
            del self.pending[order.signal_id]
            pending.stages.t_gw_in = rep.t_gw_in
            pending.stages.t_gw_out = rep.t_gw_out
            pending.stages.t_report_in = now_ns
            self._reply(
                pending.conn,
                pending.req,
                self._intent_outcome(self.confirmed[order.signal_id]),
                pending.stages,
            )

    def _apply_position(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> None:
        pos = self.positions.setdefault(symbol, Position())
        signed = qty if side == "BUY" else -qty
        new = pos.size + signed
        if pos.size == 0 or (pos.size > 0) == (signed > 0):
            pos.entry = (pos.entry * abs(pos.size) + price * qty) / abs(new)
        elif new != 0 and (new > 0) != (pos.size > 0):
            pos.entry = price  # flipped
        pos.size = new
        if new == 0:
            pos.entry = ZERO

    # --- timers ------------------------------------------------------------------------------

    def on_timer(self, now_ns: int, now_ms: int) -> None:
        for sid, p in list(self.pending.items()):
            if now_ns >= p.deadline_ns:
                del self.pending[sid]
                self._reply(p.conn, p.req, self._intent_outcome(self.confirmed[sid]), p.stages)
        ttl_ns = self.s.prepare_ttl_ms * 1_000_000
        for sid, prep in list(self.prepared.items()):
            if now_ns - prep.prepared_ns > ttl_ns:
                del self.prepared[sid]

    def next_deadline_ns(self) -> int | None:
        if not self.pending:
            return None
        return min(p.deadline_ns for p in self.pending.values())

    # --- events ------------------------------------------------------------------------------

    def _envelope(
        self, msg_id: str, typ: str, correlation_id: str, payload: dict[str, Any], now_ms: int
    ) -> bytes:
        return _json.encode(
            {
                "id": msg_id,
                "type": typ,
                "version": 1,
                "ts": now_ms,
                "producer": self.s.producer,
                "correlation_id": correlation_id,
                "payload": payload,
            }
        )

    def _fill_event(self, order: Order, rep: VenueReport, now_ms: int) -> None:
        msg_id = f"fill:{order.venue}:{rep.trade_id}"
        payload = {
            "fillId": f"{order.venue}:{rep.trade_id}",
            "signalId": order.signal_id,
            "symbol": order.symbol,
            "side": order.side,
            "price": rep.price,
            "qty": rep.qty,
            "fee": rep.fee,
            "feeCurrency": rep.fee_asset,
            "clientOrderId": order.coid,
            "executionId": order.venue_order_id,
            "status": "FILLED" if order.state == "FILLED" else "PARTIALLY_FILLED",
            "tExchange": rep.t_exchange_ms or now_ms,
            "timestamp": rep.t_exchange_ms or now_ms,
            "venue": order.venue,
            "account": self.s.account,
            "tradeId": rep.trade_id,
            "cumQty": dec_str(order.filled),
            "avgPrice": dec_str(order.notional_filled / order.filled) if order.filled else None,
            "leavesQty": dec_str(max(order.qty - order.filled, ZERO)),
            "isMaker": rep.is_maker,
            "leg": 0,
        }
        subject = f"titan.evt.execution.fill.v1.{order.venue}.{self.s.account}.{subject_symbol(order.symbol)}"
        data = self._envelope(msg_id, "titan.event.execution.fill.v1", order.signal_id, payload, now_ms)
        self.out.event(Event(subject=subject, msg_id=msg_id, data=data))

    def _shadow_fill(self, intent: Intent, prep: Prepared, now_ms: int) -> None:
        quote = self.quotes.get(self.s.price_source, prep.symbol)
        if quote is None:
            return
        price = quote.ask if intent.direction == 1 else quote.bid
        sid = intent.signal_id
        payload = {
            "fillId": f"sim-{sid}",
            "signalId": sid,
            "signal_id": sid,
            "symbol": intent.symbol,
            "side": "BUY" if intent.direction == 1 else "SELL",
            "price": dec_str(price),
            "qty": dec_str(prep.qty),
            "fee": dec_str(price * prep.qty * Decimal("0.0005")),
            "feeCurrency": "USDT",
            "tSignal": intent.t_signal_ms,
            "t_signal": intent.t_signal_ms,
            "clientOrderId": f"sim-oid-{sid}",
            "executionId": f"sim-exec-{sid}",
            "status": "FILLED",
            "tExchange": quote.exchange_ts_ms,
            "timestamp": quote.exchange_ts_ms,
        }
        self.out.event(
            Event(
                subject=f"titan.evt.execution.shadow_fill.v1.{intent.symbol}",
                msg_id=f"shadow:{sid}",
                data=_json.encode(payload),
            )
        )
