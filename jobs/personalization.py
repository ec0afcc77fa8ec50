"""The personalization job: Kafka -> parse/validate -> micro-batched session features, intent score
and rules -> actions in Redis and on the ``actions`` topic; bad and late events to ``signals.dlq``.

One function, :func:`build_pipeline`, builds the job for every use; only the source differs:

* live: ``python -m jobs.personalization`` (unbounded Kafka source, committed offsets or latest);
* replay/backtest: ``--from-ts-ms/--to-ts-ms`` or ``--bounded`` (bounded Kafka source), or
  ``--events-file`` (a JSONL file of recorded events);
* a standalone cluster: ``flink run -py jobs/personalization.py -pyexec .venv/bin/python -- ...``
  (see README).

Why this module is over 400 lines: it is the job's one entry point (``flink run -py`` ships it): the
pipeline (``build_pipeline`` with its sources and sinks), the local runner, and the ``intentflow job``
command whose ~25 flags map one to one onto ``udfs.config.JobConfig``; the operators, connectors and
decision core it wires are in their own packages.
"""
from __future__ import annotations


import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import click  # noqa: E402

from connectors.redis_store import RedisKeys  # noqa: E402
from udfs.config import FLINK_KAFKA_SHADED_PREFIX, JobConfig  # noqa: E402
from udfs.rules import DEFAULT_RULES_PATH  # noqa: E402
from udfs.settings import checked_settings  # noqa: E402

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

    def stream(self, env, watermarks, kafka_properties=None):
        """The values of ``topic`` as a DataStream of raw bytes (``byte[]``, ``RawValueSchema`` in
        operators/java; Kafka record timestamps kept); ``kafka_properties``: client settings (SASL/TLS,
        ``udfs.config.KafkaSecurity``)."""
        from pyflink.common.serialization import DeserializationSchema
        from pyflink.datastream.connectors.kafka import KafkaSource
        from pyflink.java_gateway import get_gateway

        raw_values = DeserializationSchema(get_gateway().jvm.io.intentflow.flink.RawValueSchema())
        builder = (KafkaSource.builder().set_bootstrap_servers(self.bootstrap).set_topics(self.topic)
                   .set_group_id(self.group_id).set_starting_offsets(_offsets(self.start))
                   .set_value_only_deserializer(raw_values)
                   .set_property("client.id.prefix", self.group_id)
                   .set_property("commit.offsets.on.checkpoint", "true"))
        for name, value in (kafka_properties or {}).items():
            builder = builder.set_property(name, value)
        if self.stop is not None:
            builder = builder.set_bounded(_offsets(self.stop))
        return env.from_source(builder.build(), watermarks, "signals.raw").uid("source-signals-raw")


@dataclass(frozen=True)
class FileEvents:
    """Events from a JSONL file of recorded events (one Kafka value per line); a bounded run."""

    path: str
    group_id: str = "intentflow-replay"
    bounded: bool = True

    def stream(self, env, watermarks, kafka_properties=None):
        """The lines of the file as a DataStream of their UTF-8 bytes (no timestamps: event time comes from
        the events)."""
        from pyflink.common import WatermarkStrategy
        from pyflink.datastream.connectors.file_system import FileSource, StreamFormat

        source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), self.path).build()
        lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "events-file").uid("source-events-file")
        return _utf8(lines, "events-file-utf8")


@dataclass(frozen=True)
class CollectionEvents:
    """Events from an in-memory list of Kafka values (str); a bounded run without Kafka, for tests of the
    whole topology (``tests/integration/test_topology.py``)."""

    values: tuple[str, ...]
    group_id: str = "intentflow-collection"
    bounded: bool = True

    def stream(self, env, watermarks, kafka_properties=None):
        """The values as a DataStream of their UTF-8 bytes."""
        from pyflink.common import Types

        values = env.from_collection(list(self.values), type_info=Types.STRING()).uid("source-collection")
        return _utf8(values, "source-collection-utf8")


