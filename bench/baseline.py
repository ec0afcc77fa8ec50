"""The benchmark's baseline: one plain Python process doing what the Flink job does per micro-batch.

kafka-python consumer on ``{prefix}signals.raw`` (all partitions assigned, starting at the end) ->
``udfs.contract.parse_event`` -> micro-batch (flushed ``window_ms`` after its first event or at
``max_batch_size`` events, as ``operators.personalization.DecideMicroBatch``) -> ``udfs.decide.Decider``
(dedup, noise filter, session features, ONE ONNX call via ``udfs.scoring.ReloadingScorer``, rules from
``RuleEngine.default()``) with sessions in a dict -> ``connectors.redis_store.RedisActionWriter`` (the
same Redis pipeline, including the ``{prefix}trace`` stream). No Flink, no checkpoints, no actions/DLQ topics.

It also times each hop of every batch (``perf_counter_ns``); on SIGUSR1 (the benchmark sends one
after each level) and on SIGTERM/SIGINT it appends a summary of the batches since the last one to
``--hops-out`` (one JSON line) and starts over: batch size, batch wait (flush time minus the poll that brought the batch's
first event), parse µs/event, decide ms/batch without ONNX, ONNX ms/batch, Redis pipeline ms/batch.

Run: ``INTENTFLOW_TOPIC_PREFIX=<p> python -m bench.baseline --redis-prefix <rp> --trace-every-n 1``.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from udfs.config import JobConfig, stack_settings  # noqa: E402


class TimedScorer:
    """Wraps a scorer; adds the ns of each ``score_with_version`` call to ``ns``."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.ns: list[int] = []

    def score_with_version(self, batch):
        t0 = time.perf_counter_ns()
        out = self.inner.score_with_version(batch)
        self.ns.append(time.perf_counter_ns() - t0)
        return out


def summarize(values: list[float]) -> dict:
    """p50/p95/p99/mean/max of ``values`` (same unit), or an empty dict."""
    if not values:
        return {}
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "p99": round(float(np.percentile(a, 99)), 4), "mean": round(float(a.mean()), 4), "max": round(float(a.max()), 4)}


