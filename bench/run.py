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
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
#: Offered rates of the paced levels, events/s (issue 7); ``None`` = flat out.
LEVELS_EPS: tuple[float | None, ...] = (500, 1000, 2000, 5000, None)
#: Warm-up before the first level (JIT, Python imports, first ONNX calls), events/s.
WARMUP_RATE_EPS = 1000
#: Flat-out level: events pre-built per second of duration (above what one kafka-python producer
#: sent on this machine, measured 9.8-14.9k/s; the level ends early if they run out: see ``send_s``).
FLAT_OUT_BUILD_EPS = 20_000
#: Sampling period of lag, CPU and RSS, s.
SAMPLE_EVERY_S = 0.5
#: Lag is "growing" when its fitted slope exceeds this fraction of the offered (achieved) rate, i.e.
#: the target falls behind by more than 2 % of what arrives. Our choice.
LAG_GROWTH_FRACTION = 0.02
#: Max wait for the job to consume its first probe (JVM + mini-cluster start, ~10-20 s here), s.
READY_TIMEOUT_S = 180.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The job's mini-cluster REST endpoint binds the first free port of this range (flink-conf/config.yaml
#: pins 8081, which another job on a shared machine may hold); nothing else of the job's config changes.
REST_BIND_CONF = {"rest.bind-port": "8081-8199"}


# ----------------------------------------------------------------------------------- pure parts

def percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99 and max of ``values`` (ms): pXX = the ceil(XX/100 * n)-th smallest."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "n": 0}
    s = sorted(values)
    n = len(s)

    def rank(p: float) -> float:
        return float(s[max(1, math.ceil(p / 100.0 * n)) - 1])

    return {"p50_ms": rank(50), "p95_ms": rank(95), "p99_ms": rank(99), "max_ms": float(s[-1]), "n": n}


def lag_trend(samples: list[tuple[float, int]], rate_eps: float) -> dict:
    """Least-squares slope of lag (events) over time (s) and whether it stays bounded.

    Args:
        samples: ``(seconds since level start, lag in events)``.
        rate_eps: the rate the target was offered, events/s.

    Returns:
        ``{"slope_eps", "max_lag", "end_lag", "bounded"}``; bounded when the slope is at most
        :data:`LAG_GROWTH_FRACTION` * ``rate_eps`` (or fewer than 3 samples: unknown -> True).
    """
    if not samples:
        return {"slope_eps": None, "max_lag": None, "end_lag": None, "bounded": True}
    n = len(samples)
    max_lag = max(lag for _, lag in samples)
    if n < 3:
        return {"slope_eps": None, "max_lag": max_lag, "end_lag": samples[-1][1], "bounded": True}
    mt = sum(t for t, _ in samples) / n
    ml = sum(lag for _, lag in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    slope = sum((t - mt) * (lag - ml) for t, lag in samples) / var if var else 0.0
    return {"slope_eps": round(slope, 1), "max_lag": max_lag, "end_lag": samples[-1][1],
            "bounded": slope <= LAG_GROWTH_FRACTION * max(rate_eps, 1.0)}


def ratio(ours: float | None, base: float | None) -> float | None:
    """``ours / base`` rounded to 2 places, None when either is missing or base is 0."""
    if ours is None or not base:
        return None
    return round(ours / base, 2)


#: Categories of a py-spy stack of the job's embedded Python, first match wins (see classify_stack).
PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("keyed_state_get_put_pickle", ("state_impl.py",)),
    ("onnx_scoring", ("udfs/scoring.py",)),
    ("redis_pipeline", ("redis_actions.py",)),
    ("parse_validate", ("udfs/contract.py", "ParseEvent.")),
    ("decide_features_rules", ("udfs/decide.py", "udfs/session.py", "udfs/rules.py", "udfs/features.py",
                               "udfs/noise.py")),
    ("operator_and_pyflink_runtime", ("pyflink/", "operators/")),
)


def classify_stack(frames: list[str]) -> str | None:
    """Category of one sampled stack (frames root -> leaf); None for an empty (idle) stack."""
    frames = [f for f in frames if f]
    if not frames:
        return None
    for name, needles in PROFILE_CATEGORIES:
        if any(n in f for f in frames for n in needles):
            return name
    return "other"