def _utf8(stream, uid: str):
    """A DataStream of str -> of their UTF-8 bytes (``byte[]``, what the micro-batcher reads), on the Java
    side (``Utf8Values`` in operators/java: no Python operator)."""
    from pyflink.common import Types
    from pyflink.datastream.data_stream import DataStream
    from pyflink.java_gateway import get_gateway

    j_stream = stream._j_data_stream.map(get_gateway().jvm.io.intentflow.flink.Utf8Values(),
                                         Types.PRIMITIVE_ARRAY(Types.BYTE()).get_java_type_info())
    j_stream.name(uid).uid(uid)
    return DataStream(j_stream)


@dataclass(frozen=True)
class RulesSource:
    """Rulesets from the ``rules`` topic and page-rates tables from the ``page-rates`` topic (one broadcast
    stream; the newest valid one of each wins), on top of a ruleset file and an optional table file.

    Both topics are one subscription by pattern, so a ``page-rates`` topic that does not exist yet is not an
    error: it is picked up by the source's partition discovery (Flink's default for an unbounded KafkaSource:
    every 5 min; not more often, as a discovery that fails while the broker is away fails the job over).
    """

    bootstrap: str
    topic: str
    initial_path: str = str(DEFAULT_RULES_PATH)
    bounded: bool = False
    page_rates_topic: str | None = None
    page_rates_path: str | None = None

    def stream(self, env, group_id: str, bounded: bool, kafka_properties=None):
        """Rulesets and tables (JSON str) from the topics, from their beginning; up to their end when ``bounded``."""
        import re

        from pyflink.common import Duration, WatermarkStrategy
        from pyflink.common.serialization import SimpleStringSchema
        from pyflink.datastream.connectors.kafka import KafkaSource

        topics = [self.topic] + ([self.page_rates_topic] if self.page_rates_topic else [])
        rb = (KafkaSource.builder().set_bootstrap_servers(self.bootstrap)
              .set_topic_pattern("^(" + "|".join(re.escape(t) for t in topics) + ")$")
              .set_group_id(f"{group_id}-rules")
              .set_starting_offsets(_offsets("earliest")).set_value_only_deserializer(SimpleStringSchema()))
        for name, value in (kafka_properties or {}).items():
            rb = rb.set_property(name, value)
        if bounded or self.bounded:
            rb = rb.set_bounded(_offsets("latest"))
        return env.from_source(rb.build(), WatermarkStrategy.no_watermarks().with_idleness(Duration.of_seconds(1)),
                               "rules").uid("source-rules").set_parallelism(1)


@dataclass(frozen=True)
class CollectionRules:
    """Rulesets (JSON str) from an in-memory list, on top of ``initial_path``; for topology tests."""

    values: tuple[str, ...] = ()
    initial_path: str = str(DEFAULT_RULES_PATH)
    page_rates_path: str | None = None

    def stream(self, env, group_id: str, bounded: bool, kafka_properties=None):
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

    def attach(self, actions, dlq, kafka_properties=None) -> None:
        """Send the actions and DLQ records (DataStreams of JSON str) to their topics (at least once)."""
        from pyflink.common.serialization import SimpleStringSchema
        from pyflink.datastream.connectors.base import DeliveryGuarantee
        from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

        def kafka_sink(topic: str):
            sink = (KafkaSink.builder().set_bootstrap_servers(self.kafka_bootstrap)
                    .set_record_serializer(KafkaRecordSerializationSchema.builder().set_topic(topic)
                                           .set_value_serialization_schema(SimpleStringSchema()).build())
                    .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                    .set_property("linger.ms", "1"))
            for name, value in (kafka_properties or {}).items():
                sink = sink.set_property(name, value)
            return sink.build()

        actions.sink_to(kafka_sink(self.actions_topic)).name("actions-topic").uid("sink-actions")
        dlq.sink_to(kafka_sink(self.dlq_topic)).name("dlq-topic").uid("sink-dlq")