@click.command()
@click.option("--redis-prefix", required=True)
@click.option("--window-ms", type=int, default=JobConfig.window_ms, show_default=True)
@click.option("--max-batch-size", type=int, default=JobConfig.max_batch_size, show_default=True)
@click.option("--trace-every-n", type=int, default=1, show_default=True)
@click.option("--hops-out", type=click.Path(dir_okay=False), default=None)
@click.option("--from-beginning", is_flag=True, help="Start at the topic's first offsets (drain runs), not its end.")
def main(redis_prefix: str, window_ms: int, max_batch_size: int, trace_every_n: int, hops_out: str | None,
         from_beginning: bool) -> None:
    """Consume, micro-batch, decide, write to Redis until SIGTERM."""
    from kafka import KafkaConsumer, TopicPartition

    from connectors.redis_store import RedisActionWriter
    from udfs.contract import ContractError, parse_event
    from udfs.decide import Decider, SessionEntry
    from udfs.rules import RuleEngine
    from udfs.scoring import ReloadingScorer

    settings = stack_settings()
    cfg = replace(JobConfig(), window_ms=window_ms, max_batch_size=max_batch_size, redis_prefix=redis_prefix,
                  trace_every_n=trace_every_n)
    scorer = TimedScorer(ReloadingScorer(cfg.model_name, version=cfg.model_version))
    decider = Decider(cfg, scorer, RuleEngine.default())
    writer = RedisActionWriter(settings.redis_url, cfg.redis_prefix, cfg.action_ttl_s, cfg.session_ttl_s,
                               cfg.actions_stream_maxlen)
    store: dict[str, SessionEntry] = {}
    from udfs.gcpolicy import FrozenGenerations

    # the job's GC policy (udfs/gcpolicy.py), on the job's state-write rhythm: the same code, the same pauses
    gc_policy = FrozenGenerations(cfg.gc_full_interval_ms, int(time.time() * 1000)) if cfg.gc_freeze else None
    last_freeze_ms = int(time.time() * 1000)
    # Defaults of kafka-python except a shorter fetch wait (Flink's KafkaSource keeps the Kafka default
    # 500 ms too, but a fetch returns as soon as one byte is there, so it only matters when idle).
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100, client_id="intentflow-bench-baseline")
    topic = settings.topics.raw
    parts = None
    while not parts:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            time.sleep(0.2)
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    else:
        consumer.seek_to_end(*tps)
    for tp in tps:
        consumer.position(tp)

    stop = [False]

    def on_signal(_sig, _frame) -> None:
        stop[0] = True

    dump = [False]

    def on_dump(_sig, _frame) -> None:
        dump[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, on_dump)

    hops: dict[str, list[float]] = {"batch_size": [], "wait_ms": [], "parse_us_per_event": [], "decide_ms": [],
                                    "onnx_ms": [], "redis_ms": [], "flush_ms": []}
    buffer: list[dict] = []
    first_ns = 0
    window_ns = window_ms * 1_000_000
    parse_ns = 0
    while not stop[0]:
        if dump[0]:
            dump[0] = False
            if hops_out:
                with open(hops_out, "a") as fh:
                    fh.write(json.dumps({k: summarize(v) for k, v in hops.items()}) + "\n")
            for values in hops.values():
                values.clear()
        if buffer:
            remaining_ms = max(0, (first_ns + window_ns - time.perf_counter_ns()) // 1_000_000)
        else:
            remaining_ms = 100
        polled = consumer.poll(timeout_ms=remaining_ms, max_records=max_batch_size - len(buffer)) \
            if remaining_ms > 0 else consumer.poll(timeout_ms=0, max_records=max_batch_size - len(buffer))
        now_ns = time.perf_counter_ns()
        for records in polled.values():
            for rec in records:
                t0 = time.perf_counter_ns()
                try:
                    event = parse_event(rec.value)
                except ContractError:
                    continue
                event["_kafka_ts_ms"] = rec.timestamp
                parse_ns += time.perf_counter_ns() - t0
                if not buffer:
                    first_ns = now_ns
                buffer.append(event)
        if buffer and (len(buffer) >= max_batch_size or time.perf_counter_ns() >= first_ns + window_ns):
            t_flush = time.perf_counter_ns()
            n_onnx = len(scorer.ns)
            result = decider.decide(buffer, store.get)
            store.update(result.touched)
            summaries = {sid: {**e.count_dict(), "intent_score": round(e.last_intent_score, 6),
                               "model_version": result.model_version, "rules_version": decider.engine.rules_version}
                         for sid, e in result.touched.items()}
            t_decided = time.perf_counter_ns()
            writer.write(result.actions, summaries, result.aggregates, result.counters, result.trace, result.facts)
            t_written = time.perf_counter_ns()
            onnx_ns = sum(scorer.ns[n_onnx:])
            hops["batch_size"].append(len(buffer))
            hops["wait_ms"].append((t_flush - first_ns) / 1e6)
            hops["parse_us_per_event"].append(parse_ns / len(buffer) / 1e3)
            hops["decide_ms"].append((t_decided - t_flush - onnx_ns) / 1e6)
            hops["onnx_ms"].append(onnx_ns / 1e6)
            hops["redis_ms"].append((t_written - t_decided) / 1e6)
            hops["flush_ms"].append((t_written - t_flush) / 1e6)
            buffer = []
            parse_ns = 0
            now_ms = int(time.time() * 1000)
            if gc_policy is not None and now_ms - last_freeze_ms >= cfg.state_write_interval_ms:
                gc_policy.after_state_write(now_ms)
                last_freeze_ms = now_ms
    consumer.close()
    writer.close()
    if hops_out:
        with open(hops_out, "a") as fh:
            fh.write(json.dumps({k: summarize(v) for k, v in hops.items()}) + "\n")


if __name__ == "__main__":
    main()
