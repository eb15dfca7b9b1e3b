"""Every message that crosses a process boundary inside the engine.

One module of msgspec Structs is the only definition of what travels on the shared-memory rings.
Each ring carries one tagged union (see the ``*_MSG`` aliases at the bottom) encoded as msgpack
with ``array_like=True``: compact, and decoded straight into the struct without a dict.

Every message carries the monotonic timestamps (``time.monotonic_ns()``; CLOCK_MONOTONIC is
system-wide on Linux, so stamps taken in different processes compare) of the stages it passed,
so every hop's latency is measured from the message itself. A stamp that was not taken is 0.

Prices and quantities are decimal strings (plain notation); a float never carries money.
"""

from __future__ import annotations

from typing import Any

import msgspec

from titan.events.payloads import EVENT  # typed NATS events: core emits them, the bridge formats them


class Intent(msgspec.Struct, array_like=True, gc=False, omit_defaults=True):
    """A trade intent, normalised from FastPath or NATS, before `core` validates it."""

    signal_id: str
    source: str
    symbol: str  # as given by the producer; core normalises it (risk-and-state.md §1)
    direction: int  # 1 long, -1 short, 0 close
    intent_type: str  # BUY_SETUP | SELL_SETUP | CLOSE_LONG | CLOSE_SHORT | CLOSE
    t_signal_ms: int
    size: str = ""  # base-asset quantity (NATS); "" when sized from position_size
    position_size: str = ""  # USD notional proposed by the producer (FastPath)
    entry_zone: list[str] = []
    stop_loss: str = "0"
    take_profits: list[str] = []
    confidence: float | None = None
    leverage: float | None = None
    velocity: float | None = None
    exchange: str | None = None
    policy_hash: str | None = None
    ttl_ms: int | None = None
    causation_id: str | None = None
    account: str = "main"
    status: str = "PENDING"
    max_slippage_bps: float | None = None


# --- ingress -> core -------------------------------------------------------------------------


class Prepare(msgspec.Struct, tag="prep", array_like=True, gc=False):
    conn: int  # ingress connection id: where the reply goes
    req: int  # request id on that connection
    intent: Intent
    t_read: int  # ingress: frame read from the socket
    t_ring: int  # ingress: pushed onto the command ring


class Confirm(msgspec.Struct, tag="conf", array_like=True, gc=False):
    conn: int
    req: int
    signal_id: str
    t_read: int
    t_ring: int


class Abort(msgspec.Struct, tag="abrt", array_like=True, gc=False):
    conn: int
    req: int
    signal_id: str
    t_read: int
    t_ring: int


# --- bridge -> core ---------------------------------------------------------------------------


class PlaceIntent(msgspec.Struct, tag="place", array_like=True, gc=False):
    """An authenticated, validated NATS place intent (nats.md §5 rows 3–7 passed in the bridge).

    core applies rows 0–2 and 8–11, journals the outcome, then answers with :class:`IntakeDone`
    so the bridge ACKs the JetStream message only after the journal has it.
    """

    ref: int  # bridge-local reference of the JetStream message, echoed in IntakeDone
    dedupe_ids: list[str]  # Nats-Msg-Id, idempotency_key, envelope id (row 0), those present
    correlation_id: str
    intent: Intent
    original: bytes  # the whole original message (DLQ payload)
    t_ingress_ms: int
    t_read: int
    t_ring: int


class OperatorCommand(msgspec.Struct, tag="op", array_like=True, gc=False):
    """An authenticated operator or risk command (nats.md §10)."""

    ref: int
    kind: str  # ARM | DISARM | HALT | SOFT_HALT | RESUME | FLATTEN | POLICY | RISK_STATE | HEARTBEAT
    actor: str
    reason: str
    args: dict[str, Any]
    command_id: str
    t_read: int


# --- core -> ingress -------------------------------------------------------------------------


