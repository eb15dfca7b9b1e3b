"""Fakes for driving the sans-I/O engine: clock, quotes, outbox, journal, flag files."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from titan.engine.engine import Engine
from titan.engine.ports import Quote
from titan.engine.settings import EngineSettings
from titan.events.payloads import EVENT
from titan.messages import (
    FILL,
    CancelRequest,
    Confirm,
    IntakeDone,
    Intent,
    OrderRequest,
    PlaceIntent,
    Prepare,
    ReconcileRequest,
    Reply,
    VenueReport,
)
from titan.risk.checks import CheckConfig, StalenessConfig
from titan.risk.policy import load_policy
from titan.risk.state import HaltState
from titan.routing.router import InstrumentMeta, RoutingConfig
from titan.state.journal import JournalWriter
from titan.state.records import JournalEntry, Record

ROOT = Path(__file__).resolve().parents[2]
T0_MS = 1_800_000_000_000


class FakeClock:
    def __init__(self, mono_ns: int = 1_000_000_000_000, wall_ms: int = T0_MS) -> None:
        self.mono = mono_ns
        self.wall = wall_ms

    def mono_ns(self) -> int:
        return self.mono

    def wall_ms(self) -> int:
        return self.wall

    def advance_ms(self, ms: int) -> None:
        self.mono += ms * 1_000_000
        self.wall += ms


class FakeQuotes:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.rows: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self.stale: set[tuple[str, str]] = set()

    def set(self, venue: str, symbol: str, bid: str, ask: str) -> None:
        self.rows[(venue, symbol)] = (Decimal(bid), Decimal(ask))

    def get(self, venue: str, symbol: str) -> Quote | None:
        row = self.rows.get((venue, symbol))
        if row is None:
            return None
        age_ns = 10_000_000_000 if (venue, symbol) in self.stale else 1_000_000
        return Quote(
            bid=row[0],
            ask=row[1],
            receive_mono_ns=self.clock.mono - age_ns,
            bid_size=Decimal(1),
            ask_size=Decimal(1),
            exchange_ts_ms=self.clock.wall - 1,
        )


class FakeOutbox:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.orders: list[tuple[str, OrderRequest | CancelRequest | ReconcileRequest]] = []
        self.events: list[Any] = []
        self.trace: list[tuple[str, int]] = []  # (what left, journal length at that moment)
        self.journal_len: Callable[[], int] = lambda: 0

    def reply(self, reply: Reply) -> None:
        self.replies.append(reply)

    def order(self, venue: str, msg: OrderRequest | CancelRequest | ReconcileRequest) -> None:
        self.trace.append(("order", self.journal_len()))
        self.orders.append((venue, msg))

    def event(self, event: EVENT | IntakeDone) -> None:
        self.trace.append((type(event).__name__, self.journal_len()))
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def new_orders(self) -> list[OrderRequest]:
        return [m for _, m in self.orders if isinstance(m, OrderRequest)]


class MemJournal:
    """Journal port keeping entries in memory (same framing as the file journal when encoded)."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []

    def append(self, record: Record, t_ms: int, now_mono_ns: int) -> int:
        seq = len(self.entries) + 1
        self.entries.append(JournalEntry(seq=seq, t_ms=t_ms, record=record))
        return seq


class FileJournal:
    def __init__(self, path: Path) -> None:
        self.writer = JournalWriter(path)

    def append(self, record: Record, t_ms: int, now_mono_ns: int) -> int:
        return self.writer.append(record, t_ms, now_mono_ns)


class FakeFiles:
    def __init__(self) -> None:
        self.armed = False
        self.halt = HaltState()
        self.saves = 0

    def save(self, armed: bool, armed_reason: str, halt: HaltState) -> None:
        self.armed, self.halt = armed, halt
        self.saves += 1


def instruments(venues: tuple[str, ...]) -> dict[str, dict[str, InstrumentMeta]]:
    out: dict[str, dict[str, InstrumentMeta]] = {}
    for sym, tick, step in (("BTC/USDT", "0.1", "0.001"), ("ETH/USDT", "0.01", "0.01")):
        for v in venues:
            out.setdefault(sym, {})[v] = InstrumentMeta(v, sym, Decimal(tick), Decimal(step), Decimal(step))
    return out


