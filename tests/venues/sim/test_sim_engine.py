"""Sans-I/O matching engine and price processes: invariants and determinism."""

from __future__ import annotations

import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.venues.sim.config import DEFAULT_INSTRUMENTS, SimAccount, load_sim_config
from titan.venues.sim.engine import FillEvent, MatchingEngine, NewOrder, Reject
from titan.venues.sim.prices import Quote, RandomWalk, TapeReplay

REPO = Path(__file__).resolve().parents[3]
TAPE = REPO / "config" / "tapes" / "btc_eth_6s.jsonl"


def _engine(balance: str = "1000000") -> MatchingEngine:
    engine = MatchingEngine(
        instruments=list(DEFAULT_INSTRUMENTS),
        accounts=[SimAccount(venue="bybit", api_key="k", secret="s", balance=Decimal(balance))],
        leverage=Decimal(10),
        maker_fee=Decimal("0.0002"),
        taker_fee=Decimal("0.00055"),
        rng=random.Random(1),
        clock=lambda: 1,
        order_id_factory=lambda rng, seq: str(seq),
    )
    engine.set_quote("BTC/USDT", _quote("100.0", "100.1"))
    return engine


def _quote(bid: str, ask: str, size: str = "1000") -> Quote:
    return Quote(
        bid=Decimal(bid),
        bid_size=Decimal(size),
        ask=Decimal(ask),
        ask_size=Decimal(size),
        last=Decimal(bid),
        mark=Decimal(bid),
        index=Decimal(bid),
        ts_ms=1,
    )


def _market(side: str, qty: str, reduce_only: bool = False) -> NewOrder:
    return NewOrder(
        api_key="k",
        symbol="BTC/USDT",
        side=side,
        type="MARKET",
        tif="IOC",
        qty=Decimal(qty),
        price=None,
        reduce_only=reduce_only,
        client_id="",
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 50), st.integers(-30, 30)), max_size=25
    )
)
def test_position_and_cash_follow_the_fills(trades: list[tuple[str, int, int]]) -> None:
    engine = _engine()
    for side, lots, move in trades:
        bid = Decimal("100.0") + Decimal("0.1") * move
        engine.set_quote("BTC/USDT", _quote(str(bid), str(bid + Decimal("0.1"))))
        placed = engine.place(_market(side, str(Decimal("0.001") * lots)))
        assert not isinstance(placed, Reject)
        engine.execute(placed.order_id)
    pos = engine.position("k", "BTC/USDT")
    signed = sum((f.qty if f.side == "BUY" else -f.qty for f in engine.fills), Decimal(0))
    assert pos.qty == signed
    fees = sum((f.fee for f in engine.fills), Decimal(0))
    realised = sum((f.realised_pnl for f in engine.fills), Decimal(0))
    assert engine.accounts["k"].balance == Decimal("1000000") + realised - fees
    assert pos.realised == realised


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 80))
def test_reduce_only_never_flips_the_position(open_lots: int, close_lots: int) -> None:
    engine = _engine()
    opened = engine.place(_market("BUY", str(Decimal("0.001") * open_lots)))
    assert not isinstance(opened, Reject)
    engine.execute(opened.order_id)
    closing = engine.place(_market("SELL", str(Decimal("0.001") * close_lots), reduce_only=True))
    assert not isinstance(closing, Reject)
    engine.execute(closing.order_id)
    assert engine.position("k", "BTC/USDT").qty == Decimal("0.001") * max(open_lots - close_lots, 0)


def test_limit_partial_fills_at_its_own_price_as_maker() -> None:
    engine = _engine()
    order = engine.place(
        NewOrder(
            api_key="k",
            symbol="BTC/USDT",
            side="SELL",
            type="LIMIT",
            tif="GTC",
            qty=Decimal("0.005"),
            price=Decimal("100.5"),
            reduce_only=False,
            client_id="a",
        )
    )
    assert not isinstance(order, Reject)
    assert [type(e).__name__ for e in engine.execute(order.order_id)] == ["OrderEvent"]  # rests
    events = engine.set_quote("BTC/USDT", _quote("100.6", "100.7", size="0.002"))
    fills = [e.fill for e in events if isinstance(e, FillEvent)]
    assert [(f.price, f.qty, f.is_maker) for f in fills] == [(Decimal("100.5"), Decimal("0.002"), True)]
    assert order.status == "PARTIALLY_FILLED" and order.leaves == Decimal("0.003")


def test_insufficient_balance_and_post_only() -> None:
    engine = _engine(balance="10")
    assert engine.place(_market("BUY", "1.000")) is Reject.INSUFFICIENT_BALANCE
    engine.post_only_rejects_at_place = True
    crossing = NewOrder(
        api_key="k",
        symbol="BTC/USDT",
        side="BUY",
        type="LIMIT",
        tif="POST_ONLY",
        qty=Decimal("0.001"),
        price=Decimal("100.1"),
        reduce_only=False,
        client_id="p",
    )
    assert engine.place(crossing) is Reject.POST_ONLY_WOULD_CROSS


def test_random_walk_is_deterministic_from_the_seed() -> None:
    walks = [RandomWalk(list(DEFAULT_INSTRUMENTS), seed=5) for _ in range(2)]
    runs = [[w.step(0) for _ in range(50)] for w in walks]
    assert runs[0] == runs[1]
    other = [RandomWalk(list(DEFAULT_INSTRUMENTS), seed=6).step(0) for _ in range(1)]
    assert other[0] != runs[0][0]
    for quotes in runs[0]:
        q = quotes["BTC/USDT"]
        assert q.ask - q.bid == Decimal("0.1") and q.bid % Decimal("0.1") == 0


def test_tape_replays_in_order_and_loops() -> None:
    tape = TapeReplay(TAPE)
    first = tape.step(now_ms=0, dt_ms=0)
    assert set(first) == {"BTC/USDT", "ETH/USDT"} and str(first["BTC/USDT"].bid) == "64999.9"
    seen = [tape.step(now_ms=0, dt_ms=100) for _ in range(120)]  # 12 s over a 6 s tape
    assert all(set(s) == {"BTC/USDT", "ETH/USDT"} for s in seen)
    assert seen[59]["BTC/USDT"] == first["BTC/USDT"]  # looped back to the first row


def test_example_config_loads() -> None:
    cfg = load_sim_config(REPO / "config" / "tapes" / "sim-example.toml")
    assert (cfg.price_source, cfg.fill_delay_ms, len(cfg.accounts)) == ("tape", 200, 3)


@pytest.mark.timeout(30)
def test_process_entry_point_prints_and_writes_bound_urls(tmp_path: Path) -> None:
    ports_file = tmp_path / "ports.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "titan.venues.sim", "--ports-file", str(ports_file), "--seed", "4"],
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the simulator is listening (bounded by the test timeout)
        urls = msgspec.json.decode(line)
        assert set(urls) == {"bybit", "binance", "mexc"} and all(
            u.startswith("http://127.0.0.1:") for u in urls.values()
        )
        assert msgspec.json.decode(ports_file.read_bytes()) == urls
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()
