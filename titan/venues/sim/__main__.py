"""Run the simulator until SIGINT/SIGTERM: ``python -m titan.venues.sim --config sim.toml``.

Prints one JSON line ``{"bybit": "http://127.0.0.1:<port>", ...}`` once every venue is listening,
and writes it to ``--ports-file`` when given (atomically, so a supervisor can poll for it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import msgspec

from titan.venues.sim.config import SimConfig, load_sim_config
from titan.venues.sim.server import SimServer


async def serve(cfg: SimConfig, ports_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimServer(cfg) as sim:
        line = msgspec.json.encode(sim.urls)
        if ports_file is not None:
            tmp = ports_file.with_suffix(ports_file.suffix + ".tmp")
            tmp.write_bytes(line)
            os.replace(tmp, ports_file)
        sys.stdout.write(line.decode() + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m titan.venues.sim", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML or JSON SimConfig (a [sim] table is accepted)")
    parser.add_argument("--ports-file", type=Path, help="write the bound URLs here as JSON")
    parser.add_argument("--seed", type=int, help="override the config seed")
    args = parser.parse_args(argv)
    cfg = load_sim_config(args.config) if args.config else SimConfig()
    if args.seed is not None:
        cfg = msgspec.structs.replace(cfg, seed=args.seed)
    asyncio.run(serve(cfg, args.ports_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
