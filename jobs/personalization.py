"""The personalization job: Kafka -> parse/validate -> micro-batched session features, intent score
and rules -> actions in Redis and on the ``actions`` topic; bad and late events to ``signals.dlq``.

One function, :func:`build_pipeline`, builds the job for every use; only the source differs:

* live: ``python -m jobs.personalization`` (unbounded Kafka source, committed offsets or latest);
* replay/backtest: ``--from-ts-ms/--to-ts-ms`` or ``--bounded`` (bounded Kafka source), or
  ``--events-file`` (a JSONL file of recorded events);
* a standalone cluster: ``flink run -py jobs/personalization.py -pyexec .venv/bin/python -- ...``
  (see README).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import click  # noqa: E402

from udfs.config import JobConfig, stack_settings  # noqa: E402
from udfs.rules import DEFAULT_RULES_PATH  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class KafkaEvents:
    """Events from the ``signals.raw`` topic.

    Attributes:
        start: ``earliest``, ``latest``, ``committed`` (falls back to earliest) or an epoch-ms int
            (the first record at or after that Kafka timestamp).
        stop: None (unbounded, live), ``latest`` (the end offsets at job start) or an epoch-ms int.
    """

    bootstrap: str
    topic: str
    group_id: str = "intentflow-personalization"
    start: str | int = "committed"
    stop: str | int | None = None

    @property
    def bounded(self) -> bool:
        return self.stop is not None

    def stream(self, env, watermarks):
        """The values of ``topic`` as a DataStream of str (Kafka record timestamps kept)."""
        from pyflink.common.serialization import SimpleStringSchema
        from pyflink.datastream.connectors.kafka import KafkaSource

        builder = (KafkaSource.builder().set_bootstrap_servers(self.bootstrap).set_topics(self.topic)
                   .set_group_id(self.group_id).set_starting_offsets(_offsets(self.start))
                   .set_value_only_deserializer(SimpleStringSchema())
                   .set_property("client.id.prefix", self.group_id)
                   .set_property("commit.offsets.on.checkpoint", "true"))
        if self.stop is not None:
            builder = builder.set_bounded(_offsets(self.stop))
        return env.from_source(builder.build(), watermarks, "signals.raw").uid("source-signals-raw")


@dataclass(frozen=True)
class FileEvents:
    """Events from a JSONL file of recorded events (one Kafka value per line); a bounded run."""

    path: str
    group_id: str = "intentflow-replay"
    bounded: bool = True

    def stream(self, env, watermarks):
        """The lines of the file as a DataStream of str (no timestamps: event time comes from the events)."""
        from pyflink.common import WatermarkStrategy
        from pyflink.datastream.connectors.file_system import FileSource, StreamFormat

        source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), self.path).build()
        return env.from_source(source, WatermarkStrategy.no_watermarks(), "events-file").uid("source-events-file")


@dataclass(frozen=True)
class CollectionEvents:
    """Events from an in-memory list of Kafka values (str); a bounded run without Kafka, for tests of the
    whole topology (``tests/integration/test_topology.py``)."""

    values: tuple[str, ...]
    group_id: str = "intentflow-collection"
    bounded: bool = True

    def stream(self, env, watermarks):
        from pyflink.common import Types

        return env.from_collection(list(self.values), type_info=Types.STRING()).uid("source-collection")


@dataclass(frozen=True)
class RulesSource:
    """Rulesets from the ``rules`` topic (broadcast; the newest valid one wins), on top of a file."""

    bootstrap: str
    topic: str
    initial_path: str = str(DEFAULT_RULES_PATH)
    bounded: bool = False

    def stream(self, env, group_id: str, bounded: bool):
        """Rulesets (JSON str) from the topic, from its beginning; up to its end when ``bounded``."""
        from pyflink.common import Duration, WatermarkStrategy
        from pyflink.common.serialization import SimpleStringSchema
        from pyflink.datastream.connectors.kafka import KafkaSource

        rb = (KafkaSource.builder().set_bootstrap_servers(self.bootstrap).set_topics(self.topic)
              .set_group_id(f"{group_id}-rules")
              .set_starting_offsets(_offsets("earliest")).set_value_only_deserializer(SimpleStringSchema()))
        if bounded or self.bounded:
            rb = rb.set_bounded(_offsets("latest"))
        return env.from_source(rb.build(), WatermarkStrategy.no_watermarks().with_idleness(Duration.of_seconds(1)),
                               "rules").uid("source-rules").set_parallelism(1)


@dataclass(frozen=True)
class CollectionRules:
    """Rulesets (JSON str) from an in-memory list, on top of ``initial_path``; for topology tests."""

    values: tuple[str, ...] = ()
    initial_path: str = str(DEFAULT_RULES_PATH)

    def stream(self, env, group_id: str, bounded: bool):
        from pyflink.common import Types

        return (env.from_collection(list(self.values), type_info=Types.STRING()).uid("source-rules")
                .set_parallelism(1))


@dataclass(frozen=True)
class Sinks:
    """Where actions go besides Redis (``redis_url``, written by the decider), and DLQ records: Kafka topics."""

    redis_url: str
    kafka_bootstrap: str
    actions_topic: str
    dlq_topic: str

    def attach(self, actions, dlq) -> None:
        """Send the actions and DLQ records (DataStreams of JSON str) to their topics (at least once)."""
        from pyflink.common.serialization import SimpleStringSchema
        from pyflink.datastream.connectors.base import DeliveryGuarantee
        from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

        def kafka_sink(topic: str):
            return (KafkaSink.builder().set_bootstrap_servers(self.kafka_bootstrap)
                    .set_record_serializer(KafkaRecordSerializationSchema.builder().set_topic(topic)
                                           .set_value_serialization_schema(SimpleStringSchema()).build())
                    .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                    .set_property("linger.ms", "1").build())

        actions.sink_to(kafka_sink(self.actions_topic)).name("actions-topic").uid("sink-actions")
        dlq.sink_to(kafka_sink(self.dlq_topic)).name("dlq-topic").uid("sink-dlq")


@dataclass(frozen=True)
class CollectSinks:
    """Actions and DLQ records gathered by the client (``DataStream.execute_and_collect``), for topology
    tests; Redis still gets the decider's writes at ``redis_url``. :func:`build_pipeline` returns the
    union of both streams (DLQ records are the ones with a ``reason`` field)."""

    redis_url: str

    def attach(self, actions, dlq):
        return actions.union(dlq)


@dataclass(frozen=True)
class Pipeline:
    """What the job reads, where it writes, and how it decides.

    Each part is passed in (the seams of the topology): ``events`` and ``rules`` are sources with a
    ``stream(env, ...)`` method, ``sinks`` has ``attach(actions, dlq)`` and ``redis_url``. The job's own
    parts (Kafka in, Kafka and Redis out) and in-memory ones for tests (:class:`CollectionEvents`,
    :class:`CollectionRules`, :class:`CollectSinks`) run the same topology.
    """

    events: KafkaEvents | FileEvents | CollectionEvents
    rules: RulesSource | CollectionRules
    sinks: Sinks | CollectSinks
    config: JobConfig = field(default_factory=JobConfig)
    models_root: str | None = None


def _offsets(spec: str | int, default_reset: str = "earliest"):
    from pyflink.datastream.connectors.kafka import KafkaOffsetResetStrategy, KafkaOffsetsInitializer

    if isinstance(spec, int):
        return KafkaOffsetsInitializer.timestamp(spec)
    if spec == "earliest":
        return KafkaOffsetsInitializer.earliest()
    if spec == "latest":
        return KafkaOffsetsInitializer.latest()
    if spec == "committed":
        return KafkaOffsetsInitializer.committed_offsets(
            KafkaOffsetResetStrategy.EARLIEST if default_reset == "earliest" else KafkaOffsetResetStrategy.LATEST)
    raise click.BadParameter(f"offsets must be earliest, latest, committed or an epoch-ms int, got {spec!r}")


def build_pipeline(env, pipeline: Pipeline):
    """Add the personalization job to ``env`` (a PyFlink StreamExecutionEnvironment).

    Returns:
        what ``pipeline.sinks.attach`` returns (None for the Kafka sinks; the stream to collect for
        :class:`CollectSinks`).

    Raises:
        FileNotFoundError: the initial ruleset or the model is missing.
        udfs.rules.RulesetError: the initial ruleset is invalid.
    """
    from pyflink.common import Duration, Types, WatermarkStrategy
    from pyflink.datastream.data_stream import DataStream, KeyedStream
    from pyflink.java_gateway import get_gateway

    from operators.personalization import BATCH_TYPE, OUTPUT_TYPE, RULES_STATE, DecideMicroBatch
    from udfs.rules import RuleEngine

    cfg = pipeline.config
    rules_json = Path(pipeline.rules.initial_path).read_text()
    RuleEngine.from_json(rules_json)  # fail fast on an invalid initial ruleset
    # One shard per key group, fixed by max parallelism: a rescale moves whole shards (udfs/partitioning.py).
    env.set_max_parallelism(cfg.max_parallelism)

    watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.out_of_orderness_ms))
                  .with_idleness(Duration.of_seconds(cfg.idleness_s)))
    ev = pipeline.events
    raw = ev.stream(env, watermarks)
    rules = pipeline.rules.stream(env, ev.group_id, ev.bounded)

    # Java side: raw values -> Row(shard key, [timestamps, value, ...]) per micro-batch, chained to the
    # source; keyed by PyFlink's own KeyByKeySelector (field 0), so no Python key-selector operator.
    jvm = get_gateway().jvm
    batcher = jvm.io.intentflow.flink.SessionShardMicroBatcher
    keys_csv = batcher.shardKeysCsv(cfg.max_parallelism)  # one per key group, by Flink's own assignment
    row_type = Types.ROW([Types.INT(), BATCH_TYPE])
    j_batches = raw._j_data_stream.transform(
        "micro-batch-per-session-shard", row_type.get_java_type_info(),
        batcher(keys_csv, cfg.window_ms, cfg.max_batch_size, cfg.parallelism, cfg.max_parallelism))
    j_batches.uid("micro-batcher")
    batches = DataStream(j_batches)
    key_selector, key_type = jvm.KeyByKeySelector(), Types.ROW([Types.INT()]).get_java_type_info()
    if cfg.parallelism == 1:
        # One subtask owns every shard: mark the batches as keyed where they are, so the Python operator
        # is chained to the batcher (no serialization through the network stack, no copy).
        j_keyed = jvm.org.apache.flink.streaming.api.datastream.DataStreamUtils.reinterpretAsKeyedStream(
            j_batches, key_selector, key_type)
    else:
        j_keyed = j_batches.keyBy(key_selector, key_type)
    keyed = KeyedStream(j_keyed, BATCH_TYPE, batches)
    decided = (keyed.connect(rules.broadcast(RULES_STATE))
               .process(DecideMicroBatch(cfg, pipeline.sinks.redis_url, rules_json, pipeline.models_root,
                                         shard_keys=[int(k) for k in keys_csv.split(",")]),
                        output_type=OUTPUT_TYPE)
               .name("session-features-score-rules").uid("decide-micro-batch"))
    # Java side again: one String[] per batch -> actions (main output) and DLQ records (side output).
    splitter = jvm.io.intentflow.flink.MarkedOutputSplitter
    j_split = decided._j_data_stream.process(splitter(), Types.STRING().get_java_type_info())
    j_split.name("split-actions-dlq").uid("split-actions-dlq")
    actions = DataStream(j_split)
    dlq = DataStream(j_split.getSideOutput(splitter.DLQ))

    return pipeline.sinks.attach(actions, dlq)


def run(pipeline: Pipeline, job_name: str = "intentflow-personalization", checkpoint_dir: Path | None = None,
        extra_conf: dict[str, str] | None = None):
    """Build and execute the job (blocks until a bounded run ends, or forever when live)."""
    from operators.flink_env import create_env

    env = create_env(parallelism=pipeline.config.parallelism, checkpoint_dir=checkpoint_dir, extra=extra_conf)
    build_pipeline(env, pipeline)
    return env.execute(job_name)


@click.command("job")
@click.option("--from-ts-ms", type=int, default=None, help="Replay from this Kafka timestamp (epoch ms).")
@click.option("--to-ts-ms", type=int, default=None, help="Replay up to this Kafka timestamp (bounded run).")
@click.option("--start", type=click.Choice(["committed", "earliest", "latest"]), default="committed",
              show_default=True, help="Where a live run starts when --from-ts-ms is not given.")
@click.option("--bounded", is_flag=True, help="Stop at the end offsets present at start (replay/backtest).")
@click.option("--events-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Replay a JSONL file of recorded events instead of Kafka.")
@click.option("--group-id", default="intentflow-personalization", show_default=True)
@click.option("--window-ms", type=int, default=JobConfig.window_ms, show_default=True,
              help="Micro-batch window, ms (10-50 recommended).")
@click.option("--max-batch-size", type=int, default=JobConfig.max_batch_size, show_default=True)
@click.option("--parallelism", type=int, default=JobConfig.parallelism, show_default=True)
@click.option("--max-parallelism", type=int, default=JobConfig.max_parallelism, show_default=True,
              help="Flink max parallelism = number of session shards; fixed for the life of the job's state "
                   "(a savepoint restores only with the same value).")
@click.option("--state-write-interval-ms", type=int, default=JobConfig.state_write_interval_ms, show_default=True,
              help="Changed sessions are pickled into keyed state this often (per shard, spread over the interval).")
@click.option("--allowed-lateness-ms", type=int, default=JobConfig.allowed_lateness_ms, show_default=True)
@click.option("--redis-prefix", default=JobConfig.redis_prefix, show_default=True)
@click.option("--session-ttl-s", type=int, default=JobConfig.session_ttl_s, show_default=True,
              help="Keyed session state expires after this long without an event (processing time).")
@click.option("--page-rates/--no-page-rates", default=JobConfig.page_rates, show_default=True,
              help="Cross-session page bounce/exit rates as features (udfs/page_stats.py); breaks exact "
                   "batching invariance and replay = live (see JobConfig.page_rates).")
@click.option("--rules-file", default=str(DEFAULT_RULES_PATH), show_default=True)
@click.option("--models-root", default=None, help="Folder of models (default: models/ of this checkout).")
@click.option("--model-version", type=int, default=None,
              help="Pin this version of the model instead of following the one in force (CURRENT, else the newest).")
@click.option("--trace-every-n", type=int, default=0, show_default=True,
              help="Append every N-th event to the {prefix}trace Redis stream (latency benchmark).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None)
@click.option("--checkpoint-interval-ms", type=int, default=None,
              help="Override execution.checkpointing.interval of flink-conf (10 s).")
@click.option("--from-savepoint", default=None, help="Restore from this savepoint/checkpoint path.")
def job_cmd(from_ts_ms, to_ts_ms, start, bounded, events_file, group_id, window_ms, max_batch_size, parallelism,
            max_parallelism, state_write_interval_ms, allowed_lateness_ms, redis_prefix, session_ttl_s, page_rates, rules_file, models_root, model_version,
            trace_every_n,
            checkpoint_dir, checkpoint_interval_ms, from_savepoint) -> None:
    """Run the personalization job on the local mini-cluster (or the cluster `flink run` targets)."""
    settings = stack_settings()
    cfg = replace(JobConfig(), window_ms=window_ms, max_batch_size=max_batch_size, parallelism=parallelism,
                  max_parallelism=max_parallelism, state_write_interval_ms=state_write_interval_ms,
                  allowed_lateness_ms=allowed_lateness_ms, redis_prefix=redis_prefix, trace_every_n=trace_every_n,
                  session_ttl_s=session_ttl_s, page_rates=page_rates, model_version=model_version)
    if events_file:
        events: KafkaEvents | FileEvents = FileEvents(str(Path(events_file).resolve()))
    else:
        stop = to_ts_ms if to_ts_ms is not None else ("latest" if bounded else None)
        events = KafkaEvents(settings.kafka_bootstrap, settings.topics.raw, group_id=group_id,
                             start=from_ts_ms if from_ts_ms is not None else start, stop=stop)
    pipeline = Pipeline(events=events,
                        rules=RulesSource(settings.kafka_bootstrap, settings.topics.rules, rules_file),
                        sinks=Sinks(settings.redis_url, settings.kafka_bootstrap, settings.topics.actions,
                                    settings.topics.dlq),
                        config=cfg, models_root=models_root)
    extra: dict[str, str] = {}
    if from_savepoint:
        extra["execution.state-recovery.path"] = from_savepoint
    if checkpoint_interval_ms:
        extra["execution.checkpointing.interval"] = f"{checkpoint_interval_ms} ms"
    run(pipeline, checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, extra_conf=extra)


if __name__ == "__main__":
    job_cmd()