@dataclass(frozen=True)
class CollectSinks:
    """Actions and DLQ records gathered by the client (``DataStream.execute_and_collect``), for topology
    tests; Redis still gets the decider's writes at ``redis_url``. :func:`build_pipeline` returns the
    union of both streams (DLQ records are the ones with a ``reason`` field)."""

    redis_url: str

    def attach(self, actions, dlq, kafka_properties=None):
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
    #: Java Kafka client properties of every source and sink: SASL/TLS (udfs.config.KafkaSecurity).
    kafka_properties: dict[str, str] = field(default_factory=dict)


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
        FileNotFoundError: the initial ruleset, the initial page-rates table or the model is missing.
        udfs.rules.RulesetError: the initial ruleset is invalid.
        udfs.page_rates.PageRatesError: the initial page-rates table is invalid.
    """
    from pyflink.common import Duration, Types, WatermarkStrategy
    from pyflink.datastream.data_stream import DataStream, KeyedStream
    from pyflink.java_gateway import get_gateway

    from operators.personalization import BATCH_TYPE, OUTPUT_TYPE, RULES_STATE, DecideMicroBatch
    from udfs.page_rates import PageRatesTable
    from udfs.rules import RuleEngine

    cfg = pipeline.config
    rules_json = Path(pipeline.rules.initial_path).read_text()
    RuleEngine.from_json(rules_json)  # fail fast on an invalid initial ruleset
    table_path = pipeline.rules.page_rates_path
    page_rates_json = Path(table_path).read_text() if table_path else None
    if page_rates_json is not None:
        PageRatesTable.from_json(page_rates_json)  # fail fast on an invalid initial table
    # One shard per key group, fixed by max parallelism: a rescale moves whole shards (udfs/partitioning.py).
    env.set_max_parallelism(cfg.max_parallelism)

    watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.out_of_orderness_ms))
                  .with_idleness(Duration.of_seconds(cfg.idleness_s)))
    ev = pipeline.events
    raw = ev.stream(env, watermarks, pipeline.kafka_properties)
    rules = pipeline.rules.stream(env, ev.group_id, ev.bounded, pipeline.kafka_properties)

    # Java side: raw values -> Row(shard key, batch bytes) per micro-batch (udfs/microbatch.py), chained to the
    # source; keyed by PyFlink's own KeyByKeySelector (field 0), so no Python key-selector operator.
    jvm = get_gateway().jvm
    batcher = jvm.io.intentflow.flink.SessionShardMicroBatcher
    keys_csv = batcher.shardKeysCsv(cfg.max_parallelism)  # one per key group, by Flink's own assignment
    row_type = Types.ROW([Types.INT(), BATCH_TYPE])
    j_batches = raw._j_data_stream.transform(
        "micro-batch-per-session-shard", row_type.get_java_type_info(),
        batcher(keys_csv, cfg.window_ms, cfg.max_batch_size, cfg.parallelism, cfg.max_parallelism))
    j_batches.uid("micro-batcher")
    # The batches travel to the Python operator through a network buffer: an operator with two inputs
    # (the batches and the broadcast rules) is never chained (Flink's StreamingJobGraphGenerator chains
    # only single-input operators). Each record is already a whole micro-batch, so it is sent at once
    # instead of waiting up to execution.buffer-timeout.interval (5 ms) for the buffer to fill.
    j_batches.setBufferTimeout(0)
    batches = DataStream(j_batches)
    key_selector, key_type = jvm.KeyByKeySelector(), Types.ROW([Types.INT()]).get_java_type_info()
    if cfg.parallelism == 1:
        # One subtask owns every shard: mark the batches as keyed where they are (a FORWARD edge, no
        # hash partitioning and no keyBy shuffle; the records still cross a local network buffer).
        j_keyed = jvm.org.apache.flink.streaming.api.datastream.DataStreamUtils.reinterpretAsKeyedStream(
            j_batches, key_selector, key_type)
    else:
        j_keyed = j_batches.keyBy(key_selector, key_type)
    keyed = KeyedStream(j_keyed, BATCH_TYPE, batches)
    decided = (keyed.connect(rules.broadcast(RULES_STATE))
               .process(DecideMicroBatch(cfg, pipeline.sinks.redis_url, rules_json, pipeline.models_root,
                                         shard_keys=[int(k) for k in keys_csv.split(",")],
                                         page_rates_json=page_rates_json),
                        output_type=OUTPUT_TYPE)
               .name("session-features-score-rules").uid("decide-micro-batch"))
    # Java side again: one String[] per batch -> actions (main output) and DLQ records (side output).
    splitter = jvm.io.intentflow.flink.MarkedOutputSplitter
    j_split = decided._j_data_stream.process(splitter(), Types.STRING().get_java_type_info())
    j_split.name("split-actions-dlq").uid("split-actions-dlq")
    actions = DataStream(j_split)
    dlq = DataStream(j_split.getSideOutput(splitter.DLQ))

    return pipeline.sinks.attach(actions, dlq, pipeline.kafka_properties)


#: Seconds between two rate lines of a job on the local mini-cluster (issue 15: one per minute).
RATE_INTERVAL_S = 60.0


def _free_port(first: int = 8082, last: int = 8182) -> int | None:
    """The first port of ``first..last`` nothing listens on (the mini-cluster's web UI), or None."""
    import socket

    for port in range(first, last + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return None


def describe_start(events: KafkaEvents | FileEvents) -> str:
    """Where the job starts reading, in words; for ``committed`` it asks the broker whether the group has
    committed offsets on the topic, and says that without them it reads the whole topic from the start."""
    if isinstance(events, FileEvents):
        return f"file {events.path} (bounded)"
    stop = {None: "live", "latest": "up to the end offsets at start"}.get(events.stop, f"up to ts {events.stop}")
    where = f"topic {events.topic} at {events.bootstrap}, group {events.group_id}"
    if events.start != "committed":
        return f"{where}, from {events.start if isinstance(events.start, str) else f'ts {events.start}'}, {stop}"
    try:
        from kafka import KafkaConsumer, TopicPartition

        # a consumer that never subscribes does not join the group: it only reads its committed offsets
        from udfs.config import kafka_client_kwargs

        consumer = KafkaConsumer(bootstrap_servers=events.bootstrap, group_id=events.group_id,
                                 enable_auto_commit=False, request_timeout_ms=5000, **kafka_client_kwargs())
        try:
            parts = [TopicPartition(events.topic, p) for p in consumer.partitions_for_topic(events.topic) or ()]
            ends, begins = consumer.end_offsets(parts), consumer.beginning_offsets(parts)
            committed = {tp: offset for tp in parts if (offset := consumer.committed(tp)) is not None}
        finally:
            consumer.close()
    except Exception as exc:  # noqa: BLE001 - a status line must not stop the job
        return f"{where}, from its committed offsets (not checked: {exc.__class__.__name__}), {stop}"
    if not committed:
        n = sum(ends[tp] - begins[tp] for tp in parts)
        return (f"{where}: NO committed offsets, so from the EARLIEST offset: all {n} events in the topic, old ones "
                f"included, into the live Redis keys (--start latest skips them), {stop}")
    behind = sum(max(0, ends[tp] - committed.get(tp, begins[tp])) for tp in parts)
    return f"{where}, from its committed offsets ({behind} events behind), {stop}"


def status_line(pipeline: Pipeline, web_ui: str | None) -> str:
    """One line: source and offsets, parallelism, model and ruleset versions, the web UI."""
    from udfs.rules import RuleEngine
    from udfs.scoring import ModelRegistry, ReloadingScorer

    cfg = pipeline.config
    registry = ModelRegistry(pipeline.models_root) if pipeline.models_root else None
    model = ReloadingScorer(cfg.model_name, registry=registry, version=cfg.model_version).model_version
    rules = RuleEngine.from_json(Path(pipeline.rules.initial_path).read_text()).rules_version
    return (f"intentflow job: {describe_start(pipeline.events)}; parallelism {cfg.parallelism} "
            f"(max {cfg.max_parallelism}); model {model}; ruleset {rules} (until one arrives on "
            f"{pipeline.rules.topic}); web UI {web_ui or 'of the cluster the job was submitted to'}")


def _report_rates(redis_url: str, prefix: str, interval_s: float) -> None:
    """Print a rate line every ``interval_s`` from the job's ``{prefix}stats`` counters in Redis (daemon thread)."""
    import threading
    import time

    import redis

    def loop() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
        last, last_t = None, time.monotonic()
        while True:
            time.sleep(interval_s)
            try:
                stats = {k: int(v) for k, v in client.hgetall(RedisKeys(prefix).stats).items()}
            except (redis.RedisError, ValueError) as exc:
                print(f"intentflow job: rates unavailable ({exc.__class__.__name__})", flush=True)
                continue
            now = time.monotonic()
            if last is not None:
                dt = now - last_t
                rate = {k: (stats.get(k, 0) - last.get(k, 0)) / dt for k in ("events", "actions", "dlq_parse", "late")}
                print(f"intentflow job: last {dt:.0f} s: {rate['events']:.1f} events/s in, {rate['actions']:.1f} "
                      f"actions/s, {rate['dlq_parse']:.2f} bad/s and {rate['late']:.2f} late/s to the DLQ; totals "
                      f"{stats.get('events', 0)} events, {stats.get('actions', 0)} actions", flush=True)
            last, last_t = stats, now

    threading.Thread(target=loop, name="intentflow-rates", daemon=True).start()


def run(pipeline: Pipeline, job_name: str = "intentflow-personalization", checkpoint_dir: Path | None = None,
        extra_conf: dict[str, str] | None = None, quiet: bool = False, rates_every_s: float = RATE_INTERVAL_S):
    """Build and execute the job (blocks until a bounded run ends, or forever when live).

    On the local mini-cluster (not under ``flink run``) it prints :func:`status_line` first and then a
    rate line every ``rates_every_s`` (default :data:`RATE_INTERVAL_S`; unless ``quiet``).
    """
    import os

    from operators.flink_env import create_env

    extra = dict(extra_conf or {})
    local = "PYFLINK_GATEWAY_PORT" not in os.environ  # `flink run` starts the gateway and sets it
    web_ui = None
    if local and "rest.bind-port" not in extra:
        port = _free_port()
        if port:
            # a range, not the port alone: another job's mini-cluster may take it before ours starts
            # (then the web UI is on the next free port: the status line names the likely one)
            extra["rest.bind-port"] = f"{port}-8182"
            web_ui = f"http://127.0.0.1:{port}"
    if not quiet:
        print(status_line(pipeline, web_ui), flush=True)
        if local:
            _report_rates(pipeline.sinks.redis_url, pipeline.config.redis_prefix, rates_every_s)
    env = create_env(parallelism=pipeline.config.parallelism, checkpoint_dir=checkpoint_dir, extra=extra)
    build_pipeline(env, pipeline)
    return env.execute(job_name)


@click.command("job")
@click.option("--from-ts-ms", type=int, default=None, help="Replay from this Kafka timestamp (epoch ms).")
@click.option("--to-ts-ms", type=int, default=None, help="Replay up to this Kafka timestamp (bounded run).")
@click.option("--start", type=click.Choice(["committed", "earliest", "latest"]), default="committed",
              show_default=True, help="Where a live run starts when --from-ts-ms is not given: committed = the "
                                      "group's committed offsets; a group without any reads the WHOLE topic from the "
                                      "earliest offset (the status line at start says so); latest = only new events.")
@click.option("--bounded", is_flag=True, help="Stop at the end offsets present at start (replay/backtest).")
@click.option("--events-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Replay a JSONL file of recorded events instead of Kafka.")
@click.option("--group-id", default="intentflow-personalization", show_default=True,
              help="Kafka consumer group: its offsets are committed on every checkpoint.")
@click.option("--window-ms", type=int, default=JobConfig.window_ms, show_default=True,
              help="Micro-batch window, ms (10-50 recommended).")
@click.option("--max-batch-size", type=int, default=JobConfig.max_batch_size, show_default=True,
              help="A micro-batch is flushed at this many events even before its window ends.")
@click.option("--parallelism", type=int, default=JobConfig.parallelism, show_default=True,
              help="Subtasks of the Python operator (each one embedded CPython; at most the cores you have).")
@click.option("--max-parallelism", type=int, default=JobConfig.max_parallelism, show_default=True,
              help="Flink max parallelism = number of session shards; fixed for the life of the job's state "
                   "(a savepoint restores only with the same value).")
@click.option("--state-write-interval-ms", type=int, default=JobConfig.state_write_interval_ms, show_default=True,
              help="Changed sessions are pickled into keyed state this often (per shard, spread over the interval).")
@click.option("--allowed-lateness-ms", type=int, default=JobConfig.allowed_lateness_ms, show_default=True,
              help="An event this much older than its session's newest goes to the DLQ as late_event, ms.")
@click.option("--redis-prefix", default=JobConfig.redis_prefix, show_default=True,
              help="Prefix of every Redis key the job writes (docs/contracts.md §5).")
@click.option("--session-ttl-s", type=int, default=JobConfig.session_ttl_s, show_default=True,
              help="Keyed session state expires after this long without an event (processing time).")
@click.option("--action-ttl-s", type=int, default=JobConfig.action_ttl_s, show_default=True,
              help="TTL of a session's latest-action hash in Redis, s.")
@click.option("--page-rates/--no-page-rates", default=JobConfig.page_rates, show_default=True,
              help="Cross-session page bounce/exit rates as features (udfs/page_stats.py); breaks exact "
                   "batching invariance and replay = live (see JobConfig.page_rates).")
@click.option("--page-rates-table", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Page-rates table (udfs/page_rates.py; `intentflow page-rates build`) used until one is "
                   "published on the page-rates topic (`intentflow page-rates publish`); ignored with --page-rates.")
@click.option("--gc-freeze/--no-gc-freeze", default=JobConfig.gc_freeze, show_default=True,
              help="Keep CPython's cyclic GC off the session copy (gc.freeze after each state write, a full "
                   "collection once an hour; udfs/gcpolicy.py).")
@click.option("--rules-file", default=str(DEFAULT_RULES_PATH), show_default=True,
              help="Ruleset used until one is published on the rules topic (`intentflow rules publish`).")
@click.option("--models-root", default=None, help="Folder of models (default: models/ of this checkout).")
@click.option("--model-version", type=int, default=None,
              help="Pin this version of the model instead of following the one in force (CURRENT, else the newest).")
@click.option("--trace-every-n", type=int, default=0, show_default=True,
              help="Append every N-th event to the {prefix}trace Redis stream (latency benchmark).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Where checkpoints go (default .stack/data/checkpoints; retained on cancel).")
@click.option("--checkpoint-interval-ms", type=int, default=None,
              help="Override execution.checkpointing.interval of flink-conf (10 s).")
@click.option("--from-savepoint", default=None, help="Restore from this savepoint/checkpoint path.")
@click.option("--prometheus-port", default=None,
              help="Port or range (9250-9260) of Flink's Prometheus reporter of this job's mini-cluster "
                   "(default: metrics.reporter.prom.port of flink-conf, the first free port of 9250-9260).")
@click.option("--rates-every-s", type=float, default=RATE_INTERVAL_S, show_default=True,
              help="Print a rate line (events/s in, actions/s, DLQ/s, from the job's Redis stats) this often, s.")
@click.option("--job-name", default="intentflow-personalization", show_default=True,
              help="Flink job name (in its log lines: the chaos suite counts its failovers by it).")
@click.option("--flink-conf", "flink_conf", multiple=True, metavar="KEY=VALUE",
              help="An extra Flink setting for this job, over flink-conf/config.yaml (repeatable; e.g. "
                   "execution.buffer-timeout.interval=10ms). Used by the benchmark's experiments.")
def job_cmd(from_ts_ms, to_ts_ms, start, bounded, events_file, group_id, window_ms, max_batch_size, parallelism,
            max_parallelism, state_write_interval_ms, allowed_lateness_ms, redis_prefix, session_ttl_s, action_ttl_s,
            page_rates, page_rates_table, gc_freeze,
            rules_file, models_root, model_version, trace_every_n, checkpoint_dir, checkpoint_interval_ms,
            from_savepoint, prometheus_port, rates_every_s, job_name, flink_conf) -> None:
    """Run the personalization job on the local mini-cluster (or the cluster `flink run` targets)."""
    try:
        settings = checked_settings(warn=lambda line: click.echo(line, err=True)).stack
    except ValueError as exc:  # SettingsError: every problem of the environment, one per line
        raise click.ClickException(str(exc)) from None
    if page_rates_table:  # a user error, before any cluster starts
        from udfs.page_rates import PageRatesError, PageRatesTable

        try:
            PageRatesTable.from_json(Path(page_rates_table).read_bytes())
        except PageRatesError as exc:
            raise click.ClickException(f"--page-rates-table {page_rates_table}: invalid: {exc}") from None
    cfg = replace(JobConfig(), window_ms=window_ms, max_batch_size=max_batch_size, parallelism=parallelism,
                  max_parallelism=max_parallelism, state_write_interval_ms=state_write_interval_ms,
                  allowed_lateness_ms=allowed_lateness_ms, redis_prefix=redis_prefix, trace_every_n=trace_every_n,
                  session_ttl_s=session_ttl_s, action_ttl_s=action_ttl_s, page_rates=page_rates,
                  model_version=model_version, gc_freeze=gc_freeze)
    if events_file:
        events: KafkaEvents | FileEvents = FileEvents(str(Path(events_file).resolve()))
    else:
        stop = to_ts_ms if to_ts_ms is not None else ("latest" if bounded else None)
        events = KafkaEvents(settings.kafka_bootstrap, settings.topics.raw, group_id=group_id,
                             start=from_ts_ms if from_ts_ms is not None else start, stop=stop)
    pipeline = Pipeline(events=events,
                        rules=RulesSource(settings.kafka_bootstrap, settings.topics.rules, rules_file,
                                          page_rates_topic=settings.topics.page_rates,
                                          page_rates_path=str(Path(page_rates_table).resolve())
                                          if page_rates_table else None),
                        sinks=Sinks(settings.redis_url, settings.kafka_bootstrap, settings.topics.actions,
                                    settings.topics.dlq),
                        config=cfg, models_root=models_root,
                        kafka_properties=settings.kafka_security.java_properties(FLINK_KAFKA_SHADED_PREFIX))
    extra: dict[str, str] = {}
    for item in flink_conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--flink-conf")
        extra[key.strip()] = value.strip()
    if from_savepoint:
        extra["execution.state-recovery.path"] = from_savepoint
    if prometheus_port:
        extra["metrics.reporter.prom.port"] = str(prometheus_port)
    if checkpoint_interval_ms:
        extra["execution.checkpointing.interval"] = f"{checkpoint_interval_ms} ms"
    run(pipeline, job_name=job_name, checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        extra_conf=extra, rates_every_s=rates_every_s)


if __name__ == "__main__":
    job_cmd()
