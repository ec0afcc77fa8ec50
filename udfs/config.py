"""Where the parts of the local stack live, and the names of the topics.

Every process (collector, job, replay, decision API, tests, benchmarks) reads these through
:func:`stack_settings`, so one set of environment variables moves all of them together. The
defaults are the ports of the local stack (``intentflow stack up``) and of ``docker-compose.yml``.

Environment variables:
    INTENTFLOW_KAFKA_BOOTSTRAP   host:port list, default ``127.0.0.1:9092``
    INTENTFLOW_REDIS_URL         default ``redis://127.0.0.1:6379/0``
    INTENTFLOW_TOPIC_PREFIX      prepended to every topic name (tests use it to isolate runs), default ``""``
    INTENTFLOW_FLINK_REST        default ``http://127.0.0.1:8081``

Secured edges (every client reads them here: collector, job, decision API, CLI; none is logged):
    INTENTFLOW_REDIS_USERNAME, INTENTFLOW_REDIS_PASSWORD
                                 Redis AUTH (an ACL user, or the default user's ``requirepass``), put
                                 into ``redis_url`` unless it carries credentials already; a
                                 ``rediss://`` URL is Redis over TLS
    INTENTFLOW_KAFKA_SECURITY_PROTOCOL  ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``
    INTENTFLOW_KAFKA_SASL_MECHANISM     ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``
    INTENTFLOW_KAFKA_SASL_USERNAME, INTENTFLOW_KAFKA_SASL_PASSWORD
    INTENTFLOW_KAFKA_SSL_CAFILE         PEM file of the CA that signed the brokers' certificates
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from udfs.limits import ALLOWED_LATENESS_MS

#: Topic name -> partition count. ``signals.raw`` is keyed by session id; four partitions let a
#: job with parallelism up to 4 read it. The others are low-volume.
TOPIC_PARTITIONS: dict[str, int] = {
    "signals.raw": 4,
    "signals.dlq": 1,
    "rules": 1,
    "actions": 4,
    "page-rates": 1,
}


@dataclass(frozen=True)
class Topics:
    """Names of the Kafka topics, with the run's prefix applied."""

    raw: str = "signals.raw"
    dlq: str = "signals.dlq"
    rules: str = "rules"
    actions: str = "actions"
    #: page-rates tables (udfs/page_rates.py), read into broadcast state with the rulesets
    page_rates: str = "page-rates"

    def all(self) -> dict[str, int]:
        """Return ``{topic name: partition count}`` for every topic of this set."""
        base = {"raw": "signals.raw", "dlq": "signals.dlq", "rules": "rules", "actions": "actions",
                "page_rates": "page-rates"}
        return {getattr(self, attr): TOPIC_PARTITIONS[name] for attr, name in base.items()}

    @classmethod
    def with_prefix(cls, prefix: str) -> "Topics":
        """Topics named ``prefix + default name`` (``prefix=""`` gives the defaults)."""
        return cls(
            raw=prefix + "signals.raw",
            dlq=prefix + "signals.dlq",
            rules=prefix + "rules",
            actions=prefix + "actions",
            page_rates=prefix + "page-rates",
        )


#: Kafka ``security.protocol`` values (Kafka documentation, "Security": listeners and clients).
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

#: SASL mechanisms both clients support (kafka-python and the Java client) -> the Java JAAS login module.
KAFKA_SASL_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


