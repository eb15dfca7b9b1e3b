"""The NATS path: signed intent published on NATS → shadow fill received (upstream's shadow-fill bench).

Closed loop, one intent at a time, on a running engine: publish a signed envelope on
``titan.cmd.execution.place.v1.paper.main.BTC_USDT`` and wait for the shadow fill carrying its
``signal_id`` on ``titan.evt.execution.shadow_fill.v1.>``. The path is producer → NATS → TITAN_CMD
→ bridge (pull consumer, HMAC, rows 3–7) → command ring → core (journal, rows 0–2/8–10) → event ring
→ bridge (spool) → NATS → consumer. ``bench/run.py`` calls :func:`run`; ``python -m bench.nats_path``
starts its own engine. Latencies in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
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
    """Publish ``warmup + n`` signed intents one at a time; latency to their shadow fill (µs)."""
    nc = await nats.connect(engine.nats_url)
    waiting: dict[str, asyncio.Future[int]] = {}

    async def on_shadow(msg: Msg) -> None:
        t = time.perf_counter_ns()
        try:
            sid = msgspec.json.decode(msg.data).get("signal_id")
        except msgspec.DecodeError:
            return
        fut = waiting.get(sid) if isinstance(sid, str) else None
        if fut is not None and not fut.done():
            fut.set_result(t)

    hist = HdrHistogram(1, 60_000_000_000, 3)
    timeouts = 0
    consecutive = 0
    tag = uuid.uuid4().hex[:6]
    subject = place_intent_subject("paper", "BTC/USDT")
    try:
        await nc.subscribe(SHADOW_FILLS, cb=on_shadow)
        await nc.flush()
        for i in range(warmup + n):
            sid = f"nb-{tag}-{i}"
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            waiting[sid] = fut
            data = signed_intent(sid, secret)
            t0 = time.perf_counter_ns()
            await nc.publish(subject, data)  # TITAN_CMD captures it; the bridge pulls it
            try:
                t1 = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:
                timeouts += 1
                consecutive += 1
                if consecutive >= GIVE_UP_AFTER:
                    break
                continue
            finally:
                waiting.pop(sid, None)
            consecutive = 0
            if i >= warmup:
                hist.record_value(max(1, t1 - t0))
    finally:
        await nc.drain()
    result: dict[str, Any] = {
        "path": "nats: publish signed intent → shadow fill received",
        "timeouts": timeouts,
    }
    result.update(_summary(hist))
    if consecutive >= GIVE_UP_AFTER:
        result["error"] = f"no shadow fill within {timeout_s}s for {GIVE_UP_AFTER} intents in a row"
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
