"""The benchmark's peer: what a Python user would pick instead of Flink — Quix Streams.

A Quix Streams ``Application`` (its own Kafka consumer on confluent-kafka/librdkafka, its own
checkpointing) consumes ``{prefix}signals.raw``; a ``BatchingSink`` receives the values of each
checkpoint, and the checkpoint interval is the micro-batch rule (``commit_interval`` = ``window_ms``,
``commit_every`` = ``max_batch_size``), so Quix cuts the micro-batches. Each sink batch (one per topic
partition per checkpoint) runs exactly what the plain-Python baseline runs per micro-batch
(bench/baseline.py): ``udfs.contract.parse_event`` -> ``udfs.decide.Decider`` with sessions in a dict
-> ``connectors.redis_store.RedisActionWriter`` (the same pipeline, the same summaries).

Sessions are kept in a Python dict, not in Quix's RocksDB state store: a per-event state store call
would make this peer slower, so the comparison favours Quix.

Quix Streams needs protobuf >= 6 (through confluent-kafka's extras) and apache-flink needs < 6, so it
runs from its own virtualenv: ``.stack/venv-quix`` from ``bench/quix-requirements.txt``, made by
:func:`bench.targets.quix_python` on first use.

Run: ``INTENTFLOW_TOPIC_PREFIX=<p> .stack/venv-quix/bin/python -m bench.quix_target --redis-prefix <rp>``.
"""
from __future__ import annotations

import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from udfs.config import JobConfig, stack_settings  # noqa: E402


@click.command()
@click.option("--redis-prefix", required=True)
@click.option("--window-ms", type=int, default=JobConfig.window_ms, show_default=True)
@click.option("--max-batch-size", type=int, default=JobConfig.max_batch_size, show_default=True)
@click.option("--trace-every-n", type=int, default=1, show_default=True)
@click.option("--from-beginning", is_flag=True, help="Start at the topic's first offsets (drain runs), not its end.")
def main(redis_prefix: str, window_ms: int, max_batch_size: int, trace_every_n: int, from_beginning: bool) -> None:
    """Consume, micro-batch by Quix checkpoints, decide, write to Redis until SIGTERM."""
    from quixstreams import Application
    from quixstreams.sinks import BatchingSink, SinkBatch

    from connectors.redis_store import RedisActionWriter
    from udfs.contract import ContractError, parse_event
    from udfs.decide import Decider, SessionEntry
    from udfs.rules import RuleEngine
    from udfs.scoring import ReloadingScorer

    settings = stack_settings()
    cfg = replace(JobConfig(), window_ms=window_ms, max_batch_size=max_batch_size, redis_prefix=redis_prefix,
                  trace_every_n=trace_every_n)
    decider = Decider(cfg, ReloadingScorer(cfg.model_name, version=cfg.model_version), RuleEngine.default())
    writer = RedisActionWriter(settings.redis_url, cfg.redis_prefix, cfg.action_ttl_s, cfg.session_ttl_s,
                               cfg.actions_stream_maxlen)
    store: dict[str, SessionEntry] = {}

    class DecideSink(BatchingSink):
        """One micro-batch per call: parse, decide, one Redis pipeline (as bench/baseline.py)."""

        def write(self, batch: SinkBatch) -> None:
            events = []
            for item in batch:
                try:
                    event = parse_event(item.value)
                except ContractError:
                    continue
                event["_kafka_ts_ms"] = item.timestamp
                events.append(event)
            if not events:
                return
            result = decider.decide(events, store.get)
            store.update(result.touched)
            summaries = {sid: {**e.count_dict(), "intent_score": round(e.last_intent_score, 6),
                               "model_version": result.model_version, "rules_version": decider.engine.rules_version}
                         for sid, e in result.touched.items()}
            writer.write(result.actions, summaries, result.aggregates, result.counters, result.trace, result.facts)

    app = Application(broker_address=settings.kafka_bootstrap,
                      consumer_group=f"{redis_prefix.strip(':').replace(':', '-')}-quix-{uuid.uuid4().hex[:6]}",
                      auto_offset_reset="earliest" if from_beginning else "latest",
                      commit_interval=window_ms / 1000.0, commit_every=max_batch_size,
                      state_dir=tempfile.mkdtemp(prefix="intentflow-quix-state-"),
                      use_changelog_topics=False, auto_create_topics=False,
                      consumer_extra_config={"fetch.wait.max.ms": 100})
    topic = app.topic(settings.topics.raw, value_deserializer="bytes", key_deserializer="bytes")
    app.dataframe(topic).sink(DecideSink())
    try:
        app.run()
    finally:
        writer.close()


if __name__ == "__main__":
    main()
