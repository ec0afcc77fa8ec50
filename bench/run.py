"""``intentflow bench`` (``make bench``): end-to-end latency and throughput of the job, against a baseline.

For each target, one after the other on the same machine (never at the same time: 2 cores):

* ``job``: ``python -m jobs.personalization --start latest --trace-every-n 1`` on the local mini-cluster;
* ``baseline``: ``python -m bench.baseline`` (one plain Python process, same ``udfs/`` code, same Redis
  writes; see its docstring),

with its own topic prefix and Redis prefix, the run: start the process, wait until it consumes (probe
events), a warm-up at :data:`WARMUP_RATE_EPS`, then each level (500, 1000, 2000, 5000 events/s paced,
then flat out) for ``--duration-s`` (default 30 s). After each level the sender waits for the target to
drain (its ``{rp}stats`` ``events`` counter reaches the number produced) before the next one.
Both targets get the same event sequence (:class:`bench.loadgen.EventStream`, same seed).

**Latency** of an event = Redis server time when its micro-batch became readable (the ``{rp}trace``
stream entry id, written in the same pipeline as the actions) minus its Kafka append time
(``LogAppendTime`` topics) — and, separately, minus its ``client_ts_ms`` (= send time of the load
generator, so that one adds the producer + broker append). Every event is traced (``--trace-every-n 1``,
for job and baseline alike) because the job samples every N-th event *of a batch*, which for N > 1 would
miss small batches and favour late arrivals. Percentiles are nearest-rank (:func:`percentiles`).

**Throughput**: ``achieved_eps`` = events produced / s of sending; ``processed_eps`` = growth of the
target's ``events`` counter / s over the level. **Lag** = produced - processed, sampled every
:data:`SAMPLE_EVERY_S`; :func:`lag_trend` fits a line and calls the lag *growing* when its slope exceeds
:data:`LAG_GROWTH_FRACTION` of the offered rate.

**Resources**: CPU (% of one core, from ``/proc/<pid>/stat`` utime+stime over the level) and peak RSS
(max of ``VmRSS`` samples) of the broker, Redis, the job's JVM (JobManager + TaskManager + the embedded
CPython of thread mode, one process in the mini-cluster), the PyFlink client process, the baseline and
the load generator (this process, incl. its sampler thread). The broker and Redis are shared with other
work on the machine; their figures include it.

Results: ``bench/results/latest.json``, ``bench/results/latest.png``, a table on stdout.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.levels import WARMUP_RATE_EPS, run_drain, run_target  # noqa: E402
from udfs.config import JobConfig  # noqa: E402
from bench.procs import load_avg_1m  # noqa: E402
from bench.report import breakdown, drain_ratios, drain_table, machine_facts, markdown_table, plot, print_table  # noqa: E402
from bench.stats import ratio  # noqa: E402
from bench.targets import CLUSTER_TARGET, REST_BIND_CONF  # noqa: E402

RESULTS = ROOT / "bench" / "results"


@click.command("bench")
@click.option("--duration-s", type=float, default=30.0, show_default=True, help="Seconds per level.")
@click.option("--warmup-s", type=float, default=10.0, show_default=True, help="Warm-up before the first level, s (with --sessions: at --rate-eps before each count's measured "
                   "level, not measured).")
@click.option("--quick", is_flag=True, help="Smoke run: 3 s per level, 2 s warm-up (not for figures).")
@click.option("--levels", default="500,1000,2000,5000", show_default=True,
              help="Comma-separated paced events/s; 'max' = produce as fast as the load generator can while the "
                   "target runs (the flat-out figure is the drain run, see --drain-events).")
@click.option("--targets", default="job,baseline,quix", show_default=True,
              help="job (the Flink job, mini-cluster), baseline (plain Python), quix (Quix Streams).")
@click.option("--drain-events", type=int, default=200_000, show_default=True,
              help="Flat-out throughput: drain a topic pre-filled with this many events (0: skip).")
@click.option("--drain-targets", default=f"job,baseline,quix,{CLUSTER_TARGET}", show_default=True,
              help=f"Targets of the drain runs; {CLUSTER_TARGET}: the job on the standalone cluster "
                   "(2 TaskManagers) at parallelism 2.")
@click.option("--window-ms", type=int, default=JobConfig.window_ms, show_default=True)
@click.option("--parallelism", type=int, default=1, show_default=True)
@click.option("--drain-timeout-s", type=float, default=60.0, show_default=True)
@click.option("--flink-conf", multiple=True, help="key=value, extra Flink setting for the job (experiments).")
@click.option("--breakdown-level", default="2000", show_default=True)
@click.option("--profile-s", type=float, default=0.0, show_default=True,
              help="Record the job's embedded Python with py-spy (100 Hz) for this many seconds of the breakdown "
                   "level and add the share per hop to the results. It takes CPU: not for the headline figures.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Results file [default: bench/results/latest.json; sessions.json with --sessions; soak.json "
                   "with --soak-min].")
@click.option("--sessions", "session_counts", default="",
              help="Issue 19: comma-separated counts of concurrently open sessions (e.g. 1000,10000,100000): per "
                   "count, open them, then --duration-s at --rate-eps, then a SIGKILL and the recovery; writes "
                   "bench/results/sessions.json (+ .png) instead of the latency/throughput run.")
@click.option("--soak-min", type=float, default=0.0,
              help="Issue 19: a soak of this many minutes at --rate-eps with --soak-sessions open; writes "
                   "bench/results/soak.json (+ .png) instead of the latency/throughput run.")
@click.option("--rate-eps", type=float, default=2000.0, show_default=True,
              help="Events/s of --sessions and --soak-min.")
@click.option("--soak-sessions", type=int, default=10_000, show_default=True,
              help="Concurrently open sessions of the soak (at 2,000 events/s: one event per session every 5 s).")
@click.option("--soak-session-ttl-s", type=int, default=1800, show_default=True,
              help="Session state and Redis TTL of the soak's job (the job's default is 1800; a soak shorter "
                   "than ~2x the TTL cannot show eviction, so a short soak lowers it, recorded in the results).")
@click.option("--soak-heap-mb", type=int, default=3072, show_default=True,
              help="Fixed Java heap of the soak's job (-Xms = -Xmx), MiB; 0: the JVM's default (a quarter of RAM, "
                   "grown as G1 likes, which makes the heap floor drift without a leak).")
@click.option("--soak-live-heap-every-min", type=int, default=3, show_default=True,
              help="Force a full GC and record the live heap every this many soak minutes (the leak test); 0: never.")
@click.option("--soak-warmup-min", type=float, default=None,
              help="Minutes left out of the slope fits [default: TTL + 2 min].")
@click.option("--no-recovery", is_flag=True, help="--sessions without the SIGKILL/recovery step.")
def bench_cmd(duration_s, warmup_s, quick, levels, targets, drain_events, drain_targets, window_ms, parallelism, drain_timeout_s, flink_conf,
              breakdown_level, profile_s, seed, out, session_counts, soak_min, rate_eps, soak_sessions,
              soak_session_ttl_s, soak_heap_mb, soak_live_heap_every_min, soak_warmup_min, no_recovery) -> None:
    """End-to-end latency and throughput of the job against the plain-Python baseline (issue 7); with
    --sessions or --soak-min, cost as the work grows (issue 19, bench/scale.py)."""
    import redis

    if session_counts or soak_min:
        return scale_cmd(session_counts, soak_min, rate_eps, duration_s, window_ms, seed, out, soak_sessions,
                         soak_session_ttl_s, soak_warmup_min, not no_recovery, profile_s,
                         soak_heap_mb=soak_heap_mb, soak_live_heap_every_min=soak_live_heap_every_min,
                         warmup_s=warmup_s, flink_conf=dict(kv.split("=", 1) for kv in flink_conf))
    out = out or str(RESULTS / "latest.json")

    from bench.loadgen import build_templates
    from udfs.config import stack_settings
    from udfs.datasets import data_dir

    if quick:
        duration_s, warmup_s, drain_timeout_s = 3.0, 2.0, min(drain_timeout_s, 30.0)
        drain_events = min(drain_events, 20_000)
    level_list = [None if x.strip() == "max" else float(x) for x in levels.split(",") if x.strip()]
    level_list = [int(x) if x is not None and x == int(x) else x for x in level_list]
    conf = dict(kv.split("=", 1) for kv in flink_conf)

    def say(msg: str) -> None:
        click.echo(f"[bench {time.strftime('%H:%M:%S')}] {msg}", err=True)

    settings = stack_settings()
    r = redis.Redis.from_url(settings.redis_url)
    _ping(r, settings.redis_url)
    t_begin = time.monotonic()
    root = data_dir()
    if not (root / "MANIFEST.md").exists():
        raise click.ClickException(f"real data sets not found at {root}: set INTENTFLOW_DATA_DIR (docs/data.md)")
    templates, mix = build_templates(root, seed=seed)
    say(f"{mix['templates']} session templates, mix {mix['type_mix']}")
    run_tag = uuid.uuid4().hex[:6]
    run_id = int(uuid.uuid4().hex[:16], 16)
    run_dir = Path(tempfile.mkdtemp(prefix=f"intentflow-bench-{run_tag}-"))
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv),
                     "machine": machine_facts(r), "load_avg_1m_at_start": load_avg_1m(),
                     "config": {"duration_s": duration_s, "warmup_s": warmup_s, "warmup_rate_eps": WARMUP_RATE_EPS,
                                "window_ms": window_ms, "max_batch_size": 256, "parallelism": parallelism,
                                "trace_every_n": 1, "flink_conf_extra": {**REST_BIND_CONF, **conf}, "quick": quick,
                                "seed": seed, "profile_s": profile_s,
                                "levels": [x or "max" for x in level_list], "drain_events": drain_events},
                     "event_mix": mix, "targets": {}}
    target_list = [t.strip() for t in targets.split(",") if t.strip()]
    results["drain"] = {}
    drain_list = [t.strip() for t in drain_targets.split(",") if t.strip()] if drain_events > 0 else []
    from tqdm import tqdm

    steps = target_list + [t for t in drain_list if t not in target_list]
    # one step per target (its paced levels, then its drain); the per-level lines above it say the rest
    with tqdm(total=len(steps), unit="target", desc="bench", disable=None, file=sys.stderr) as bar:
        for target in steps:
            bar.set_postfix_str(target)
            if level_list and target in target_list:
                results["targets"][target] = run_target(target, run_tag, templates, seed, run_id, level_list,
                                                        duration_s, warmup_s, drain_timeout_s, window_ms, parallelism,
                                                        run_dir, conf, say, profile_s, breakdown_level)
            if target in drain_list:
                results["drain"][target] = run_drain(target, run_tag, templates, seed, run_id, drain_events, window_ms,
                                                     parallelism, run_dir, conf, say)
            bar.update(1)
    results["drain_ratios"] = drain_ratios(results["drain"])
    job = {lv["level"]: lv for lv in results["targets"].get("job", {}).get("levels", [])}
    base = {lv["level"]: lv for lv in results["targets"].get("baseline", {}).get("levels", [])}
    quix = {lv["level"]: lv for lv in results["targets"].get("quix", {}).get("levels", [])}
    rows = []
    for label in [str(x) if x else "max" for x in level_list]:
        row = dict(job.get(label) or base.get(label) or quix.get(label) or {})
        for name, other in (("baseline", base), ("quix", quix)):
            if label in job and label in other:
                b = other[label]
                row[name] = b
                row[f"ratio_to_{name}"] = {k: ratio(row[k], b[k]) for k in
                                           ("p50_ms", "p95_ms", "p99_ms", "max_ms", "achieved_eps", "processed_eps")}
        rows.append(row)
    results["levels"] = rows
    if breakdown_level in job and breakdown_level in base:
        results["breakdown"] = breakdown(job[breakdown_level], base[breakdown_level], window_ms)
    results["breakdown_by_level"] = {label: breakdown(job[label], base[label], window_ms)
                                     for label in job if label in base}
    results["total_s"] = round(time.monotonic() - t_begin, 1)
    results["targets_meta"] = {t: {k: v for k, v in d.items() if k != "levels"} for t, d in results["targets"].items()}
    del results["targets"]
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if rows:
        plot(results, out_path.with_suffix(".png"))
    if rows:
        print_table(results)
        click.echo("")
        click.echo(markdown_table(results))
    if results["drain"]:
        click.echo("")
        click.echo(drain_table(results))
    say(f"wrote {out_path} and {out_path.with_suffix('.png')} in {results['total_s']:.0f} s; logs in {run_dir}")


def _ping(r, url: str) -> None:
    """Fail with what to do when the local stack's Redis is not reachable (no traceback)."""
    import redis

    try:
        r.ping()
    except redis.ConnectionError as exc:
        raise click.ClickException(f"Redis at {url} is not reachable ({exc}): start the local stack first, "
                                   ".venv/bin/intentflow stack up") from None