def make_settings(
    venues: tuple[str, ...] = ("paper",), policy: str = "risk_policy.json", **kw: Any
) -> EngineSettings:
    path = ROOT / "config" / policy
    routing = RoutingConfig(
        fallback={"scavenger": ("bybit", "mexc", "paper"), "hunter": ("binance", "paper")},
        default_fallback=("binance", "paper"),
        weights=kw.pop("weights", {}),
    )
    checks = CheckConfig(routing=routing, staleness=StalenessConfig(paper_price_source="sim"))
    base: dict[str, Any] = dict(
        venues=venues,
        instruments=instruments(venues),
        policy=load_policy(path),
        policy_document=path.read_text(),
        checks=checks,
        price_sources={"paper": "sim"},
        initial_cash=Decimal(10_000),
        armed_at_start=True,
        reconcile_venues=frozenset(v for v in venues if v != "paper"),
    )
    base.update(kw)
    return EngineSettings(**base)


class Rig:
    """An engine wired to fakes, started (first start: armed, paper cash)."""

    def __init__(
        self, settings: EngineSettings | None = None, journal: Any = None, start: bool = True
    ) -> None:
        self.clock = FakeClock()
        self.quotes = FakeQuotes(self.clock)
        for venue in ("sim", "bybit", "binance", "mexc"):
            self.quotes.set(venue, "BTC/USDT", "49999", "50001")
            self.quotes.set(venue, "ETH/USDT", "2999.9", "3000.1")
        self.out = FakeOutbox()
        self.journal: Any = journal if journal is not None else MemJournal()
        self.files = FakeFiles()
        self.settings = settings or make_settings()
        if isinstance(self.journal, MemJournal):
            mem = self.journal
            self.out.journal_len = lambda: len(mem.entries)
        self.engine = Engine(self.settings, self.clock, self.quotes, self.out, self.journal, self.files)
        self.req = 0
        if start:
            self.engine.start(None, None, first_start=True)

    def intent(
        self,
        sid: str,
        direction: int = 1,
        symbol: str = "BTCUSDT",
        notional: str = "100",
        zone: tuple[str, str] = ("50000", "50100"),
        **kw: Any,
    ) -> Intent:
        return Intent(
            signal_id=sid,
            source=kw.pop("source", "scavenger"),
            symbol=symbol,
            direction=direction,
            intent_type="BUY_SETUP" if direction > 0 else "SELL_SETUP",
            t_signal_ms=self.clock.wall,
            position_size=notional,
            entry_zone=list(zone),
            **kw,
        )

    def prepare(self, intent: Intent) -> dict[str, Any]:
        self.req += 1
        n = len(self.out.replies)
        self.engine.on_command(Prepare(conn=1, req=self.req, intent=intent, t_read=1, t_ring=2))
        assert len(self.out.replies) == n + 1
        return self.out.replies[-1].fields

    def confirm(self, sid: str) -> dict[str, Any] | None:
        self.req += 1
        n = len(self.out.replies)
        self.engine.on_command(Confirm(conn=1, req=self.req, signal_id=sid, t_read=1, t_ring=2))
        return self.out.replies[-1].fields if len(self.out.replies) > n else None

    def fill(
        self,
        order: OrderRequest,
        qty: str | None = None,
        price: str = "50001",
        trade: str = "1",
        fee: str = "0.05",
    ) -> None:
        self.engine.on_report(
            VenueReport(
                coid=order.coid,
                venue=order.venue,
                kind=FILL,
                venue_order_id=f"v-{order.coid}",
                trade_id=f"{order.coid}-{trade}",
                qty=qty or order.qty,
                price=price,
                fee=fee,
            )
        )

    def report(self, order: OrderRequest, kind: str, **kw: Any) -> None:
        self.engine.on_report(VenueReport(coid=order.coid, venue=order.venue, kind=kind, **kw))

    def place(self, intent: Intent, ref: int = 1, ids: tuple[str, ...] = ("m1",)) -> None:
        self.engine.on_bridge(
            PlaceIntent(
                ref=ref,
                dedupe_ids=list(ids),
                correlation_id="c-" + intent.signal_id,
                intent=intent,
                original=b"{}",
                t_ingress_ms=self.clock.wall,
                t_read=0,
                t_ring=0,
            )
        )

    def roundtrip(self, sid: str, direction: int = 1, **kw: Any) -> dict[str, Any] | None:
        prep = self.prepare(self.intent(sid, direction, **kw))
        assert prep.get("prepared"), prep
        n = len(self.out.new_orders())
        self.confirm(sid)
        for order in self.out.new_orders()[n:]:
            self.fill(order, price="50001" if direction > 0 else "49999")
        return self.out.replies[-1].fields
