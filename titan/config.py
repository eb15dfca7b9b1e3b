"""Typed configuration: one TOML file, every key overridable from the environment.

Precedence, lowest first: the struct defaults below, the TOML file, the original service's
environment variables (``TITAN_HMAC_SECRET``, ``TITAN_IPC_SOCKET``, ``NATS_URL``, ``PORT``,
``LOG_LEVEL`` …), then generic overrides ``TITAN__<SECTION>__<KEY>=value`` (value parsed as TOML
when it parses, else taken as a string). Loading validates everything and raises
:class:`ConfigError` with one line per problem.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from titan.venues.sim.config import SimConfig

DEFAULT_SOCKET_PATH = "/tmp/titan-ipc.sock"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names every offending key."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class EngineSection(_Section):
    run_dir: str = "var/run"  # journal, state files, embedded NATS data; relative to the config file's parent
    instance: str = "titan"  # prefix of shared-memory names
    log_level: str = "INFO"
    log_json: bool = False
    start_sim: bool = False  # run the local venue simulator (titan/venues/sim) under the supervisor


class IngressSection(_Section):
    socket_path: str = ""  # empty: TITAN_IPC_SOCKET, else IPC_SOCKET_PATH, else /tmp/titan-ipc.sock
    hmac_secret: str = ""  # empty: TITAN_HMAC_SECRET, else HMAC_SECRET, else hmac_secret_file
    hmac_secret_file: str = ""
    insecure_dev: bool = False  # allow a built-in development secret (printed as a warning)
    allow_empty_secret: bool = False  # tests only (fastpath.md §6)
    max_connections: int = 32
    max_frame_bytes: int = 65536
    replay_window_ms: int = 5000
    replay_cache_entries: int = 262144
    push_reports: bool = False
    max_output_bytes: int = 1 << 20  # a connection that does not read its replies is closed past this
    core_reply_timeout_ms: int = 2000  # no reply from core by then: ENGINE_NOT_READY


class FastPathSection(_Section):
    prepare_ttl_ms: int = 10000
    prepare_sweep_ms: int = 5000
    confirm_reply_deadline_ms: int = 750
    sizing: Literal["legacy", "fixed_notional"] = "legacy"
    fixed_notional_usd: str = "100"


class HttpSection(_Section):
    port: int = 3002
    bind: str = "127.0.0.1"  # loopback by default; "0.0.0.0" to serve an orchestrator's probes
    api_key: str = ""  # x-api-key for /status and /positions; env TITAN_EXECUTION_API_KEY


class NatsSection(_Section):
    url: str = ""  # empty: the embedded server started by the supervisor (unless embedded = false)
    embedded: bool = True  # false: url must name an external server ("NATS URL cannot be empty")
    user: str = ""
    password: str = ""
    token: str = ""
    producer: str = "titan-execution-rs"
    service: str = "titan-execution-rs"
    connect_timeout_s: float = 2.0
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_hostname: str = ""
    # Scale-out (README "Scaling out"): consume only titan.cmd.execution.place.v1.{venue|*}.{account}.*
    account: str | None = None
    venue: str | None = None
    manage_streams: bool = False  # update existing streams whose config differs (default: warn only)
    operator_auth: Literal["required", "off"] = "required"
    hmac_keys: dict[str, str] = msgspec.field(default_factory=dict)  # key_id -> secret, for rotation
    hmac_timestamp_tolerance_s: int | None = None  # empty: HMAC_TIMESTAMP_TOLERANCE, else 300
    accept_serde_number_forms: bool = False
    spool_max_bytes: int = 256 << 20  # on-disk event spool while NATS is away


class MarketDataSection(_Section):
    mode: Literal["sim", "venues"] = "sim"
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTC/USDT", "ETH/USDT", "SOL/USDT"])
    venues: list[str] = msgspec.field(default_factory=lambda: ["bybit", "binance", "mexc"])  # mode "venues"
    silence_ms: int = 5000  # a feed silent this long is reconnected and resubscribed
    first_data_ms: int = 3000  # no data this long after subscribing: alarm
    sim_venue: str = "sim"  # venue name the simulated price source writes its rows under
    sim_seed: int = 42
    sim_rate_hz: float = 20.0  # updates per second per symbol
    sim_prices: dict[str, str] = msgspec.field(
        default_factory=lambda: {"BTC/USDT": "50000", "ETH/USDT": "3000", "SOL/USDT": "150"}
    )
    sim_spread_bps: str = "1"
    sim_volatility_bps: str = "2"  # per-update standard deviation of the random walk


class InstrumentSection(_Section):
    tick_size: str = "0.01"
    lot_step: str = "0.001"
    min_qty: str = "0.001"
    min_notional: str = "0"


class PaperSection(_Section):
    enabled: bool = True
    price_source: str = "sim"  # the ticker-table venue whose quotes paper fills against
    initial_balance: str = "10000"
    taker_fee: str = "0.0005"
    maker_fee: str = "0.0002"
    slippage_bps: str = "0"
    ack_latency_ms: float = 0.0  # order arrival → matched (ACK, fill or reject) in the paper book
    fill_latency_ms: float = 0.0  # a resting order seen crossed → its FILL reported
    poll_ms: float = 2.0  # while orders rest, re-check the quotes at least this often (no busy spin)
    instruments: dict[str, InstrumentSection] = msgspec.field(
        default_factory=lambda: {
            "BTC/USDT": InstrumentSection(tick_size="0.1", lot_step="0.001", min_qty="0.001"),
            "ETH/USDT": InstrumentSection(tick_size="0.01", lot_step="0.01", min_qty="0.01"),
            "SOL/USDT": InstrumentSection(tick_size="0.001", lot_step="0.1", min_qty="0.1"),
        }
    )


class VenueSection(_Section):
    """A real venue (Bybit v5 linear, Binance USD-M, MEXC contract) or its simulator."""

    enabled: bool = False
    account: str = "main"
    api_key: str = ""  # env BYBIT_API_KEY, BINANCE_API_KEY, MEXC_API_KEY
    api_secret: str = ""  # env BYBIT_API_SECRET, BINANCE_API_SECRET, MEXC_API_SECRET
    rest_url: str = ""
    ws_public_url: str = ""
    ws_private_url: str = ""
    recv_window_ms: int = 5000
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    write_timeout_s: float = 5.0
    pool_timeout_s: float = 1.0
    staleness_ms: int | None = None  # None: the venue's default (risk-and-state.md §7: MEXC 1500, else 200)
    leverage: int = 10
    dcp_window_s: int = 0  # Bybit: disconnected-cancel-all window (0: DCP not switched on)
    countdown_ms: int = 60000  # Binance: countdownCancelAll dead-man switch (0: off)
    # Canonical symbol → tick/lot/minimums on this venue (empty: the paper rows stand in).
    instruments: dict[str, InstrumentSection] = msgspec.field(default_factory=dict)


# Each venue's defaults, applied to whatever its section leaves empty (a partial [venues.mexc] in a
# file or from the environment must not lose MEXC's 1500 ms staleness or the real URLs).
VENUE_DEFAULTS: dict[str, dict[str, Any]] = {
    "bybit": {
        "rest_url": "https://api.bybit.com",
        "ws_public_url": "wss://stream.bybit.com/v5/public/linear",
        "ws_private_url": "wss://stream.bybit.com/v5/private",
        "staleness_ms": 200,
    },
    "binance": {
        "rest_url": "https://fapi.binance.com",
        "ws_public_url": "wss://fstream.binance.com/public",
        "ws_private_url": "wss://fstream.binance.com/private",
        "staleness_ms": 200,
    },
    "mexc": {
        "rest_url": "https://api.mexc.com",
        "ws_public_url": "wss://contract.mexc.com/edge",
        "ws_private_url": "wss://contract.mexc.com/edge",
        "staleness_ms": 1500,  # push.ticker arrives once a second
    },
}


class VenuesSection(_Section):
    paper: PaperSection = msgspec.field(default_factory=PaperSection)
    bybit: VenueSection = msgspec.field(default_factory=VenueSection)
    binance: VenueSection = msgspec.field(default_factory=VenueSection)
    mexc: VenueSection = msgspec.field(default_factory=VenueSection)

    def fill_defaults(self) -> None:
        for name, defaults in VENUE_DEFAULTS.items():
            section = getattr(self, name)
            for key, value in defaults.items():
                if getattr(section, key) in ("", None):
                    setattr(section, key, value)


class ExecutionSection(_Section):
    armed_at_start: bool = False  # live configs start disarmed; the paper default config arms explicitly
    freshness_threshold_ms: int = 5000


class ShmSection(_Section):
    ring_slots: int = 8192
    slot_size: int = 1024
    spin_us: float = 4.0  # consumer spin before blocking (measured: keep ≤ 4 µs on 2 cores)


# Processes the supervisor starts, as `supervisor.nice` names them ("nats": the embedded nats-server).
NICE_PROCESSES = (
    "ingress",
    "marketdata",
    "core",
    "bridge",
    "sim",
    "nats",
    "gateway.paper",
    "gateway.bybit",
    "gateway.binance",
    "gateway.mexc",
)
# Finish work in flight before admitting more: under overload intake (ingress) yields first, and the
# bridge, nats-server and marketdata stay ahead of it (a starved bridge filled its spool and stalled core).
DEFAULT_NICE = {"core": -5, "gateway.*": -5, "marketdata": -3, "bridge": -3, "nats": -3, "ingress": -1}


def nice_for(table: Mapping[str, int], name: str) -> int | None:
    """The niceness ``supervisor.nice`` gives ``name``: its exact key, else the first matching pattern."""
    if name in table:
        return table[name]
    for pattern, value in table.items():
        if fnmatch.fnmatchcase(name, pattern):
            return value
    return None


class SupervisorSection(_Section):
    restart_backoff_ms: list[int] = msgspec.field(default_factory=lambda: [50, 200, 1000, 5000])
    stop_timeout_s: float = 5.0  # the whole graceful drain; a child still running after it is killed
    heartbeat_timeout_ms: int = 3000
    crash_loop_max_restarts: int = 5  # more restarts than this within the window: give up and halt
    crash_loop_window_s: float = 60.0
    sim_ready_timeout_s: float = 15.0  # wait for the venue simulator's ports file
    # Scheduling priority (nice, -20..19; lower runs first) per process, set by the supervisor when it
    # starts the process; keys are names from NICE_PROCESSES or fnmatch patterns ("gateway.*"); an
    # exact name wins over a pattern; a process no key names keeps the supervisor's own niceness.
    nice: dict[str, int] = msgspec.field(default_factory=lambda: dict(DEFAULT_NICE))


class RiskSection(_Section):
    """Pre-trade risk (risk-and-state.md §2, §5, §7)."""

    policy_path: str = ""  # empty: env RISK_POLICY_PATH, else config/risk_policy.json
    staleness_default_ms: int = 200
    # Per venue; overrides venues.<v>.staleness_ms.
    staleness_ms: dict[str, int] = msgspec.field(default_factory=dict)
    emergency_allow_reduce_only: bool = True
    # Unset: true on an external NATS server (nats.url), false on the embedded one (no Brain there);
    # see brain_heartbeat_required() below.
    brain_heartbeat_required: bool | None = None
    brain_heartbeat_timeout_ms: int = 5000


class SourceRoutingSection(_Section):
    fanout: bool | None = None
    weights: dict[str, float] | None = None


class RoutingSection(_Section):
    """Weighted router (risk-and-state.md §11)."""

    fanout: bool = False
    weights: dict[str, float] | None = None  # unset: no global weights (the fallback list routes)
    per_source: dict[str, SourceRoutingSection] = msgspec.field(default_factory=dict)


class ReconcileSection(_Section):
    """Reconciliation with the venues (risk-and-state.md §17)."""

    start_timeout_s: int = 60
    interval_s: int = 60
    cancel_foreign: bool = False  # true: open orders without our client-id prefix are cancelled
    not_found_probes: int = 3  # "not found" answers (over >= 5 s) before an UNKNOWN order is terminal


class JournalSection(_Section):
    fsync_ms: int = 5  # group fsync period of core's journal


class DriftSection(_Section):
    action: Literal["alert", "defensive", "halt"] = "alert"


class ShadowFillSection(_Section):
    enabled: bool = True


class Config(_Section):
    engine: EngineSection = msgspec.field(default_factory=EngineSection)
    ingress: IngressSection = msgspec.field(default_factory=IngressSection)
    fastpath: FastPathSection = msgspec.field(default_factory=FastPathSection)
    http: HttpSection = msgspec.field(default_factory=HttpSection)
    nats: NatsSection = msgspec.field(default_factory=NatsSection)
    marketdata: MarketDataSection = msgspec.field(default_factory=MarketDataSection)
    venues: VenuesSection = msgspec.field(default_factory=VenuesSection)
    execution: ExecutionSection = msgspec.field(default_factory=ExecutionSection)
    shm: ShmSection = msgspec.field(default_factory=ShmSection)
    supervisor: SupervisorSection = msgspec.field(default_factory=SupervisorSection)
    shadow_fills: ShadowFillSection = msgspec.field(default_factory=ShadowFillSection)
    risk: RiskSection = msgspec.field(default_factory=RiskSection)
    routing: RoutingSection = msgspec.field(default_factory=RoutingSection)
    reconcile: ReconcileSection = msgspec.field(default_factory=ReconcileSection)
    journal: JournalSection = msgspec.field(default_factory=JournalSection)
    drift: DriftSection = msgspec.field(default_factory=DriftSection)
    # The venue simulator's own settings (titan.venues.sim.config.SimConfig); started by the
    # supervisor when engine.start_sim is true.
    sim: SimConfig = msgspec.field(default_factory=SimConfig)
    source_path: str = ""  # where this config was read from (set by load_config)

    # --- derived values -------------------------------------------------------------------

    def resolve_path(self, value: str) -> Path:
        """A path from the config: relative ones are relative to the project root (the config
        file's parent directory's parent, i.e. where ``config/`` lives)."""
        p = Path(value)
        if not p.is_absolute() and self.source_path:
            p = Path(self.source_path).resolve().parent.parent / p
        return p.resolve()

    def run_dir(self) -> Path:
        return self.resolve_path(self.engine.run_dir)

    def venues_enabled(self) -> list[str]:
        """Order gateways to run, in a fixed order."""
        v = self.venues
        pairs = (("bybit", v.bybit), ("binance", v.binance), ("mexc", v.mexc))
        real = [name for name, sec in pairs if sec.enabled]
        return real + (["paper"] if v.paper.enabled else [])

    def ticker_pairs(self) -> list[tuple[str, str]]:
        """(venue, canonical symbol) rows of the ticker table, identical in every process."""
        md = self.marketdata
        venues = [md.sim_venue] if md.mode == "sim" else md.venues
        return [(v, s) for v in venues for s in md.symbols]


# Environment variables of the original service, mapped onto config keys (a path of table names).
LEGACY_ENV: dict[str, tuple[str, ...]] = {
    "TITAN_IPC_SOCKET": ("ingress", "socket_path"),
    "IPC_SOCKET_PATH": ("ingress", "socket_path"),
    "TITAN_HMAC_SECRET": ("ingress", "hmac_secret"),
    "HMAC_SECRET": ("ingress", "hmac_secret"),
    "NATS_URL": ("nats", "url"),
    "NATS_USER": ("nats", "user"),
    "NATS_PASS": ("nats", "password"),
    "PORT": ("http", "port"),
    "LOG_LEVEL": ("engine", "log_level"),
    "TITAN_EXECUTION_API_KEY": ("http", "api_key"),
    "BYBIT_API_KEY": ("venues", "bybit", "api_key"),
    "BYBIT_API_SECRET": ("venues", "bybit", "api_secret"),
    "BINANCE_API_KEY": ("venues", "binance", "api_key"),
    "BINANCE_API_SECRET": ("venues", "binance", "api_secret"),
    "MEXC_API_KEY": ("venues", "mexc", "api_key"),
    "MEXC_API_SECRET": ("venues", "mexc", "api_secret"),
}
# When two legacy variables name the same key, the first listed wins (fastpath.md §1, §6).
_LEGACY_PRIORITY = ["TITAN_IPC_SOCKET", "IPC_SOCKET_PATH", "TITAN_HMAC_SECRET", "HMAC_SECRET"]
# Keys a file value wins over the legacy variable for (fastpath.md §1, §6); the others override.
_FILE_WINS = {("ingress", "socket_path"), ("ingress", "hmac_secret")}
# Config keys holding secrets: masked by `titan config check`, never logged.
SECRET_KEYS = frozenset({"hmac_secret", "api_key", "api_secret", "secret", "password", "token"})
MASK = "********"


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _node(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = doc
    for part in path:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: expected a table, got {child!r}")
        node = child
    return node


def _apply_env(doc: dict[str, Any], env: Mapping[str, str]) -> None:
    seen: set[tuple[str, ...]] = set()
    names = _LEGACY_PRIORITY + [n for n in LEGACY_ENV if n not in _LEGACY_PRIORITY]
    for name in names:
        value = env.get(name)
        target = LEGACY_ENV[name]
        if name == "NATS_URL" and value is not None and not value.strip():
            # Explicitly set to nothing: an external server was meant but not named (R50).
            _node(doc, ("nats",))["url"] = ""
            _node(doc, ("nats",))["embedded"] = False
            seen.add(target)
            continue
        if value is None or value == "" or target in seen:
            continue
        node = _node(doc, target[:-1])
        key = target[-1]
        if target in _FILE_WINS and node.get(key):
            seen.add(target)
            continue
        node[key] = _parse_env_value(value) if key == "port" else value
        seen.add(target)
    for name, value in env.items():
        if not name.startswith("TITAN__"):
            continue
        parts = name[len("TITAN__") :].lower().split("__")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"{name}: expected TITAN__<SECTION>__<KEY> (or nested TITAN__A__B__KEY)")
        _node(doc, tuple(parts[:-1]))[parts[-1]] = _parse_env_value(value)


# Venues an order gateway exists for (routing weights may name only these, and only enabled ones).
ROUTABLE_VENUES = ("bybit", "binance", "mexc", "paper")


def _routing_problems(cfg: Config) -> list[str]:
    """R50: routing weights that would silently drop or reroute flow (upstream's messages first).

    ``'{n}'`` is ``default`` for ``routing.weights`` and the source for ``routing.per_source.<source>``
    (upstream's names); each message ends with the key. The fallback lists are not configurable.
    """
    problems: list[str] = []
    enabled = cfg.venues_enabled()
    tables = [("default", "routing.weights", cfg.routing.weights)]
    tables += [
        (src, f"routing.per_source.{src}.weights", r.weights) for src, r in cfg.routing.per_source.items()
    ]
    for name, key, weights in tables:
        if weights is None:
            continue
        if not weights:
            problems.append(f"Routing weights for '{name}' cannot be empty ({key})")
        for venue, weight in weights.items():
            if not math.isfinite(weight) or weight <= 0:
                problems.append(
                    f"Routing weight for '{name}' must be > 0 (exchange: {venue}) ({key}.{venue} = {weight})"
                )
            if venue not in ROUTABLE_VENUES:
                problems.append(
                    f"Routing weights for '{name}' name unknown venue '{venue}'"
                    f" ({key}.{venue}; venues: {', '.join(ROUTABLE_VENUES)})"
                )
            elif venue not in enabled:
                problems.append(
                    f"Routing weights for '{name}' name venue '{venue}', which is not enabled"
                    f" ({key}.{venue}; venues.{venue}.enabled = false)"
                )
    return problems


def brain_heartbeat_required(cfg: Config) -> tuple[bool, str]:
    """``risk.brain_heartbeat_required`` in effect, and why (risk-and-state.md §5).

    An explicit value wins. Unset: true when the engine uses an external NATS server (a configured
    ``nats.url``: where a Brain publishes ``titan.sys.heartbeat.v1.{service}``), false with the
    embedded server, which no Brain is attached to (requiring it there would turn every local engine
    Defensive after ``brain_heartbeat_timeout_ms``).
    """
    explicit = cfg.risk.brain_heartbeat_required
    if explicit is not None:
        return explicit, "set explicitly"
    if cfg.nats.url.strip():
        return True, "unset: the engine uses an external NATS server (nats.url), where the Brain runs"
    return False, "unset: the embedded NATS server has no Brain attached"


def resolved_env(cfg: Config) -> dict[str, str]:
    """Overrides the supervisor gives its children so they resolve what only it can know.

    Children see the embedded server's address in ``NATS_URL``; they get the heartbeat rule
    resolved here (from the configuration as the operator wrote it) instead of guessing.
    """
    required, _ = brain_heartbeat_required(cfg)
    return {"TITAN__RISK__BRAIN_HEARTBEAT_REQUIRED": "true" if required else "false"}


def _validate(cfg: Config) -> list[str]:
    problems: list[str] = _routing_problems(cfg)
    for key, value in cfg.supervisor.nice.items():
        if not -20 <= value <= 19:
            problems.append(f"supervisor.nice.{key} must be -20..19 (got {value})")
        if not any(fnmatch.fnmatchcase(name, key) for name in NICE_PROCESSES):
            problems.append(f"supervisor.nice: {key!r} names no process ({', '.join(NICE_PROCESSES)})")
    sh = cfg.shm
    if sh.ring_slots < 2 or sh.ring_slots & (sh.ring_slots - 1):
        problems.append(f"shm.ring_slots must be a power of two ≥ 2 (got {sh.ring_slots})")
    if sh.slot_size < 64 or sh.slot_size % 8:
        problems.append(f"shm.slot_size must be a multiple of 8 and ≥ 64 (got {sh.slot_size})")
    if not 0 < cfg.http.port < 65536:
        problems.append(f"http.port must be 1..65535 (got {cfg.http.port})")
    if cfg.ingress.max_connections < 1:
        problems.append("ingress.max_connections must be ≥ 1")
    if cfg.ingress.max_frame_bytes < 256:
        problems.append("ingress.max_frame_bytes must be ≥ 256")
    if not cfg.marketdata.symbols:
        problems.append("marketdata.symbols cannot be empty")
    for sym in cfg.marketdata.symbols:
        if sym not in cfg.marketdata.sim_prices and cfg.marketdata.mode == "sim":
            problems.append(f"marketdata.sim_prices has no starting price for {sym!r}")
    if cfg.venues.paper.enabled and cfg.venues.paper.price_source not in {v for v, _ in cfg.ticker_pairs()}:
        problems.append(
            f"venues.paper.price_source {cfg.venues.paper.price_source!r} is not a market-data venue"
        )
    paper = cfg.venues.paper
    if paper.ack_latency_ms < 0 or paper.fill_latency_ms < 0:
        problems.append("venues.paper.ack_latency_ms and fill_latency_ms must be ≥ 0")
    if paper.poll_ms <= 0:
        problems.append(f"venues.paper.poll_ms must be > 0 (got {paper.poll_ms})")
    if cfg.risk.brain_heartbeat_timeout_ms < 100:
        problems.append(
            f"risk.brain_heartbeat_timeout_ms must be ≥ 100 (got {cfg.risk.brain_heartbeat_timeout_ms})"
        )
    if cfg.reconcile.not_found_probes < 1:
        problems.append(f"reconcile.not_found_probes must be ≥ 1 (got {cfg.reconcile.not_found_probes})")
    if cfg.engine.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        problems.append(
            f"engine.log_level must be DEBUG/INFO/WARNING/ERROR/CRITICAL (got {cfg.engine.log_level})"
        )
    if not cfg.nats.embedded and not cfg.nats.url.strip():
        problems.append("NATS URL cannot be empty (nats.url / NATS_URL; or nats.embedded = true)")
    sup = cfg.supervisor
    if not sup.restart_backoff_ms or any(b < 0 for b in sup.restart_backoff_ms):
        problems.append("supervisor.restart_backoff_ms must be a non-empty list of delays ≥ 0")
    if sup.stop_timeout_s <= 0:
        problems.append(f"supervisor.stop_timeout_s must be > 0 (got {sup.stop_timeout_s})")
    if sup.crash_loop_max_restarts < 1:
        problems.append("supervisor.crash_loop_max_restarts must be ≥ 1")
    if sup.heartbeat_timeout_ms < 100:
        problems.append("supervisor.heartbeat_timeout_ms must be ≥ 100")
    for name in ("bybit", "binance", "mexc"):
        sec: VenueSection = getattr(cfg.venues, name)
        if sec.enabled and not cfg.engine.start_sim:
            if not sec.api_key:
                problems.append(f"Exchange '{name}' is enabled but API Key is missing")
            if not sec.api_secret:
                problems.append(f"Exchange '{name}' is enabled but API Secret is missing")
    return problems


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from ``env`` (default ``os.environ``) and validate a configuration."""
    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    source = ""
    if path:
        source = str(Path(path).resolve())
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    _apply_env(doc, env)
    doc["source_path"] = source
    try:
        cfg = msgspec.convert(doc, Config, str_keys=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path or '<defaults>'}: {exc}") from None
    cfg.venues.fill_defaults()
    problems = _validate(cfg)
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
    return cfg


def socket_path(cfg: Config) -> str:
    """fastpath.md §1: config, else TITAN_IPC_SOCKET, else IPC_SOCKET_PATH, else the client's default."""
    return cfg.ingress.socket_path or DEFAULT_SOCKET_PATH


DEV_SECRET = "titan-dev-insecure-secret"


def hmac_secret(cfg: Config) -> str:
    """The FastPath secret, failing closed (fastpath.md §6, issue #3). Never log the result."""
    if cfg.ingress.hmac_secret:
        return cfg.ingress.hmac_secret
    if cfg.ingress.hmac_secret_file:
        try:
            return Path(cfg.ingress.hmac_secret_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"ingress.hmac_secret_file: cannot read: {exc.strerror}") from None
    if cfg.ingress.insecure_dev:
        return DEV_SECRET
    if cfg.ingress.allow_empty_secret:
        return ""
    raise ConfigError(
        "no FastPath HMAC secret: set TITAN_HMAC_SECRET (or ingress.hmac_secret / ingress.hmac_secret_file),"
        " or ingress.insecure_dev = true for a local development engine"
    )


def _socket_is_live(path: str) -> bool:
    """True when something accepts connections on the Unix socket ``path`` (a running engine)."""
    import socket as _socket

    if not Path(path).is_socket():
        return False
    with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def preflight(cfg: Config) -> list[str]:
    """Start-time checks beyond the file's shape (R50): secrets present, socket not owned by a live engine.

    Returns one message per problem (never a secret's value).
    """
    problems: list[str] = []
    try:
        secret = hmac_secret(cfg)
        if not secret and not cfg.ingress.allow_empty_secret:
            problems.append(
                f"ingress.hmac_secret_file {cfg.ingress.hmac_secret_file!r} is empty: "
                "the FastPath HMAC secret cannot be empty"
            )
    except ConfigError as exc:
        problems.append(str(exc))
    path = socket_path(cfg)
    if _socket_is_live(path):
        problems.append(
            f"ingress.socket_path {path} is owned by a live engine"
            " (stop it, or point TITAN_IPC_SOCKET elsewhere)"
        )
    return problems


def _mask(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _mask(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v, key) for v in node]
    if key in SECRET_KEYS and node:
        return MASK
    return node


def masked(cfg: Config) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by ``********``."""
    raw = msgspec.to_builtins(cfg)
    assert isinstance(raw, dict)
    url = str(raw.get("nats", {}).get("url", ""))
    if "@" in url:  # nats://user:pass@host: keep the host only
        raw["nats"]["url"] = url.split("://", 1)[0] + "://" + MASK + "@" + url.rsplit("@", 1)[1]
    raw["risk"]["brain_heartbeat_required"] = brain_heartbeat_required(cfg)[0]  # the value in effect
    result: dict[str, Any] = _mask(raw)
    return result


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else '"' + k + '"'


def to_toml(doc: Mapping[str, Any], prefix: str = "") -> str:
    """Render nested plain data as TOML (tables for dicts of dicts, inline values otherwise)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for k, v in doc.items():
        if v is None:
            continue  # unset (TOML has no null): the key's default applies
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines)
    for k, v in tables:
        name = f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k)
        body = to_toml(v, name)
        out += f"\n\n[{name}]\n{body}" if body else f"\n\n[{name}]"
    return out.strip("\n")


def secret_values(cfg: Config) -> list[str]:
    """Every secret value in ``cfg`` (for log redaction); never print the result."""
    found: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif key in SECRET_KEYS and isinstance(node, str) and node:
            found.append(node)

    walk(msgspec.to_builtins(cfg))
    if cfg.ingress.hmac_secret_file:
        with contextlib.suppress(OSError):
            found.append(Path(cfg.ingress.hmac_secret_file).read_text().strip())
    url = cfg.nats.url
    if "@" in url and "://" in url:
        found.append(url.split("://", 1)[1].rsplit("@", 1)[0])
    # Longest first, so a secret containing another is masked whole; tiny values would mask noise.
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)
