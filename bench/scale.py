"""Cost as the work grows (issue 19): many open sessions (:func:`run_sessions`) and a soak (:func:`run_soak`).

Both run the job (the ``job`` target of bench/targets.py: its own command on the local mini-cluster, every
event traced) on its own topics and Redis prefix, fed by :class:`bench.loadgen.EventStream` (synthetic
load built from real sessions, see bench/loadgen.py), and read the job's own figures:

* **latency**: append -> readable per event (bench/levels.py ``read_trace``), nearest-rank p50/p99;
* **heap**: ``Status.JVM.Memory.Heap.Used`` of the mini-cluster's TaskManager (bench/flinkrest.py; the
  JVM also hosts the JobManager and the embedded CPython, whose memory is *not* Java heap); the soak also
  measures the **live heap**: heap used right after a full collection it forces (``jcmd <pid> GC.run``,
  then ``GC.heap_info``) every ``live_heap_every_min`` minutes, with the JVM's heap fixed (``-Xms = -Xmx``).
  The floor of the 5-s samples is not a leak test on its own: G1 grows the committed heap while it may,
  and old-generation garbage stays until a mixed collection, so the floor can climb with no leak at all
  (two 60-min soaks of the same code gave -11.9 and +13.6 MiB/min);
* **RSS**: ``VmRSS`` of the job's JVM (Java heap + the embedded CPython with its Python copy of the
  sessions + everything else of the process);
* **Flink state**: ``state_size`` of the latest completed checkpoint (hashmap backend, full snapshots:
  the pickled sessions, the pending list state of micro-batches, Kafka offsets, broadcast rules);
* **sessions in state**: the number of ``{rp}session:*`` keys in Redis (each changed session's summary
  is written within ``summary_interval_ms``, with the same TTL as its state);
* **Redis**: ``MEMORY USAGE`` of a sample of each key family of the prefix x its key count
  (:func:`bench.stats.redis_memory_estimate`); the benchmark's own ``trace`` stream is reported apart.

Sessions run, per count N: open N sessions (one event each, paced at ``open_rate_eps``), wait until the
job has processed them and a checkpoint holds them, a warm-up at ``rate_eps`` (``--warmup-s``, not
measured), then ``duration_s`` at ``rate_eps`` with N sessions
open (each next event from a uniformly drawn open session; a finished session is replaced by a new one),
then the recovery: SIGKILL the job's process group while the load goes on, restart it from the latest
retained checkpoint, and time kill -> first post-kill event readable and -> caught up
(:func:`bench.stats.recovery_figures`).

Soak: ``minutes`` at ``rate_eps`` with ``concurrent`` sessions open; every minute heap (min and max of
the 5-s samples: the min is the floor after collections), RSS, checkpointed state, Redis (whole
``used_memory`` of the shared server, and the prefix's keys), p99 of the minute; a line with a 95 %
interval fitted to each series over the minutes after ``warmup_min`` (:func:`bench.stats.slope_ci`).

Why this module is over 400 lines: one benchmark mode (open sessions, checkpoint and recovery, soak)
with the control of the job it measures; its statistics are in ``bench/stats.py`` and its report and
plots in ``bench/scale_report.py``.
"""
from __future__ import annotations

from collections.abc import Callable
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from bench.flinkrest import FlinkRest, find_rest_port
from bench.levels import _cleanup, read_trace
from bench.procs import load_avg_1m, proc_children, proc_name, proc_sample
from bench.stats import per_unit, percentiles, profile_shares, recovery_figures, redis_memory_estimate, slope_ci
from bench.targets import JOB_CONFIG_KEY, READY_TIMEOUT_S, start_target, stop_target

#: Rate of the opening pass of a sessions run, events/s (below the job's ~10k/s drain rate, measured in
#: bench/README.md, so the opening does not build a backlog beyond a few seconds).
OPEN_RATE_EPS = 4000
#: Keys of each Redis key family sampled with MEMORY USAGE (our choice: the mean of 200 keys).
REDIS_SAMPLE_KEYS = 200
#: Key families of the job in Redis (docs/contracts.md §5) that grow with sessions (TTL 30 min each).
SESSION_FAMILIES = ("session", "action", "seen")
#: Key families that grow with the event rate, not with sessions: ``agg`` (per content id, event type
#: and ``window_ms`` window, TTL 600 s: bounded by rate x TTL).
RATE_FAMILIES = ("agg",)
#: Heap and RSS sampling period of the soak and of a sessions level, s.
MEMORY_SAMPLE_S = 5.0
#: How long the load goes on after the SIGKILL in a recovery measurement, s (recovery target: 30 s).
RECOVERY_WINDOW_S = 60.0
#: Seconds of load before the SIGKILL (the job is busy when it dies).
KILL_AFTER_S = 5.0


