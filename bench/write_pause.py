"""The pause a shard's state write puts into the job's callbacks, with and without encoding ahead (issue 19).

An **offline simulation** of one session shard's callbacks (no Flink, no Kafka, no Redis; the decide step is
left out): the shard holds ``--open-sessions / --shards`` sessions of the benchmark's load (complete
sessions from ``bench.session_size.decided_sessions``, reused round robin), gets ``--rate-eps / --shards``
events per second, one callback every ``--window-ms`` on a simulated clock. Per callback it does the
state work of ``DecideMicroBatch`` on the real ``udfs.microbatch.ShardSessions``: each event's session is
loaded (decoded when held as its stored bytes) and marked changed; the summaries are taken when due
(decoding any session held as bytes, as ``session_summaries`` gets objects); the changed sessions are
encoded ahead (``ShardSessions.pre_encode``, ``JobConfig.pre_encode_per_batch`` per callback) unless the
write is due, else written (``take_dirty_stored``). Wall time per callback is measured with
``time.perf_counter_ns``; the same simulated events run once with encoding ahead off
(``pre_encode_lead_ms`` 0, the job before 2026-12-05) and once with the job's defaults, in alternating
order ``--repeat`` times (the machine is shared).

Run: ``.venv/bin/python -m bench.write_pause [--open-sessions 100000,1000 --repeat 3]``; prints a table and
writes ``bench/results/write_pause.json``.
"""
from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def simulate(entries: list, n_sessions: int, events_per_s: float, seconds: float, window_ms: int,
             lead_ms: int, idle_ms: int, per_batch: int, write_interval_ms: int, summary_interval_ms: int,
             seed: int) -> dict:
    """One shard's callbacks over ``seconds`` of simulated time; see the module docstring.

    Returns:
        ``{"callback_us": [wall time of each callback, us], "write_callback_us": [those that wrote],
        "encoded_ahead": n, "encoded_at_write": n}``.
    """
    from udfs.microbatch import RELEASE_PER_BATCH, ShardSessions, encode_stored

    rng = random.Random(seed)
    t0_ms = 1_000_000
    shard = ShardSessions(3_600_000, write_interval_ms, summary_interval_ms, now_ms=t0_ms, phase=0.5,
                          pre_encode_lead_ms=lead_ms, pre_encode_idle_ms=idle_ms)
    ids = [f"s{i:06d}" for i in range(n_sessions)]
    # every session as the job holds it after a state write: its stored bytes
    stored = [encode_stored(entry) for entry in entries]
    for i, sid in enumerate(ids):
        shard.entries[sid] = stored[i % len(stored)]
        shard.touched_ms[sid] = t0_ms
    load = shard.loader
    callback_us, write_us = [], []
    encoded_ahead = encoded_at_write = 0
    owed = 0.0
    for k in range(int(seconds * 1000 / window_ms)):
        now = t0_ms + k * window_ms
        owed += events_per_s * window_ms / 1000
        n_events, owed = int(owed), owed - int(owed)
        counting_ns = 0  # counting encodes for the report, inside a callback: taken off its wall time
        t = time.perf_counter_ns()
        loader = load(now, {}.get)
        touched = {}
        for _ in range(n_events):
            sid = ids[rng.randrange(n_sessions)]
            touched[sid] = loader(sid)
        shard.update(touched, now)
        summaries_due, state_due = shard.due(now)
        if summaries_due:
            shard.take_summary_dirty(now)
        if state_due:
            tc = time.perf_counter_ns()
            encoded_at_write += sum(1 for sid in shard.dirty
                                        if shard.entries[sid].__class__ is not bytes and sid not in shard.encoded_ahead)
            counting_ns = time.perf_counter_ns() - tc
            shard.take_dirty_stored(now)
        else:
            encoded_ahead += shard.pre_encode(now, per_batch)
            shard.release_retired(RELEASE_PER_BATCH)
        us = (time.perf_counter_ns() - t - counting_ns) / 1000
        callback_us.append(us)
        if state_due:
            write_us.append(us)
    return {"callback_us": callback_us, "write_callback_us": write_us, "encoded_ahead": encoded_ahead,
            "encoded_at_write": encoded_at_write}


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@click.command()
@click.option("--open-sessions", default="100000,1000", show_default=True, help="Comma-separated open sessions.")
@click.option("--rate-eps", default=2000.0, show_default=True, help="Events/s of the whole job.")
@click.option("--shards", default=8, show_default=True, help="Session shards (JobConfig.max_parallelism).")
@click.option("--seconds", default=40.0, show_default=True, help="Simulated seconds per run.")
@click.option("--repeat", default=3, show_default=True, help="Runs per setting (alternating order).")
@click.option("--distinct", default=2000, show_default=True, help="Distinct decided sessions reused round robin.")
@click.option("--out", default=str(ROOT / "bench" / "results" / "write_pause.json"), show_default=True)
def main(open_sessions: str, rate_eps: float, shards: int, seconds: float, repeat: int, distinct: int, out: str) -> None:
    """Callback pauses of one shard's state writes, encoding ahead off against on (offline simulation)."""
    from bench.procs import load_avg_1m
    from bench.session_size import decided_sessions
    from udfs.config import JobConfig

    cfg = JobConfig()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_start = load_avg_1m()
    entries = decided_sessions(distinct, 50_000)
    settings = {"off": 0, "on": cfg.pre_encode_lead_ms}
    rows = []
    for n_open in (int(x) for x in open_sessions.split(",")):
        per_shard = max(1, n_open // shards)
        runs = {name: [] for name in settings}
        for rep in range(repeat):
            for name in (("off", "on") if rep % 2 == 0 else ("on", "off")):
                gc.collect()
                gc.disable()  # the job freezes its session copy out of the cyclic GC (udfs.gcpolicy)
                try:
                    runs[name].append(simulate(entries, per_shard, rate_eps / shards, seconds, cfg.window_ms,
                                               settings[name], cfg.pre_encode_idle_ms, cfg.pre_encode_per_batch,
                                               cfg.state_write_interval_ms, cfg.summary_interval_ms, seed=rep))
                finally:
                    gc.enable()
        row = {"open_sessions": n_open, "sessions_per_shard": per_shard}
        for name, rs in runs.items():
            cb = [us for r in rs for us in r["callback_us"]]
            writes = [us for r in rs for us in r["write_callback_us"]]
            row[name] = {
                "callback_p50_us": round(_pct(cb, 0.50), 1), "callback_p99_us": round(_pct(cb, 0.99), 1),
                "callback_max_us": round(max(cb), 1),
                "write_callback_median_us": round(statistics.median(writes), 1) if writes else None,
                "write_callback_max_us": round(max(writes), 1) if writes else None,
                "cpu_ms_per_s": round(sum(cb) / 1000 / (seconds * len(rs)), 2),
                "encoded_ahead_per_run": round(statistics.mean(r["encoded_ahead"] for r in rs), 1),
                "encoded_at_write_per_run": round(statistics.mean(r["encoded_at_write"] for r in rs), 1),
            }
        rows.append(row)
    res = {"what": "offline simulation of one session shard's callbacks (state work only: load/decode, summaries "
                   "taken, encode ahead, state write; no decide, no Flink/Kafka/Redis); wall time per callback",
           "started_at": started, "command": " ".join(sys.argv), "python": sys.version.split()[0],
           "load_avg_1m_at_start": load_start, "load_avg_1m_at_end": load_avg_1m(),
           "rate_eps": rate_eps, "shards": shards, "seconds_per_run": seconds, "repeat": repeat,
           "config": {"window_ms": cfg.window_ms, "state_write_interval_ms": cfg.state_write_interval_ms,
                      "summary_interval_ms": cfg.summary_interval_ms, "pre_encode_lead_ms": cfg.pre_encode_lead_ms,
                      "pre_encode_idle_ms": cfg.pre_encode_idle_ms, "pre_encode_per_batch": cfg.pre_encode_per_batch},
           "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=2) + "\n")
    click.echo(f"simulation, one shard of {shards}, {rate_eps:,.0f} events/s, {seconds:.0f} s x {repeat} "
               f"(load average {load_start} -> {res['load_avg_1m_at_end']}); callback wall time, ms:")
    click.echo(f"{'open':>8} {'ahead':>5} {'p50':>6} {'p99':>6} {'max':>7} {'write med':>9} {'write max':>9} "
               f"{'cpu ms/s':>8} {'enc ahead':>9} {'enc at write':>12}")
    for row in rows:
        for name in settings:
            f = row[name]
            click.echo(f"{row['open_sessions']:>8,} {name:>5} {f['callback_p50_us'] / 1000:>6.2f} "
                       f"{f['callback_p99_us'] / 1000:>6.2f} {f['callback_max_us'] / 1000:>7.2f} "
                       f"{(f['write_callback_median_us'] or 0) / 1000:>9.2f} {(f['write_callback_max_us'] or 0) / 1000:>9.2f} "
                       f"{f['cpu_ms_per_s']:>8.2f} {f['encoded_ahead_per_run']:>9.0f} {f['encoded_at_write_per_run']:>12.0f}")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
