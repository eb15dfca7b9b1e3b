"""Feed decoders against recorded sample frames from venues.md (sans-I/O)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titan.marketdata.feeds import (
    BINANCE_ENTRY_POINTS,
    BinanceFeed,
    BybitFeed,
    MexcFeed,
    Ticker,
    binance_entry_point,
    canonical_symbols,
)

# venues.md §2.5, with the elided values filled in
BYBIT_SNAPSHOT = (
    '{"topic":"tickers.BTCUSDT","type":"snapshot","cs":9532239429,"ts":1760325052630,'
    '"data":{"symbol":"BTCUSDT","lastPrice":"114920.10","markPrice":"114921.30","indexPrice":"114950.02",'
    '"bid1Price":"114920.00","bid1Size":"3.421","ask1Price":"114920.10","ask1Size":"0.118",'
    '"fundingRate":"0.0001","nextFundingTime":"1760342400000"}}'
)
# venues.md §3.5, verbatim
BINANCE_BOOK_TICKER = (
    '{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT",'
    '"b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}'
)
# venues.md §4.6, with the elided field removed
MEXC_PUSH_TICKER = (
    '{"channel":"push.ticker","symbol":"BTC_USDT","ts":1587442022003,'
    '"data":{"symbol":"BTC_USDT","lastPrice":6865.5,"bid1":6865,"ask1":6866.5,"fairPrice":6867.4,"indexPrice":6861.6,'
    '"fundingRate":0.0008,"holdVol":2284742,"volume24":164586129,"timestamp":1587442022003}}'
)


def _delta(**fields: str) -> str:
    return json.dumps(
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "cs": 1,
            "ts": 1760325052730,
            "data": {"symbol": "BTCUSDT", **fields},
        }
    )


def test_bybit_snapshot_sample() -> None:
    feed = BybitFeed("ws://x", ["BTC/USDT"])
    feed.on_connect()
    (ticker,) = feed.on_message(BYBIT_SNAPSHOT).tickers
    assert ticker == Ticker(
        venue="bybit",
        symbol="BTC/USDT",
        bid=Decimal("114920.00"),
        bid_size=Decimal("3.421"),
        ask=Decimal("114920.10"),
        ask_size=Decimal("0.118"),
        last=Decimal("114920.10"),
        mark=Decimal("114921.30"),
        exchange_ts_ms=1760325052630,
    )


def test_bybit_deltas_merge_onto_the_snapshot() -> None:
    """R20: deltas carrying only bid1Price, then only ask1Size: the row holds the full merged state."""
    feed = BybitFeed("ws://x", ["BTC/USDT"])
    feed.on_connect()
    feed.on_message(BYBIT_SNAPSHOT)
    (after_bid,) = feed.on_message(_delta(bid1Price="114919.90")).tickers
    assert (after_bid.bid, after_bid.bid_size, after_bid.ask, after_bid.ask_size) == (
        Decimal("114919.90"),
        Decimal("3.421"),
        Decimal("114920.10"),
        Decimal("0.118"),
    )
    (after_size,) = feed.on_message(_delta(ask1Size="2.5")).tickers
    assert (after_size.bid, after_size.ask_size, after_size.last, after_size.exchange_ts_ms) == (
        Decimal("114919.90"),
        Decimal("2.5"),
        Decimal("114920.10"),
        1760325052730,
    )


def test_bybit_delta_before_snapshot_is_dropped_and_renewed() -> None:
    feed = BybitFeed("ws://x", ["BTC/USDT", "ETH/USDT"])
    subscribe = [json.loads(m) for m in feed.on_connect()]
    assert subscribe[0]["op"] == "subscribe" and subscribe[0]["args"] == [
        "tickers.BTCUSDT",
        "tickers.ETHUSDT",
    ]
    result = feed.on_message(_delta(bid1Price="1"))
    assert result.tickers == [] and result.dropped == 1 and result.resubscribed == ["BTC/USDT"]
    assert [(json.loads(m)["op"], json.loads(m)["args"]) for m in result.send] == [
        ("unsubscribe", ["tickers.BTCUSDT"]),
        ("subscribe", ["tickers.BTCUSDT"]),
    ]
    assert len(feed.on_message(BYBIT_SNAPSHOT).tickers) == 1


def test_bybit_reconnect_forgets_state() -> None:
    feed = BybitFeed("ws://x", ["BTC/USDT"])
    feed.on_connect()
    feed.on_message(BYBIT_SNAPSHOT)
    feed.on_connect()
    assert feed.on_message(_delta(bid1Price="1")).dropped == 1


def test_bybit_ignores_acks_pongs_and_garbage() -> None:
    feed = BybitFeed("ws://x", ["BTC/USDT"])
    feed.on_connect()
    for frame in (
        '{"success":true,"ret_msg":"pong","conn_id":"a","op":"ping"}',
        '{"success":true,"ret_msg":"","op":"subscribe","conn_id":"a"}',
        "[1]",
    ):
        assert feed.on_message(frame).tickers == []
    assert feed.on_message("not json").dropped == 1
    assert json.loads(feed.ping() or "") == {"op": "ping"}


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["bid1Price", "bid1Size", "ask1Price", "ask1Size", "lastPrice", "markPrice"]),
            st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False).map(str),
            min_size=1,
        ),
        max_size=20,
    )
)
def test_bybit_merge_holds_the_latest_value_of_every_field(deltas: list[dict[str, str]]) -> None:
    feed = BybitFeed("ws://x", ["BTC/USDT"])
    feed.on_connect()
    feed.on_message(BYBIT_SNAPSHOT)
    expected = json.loads(BYBIT_SNAPSHOT)["data"]
    ticker = None
    for delta in deltas:
        expected.update(delta)
        (ticker,) = feed.on_message(_delta(**delta)).tickers
    if ticker is not None:
        assert (ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size, ticker.last, ticker.mark) == tuple(
            Decimal(expected[k])
            for k in ("bid1Price", "bid1Size", "ask1Price", "ask1Size", "lastPrice", "markPrice")
        )


def test_binance_book_ticker_sample_and_update_id_ordering() -> None:
    feed = BinanceFeed("ws://x", ["BNB/USDT"])
    (ticker,) = feed.on_message(BINANCE_BOOK_TICKER).tickers
    assert ticker == Ticker(
        venue="binance",
        symbol="BNB/USDT",
        bid=Decimal("25.35190000"),
        bid_size=Decimal("31.21000000"),
        ask=Decimal("25.36520000"),
        ask_size=Decimal("40.66000000"),
        last=None,
        mark=None,
        exchange_ts_ms=1568014460891,
    )
    assert feed.on_message(BINANCE_BOOK_TICKER).dropped == 1  # same u
    older = BINANCE_BOOK_TICKER.replace("400900217", "400900216")
    assert feed.on_message(older).dropped == 1
    newer = json.dumps(
        {
            "stream": "bnbusdt@bookTicker",
            "data": json.loads(BINANCE_BOOK_TICKER.replace("400900217", "400900218")),
        }
    )
    assert len(feed.on_message(newer).tickers) == 1  # combined-stream wrapper
    assert feed.on_message('{"result":null,"id":1}').tickers == []


def test_binance_urls_use_the_public_entry_point() -> None:
    stream = BinanceFeed("wss://fstream.binance.com", ["BTC/USDT", "ETH_USDT"])
    assert (
        stream.url()
        == "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker"
    )
    assert stream.on_connect() == []
    live = BinanceFeed("wss://fstream.binance.com/", ["BTCUSDT"], mode="subscribe")
    assert live.url() == "wss://fstream.binance.com/public/ws"
    assert json.loads(live.on_connect()[0]) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@bookTicker"],
        "id": 1,
    }
    with pytest.raises(ValueError, match="binance_mode"):
        BinanceFeed("ws://x", ["BTC/USDT"], mode="nope")


@pytest.mark.parametrize(
    "kind, entry",
    [
        ("bookTicker", "public"),
        ("depth", "public"),
        ("depth20@100ms", "public"),
        ("aggTrade", "market"),
        ("markPrice", "market"),
        ("kline_1m", "market"),
        ("ticker", "market"),
        ("miniTicker", "market"),
        ("forceOrder", "market"),
        ("userData", "private"),
    ],
)
def test_binance_stream_kind_to_entry_point_is_pinned(kind: str, entry: str) -> None:
    """R15: a stream on the wrong entry point is acknowledged and silent, so the mapping is fixed."""
    assert binance_entry_point(kind) == entry


def test_binance_unknown_stream_kind_is_an_error() -> None:
    assert set(BINANCE_ENTRY_POINTS.values()) == {"public", "market", "private"}
    with pytest.raises(ValueError):
        binance_entry_point("bogus")


def test_mexc_push_ticker_sample_decodes_numbers_exactly() -> None:
    feed = MexcFeed("ws://x/edge", ["BTC/USDT"])
    (ticker,) = feed.on_message(MEXC_PUSH_TICKER).tickers
    assert ticker == Ticker(
        venue="mexc",
        symbol="BTC/USDT",
        bid=Decimal("6865"),
        bid_size=None,
        ask=Decimal("6866.5"),
        ask_size=None,
        last=Decimal("6865.5"),
        mark=Decimal("6867.4"),
        exchange_ts_ms=1587442022003,
    )
    assert feed.on_message('{"channel":"pong","data":1587453241453}').tickers == []
    assert json.loads(feed.on_connect()[0]) == {
        "method": "sub.ticker",
        "param": {"symbol": "BTC_USDT"},
        "gzip": False,
    }
    assert json.loads(feed.ping() or "") == {"method": "ping"}


@settings(max_examples=100, deadline=None)
@given(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**7), places=8, allow_nan=False))
def test_mexc_numbers_never_pass_through_a_float(price: Decimal) -> None:
    text = format(price, "f")
    frame = MEXC_PUSH_TICKER.replace('"bid1":6865', f'"bid1":{text}')
    (ticker,) = MexcFeed("ws://x", ["BTC/USDT"]).on_message(frame).tickers
    assert ticker.bid == price and format(ticker.bid, "f") == text  # same digits, same exponent


def test_symbols_are_normalised() -> None:
    assert canonical_symbols(["BTCUSDT", "BTC_USDT", "btc/usdt", "ETH-USDT"]) == ["BTC/USDT", "ETH/USDT"]
    with pytest.raises(ValueError):
        canonical_symbols(["NOQUOTE"])
