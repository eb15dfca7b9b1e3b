"""Shadow state: exact positions per (account, venue, symbol), cash, trades (risk-and-state.md §15).

Every number is a Decimal computed in the 34-digit money context, never through a float. Fills
come from venue executions (side, qty, price, fee) and are deduplicated by (venue, trade id).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, localcontext, setcontext
from typing import Final

import msgspec

from titan.risk.dedupe import SeenIds
from titan.state.decimals import MONEY_CONTEXT, ZERO, money_enter

DAY_MS: Final = 86_400_000
PositionKey = tuple[str, str, str]  # (account, venue, canonical symbol)


class Fill(msgspec.Struct, frozen=True, gc=False):
    """One venue execution. ``side`` +1 BUY / −1 SELL; ``fee`` > 0 cost, < 0 rebate."""

    account: str
    venue: str
    symbol: str
    side: int
    qty: Decimal
    price: Decimal
    fee: Decimal
    trade_id: str
    ts_ms: int
    fee_asset: str = "USDT"
    signal_id: str = ""
    client_order_id: str = ""
    source: str = "TRADE"  # TRADE | RECONCILIATION (booked as adjustment, not daily PnL)
    close_reason: str = "OPPOSITE_FILL"


class Position(msgspec.Struct, gc=False):
    account: str
    venue: str
    symbol: str
    side: int  # +1 LONG, −1 SHORT
    size: Decimal
    entry_price: Decimal
    fees_paid: Decimal
    funding_paid: Decimal
    realized_pnl: Decimal
    opened_at_ms: int
    signal_id: str
    position_id: str
    close_seq: int = 0
    last_mark_price: Decimal | None = None
    last_update_ts: int = 0
    unrealized_pnl: Decimal = ZERO

    @property
    def signed_size(self) -> Decimal:
        return self.size if self.side > 0 else -self.size

    @property
    def side_label(self) -> str:
        return "LONG" if self.side > 0 else "SHORT"


class TradeRecord(msgspec.Struct, frozen=True, gc=False):
    """A (partial) close (nats.md §9.4); ``trade_id`` = ``{position_id}:{close_seq}``."""

    trade_id: str
    signal_id: str
    account: str
    venue: str
    symbol: str
    side: str  # the closed position's side, LONG / SHORT
    entry_price: Decimal
    exit_price: Decimal
    size: Decimal
    pnl: Decimal
    pnl_pct: Decimal
    fee: Decimal
    fee_asset: str
    opened_at_ms: int
    closed_at_ms: int
    close_reason: str
    partial: bool


class FillEffect(msgspec.Struct, frozen=True, gc=False):
    applied: bool  # False: duplicate (venue, trade id), nothing changed
    trades: tuple[TradeRecord, ...] = ()
    position: Position | None = None  # after the fill; None when flat
    opened: bool = False  # a new position was opened (flat → open, or the flip's new side)


_NOT_APPLIED: Final = FillEffect(applied=False)


class DailyPnl(msgspec.Struct, gc=False):
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.realized - self.fees - self.funding


class Exposure(msgspec.Struct, frozen=True, gc=False):
    """``exposure.update`` (nats.md §9.6): notional = size × (mark or entry)."""

    net_exposure: Decimal
    gross_notional: Decimal
    long_notional: Decimal
    short_notional: Decimal
    position_count: int


class SymbolPosition(msgspec.Struct, frozen=True, gc=False):
    """Compatibility view of one symbol across venues (§15.6)."""

    symbol: str
    side: str
    size: Decimal
    signed_size: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal
    funding_paid: Decimal
    exchange: str
    signal_id: str
    opened_at_ms: int
    last_mark_price: Decimal | None
    last_update_ts: int


class ShadowSnapshot(msgspec.Struct, frozen=True):
    """Everything the book holds, in a deterministic order (for replay comparisons)."""

    positions: tuple[Position, ...]
    cash: tuple[tuple[str, Decimal], ...]
    other_fees: tuple[tuple[str, str, Decimal], ...]
    open_seq: int
    trade_count: int
    daily: tuple[tuple[int, Decimal, Decimal, Decimal], ...]


class ShadowBook:
    """Positions, cash and trade records of every account; the single writer is ``core``."""

    def __init__(
        self, quote_asset: str = "USDT", daily_days_kept: int = 3, trade_ids_kept: int = 1_000_000
    ) -> None:
        self.quote_asset = quote_asset
        self.positions: dict[PositionKey, Position] = {}
        self.cash: dict[str, Decimal] = {}
        self.other_fees: dict[tuple[str, str], Decimal] = {}
        self.seen_trades: SeenIds[tuple[str, str]] = SeenIds(trade_ids_kept)
        self.open_seq = 0
        self.trade_count = 0
        self.daily: dict[int, DailyPnl] = {}
        self._daily_days_kept = daily_days_kept

    # --- cash ---------------------------------------------------------------------------------

    def set_cash(self, account: str, amount: Decimal) -> Decimal:
        """Replace cash (venue wallet sync or paper initial balance); returns the difference."""
        before = self.cash.get(account, ZERO)
        self.cash[account] = amount
        return amount - before

    def _cash_add(self, account: str, delta: Decimal) -> None:
        self.cash[account] = self.cash.get(account, ZERO) + delta

    def _day(self, ts_ms: int) -> DailyPnl:
        day = ts_ms // DAY_MS
        entry = self.daily.get(day)
        if entry is None:
            entry = self.daily[day] = DailyPnl()
            for old in sorted(self.daily)[: -self._daily_days_kept]:
                del self.daily[old]
        return entry

    def daily_pnl(self, now_ms: int, net: bool = True) -> Decimal:
        """Realised PnL of the UTC day of ``now_ms`` (net of fees and funding when ``net``)."""
        entry = self.daily.get(now_ms // DAY_MS)
        if entry is None:
            return ZERO
        return entry.net if net else entry.realized

    # --- fills --------------------------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> FillEffect:
        """Apply one execution per §15.2; a repeated (venue, trade id) changes nothing."""
        saved = money_enter()  # ``with localcontext(MONEY_CONTEXT)`` without a copy per call
        try:
            return self.apply_fill_in_context(fill)
        finally:
            setcontext(saved)

    def apply_fill_in_context(self, fill: Fill) -> FillEffect:
        """:meth:`apply_fill` for a caller already in the money context (one context switch less)."""
        if fill.qty <= 0 or fill.side not in (1, -1):
            raise ValueError(f"invalid fill {fill.venue}:{fill.trade_id}: side {fill.side}, qty {fill.qty}")
        dedupe_key = (fill.venue, fill.trade_id)
        if not self.seen_trades.add(dedupe_key):
            return _NOT_APPLIED
        return self._apply(fill)

    def _apply(self, fill: Fill) -> FillEffect:
        key = (fill.account, fill.venue, fill.symbol)
        d, q, p, f = fill.side, fill.qty, fill.price, fill.fee
        quote_fee = f if fill.fee_asset == self.quote_asset else ZERO
        if quote_fee != f:
            fee_key = (fill.account, fill.fee_asset)
            self.other_fees[fee_key] = self.other_fees.get(fee_key, ZERO) + f
        counts_daily = fill.source != "RECONCILIATION"
        day = self._day(fill.ts_ms) if counts_daily else None
        if day is not None:
            day.fees += quote_fee
        position = self.positions.get(key)
        if position is None:
            position = self._open(key, fill, fill.qty, quote_fee)
            self._cash_add(fill.account, -quote_fee)
            return FillEffect(applied=True, position=position, opened=True)
        if d == position.side:
            s_old = position.size
            position.entry_price = (position.entry_price * s_old + p * q) / (s_old + q)
            position.size = s_old + q
            position.fees_paid += quote_fee
            self._touch(position, fill.ts_ms)
            self._cash_add(fill.account, -quote_fee)
            return FillEffect(applied=True, position=position)
        size = position.size
        closed = min(q, size)
        pnl = position.side * (p - position.entry_price) * closed
        close_fee = quote_fee if q <= size else quote_fee * size / q
        position.realized_pnl += pnl
        position.fees_paid += close_fee
        self._cash_add(fill.account, pnl - quote_fee)
        if day is not None:
            day.realized += pnl
        trade = self._trade(position, fill, closed, pnl, f if q <= size else f * size / q, q < size)
        if q < size:
            position.size = size - q
            self._touch(position, fill.ts_ms)
            return FillEffect(applied=True, trades=(trade,), position=position)
        del self.positions[key]
        if q == size:
            return FillEffect(applied=True, trades=(trade,))
        opened = self._open(key, fill, q - size, quote_fee * (q - size) / q)
        return FillEffect(applied=True, trades=(trade,), position=opened, opened=True)

    def _open(self, key: PositionKey, fill: Fill, size: Decimal, fees: Decimal) -> Position:
        self.open_seq += 1
        account, venue, symbol = key
        position = Position(  # positional: keywords cost ~50 ns each here
            account,  # account
            venue,  # venue
            symbol,  # symbol
            fill.side,  # side
            size,  # size
            fill.price,  # entry_price
            fees,  # fees_paid
            ZERO,  # funding_paid
            ZERO,  # realized_pnl
            fill.ts_ms,  # opened_at_ms
            fill.signal_id,  # signal_id
            f"{account}:{venue}:{symbol}:{self.open_seq}",  # position_id
        )
        self.positions[key] = position
        self._touch(position, fill.ts_ms)
        return position

    def _trade(
        self, position: Position, fill: Fill, size: Decimal, pnl: Decimal, fee: Decimal, partial: bool
    ) -> TradeRecord:
        position.close_seq += 1
        self.trade_count += 1
        entry = position.entry_price
        pnl_pct = position.side * (fill.price - entry) / entry * 100 if entry != 0 else ZERO
        return TradeRecord(  # positional: a call with over 15 keywords goes through a dict (~2 µs)
            f"{position.position_id}:{position.close_seq}",  # trade_id
            position.signal_id,  # signal_id
            position.account,  # account
            position.venue,  # venue
            position.symbol,  # symbol
            position.side_label,  # side
            entry,  # entry_price
            fill.price,  # exit_price
            size,  # size
            pnl,  # pnl
            pnl_pct,  # pnl_pct
            fee,  # fee
            fill.fee_asset,  # fee_asset
            position.opened_at_ms,  # opened_at_ms
            fill.ts_ms,  # closed_at_ms
            fill.close_reason,  # close_reason
            partial,  # partial
        )

    def _touch(self, position: Position, ts_ms: int) -> None:
        position.last_update_ts = ts_ms
        if position.last_mark_price is not None:
            position.unrealized_pnl = (
                position.side * (position.last_mark_price - position.entry_price) * position.size
            )

    # --- funding and marks --------------------------------------------------------------------

    def apply_funding(
        self, account: str, venue: str, symbol: str, amount: Decimal, ts_ms: int, asset: str | None = None
    ) -> None:
        """A funding settlement; ``amount`` > 0 was paid."""
        position = self.positions.get((account, venue, symbol))
        if position is not None:
            position.funding_paid += amount
        if asset is None or asset == self.quote_asset:
            self._cash_add(account, -amount)
            self._day(ts_ms).funding += amount

    def mark(self, venue: str, symbol: str, price: Decimal, ts_ms: int) -> None:
        """New mark (venue mark price, else mid) for every account's position on (venue, symbol)."""
        with localcontext(MONEY_CONTEXT):
            for position in self.positions.values():
                if position.venue == venue and position.symbol == symbol:
                    position.last_mark_price = price
                    self._touch(position, ts_ms)

    # --- views --------------------------------------------------------------------------------

    def iter_positions(self, account: str | None = None) -> Iterator[Position]:
        for key in sorted(self.positions):
            if account is None or key[0] == account:
                yield self.positions[key]

    def net_position(self, symbol: str, venue: str | None = None, account: str | None = None) -> Decimal:
        """Signed net size of ``symbol`` over the matching venues/accounts."""
        total = ZERO
        for (acc, ven, sym), position in self.positions.items():
            if sym == symbol and (venue is None or ven == venue) and (account is None or acc == account):
                total += position.signed_size
        return total

    def equity(self, account: str) -> Decimal | None:
        """Cash + Σ unrealized; None when the account's cash was never set (equity unknown)."""
        cash = self.cash.get(account)
        if cash is None:
            return None
        with localcontext(MONEY_CONTEXT):
            return cash + sum((p.unrealized_pnl for p in self.iter_positions(account)), ZERO)

    def account_view(self, account: str, symbol: str) -> tuple[dict[str, Decimal], Decimal | None, Decimal]:
        """One pass for the pre-trade checks: ``symbol``'s signed size per venue, equity, gross exposure.

        Same arithmetic, in the same (sorted) order, as :meth:`equity` and :meth:`gross_exposure`.
        """
        by_venue: dict[str, Decimal] = {}
        unrealized = long_notional = short_notional = ZERO
        saved = money_enter()  # ``with localcontext(MONEY_CONTEXT)`` without a copy per call
        try:
            positions = self.positions
            for key in sorted(positions):
                if key[0] != account:
                    continue
                position = positions[key]
                if key[2] == symbol:
                    by_venue[key[1]] = position.size if position.side > 0 else -position.size
                unrealized += position.unrealized_pnl
                mark = position.last_mark_price
                notional = position.size * (mark if mark is not None else position.entry_price)
                if position.side > 0:
                    long_notional += notional
                else:
                    short_notional += notional
            cash = self.cash.get(account)
            equity = None if cash is None else cash + unrealized
            return by_venue, equity, long_notional + short_notional
        finally:
            setcontext(saved)

    def gross_exposure(self, account: str | None = None) -> Decimal:
        """Σ abs(S)·mark (entry when never marked) — the leverage numerator of check 17."""
        return self.exposure(account).gross_notional

    def exposure(self, account: str | None = None) -> Exposure:
        long_notional = short_notional = ZERO
        count = 0
        with localcontext(MONEY_CONTEXT):
            for position in self.iter_positions(account):
                price = (
                    position.last_mark_price if position.last_mark_price is not None else position.entry_price
                )
                notional = position.size * price
                count += 1
                if position.side > 0:
                    long_notional += notional
                else:
                    short_notional += notional
            return Exposure(
                net_exposure=long_notional - short_notional,
                gross_notional=long_notional + short_notional,
                long_notional=long_notional,
                short_notional=short_notional,
                position_count=count,
            )

    def symbol_positions(self, account: str | None = None) -> dict[str, SymbolPosition]:
        """Compatibility view keyed by canonical symbol; symbols with net size 0 are omitted."""
        by_symbol: dict[str, list[Position]] = {}
        for position in self.iter_positions(account):
            by_symbol.setdefault(position.symbol, []).append(position)
        view: dict[str, SymbolPosition] = {}
        with localcontext(MONEY_CONTEXT):
            for symbol, group in by_symbol.items():
                net = sum((p.signed_size for p in group), ZERO)
                if net == 0:
                    continue
                side = 1 if net > 0 else -1
                same_side = [p for p in group if p.side == side]
                weight = sum((p.size for p in same_side), ZERO)
                entry = sum((p.entry_price * p.size for p in same_side), ZERO) / weight
                venues = sorted({p.venue for p in group})
                opener = min(same_side, key=lambda p: (p.opened_at_ms, p.venue))
                marks = [p.last_mark_price for p in same_side if p.last_mark_price is not None]
                view[symbol] = SymbolPosition(
                    symbol=symbol,
                    side="LONG" if side > 0 else "SHORT",
                    size=abs(net),
                    signed_size=net,
                    entry_price=entry,
                    unrealized_pnl=sum((p.unrealized_pnl for p in group), ZERO),
                    realized_pnl=sum((p.realized_pnl for p in group), ZERO),
                    fees_paid=sum((p.fees_paid for p in group), ZERO),
                    funding_paid=sum((p.funding_paid for p in group), ZERO),
                    exchange=venues[0].upper() if len(venues) == 1 else "MULTI",
                    signal_id=opener.signal_id,
                    opened_at_ms=opener.opened_at_ms,
                    last_mark_price=marks[0] if marks else None,
                    last_update_ts=max(p.last_update_ts for p in group),
                )
        return view

    def snapshot(self) -> ShadowSnapshot:
        return ShadowSnapshot(
            positions=tuple(msgspec.structs.replace(p) for p in self.iter_positions()),
            cash=tuple(sorted(self.cash.items())),
            other_fees=tuple((a, asset, v) for (a, asset), v in sorted(self.other_fees.items())),
            open_seq=self.open_seq,
            trade_count=self.trade_count,
            daily=tuple((d, e.realized, e.fees, e.funding) for d, e in sorted(self.daily.items())),
        )
