"""The benchmark's report: machine facts, the per-hop breakdown, the tables (terminal and README
markdown) and the latency plot."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import click

from bench.stats import ratio

ROOT = Path(__file__).resolve().parents[1]


def machine_facts(redis_client) -> dict:
    import importlib.metadata as md

    cpu_model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    versions = {}
    for pkg in ("apache-flink", "kafka-python", "redis", "onnxruntime", "numpy", "orjson"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    versions["python"] = platform.python_version()
    try:
        versions["redis-server"] = redis_client.info("server")["redis_version"]
    except Exception:  # noqa: BLE001
        versions["redis-server"] = None
    jars = sorted((ROOT / ".stack" / "lib" / "kafka").glob("kafka_2.13-*.jar"))
    versions["kafka-broker"] = jars[0].stem.split("-", 1)[1] if jars else None
    try:
        versions["java"] = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    except (OSError, IndexError):
        versions["java"] = None
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"nproc": os.cpu_count(), "memory_mb": mem_kb // 1024, "cpu_model": cpu_model,
            "platform": platform.platform(), "versions": versions, "git_commit": git("rev-parse", "--short", "HEAD").strip(),
            "git_uncommitted": [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]}


def breakdown(job_level: dict, base_level: dict, window_ms: int) -> dict:
    """Per-hop breakdown of one level: what is measured, what is estimated (see bench/README.md)."""
    hops = base_level.get("hops") or {}

    def p50(name):
        return (hops.get(name) or {}).get("p50")

    def mean(name):
        return (hops.get(name) or {}).get("mean")

    est = {"batch_wait_ms": window_ms / 2, "decide_ms": mean("decide_ms"), "onnx_ms": mean("onnx_ms"),
           "redis_ms": mean("redis_ms")}
    known = sum(v for v in est.values() if v is not None)
    residual = None if job_level.get("p50_ms") is None else round(job_level["p50_ms"] - known, 2)
    return {
        "level": job_level["level"],
        "job_keeps_up": job_level["lag"]["bounded"] and not job_level.get("percentiles_are_lower_bounds"),
        "measured": {
            "kafka_hop_produce_to_append_ms": job_level["kafka_hop"],
            "job_append_to_readable_ms": {k: job_level[k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
            "baseline_append_to_readable_ms": {k: base_level[k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
            "baseline_batch_wait_ms": hops.get("wait_ms"),
            "baseline_batch_size": hops.get("batch_size"),
            "baseline_parse_us_per_event": hops.get("parse_us_per_event"),
            "baseline_decide_ms_per_batch_without_onnx": hops.get("decide_ms"),
            "baseline_onnx_ms_per_batch": hops.get("onnx_ms"),
            "baseline_redis_pipeline_ms_per_batch": hops.get("redis_ms"),
        },
        "job_estimated_ms": {
            **est,
            "kafka_fetch_flink_network_java_python_ms (residual of job p50)": residual,
        },
        "notes": ("batch wait = window/2 (estimate; the baseline measures its own); decide, ONNX and Redis per "
                  "batch are the baseline's means (same udfs/ code, same model, same pipeline); the residual "
                  "(Kafka fetch + Flink network + Java<->Python boundary + parse) is job p50 minus those, "
                  "inferred, not measured, and only meaningful where the job keeps up (otherwise it is queueing)."),
        "baseline_p50_mean_check_ms": {"wait_p50": p50("wait_ms")},
    }


def print_table(results: dict) -> None:
    head = (f"{'level':>6} {'offered':>8} {'ach eps':>8} {'proc eps':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
            f" | {'base p50':>8} {'p95':>7} {'p99':>7} {'max':>7} {'proc eps':>8} | {'p50 x':>6} {'p99 x':>6}"
            f" {'lag':>8} {'load':>5}")
    click.echo(head)
    click.echo("-" * len(head))
    for row in results["levels"]:
        b = row.get("baseline") or {}
        rt = row.get("ratio_to_baseline") or {}

        def f(v, w=7):
            return f"{v:>{w}.1f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"

        click.echo(f"{row['level']:>6} {row['rate_eps'] or '-':>8} {f(row['achieved_eps'], 8)} {f(row['processed_eps'], 8)}"
                   f" {f(row['p50_ms'])} {f(row['p95_ms'])} {f(row['p99_ms'])} {f(row['max_ms'])}"
                   f" | {f(b.get('p50_ms'), 8)} {f(b.get('p95_ms'))} {f(b.get('p99_ms'))} {f(b.get('max_ms'))}"
                   f" {f(b.get('processed_eps'), 8)} | {f(rt.get('p50_ms'), 6)} {f(rt.get('p99_ms'), 6)}"
                   f" {'bounded' if row['lag']['bounded'] else 'GROWING':>8} {row['load_avg_1m_at_start']:>5}")


def markdown_table(results: dict) -> str:
    """The README's table: per paced level, append -> readable ms of the job and of each peer, ratios."""
    def f(v, digits=0):
        return "–" if v is None else f"{v:,.{digits}f}"

    peers = [p for p in ("baseline", "quix") if any(p in row for row in results["levels"])]
    head = ["level (events/s)", "job processed/s", "job p50 / p95 / p99 / max ms"]
    for peer in peers:
        head += [f"{peer} processed/s", f"{peer} p50 / p99 ms", f"job p99 ÷ {peer} p99"]
    head += ["job lag", "load avg 1 min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results["levels"]:
        star = " *" if row.get("percentiles_are_lower_bounds") else ""
        cells = [row["level"], f(row["processed_eps"]),
                 f"{f(row['p50_ms'])} / {f(row['p95_ms'])} / {f(row['p99_ms'])} / {f(row['max_ms'])}{star}"]
        for peer in peers:
            b = row.get(peer) or {}
            rt = row.get(f"ratio_to_{peer}") or {}
            bstar = " *" if b.get("percentiles_are_lower_bounds") else ""
            cells += [f(b.get("processed_eps")), f"{f(b.get('p50_ms'))} / {f(b.get('p99_ms'))}{bstar}",
                      f(rt.get("p99_ms"), 2)]
        cells += ["bounded" if row["lag"]["bounded"] else "growing", str(row["load_avg_1m_at_start"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def drain_ratios(drain: dict) -> dict:
    """The job's drain rate and CPU cost against each other target: ``{other: {eps_ratio, core_ms_ratio}}``."""
    job = drain.get("job")
    if not job:
        return {}
    return {name: {"drain_eps_ratio": ratio(job["drain_eps"], d["drain_eps"]),
                   "core_ms_per_1k_ratio": ratio(job["core_ms_per_1k_events"], d["core_ms_per_1k_events"])}
            for name, d in drain.items() if name != "job"}


def drain_table(results: dict) -> str:
    """Markdown table of the drain runs: events/s, CPU cost, ratio of the job to each."""
    lines = ["| target | drained events/s | core-ms per 1,000 events | % of one core | job ÷ target (events/s) "
             "| load avg 1 min |", "|---|---|---|---|---|---|"]
    ratios = results.get("drain_ratios", {})
    for name, d in results["drain"].items():
        rt = "–" if name == "job" else f"{(ratios.get(name) or {}).get('drain_eps_ratio', '–')}"
        lines.append(f"| {name} | {d['drain_eps']:,.0f} | {d['core_ms_per_1k_events']:,.0f} | {d['cpu_pct_of_one_core']:.0f} "
                     f"| {rt} | {d['load_avg_1m_at_start']} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Latency percentiles (append -> readable) against the level, ours and the baseline, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["levels"]
    labels = [f"{r['level']}\n({r['achieved_eps']:.0f}/s)" for r in rows]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for key, style, color in (("p50_ms", "o", "tab:blue"), ("p95_ms", "s", "tab:orange"), ("p99_ms", "^", "tab:red")):
        ax.plot(x, [r[key] for r in rows], marker=style, color=color, label=f"job {key[:3]}")
        ax.plot(x, [(r.get("baseline") or {}).get(key) for r in rows], marker=style, color=color, linestyle="--",
                alpha=0.6, label=f"baseline {key[:3]}")
        if any("quix" in r for r in rows):
            ax.plot(x, [(r.get("quix") or {}).get(key) for r in rows], marker=style, color=color, linestyle=":",
                    alpha=0.6, label=f"quix {key[:3]}")
    ax.axhline(20, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(60, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(200, color="grey", linewidth=0.8, linestyle=":")
    ax.set_yscale("log")
    ax.set_xticks(x, labels)
    ax.set_xlabel("offered events/s (job's achieved send rate); dotted: 20, 60, 200 ms targets")
    ax.set_ylabel("Kafka append -> action readable in Redis, ms")
    m = results["machine"]
    ax.set_title(f"intentflow end-to-end latency, {m['nproc']} cores, window {results['config']['window_ms']} ms")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