def _jvm_pid(proc) -> int | None:
    kids = [p for p in proc_children(proc.pid) if proc_name(p) == "java"]
    return kids[0] if kids else None


def redis_prefix_memory(r, rp: str, sample: int = REDIS_SAMPLE_KEYS) -> dict:
    """Key counts and sampled ``MEMORY USAGE`` of every family ``{rp}<family>:...`` of the prefix."""
    keys: dict[str, list[bytes]] = {}
    counts: dict[str, int] = {}
    for key in r.scan_iter(match=rp + "*", count=2000):
        family = key[len(rp):].split(b":", 1)[0].decode()
        counts[family] = counts.get(family, 0) + 1
        bucket = keys.setdefault(family, [])
        if len(bucket) < sample:
            bucket.append(key)
    samples = {}
    for family, fam_keys in keys.items():
        pipe = r.pipeline(transaction=False)
        for key in fam_keys:
            pipe.memory_usage(key)
        sizes = [int(s) for s in pipe.execute() if s is not None]
        samples[family] = (counts[family], sizes)
    est = redis_memory_estimate(samples)
    est["session_families_bytes"] = sum(est[f]["total_bytes"] for f in SESSION_FAMILIES if f in est)
    est["rate_families_bytes"] = sum(est[f]["total_bytes"] for f in RATE_FAMILIES if f in est)
    return est


def _redis_used_memory(r) -> int:
    return int(r.info("memory")["used_memory"])


class MemorySampler(threading.Thread):
    """Heap (REST) and RSS (/proc) of the job's JVM every :data:`MEMORY_SAMPLE_S`."""

    def __init__(self, rest: FlinkRest, jvm_pid: int) -> None:
        super().__init__(daemon=True)
        self.rest, self.jvm_pid = rest, jvm_pid
        self.samples: list[dict] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while True:
            row = {"t": time.time()}
            try:
                row.update({f"heap_{k}_bytes": v for k, v in self.rest.heap().items()})
            except Exception:  # noqa: BLE001 - a busy REST endpoint: skip this sample
                pass
            s = proc_sample(self.jvm_pid)
            if s:
                row["rss_bytes"] = s[1] * 1024
            self.samples.append(row)
            if self.stop_event.wait(MEMORY_SAMPLE_S):
                return

    def take(self, since: float = 0.0) -> list[dict]:
        return [s for s in self.samples if s["t"] >= since]

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def _summary(rows: list[dict], key: str) -> dict:
    vals = [r[key] for r in rows if key in r]
    if not vals:
        return {"min": None, "max": None, "last": None}
    return {"min": min(vals), "max": max(vals), "last": vals[-1]}


