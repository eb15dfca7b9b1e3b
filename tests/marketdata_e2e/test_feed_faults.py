"""R14 in the running engine: frozen feeds, the staleness guard, the silence watchdog, dropped feeds.

Every test drives real FastPath intents through core and the gateways to the simulated venues, and
reads market-data health from the marketdata row of the status board and the shared ticker table.
"""

from __future__ import annotations

from functools import partial

import pytest

from titan.harness import eventually

from .conftest import FIRST_DATA_MS, SILENCE_MS, SYMBOLS, VENUES, Rig

STALE = "MARKET_DATA_STALE"
# risk-and-state.md §7: Bybit/Binance 200 ms, MEXC 1500 ms. R14's stimulus: an intent 250 ms /
# 1600 ms after the pair's last update.
LIMIT_MS = {"bybit": 200, "binance": 200, "mexc": 1500}
STIMULUS_MS = {"bybit": 250, "binance": 250, "mexc": 1600}


def assert_stale(sim: Rig, venue: str, symbol: str) -> None:
    prep, _ = sim.intent(venue, symbol)
    assert not prep.prepared, prep
    assert prep.reason == STALE, prep
    # The denial names the pair and the venue's own threshold (R25: keyed by venue and symbol).
    assert prep.message is not None
    assert f"{symbol} on {venue}" in prep.message, prep.message
    assert f"> {LIMIT_MS[venue]} ms" in prep.message, prep.message


def test_venue_mode_publishes_connected_and_updates(sim: Rig) -> None:
    _, body = sim.engine.health()
    assert body["marketdata_connected"] == {v: True for v in VENUES}
    assert sim.md("connected.sim") == 0
    for venue in VENUES:
        assert sim.md(f"connected.{venue}") == 1
        assert sim.md(f"connects.{venue}") >= 1
        assert sim.md(f"tickers.{venue}") > 0
    total = sim.md("updates_total")
    eventually(lambda: sim.md("updates_total") > total, timeout=5)
    # updates_total counts ticker-table writes (published on the heartbeat tick, so it may lag them).
    written = sum(sim.row_updates(v, s) for v in VENUES for s in SYMBOLS)
    assert 0 < sim.md("updates_total") <= written


def updated_more_than(sim: Rig, venue: str, symbol: str, n: int) -> bool:
    return sim.row_updates(venue, symbol) > n


def fresher_than(sim: Rig, venue: str, symbol: str, ms: int) -> bool:
    age = sim.age_ms(venue, symbol)
    return age is not None and age < ms


@pytest.mark.parametrize("venue", VENUES)
def test_frozen_feed_is_denied_stale_reconnected_and_trades_again(sim: Rig, venue: str) -> None:
    symbol, other_symbol = "BTC/USDT", "ETH/USDT"
    silence_before = sim.md(f"silence_reconnects.{venue}")
    connects_before = sim.md(f"connects.{venue}")

    sim.faults(venue, frozen_symbols=[symbol])
    sim.wait_age_at_least(venue, symbol, STIMULUS_MS[venue], timeout=STIMULUS_MS[venue] / 1000 + 5)
    assert_stale(sim, venue, symbol)
    # The staleness guard denied it, not a reconnect: the watchdog has not fired yet.
    assert sim.md(f"silence_reconnects.{venue}") == silence_before

    # Other pairs are unaffected: the same venue's other symbol, the same symbol on other venues.
    for v, s in [(venue, other_symbol), *((o, symbol) for o in VENUES if o != venue)]:
        sim.passes(v, s, timeout=2)

    # The silence watchdog ends the session and resubscribes on a new one.
    eventually(lambda: sim.md(f"silence_reconnects.{venue}") > silence_before, timeout=SILENCE_MS / 1000 + 5)
    eventually(
        lambda: sim.md(f"connects.{venue}") > connects_before and sim.md(f"connected.{venue}") == 1,
        timeout=5,
    )
    other_updates = sim.row_updates(venue, other_symbol)
    eventually(lambda: sim.row_updates(venue, other_symbol) > other_updates, timeout=3)
    # A new session alone makes nothing fresh: the frozen pair is still denied.
    frozen_updates = sim.row_updates(venue, symbol)
    sim.wait_age_at_least(venue, symbol, STIMULUS_MS[venue], timeout=STIMULUS_MS[venue] / 1000 + 5)
    assert_stale(sim, venue, symbol)
    assert sim.row_updates(venue, symbol) == frozen_updates

    # Data flows again: intents pass and fill.
    sim.faults(venue, frozen_symbols=[])
    sim.passes(venue, symbol, timeout=5)
    conf = sim.trade(venue, symbol, timeout=10)
    assert conf.executed, conf


