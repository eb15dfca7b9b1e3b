"""Start and stop a real engine (`titan run`) in a subprocess: used by the integration tests and bench/."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECRET = "integration-test-secret"
PAPER_POLICY = Path(__file__).resolve().parent.parent / "config" / "risk_policy.paper.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def _die_with_parent() -> None:
    """In the engine's supervisor: get SIGTERM (a clean stop) if the test process that started it
    dies without stopping it (killed by an outer timeout), so no engine outlives its test."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class Engine:
    proc: subprocess.Popen[bytes]
    instance: str
    socket_path: str
    http_port: int
    run_dir: Path
    log_path: Path

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except OSError:
            return 0, {}

    def pids(self) -> dict[str, int]:
        _, body = self.health()
        return {name: p["pid"] for name, p in body.get("processes", {}).items()}

    @property
    def nats_url(self) -> str:
        _, body = self.health()
        return str(body["nats"]["url"])

    def shm_leftovers(self) -> list[str]:
        return [n for n in os.listdir("/dev/shm") if n.startswith(self.instance)]

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def write_config(tmp: Path, instance: str, extra: str = "", log_level: str = "INFO") -> Path:
    cfg = tmp / "engine.toml"
    cfg.write_text(
        f"""
[engine]
run_dir = "{tmp / "run"}"
instance = "{instance}"
log_level = "{log_level}"

[ingress]
socket_path = "{tmp / "titan.sock"}"
hmac_secret = "{SECRET}"

[http]
port = {free_port()}

[marketdata]
sim_rate_hz = 50

[execution]
armed_at_start = true

[risk]
policy_path = "{PAPER_POLICY}"
brain_heartbeat_required = false  # no Brain heartbeats reach a test engine, even on an external NATS
{extra}
"""
    )
    return cfg


def start_engine(
    tmp: Path,
    extra: str = "",
    ready_timeout: float = 60.0,
    log_level: str = "INFO",
    env_overrides: dict[str, str] | None = None,
) -> Engine:
    """Start ``titan run`` on a fresh config under ``tmp``; ``extra`` TOML is appended to the file
    (new tables only), ``env_overrides`` (e.g. ``TITAN__ENGINE__START_SIM``) change existing keys."""
    instance = f"tt{uuid.uuid4().hex[:8]}"
    cfg_path = write_config(tmp, instance, extra, log_level)
    text = cfg_path.read_text()
    port = int(text.split("[http]")[1].split("port = ")[1].split()[0])
    log_path = tmp / "engine.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN", "NATS_", "PORT"))}
    env.update(env_overrides or {})
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the engine's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "titan.cli", "--config", str(cfg_path), "run", "--nats-port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    engine = Engine(proc, instance, str(tmp / "titan.sock"), port, tmp / "run", log_path)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"engine exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        code, _ = engine.health()
        return code == 200

    try:
        eventually(ready, timeout=ready_timeout, interval=0.05)
    except BaseException:
        engine.stop()
        raise
    return engine
