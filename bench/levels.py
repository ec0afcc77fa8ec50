"""One target under load: paced latency levels (:func:`run_target`) and the flat-out drain run
(:func:`run_drain`), with the figures of each level. Method: bench/run.py's docstring."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from bench.procs import CLK_TCK, Sampler, load_avg_1m, proc_children, proc_name, proc_sample
from bench.stats import by_second, lag_trend, percentiles, profile_shares
from bench.targets import (CLUSTER_PARALLELISM, CLUSTER_TARGET, READY_TIMEOUT_S, ClusterJob, _stack_pid,
                           start_target, stop_target, target_pids)

#: Offered rates of the paced levels, events/s (issue 7); ``None`` = flat out.
LEVELS_EPS: tuple[float | None, ...] = (500, 1000, 2000, 5000, None)
#: Warm-up before the first level (JIT, Python imports, first ONNX calls), events/s.
WARMUP_RATE_EPS = 1000
#: Flat-out level: events pre-built per second of duration (above what one kafka-python producer
#: sent on this machine, measured 9.8-14.9k/s; the level ends early if they run out: see ``send_s``).
FLAT_OUT_BUILD_EPS = 20_000


def read_trace(redis_client, key: str, start_ms: int, end_ms: int) -> list[tuple[int, int, int]]:
    """``(readable_ms, kafka_ts_ms, client_ts_ms)`` of traced events sent in ``[start_ms, end_ms]``
    (client clock), from the ``trace`` stream of ``connectors.redis_store`` (one entry per pipeline,
    ``readable_ms`` = the time of its id), read in pages of :data:`TRACE_PAGE_ENTRIES` entries."""
    from connectors.redis_store import decode_trace

    out = []
    cursor = f"{start_ms}-0"
    while True:
        chunk = redis_client.xrange(key, min=cursor, max="+", count=TRACE_PAGE_ENTRIES)
        if not chunk:
            break
        for entry_id, fields in chunk:
            readable_ms = int(entry_id.split(b"-")[0])
            for _event_id, kafka_ms, client_ms, _ts in decode_trace(fields[b"events"]):
                if start_ms <= client_ms <= end_ms:
                    out.append((readable_ms, kafka_ms, client_ms))
        last = chunk[-1][0].decode()
        ms, seq = last.split("-")
        cursor = f"{ms}-{int(seq) + 1}"
        if len(chunk) < TRACE_PAGE_ENTRIES:
            break
    return out


#: Entries of the trace stream read per XRANGE call.
TRACE_PAGE_ENTRIES = 2_000


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
    fig["by_second"] = by_second(trace, res.start_ms)
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
