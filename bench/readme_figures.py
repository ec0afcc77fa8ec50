"""The README's table of measured figures, generated from the committed results files (issue 15).

Every row reads one file of ``bench/results/`` and says when that run started and the machine's 1-minute
load average then (the machine is shared: a figure without its load cannot be compared). A file that is
missing gives a row saying so, never an old number. Figures that no benchmark records in a file (the
experiment simulations, the micro-benchmarks that only print) are in a second, hand-kept table of the
README with their commands.

Run: ``.venv/bin/python -m bench.readme_figures`` rewrites the block between ``<!-- figures:begin -->`` and
``<!-- figures:end -->`` of README.md; ``--check`` prints it and exits 1 when README.md differs (the unit test
``tests/unit/test_readme_figures.py`` does the same, so a hand edit or a results file committed without
regenerating fails the suite).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.sizing import replace_block  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MARKER = "figures"


def _n(x, fmt: str = "{:,.0f}") -> str:
    return "–" if x is None else fmt.format(x)


def _committed_iso(path: Path) -> str | None:
    """The commit date of ``path`` (for results files that record no date of their own)."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cI", "--", str(path)], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def run_date_and_load(results: dict, path: Path) -> tuple[str, str]:
    """``(date, load)`` of a results file: its own start time and 1-minute load average where it recorded
    them (the field names differ per benchmark), else the file's commit date and "not recorded"."""
    machine = results.get("machine") or {}
    runs = results.get("runs")
    last_run = runs[-1] if isinstance(runs, list) and runs else {}
    date = results.get("started_at") or results.get("measured_at")
    ms = results.get("measured_at_ms") or last_run.get("measured_at_ms")
    if not date and ms:
        date = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ms / 1000))
    date = date or _committed_iso(path) or "unknown"
    load = None
    for source in (results, machine, last_run.get("machine") or {}):
        for key in ("load_avg_1m_at_start", "loadavg_1m", "load_average_1min_at_start", "load_avg_1m"):
            if source.get(key) is not None:
                load = source[key]
                break
        if load is not None:
            break
    return date[:16].replace("T", " "), ("not recorded" if load is None else f"{float(load):.2f}")


def _paced(latest: dict) -> str:
    parts = []
    for lv in latest.get("levels", []):
        if lv.get("p50_ms") is None:
            continue
        lag = "" if (lv.get("lag") or {}).get("bounded", True) else ", lag growing"
        parts.append(f"{lv['level']}/s: {_n(lv['p50_ms'])} / {_n(lv['p99_ms'])} ms{lag}")
    return "; ".join(parts)


def _peer_paced(latest: dict, peer: str) -> str:
    parts = []
    for lv in latest.get("levels", []):
        fig = lv.get(peer) or {}
        if fig.get("p50_ms") is not None:
            lag = "" if (fig.get("lag") or {}).get("bounded", True) else ", lag growing"
            parts.append(f"{lv['level']}/s: {_n(fig['p50_ms'])} / {_n(fig['p99_ms'])} ms{lag}")
    return "; ".join(parts)


def _drains(latest: dict) -> str:
    names = {"job": "job", "baseline": "baseline", "quix": "Quix Streams", "job-cluster-p2": "job p2 (2 TaskManagers)"}
    parts = [f"{names.get(t, t)} {_n(d.get('drain_eps'))} ({_n(d.get('core_ms_per_1k_events'))})"
             for t, d in (latest.get("drain") or {}).items() if d.get("drain_eps")]
    ratios = latest.get("drain_ratios") or {}
    if ratios:
        parts.append("job ÷ baseline " + _n((ratios.get("baseline") or {}).get("drain_eps_ratio"), "{:.2f}")
                     + ", ÷ Quix " + _n((ratios.get("quix") or {}).get("drain_eps_ratio"), "{:.2f}"))
    return "; ".join(parts)


def _e2e(r: dict) -> str:
    run = r["runs"][-1]
    return (f"{run['min_ms']}-{run['max_ms']} ms, median {run['median_ms']} ms ({run['n']} visits; "
            f"{len(r['runs'])} run(s) recorded, the last shown)")


def _edge(r: dict) -> str:
    e = r["edge_signal_to_provisional_action"]
    return f"p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms over {e['n']} clicks"


def _edge_vs_server(r: dict) -> str:
    v = r["edge_vs_server_same_click"]
    return (f"edge p50 / p99 {v['edge']['p50_ms']:.1f} / {v['edge']['p99_ms']:.1f} ms; server "
            f"{v['server']['p50_ms']:.1f} / {v['server']['p99_ms']:.1f} ms; {v['reduction_p50_pct']:.0f} % less at p50")