def profile_shares(raw_text: str) -> dict:
    """py-spy ``--format raw`` text -> share of busy samples per category (0-1) and the sample counts."""
    counts: dict[str, int] = {}
    idle = 0
    for line in raw_text.splitlines():
        if not line.strip():
            continue
        stack, _, n = line.rpartition(" ")
        category = classify_stack(stack.split(";"))
        if category is None:
            idle += int(n)
        else:
            counts[category] = counts.get(category, 0) + int(n)
    busy = sum(counts.values())
    return {"busy_samples": busy, "idle_samples": idle,
            "share_of_busy": {k: round(v / busy, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
            if busy else {}}


# ----------------------------------------------------------------------------------- /proc

def proc_children(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc/*/stat ppid fields)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def proc_sample(pid: int) -> tuple[int, int] | None:
    """``(utime+stime in clock ticks, VmRSS in KiB)`` of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        rss_kb = 0
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
                    break
        return ticks, rss_kb
    except (OSError, ValueError, IndexError):
        return None


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class Sampler(threading.Thread):
    """Samples CPU ticks and RSS of process groups, and produced/processed counts, every SAMPLE_EVERY_S."""

    def __init__(self, groups: dict[str, list[int]], progress: list[int], redis_client, stats_key: str) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.progress = progress
        self.redis = redis_client
        self.stats_key = stats_key
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()
        self.first = self._ticks()
        self.peak_kb = {g: 0 for g in groups}
        self.lag: list[tuple[float, int]] = []
        self.processed: list[tuple[float, int]] = []

    def _ticks(self) -> dict[str, int]:
        out = {}
        for group, pids in self.groups.items():
            total = 0
            rss = 0
            for pid in pids:
                s = proc_sample(pid)
                if s:
                    total += s[0]
                    rss += s[1]
            out[group] = total
            if hasattr(self, "peak_kb"):
                self.peak_kb[group] = max(self.peak_kb[group], rss)
        return out

    def processed_now(self) -> int:
        return int(self.redis.hget(self.stats_key, "events") or 0)

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_EVERY_S):
            t = time.monotonic() - self.t0
            self._ticks()
            done = self.processed_now()
            self.processed.append((t, done))
            self.lag.append((t, self.progress[0] - done))

    def finish(self) -> dict:
        self.stop_event.set()
        self.join()
        wall = time.monotonic() - self.t0
        last = self._ticks()
        return {"wall_s": round(wall, 2),
                "cpu_pct": {g: round(100.0 * (last[g] - self.first[g]) / CLK_TCK / wall, 1) for g in self.groups},
                "peak_rss_mb": {g: round(kb / 1024.0, 1) for g, kb in self.peak_kb.items()}}


# ----------------------------------------------------------------------------------- targets

def _stack_pid(name: str) -> int | None:
    try:
        pid = int((ROOT / ".stack" / "run" / f"{name}.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def quix_python() -> str:
    """The interpreter of the Quix Streams peer: ``.stack/venv-quix`` from bench/quix-requirements.txt, made on
    first use (quixstreams needs protobuf >= 6, apache-flink < 6: they cannot share the project's venv).

    Raises:
        click.ClickException: the virtualenv could not be made (pip's output in the message).
    """
    venv = ROOT / ".stack" / "venv-quix"
    req = ROOT / "bench" / "quix-requirements.txt"
    marker = venv / ".installed"
    if not marker.exists() or marker.stat().st_mtime < req.stat().st_mtime:
        for cmd in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(req)]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise click.ClickException(f"could not make {venv}: {res.stdout[-1500:]}{res.stderr[-1500:]}")
        marker.touch()
    return str(venv / "bin" / "python")


def start_target(target: str, prefix: str, redis_prefix: str, run_dir: Path, window_ms: int, parallelism: int,
                 flink_conf: dict[str, str], from_beginning: bool = False, trace_every_n: int = 1) -> subprocess.Popen:
    """Start ``job``, ``baseline`` or ``quix`` in its own process group, logging to ``run_dir``.

    Args:
        from_beginning: read the topic from its first offset (drain runs); else from its end.
        trace_every_n: 1 for latency levels (every event traced), 0 for drain runs.
    """
    env = dict(os.environ, INTENTFLOW_TOPIC_PREFIX=prefix, PYTHONWARNINGS="ignore")
    common = ["--redis-prefix", redis_prefix, "--trace-every-n", str(trace_every_n), "--window-ms", str(window_ms)]
    if target == "job":
        args = ["--start", "earliest" if from_beginning else "latest", *common, "--parallelism", str(parallelism),
                "--group-id", f"{prefix}personalization", "--checkpoint-dir", str(run_dir / "checkpoints")]
        # The job's own command (jobs.personalization:job_cmd) plus Flink settings: always
        # REST_BIND_CONF, so a mini-cluster of someone else on this machine holding 8081 does not fail us.
        cmd = [sys.executable, "-c", "from bench.run import job_with_conf; job_with_conf()",
               json.dumps({**REST_BIND_CONF, **flink_conf}), *args,
               *shlex.split(os.environ.get("INTENTFLOW_BENCH_JOB_ARGS", ""))]
    elif target == "quix":
        cmd = [quix_python(), "-m", "bench.quix_target", *common]
        if from_beginning:
            cmd.append("--from-beginning")
    else:
        cmd = [sys.executable, "-m", "bench.baseline", *common, "--hops-out", str(run_dir / "baseline_hops.jsonl")]
        if from_beginning:
            cmd.append("--from-beginning")
    log = open(run_dir / f"{target}.log", "ab")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def job_with_conf() -> None:
    """Entry of ``--flink-conf`` runs: the job's own command, with extra Flink settings (argv[1] JSON).

    Uses only the job's public pieces (``jobs.personalization.run`` with ``extra_conf``); the pipeline is
    built exactly as ``job_cmd`` builds it.
    """
    import jobs.personalization as jp

    extra = json.loads(sys.argv.pop(1))
    original = jp.run

    def run_with_extra(pipeline, job_name="intentflow-personalization", checkpoint_dir=None, extra_conf=None):
        return original(pipeline, job_name, checkpoint_dir, {**(extra_conf or {}), **extra})

    jp.run = run_with_extra
    jp.job_cmd()


def stop_target(proc: subprocess.Popen) -> None:
    """SIGTERM the target's process group, SIGKILL it after 15 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    try:  # the JVM may outlive the launcher for a moment
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_trace(redis_client, key: str, start_ms: int, end_ms: int) -> list[tuple[int, int, int]]:
    """``(readable_ms, kafka_ts_ms, client_ts_ms)`` of traced events sent in ``[start_ms, end_ms]``."""
    out = []
    cursor = f"{start_ms}-0"
    while True:
        chunk = redis_client.xrange(key, min=cursor, max="+", count=20_000)
        if not chunk:
            break
        for entry_id, fields in chunk:
            client_ms = int(fields[b"client_ts_ms"])
            if start_ms <= client_ms <= end_ms:
                out.append((int(entry_id.split(b"-")[0]), int(fields[b"kafka_ts_ms"]), client_ms))
        last = chunk[-1][0].decode()
        ms, seq = last.split("-")
        cursor = f"{ms}-{int(seq) + 1}"
        if len(chunk) < 20_000:
            break
    return out


def load_avg_1m() -> float:
    return round(os.getloadavg()[0], 2)


def run_target(target: str, run_tag: str, templates, stream_seed: int, run_id: int, levels, duration_s: float,
               warmup_s: float, drain_timeout_s: float, window_ms: int, parallelism: int, run_dir: Path,
               flink_conf: dict[str, str], say, profile_s: float = 0.0, profile_level: str = "2000") -> dict:
    """Run every level against one target; return its per-level figures."""
    import redis

    from bench.loadgen import EventStream, fill, make_producer, produce_level
    from intentflow.stack import create_topics
    from udfs.config import stack_settings

    settings = stack_settings()
    prefix = f"bench{run_tag}{target}."
    rp = f"bench:{run_tag}:{target}:"
    topic = prefix + "signals.raw"
    create_topics(settings.kafka_bootstrap, prefix=prefix)
    r = redis.Redis.from_url(settings.redis_url)
    stream = EventStream(templates, run_id=run_id, seed=stream_seed)
    producer = make_producer(settings.kafka_bootstrap)
    proc = start_target(target, prefix, rp, run_dir, window_ms, parallelism, flink_conf)
    out: dict = {"topic_prefix": prefix, "redis_prefix": rp, "levels": []}
    produced_total = 0
    try:
        t_start = time.monotonic()
        say(f"[{target}] started pid {proc.pid}; waiting until it consumes")
        while int(r.hget(rp + "stats", "events") or 0) == 0:
            if proc.poll() is not None:
                raise click.ClickException(f"{target} exited with {proc.returncode}; see {run_dir / (target + '.log')}")
            if time.monotonic() - t_start > READY_TIMEOUT_S:
                raise click.ClickException(f"{target} consumed nothing within {READY_TIMEOUT_S:.0f} s")
            key, head, mid, tail = stream.take(1)[0]
            producer.send(topic, value=fill(head, mid, tail, time.time_ns() // 1_000_000), key=key)
            producer.flush()
            produced_total += 1
            time.sleep(0.5)
        out["ready_s"] = round(time.monotonic() - t_start, 1)
        # Probes sent before the target had its partitions were never read (it starts at the end):
        # count only what it consumed, so "drained" compares like with like.
        time.sleep(1.0)
        consumed = int(r.hget(rp + "stats", "events") or 0)
        out["probes_sent"], out["probes_consumed"] = produced_total, consumed
        produced_total = consumed
        say(f"[{target}] consuming after {out['ready_s']} s; warm-up {warmup_s:.0f} s at {WARMUP_RATE_EPS}/s")
        if warmup_s > 0:
            items = stream.take(int(WARMUP_RATE_EPS * warmup_s))
            produced_total += produce_level(producer, topic, items, WARMUP_RATE_EPS, warmup_s + 5).sent
            _drain(r, rp, produced_total, drain_timeout_s)

        def tree(pid: int | None) -> list[int]:
            return [pid, *proc_children(pid)] if pid else []

        pids = {"broker": tree(_stack_pid("kafka")), "redis": tree(_stack_pid("redis")), "loadgen": [os.getpid()]}
        children = proc_children(proc.pid)
        if target == "job":
            pids["job_jvm"] = [p for p in children if proc_name(p) == "java"]
            pids["job_client"] = [proc.pid] + [p for p in children if proc_name(p) != "java"]
        else:
            pids[target] = [proc.pid] + children
        out["pids"] = pids

        for rate in levels:
            n = int((rate or FLAT_OUT_BUILD_EPS) * duration_s)
            items = stream.take(n)
            label = str(rate) if rate else "max"
            load = load_avg_1m()
            progress = [produced_total]
            base_processed = int(r.hget(rp + "stats", "events") or 0)
            if target == "baseline":
                os.kill(proc.pid, signal.SIGUSR1)  # start the per-level hop figures afresh
            sampler = Sampler(pids, progress, r, rp + "stats")
            sampler.start()
            say(f"[{target}] level {label}: {n} events over {duration_s:.0f} s (load avg 1 min {load})")
            spy = None
            if profile_s > 0 and target == "job" and label == profile_level and pids.get("job_jvm"):
                spy_out = run_dir / f"pyspy_{label}.txt"
                spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p",
                                        str(pids["job_jvm"][0]), "-d", str(int(min(profile_s, duration_s))), "-r", "100",
                                        "--nonblocking", "--format", "raw", "-o", str(spy_out)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            res = produce_level(producer, topic, items, rate, duration_s, progress)
            produced_total += res.sent
            end_processed_in_level = sampler.processed_now()
            drained, drain_s = _drain(r, rp, produced_total, drain_timeout_s)
            usage = sampler.finish()
            if target == "baseline":
                os.kill(proc.pid, signal.SIGUSR1)
            trace = read_trace(r, rp + "trace", res.start_ms, res.end_ms)
            level = _level_figures(rate, res, trace, sampler, usage, load, drained, drain_s, base_processed,
                                   end_processed_in_level)
            if spy is not None:
                spy.wait(timeout=60)
                if spy_out.exists():
                    level["py_spy_profile"] = {"seconds": int(min(profile_s, duration_s)), "rate_hz": 100,
                                               **profile_shares(spy_out.read_text())}
            out["levels"].append(level)
            say(f"[{target}] level {label}: sent {res.sent} at {level['achieved_eps']:.0f}/s, processed "
                f"{level['processed_eps']:.0f}/s, p50 {level['p50_ms']} p99 {level['p99_ms']} max {level['max_ms']} ms"
                f", lag {'bounded' if level['lag']['bounded'] else 'GROWING'}"
                f"{'' if drained else ', NOT drained'}")
            time.sleep(1.0)
        if target == "baseline":
            time.sleep(0.5)
            hops_file = run_dir / "baseline_hops.jsonl"
            if hops_file.exists():
                lines = [json.loads(x) for x in hops_file.read_text().splitlines() if x.strip()]
                # SIGUSR1 at each level's start and after its drain: line 0 = probes + warm-up, then per
                # level i line 2i+1 = the level (incl. drain), line 2i+2 = the idle second after it.
                for i, level in enumerate(out["levels"]):
                    if 2 * i + 1 < len(lines):
                        level["hops"] = lines[2 * i + 1]
    finally:
        stop_target(proc)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        producer.close()
        out["exit_code"] = proc.returncode
        _cleanup(settings, prefix, rp, r)
    return out


def target_pids(target: str, proc: subprocess.Popen) -> list[int]:
    """The processes that do the target's work: the launcher and every descendant (the job's JVM too)."""
    return [proc.pid, *proc_children(proc.pid)]


def run_drain(target: str, run_tag: str, templates, stream_seed: int, run_id: int, n_events: int, window_ms: int,
              parallelism: int, run_dir: Path, flink_conf: dict[str, str], say, timeout_s: float = 600.0) -> dict:
    """Flat-out throughput as the drain rate of a topic filled before the target starts.

    ``n_events`` are produced into the target's own topic first; then the target starts from the first
    offset (no tracing) and the rate is measured from its first processed event to its last:
    ``drain_eps = (n_events - processed at first sample) / seconds between``; start-up (JVM, imports) is
    outside the window. CPU: ``core_ms_per_1k_events`` = CPU time of the target's processes (for the
    job: its JVM with the embedded Python, and its client) over the same window per 1,000 events.
    Sampled every 0.1 s.
    """
    import redis

    from bench.loadgen import EventStream, fill, make_producer
    from intentflow.stack import create_topics
    from udfs.config import stack_settings

    settings = stack_settings()
    prefix = f"bench{run_tag}{target}drain."
    rp = f"bench:{run_tag}:{target}drain:"
    create_topics(settings.kafka_bootstrap, prefix=prefix)
    r = redis.Redis.from_url(settings.redis_url)
    stream = EventStream(templates, run_id=run_id + 1, seed=stream_seed)
    producer = make_producer(settings.kafka_bootstrap)
    t_fill = time.monotonic()
    now_ms = time.time_ns() // 1_000_000
    for key, head, mid, tail in stream.take(n_events):
        producer.send(prefix + "signals.raw", value=fill(head, mid, tail, now_ms), key=key)
    producer.flush()
    producer.close()
    fill_s = time.monotonic() - t_fill
    say(f"[{target}] drain: {n_events} events in the topic ({n_events / fill_s:.0f}/s to fill); starting the target")
    load = load_avg_1m()
    cluster = None
    if target == CLUSTER_TARGET:
        cluster = ClusterJob(prefix, rp, window_ms, CLUSTER_PARALLELISM, run_dir)
        proc = cluster.proc
    else:
        proc = start_target(target, prefix, rp, run_dir, window_ms, parallelism, flink_conf, from_beginning=True,
                            trace_every_n=0)
    out: dict = {"events": n_events, "load_avg_1m_at_start": load}
    if cluster is not None:
        out["parallelism"] = CLUSTER_PARALLELISM
        out["taskmanagers"] = cluster.taskmanagers
    try:
        t_start = time.monotonic()
        first = None  # (t, processed, cpu ticks)
        last = None
        while time.monotonic() - t_start < timeout_s:
            if cluster is None and proc.poll() is not None:
                raise click.ClickException(f"{target} exited with {proc.returncode}; see {run_dir / (target + '.log')}")
            done = int(r.hget(rp + "stats", "events") or 0)
            now = time.monotonic()
            if done > 0:
                pids = cluster.pids() if cluster is not None else target_pids(target, proc)
                ticks = sum((proc_sample(pid) or (0, 0))[0] for pid in pids)
                if first is None:
                    first = (now, done, ticks)
                last = (now, done, ticks)
                if done >= n_events:
                    break
            time.sleep(0.1)
        if first is None or last is None or last[1] <= first[1]:
            raise click.ClickException(f"{target} processed nothing in {timeout_s:.0f} s of the drain")
        seconds = last[0] - first[0]
        events = last[1] - first[1]
        cpu_s = (last[2] - first[2]) / CLK_TCK
        out.update({"ready_s": round(first[0] - t_start, 1), "measured_events": events, "seconds": round(seconds, 2),
                    "drain_eps": round(events / seconds, 1), "drained": last[1] >= n_events,
                    "cpu_pct_of_one_core": round(100.0 * cpu_s / seconds, 1),
                    "core_ms_per_1k_events": round(cpu_s * 1000.0 / events * 1000.0, 1)})
        say(f"[{target}] drain: {out['drain_eps']:.0f} events/s, {out['core_ms_per_1k_events']} core-ms per 1,000 "
            f"events ({out['cpu_pct_of_one_core']} % of a core), load avg {load}")
    finally:
        if cluster is not None:
            cluster.stop()
        else:
            stop_target(proc)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        _cleanup(settings, prefix, rp, r)
    return out


#: Drain-only target: the job submitted to the local standalone cluster (flink-conf/: 2 TaskManagers x
#: 1 slot, each its own JVM and embedded CPython) at parallelism :data:`CLUSTER_PARALLELISM`.
CLUSTER_TARGET = "job-cluster-p2"
CLUSTER_PARALLELISM = 2


class ClusterJob:
    """The job on the standalone cluster (started here if it is not running, and then stopped again)."""

    def __init__(self, prefix: str, redis_prefix: str, window_ms: int, parallelism: int, run_dir: Path) -> None:
        from intentflow import stack as local_stack

        self.stack = local_stack
        self.started_here = not local_stack.status()["flink"]
        local_stack.start_flink_cluster()
        self.env = {**local_stack.standalone_flink_env(), "INTENTFLOW_TOPIC_PREFIX": prefix}
        flink = local_stack.flink_home() / "bin" / "flink"
        self.flink = ["bash", str(flink)]
        cmd = [*self.flink, "run", "-d", "-py", str(ROOT / "jobs" / "personalization.py"), "-pyexec", sys.executable,
               "--start", "earliest", "--parallelism", str(parallelism), "--redis-prefix", redis_prefix,
               "--trace-every-n", "0", "--window-ms", str(window_ms), "--group-id", f"{prefix}personalization"]
        res = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        (run_dir / f"{CLUSTER_TARGET}.log").write_text(res.stdout + res.stderr)
        import re

        match = re.search(r"JobID ([0-9a-f]{32})", res.stdout)
        if res.returncode != 0 or not match:
            self.stop()
            raise click.ClickException(f"could not submit the job to the cluster: {res.stdout[-1500:]}{res.stderr[-1500:]}")
        self.job_id = match.group(1)
        self.proc = subprocess.Popen(["sleep", "0"])  # placeholder handle; the work runs in the cluster
        self.taskmanagers = sum(1 for pid in self.pids() if "TaskManager" in _cmdline(pid))

    def pids(self) -> list[int]:
        """The cluster's JVMs (JobManager and TaskManagers, with their embedded CPython)."""
        return self.stack._flink_pids()

    def stop(self) -> None:
        job_id = getattr(self, "job_id", None)
        if job_id:
            subprocess.run([*self.flink, "cancel", job_id], env=self.env, capture_output=True, timeout=120)
            self.job_id = None
        if self.started_here:
            self.stack.stop_flink_cluster()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _drain(r, rp: str, produced_total: int, timeout_s: float) -> tuple[bool, float]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if int(r.hget(rp + "stats", "events") or 0) >= produced_total:
            return True, round(time.monotonic() - t0, 2)
        time.sleep(0.1)
    return False, round(time.monotonic() - t0, 2)


def _level_figures(rate, res, trace, sampler, usage, load, drained, drain_s, base_processed, end_processed) -> dict:
    append = [readable - kafka for readable, kafka, _ in trace]
    client = [readable - c for readable, _, c in trace]
    kafka_hop = [kafka - c for _, kafka, c in trace]
    fig = {"rate_eps": rate, "level": str(rate) if rate else "max", **percentiles(append)}
    fig["traced"] = fig.pop("n")
    fig["achieved_eps"] = round(res.achieved_eps, 1)
    fig["processed_eps"] = round((end_processed - base_processed) / res.duration_s, 1) if res.duration_s else None
    fig["sent"] = res.sent
    fig["send_s"] = round(res.duration_s, 2)
    fig["producer_errors"] = res.errors
    fig["client_to_readable"] = {k: v for k, v in percentiles(client).items() if k != "n"}
    fig["kafka_hop"] = {k: v for k, v in percentiles(kafka_hop).items() if k != "n"}
    lag = [(t, lag) for t, lag in sampler.lag if t <= res.duration_s]
    fig["lag"] = lag_trend(lag, res.achieved_eps)
    fig["drained"] = drained
    # Events the target had not processed when the drain wait ended have no trace entry: the
    # percentiles are then over the processed ones only, a lower bound of the true figures.
    fig["untraced"] = max(0, res.sent - fig["traced"])
    fig["percentiles_are_lower_bounds"] = fig["untraced"] > 0
    fig["drain_s"] = drain_s
    fig["load_avg_1m_at_start"] = load
    fig["cpu_pct_of_one_core"] = usage["cpu_pct"]
    fig["peak_rss_mb"] = usage["peak_rss_mb"]
    return fig


def _cleanup(settings, prefix: str, rp: str, r) -> None:
    """Delete this target's topics, consumer group and Redis keys."""
    from kafka.admin import KafkaAdminClient

    from udfs.config import Topics

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15000)
        try:
            existing = set(admin.list_topics())
            admin.delete_topics([t for t in Topics.with_prefix(prefix).all() if t in existing])
            try:
                admin.delete_consumer_groups([f"{prefix}personalization", f"{prefix}personalization-rules"])
            except Exception:  # noqa: BLE001 - the baseline has no group; the job may not have committed
                pass
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the results
        click.echo(f"[bench] cleanup of topics {prefix}* failed: {exc!r}", err=True)
    batch = []
    for key in r.scan_iter(match=rp + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            r.unlink(*batch)
            batch = []
    if batch:
        r.unlink(*batch)


# ----------------------------------------------------------------------------------- report

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


@click.command("bench")
@click.option("--duration-s", type=float, default=30.0, show_default=True, help="Seconds per level.")
@click.option("--warmup-s", type=float, default=10.0, show_default=True, help="Warm-up before the first level, s.")
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
@click.option("--window-ms", type=int, default=20, show_default=True)
@click.option("--parallelism", type=int, default=1, show_default=True)
@click.option("--drain-timeout-s", type=float, default=60.0, show_default=True)
@click.option("--flink-conf", multiple=True, help="key=value, extra Flink setting for the job (experiments).")
@click.option("--breakdown-level", default="2000", show_default=True)
@click.option("--profile-s", type=float, default=0.0, show_default=True,
              help="Record the job's embedded Python with py-spy (100 Hz) for this many seconds of the breakdown "
                   "level and add the share per hop to the results. It takes CPU: not for the headline figures.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=str(RESULTS / "latest.json"), show_default=True)
def bench_cmd(duration_s, warmup_s, quick, levels, targets, drain_events, drain_targets, window_ms, parallelism, drain_timeout_s, flink_conf,
              breakdown_level, profile_s, seed, out) -> None:
    """End-to-end latency and throughput of the job against the plain-Python baseline (issue 7)."""
    import redis

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
    r.ping()
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
    for target in target_list + [t for t in drain_list if t not in target_list]:
        if level_list and target in target_list:
            results["targets"][target] = run_target(target, run_tag, templates, seed, run_id, level_list, duration_s,
                                                    warmup_s, drain_timeout_s, window_ms, parallelism, run_dir, conf,
                                                    say, profile_s, breakdown_level)
        if target in drain_list:
            results["drain"][target] = run_drain(target, run_tag, templates, seed, run_id, drain_events, window_ms,
                                                 parallelism, run_dir, conf, say)
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


if __name__ == "__main__":
    bench_cmd()
