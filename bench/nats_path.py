"""The NATS path: signed intent published on NATS → shadow fill received (upstream's shadow-fill bench).

Closed loop, one intent at a time, on a running engine: publish a signed envelope on
``titan.cmd.execution.place.v1.paper.main.BTC_USDT`` and wait for the shadow fill carrying its
``signal_id`` on ``titan.evt.execution.shadow_fill.v1.>`` and its venue fill event (paper fills at
once) on ``titan.evt.execution.fill.v1.>``; both latencies are reported. The path is producer →
NATS → TITAN_CMD → bridge (pull consumer, HMAC, rows 3–7) → command ring → core (journal,
rows 0–2/8–10) → event ring → bridge (spool) → NATS → consumer. ``bench/run.py`` calls
:func:`run`; ``python -m bench.nats_path`` starts its own engine. Latencies in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import msgspec
import nats
from hdrh.histogram import HdrHistogram
from nats.aio.msg import Msg

from titan.canonical import canonical_json
from titan.events.envelope import sign
from titan.events.subjects import place_intent_subject
from titan.harness import SECRET, start_engine

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
SHADOW_FILLS = "titan.evt.execution.shadow_fill.v1.>"
FILLS = "titan.evt.execution.fill.v1.>"
DISCOVERY = 3  # intents on which both event kinds are looked for
GIVE_UP_AFTER = 3  # consecutive timeouts: the engine does not answer on this path at all


class HasNatsUrl(Protocol):
    """A running engine (``titan.harness.Engine``) or anything else that names its NATS server."""

    @property
    def nats_url(self) -> str: ...


def signed_intent(signal_id: str, secret: str, size: str = "0.002") -> bytes:
    ts = time.time_ns() // 1_000_000
    payload: dict[str, Any] = {
        "signal_id": signal_id,
        "symbol": "BTC/USDT",
        "direction": 1,
        "type": "BUY_SETUP",
        "status": "PENDING",
        "size": float(size),  # producers send JSON numbers; the engine reads them exactly
        "t_signal": ts,
        "entry_zone": [50000],
        "exchange": "paper",
        "velocity": 0.01,  # a fast signal: the router sends a marketable order (fills on paper)
    }
    nonce = uuid.uuid4().hex
    envelope = {
        "id": f"bench-{signal_id}",
        "type": "titan.cmd.execution.place.v1",
        "version": 1,
        "ts": ts,
        "producer": "titan-bench",
        "correlation_id": signal_id,
        "idempotency_key": signal_id,
        "nonce": nonce,
        "sig": sign(secret, ts, nonce, canonical_json(payload)),
        "payload": payload,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _summary(h: HdrHistogram) -> dict[str, float]:
    out: dict[str, float] = {f"p{p:g}": h.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    out["max"] = h.get_max_value() / 1000
    out["mean"] = h.get_mean_value() / 1000
    out["n"] = h.get_total_count()
    return out


async def run(
    engine: HasNatsUrl, n: int, warmup: int = 20, secret: str = SECRET, timeout_s: float = 5.0
) -> dict[str, Any]:
    """Publish ``warmup + n`` signed intents one at a time; latency to their shadow fill and fill (µs).

    The headline numbers are publish → shadow fill (upstream's measure); when the engine emits no
    shadow fill for NATS intents they are publish → venue fill event, and ``measured_to`` says so.
    """
    nc = await nats.connect(engine.nats_url)
    shadow_waiting: dict[str, asyncio.Future[int]] = {}
    fill_waiting: dict[str, asyncio.Future[int]] = {}

    def resolve(waiting: dict[str, asyncio.Future[int]], sid: object) -> None:
        fut = waiting.get(sid) if isinstance(sid, str) else None
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter_ns())

    async def on_shadow(msg: Msg) -> None:
        with contextlib.suppress(msgspec.DecodeError, AttributeError):
            resolve(shadow_waiting, msgspec.json.decode(msg.data).get("signal_id"))

    async def on_fill(msg: Msg) -> None:
        with contextlib.suppress(msgspec.DecodeError, AttributeError):
            resolve(fill_waiting, msgspec.json.decode(msg.data)["payload"].get("signalId"))

    kinds_seen: set[str] = set()

    def other_seen(fut: asyncio.Future[int]) -> bool:
        return ("fill" if fut is fill else "shadow") in kinds_seen

    shadow_h = HdrHistogram(1, 60_000_000_000, 3)
    fill_h = HdrHistogram(1, 60_000_000_000, 3)
    timeouts = 0
    consecutive = 0
    tag = uuid.uuid4().hex[:6]
    subject = place_intent_subject("paper", "BTC/USDT")
    loop = asyncio.get_running_loop()
    try:
        await nc.subscribe(SHADOW_FILLS, cb=on_shadow)
        await nc.subscribe(FILLS, cb=on_fill)
        await nc.flush()
        for i in range(warmup + n):
            sid = f"nb-{tag}-{i}"
            shadow: asyncio.Future[int] = loop.create_future()
            fill: asyncio.Future[int] = loop.create_future()
            shadow_waiting[sid], fill_waiting[sid] = shadow, fill
            data = signed_intent(sid, secret)
            t0 = time.perf_counter_ns()
            await nc.publish(subject, data)  # TITAN_CMD captures it; the bridge pulls it
            try:
                await asyncio.wait({shadow, fill}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
                other = fill if shadow.done() else shadow
                # The second event: waited for once this kind has been seen; looked for on the
                # first intents only (an engine may not emit shadow fills for NATS intents).
                seen = (fill_h if other is fill else shadow_h).get_total_count() > 0 or other_seen(other)
                if (shadow.done() or fill.done()) and not other.done() and (seen or i < DISCOVERY):
                    await asyncio.wait({other}, timeout=timeout_s if seen else 0.2)
            finally:
                shadow_waiting.pop(sid, None)
                fill_waiting.pop(sid, None)
            if not shadow.done() and not fill.done():
                timeouts += 1
                consecutive += 1
                if consecutive >= GIVE_UP_AFTER:
                    break
                continue
            consecutive = 0
            kinds_seen.update(k for k, f in (("shadow", shadow), ("fill", fill)) if f.done())
            if i < warmup:
                continue
            if shadow.done():
                shadow_h.record_value(max(1, shadow.result() - t0))
            if fill.done():
                fill_h.record_value(max(1, fill.result() - t0))
    finally:
        await nc.drain()
    headline = shadow_h if shadow_h.get_total_count() else fill_h
    result: dict[str, Any] = {
        "path": "nats: publish signed intent → event received",
        "measured_to": "shadow_fill" if headline is shadow_h else "fill",
        "timeouts": timeouts,
    }
    result.update(_summary(headline))
    result["shadow_fill"] = _summary(shadow_h)
    result["fill"] = _summary(fill_h)
    if consecutive >= GIVE_UP_AFTER:
        result["error"] = f"no fill or shadow fill within {timeout_s}s for {GIVE_UP_AFTER} intents in a row"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--intents", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = start_engine(Path(tmp))
        try:
            result = asyncio.run(run(engine, args.intents, args.warmup))
        finally:
            engine.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