def scale_cmd(session_counts: str, soak_min: float, rate_eps: float, duration_s: float, window_ms: int, seed: int,
              out: str | None, soak_sessions: int, soak_session_ttl_s: int, soak_warmup_min: float | None,
              recovery: bool, profile_s: float = 0.0, soak_heap_mb: int = 0,
              soak_live_heap_every_min: int = 0, warmup_s: float = 0.0,
              flink_conf: dict[str, str] | None = None) -> None:
    """``--sessions`` and ``--soak-min`` (bench/scale.py): results in sessions.json / soak.json with a plot."""
    import subprocess

    import redis

    from bench.loadgen import build_templates
    from bench.scale import marginal_costs, run_sessions, run_soak
    from bench.scale_report import plot_sessions, plot_soak, sessions_table, soak_table
    from udfs.config import stack_settings
    from udfs.datasets import data_dir

    def say(msg: str) -> None:
        click.echo(f"[bench {time.strftime('%H:%M:%S')}] {msg}", err=True)

    r = redis.Redis.from_url(stack_settings().redis_url)
    _ping(r, stack_settings().redis_url)
    root = data_dir()
    if not (root / "MANIFEST.md").exists():
        raise click.ClickException(f"real data sets not found at {root}: set INTENTFLOW_DATA_DIR (docs/data.md)")
    templates, mix = build_templates(root, seed=seed)
    run_tag = uuid.uuid4().hex[:6]
    run_id = int(uuid.uuid4().hex[:16], 16)
    run_dir = Path(tempfile.mkdtemp(prefix=f"intentflow-bench-{run_tag}-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    base = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv), "commit": commit,
            "machine": machine_facts(r), "load_avg_1m_at_start": load_avg_1m(), "event_mix": mix,
            "load": "synthetic: bench/loadgen.py EventStream, templates from real OTTO/YOOCHOOSE sessions "
                    "with the mix rule"}

    def write(results: dict, path: Path, plot_fn) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        try:
            plot_fn(results, path.with_suffix(".png"))
        except Exception as exc:  # noqa: BLE001 - a partial run still keeps its JSON
            say(f"plot failed: {exc!r}")

    if session_counts:
        counts = [int(x) for x in session_counts.split(",") if x.strip()]
        path = Path(out) if out and not soak_min else RESULTS / "sessions.json"
        results = {**base, "config": {"sessions": counts, "rate_eps": rate_eps, "duration_s": duration_s,
                                      "window_ms": window_ms, "seed": seed, "recovery": recovery,
                                      "profile_s": profile_s, "warmup_s": warmup_s,
                                      "flink_conf_extra": dict(flink_conf or {})}, "counts": []}
        for n in counts:
            results["counts"].append(run_sessions(n, run_tag, templates, seed, run_id, rate_eps, duration_s,
                                                  window_ms, run_dir, say, recovery=recovery, profile_s=profile_s,
                                                  warmup_s=warmup_s, flink_conf=flink_conf))
            results["marginal"] = marginal_costs(results["counts"])
            write(results, path, plot_sessions)
        click.echo(sessions_table(results))
        say(f"wrote {path} and {path.with_suffix('.png')}; logs in {run_dir}")
    if soak_min:
        path = Path(out) if out and not session_counts else RESULTS / "soak.json"
        warm = soak_warmup_min if soak_warmup_min is not None else soak_session_ttl_s / 60.0 + 2.0
        results = {**base, "config": {"minutes": soak_min, "rate_eps": rate_eps, "concurrent_sessions": soak_sessions,
                                      "session_ttl_s": soak_session_ttl_s, "warmup_min": warm, "seed": seed,
                                      "heap_mb": soak_heap_mb, "live_heap_every_min": soak_live_heap_every_min}}

        def checkpoint_file(partial: dict) -> None:
            write({**results, **partial}, path, plot_soak)

        soak = run_soak(soak_min, run_tag, templates, seed, run_id, rate_eps, soak_sessions, soak_session_ttl_s,
                        window_ms, run_dir, say, warm, on_minute=checkpoint_file, heap_mb=soak_heap_mb,
                        live_heap_every_min=soak_live_heap_every_min)
        results.update(soak)
        results["total_min"] = len(soak["minutes"])
        write(results, path, plot_soak)
        click.echo(soak_table(results))
        say(f"wrote {path} and {path.with_suffix('.png')}; logs in {run_dir}")


if __name__ == "__main__":
    bench_cmd()
