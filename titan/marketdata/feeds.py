"""Sans-I/O decoders of the three public ticker streams (venues.md §2.5, §3.5, §4.6).

Each feed knows its URL, its subscribe and ping messages, and turns raw frames into full ticker states
(``Ticker``) plus any messages that must be sent back (a renewed Bybit subscription). No sockets here.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from titan.symbols import SymbolError, normalize_symbol, venue_symbol


class Ticker(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    symbol: str  # canonical
    bid: Decimal | None
    bid_size: Decimal | None
    ask: Decimal | None
    ask_size: Decimal | None
    last: Decimal | None
    mark: Decimal | None
    exchange_ts_ms: int


class FeedResult(msgspec.Struct, kw_only=True):
    tickers: list[Ticker] = msgspec.field(default_factory=list)
    send: list[str] = msgspec.field(default_factory=list)  # frames to send back (e.g. a renewed subscription)
    dropped: int = 0  # frames discarded: stale Binance ``u``, Bybit delta before snapshot, undecodable
    resubscribed: list[str] = msgspec.field(default_factory=list)  # canonical symbols renewed


_json = msgspec.json.Decoder()
# MEXC numbers become Decimal from their raw text, never through a binary float.
_json_decimal = msgspec.json.Decoder(float_hook=Decimal)


def _dec(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def _canonical(raw: str) -> str | None:
    try:
        return normalize_symbol(raw)
    except SymbolError:
        return None


# Binance stream kind → entry point since the 2026 base-URL split (venues.md §3.1). A stream sent to the
# wrong entry point is acknowledged and then silent, so the mapping is fixed here and pinned by a test.
BINANCE_ENTRY_POINTS: dict[str, str] = {
    "bookTicker": "public",
    "depth": "public",
    "aggTrade": "market",
    "markPrice": "market",
    "kline": "market",
    "ticker": "market",
    "miniTicker": "market",
    "forceOrder": "market",
    "userData": "private",
}


def binance_entry_point(stream_kind: str) -> str:
    """``/public``, ``/market`` or ``/private`` for a stream kind (``bookTicker``, ``kline_1m``, …)."""
    base_kind = stream_kind.split("_", 1)[0]
    if base_kind.startswith("depth"):
        base_kind = "depth"
    try:
        return BINANCE_ENTRY_POINTS[base_kind]
    except KeyError:
        raise ValueError(f"unknown Binance stream kind {stream_kind!r}") from None


class BybitFeed:
    """Bybit ``tickers.{SYM}``: snapshot then deltas of changed fields, merged per symbol."""

    venue = "bybit"

    def __init__(self, ws_url: str, symbols: list[str]) -> None:
        self._url = ws_url
        self.symbols = canonical_symbols(symbols)
        self._topics = {f"tickers.{venue_symbol(s, 'bybit')}": s for s in self.symbols}
        self._state: dict[str, dict[str, Any]] = {}
        self._req = 0

    def url(self) -> str:
        return self._url

    def _request(self, op: str, topics: list[str]) -> str:
        self._req += 1
        return msgspec.json.encode({"req_id": f"{op[:3]}{self._req}", "op": op, "args": topics}).decode()

    def on_connect(self) -> list[str]:
        """A new connection starts from nothing: every topic needs a fresh snapshot."""
        self._state.clear()
        topics = list(self._topics)
        return [self._request("subscribe", topics[i : i + 10]) for i in range(0, len(topics), 10)]

    def ping(self) -> str | None:
        return '{"op":"ping"}'

    def on_message(self, raw: str | bytes) -> FeedResult:
        result = FeedResult()
        try:
            msg = _json.decode(raw)
        except msgspec.DecodeError:
            result.dropped += 1
            return result
        if not isinstance(msg, dict):
            return result
        topic = msg.get("topic")
        symbol = self._topics.get(topic) if isinstance(topic, str) else None
        data = msg.get("data")
        if symbol is None or not isinstance(data, dict):
            return result  # op acks, pongs, foreign topics
        assert isinstance(topic, str)
        if msg.get("type") == "snapshot":
            self._state[symbol] = dict(data)
        elif symbol in self._state:
            self._state[symbol].update(data)
        else:
            # A delta before any snapshot cannot be merged: drop it and renew the subscription.
            result.dropped += 1
            result.send.append(self._request("unsubscribe", [topic]))
            result.send.append(self._request("subscribe", [topic]))
            result.resubscribed.append(symbol)
            return result
        state = self._state[symbol]
        ts = msg.get("ts")
        result.tickers.append(
            Ticker(
                venue="bybit",
                symbol=symbol,
                bid=_dec(state.get("bid1Price")),
                bid_size=_dec(state.get("bid1Size")),
                ask=_dec(state.get("ask1Price")),
                ask_size=_dec(state.get("ask1Size")),
                last=_dec(state.get("lastPrice")),
                mark=_dec(state.get("markPrice")),
                exchange_ts_ms=ts if isinstance(ts, int) else 0,
            )
        )
        return result


class BinanceFeed:
    """Binance ``<sym>@bookTicker`` on ``/public``; a frame whose ``u`` is not newer is dropped."""

    venue = "binance"

    def __init__(self, ws_url: str, symbols: list[str], mode: str = "stream") -> None:
        if mode not in ("stream", "subscribe"):
            raise ValueError(f"binance_mode must be 'stream' or 'subscribe', not {mode!r}")
        self._base = ws_url.rstrip("/")
        self.symbols = canonical_symbols(symbols)
        self._mode = mode
        self._streams = {f"{venue_symbol(s, 'binance').lower()}@bookTicker": s for s in self.symbols}
        self._by_venue_symbol = {venue_symbol(s, "binance"): s for s in self.symbols}
        self._last_u: dict[str, int] = {}
        self._req = 0

    def url(self) -> str:
        entry = f"{self._base}/{binance_entry_point('bookTicker')}"
        if self._mode == "stream":
            return f"{entry}/stream?streams={'/'.join(self._streams)}"
        return f"{entry}/ws"

    def on_connect(self) -> list[str]:
        self._last_u.clear()
        if self._mode == "stream":
            return []
        self._req += 1
        return [
            msgspec.json.encode(
                {"method": "SUBSCRIBE", "params": list(self._streams), "id": self._req}
            ).decode()
        ]

    def ping(self) -> str | None:
        return None  # WebSocket-level ping frames (the server pings too)

    def on_message(self, raw: str | bytes) -> FeedResult:
        result = FeedResult()
        try:
            msg = _json.decode(raw)
        except msgspec.DecodeError:
            result.dropped += 1
            return result
        if not isinstance(msg, dict):
            return result
        data = msg.get("data", msg)
        if not isinstance(data, dict) or data.get("e", "bookTicker") != "bookTicker" or "u" not in data:
            return result  # {"result": null, "id": 1} and other acks
        symbol = self._by_venue_symbol.get(str(data.get("s")))
        update_id = data.get("u")
        if symbol is None or not isinstance(update_id, int):
            return result
        if update_id <= self._last_u.get(symbol, -1):
            result.dropped += 1
            return result
        self._last_u[symbol] = update_id
        ts = data.get("T", data.get("E", 0))
        result.tickers.append(
            Ticker(
                venue="binance",
                symbol=symbol,
                bid=_dec(data.get("b")),
                bid_size=_dec(data.get("B")),
                ask=_dec(data.get("a")),
                ask_size=_dec(data.get("A")),
                last=None,
                mark=None,
                exchange_ts_ms=ts if isinstance(ts, int) else 0,
            )
        )
        return result


class MexcFeed:
    """MEXC ``push.ticker`` (once per second, JSON numbers decoded exactly; no sizes)."""

    venue = "mexc"

    def __init__(self, ws_url: str, symbols: list[str]) -> None:
        self._url = ws_url
        self.symbols = canonical_symbols(symbols)
        self._by_venue_symbol = {venue_symbol(s, "mexc"): s for s in self.symbols}

    def url(self) -> str:
        return self._url

    def on_connect(self) -> list[str]:
        return [
            msgspec.json.encode({"method": "sub.ticker", "param": {"symbol": vs}, "gzip": False}).decode()
            for vs in self._by_venue_symbol
        ]

    def ping(self) -> str | None:
        return '{"method":"ping"}'

    def on_message(self, raw: str | bytes) -> FeedResult:
        result = FeedResult()
        try:
            msg = _json_decimal.decode(raw)
        except msgspec.DecodeError:
            result.dropped += 1
            return result
        if not isinstance(msg, dict) or msg.get("channel") != "push.ticker":
            return result  # pong, rs.sub.ticker, rs.error
        data = msg.get("data")
        if not isinstance(data, dict):
            return result
        symbol = self._by_venue_symbol.get(str(data.get("symbol", msg.get("symbol"))))
        if symbol is None:
            return result
        ts = data.get("timestamp", msg.get("ts", 0))
        result.tickers.append(
            Ticker(
                venue="mexc",
                symbol=symbol,
                bid=_dec(data.get("bid1")),
                bid_size=None,
                ask=_dec(data.get("ask1")),
                ask_size=None,
                last=_dec(data.get("lastPrice")),
                mark=_dec(data.get("fairPrice")),
                exchange_ts_ms=ts if isinstance(ts, int) else 0,
            )
        )
        return result


Feed = BybitFeed | BinanceFeed | MexcFeed


def canonical_symbols(symbols: list[str]) -> list[str]:
    """Canonical, de-duplicated symbols (``BTCUSDT``, ``BTC_USDT`` → ``BTC/USDT``); raises on bad ones."""
    out: list[str] = []
    for s in symbols:
        c = _canonical(s)
        if c is None:
            raise ValueError(f"cannot normalise market-data symbol {s!r}")
        if c not in out:
            out.append(c)
    return out
