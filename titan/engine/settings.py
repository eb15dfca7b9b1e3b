"""Engine settings: everything core's logic is configured with, resolved once from the config."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from titan.config import Config, brain_heartbeat_required
from titan.risk.checks import CheckConfig, StalenessConfig
from titan.risk.policy import RiskPolicy, load_policy
from titan.routing.router import DEFAULT_FALLBACK, InstrumentMeta, RoutingConfig, SourceRouting

CONFIG_DIR: Final = Path(__file__).resolve().parent.parent.parent / "config"
DEFAULT_POLICY: Final = CONFIG_DIR / "risk_policy.json"
# The paper/simulator demo runs long one-sided bursts (tests, `make bench`): its policy has the
# default's shape with limits that do not stop a demo; live venues always use the reviewed default.


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True):
    venues: tuple[str, ...]  # registered venues (a gateway each)
    instruments: dict[str, dict[str, InstrumentMeta]]  # canonical symbol → venue → metadata
    policy: RiskPolicy
    policy_document: str  # the policy file's text (journaled with updates)
    checks: CheckConfig = msgspec.field(default_factory=CheckConfig)
    price_sources: dict[str, str] = {}  # venue → ticker-table venue (paper → its price source)
    account: str = "main"
    initial_cash: Decimal | None = None  # paper: initial balance booked at first start
    armed_at_start: bool = False
    prepare_ttl_ms: int = 10_000
    prepare_sweep_ms: int = 5_000
    confirm_reply_deadline_ms: int = 750
    sizing: str = "legacy"
    fixed_notional: Decimal = Decimal(100)
    shadow_fills: bool = True
    truth_interval_ms: int = 5_000
    service: str = "titan-execution-rs"
    instance: str = "titan"
    version: str = "0.1.0"
    drift_latency_budget_ms: int = 2_000
    drift_spread_bps: Decimal = Decimal(20)
    drift_action: str = "alert"  # alert | defensive | halt
    reconcile_venues: frozenset[str] = frozenset()  # venues queried at start (paper's truth is the shadow)
    reconcile_start_timeout_ms: int = 60_000
    reconcile_interval_ms: int = 60_000
    reconcile_retry_ms: int = 2_000
    heartbeat_required: bool = False
    heartbeat_timeout_ms: int = 5_000
    daily_loss_net: bool = True
    risk_state_events: str = "accept"  # accept | escalate_only
    journal_fsync_ms: int = 5


def policy_path_for(cfg: Config) -> Path:
    """``risk.policy_path``, else env ``RISK_POLICY_PATH``, else ``config/risk_policy.json``."""
    if cfg.risk.policy_path:
        return cfg.resolve_path(cfg.risk.policy_path)
    env = os.environ.get("RISK_POLICY_PATH")
    if env:
        return Path(env)
    return DEFAULT_POLICY


def settings_from_config(cfg: Config) -> EngineSettings:
    venues = tuple(cfg.venues_enabled())
    paper = cfg.venues.paper
    instruments: dict[str, dict[str, InstrumentMeta]] = {}
    for venue in venues:
        # A real venue's own rows (venues.<v>.instruments) where configured; the paper rows stand in
        # for the others (the gateway still checks every order against the venue's live metadata).
        rows = dict(paper.instruments)
        if venue != "paper":
            rows.update(getattr(cfg.venues, venue).instruments)
        for sym, inst in rows.items():
            instruments.setdefault(sym, {})[venue] = InstrumentMeta(
                venue=venue,
                symbol=sym,
                tick_size=Decimal(inst.tick_size),
                lot_step=Decimal(inst.lot_step),
                min_qty=Decimal(inst.min_qty),
                min_notional=Decimal(inst.min_notional),
            )
    path = policy_path_for(cfg)
    policy = load_policy(path)
    risk = cfg.risk
    routing = cfg.routing
    staleness = StalenessConfig(
        default_ms=risk.staleness_default_ms,
        per_venue_ms={
            **{
                v: ms
                for v, sec in (
                    ("mexc", cfg.venues.mexc),
                    ("bybit", cfg.venues.bybit),
                    ("binance", cfg.venues.binance),
                )
                if (ms := sec.staleness_ms) is not None
            },
            **risk.staleness_ms,
        },
        paper_price_source=paper.price_source,
    )
    fallback = {src: (*vs, "paper") for src, vs in DEFAULT_FALLBACK.items()}
    routing_cfg = RoutingConfig(
        fanout=routing.fanout,
        weights={k: Decimal(str(v)) for k, v in (routing.weights or {}).items()},
        per_source={
            k: SourceRouting(
                fanout=v.fanout,
                weights=None if v.weights is None else {n: Decimal(str(w)) for n, w in v.weights.items()},
            )
            for k, v in routing.per_source.items()
        },
        fallback=fallback,
        default_fallback=("binance", "paper"),
    )
    checks = CheckConfig(
        routing=routing_cfg,
        staleness=staleness,
        emergency_allow_reduce_only=risk.emergency_allow_reduce_only,
        freshness_ms=cfg.execution.freshness_threshold_ms,
    )
    nats = cfg.nats
    return EngineSettings(
        venues=venues,
        instruments=instruments,
        policy=policy,
        policy_document=path.read_text(),
        checks=checks,
        price_sources={"paper": paper.price_source},
        initial_cash=Decimal(paper.initial_balance) if "paper" in venues else None,
        armed_at_start=cfg.execution.armed_at_start,
        prepare_ttl_ms=cfg.fastpath.prepare_ttl_ms,
        prepare_sweep_ms=cfg.fastpath.prepare_sweep_ms,
        confirm_reply_deadline_ms=cfg.fastpath.confirm_reply_deadline_ms,
        sizing=cfg.fastpath.sizing,
        fixed_notional=Decimal(cfg.fastpath.fixed_notional_usd),
        shadow_fills=cfg.shadow_fills.enabled,
        service=nats.service,
        instance=cfg.engine.instance,
        reconcile_venues=frozenset(v for v in venues if v != "paper"),
        reconcile_start_timeout_ms=cfg.reconcile.start_timeout_s * 1000,
        reconcile_interval_ms=cfg.reconcile.interval_s * 1000,
        heartbeat_required=brain_heartbeat_required(cfg)[0],
        heartbeat_timeout_ms=risk.brain_heartbeat_timeout_ms,
        drift_action=cfg.drift.action,
        journal_fsync_ms=cfg.journal.fsync_ms,
    )