class JobRun:
    """The job under test with its topic, Redis prefix, producer, REST endpoint and memory sampler."""

    def __init__(self, label: str, run_tag: str, run_dir: Path, window_ms: int, job_config: dict, say,
                 jvm_args: str = "", flink_conf: dict[str, str] | None = None) -> None:
        import redis

        from bench.loadgen import make_producer
        from intentflow.stack import create_topics
        from udfs.config import stack_settings

        self.settings = stack_settings()
        self.prefix = f"bench{run_tag}{label}."
        self.rp = f"bench:{run_tag}:{label}:"
        self.topic = self.prefix + "signals.raw"
        self.run_dir = run_dir / label
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.window_ms = window_ms
        self.job_config = job_config
        self.jvm_args = jvm_args
        self.flink_conf = dict(flink_conf or {})
        self.say = say
        create_topics(self.settings.kafka_bootstrap, prefix=self.prefix)
        self.r = redis.Redis.from_url(self.settings.redis_url)
        self.producer = make_producer(self.settings.kafka_bootstrap)
        self.proc = None
        self.rest: FlinkRest | None = None
        self.sampler: MemorySampler | None = None
        self.produced = 0

    def start(self, restore_path: str | None = None) -> None:
        conf: dict = dict(self.flink_conf)
        if self.job_config:
            conf[JOB_CONFIG_KEY] = self.job_config
        if restore_path:
            conf["execution.state-recovery.path"] = restore_path
        self.proc = start_target("job", self.prefix, self.rp, self.run_dir, self.window_ms, 1, conf,
                                 jvm_args=self.jvm_args)

    def processed(self) -> int:
        return int(self.r.hget(self.rp + "stats", "events") or 0)

    def wait_ready(self, stream) -> float:
        """Probe events until the job consumes; returns seconds. Then attach REST and the memory sampler."""
        from bench.loadgen import fill

        t0 = time.monotonic()
        while self.processed() == 0:
            if self.proc.poll() is not None:
                raise click.ClickException(f"the job exited with {self.proc.returncode}; see {self.run_dir}")
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                raise click.ClickException(f"the job consumed nothing within {READY_TIMEOUT_S:.0f} s")
            key, head, mid, tail = stream.take(1)[0]
            self.producer.send(self.topic, value=fill(head, mid, tail, time.time_ns() // 1_000_000), key=key)
            self.producer.flush()
            time.sleep(0.5)
        ready_s = time.monotonic() - t0
        time.sleep(1.0)
        self.produced = self.processed()
        self.attach()
        return round(ready_s, 1)

    def attach(self) -> None:
        pid = _jvm_pid(self.proc)
        port = find_rest_port(pid) if pid else None
        if port is None:
            raise click.ClickException("the job's REST endpoint was not found (ports 8081-8199 of its JVM)")
        self.rest = FlinkRest(port)
        self.jvm_pid = pid
        self.sampler = MemorySampler(self.rest, pid)
        self.sampler.start()

    def send(self, items, rate_eps, duration_s):
        from bench.loadgen import produce_level

        res = produce_level(self.producer, self.topic, items, rate_eps, duration_s)
        self.produced += res.sent
        return res

    def wait_drained(self, timeout_s: float = 300.0) -> tuple[bool, float]:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.processed() >= self.produced:
                return True, round(time.monotonic() - t0, 1)
            time.sleep(0.2)
        return False, round(time.monotonic() - t0, 1)

    def kill(self) -> None:
        """SIGKILL the job's process group (the client and its JVM with the mini-cluster) at once."""
        if self.sampler:
            self.sampler.finish()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def trim_trace(self, before_ms: int) -> None:
        """Drop the trace entries readable before ``before_ms`` (the soak reads each minute once)."""
        self.r.xtrim(self.rp + "trace", minid=f"{before_ms}-0", approximate=False)

    def close(self) -> None:
        if self.sampler:
            self.sampler.finish()
        if self.proc is not None:
            stop_target(self.proc)
        shutil.rmtree(self.run_dir / "checkpoints", ignore_errors=True)
        self.producer.close()
        _cleanup(self.settings, self.prefix, self.rp, self.r)


def run_sessions(n_sessions: int, run_tag: str, templates, seed: int, run_id: int, rate_eps: float,
                 duration_s: float, window_ms: int, run_dir: Path, say, recovery: bool = True,
                 open_rate_eps: float = OPEN_RATE_EPS, profile_s: float = 0.0, warmup_s: float = 0.0,
                 flink_conf: dict[str, str] | None = None) -> dict:
    """One session count: open, ``warmup_s`` at ``rate_eps`` (not measured), measure at ``rate_eps`` for
    ``duration_s``, then recover after a SIGKILL. ``flink_conf``: extra Flink settings of the job
    (``intentflow bench --flink-conf key=value``; experiments)."""
    from bench.loadgen import EventStream

    label = f"s{n_sessions}"
    job = JobRun(label, run_tag, run_dir, window_ms, {}, say, flink_conf=flink_conf)
    stream = EventStream(templates, run_id=run_id + n_sessions, seed=seed, concurrent=n_sessions)
    out: dict = {"sessions_open": n_sessions, "rate_eps": rate_eps, "duration_s": duration_s,
                 "load_avg_1m_at_start": load_avg_1m()}
    try:
        job.start()
        say(f"[{label}] job started; waiting until it consumes")
        out["ready_s"] = job.wait_ready(stream)
        opening = stream.open_each()
        say(f"[{label}] opening {n_sessions} sessions at {open_rate_eps:.0f}/s")
        res = job.send(opening, open_rate_eps, n_sessions / open_rate_eps + 60)
        drained, drain_s = job.wait_drained()
        out["open"] = {"sent": res.sent, "send_s": round(res.duration_s, 1), "drained": drained, "drain_s": drain_s}
        # a checkpoint that holds them: state writes every 10 s (spread over the shards), then a checkpoint
        cp = job.rest.wait_checkpoint_after(int(time.time() * 1000) + 10_500)
        out["checkpoint_after_open"] = cp
        say(f"[{label}] open and checkpointed ({cp and cp['state_size']} B); level {rate_eps:.0f}/s for "
            f"{duration_s:.0f} s (load avg {load_avg_1m()})")
        if warmup_s > 0:
            # the same sessions, at the level's rate, not measured: with 1,000 sessions the job has seen only
            # 1,000 events before the level (a cold start: 0.2-0.5 s latencies over the level's first 3-4 s
            # without this, measured 2026-12-04), with 100,000 it has seen 100,000
            say(f"[{label}] warm-up {warmup_s:.0f} s at {rate_eps:.0f}/s (not measured)")
            job.send(stream.take(int(rate_eps * warmup_s)), rate_eps, warmup_s)
            job.wait_drained(60)
            out["warmup_s"] = warmup_s
        items = stream.take(int(rate_eps * duration_s))
        out["load_avg_1m_at_level"] = load_avg_1m()
        t_level = time.time()
        spy = spy_out = None
        if profile_s > 0:
            spy_out = job.run_dir / "pyspy_level.txt"
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(job.jvm_pid),
                                    "-d", str(int(min(profile_s, duration_s))), "-r", "100", "--nonblocking",
                                    "--format", "raw", "-o", str(spy_out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = job.send(items, rate_eps, duration_s)
        drained, drain_s = job.wait_drained(60)
        trace = read_trace(job.r, job.rp + "trace", res.start_ms, res.end_ms)
        lat = percentiles([readable - kafka for readable, kafka, _ in trace])
        # the raw trace of the level, for a look at the tail: (readable ms, Kafka append ms, client ms) per event
        (job.run_dir / "trace_level.json").write_text(json.dumps(trace))
        by_second: dict[int, list[int]] = {}
        for readable, kafka, _ in trace:
            by_second.setdefault((kafka - res.start_ms) // 1000, []).append(readable - kafka)
        mem_rows = job.sampler.take(t_level)
        history = (job.rest.checkpoints() or {}).get("history") or []
        checkpoints_in_level = sorted(
            [round((h["trigger_timestamp"] - res.start_ms) / 1000, 2), h.get("end_to_end_duration")]
            for h in history if res.start_ms <= (h.get("trigger_timestamp") or 0) <= res.end_ms)
        out["level"] = {"sent": res.sent, "achieved_eps": round(res.achieved_eps, 1), "drained": drained,
                        "drain_s": drain_s, "traced": lat.pop("n"), **lat,
                        # where the tail comes from: the p99 of the events appended in each second of the level
                        "p99_ms_by_second": [percentiles(v)["p99_ms"] for _, v in sorted(by_second.items())],
                        # [s after the level's start, end-to-end ms] of the checkpoints triggered in the level
                        "checkpoints_in_level": checkpoints_in_level,
                        "heap_used_bytes": _summary(mem_rows, "heap_used_bytes"),
                        "heap_max_bytes": _summary(mem_rows, "heap_max_bytes")["last"],
                        "rss_bytes": _summary(mem_rows, "rss_bytes"),
                        "load_avg_1m_at_end": load_avg_1m()}
        if spy is not None:
            spy.wait(timeout=60)
            if spy_out.exists():
                out["level"]["py_spy_profile"] = {"seconds": int(min(profile_s, duration_s)), "rate_hz": 100,
                                                  **profile_shares(spy_out.read_text())}
        # state figures: a checkpoint triggered after the level's sessions were written
        cp = job.rest.wait_checkpoint_after(int(time.time() * 1000) + 10_500)
        redis_mem = redis_prefix_memory(job.r, job.rp)
        n_state = redis_mem.get("session", {}).get("keys")
        # every event of the run so far is within the aggregates' 600-s TTL: bytes per event of the ``agg`` keys
        out["events_produced_at_redis_scan"] = job.produced
        out["redis_agg_bytes_per_event"] = per_unit(redis_mem["rate_families_bytes"], job.produced)
        out["sessions_in_state"] = n_state
        out["checkpoint"] = cp
        out["flink_state_bytes_per_session"] = per_unit(cp and cp["state_size"], n_state)
        out["redis"] = redis_mem
        out["redis_bytes_per_session"] = per_unit(redis_mem["session_families_bytes"], n_state)
        heap_floor = out["level"]["heap_used_bytes"]["min"]
        out["heap_floor_bytes_per_session"] = per_unit(heap_floor, n_state)
        out["rss_bytes_per_session"] = per_unit(out["level"]["rss_bytes"]["last"], n_state)
        say(f"[{label}] p50 {lat['p50_ms']} p99 {lat['p99_ms']} ms; {n_state} sessions in state; checkpoint "
            f"{cp and cp['state_size']} B in {cp and cp['end_to_end_duration']} ms; heap "
            f"{out['level']['heap_used_bytes']}; redis {redis_mem['session_families_bytes']} B")
        if recovery and cp:
            out["recovery"] = _recover(job, stream, rate_eps, say, label, caught_up_ms=max(1000.0, lat["p99_ms"] or 0))
    finally:
        job.close()
    return out


def _recover(job: JobRun, stream, rate_eps: float, say, label: str, caught_up_ms: float = 1000.0) -> dict:
    """Load on; SIGKILL after :data:`KILL_AFTER_S`; restart from the latest retained checkpoint. Caught up:
    an event readable within ``caught_up_ms`` of its append (1 s, or the level's p99 when that is higher)."""
    cp = job.rest.latest_checkpoint()
    path = cp["external_path"].replace("file:", "", 1) if cp and cp.get("external_path") else None
    items = stream.take(int(rate_eps * (KILL_AFTER_S + RECOVERY_WINDOW_S)))
    result: dict = {}
    sender = threading.Thread(target=lambda: result.update(res=job.send(items, rate_eps,
                                                                         KILL_AFTER_S + RECOVERY_WINDOW_S)))
    sender.start()
    time.sleep(KILL_AFTER_S)
    cp = job.rest.latest_checkpoint() or cp
    path = cp["external_path"].replace("file:", "", 1) if cp and cp.get("external_path") else path
    kill_ms = int(time.time() * 1000)
    job.kill()
    job.start(restore_path=path)
    t_restart = time.time()
    say(f"[{label}] SIGKILL; restarted from checkpoint {cp and cp.get('id')} ({path})")
    sender.join()
    res = result["res"]
    job.wait_drained(60)
    trace = read_trace(job.r, job.rp + "trace", kill_ms, res.end_ms)
    fig = recovery_figures(trace, kill_ms, caught_up_ms)
    # the restarted job's first output of any event (those since the checkpoint are decided again first)
    first = job.r.xrange(job.rp + "trace", min=f"{kill_ms + 1000}-0", max="+", count=1)
    fig["first_output_after_kill_s"] = (round((int(first[0][0].split(b"-")[0]) - kill_ms) / 1000.0, 2)
                                        if first else None)
    # how far behind the job still was at the end of the window: latency of the last 10 s of sent events
    tail = percentiles([readable - kafka for readable, kafka, client in trace if client >= res.end_ms - 10_000])
    fig["last_10s_of_load"] = {"p50_ms": tail["p50_ms"], "p99_ms": tail["p99_ms"], "traced": tail["n"]}
    fig.update({"caught_up_ms": caught_up_ms, "checkpoint_id": cp and cp.get("id"), "checkpoint_state_bytes": cp and cp.get("state_size"),
                "restart_launch_s": round(t_restart - kill_ms / 1000.0, 2), "rate_eps": rate_eps,
                "load_avg_1m": load_avg_1m()})
    say(f"[{label}] recovery: first post-kill event readable after {fig['first_readable_s']} s, caught up "
        f"after {fig['caught_up_s']} s")
    return fig


_HEAP_INFO_USED = re.compile(r"garbage-first heap\s+total (\d+)K, used (\d+)K")


def parse_heap_info(text: str) -> tuple[int, int] | None:
    """(total, used) heap bytes from the first line of ``jcmd <pid> GC.heap_info`` (G1:
    ``garbage-first heap   total 3145728K, used 712345K [...]``), or None for another collector's output."""
    m = _HEAP_INFO_USED.search(text)
    return (int(m.group(1)) * 1024, int(m.group(2)) * 1024) if m else None


def live_heap(jvm_pid: int, timeout_s: float = 120.0) -> dict:
    """Force a full collection of the JVM ``jvm_pid`` and read the heap used after it.

    Returns ``{"heap_live_bytes": int | None, "forced_gc_s": float}``: bytes still referenced after
    ``jcmd <pid> GC.run`` (``System.gc()``, a stop-the-world full collection with G1), and how long the
    command took (an upper bound of the pause the job saw; the minute after it carries that pause in its
    p99). Errors of ``jcmd`` leave ``heap_live_bytes`` None.
    """
    t0 = time.monotonic()
    try:
        subprocess.run(["jcmd", str(jvm_pid), "GC.run"], capture_output=True, text=True, timeout=timeout_s,
                       check=True)
        gc_s = time.monotonic() - t0
        info = subprocess.run(["jcmd", str(jvm_pid), "GC.heap_info"], capture_output=True, text=True,
                              timeout=timeout_s, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"heap_live_bytes": None, "forced_gc_s": round(time.monotonic() - t0, 2)}
    parsed = parse_heap_info(info)
    return {"heap_live_bytes": parsed[1] if parsed else None, "forced_gc_s": round(gc_s, 2)}


def run_soak(minutes: float, run_tag: str, templates, seed: int, run_id: int, rate_eps: float, concurrent: int,
             session_ttl_s: int, window_ms: int, run_dir: Path, say, warmup_min: float,
             on_minute=None, heap_mb: int = 0, live_heap_every_min: int = 0) -> dict:
    """``minutes`` at ``rate_eps`` with ``concurrent`` sessions open; the per-minute series and their slopes.

    Args:
        heap_mb: fixed Java heap of the job's JVM (``-Xms = -Xmx``), MiB; 0 leaves the JVM's default.
        live_heap_every_min: force a full collection and record the live heap (:func:`live_heap`) at the
            end of every this many minutes; 0 never.
    """
    from bench.loadgen import EventStream

    label = "soak"
    job_config = {"session_ttl_s": session_ttl_s, "action_ttl_s": session_ttl_s}
    # AlwaysPreTouch: the whole heap is resident from the start, so RSS growth is growth outside the heap
    # (without it RSS climbs while G1 touches heap regions for the first time: +11.9 MB/min in the 3-GB soak
    # of 2026-12-04 14:45, with the live heap flat)
    jvm_args = f"-Xms{heap_mb}m -Xmx{heap_mb}m -XX:+AlwaysPreTouch" if heap_mb else ""
    job = JobRun(label, run_tag, run_dir, window_ms, job_config, say, jvm_args=jvm_args)
    stream = EventStream(templates, run_id=run_id, seed=seed, concurrent=concurrent)
    out: dict = {"minutes_planned": minutes, "rate_eps": rate_eps, "concurrent_sessions": concurrent,
                 "session_ttl_s": session_ttl_s, "action_ttl_s": session_ttl_s, "warmup_min": warmup_min,
                 "heap_mb": heap_mb or None, "live_heap_every_min": live_heap_every_min or None,
                 "load_avg_1m_at_start": load_avg_1m(), "minutes": []}
    chunk_s = 10.0
    stop = threading.Event()
    try:
        job.start()
        say(f"[soak] job started (TTL {session_ttl_s} s); waiting until it consumes")
        out["ready_s"] = job.wait_ready(stream)
        say(f"[soak] consuming after {out['ready_s']} s; {minutes:g} min at {rate_eps:.0f}/s, {concurrent} open sessions")
        # The load runs in its own thread, without pause; this thread measures at each minute's end.
        from bench.loadgen import produce_level

        progress = [job.produced]  # events handed to the producer so far, updated after every burst

        def sender() -> None:
            while not stop.is_set():
                items = stream.take(int(rate_eps * chunk_s))
                res = produce_level(job.producer, job.topic, items, rate_eps, chunk_s, progress)
                job.produced += res.sent

        t0 = time.time()
        feeder = threading.Thread(target=sender, daemon=True)
        feeder.start()
        minute = 0
        sent_before = progress[0]
        while minute < minutes:
            m_start = t0 + 60.0 * minute
            m_start_ms = int(m_start * 1000)
            load = load_avg_1m()
            time.sleep(max(0.0, m_start + 60.0 - time.time()))
            m_end_ms = int(time.time() * 1000)
            sent = progress[0] - sent_before
            sent_before = progress[0]
            send_s = (m_end_ms - max(m_start_ms, int(t0 * 1000))) / 1000.0
            lag = progress[0] - job.processed()
            time.sleep(1.0)  # the minute's last events become readable
            trace = read_trace(job.r, job.rp + "trace", m_start_ms, m_end_ms)
            lat = percentiles([readable - kafka for readable, kafka, _ in trace])
            job.trim_trace(m_start_ms)
            mem = job.sampler.take(m_start)
            try:
                cp = job.rest.latest_checkpoint()
            except Exception:  # noqa: BLE001
                cp = None
            redis_mem = redis_prefix_memory(job.r, job.rp)
            row = {"minute": minute + 1, "t_s": round(time.time() - t0, 1), "sent": sent,
                   "achieved_eps": round(sent / send_s, 1) if send_s else None,
                   "lag_events": lag,
                   "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "traced": lat["n"],
                   # events of the minute not readable yet have no latency: the percentiles are then a lower bound
                   "percentiles_are_lower_bounds": lat["n"] < 0.99 * sent,
                   "heap_used_min_bytes": _summary(mem, "heap_used_bytes")["min"],
                   "heap_used_max_bytes": _summary(mem, "heap_used_bytes")["max"],
                   "heap_committed_bytes": _summary(mem, "heap_committed_bytes")["last"],
                   "rss_bytes": _summary(mem, "rss_bytes")["last"],
                   "checkpoint_state_bytes": cp and cp.get("state_size"),
                   "checkpoint_duration_ms": cp and cp.get("end_to_end_duration"),
                   "sessions_in_state": redis_mem.get("session", {}).get("keys"),
                   "redis_session_families_bytes": redis_mem["session_families_bytes"],
                   "redis_rate_families_bytes": redis_mem["rate_families_bytes"],
                   "redis_prefix_bytes_excl_trace": redis_mem["total_bytes"]
                   - redis_mem.get("trace", {}).get("total_bytes", 0),
                   "redis_used_memory_bytes": _redis_used_memory(job.r), "load_avg_1m": load,
                   # every key family of the prefix, so a slope can be traced to the family that grows
                   "redis_families": {family: {"keys": est["keys"], "bytes": est["total_bytes"]}
                                      for family, est in redis_mem.items() if isinstance(est, dict)}}
            if live_heap_every_min and (minute + 1) % live_heap_every_min == 0:
                # after the minute's figures: the pause lands in the next minute, which is marked
                row.update(live_heap(job.jvm_pid))
            row["forced_gc_in_minute"] = bool(out["minutes"] and out["minutes"][-1].get("forced_gc_s") is not None)
            out["minutes"].append(row)
            minute += 1
            say(f"[soak] minute {minute}: p99 {row['p99_ms']} ms, live heap {row.get('heap_live_bytes')} B "
                f"(full GC {row.get('forced_gc_s')} s), heap {row['heap_used_min_bytes']}-"
                f"{row['heap_used_max_bytes']} B, rss {row['rss_bytes']} B, state {row['checkpoint_state_bytes']} B, "
                f"{row['sessions_in_state']} sessions, redis prefix {row['redis_prefix_bytes_excl_trace']} B, "
                f"lag {row['lag_events']}, load {load}")
            if on_minute:
                out["slopes"] = soak_slopes(out["minutes"], warmup_min)
                out["redis_family_slopes"] = redis_family_slopes(out["minutes"], warmup_min)
                on_minute(out)
        stop.set()
        feeder.join(timeout=2 * chunk_s)
        out["slopes"] = soak_slopes(out["minutes"], warmup_min)
        out["redis_family_slopes"] = redis_family_slopes(out["minutes"], warmup_min)
    finally:
        stop.set()
        job.close()
    return out


#: Series of the soak fitted with a line (per minute), and their units.
SOAK_SERIES = {"heap_live_bytes": "bytes/min", "heap_used_min_bytes": "bytes/min", "heap_committed_bytes": "bytes/min", "rss_bytes": "bytes/min", "checkpoint_state_bytes": "bytes/min",
               "redis_prefix_bytes_excl_trace": "bytes/min", "redis_session_families_bytes": "bytes/min", "redis_used_memory_bytes": "bytes/min",
               "sessions_in_state": "sessions/min", "p99_ms": "ms/min"}


def _fit_after_warmup(minutes: list[dict], value: Callable[[dict], float | None], warmup_min: float,
                      unit: str) -> dict:
    """:func:`bench.stats.slope_ci` of ``value(minute row)`` over the minutes after ``warmup_min``
    (rows where it is None left out), with its unit and mean."""
    pts = [(m["minute"], v) for m in minutes if m["minute"] > warmup_min and (v := value(m)) is not None]
    fit = slope_ci([p[0] for p in pts], [float(p[1]) for p in pts])
    fit["unit"] = unit
    fit["mean"] = sum(p[1] for p in pts) / len(pts) if pts else None
    return fit


def _per_session(key: str) -> Callable[[dict], float | None]:
    def value(m: dict) -> float | None:
        v, n = m.get(key), m.get("sessions_in_state")
        return v / n if v is not None and n else None
    return value


#: Series of the soak divided by the sessions in state: a total can grow only because the load's number of
#: sessions in state is still converging (arrivals against the TTL); the per-session figure separates that
#: from a leak (bytes per session that grow).
SOAK_PER_SESSION_SERIES = {"redis_session_bytes_per_session": "redis_session_families_bytes",
                           "checkpoint_state_bytes_per_session": "checkpoint_state_bytes"}


#: The Redis family of the actions stream (``{p}actions``, XADD with an approximate MAXLEN of
#: ``actions_stream_maxlen``, udfs/config.py): bounded by construction, but it fills for MAXLEN / actions per
#: second (about 19 min in the 60-min soak at 2,000 events/s: 100,000 entries at ~86 actions/s), which can
#: outlast the warm-up; its fill is a slope of the prefix's total that is not a leak.
CAPPED_STREAM_FAMILY = "actions"


def _redis_prefix_excl_capped_stream(m: dict) -> float | None:
    """The job's Redis keys without the benchmark's trace stream and without the capped actions stream
    (:data:`CAPPED_STREAM_FAMILY`): what must stay flat once the TTLs have turned over. None when the
    minute has no per-family figures."""
    total, families = m.get("redis_prefix_bytes_excl_trace"), m.get("redis_families")
    if total is None or not families:
        return None
    return total - (families.get(CAPPED_STREAM_FAMILY) or {}).get("bytes", 0)


#: Series of the soak derived from a minute row: {name: (function of the row, unit)}.
SOAK_DERIVED_SERIES = {"redis_prefix_bytes_excl_trace_and_actions_stream": (_redis_prefix_excl_capped_stream,
                                                                             "bytes/min")}


def soak_slopes(minutes: list[dict], warmup_min: float) -> dict:
    """:func:`bench.stats.slope_ci` of each :data:`SOAK_SERIES`, :data:`SOAK_DERIVED_SERIES` and
    :data:`SOAK_PER_SESSION_SERIES` over the minutes after ``warmup_min``."""
    fits = {key: _fit_after_warmup(minutes, lambda m, k=key: m.get(k), warmup_min, unit)
            for key, unit in SOAK_SERIES.items()}
    for name, (value, unit) in SOAK_DERIVED_SERIES.items():
        fits[name] = _fit_after_warmup(minutes, value, warmup_min, unit)
    for name, key in SOAK_PER_SESSION_SERIES.items():
        fits[name] = _fit_after_warmup(minutes, _per_session(key), warmup_min, "bytes/session/min")
    return fits


def redis_family_slopes(minutes: list[dict], warmup_min: float) -> dict:
    """The same fit (bytes/min) of each Redis key family's estimated bytes (``redis_families`` of a
    soak minute): which family a slope of the prefix's memory comes from."""
    families = sorted({f for m in minutes for f in (m.get("redis_families") or {})})
    return {family: _fit_after_warmup(
        minutes, lambda m, f=family: ((m.get("redis_families") or {}).get(f) or {}).get("bytes"), warmup_min,
        "bytes/min") for family in families}


#: Figures of a sessions run fitted against the sessions in state (the marginal cost of one more session).
MARGINAL_SERIES = {"flink_state": ("checkpoint", "state_size"), "heap_used_min": ("level", "heap_used_bytes", "min"),
                   "jvm_rss": ("level", "rss_bytes", "last"), "redis_session_keys": ("redis", "session_families_bytes")}


def _dig(row: dict, path: tuple):
    for k in path:
        row = (row or {}).get(k)
    return row


def marginal_costs(counts: list[dict]) -> dict:
    """Bytes per additional session in state, per :data:`MARGINAL_SERIES`: the slope of the figure over
    ``sessions_in_state`` across the session counts (:func:`bench.stats.slope_ci`; fixed costs such as
    the pending micro-batches in list state, the JVM and the interpreter cancel out). With fewer than
    3 counts: the two-point slope, no interval."""
    out = {}
    for name, path in MARGINAL_SERIES.items():
        pts = [(r["sessions_in_state"], _dig(r, path)) for r in counts
               if r.get("sessions_in_state") and _dig(r, path) is not None]
        if len(pts) >= 3:
            fit = slope_ci([float(p[0]) for p in pts], [float(p[1]) for p in pts])
        elif len(pts) == 2 and pts[1][0] != pts[0][0]:
            slope = (pts[1][1] - pts[0][1]) / (pts[1][0] - pts[0][0])
            fit = {"slope": slope, "ci_low": None, "ci_high": None, "n": 2}
        else:
            fit = {"slope": None, "n": len(pts)}
        fit["unit"] = "bytes per session in state"
        out[name] = fit
    return out
