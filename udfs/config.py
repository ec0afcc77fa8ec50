"""Where the parts of the local stack live, and the names of the topics.

Every process (collector, job, replay, decision API, tests, benchmarks) reads these through
:func:`stack_settings`, so one set of environment variables moves all of them together. The
defaults are the ports of the local stack (``intentflow stack up``) and of ``docker-compose.yml``.

Environment variables:
    INTENTFLOW_KAFKA_BOOTSTRAP   host:port list, default ``127.0.0.1:9092``
    INTENTFLOW_REDIS_URL         default ``redis://127.0.0.1:6379/0``
    INTENTFLOW_TOPIC_PREFIX      prepended to every topic name (tests use it to isolate runs), default ``""``
    INTENTFLOW_FLINK_REST        default ``http://127.0.0.1:8081``
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

#: Topic name -> partition count. ``signals.raw`` is keyed by session id; four partitions let a
#: job with parallelism up to 4 read it. The others are low-volume.
TOPIC_PARTITIONS: dict[str, int] = {
    "signals.raw": 4,
    "signals.dlq": 1,
    "rules": 1,
    "actions": 4,
}


@dataclass(frozen=True)
class Topics:
    """Names of the Kafka topics, with the run's prefix applied."""

    raw: str = "signals.raw"
    dlq: str = "signals.dlq"
    rules: str = "rules"
    actions: str = "actions"

    def all(self) -> dict[str, int]:
        """Return ``{topic name: partition count}`` for every topic of this set."""
        base = {"raw": "signals.raw", "dlq": "signals.dlq", "rules": "rules", "actions": "actions"}
        return {getattr(self, attr): TOPIC_PARTITIONS[name] for attr, name in base.items()}

    @classmethod
    def with_prefix(cls, prefix: str) -> "Topics":
        """Topics named ``prefix + default name`` (``prefix=""`` gives the defaults)."""
        return cls(
            raw=prefix + "signals.raw",
            dlq=prefix + "signals.dlq",
            rules=prefix + "rules",
            actions=prefix + "actions",
        )


