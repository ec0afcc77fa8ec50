"""The collector's settings: :class:`CollectorSettings`, read from the environment by :func:`collector_settings`.

Limits are those of ``udfs.limits`` (one definition for collector, job and decision API); Kafka address,
topics and SASL/TLS come from ``udfs.config.stack_settings``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from udfs.config import KafkaSecurity, stack_settings
from udfs.limits import (BATCH_MAX_BYTES, BATCH_MAX_EVENTS, COLLECTOR_ANSWER_TIMEOUT_S, COLLECTOR_RETRY_AFTER_S,
                         EVENT_MAX_BYTES)

#: Per-event limit, bytes of the event's JSON (``udfs.limits.EVENT_MAX_BYTES``).
MAX_EVENT_BYTES = EVENT_MAX_BYTES
#: Per-request limit, bytes of the (decompressed) body (``udfs.limits.BATCH_MAX_BYTES``).
MAX_BATCH_BYTES = BATCH_MAX_BYTES
#: Most events in one batch (``udfs.limits.BATCH_MAX_EVENTS``).
MAX_BATCH_EVENTS = BATCH_MAX_EVENTS
#: ``Content-Encoding`` values of a request body the collector decodes (aiohttp does the decoding).
CONTENT_ENCODINGS = ("gzip", "deflate", "identity")
#: Source name of requests when no write keys are configured, or of the single ``write_key``.
DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class CollectorSettings:
    """Collector configuration. Times in s or ms as named; rates in requests/s."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_raw: str = "signals.raw"
    topic_dlq: str = "signals.dlq"
    max_event_bytes: int = MAX_EVENT_BYTES
    max_batch_bytes: int = MAX_BATCH_BYTES
    max_batch_events: int = MAX_BATCH_EVENTS
    #: token bucket per client IP: sustained requests/s and burst (our choice: an SDK flushes every
    #: few seconds and on page hide, so 20 req/s per IP leaves room for a busy NAT).
    rate_limit_per_s: float = 20.0
    rate_burst: int = 60
    #: allowed ``Origin`` values; ``*`` allows any. Requests without Origin (servers, replay) pass.
    cors_origins: tuple[str, ...] = ("http://127.0.0.1:8088", "http://localhost:8088")
    #: one key for every client (source ``default``); see also ``write_keys``.
    write_key: str | None = None
    #: a key per source, ``{source name: key}`` (e.g. ``{"web": ..., "snowplow": ...}``): a request
    #: must carry one of them (or ``write_key``), and its events are counted under that source.
    write_keys: dict[str, str] = field(default_factory=dict)
    #: the longest a ``POST /v1/events`` waits for the broker's acknowledgement once its body is read,
    #: s: the request is answered by then (``503`` + ``Retry-After`` if not every record was acked).
    produce_timeout_s: float = COLLECTOR_ANSWER_TIMEOUT_S
    #: ``Retry-After`` of a 503, s; the job's allowed lateness is computed from it (udfs.limits).
    retry_after_s: int = COLLECTOR_RETRY_AFTER_S
    #: producer linger, ms (small: an HTTP answer waits on it).
    linger_ms: int = 2
    #: how many acknowledged event ids are remembered for duplicate detection.
    dedup_capacity: int = 100_000
    #: trust ``X-Forwarded-For`` (only behind a proxy you run).
    trust_forwarded_for: bool = False
    #: mount collector.decision (decision API, web pages) when the module exists.
    mount_decision: bool = True
    #: SASL/TLS of the Kafka connection (``udfs.config.KafkaSecurity``; default: plaintext).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    extra: dict[str, Any] = field(default_factory=dict)


def collector_settings(env: dict[str, str] | None = None, **overrides: Any) -> CollectorSettings:
    """Settings from the environment (``INTENTFLOW_*`` of udfs.config plus the ones below), then ``overrides``.

    ``INTENTFLOW_CORS_ORIGINS`` (comma-separated), ``INTENTFLOW_WRITE_KEY``,
    ``INTENTFLOW_WRITE_KEYS`` (comma-separated ``source=key``), ``INTENTFLOW_RATE_LIMIT_PER_S``,
    ``INTENTFLOW_RATE_BURST``.
    """
    env = os.environ if env is None else env
    st = stack_settings(env)
    kw: dict[str, Any] = {
        "kafka_bootstrap": st.kafka_bootstrap,
        "topic_raw": st.topics.raw,
        "topic_dlq": st.topics.dlq,
        "kafka_security": st.kafka_security,
    }
    if env.get("INTENTFLOW_CORS_ORIGINS"):
        kw["cors_origins"] = tuple(o.strip() for o in env["INTENTFLOW_CORS_ORIGINS"].split(",") if o.strip())
    if env.get("INTENTFLOW_WRITE_KEY"):
        kw["write_key"] = env["INTENTFLOW_WRITE_KEY"]
    if env.get("INTENTFLOW_WRITE_KEYS"):
        kw["write_keys"] = parse_write_keys(env["INTENTFLOW_WRITE_KEYS"].split(","))
    if env.get("INTENTFLOW_RATE_LIMIT_PER_S"):
        kw["rate_limit_per_s"] = float(env["INTENTFLOW_RATE_LIMIT_PER_S"])
    if env.get("INTENTFLOW_RATE_BURST"):
        kw["rate_burst"] = int(env["INTENTFLOW_RATE_BURST"])
    kw.update(overrides)
    return CollectorSettings(**kw)


def parse_write_keys(specs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["web=k1", "partner=k2"]`` -> ``{"web": "k1", "partner": "k2"}`` (blank entries skipped).

    Raises:
        ValueError: an entry without ``=``, with an empty source or key, or a source named twice.
    """
    keys: dict[str, str] = {}
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        source, sep, key = spec.partition("=")
        source, key = source.strip(), key.strip()
        if not sep or not source or not key:
            raise ValueError(f"write key {spec!r}: expected SOURCE=KEY")
        if source in keys:
            raise ValueError(f"write key source {source!r} given twice")
        keys[source] = key
    return keys
