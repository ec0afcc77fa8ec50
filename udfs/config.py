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
