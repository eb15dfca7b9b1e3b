"""Paper matching (venues.md §7), sans-I/O: orders and quotes in, reports out."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.messages import (
    ACK,
    CANCELED,
    EXPIRED,
    FILL,
    REJECTED,
    CancelRequest,
    OrderRequest,
    ReconcileRequest,
    VenueReport,
)
from titan.venues.paper.matching import (
    RESTART_REASON,
    PaperBook,
    PaperBookState,
    PaperModel,
    Quote,
    trade_id,
)
from titan.venues.paper.store import PaperStore

BTC = "BTC/USDT"
MS = 1_000_000


class Quotes:
    """A settable quote source."""

    def __init__(self, bid: str = "50000", ask: str = "50001") -> None:
        self.quotes: dict[str, Quote] = {BTC: Quote(Decimal(bid), Decimal(ask))}

    def set(self, bid: str, ask: str) -> None:
        self.quotes[BTC] = Quote(Decimal(bid), Decimal(ask))

    def __call__(self, symbol: str) -> Quote | None:
        return self.quotes.get(symbol)


_seq = 0


def order(
    side: str = "BUY",
    order_type: str = "MARKET",
    tif: str = "IOC",
    price: str | None = None,
    qty: str = "0.010",
    coid: str | None = None,
) -> OrderRequest:
    global _seq
    _seq += 1
    return OrderRequest(
        coid=coid or f"tp{_seq:08d}p000",
        signal_id=f"s{_seq}",
        leg=0,
        venue="paper",
        account="main",
        symbol=BTC,
        venue_symbol="BTCUSDT",
        side=side,
        order_type=order_type,
        tif=tif,
        qty=qty,
        price=price,
        reduce_only=False,
        t_signal_ms=0,
        t_core_in=1,
        t_core_out=2,
    )


def cancel(o: OrderRequest) -> CancelRequest:
    return CancelRequest(o.coid, "paper", BTC, "BTCUSDT", "test", 3)


def book(
    quotes: Quotes, slippage_bps: Decimal = Decimal(0), ack_latency_ns: int = 0, fill_latency_ns: int = 0
) -> PaperBook:
    model = PaperModel(
        slippage_bps=slippage_bps,
        ack_latency_ns=ack_latency_ns,
        fill_latency_ns=fill_latency_ns,
        ticks={BTC: Decimal("0.1")},
    )
    return PaperBook(model, quotes)


def kinds(reports: list[VenueReport]) -> list[str]:
    return [r.kind for r in reports]


@pytest.mark.parametrize(
    ("side", "price", "fee"),
    [("BUY", "50001", "0.250005"), ("SELL", "50000", "0.25")],
)
def test_market_fills_at_once_at_the_touch_with_taker_fee(side: str, price: str, fee: str) -> None:
    b = book(Quotes())
    o = order(side=side)
    (rep,) = b.submit(o, 0)
    assert (rep.kind, rep.price, rep.qty, rep.fee, rep.is_maker) == (FILL, price, "0.010", fee, False)
    assert (rep.cum_qty, rep.leaves_qty, rep.trade_id) == ("0.010", "0", trade_id(o.coid))
    assert not b.busy and not b.changed  # nothing held: nothing saved on the hot path


@pytest.mark.parametrize(("side", "price"), [("BUY", "50026.1"), ("SELL", "49975")])
def test_slippage_moves_the_price_against_the_taker_on_the_tick(side: str, price: str) -> None:
    b = book(Quotes(), slippage_bps=Decimal(5))
    (rep,) = b.submit(order(side=side), 0)
    assert rep.price == price


@pytest.mark.parametrize(
    ("side", "limit", "expected"),
    [
        ("BUY", "50001", (FILL, "50001")),
        ("BUY", "50100", (FILL, "50001")),  # better than its limit: the touch
        ("BUY", "50000.5", (EXPIRED, "")),
        ("SELL", "50000", (FILL, "50000")),
        ("SELL", "50000.5", (EXPIRED, "")),
    ],
)
def test_ioc_limit_fills_only_when_it_crosses_at_its_limit_or_better(
    side: str, limit: str, expected: tuple[str, str]
) -> None:
    b = book(Quotes())
    (rep,) = b.submit(order(side=side, order_type="LIMIT", tif="IOC", price=limit), 0)
    assert (rep.kind, rep.price) == expected


def test_ioc_limit_slippage_never_worse_than_the_limit() -> None:
    b = book(Quotes(), slippage_bps=Decimal(50))
    (rep,) = b.submit(order(order_type="LIMIT", tif="IOC", price="50010"), 0)
    assert (rep.kind, rep.price) == (FILL, "50010")


def test_gtc_limit_rests_then_fills_at_its_price_as_maker_once_crossed() -> None:
    q = Quotes()
    b = book(q)
    o = order(order_type="LIMIT", tif="GTC", price="49990")
    (ack,) = b.submit(o, 0)
    assert (ack.kind, ack.leaves_qty) == (ACK, "0.010")
    assert b.busy and b.changed
    assert b.poll(1 * MS) == []  # the ask is still above it
    q.set("49980", "49990.5")
    assert b.poll(2 * MS) == []
    q.set("49980", "49990")
    (fill,) = b.poll(3 * MS)
    assert (fill.kind, fill.price, fill.is_maker, fill.fee) == (FILL, "49990", True, "0.09998")
    assert not b.busy
    assert b.poll(4 * MS) == []  # exactly one fill


def test_sell_limit_rests_until_the_bid_reaches_it() -> None:
    q = Quotes()
    b = book(q)
    (ack,) = b.submit(order(side="SELL", order_type="LIMIT", tif="GTC", price="50010"), 0)
    assert ack.kind == ACK
    q.set("50009.9", "50011")
    assert b.poll(1) == []
    q.set("50010", "50011")
    assert kinds(b.poll(2)) == [FILL]


def test_marketable_gtc_limit_fills_at_once_as_taker() -> None:
    b = book(Quotes())
    (rep,) = b.submit(order(order_type="LIMIT", tif="GTC", price="50100"), 0)
    assert (rep.kind, rep.price, rep.is_maker) == (FILL, "50001", False)


@pytest.mark.parametrize(("side", "price"), [("BUY", "50001"), ("SELL", "50000")])
def test_post_only_that_would_cross_is_rejected(side: str, price: str) -> None:
    b = book(Quotes())
    (rep,) = b.submit(order(side=side, order_type="LIMIT", tif="POST_ONLY", price=price), 0)
    assert (rep.kind, rep.reason_code) == (REJECTED, "VENUE_REJECTED")
    assert not b.busy


def test_post_only_that_does_not_cross_rests() -> None:
    b = book(Quotes())
    (rep,) = b.submit(order(order_type="LIMIT", tif="POST_ONLY", price="50000"), 0)
    assert rep.kind == ACK


def test_no_quote_is_rejected_and_may_be_retried() -> None:
    b = book(Quotes())
    o = order()
    o2 = OrderRequest(**{**{f: getattr(o, f) for f in o.__struct_fields__}, "symbol": "ETH/USDT"})
    (rep,) = b.submit(o2, 0)
    assert (rep.kind, rep.reason_code) == (REJECTED, "NO_PRICE")


def test_cancel_of_a_resting_order_and_of_an_unknown_one() -> None:
    b = book(Quotes())
    o = order(order_type="LIMIT", tif="GTC", price="49000")
    b.submit(o, 0)
    assert kinds(b.cancel(cancel(o), 1)) == [CANCELED]
    assert not b.busy
    assert b.cancel(cancel(o), 2) == []  # already finished
    assert kinds(b.cancel(cancel(order(coid="tpnever00p000")), 3)) == [CANCELED]


def test_cancel_reports_a_due_fill_first_and_a_filled_order_is_not_canceled() -> None:
    q = Quotes()
    b = book(q)
    o = order(order_type="LIMIT", tif="GTC", price="49990")
    b.submit(o, 0)
    q.set("49980", "49985")
    assert kinds(b.cancel(cancel(o), 1)) == [FILL]


def test_ack_latency_delays_matching_to_the_quote_of_that_moment() -> None:
    q = Quotes()
    b = book(q, ack_latency_ns=5 * MS)
    assert b.submit(order(), 0) == []
    assert b.busy and b.next_due_ns() == 5 * MS
    assert b.poll(4 * MS) == []
    q.set("50100", "50101")
    (rep,) = b.poll(5 * MS)
    assert (rep.kind, rep.price) == (FILL, "50101")


def test_fill_latency_and_a_cancel_that_wins_the_race() -> None:
    q = Quotes()
    b = book(q, fill_latency_ns=10 * MS)
    o1 = order(order_type="LIMIT", tif="GTC", price="49990")
    o2 = order(order_type="LIMIT", tif="GTC", price="49990")
    b.submit(o1, 0)
    b.submit(o2, 0)
    q.set("49980", "49985")
    assert b.poll(1 * MS) == []  # crossed now, reported 10 ms later
    assert b.next_due_ns() == 11 * MS
    assert kinds(b.cancel(cancel(o2), 2 * MS)) == [CANCELED]
    (fill,) = b.poll(11 * MS)
    assert fill.coid == o1.coid


def test_reconcile_reports_listed_orders_and_the_open_book() -> None:
    b = book(Quotes())
    resting = order(order_type="LIMIT", tif="GTC", price="49000")
    filled = order()
    b.submit(resting, 0)
    b.submit(filled, 0)
    req = ReconcileRequest("paper", "start", [resting.coid, filled.coid, "tpunknown0p000"], [BTC], 0, 0)
    reports, snap = b.reconcile(req, 1)
    assert [(r.coid, r.kind) for r in reports] == [
        (resting.coid, ACK),
        (filled.coid, FILL),
        ("tpunknown0p000", EXPIRED),
    ]
    assert [o.coid for o in snap.open_orders] == [resting.coid]
    assert snap.ok and snap.positions == [] and snap.balance is None


def test_restart_expires_held_orders_and_never_reexecutes(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    store = PaperStore(tmp_path / "paper-book.json")
    q = Quotes()
    first = book(q)
    resting = order(order_type="LIMIT", tif="GTC", price="49000")
    done = order(order_type="LIMIT", tif="GTC", price="49500")
    first.submit(resting, 0)
    first.submit(done, 0)
    first.cancel(cancel(done), 1)
    store.save(first.state())
    # A new process: what the previous one held ends EXPIRED; repeated orders do nothing.
    second = book(q)
    expired = second.restore(store.load(), 2)
    assert [(r.coid, r.kind, r.reason_code) for r in expired] == [(resting.coid, EXPIRED, RESTART_REASON)]
    assert second.submit(resting, 3) == []
    assert second.submit(done, 3) == []
    assert not second.busy
    reports, _ = second.reconcile(ReconcileRequest("paper", "start", [resting.coid, done.coid], [], 0, 0), 4)
    assert [(r.coid, r.kind) for r in reports] == [(resting.coid, EXPIRED)]


def test_store_survives_a_corrupt_file(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "paper-book.json"
    path.write_text("{not json")
    assert PaperStore(path).load() == PaperBookState()
    assert (tmp_path / "paper-book.corrupt").exists()


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["order", "cancel", "quote"]),
            st.sampled_from(["BUY", "SELL"]),
            st.sampled_from(["MARKET", "IOC", "GTC", "POST_ONLY"]),
            st.integers(min_value=-20, max_value=20),
        ),
        max_size=40,
    )
)
def test_every_order_has_at_most_one_fill_and_exactly_one_final_outcome(
    steps: list[tuple[str, str, str, int]],
) -> None:
    q = Quotes()
    b = book(q)
    sent: list[OrderRequest] = []
    out: list[VenueReport] = []
    now = 0
    for action, side, kind, offset in steps:
        now += MS
        mid = Decimal(50000) + offset
        if action == "quote":
            q.set(str(mid), str(mid + 1))
            out += b.poll(now)
        elif action == "cancel" and sent:
            out += b.cancel(cancel(sent[offset % len(sent)]), now)
        else:
            limit = None if kind == "MARKET" else str(mid)
            tif = "IOC" if kind in ("MARKET", "IOC") else kind
            o = order(side=side, order_type="MARKET" if kind == "MARKET" else "LIMIT", tif=tif, price=limit)
            sent.append(o)
            out += b.submit(o, now)
    for o in sent:
        mine = [r.kind for r in out if r.coid == o.coid]
        finals = [k for k in mine if k != ACK]
        assert mine.count(ACK) <= 1
        assert len(finals) <= 1, mine
        if finals:
            assert mine.index(finals[0]) == len(mine) - 1  # nothing after the final outcome
        if o.coid in b.held:
            assert not finals
        else:
            assert len(finals) == 1, mine
        fills = [r for r in out if r.coid == o.coid and r.kind == FILL]
        for f in fills:
            price = Decimal(f.price)
            if o.price is not None:  # never worse than the limit
                assert price <= Decimal(o.price) if o.side == "BUY" else price >= Decimal(o.price)


def test_reports_carry_the_stage_stamps() -> None:
    b = book(Quotes())
    t_in = time.monotonic_ns()
    (rep,) = b.submit(order(), t_in)
    assert rep.t_order_out == 2 and rep.t_gw_in == t_in and rep.t_gw_out >= t_in
