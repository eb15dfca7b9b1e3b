"""Presenting a bench result: the terminal table, the JSON file and the PNG plot.

The result is a plain dict (``msgspec.to_builtins`` of the suite's structs) so that the JSON on disk
and what the table and plot read are the same thing. Latencies are microseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REQUIRED_KEYS = (
    "schema",
    "timestamp",
    "machine",
    "versions",
    "config",
    "closed_loop",
    "open_loop",
    "throughput",
    "baseline",
    "extra_paths",
    "targets",
)
SUMMARY_KEYS = ("n", "mean", "p50", "p90", "p99", "p99_9", "p99_99", "max")
COLS = ("p50", "p90", "p99", "p99_9", "max")


def _us(v: float) -> str:
    return f"{v:,.0f}" if v >= 1000 else f"{v:.1f}"


def _row(name: str, s: dict[str, Any], width: int = 40) -> str:
    cols = "".join(f"{_us(float(s[c])):>10}" for c in COLS)
    return f"{name:<{width}}{cols}{int(s['n']):>9}"


def _head(title: str, width: int = 40) -> str:
    return f"{title:<{width}}" + "".join(f"{c.replace('_', '.'):>10}" for c in COLS) + f"{'n':>9}"


def render_table(res: dict[str, Any]) -> str:
    out: list[str] = []
    m = res["machine"]
    out.append(
        f"machine: {m['cpus']} CPUs {m.get('cpu_model', '')} | {m['platform']} | Python {m['python']} | "
        f"load avg before {m['loadavg_before']} after {m['loadavg_after']}"
    )
    restarted = {
        name: p["restarts"] for name, p in res["engine"].get("processes_end", {}).items() if p.get("restarts")
    }
    if restarted:
        out.append(f"WARNING: engine processes restarted during the run: {restarted} (JSON: engine.log_tail)")
    out.append("")
    out.append(_head("closed loop, one in flight (µs)"))
    for framing, r in res["closed_loop"].items():
        out.append(_row(f"PREPARE round trip [{framing}]", r["prepare"]))
        out.append(_row(f"CONFIRM→executed [{framing}]", r["confirm"]))
        out.append(_row(f"ABORT round trip [{framing}]", r["abort"]))
        if r["failures"]:
            out.append(f"  failures [{framing}]: {r['failures']}")
    for framing, r in res["closed_loop"].items():
        for kind in ("confirm", "prepare"):
            out.append("")
            out.append(_head(f"{kind.upper()} stages [{framing}] (µs)"))
            for name, s in r[f"{kind}_stages"].items():
                out.append(_row("  " + name, s))
        break  # one framing's breakdown is enough on the terminal; the JSON has both
    out.append("")
    out.append(
        "open loop, PREPARE+CONFIRM per intent, latency from the intended send time (µs)"
        " — sat = generator hit its in-flight cap"
    )
    out.append(
        f"{'framing':<8}{'offered/s':>10}{'done/s':>8}{'p50':>11}{'p90':>11}{'p99':>11}{'p99.9':>11}{'max':>11}"
        f"{'svc p99':>11}{'fail':>6}{'sat':>5}{'client%':>8}{'engine%':>8}{'box%':>6}"
    )
    for st in res["open_loop"]:
        lat = st["latency"]
        out.append(
            f"{st['framing']:<8}{st['offered_rate']:>10,.0f}{st['achieved_rate']:>8,.0f}"
            + "".join(f"{_us(float(lat[c])):>11}" for c in ("p50", "p90", "p99", "p99_9", "max"))
            + f"{_us(float(st['service']['p99'])):>11}{st['failed']:>6}{'yes' if st['saturated'] else '':>5}"
            f"{st['client_cpu_pct_of_core']:>8.0f}{st.get('engine_cpu_pct_of_core', 0.0):>8.0f}"
            f"{st.get('box_busy_pct', 0.0):>6.0f}"
        )
    for framing, t in res["throughput"].items():
        best = t["max_rate_p99_under_1ms"]
        out.append(
            f"throughput [{framing}]: highest offered rate with p99 < 1 ms: "
            + (f"{best:,.0f} intents/s" if best else "none of the offered rates")
            + f"; best completed rate {t['max_achieved_rate']:,.0f}/s"
        )
    b = res["baseline"]
    out.append("")
    out.append(f"baseline chain: {b['chain']}")
    out.append(_head("round trip, one in flight (µs)") + f"{'rt/s':>10}")
    for transport in ("shm", "mpqueue"):
        c = b[transport]
        out.append(_row(f"  {transport}", c["round_trip"]) + f"{c['throughput_rt_per_s']:>10,.0f}")
    out.append(
        f"  mp.Queue / shm: p50 ×{b['ratio_p50']}, p99 ×{b['ratio_p99']}; "
        f"throughput shm / mp.Queue ×{b['ratio_throughput']}"
    )
    out.append("")
    for name, extra in res["extra_paths"].items():
        if not extra.get("available"):
            out.append(f"{name}: not available ({extra.get('reason', '')})")
        elif "error" in extra:
            out.append(f"{name}: failed: {extra['error']}")
        else:
            result = extra.get("result")
            summary = result.get("summary") if isinstance(result, dict) else None
            said = f"{summary}; " if isinstance(summary, str) else ""
            out.append(f"{name}: {said}ran in {extra.get('wall_s', 0):.1f} s (see JSON extra_paths.{name})")
    out.append("")
    out.append("targets (issue #9):")
    for t in res["targets"]:
        verdict = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        measured = "—" if t["measured"] is None else _us(float(t["measured"]))
        out.append(f"  {t['name']:<44} target {t['target']:<12} measured {measured:>10}  {verdict}")
    return "\n".join(out)


def check_complete(res: dict[str, Any]) -> list[str]:
    """What is missing or malformed in a result (empty list: complete). Used by the CI smoke test."""
    problems = [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in res]
    if problems:
        return problems

    def summary_ok(where: str, s: Any) -> None:
        if not isinstance(s, dict) or any(not isinstance(s.get(k), int | float) for k in SUMMARY_KEYS):
            problems.append(f"{where}: not a latency summary")

    for framing in ("ndjson", "binary"):
        r = res["closed_loop"].get(framing)
        if r is None:
            problems.append(f"closed_loop.{framing} missing")
            continue
        for kind in ("prepare", "confirm", "abort"):
            summary_ok(f"closed_loop.{framing}.{kind}", r.get(kind))
        if not r.get("confirm_stages"):
            problems.append(f"closed_loop.{framing}.confirm_stages empty")
    if not res["open_loop"]:
        problems.append("open_loop empty")
    for i, st in enumerate(res["open_loop"]):
        summary_ok(f"open_loop[{i}].latency", st.get("latency"))
        summary_ok(f"open_loop[{i}].service", st.get("service"))
    for transport in ("shm", "mpqueue"):
        summary_ok(f"baseline.{transport}.round_trip", res["baseline"].get(transport, {}).get("round_trip"))
    if not isinstance(res["baseline"].get("ratio_p50"), int | float):
        problems.append("baseline.ratio_p50 missing")
    return problems


def write_json(res: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1, ensure_ascii=False))


def write_plot(res: dict[str, Any], path: Path) -> str | None:
    """Latency percentiles per path and rate as a PNG; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # the suite still reports; the plot is the only casualty
        return f"matplotlib not installed ({e})"
    pcts = ("p50", "p90", "p99", "p99_9", "p99_99", "max")
    labels = [p.replace("_", ".") for p in pcts]
    fig, axes = plt.subplots(1, 3, figsize=(18, 6))
    ax = axes[0]
    for framing, r in res["closed_loop"].items():
        for kind, style in (("prepare", "-o"), ("confirm", "-s"), ("abort", "-^")):
            ax.plot(labels, [r[kind][p] for p in pcts], style, label=f"{kind.upper()} [{framing}]")
    ax.set_title("closed loop round trips (one in flight)")
    ax.set_ylabel("latency (µs, log)")
    ax.set_xlabel("percentile")
    ax.set_yscale("log")
    ax.axhline(1000, color="grey", ls=":", lw=1)
    ax.legend(fontsize=8)
    ax = axes[1]
    for framing in sorted({st["framing"] for st in res["open_loop"]}):
        steps = [st for st in res["open_loop"] if st["framing"] == framing and st["latency"]["n"]]
        rates = [st["offered_rate"] for st in steps]
        for p, style in (("p50", "-o"), ("p99", "-s"), ("p99_9", "-^")):
            ax.plot(
                rates, [st["latency"][p] for st in steps], style, label=f"{p.replace('_', '.')} [{framing}]"
            )
    ax.axhline(1000, color="red", ls="--", lw=1, label="1 ms (throughput criterion)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title("open loop: PREPARE+CONFIRM from intended send time")
    ax.set_xlabel("offered intents/s (log)")
    ax.set_ylabel("latency (µs, log)")
    ax.legend(fontsize=8)
    ax = axes[2]
    b = res["baseline"]
    for transport, style in (("shm", "-o"), ("mpqueue", "-s")):
        ax.plot(labels, [b[transport]["round_trip"][p] for p in pcts], style, label=transport)
    ax.set_yscale("log")
    ax.set_title(f"baseline chain, 3 processes / 4 hops (mp.Queue/shm p50 ×{b['ratio_p50']})")
    ax.set_xlabel("percentile")
    ax.set_ylabel("round trip (µs, log)")
    ax.legend(fontsize=8)
    m = res["machine"]
    fig.suptitle(
        f"Titan bench {res['timestamp']} — {m['cpus']} CPUs, "
        f"load avg {m['loadavg_before']} → {m['loadavg_after']}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None
