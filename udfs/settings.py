"""One settings tree for every process of intentflow, read once from the environment and validated whole.

:func:`load_settings` reads every ``INTENTFLOW_*`` variable of :data:`VARIABLES` (the one list: name,
section, unit, meaning) and returns a frozen :class:`Settings`:

* ``stack``     Kafka, Redis, Flink REST endpoints, topic names, Kafka SASL/TLS (:class:`udfs.config.StackSettings`);
* ``collector`` the event collector's limits, CORS, write keys, rate limit (:class:`CollectorSettings`);
* ``decision``  the decision API's Redis prefix, timeout, web root (:class:`DecisionSettings`);
* ``edge``      the edge endpoints' models, rules and refresh (:class:`EdgeSettings`);
* ``paths``     checkout, data sets, models and the default ruleset (:class:`PathSettings`);
* ``job``       the job's parameters (:class:`udfs.config.JobConfig`: micro-batch, noise filter, watermark
                and lateness, TTLs), whose values the job takes from its command-line flags; the tree holds
                their validated defaults.

Every problem of the environment is reported at once (:class:`SettingsError`, one line per variable), not
the first one; an ``INTENTFLOW_*`` variable that is neither a setting nor one of the tooling variables of
:data:`TOOLING_VARIABLES` is reported by :func:`unknown_variables` with the closest name (a typo must not
silently fall back to a default). Nothing here, nor anywhere in the product, reads the environment at
import time: call :func:`load_settings` (or a section loader, which calls it) where the process starts.

The per-section loaders used across the code (``udfs.config.stack_settings``,
``collector.settings.collector_settings``, ``collector.decision.decision_settings``,
``collector.edge.edge_settings``) read the same variables through this module.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udfs.config import JobConfig, KafkaSecurity, StackSettings, stack_settings
from udfs.limits import (BATCH_MAX_BYTES, BATCH_MAX_EVENTS, COLLECTOR_ANSWER_TIMEOUT_S, COLLECTOR_RETRY_AFTER_S,
                         EVENT_MAX_BYTES)

#: Prefix of every environment variable of intentflow.
ENV_PREFIX = "INTENTFLOW_"

#: The checkout this module belongs to (``INTENTFLOW_HOME`` overrides it for the paths of ``.stack/``).
CHECKOUT = Path(__file__).resolve().parents[1]

#: Default Redis key prefix of the job's writes and the decision API's reads (keys: docs/contracts.md §4).
DEFAULT_REDIS_PREFIX = "if:"
#: The decision API's Redis connect/read timeout, s: the page gets the default layout rather than wait
#: (the 200 ms personalization budget of DESIGN.md leaves 50 ms to one Redis lookup).
DEFAULT_DECISION_TIMEOUT_S = 0.05
#: How often the edge endpoints look at the rules topic, s: the job applies a published ruleset "within
#: seconds" (README, hot reload); a page loading within that window may get the previous one.
DEFAULT_RULES_REFRESH_S = 5.0


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` holds one line per variable (also the message)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n  " + "\n  ".join(self.problems))


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


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class CollectorSettings:
    """Collector configuration. Times in s or ms as named; rates in requests/s.

    Raises:
        ValueError: a value out of its range (named in the message).
    """

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_raw: str = "signals.raw"
    topic_dlq: str = "signals.dlq"
    max_event_bytes: int = EVENT_MAX_BYTES
    max_batch_bytes: int = BATCH_MAX_BYTES
    max_batch_events: int = BATCH_MAX_EVENTS
    #: token bucket per client IP: sustained requests/s and burst (our choice: an SDK flushes every
    #: few seconds and on page hide, so 20 req/s per IP leaves room for a busy NAT); 0 = no limit.
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

    def __post_init__(self) -> None:
        _check(self.rate_limit_per_s >= 0, f"rate_limit_per_s must be >= 0 (0: no limit), got {self.rate_limit_per_s}")
        _check(self.rate_burst >= 1, f"rate_burst must be >= 1, got {self.rate_burst}")
        _check(0 < self.produce_timeout_s <= 60, f"produce_timeout_s must be within (0, 60], got {self.produce_timeout_s}")
        _check(1 <= self.retry_after_s <= 3600, f"retry_after_s must be within 1..3600, got {self.retry_after_s}")
        _check(0 <= self.linger_ms <= 1000, f"linger_ms must be within 0..1000, got {self.linger_ms}")
        _check(self.dedup_capacity >= 0, f"dedup_capacity must be >= 0, got {self.dedup_capacity}")
        for name in ("max_event_bytes", "max_batch_bytes", "max_batch_events"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.max_event_bytes <= self.max_batch_bytes,
               f"max_event_bytes ({self.max_event_bytes}) must be <= max_batch_bytes ({self.max_batch_bytes})")
        _check(bool(self.cors_origins), "cors_origins must name at least one origin (or '*')")


@dataclass(frozen=True)
class DecisionSettings:
    """Where the decision API reads from and what it serves.

    Raises:
        ValueError: a timeout outside (0, 10] s.
    """

    redis_url: str
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    timeout_s: float = DEFAULT_DECISION_TIMEOUT_S
    web_root: Path = CHECKOUT / "web"
    #: the ruleset whose experiments' split ``GET /v1/experiments`` reports (``paths.rules_file``).
    rules_file: Path = CHECKOUT / "rules" / "default.v1.json"

    def __post_init__(self) -> None:
        _check(0 < self.timeout_s <= 10, f"timeout_s must be within (0, 10] s, got {self.timeout_s}")


@dataclass(frozen=True)
class EdgeSettings:
    """Where the edge endpoints read from. Times in s.

    Raises:
        ValueError: a refresh interval outside 0..3600 s.
    """

    models_root: Path = CHECKOUT / "models"
    rules_file: Path = CHECKOUT / "rules" / "default.v1.json"
    #: Kafka bootstrap and rules topic; None = serve ``rules_file`` only (no topic lookup).
    kafka_bootstrap: str | None = "127.0.0.1:9092"
    rules_topic: str | None = "rules"
    rules_refresh_s: float = DEFAULT_RULES_REFRESH_S
    ort_dir: Path = CHECKOUT / "web" / "node_modules" / "onnxruntime-web" / "dist"
    #: allowed cross-origin page origins (``*`` = any); default: the collector's own setting.
    cors_origins: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check(0 <= self.rules_refresh_s <= 3600, f"rules_refresh_s must be within 0..3600 s (0: on every request), got {self.rules_refresh_s}")


@dataclass(frozen=True)
class PathSettings:
    """Folders and files the processes read.

    Attributes:
        home: the checkout whose ``.stack/``, ``flink-conf/`` and jars the job uses.
        data_dir: the real data sets (docs/data.md), default ``../shared/data`` beside the checkout.
        models_dir: model versions (docs/contracts.md §3).
        rules_file: the ruleset a process uses when none was published (``rules/default.v1.json``).
    """

    home: Path = CHECKOUT
    data_dir: Path = CHECKOUT.parent / "shared" / "data"
    models_dir: Path = CHECKOUT / "models"
    rules_file: Path = CHECKOUT / "rules" / "default.v1.json"


@dataclass(frozen=True)
class Settings:
    """The whole tree (see the module docstring)."""

    stack: StackSettings
    collector: CollectorSettings
    decision: DecisionSettings
    edge: EdgeSettings
    paths: PathSettings
    job: JobConfig = field(default_factory=JobConfig)


@dataclass(frozen=True)
class Variable:
    """One environment variable: ``name`` without :data:`ENV_PREFIX`, the section and field it sets (None:
    read by the section's composite loader), the parser of its text, and its meaning with units."""

    name: str
    section: str
    field: str | None
    parse: Callable[[str], Any] | None
    doc: str


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in text.split(",") if o.strip())