@dataclass(frozen=True)
class StackSettings:
    """Endpoints of Kafka, Redis and Flink, and the topic names."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    flink_rest: str = "http://127.0.0.1:8081"
    topics: Topics = field(default_factory=Topics)


def stack_settings(env: dict[str, str] | None = None) -> StackSettings:
    """Read :class:`StackSettings` from ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    return StackSettings(
        kafka_bootstrap=env.get("INTENTFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        redis_url=env.get("INTENTFLOW_REDIS_URL", "redis://127.0.0.1:6379/0"),
        flink_rest=env.get("INTENTFLOW_FLINK_REST", "http://127.0.0.1:8081"),
        topics=Topics.with_prefix(env.get("INTENTFLOW_TOPIC_PREFIX", "")),
    )


@dataclass(frozen=True)
class JobConfig:
    """Parameters of the personalization job (jobs/personalization.py) and of its baseline.

    Attributes:
        window_ms: micro-batch window, ms. A batch is flushed ``window_ms`` after its first event or
            when it holds ``max_batch_size`` events, whichever comes first. Default 20 ms: the source
            article's micro-batching range is 10-50 ms; 20 keeps the average wait (window/2 = 10 ms)
            inside the design's latency budget (DESIGN.md).
        max_batch_size: events per micro-batch at most (one ONNX call, one Redis pipeline). 256: the
            largest batch size of bench/score_bench.py, where per-event scoring cost has flattened.
        allowed_lateness_ms: events of a session are applied in event-time order within this bound
            (an out-of-order event inside it is inserted and the session state rebuilt); an event
            older than the session's newest event by more than this is late: counted and sent to the
            DLQ topic with reason ``late_event``. Default 2000 ms: the collector corrects client
            clocks only for skews over 1 s (udfs/normalize.py), so consecutive beacons of one tab
            can overlap by up to about that much; 2 s covers it with margin.
        dedup_ttl_ms: event ids are remembered this long (event time) per session to drop
            duplicates (retries, a beacon and a fetch of one batch). 10 min: longer than the SDK's
            retry horizon (web/sdk) and the collector's Retry-After.
        dedup_max_ids: at most this many event ids remembered per session (bounds keyed state).
        session_ttl_s: keyed session state expires after this much processing time without an
            event. 1800 s: the 30-minute inactivity rule that ends a web session (Google Analytics'
            default session timeout).
        state_write_interval_ms: how often the job writes changed sessions to Flink map state (the
            decisions read a Python copy). The batches received since the last write stay in list state
            and are decided again after a restore (Redis writes are idempotent), so any interval is
            correct; it trades the pickling of changed sessions (the costliest state work in the
            operator's profile) against the events a restore decides again. 10,000 ms: the checkpoint
            interval of flink-conf/config.yaml, so a session is pickled about once per checkpoint.
        page_rates: annotate page views with their page's bounce and exit rates over the other
            sessions this subtask has seen (``udfs.page_stats.PageStats``, in memory). Off by default:
            with it a decision depends on other sessions and on the order the job saw them in, so the
            batching invariance (``window_ms`` 10 = 50), replay = live and restore = failure-free run
            no longer hold exactly (measured: test_personalization_job, an intent score 0.021 vs 0.060);
            without it the rate features hold the UCI means (``udfs.session``).
        summary_interval_ms: how often changed sessions' summaries (counts, score, features) are
            written to their ``{prefix}session:{id}`` hashes in Redis. 1000 ms: our choice.
        action_ttl_s: TTL of the latest-action hash in Redis, s (same 30 min).
        actions_stream_maxlen: approximate MAXLEN of the Redis stream of actions.
        redis_prefix: prefix of every Redis key the job writes (contracts §5; tests use their own).
        model_name: model folder under models/ whose latest version scores (hot-swapped).
        model_version: pin one version instead of following the latest.
        parallelism: operator parallelism (2 cores here: 1 or 2).
        max_parallelism: Flink's ``pipeline.max-parallelism`` of the job and its number of session
            shards (one per key group, udfs/partitioning.py): the job can be
            rescaled from a savepoint up to this parallelism, every session moving with its shard.
            Fixed for the life of a job's state (Flink refuses a savepoint taken with another value).
            8: room for 8 TaskManagers; each subtask makes at most one Python call per shard it owns
            per ``window_ms``, so a larger value costs more, smaller batches at low rates.
        trace_every_n: 0 (default) or N: every N-th event of a batch (by arrival) is also appended to the
            Redis stream ``{prefix}trace`` with its ``event_id``, ``kafka_ts_ms`` and ``client_ts_ms``;
            the entry id is the Redis server time at which the batch became readable, which is what
            the latency benchmark measures (bench/). Off in production.
        out_of_orderness_ms / idleness_s: watermark strategy of the Kafka source (bounded
            out-of-orderness on the Kafka append time; a partition idle this long stops holding
            back event time).
    """

    window_ms: int = 20
    max_batch_size: int = 256
    allowed_lateness_ms: int = 2000
    dedup_ttl_ms: int = 600_000
    dedup_max_ids: int = 512
    session_ttl_s: int = 1800
    state_write_interval_ms: int = 10_000
    summary_interval_ms: int = 1000
    page_rates: bool = False
    action_ttl_s: int = 1800
    actions_stream_maxlen: int = 100_000
    redis_prefix: str = "if:"
    model_name: str = "intent-lr"
    model_version: int | None = None
    parallelism: int = 1
    max_parallelism: int = 8
    out_of_orderness_ms: int = 200
    idleness_s: int = 5
    trace_every_n: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.window_ms <= 1000:
            raise ValueError(f"window_ms must be within 1..1000, got {self.window_ms}")
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not 1 <= self.parallelism <= self.max_parallelism:
            raise ValueError(f"parallelism must be within 1..max_parallelism ({self.max_parallelism}), "
                             f"got {self.parallelism}")
        if self.allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {self.allowed_lateness_ms}")