def test_mexc_normal_cadence_is_not_stale(sim: Rig) -> None:
    """MEXC pushes once a second: an intent when its row is 600+ ms old (stale at 200 ms) passes."""
    silence_before = sim.md("silence_reconnects.mexc")
    for symbol in (*SYMBOLS, "BTC/USDT"):
        # One push cycle each: a fresh row first, then the same row grown old.
        eventually(partial(fresher_than, sim, "mexc", symbol, 300), timeout=5, interval=0.01)
        age = sim.wait_age_at_least("mexc", symbol, 600, timeout=5)
        prep, _ = sim.intent("mexc", symbol)
        assert prep.prepared, (age, prep)
    assert sim.md("silence_reconnects.mexc") == silence_before


@pytest.mark.parametrize("venue", VENUES)
def test_dropped_public_connection_resubscribes_and_trading_resumes(sim: Rig, venue: str) -> None:
    connects_before = sim.md(f"connects.{venue}")
    assert sim.drop_public(venue) >= 1

    eventually(
        lambda: sim.md(f"connects.{venue}") > connects_before and sim.md(f"connected.{venue}") == 1,
        timeout=10,
    )
    # Resubscribed: every symbol's row is written again by the new session.
    updates = {s: sim.row_updates(venue, s) for s in SYMBOLS}
    eventually(lambda: all(sim.row_updates(venue, s) > n for s, n in updates.items()), timeout=5)
    for symbol in SYMBOLS:
        sim.passes(venue, symbol, timeout=5)
    conf = sim.trade(venue, "BTC/USDT", timeout=10)
    assert conf.executed, conf


def test_stale_venue_of_a_weighted_route_denies_the_intent(sim: Rig) -> None:
    """R25: fresh on bybit, stale on binance; a route over both is denied naming binance."""
    symbol = "BTC/USDT"
    sim.faults("binance", frozen_symbols=[symbol])
    sim.wait_age_at_least("binance", symbol, STIMULUS_MS["binance"], timeout=5)
    prep, _ = sim.intent("bybit+binance", symbol)
    assert prep.reason == STALE, prep
    assert prep.message is not None and f"{symbol} on binance" in prep.message, prep.message
    # With only bybit routed it passes; every spelling of the symbol reaches the same (stale) row.
    sim.passes("bybit", symbol, timeout=2)
    for spelling in ("BTCUSDT", "BTC_USDT", "BTC/USDT"):
        prep, _ = sim.intent("binance", spelling)
        assert prep.reason == STALE, (spelling, prep)
        prep, _ = sim.intent("bybit", spelling)
        assert prep.prepared, (spelling, prep)


def test_silent_subscription_alarms_and_recovers(sim: Rig) -> None:
    """R15 in the engine: subscriptions acknowledged, then silent: first-data alarm, intents denied
    stale, other venues unaffected; once the venue serves again, the watchdog's new session flows."""
    venue = "bybit"
    alarms_before = sim.md(f"first_data_alarms.{venue}")
    sim.faults(venue, silent_subscriptions=True)
    assert sim.drop_public(venue) >= 1  # resubscribe: the new subscriptions are the silent ones
    eventually(lambda: sim.md(f"first_data_alarms.{venue}") > alarms_before, timeout=FIRST_DATA_MS / 1000 + 5)
    for symbol in SYMBOLS:
        assert_stale(sim, venue, symbol)
    for other in ("binance", "mexc"):
        sim.passes(other, "BTC/USDT", timeout=2)

    silence_before = sim.md(f"silence_reconnects.{venue}")
    sim.faults(venue, silent_subscriptions=False)
    eventually(lambda: sim.md(f"silence_reconnects.{venue}") > silence_before, timeout=SILENCE_MS / 1000 + 5)
    for symbol in SYMBOLS:
        sim.passes(venue, symbol, timeout=5)


def test_bybit_rows_hold_the_merged_state(sim: Rig) -> None:
    """R20 in the engine: Bybit sends deltas of changed fields only; every row keeps the full ticker."""
    for symbol in SYMBOLS:
        updates = sim.row_updates("bybit", symbol)
        eventually(partial(updated_more_than, sim, "bybit", symbol, updates + 5), timeout=5)  # deltas
        snap = sim.row("bybit", symbol)
        assert snap is not None
        assert min(snap.bid, snap.bid_size, snap.ask, snap.ask_size, snap.last, snap.mark) > 0, snap
        assert snap.bid < snap.ask, snap
