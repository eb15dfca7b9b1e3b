"""Shadow maths (§15, R35), FSM (§13, R36) and intent status (§14)."""

from __future__ import annotations

from decimal import Decimal, localcontext

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.state.decimals import MONEY_CONTEXT, plain
from titan.state.fsm import (
    LEGAL_TRANSITIONS,
    IntentStatus,
    LegFsm,
    LegProgress,
    LegState,
    intent_status,
)
from titan.state.shadow import Fill, ShadowBook, TradeRecord

D = Decimal
T0 = 1_800_000_000_000


def fill(side: int, qty: str, price: str, fee: str, n: int, **kw: object) -> Fill:
    return Fill(
        account=str(kw.get("account", "main")),
        venue=str(kw.get("venue", "bybit")),
        symbol="BTC/USDT",
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        trade_id=f"t{n}",
        ts_ms=T0 + n,
        signal_id=f"sig-{n}",
    )


WORKED = [
    fill(1, "0.1", "50000", "2.5", 1),
    fill(1, "0.1", "51000", "2.55", 2),
    fill(-1, "0.05", "52000", "1.3", 3),
    fill(-1, "0.25", "49000", "6.125", 4),
]


def test_r35_worked_example_exactly() -> None:
    book = ShadowBook()
    book.set_cash("main", D(10000))
    expected = [
        (1, "0.1", "50000", "9997.5"),
        (1, "0.2", "50500", "9994.95"),
        (1, "0.15", "50500", "10068.65"),
        (-1, "0.1", "49000", "9837.525"),
    ]
    trades: list[TradeRecord] = []
    for f, (side, size, entry, cash) in zip(WORKED, expected, strict=True):
        effect = book.apply_fill(f)
        assert effect.applied and effect.position is not None
        assert (effect.position.side, effect.position.size, effect.position.entry_price) == (
            side, D(size), D(entry)
        )  # fmt: skip
        assert book.cash["main"] == D(cash)
        trades.extend(effect.trades)
    short = book.positions[("main", "bybit", "BTC/USDT")]
    assert short.fees_paid == D("2.45") and short.realized_pnl == 0
    assert short.signal_id == "sig-4"
    partial, full = trades
    assert partial.pnl == 75 and partial.partial and partial.fee == D("1.3")
    assert partial.pnl_pct == D("2.970297029702970297029702970297030")
    assert str(partial.pnl_pct).replace(".", "").lstrip("0").startswith("297029702970297029702970297029703")
    assert full.pnl == -225 and not full.partial and full.fee == D("3.675")
    assert partial.trade_id != full.trade_id and partial.signal_id == full.signal_id == "sig-1"
    assert partial.pnl + full.pnl == -150
    assert book.cash["main"] == D(10000) - 150 - D("12.475")
    assert book.daily_pnl(T0 + 10, net=False) == -150
    assert book.daily_pnl(T0 + 10) == D("-162.475")
    assert plain(book.cash["main"]) == "9837.525"


def test_duplicate_trade_id_is_ignored_but_same_id_other_venue_is_not() -> None:
    book = ShadowBook()
    book.set_cash("main", D(0))
    assert book.apply_fill(fill(1, "1", "10", "0", 1)).applied
    assert not book.apply_fill(fill(1, "1", "10", "0", 1)).applied
    assert book.apply_fill(fill(1, "1", "10", "0", 1, venue="binance")).applied
    assert book.net_position("BTC/USDT") == 2


def test_compat_view_aggregates_venues() -> None:
    book = ShadowBook()
    book.apply_fill(fill(1, "1", "100", "0", 1))
    book.apply_fill(fill(1, "3", "200", "0", 2, venue="binance"))
    book.apply_fill(fill(-1, "1", "150", "0", 3, venue="mexc"))
    view = book.symbol_positions()["BTC/USDT"]
    assert view.signed_size == 3 and view.side == "LONG" and view.exchange == "MULTI"
    assert view.entry_price == D(175)
    book.apply_fill(fill(-1, "3", "150", "0", 4, venue="mexc"))
    assert "BTC/USDT" not in book.symbol_positions()  # net 0 omitted
    book2 = ShadowBook()
    book2.apply_fill(fill(-1, "1", "100", "0", 1))
    assert book2.symbol_positions()["BTC/USDT"].exchange == "BYBIT"


