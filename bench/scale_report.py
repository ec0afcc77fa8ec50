"""Tables and plots of ``intentflow bench --sessions`` (bench/results/sessions.json) and ``--soak-min``
(bench/results/soak.json)."""
from __future__ import annotations

from pathlib import Path

MIB = 1024 * 1024


def _mib(x) -> str:
    return "–" if x is None else f"{x / MIB:,.0f}"


def _n(x, fmt="{:,.0f}") -> str:
    return "–" if x is None else fmt.format(x)


def sessions_table(results: dict) -> str:
    """Markdown table of a sessions run, one row per session count."""
    head = ("| open sessions | sessions in state | p50 / p99 ms | heap used min-max MiB | JVM RSS MiB | "
            "checkpoint MiB / ms | Flink state B/session | Redis B/session | after SIGKILL: first output / first new "
            "event readable / caught up, s | load avg 1 min |")
    rows = [head, "|" + "|".join(["---"] * 10) + "|"]
    for row in results["counts"]:
        lv = row.get("level", {})
        heap = lv.get("heap_used_bytes", {})
        cp = row.get("checkpoint") or {}
        rec = row.get("recovery") or {}
        rows.append(
            f"| {row['sessions_open']:,} | {_n(row.get('sessions_in_state'))} | {_n(lv.get('p50_ms'))} / "
            f"{_n(lv.get('p99_ms'))} | {_mib(heap.get('min'))}-{_mib(heap.get('max'))} | "
            f"{_mib((lv.get('rss_bytes') or {}).get('last'))} | {_n(cp.get('state_size') and cp['state_size'] / MIB, '{:,.1f}')}"
            f" / {_n(cp.get('end_to_end_duration'))} | {_n(row.get('flink_state_bytes_per_session'))} | "
            f"{_n(row.get('redis_bytes_per_session'))} | {_n(rec.get('first_output_after_kill_s'), '{:.1f}')} / "
            f"{_n(rec.get('first_readable_s'), '{:.1f}')} / "
            f"{_n(rec.get('caught_up_s'), '{:.1f}')} | {row.get('load_avg_1m_at_level')} |")
    return "\n".join(rows)


def soak_table(results: dict) -> str:
    """Markdown table of the fitted slopes of a soak."""
    rows = ["| series | mean | slope per minute (95 % interval) | flat |", "|---|---|---|---|"]
    for key, fit in (results.get("slopes") or {}).items():
        if fit.get("slope") is None:
            rows.append(f"| {key} | – | – | – |")
            continue
        rows.append(f"| {key} | {fit['mean']:,.0f} | {fit['slope']:,.0f} ({fit['ci_low']:,.0f} .. {fit['ci_high']:,.0f}) "
                    f"{fit['unit']} | {'yes' if fit['flat'] else 'no'} |")
    return "\n".join(rows)


def plot_sessions(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [r for r in results["counts"] if r.get("level")]
    xs = [r["sessions_open"] for r in counts]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    ax.plot(xs, [r["level"].get("p50_ms") for r in counts], "o-", label="p50")
    ax.plot(xs, [r["level"].get("p99_ms") for r in counts], "s-", label="p99")
    ax.set_xscale("log")
    ax.set_xlabel("open sessions")
    ax.set_ylabel("append -> readable, ms")
    ax.set_title(f"latency at {results['config']['rate_eps']:.0f} events/s")
    ax.legend()
    ax = axes[1]
    ax.plot(xs, [(r["level"]["heap_used_bytes"].get("max") or 0) / MIB for r in counts], "o-", label="heap used (max)")
    ax.plot(xs, [(r["level"]["rss_bytes"].get("last") or 0) / MIB for r in counts], "s-", label="JVM RSS")
    ax.plot(xs, [((r.get("checkpoint") or {}).get("state_size") or 0) / MIB for r in counts], "^-",
            label="checkpoint state")
    ax.plot(xs, [(r["redis"].get("session_families_bytes") or 0) / MIB for r in counts], "v-", label="Redis keys")
    ax.set_xscale("log")
    ax.set_xlabel("open sessions")
    ax.set_ylabel("MiB")
    ax.set_title("memory")
    ax.legend()
    if counts and counts[0]["level"].get("p99_ms"):
        ax = axes[0]
        ax.axhline(1.5 * counts[0]["level"]["p99_ms"], color="grey", ls=":", label="target: 1.5 x p99 at the fewest")
        ax.legend()
    ax = axes[2]
    ax.plot(xs, [((r.get("checkpoint") or {}).get("end_to_end_duration") or 0) / 1000.0 for r in counts], "o-",
            label="checkpoint duration")
    ax.plot(xs, [(r.get("recovery") or {}).get("first_readable_s") for r in counts], "s-",
            label="SIGKILL -> first new action readable")
    ax.axhline(5.0, color="C0", ls=":", label="target: checkpoint 5 s")
    ax.axhline(30.0, color="C1", ls=":", label="target: recovery 30 s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("s")
    ax.set_xlabel("open sessions")
    ax.set_title("checkpoint and recovery")
    ax.legend(fontsize=8)
    fig.suptitle(f"intentflow bench --sessions (synthetic load from real sessions), {results['started_at']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_soak(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = results["minutes"]
    x = [m["minute"] for m in ms]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    live = [(m["minute"], m["heap_live_bytes"] / MIB) for m in ms if m.get("heap_live_bytes") is not None]
    if live:
        ax.plot([p[0] for p in live], [p[1] for p in live], "o-", label="live heap (after a forced full GC)")
    for key, label in (("heap_used_min_bytes", "heap used (min of minute)"),
                       ("heap_committed_bytes", "heap committed"), ("rss_bytes", "JVM RSS"),
                       ("checkpoint_state_bytes", "checkpoint state"),
                       ("redis_prefix_bytes_excl_trace", "Redis keys of the job")):
        ax.plot(x, [(m.get(key) or 0) / MIB for m in ms], label=label)
    from bench.scale import _redis_prefix_excl_capped_stream

    uncapped = [(m["minute"], v / MIB) for m in ms if (v := _redis_prefix_excl_capped_stream(m)) is not None]
    if uncapped:
        ax.plot([p[0] for p in uncapped], [p[1] for p in uncapped], "--", label="... without the capped actions stream")
    ax.axvline(results["warmup_min"], color="grey", ls=":", label="fit starts")
    ax.set_xlabel("minute")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=8)
    ax.set_title("memory")
    ax = axes[1]
    ax.plot(x, [m.get("sessions_in_state") for m in ms])
    ax.set_xlabel("minute")
    ax.set_title("sessions in state")
    ax = axes[2]
    ax.plot(x, [m.get("p99_ms") for m in ms], label="p99")
    ax.plot(x, [m.get("p50_ms") for m in ms], label="p50")
    ax.set_xlabel("minute")
    ax.set_ylabel("ms")
    ax.legend()
    ax.set_title("append -> readable")
    fig.suptitle(f"soak {len(ms)} min at {results['rate_eps']:.0f} events/s, {results['concurrent_sessions']:,} open "
                 f"sessions, TTL {results['session_ttl_s']} s (synthetic load), {results['started_at']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
