"""`titan`: run the engine, send FastPath signals by hand, and the other operator commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from titan.config import (
    ConfigError,
    brain_heartbeat_required,
    hmac_secret,
    load_config,
    masked,
    preflight,
    socket_path,
    to_toml,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "default.toml"


def _config_path(arg: str | None) -> str | None:
    if arg:
        return arg
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else None


def cmd_run(args: argparse.Namespace) -> int:
    from titan.procs.supervisor import run

    cfg = load_config(_config_path(args.config))
    return run(cfg, nats_port=args.nats_port)


async def _send(args: argparse.Namespace) -> int:
    from titan.client import FastPathClient

    cfg = load_config(_config_path(args.config))
    client = FastPathClient(
        args.socket or socket_path(cfg),
        hmac_secret(cfg),
        source=args.source,
        framing=args.framing,
        timeout=args.timeout,
    )
    await client.connect()
    try:
        t0 = time.perf_counter()
        if args.action == "ping":
            reply = await client.ping()
        elif args.action == "prepare":
            entry = args.entry
            reply = await client.prepare(
                args.signal_id,
                args.symbol,
                args.direction,
                entry[0],
                entry[-1],
                position_size=args.size,
                confidence=args.confidence,
                leverage=args.leverage,
                **({"velocity": args.velocity} if args.velocity is not None else {}),
            )
        elif args.action == "confirm":
            reply = await client.confirm(args.signal_id)
        else:
            reply = await client.abort(args.signal_id)
        elapsed_us = (time.perf_counter() - t0) * 1e6
    finally:
        await client.close()
    print(json.dumps(reply.to_dict() if hasattr(reply, "to_dict") else reply, sort_keys=True))
    print(f"round trip {elapsed_us:.0f} µs", file=sys.stderr)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    return asyncio.run(_send(args))


def cmd_config_check(args: argparse.Namespace) -> int:
    """Print the effective config (secrets masked); exit 2 with one line per problem."""
    path = _config_path(args.config)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"titan: {exc}", file=sys.stderr)
        return 2
    print(f"# effective configuration from {path or '<defaults>'} and the environment (secrets masked)")
    print(to_toml(masked(cfg)))
    required, why = brain_heartbeat_required(cfg)
    print(f"# risk.brain_heartbeat_required = {str(required).lower()}: {why}")
    problems = preflight(cfg)
    if problems:
        print("titan: cannot start:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 2
    print("# configuration OK", file=sys.stderr)
    return 0


def _http_base(args: argparse.Namespace) -> tuple[str, str]:
    cfg = load_config(_config_path(args.config))
    if args.url:
        return args.url.rstrip("/"), cfg.http.api_key
    host = cfg.http.bind if cfg.http.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{cfg.http.port}", cfg.http.api_key


def cmd_top(args: argparse.Namespace) -> int:
    from titan.top import render_once, run_live

    base, api_key = _http_base(args)
    if args.once:
        print(render_once(base, api_key, width=args.width), end="")
        return 0
    run_live(base, api_key, args.interval)
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from titan.events.watch import watch

    url = args.url
    if not url:
        cfg = load_config(_config_path(args.config))
        url = cfg.nats.url
        if not url:  # embedded server: ask the running engine where it is
            from titan.top import poll

            base, _ = _http_base(args)
            url = str(poll(base).health.get("nats", {}).get("url") or "nats://127.0.0.1:4222")
    asyncio.run(watch(url, args.subject))
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from titan.venues.sim.__main__ import main as sim_main

    argv = ["--config", args.config or str(DEFAULT_CONFIG)]
    if args.ports_file:
        argv += ["--ports-file", args.ports_file]
    return sim_main(argv)


def cmd_replay(args: argparse.Namespace) -> int:
    from titan.engine.replay_cli import main as replay_main

    return replay_main([args.journal])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="titan", description="Titan Execution engine")
    p.add_argument("--config", help="TOML config file (default: config/default.toml)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the whole engine under its supervisor")
    run.add_argument("--nats-port", type=int, default=4222, help="embedded NATS port (0 = any free port)")
    run.set_defaults(func=cmd_run)

    send = sub.add_parser("send", help="send one signed FastPath signal and print the reply")
    send.add_argument("action", choices=["prepare", "confirm", "abort", "ping"])
    send.add_argument("signal_id", nargs="?", default="")
    send.add_argument("--symbol", default="BTCUSDT")
    send.add_argument("--direction", choices=["LONG", "SHORT"], default="LONG")
    send.add_argument("--entry", type=float, nargs="+", help="entry zone: min [max] (default: market)")
    send.add_argument("--size", type=float, default=None, help="position size in USD")
    send.add_argument("--confidence", type=float, default=90)
    send.add_argument("--leverage", type=float, default=1)
    send.add_argument(
        "--velocity", type=float, default=None, help="urgency: > 0.005 MARKET, > 0.001 aggressive IOC limit"
    )
    send.add_argument("--source", default="scavenger")
    send.add_argument("--socket", default=None, help="socket path (default: from config)")
    send.add_argument("--framing", choices=["ndjson", "binary"], default="ndjson")
    send.add_argument("--timeout", type=float, default=2.0)
    send.set_defaults(func=cmd_send)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate and print the effective config (secrets masked)")
    check.set_defaults(func=cmd_config_check)

    top = sub.add_parser("top", help="live dashboard of a running engine")
    top.add_argument("--once", action="store_true", help="print one screen as text and exit")
    top.add_argument("--url", default="", help="ops HTTP base URL (default: from config http.bind/port)")
    top.add_argument("--interval", type=float, default=1.0)
    top.add_argument("--width", type=int, default=120)
    top.set_defaults(func=cmd_top)

    events = sub.add_parser("events", help="print NATS events as they are published")
    events.add_argument("subject", nargs="?", default="titan.evt.>")
    events.add_argument("--url", default="", help="NATS URL (default: config, else the running engine's)")
    events.set_defaults(func=cmd_events)

    replay = sub.add_parser("replay", help="re-run a core journal; print its records and the rebuilt state")
    replay.add_argument("journal", help="e.g. var/run/journal/core.journal")
    replay.set_defaults(func=cmd_replay)

    sim = sub.add_parser("sim", help="run the venue simulator alone (reads the [sim] table)")
    sim.add_argument("--ports-file", default="", help="write the bound base URLs here as JSON")
    sim.set_defaults(func=cmd_sim)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "send" and args.action != "ping" and not args.signal_id:
        print(f"titan send {args.action}: a signal id is required", file=sys.stderr)
        return 2
    if args.command == "send" and args.action == "prepare" and not args.entry:
        print("titan send prepare: --entry MIN [MAX] is required (the reference price)", file=sys.stderr)
        return 2
    try:
        rc: int = args.func(args)
    except ConfigError as exc:
        print(f"titan: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