def _decision(r: dict) -> str:
    rt = r["cases"]["redis"]["round_trip"]
    return f"p50 {rt.get('p50_ms', 0):.2f} ms, p99 {rt.get('p99_ms', 0):.2f} ms ({r['requests_per_case']:,} requests)"


def _score(r: dict) -> str:
    rows = sorted(r["results"], key=lambda x: x["batch_size"])
    return " / ".join(f"{x['mean_us']:.1f}" for x in rows) + " µs at batch " + " / ".join(
        str(x["batch_size"]) for x in rows)


def _edge_load(r: dict) -> str:
    load = r["load"]
    t = load["cold_profile"]["timings_ms"]
    return (f"{load['transfer_bytes_total'] / 1e6:.2f} MB on the wire ({load['decoded_bytes_total'] / 1e6:.1f} MB "
            f"decoded); ready {t['total'] / 1000:.1f} s after the page starts, of which onnxruntime session creation "
            f"{t['session_create'] / 1000:.1f} s")


def _edge_calls(r: dict) -> str:
    c = r["per_call_in_page"]
    return (f"{c['features_apply_us_mean']:.1f} / {c['score_us_mean']:.0f} / {c['rules_evaluate_us_mean']:.1f} µs "
            f"(means over {c['calls']:,} calls)")


def _session_bench(r: dict) -> str:
    rows = r["results"]
    x = next((row for row in rows if row["workload"] == "otto"), rows[0])
    return (f"{x['us_per_event_apply_features_median']:.1f} µs / {x['us_per_event_with_pickle_roundtrip_median']:.1f} µs "
            f"per event ({x['workload']}, {x['events']:,} events)")


def _session_size(r: dict) -> str:
    stored = r.get("stored_bytes_per_session") or r["pickle_bytes_per_session"]
    held = r.get("python_held_as_stored_bytes_per_session")
    model = (r.get("python_copy_model") or {}).get("by_open_sessions") or {}
    tiers = (f", {held:,.0f} B once written to state until its next event; modelled at 2,000 events/s: "
             + ", ".join(f"{int(k):,} open {v['bytes_per_session']:,.0f} B" for k, v in model.items())) if held else ""
    return (f"Flink state value {stored['mean']:,.0f} B mean (p99 {stored['p99']:,.0f}); Python copy "
            f"{r['python_copy_bytes_per_session']:,.0f} B as objects{tiers} ({r['sessions']:,} sessions, "
            f"{r['events_per_session_mean']} events each)")


def _sessions(r: dict) -> str:
    parts = []
    for c in r.get("counts", []):
        lv = c.get("level") or {}
        rec = c.get("recovery") or {}
        parts.append(f"{c['sessions_open']:,} open: p99 {_n(lv.get('p99_ms'))} ms, first new event readable "
                     f"{_n(rec.get('first_readable_s'), '{:.1f}')} s after SIGKILL")
    return "; ".join(parts)


def _soak(r: dict) -> str:
    slopes = r.get("slopes") or {}
    minutes = r.get("minutes") or []
    in_state = minutes[-1].get("sessions_in_state") if minutes else None
    text = (f"{_n(r.get('total_min'), '{:.0f}')} min at {_n(r.get('rate_eps'))} events/s, "
            f"{_n(r.get('concurrent_sessions'))} sessions active at once")
    if in_state is not None:
        text += f" ({_n(in_state)} in state at the end, TTL {_n(r.get('session_ttl_s'))} s)"
    heap_key = "heap_live_bytes" if (slopes.get("heap_live_bytes") or {}).get("slope") is not None else "heap_used_min_bytes"
    heap_label = "live heap (after a forced full GC)" if heap_key == "heap_live_bytes" else "heap floor"
    redis_key = ("redis_prefix_bytes_excl_trace_and_actions_stream"
                 if (slopes.get("redis_prefix_bytes_excl_trace_and_actions_stream") or {}).get("slope") is not None
                 else "redis_used_memory_bytes")
    redis_label = ("Redis keys of the job (the capped actions stream apart)"
                   if redis_key != "redis_used_memory_bytes" else "Redis memory")
    for key, label in ((heap_key, heap_label), (redis_key, redis_label)):
        fit = slopes.get(key) or {}
        if fit.get("slope") is None:
            continue
        text += f"; {label} slope {fit['slope'] / 2**20:.1f} MiB/min"
        if fit.get("ci_low") is not None:
            text += f" (95 % {fit['ci_low'] / 2**20:.1f} .. {fit['ci_high'] / 2**20:.1f}: {'flat' if fit.get('flat') else 'not flat'})"
    p99 = (slopes.get("p99_ms") or {}).get("mean")
    if p99 is not None:
        text += f"; p99 mean {_n(p99)} ms"
    return text