fills_st = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.decimals(min_value=D("0.001"), max_value=D(5), places=3),
        st.decimals(min_value=D(1), max_value=D(100000), places=2),
        st.decimals(min_value=D(-1), max_value=D(10), places=4),
        st.sampled_from(["bybit", "binance"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    fills=fills_st,
    funding=st.decimals(min_value=D(-5), max_value=D(5), places=2),
    mark=st.decimals(min_value=D(1), max_value=D(100000), places=2),
)
def test_position_cash_and_pnl_invariants(
    fills: list[tuple[int, Decimal, Decimal, Decimal, str]], funding: Decimal, mark: Decimal
) -> None:
    with localcontext(MONEY_CONTEXT):
        check_invariants(fills, funding, mark)


# The average entry is rounded to 34 significant digits, so mark-to-market identities hold to that
# precision, not beyond it.
TOLERANCE = D("1e-20")


def check_invariants(
    fills: list[tuple[int, Decimal, Decimal, Decimal, str]], funding: Decimal, mark: Decimal
) -> None:
    book = ShadowBook()
    start = D(10000)
    book.set_cash("main", start)
    realised = fees = cashflow = ZERO = D(0)
    signed: dict[str, Decimal] = {}
    for n, (side, qty, price, fee, venue) in enumerate(fills):
        effect = book.apply_fill(fill(side, str(qty), str(price), str(fee), n, venue=venue))
        realised += sum((t.pnl for t in effect.trades), ZERO)
        fees += fee
        cashflow -= side * qty * price
        signed[venue] = signed.get(venue, ZERO) + side * qty
    book.apply_funding("main", "bybit", "BTC/USDT", funding, T0)
    for venue, total in signed.items():
        assert book.net_position("BTC/USDT", venue) == total
    assert abs(book.cash["main"] - (start + realised - fees - funding)) < TOLERANCE
    # Marking to market: realised + unrealised equals the traded cash flow valued at the mark,
    # so a price-neutral round trip conserves PnL exactly.
    for venue in ("bybit", "binance"):
        book.mark(venue, "BTC/USDT", mark, T0)
    unrealised = sum((p.unrealized_pnl for p in book.iter_positions()), ZERO)
    assert abs(realised + unrealised - (cashflow + sum(signed.values(), ZERO) * mark)) < TOLERANCE
    assert book.equity("main") == book.cash["main"] + unrealised


@settings(max_examples=100, deadline=None)
@given(fills=fills_st, exit_price=st.decimals(min_value=D(1), max_value=D(100000), places=2))
def test_price_neutral_round_trip_conserves_pnl(
    fills: list[tuple[int, Decimal, Decimal, Decimal, str]], exit_price: Decimal
) -> None:
    with localcontext(MONEY_CONTEXT):
        round_trip(fills, exit_price)


def round_trip(fills: list[tuple[int, Decimal, Decimal, Decimal, str]], exit_price: Decimal) -> None:
    book = ShadowBook()
    for n, (side, qty, price, _, venue) in enumerate(fills):
        book.apply_fill(fill(side, str(qty), str(price), "0", n, venue=venue))
    book.mark("bybit", "BTC/USDT", exit_price, T0)
    book.mark("binance", "BTC/USDT", exit_price, T0)
    before = sum((p.unrealized_pnl for p in book.iter_positions()), D(0))
    realised = D(0)
    for n, position in enumerate(list(book.iter_positions())):
        closing = fill(
            -position.side, str(position.size), str(exit_price), "0", 1000 + n, venue=position.venue
        )
        realised += sum((t.pnl for t in book.apply_fill(closing).trades), D(0))
    assert not book.positions
    assert abs(realised - before) < TOLERANCE


def test_r36_every_legal_transition_with_its_own_timestamp() -> None:
    for origin, targets in LEGAL_TRANSITIONS.items():
        for target in targets:
            fsm = LegFsm("sig", "coid", "BTC/USDT", state=origin)
            assert fsm.advance(target, t_mono_ns=7, t_wall_ms=9, reason="r")
            assert fsm.state is target and fsm.transitions[-1].t_mono_ns == 7
        for target in set(LegState) - targets:
            fsm = LegFsm("sig", "coid", "BTC/USDT", state=origin)
            assert not fsm.advance(target, 1, 1)
            assert fsm.state is origin and fsm.illegal_count == 1 and not fsm.transitions


def test_r36_path_timestamps_and_json_shape() -> None:
    fsm = LegFsm("sig-1", "te0", "BTC/USDT")
    path = [LegState.VALIDATED, LegState.ACCEPTED, LegState.SENT, LegState.UNKNOWN, LegState.FILLED]
    for i, state in enumerate(path):
        assert fsm.advance(state, t_mono_ns=1_000_000 * (i + 1), t_wall_ms=T0 + i)
    assert [t.t_mono_ns for t in fsm.transitions] == [1_000_000 * (i + 1) for i in range(5)]
    assert fsm.total_latency_ms == 4.0 and fsm.terminal
    doc = msgspec.json.decode(msgspec.json.encode(fsm))
    assert doc["transitions"][0] == {"from": "RECEIVED", "to": "VALIDATED", "t_mono_ns": 1_000_000,
                                     "t_wall_ms": T0, "reason": None}  # fmt: skip
    # Freshness failure after validation ends DENIED, not stuck in VALIDATED.
    expired = LegFsm("sig-2", "te1", "BTC/USDT")
    assert expired.advance(LegState.VALIDATED, 1, 1)
    assert expired.advance(LegState.DENIED, 2, 2, reason="INTENT_EXPIRED")
    # A late fill on a terminal order goes to RECONCILED.
    assert expired.advance(LegState.RECONCILED, 3, 3)


F, W = LegState.FILLED, LegState.ACKED


@pytest.mark.parametrize(
    ("legs", "target", "expected"),
    [
        ([(W, "0")], "1", IntentStatus.PENDING),
        ([(F, "0.5"), (W, "0")], "1", IntentStatus.PARTIALLY_FILLED),
        ([(F, "0.5"), (F, "0.5")], "1", IntentStatus.EXECUTED),
        ([(F, "0.5"), (LegState.CANCELED, "0.2")], "1", IntentStatus.PARTIALLY_COMPLETED),
        ([(F, "0.5"), (LegState.REJECTED, "0")], "1", IntentStatus.FAILED_WITH_EXPOSURE),
        ([(LegState.DENIED, "0"), (LegState.CANCELED, "0")], "1", IntentStatus.REJECTED),
        ([(LegState.CANCELED, "0"), (LegState.EXPIRED, "0")], "1", IntentStatus.CANCELLED),
        ([(LegState.EXPIRED, "0")], "1", IntentStatus.EXPIRED),
    ],
)
def test_intent_status(legs: list[tuple[LegState, str]], target: str, expected: IntentStatus) -> None:
    assert intent_status([LegProgress(s, D(q)) for s, q in legs], D(target)) is expected