#: Where flink-sql-connector-kafka (the job's connector jar) relocates the Kafka client's classes
#: (``org.apache.kafka`` -> ``org.apache.flink.kafka.shaded.org.apache.kafka``, seen in the job's stack
#: traces): a JAAS config naming the unshaded login module fails with "No LoginModule found".
FLINK_KAFKA_SHADED_PREFIX = "org.apache.flink.kafka.shaded."


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients authenticate to Kafka and encrypt the connection (default: plaintext, no SASL).

    Every Kafka client of the project takes its settings from here: the Python ones (collector,
    replay, rules CLI, demo, topic creation; kafka-python) through :meth:`python_kwargs`, the Flink job's
    source and sinks (the Java client) through :meth:`java_properties`.

    Raises:
        ValueError: (at construction) an unknown protocol or mechanism, or SASL without a mechanism,
            user name and password.
    """

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        if self.security_protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise ValueError(f"Kafka security protocol {self.security_protocol!r}: expected one of "
                             f"{', '.join(KAFKA_SECURITY_PROTOCOLS)}")
        if self.sasl:
            if self.sasl_mechanism not in KAFKA_SASL_LOGIN_MODULES:
                raise ValueError(f"Kafka SASL mechanism {self.sasl_mechanism!r}: expected one of "
                                 f"{', '.join(KAFKA_SASL_LOGIN_MODULES)}")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError(f"Kafka {self.security_protocol} needs a SASL user name and password")

    @property
    def sasl(self) -> bool:
        """True for ``SASL_PLAINTEXT`` and ``SASL_SSL``."""
        return self.security_protocol.startswith("SASL_")

    def python_kwargs(self) -> dict[str, str]:
        """Keyword arguments for kafka-python's ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``
        (empty for plaintext, so the defaults stay the client's)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        kw = {"security_protocol": self.security_protocol}
        if self.sasl:
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        if self.ssl_cafile:
            kw["ssl_cafile"] = self.ssl_cafile
        return kw

    def java_properties(self, class_prefix: str = "") -> dict[str, str]:
        """Properties of the Java Kafka client (Flink's ``KafkaSource``/``KafkaSink`` ``set_property``).

        Args:
            class_prefix: put before the JAAS login module's class name when the client's
                ``org.apache.kafka`` classes are relocated: :data:`FLINK_KAFKA_SHADED_PREFIX` for the job.
        """
        if self.security_protocol == "PLAINTEXT":
            return {}
        props = {"security.protocol": self.security_protocol}
        if self.sasl:
            def q(value: str) -> str:  # JAAS string literal
                return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

            props["sasl.mechanism"] = str(self.sasl_mechanism)
            props["sasl.jaas.config"] = (f"{class_prefix}{KAFKA_SASL_LOGIN_MODULES[str(self.sasl_mechanism)]} required "
                                         f"username={q(str(self.sasl_username))} "
                                         f"password={q(str(self.sasl_password))};")
        if self.ssl_cafile:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = self.ssl_cafile
        return props


def redis_url_with_auth(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``username``/``password`` put in (percent-encoded) when it carries no credentials.

    ``redis://127.0.0.1:6379/0`` + (None, "s3cret") -> ``redis://:s3cret@127.0.0.1:6379/0`` (the default
    user's ``requirepass``); with a user name, an ACL user. A URL that has credentials is returned as is.
    """
    if password is None and username is None:
        return url
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return url
    auth = quote(username or "", safe="") + (":" + quote(password, safe="") if password is not None else "")
    return urlunsplit((parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class StackSettings:
    """Endpoints of Kafka, Redis and Flink, the topic names, and how to authenticate to Kafka.

    ``redis_url`` carries the Redis credentials when there are any (never log it: :func:`redact_url`).
    """

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    flink_rest: str = "http://127.0.0.1:8081"
    topics: Topics = field(default_factory=Topics)
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)

    def __post_init__(self) -> None:
        for server in self.kafka_bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"kafka_bootstrap must be a comma-separated host:port list, got {self.kafka_bootstrap!r}")
        if urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"redis_url must start with redis://, rediss:// or unix://, got {redact_url(self.redis_url)!r}")
        if urlsplit(self.flink_rest).scheme not in ("http", "https"):
            raise ValueError(f"flink_rest must be an http(s) URL, got {self.flink_rest!r}")


def kafka_security(env: dict[str, str] | None = None) -> KafkaSecurity:
    """Read :class:`KafkaSecurity` from ``env`` (default ``os.environ``; variables in the module docstring)."""
    env = os.environ if env is None else env
    return KafkaSecurity(
        security_protocol=env.get("INTENTFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
        sasl_mechanism=(env.get("INTENTFLOW_KAFKA_SASL_MECHANISM") or "").upper() or None,
        sasl_username=env.get("INTENTFLOW_KAFKA_SASL_USERNAME") or None,
        sasl_password=env.get("INTENTFLOW_KAFKA_SASL_PASSWORD"),
        ssl_cafile=env.get("INTENTFLOW_KAFKA_SSL_CAFILE") or None,
    )


def kafka_client_kwargs(env: dict[str, str] | None = None) -> dict[str, str]:
    """kafka-python keyword arguments of the environment's :class:`KafkaSecurity` (``{}`` for plaintext)."""
    return kafka_security(env).python_kwargs()


def stack_settings(env: dict[str, str] | None = None) -> StackSettings:
    """Read :class:`StackSettings` from ``env`` (default ``os.environ``).

    Raises:
        ValueError: inconsistent Kafka security settings (:class:`KafkaSecurity`).
    """
    env = os.environ if env is None else env
    return StackSettings(
        kafka_bootstrap=env.get("INTENTFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        redis_url=redis_url_with_auth(env.get("INTENTFLOW_REDIS_URL", "redis://127.0.0.1:6379/0"),
                                      env.get("INTENTFLOW_REDIS_USERNAME") or None,
                                      env.get("INTENTFLOW_REDIS_PASSWORD")),
        flink_rest=env.get("INTENTFLOW_FLINK_REST", "http://127.0.0.1:8081"),
        topics=Topics.with_prefix(env.get("INTENTFLOW_TOPIC_PREFIX", "")),
        kafka_security=kafka_security(env),
    )


@dataclass(frozen=True)
class JobConfig:
    """Parameters of the personalization job (jobs/personalization.py) and of its baseline.

    Attributes:
        window_ms: micro-batch window, ms. A batch is flushed ``window_ms`` after its first event or
            when it holds ``max_batch_size`` events, whichever comes first. Default 10 ms, the low end of
            the source article's micro-batching range (10-50 ms): since a flush costs one script call
            and one metrics push (issue 10), the job keeps up at 2,000 events/s with 10-ms flushes at
            ~75 % of a core, and the wait it adds (<= 10 ms, ~5 on average) is what leaves room for
            the p50 <= 15 ms target of issue 10 (bench/README.md). At high rates batches fill to
            ``max_batch_size`` first, so throughput does not depend on it.
        max_batch_size: events per micro-batch at most (one ONNX call, one Redis pipeline). 256: the
            largest batch size of bench/score_bench.py, where per-event scoring cost has flattened.
        allowed_lateness_ms: events of a session are applied in event-time order within this bound
            (an out-of-order event inside it is inserted and the session state rebuilt, so it counts
            in every feature as if it had come in order); an event older than the session's newest
            event by more than this is late: counted and sent to the DLQ topic with reason
            ``late_event``. Default ``udfs.limits.ALLOWED_LATENESS_MS`` (5 min), computed from the
            SDK's retry schedule, the collector's Retry-After and answer timeout and the longest
            outage to ride out, so events retried after an outage still count.
        dedup_ttl_ms: event ids are remembered this long (event time) per session to drop
            duplicates (retries, a beacon and a fetch of one batch). 10 min: at least
            ``allowed_lateness_ms`` (checked), so a copy that is not late is always recognised.
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
        pre_encode_lead_ms / pre_encode_idle_ms / pre_encode_per_batch: in the last ``pre_encode_lead_ms``
            before a shard's state write, each of its batches encodes up to ``pre_encode_per_batch`` of its
            changed sessions untouched for ``pre_encode_idle_ms``, or for the time left before the write
            when that is shorter (``udfs.microbatch.ShardSessions.pre_encode``), so the write's pause holds
            only the sessions changed in its last moments.
            4,000 / 1,500 / 16, our choice: 16 encodes (~0.5 ms) per batch keep pace with ~2,500 changed
            sessions per shard and interval (100,000 open at 2,000 events/s) in 4 s of 10-ms flushes; far
            from the write, sessions touched every ~0.5 s (1,000 open) are left to it rather than encoded
            again and again. ``pre_encode_lead_ms`` 0: off; a lead
            longer than ``state_write_interval_ms`` encodes ahead all through the interval.
        page_rates: annotate page views with their page's bounce and exit rates over the other
            sessions this subtask has seen (``udfs.page_stats.PageStats``, in memory). Off by default:
            with it a decision depends on other sessions and on the order the job saw them in, so the
            batching invariance (``window_ms`` 10 = 50), replay = live and restore = failure-free run
            no longer hold exactly (measured: test_personalization_job, an intent score 0.021 vs 0.060);
            without it the rates come from the page-rates table in force (``udfs.page_rates``: built
            over a closed window and published like a ruleset, so the guarantees hold), and with no
            table the rate features hold the UCI means (``udfs.session``).
        gc_freeze: after each state write, move the objects alive into CPython's permanent generation
            (``udfs.gcpolicy.FrozenGenerations``), so the cyclic GC stops scanning the session copy: its
            full collections were the job's latency tail (170-240 ms pauses, measured).
        gc_full_interval_ms: with ``gc_freeze``, release and collect everything this often (ms; 1 h).
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

    window_ms: int = 10
    max_batch_size: int = 256
    allowed_lateness_ms: int = ALLOWED_LATENESS_MS
    dedup_ttl_ms: int = 600_000
    dedup_max_ids: int = 512
    session_ttl_s: int = 1800
    state_write_interval_ms: int = 10_000
    summary_interval_ms: int = 1000
    pre_encode_lead_ms: int = 4000
    pre_encode_idle_ms: int = 1500
    pre_encode_per_batch: int = 16
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
    gc_freeze: bool = True
    gc_full_interval_ms: int = 3_600_000

    def __post_init__(self) -> None:
        if not 1 <= self.window_ms <= 1000:
            raise ValueError(f"window_ms must be within 1..1000, got {self.window_ms}")
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not 1 <= self.parallelism <= self.max_parallelism:
            raise ValueError(f"parallelism must be within 1..max_parallelism ({self.max_parallelism}), "
                             f"got {self.parallelism}")
        if min(self.pre_encode_lead_ms, self.pre_encode_idle_ms, self.pre_encode_per_batch) < 0:
            raise ValueError(f"pre_encode_lead_ms, pre_encode_idle_ms and pre_encode_per_batch must be >= 0, got "
                             f"{self.pre_encode_lead_ms}, {self.pre_encode_idle_ms}, {self.pre_encode_per_batch}")
        if self.gc_full_interval_ms <= 0:
            raise ValueError(f"gc_full_interval_ms must be > 0, got {self.gc_full_interval_ms}")
        if self.allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {self.allowed_lateness_ms}")
        if self.dedup_ttl_ms < self.allowed_lateness_ms:
            raise ValueError(f"dedup_ttl_ms ({self.dedup_ttl_ms}) must be >= allowed_lateness_ms "
                             f"({self.allowed_lateness_ms}): a retried copy inside the horizon must be recognised")