#: (what, results file, figure from its JSON, command)
ROWS: list[tuple[str, str, Callable[[dict], str], str]] = [
    ("job, Kafka append -> action readable in Redis, paced (p50 / p99)", "latest.json", _paced, "`make bench`"),
    ("flat out: drain of a pre-filled topic, events/s (core-ms per 1,000 events)", "latest.json", _drains,
     "`make bench`"),
    ("plain-Python baseline, paced (p50 / p99), same run", "latest.json", lambda r: _peer_paced(r, "baseline"),
     "`make bench`"),
    ("Quix Streams, paced (p50 / p99), same run", "latest.json", lambda r: _peer_paced(r, "quix"), "`make bench`"),
    ("real browser: last signal (Compare click) to page updated, through collector, Kafka, job, Redis, decision API",
     "e2e_latency.json", _e2e, "`.venv/bin/python -m bench.e2e_latency_bench --visits 3`"),
    ("edge scoring in Chromium: signal -> provisional action on the page", "edge_bench.json", _edge,
     "`.venv/bin/python bench/edge_bench.py`"),
    ("same click, edge vs server path", "edge_bench.json", _edge_vs_server, "`.venv/bin/python bench/edge_bench.py`"),
    ("edge download on a cold profile, and first load", "edge_bench.json", _edge_load,
     "`.venv/bin/python bench/edge_bench.py`"),
    ("edge per call in the page: features / one onnxruntime-web run / rules", "edge_bench.json", _edge_calls,
     "`.venv/bin/python bench/edge_bench.py`"),
    ("decision API round trip (Redis hit)", "decision_bench.json", _decision, "`.venv/bin/python bench/decision_bench.py`"),
    ("ONNX intent score per call", "score_bench.json", _score, "`.venv/bin/python bench/score_bench.py`"),
    ("session state: apply + features / with the keyed-state pickle round trip", "session_bench.json",
     _session_bench, "`.venv/bin/python bench/session_bench.py`"),
    ("bytes of one session", "session_size.json", _session_size,
     "`.venv/bin/python -m bench.session_size --sessions 10000`"),
    ("open sessions at 2,000 events/s", "sessions.json", _sessions,
     "`.venv/bin/intentflow bench --sessions 1000,10000,100000`"),
    ("soak, session TTL lowered to 10 min (sessions turn over 5 times)", "soak.json", _soak,
     "`.venv/bin/intentflow bench --soak-min 60 --soak-session-ttl-s 600`"),
    ("soak, the job's 30-min session TTL", "soak_ttl1800.json", _soak,
     "`.venv/bin/intentflow bench --soak-min 60 --out bench/results/soak_ttl1800.json`"),
]


def figures_table(results_dir: Path = RESULTS) -> str:
    """The markdown table: one row per :data:`ROWS` entry, with its run's date and load."""
    lines = ["Generated by `.venv/bin/python -m bench.readme_figures` from `bench/results/` (do not edit by hand).",
             "", "| what | figure | run (UTC) | load avg 1 min | command |", "|---|---|---|---|---|"]
    for what, name, figure, command in ROWS:
        path = results_dir / name
        if not path.exists():
            lines.append(f"| {what} | no results file `{name}` | – | – | {command} |")
            continue
        results = json.loads(path.read_text())
        date, load = run_date_and_load(results, path)
        try:
            text = figure(results)
        except (KeyError, IndexError, TypeError) as exc:
            text = f"`{name}` lacks {exc!r}"
        lines.append(f"| {what} | {text or '–'} | {date} | {load} | {command} |")
    return "\n".join(lines)


@click.command()
@click.option("--check", is_flag=True, help="Print the table; exit 1 when README.md's block differs.")
def main(check: bool) -> None:
    """Rewrite the figures block of README.md from bench/results/."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = replace_block(text, MARKER, figures_table())
    if check:
        click.echo(figures_table())
        if new != text:
            raise click.ClickException("README.md's figures block differs: run .venv/bin/python -m bench.readme_figures")
        return
    readme.write_text(new)
    click.echo(f"updated {readme} ({MARKER})", err=True)


if __name__ == "__main__":
    main()