def _keys(text: str) -> dict[str, str]:
    return parse_write_keys(text.split(","))


#: Every setting, by section (docs: README "Settings"; generated check in tests/unit/test_settings.py).
VARIABLES: tuple[Variable, ...] = (
    Variable("KAFKA_BOOTSTRAP", "stack", None, None, "Kafka bootstrap host:port list, default 127.0.0.1:9092"),
    Variable("REDIS_URL", "stack", None, None, "Redis URL (redis://, rediss:// for TLS), default redis://127.0.0.1:6379/0"),
    Variable("REDIS_USERNAME", "stack", None, None, "Redis ACL user, put into the URL unless it has credentials"),
    Variable("REDIS_PASSWORD", "stack", None, None, "Redis password (ACL user or requirepass); never logged"),
    Variable("FLINK_REST", "stack", None, None, "Flink REST endpoint, default http://127.0.0.1:8081"),
    Variable("TOPIC_PREFIX", "stack", None, None, "prepended to every topic name (tests isolate runs with it)"),
    Variable("KAFKA_SECURITY_PROTOCOL", "stack", None, None, "PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL"),
    Variable("KAFKA_SASL_MECHANISM", "stack", None, None, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    Variable("KAFKA_SASL_USERNAME", "stack", None, None, "SASL user"),
    Variable("KAFKA_SASL_PASSWORD", "stack", None, None, "SASL password; never logged"),
    Variable("KAFKA_SSL_CAFILE", "stack", None, None, "PEM file of the CA that signed the brokers' certificates"),
    Variable("CORS_ORIGINS", "collector", "cors_origins", _origins, "comma-separated allowed page origins, * = any"),
    Variable("WRITE_KEY", "collector", "write_key", str, "one write key every client must send"),
    Variable("WRITE_KEYS", "collector", "write_keys", _keys, "comma-separated SOURCE=KEY, a key per source"),
    Variable("RATE_LIMIT_PER_S", "collector", "rate_limit_per_s", float, "requests/s per client IP, 0 = no limit, default 20"),
    Variable("RATE_BURST", "collector", "rate_burst", int, "token bucket burst, requests, default 60"),
    Variable("REDIS_PREFIX", "decision", "redis_prefix", str, "Redis key prefix of the decision API, default if:"),
    Variable("DECISION_TIMEOUT_S", "decision", "timeout_s", float, "decision API Redis timeout, s, default 0.05"),
    Variable("WEB_ROOT", "decision", "web_root", Path, "folder served as /sdk and /demo, default web/ of the checkout"),
    Variable("HOME", "paths", "home", Path, "checkout whose .stack/, flink-conf/ and jars the job uses"),
    Variable("DATA_DIR", "paths", "data_dir", Path, "real data sets, default ../shared/data beside the checkout"),
    Variable("MODELS_DIR", "paths", "models_dir", Path, "model versions, default models/ of the checkout"),
    Variable("RULES_FILE", "paths", "rules_file", Path, "ruleset used when none was published, default rules/default.v1.json"),
)

#: ``INTENTFLOW_*`` variables of the tooling, not of the product (setup, tests, benchmarks, containers):
#: known names, so :func:`unknown_variables` does not report them.
TOOLING_VARIABLES: frozenset[str] = frozenset({
    "SKIP_BROWSER", "CHROMIUM", "UPDATE_DOC_IMAGES", "BENCH_JOB_ARGS", "WEB_DIR", "CONTAINER_IP",
    "FLINK_CONF_DIR", "JOB_NAME", "VENDOR",
})


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole tree from ``env`` (default: ``os.environ``, read at this call).

    Raises:
        SettingsError: every invalid variable and every out-of-range value, one line each.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    given: dict[str, dict[str, Any]] = {"collector": {}, "decision": {}, "paths": {}}
    for var in VARIABLES:
        text = env.get(ENV_PREFIX + var.name)
        if var.field is None or text is None or text == "":
            continue
        try:
            given[var.section][var.field] = var.parse(text)
        except (TypeError, ValueError) as exc:
            problems.append(f"{ENV_PREFIX}{var.name}={text!r}: {exc}")

    def build(section: str, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except (TypeError, ValueError) as exc:
            names = [ENV_PREFIX + v.name for v in VARIABLES if v.section == section and env.get(ENV_PREFIX + v.name)]
            problems.append(f"{section} ({', '.join(names) or 'defaults'}): {exc}")
            return None

    stack = build("stack", lambda: stack_settings(env))
    st = stack or StackSettings()
    collector = build("collector", lambda: CollectorSettings(
        kafka_bootstrap=st.kafka_bootstrap, topic_raw=st.topics.raw, topic_dlq=st.topics.dlq,
        kafka_security=st.kafka_security, **given["collector"]))
    paths = build("paths", lambda: PathSettings(**given["paths"]))
    pt = paths or PathSettings()
    decision = build("decision", lambda: DecisionSettings(redis_url=st.redis_url, rules_file=pt.rules_file,
                                                          **given["decision"]))
    edge = build("edge", lambda: EdgeSettings(models_root=pt.models_dir, rules_file=pt.rules_file,
                                              kafka_bootstrap=st.kafka_bootstrap, rules_topic=st.topics.rules))
    if problems:
        raise SettingsError(problems)
    return Settings(stack=stack, collector=collector, decision=decision, edge=edge, paths=paths)


def path_settings(env: Mapping[str, str] | None = None) -> PathSettings:
    """The ``paths`` section alone (``INTENTFLOW_HOME``, ``_DATA_DIR``, ``_MODELS_DIR``, ``_RULES_FILE``),
    for the helpers that only need a folder (``operators.layout.home``, ``udfs.datasets.data_dir``,
    ``udfs.model_manifest.models_dir``), read at the call.

    Raises:
        SettingsError: an invalid path variable.
    """
    env = os.environ if env is None else env
    given, problems = {}, []
    for var in VARIABLES:
        text = env.get(ENV_PREFIX + var.name)
        if var.section == "paths" and text:
            try:
                given[var.field] = var.parse(text)
            except (TypeError, ValueError) as exc:
                problems.append(f"{ENV_PREFIX}{var.name}={text!r}: {exc}")
    if problems:
        raise SettingsError(problems)
    return PathSettings(**given)


def unknown_variables(env: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """``[(name, closest known name or None)]`` of the ``INTENTFLOW_*`` variables in ``env`` that are
    neither a setting (:data:`VARIABLES`) nor tooling (:data:`TOOLING_VARIABLES`), sorted by name."""
    env = os.environ if env is None else env
    known = {v.name for v in VARIABLES} | TOOLING_VARIABLES
    out = []
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):] not in known:
            close = difflib.get_close_matches(name[len(ENV_PREFIX):], sorted(known), n=1, cutoff=0.75)
            out.append((name, ENV_PREFIX + close[0] if close else None))
    return out


def checked_settings(env: Mapping[str, str] | None = None, warn: Callable[[str], None] | None = None) -> Settings:
    """:func:`load_settings` for a process that starts: each unknown ``INTENTFLOW_*`` variable is passed to
    ``warn`` (one line, with the closest setting) before the tree is read.

    Raises:
        SettingsError: as :func:`load_settings`.
    """
    if warn is not None:
        for name, close in unknown_variables(env):
            warn(f"{name} is not an intentflow setting" + (f"; did you mean {close}?" if close else "")
                 + " (settings: udfs/settings.py VARIABLES, README 'Settings')")
    return load_settings(env)
