"""What every engine process shares: the shared-memory layout, logging, and the child context.

The supervisor creates every segment named here and unlinks it at the end; children only
attach. A child learns where things are from two environment variables the supervisor sets:
``TITAN_CONFIG`` (the config file) and ``TITAN_SHM_PREFIX`` (the names of this engine run's
segments), so a restarted child attaches to the same rings and resumes at their cursors.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from titan.config import MASK, Config, load_config, secret_values
from titan.shm.board import ProcState, StatusBoard
from titan.shm.doorbell import Doorbell
from titan.shm.ring import Ring
from titan.shm.ticker import TickerIndex, TickerTable

ENV_CONFIG = "TITAN_CONFIG"
ENV_PREFIX = "TITAN_SHM_PREFIX"

INGRESS = "ingress"
MARKETDATA = "marketdata"
CORE = "core"
BRIDGE = "bridge"


def gateway_name(venue: str) -> str:
    return f"gateway.{venue}"


@dataclass(frozen=True)
class RingSpec:
    name: str
    producer: str
    consumer: str


@dataclass(frozen=True)
class Layout:
    """Names of every shared-memory object of one engine run."""

    prefix: str
    venues: tuple[str, ...]
    processes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        procs = (INGRESS, MARKETDATA, CORE, *(gateway_name(v) for v in self.venues), BRIDGE)
        object.__setattr__(self, "processes", procs)

    def ring(self, producer: str, consumer: str) -> str:
        return f"{self.prefix}-r-{producer}-{consumer}".replace(".", "_")

    def bell(self, consumer: str) -> str:
        return f"{self.prefix}-b-{consumer}".replace(".", "_")

    @property
    def ticker(self) -> str:
        return f"{self.prefix}-ticker"

    @property
    def board(self) -> str:
        return f"{self.prefix}-board"

    def rings(self) -> Iterator[RingSpec]:
        pairs = [(INGRESS, CORE), (CORE, INGRESS), (BRIDGE, CORE), (CORE, BRIDGE)]
        for v in self.venues:
            pairs += [(CORE, gateway_name(v)), (gateway_name(v), CORE)]
        for p, c in pairs:
            yield RingSpec(self.ring(p, c), p, c)

    def consumers(self) -> tuple[str, ...]:
        """Processes that own a doorbell (everything that reads a ring)."""
        return (INGRESS, CORE, *(gateway_name(v) for v in self.venues), BRIDGE)


def layout_for(cfg: Config, prefix: str) -> Layout:
    return Layout(prefix=prefix, venues=tuple(cfg.venues_enabled()))


class JsonLogFormatter(logging.Formatter):
    def __init__(self, proc: str) -> None:
        super().__init__()
        self.proc = proc

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "proc": self.proc,
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=True)


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter; replaces every configured secret value in the output with ``********``."""

    def __init__(self, inner: logging.Formatter, secrets: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        out = self.inner.format(record)
        for secret in self.secrets:
            if secret in out:
                out = out.replace(secret, MASK)
        return out


def setup_logging(
    proc: str, level: str, as_json: bool = False, secrets: Sequence[str] = ()
) -> logging.Logger:
    """Log lines on stderr named by process (JSON with ``as_json``), with ``secrets`` redacted."""
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        JsonLogFormatter(proc)
        if as_json
        else logging.Formatter(f"%(asctime)s {proc}[%(process)d] %(levelname)s %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner, secrets) if secrets else inner)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return logging.getLogger(f"titan.{proc}")


class ChildContext:
    """A child process's view of the engine: config, layout and attached shared memory."""

    def __init__(self, name: str, cfg: Config, prefix: str) -> None:
        self.name = name
        self.cfg = cfg
        self.layout = layout_for(cfg, prefix)
        self.board = StatusBoard.attach(self.layout.board)
        self.log = setup_logging(name, cfg.engine.log_level, cfg.engine.log_json, secret_values(cfg))
        self._opened: list[Ring | Doorbell | TickerTable | StatusBoard] = [self.board]

    @classmethod
    def from_env(cls, name: str) -> ChildContext:
        cfg = load_config(os.environ.get(ENV_CONFIG) or None)
        prefix = os.environ.get(ENV_PREFIX)
        if not prefix:
            raise SystemExit(f"{name}: {ENV_PREFIX} is not set (processes are started by `titan run`)")
        return cls(name, cfg, prefix)

    def ring_in(self, producer: str) -> Ring:
        r = Ring.attach(self.layout.ring(producer, self.name))
        self._opened.append(r)
        return r

    def ring_out(self, consumer: str) -> Ring:
        r = Ring.attach(self.layout.ring(self.name, consumer))
        self._opened.append(r)
        return r

    def bell(self, consumer: str | None = None) -> Doorbell:
        b = Doorbell.attach(self.layout.bell(consumer or self.name))
        self._opened.append(b)
        return b

    def ticker(self) -> tuple[TickerTable, TickerIndex]:
        t = TickerTable.attach(self.layout.ticker)
        self._opened.append(t)
        return t, TickerIndex(self.cfg.ticker_pairs())

    def beat(self) -> None:
        self.board.beat(self.name, time.monotonic_ns())

    def set_state(self, state: ProcState) -> None:
        self.board.set_state(self.name, state)
        self.beat()

    def is_ready(self, proc: str, max_age_ns: int) -> bool:
        st = self.board.read(proc)
        return st.state == ProcState.READY and time.monotonic_ns() - st.heartbeat_mono_ns <= max_age_ns

    def close(self) -> None:
        for obj in reversed(self._opened):
            obj.close()
        self._opened.clear()