class Stages(msgspec.Struct, array_like=True, gc=False):
    """Monotonic stamps of one request's path through the engine (0 = stage not passed)."""

    t_read: int = 0  # ingress read the frame
    t_ring: int = 0  # ingress pushed it to core
    t_core_in: int = 0  # core popped it
    t_order_out: int = 0  # core pushed the (first) order to a gateway
    t_gw_in: int = 0  # gateway popped the order
    t_gw_out: int = 0  # gateway pushed the report that completed the reply
    t_report_in: int = 0  # core popped that report
    t_core_out: int = 0  # core pushed the reply


class Reply(msgspec.Struct, tag="rep", array_like=True, gc=False):
    """A business reply; ingress adds correlationId, timestamp and server_time (fastpath.md §11)."""

    conn: int
    req: int
    fields: dict[str, Any]
    stages: Stages


# --- core -> gateway -------------------------------------------------------------------------


class OrderRequest(msgspec.Struct, tag="ord", array_like=True, gc=False):
    coid: str  # client order id (risk-and-state.md §12)
    signal_id: str
    leg: int
    venue: str
    account: str
    symbol: str  # canonical BTC/USDT
    venue_symbol: str
    side: str  # BUY | SELL
    order_type: str  # MARKET | LIMIT
    tif: str  # GTC | IOC | FOK | POST_ONLY
    qty: str
    price: str | None
    reduce_only: bool
    t_signal_ms: int
    t_core_in: int
    t_core_out: int


class CancelRequest(msgspec.Struct, tag="cxl", array_like=True, gc=False):
    coid: str
    venue: str
    symbol: str
    venue_symbol: str
    reason: str
    t_core_out: int


class ReconcileRequest(msgspec.Struct, tag="rec", array_like=True, gc=False):
    """core asks a gateway for the venue's truth (risk-and-state.md §17).

    The gateway answers with the venue reports of every listed order (queried by client id), then
    one :class:`ReconcileSnapshot`.
    """

    venue: str
    reason: str  # start | reconnect | restart (a gateway came up again) | periodic | retry | inflight
    coids: list[str]  # non-terminal orders core knows (each queried by client id)
    symbols: list[str]  # canonical symbols to fetch fills/positions/open orders for
    fills_since_ms: int  # fetch executions from here (the last known trade time)
    t_core_out: int
    # coid -> its canonical symbol (core knows each leg's): a gateway that does not track the order
    # (restarted) queries it there. Added later, with a default: an older request decodes (empty map:
    # the gateway falls back to trying each of ``symbols``). Not journaled; it lives on the ring only.
    coid_symbols: dict[str, str] = {}


# --- gateway -> core -------------------------------------------------------------------------

# Report kinds: what the venue (or the gateway) said about one order.
ACK = "ACK"
FILL = "FILL"
REJECTED = "REJECTED"  # definitive venue rejection
DENIED = "DENIED"  # not sent: the gateway's own checks (rate limit, staleness)
FAILED = "FAILED"  # not sent: local error before anything left the process
UNKNOWN = "UNKNOWN"  # sent, outcome unknown (timeout, 5xx, disconnect): resolved by query
CANCELED = "CANCELED"
EXPIRED = "EXPIRED"
# The gateway dropped an execution whose trade id it had already reported with another quantity
# (risk-and-state.md §13, R5): ``trade_id``/``qty``/``price``/``fee`` are the dropped execution's,
# ``cum_qty`` is the quantity reported (and applied) first. core never applies it: it publishes a
# drift event. A core that does not know the kind counts it as an illegal report and ignores it.
FILL_CONFLICT = "FILL_CONFLICT"


class VenueReport(msgspec.Struct, tag="rpt", array_like=True, gc=False, omit_defaults=True):
    coid: str
    venue: str
    kind: str
    venue_order_id: str = ""
    venue_status: str = ""
    trade_id: str = ""  # FILL only: the venue's execution id
    qty: str = ""  # FILL: this execution's quantity
    price: str = ""  # FILL: this execution's price
    fee: str = "0"
    fee_asset: str = "USDT"
    is_maker: bool = False
    cum_qty: str = ""
    leaves_qty: str = ""
    t_exchange_ms: int = 0
    reason_code: str = ""
    venue_error_code: str = ""
    message: str = ""
    t_order_out: int = 0  # copied from the order: core pushed it
    t_gw_in: int = 0
    t_gw_out: int = 0


