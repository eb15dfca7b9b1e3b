"""bench/marketdata_latency.py: its frame keys, its matching, and one short real run."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from bench.marketdata_latency import Key, WriteSample, bid_units, frame_key, run, summarize_samples

BTC = bid_units(Decimal("65000.1"))


@pytest.mark.parametrize(
    ("venue", "frame"),
    [
        (
            "bybit",
            b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"65000.1"}}',
        ),
        ("binance", b'{"e":"bookTicker","s":"BTCUSDT","b":"65000.1","a":"65000.2"}'),
        (
            "binance",
            b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","s":"BTCUSDT","b":"65000.10"}}',
        ),
        (
            "mexc",
            b'{"channel":"push.ticker","symbol":"BTC_USDT","data":{"symbol":"BTC_USDT","bid1":65000.1}}',
        ),
    ],
)
def test_frame_key_finds_symbol_and_bid(venue: str, frame: bytes) -> None:
    assert frame_key(frame) == ("BTC/USDT", BTC)


def test_frame_key_skips_frames_without_a_bid() -> None:
    assert frame_key(b'{"e":"markPriceUpdate","s":"BTCUSDT","p":"65000.1"}') is None
    assert frame_key(b'{"success":true,"op":"subscribe"}') is None


def test_summarize_matches_first_write_to_first_send_and_counts_the_unmatched() -> None:
    sent: Key = ("bybit", "BTC/USDT", BTC)
    never_written: Key = ("bybit", "BTC/USDT", BTC + 1)
    sends = {sent: 1_000_000, never_written: 1_000_000}
    samples = [
        WriteSample("bybit", "BTC/USDT", BTC, 1_300_000, 1_400_000),
        WriteSample("bybit", "BTC/USDT", BTC, 9_000_000, 9_000_000),  # a later duplicate frame
    ]
    out = summarize_samples(sends, samples, {sent, never_written})
    bybit = out["venues"]["bybit"]
    assert bybit["unmatched"] == 1
    assert bybit["send_to_table"]["n"] == 1
    assert bybit["send_to_table"]["max"] == pytest.approx(400, rel=0.01)  # µs
    assert bybit["send_to_recv"]["max"] == pytest.approx(300, rel=0.01)
    assert out["venues"]["mexc"]["send_to_table"]["n"] == 0


def test_short_run_measures_every_venue_and_cleans_up() -> None:
    out = run(n=10, warmup=2, quick=True)
    for venue in ("bybit", "binance", "mexc"):
        v = out["venues"][venue]
        assert v["unmatched"] == 0, out
        assert v["send_to_table"]["n"] == 20
        assert 0 < v["send_to_recv"]["p50"] <= v["send_to_table"]["p50"] <= v["send_to_table"]["max"]
    assert out["n"] == 60
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("ttmdbench")]