class VenueOrderSnapshot(msgspec.Struct, array_like=True, gc=False):
    coid: str
    venue_order_id: str
    symbol: str
    side: str
    qty: str
    price: str | None
    filled_qty: str
    state: str  # our FSM state (venues.md §5 table)


class VenuePositionSnapshot(msgspec.Struct, array_like=True, gc=False):
    symbol: str
    size: str  # signed, base units
    entry_price: str
    mark_price: str | None = None


class ReconcileSnapshot(msgspec.Struct, tag="snap", array_like=True, gc=False):
    """The venue's truth after a ReconcileRequest (fills come first as FILL VenueReports)."""

    venue: str
    reason: str
    ok: bool  # False: the venue could not be queried; core keeps the venue reconciling
    error: str
    open_orders: list[VenueOrderSnapshot]  # including foreign ones (coid not ours)
    positions: list[VenuePositionSnapshot]
    balance: str | None  # wallet balance in the settlement asset
    t_gw_out: int
    gateway_pid: int = 0  # the answering gateway process (0: not given, an older gateway)


class VenueStatus(msgspec.Struct, tag="vst", array_like=True, gc=False):
    """Session health of one venue, sent on every change (and reconnects of the private stream)."""

    venue: str
    session: str  # UP | DOWN
    private_stream: str  # UP | DOWN | RECONNECTED
    limited_until_ms: int  # cooldown end (0: none)
    limited_reason: str
    t_gw_out: int
    # The reporting gateway process (0: not given, an older gateway). Core reconciles a venue whose
    # private stream comes "UP" in a gateway process that has not answered a reconciliation yet.
    gateway_pid: int = 0


# --- core -> bridge --------------------------------------------------------------------------


class Event(msgspec.Struct, tag="evt", gc=False):
    """One NATS publication, formatted by core; the bridge publishes (or spools) it verbatim."""

    subject: str
    msg_id: str  # Nats-Msg-Id (nats.md §13.2); empty for core-NATS (non-stream) subjects
    data: bytes


class IntakeDone(msgspec.Struct, tag="done", gc=False):
    """core -> bridge: the NATS command ``ref`` is journaled (or absorbed): ACK it now."""

    ref: int
    outcome: str  # accepted | duplicate | rejected | denied


class Fragment(msgspec.Struct, tag="frag", gc=False):
    """One piece of a message larger than a ring slot (titan.shm.fragment)."""

    index: int
    count: int
    data: bytes


class ArrayFragment(msgspec.Struct, tag="frag", array_like=True, gc=False):
    """A :class:`Fragment` on a ring of array-like messages (bridge -> core: msgspec unions cannot
    mix array-like and map-like structs). core takes a message in pieces only once all are there."""

    index: int
    count: int
    data: bytes


# --- ring unions -----------------------------------------------------------------------------

INGRESS_TO_CORE = Prepare | Confirm | Abort
CORE_TO_INGRESS = Reply
CORE_TO_GATEWAY = OrderRequest | CancelRequest | ReconcileRequest
GATEWAY_TO_CORE = VenueReport | ReconcileSnapshot | VenueStatus
BRIDGE_TO_CORE = PlaceIntent | OperatorCommand | ArrayFragment
# core sends typed events (titan.events.payloads) so formatting JSON stays off core's hot path;
# ``Event`` carries a publication core already formatted.
CORE_TO_BRIDGE = Event | IntakeDone | Fragment | EVENT


def encoder() -> msgspec.msgpack.Encoder:
    """The encoder every ring producer uses (one per process; reuse it)."""
    return msgspec.msgpack.Encoder()


def decoder(kind: Any) -> msgspec.msgpack.Decoder[Any]:
    """A decoder for one ring's union (``INGRESS_TO_CORE`` …); reuse it."""
    return msgspec.msgpack.Decoder(kind)
