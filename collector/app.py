"""The collector: HTTP ``POST /v1/events`` -> normalized events on Kafka ``signals.raw`` (+ ``signals.dlq``).

Endpoints:

``POST /v1/events``
    Body: ``{"sent_at_ms": int|null, "events": [event, ...]}``, a bare list of events, or one event
    object; ``Content-Type`` ``application/json``, ``text/plain`` (what ``sendBeacon`` sends) or none;
    ``Content-Encoding: gzip``/``deflate`` accepted (aiohttp decompresses; the batch limit applies to the
    decompressed body). Each event is normalized (:func:`udfs.normalize.normalize_event`, stamped with
    ``received_at_ms``), events of the batch are sorted by event time, accepted ones produced to
    ``signals.raw`` (key ``session_id``) and rejected ones to ``signals.dlq`` with a reason code
    (:func:`udfs.dlq.dlq_record`, stage ``collector``). The answer comes only after the broker
    acknowledged every record (``acks="all"``):

    - ``200`` ``{"accepted": n, "rejected": n, "duplicates": n, "results": [{"index", "status",
      "event_id", "reason"?, "detail"?}]}``; ``status`` is ``accepted``, ``rejected`` (in the DLQ) or
      ``duplicate`` (same ``event_id`` already acknowledged by the broker through this collector, or twice
      in the batch: not produced again);
    - ``413`` ``{"error": "batch_too_large"}`` above ``max_batch_bytes``; a single-event body above
      ``max_event_bytes`` is ``413 event_too_large`` (inside a batch such an event is rejected to the
      DLQ with that reason and the rest is accepted);
    - ``400`` ``invalid_json`` / ``bad_batch`` / ``too_many_events``; ``415`` other content types;
    - ``401`` wrong or missing write key (header ``X-Write-Key`` or query ``write_key``, since
      ``sendBeacon`` cannot set headers); ``403`` an ``Origin`` outside the CORS allow-list;
    - ``429`` + ``Retry-After`` over the client's rate limit (token bucket per client IP);
    - ``503`` + ``Retry-After`` when Kafka does not acknowledge in ``produce_timeout_s`` (or cannot be
      reached): nothing is reported accepted; the client resends the same events (same ``event_id``),
      duplicates of a partially written batch are removed downstream by ``event_id``.

``GET /healthz``  ``200 {"status": "ok", "kafka": true}`` or ``503`` when no broker is connected.
``GET /metrics``  Prometheus text format: requests by status, events accepted / rejected by reason /
duplicates, records produced by topic, request and produce latency histograms (ms).

``create_app`` also mounts ``collector.decision.register(app)`` (decision API + web pages) when that
module exists. Settings come from :func:`collector_settings` (environment) or are passed in.
"""
from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import click
import orjson
from aiohttp import web

from udfs.config import stack_settings
from udfs.contract import ContractError, dumps_event
from udfs.dlq import dlq_record, dumps_dlq
from udfs.normalize import loads_fast, normalize_event, sort_events

log = logging.getLogger("intentflow.collector")

#: Per-event limit, bytes of the event's JSON (issue 3; the SDK keeps events far below it).
MAX_EVENT_BYTES = 32 * 1024
#: Per-request limit, bytes of the (decompressed) body (issue 3).
MAX_BATCH_BYTES = 500 * 1024
#: Most events in one batch (our choice: 500 KB / ~300 B per typical event, rounded).
MAX_BATCH_EVENTS = 2000
#: Latency histogram bucket bounds, ms.
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


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
    write_key: str | None = None
    #: how long to wait for the broker's acknowledgement before answering 503, s.
    produce_timeout_s: float = 10.0
    retry_after_s: int = 5
    #: producer linger, ms (small: an HTTP answer waits on it).
    linger_ms: int = 2
    #: how many acknowledged event ids are remembered for duplicate detection.
    dedup_capacity: int = 100_000
    #: trust ``X-Forwarded-For`` (only behind a proxy you run).
    trust_forwarded_for: bool = False
    #: mount collector.decision (decision API, web pages) when the module exists.
    mount_decision: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def collector_settings(env: dict[str, str] | None = None, **overrides: Any) -> CollectorSettings:
    """Settings from the environment (``INTENTFLOW_*`` of udfs.config plus the ones below), then ``overrides``.

    ``INTENTFLOW_CORS_ORIGINS`` (comma-separated), ``INTENTFLOW_WRITE_KEY``,
    ``INTENTFLOW_RATE_LIMIT_PER_S``, ``INTENTFLOW_RATE_BURST``.
    """
    env = os.environ if env is None else env
    st = stack_settings(env)
    kw: dict[str, Any] = {
        "kafka_bootstrap": st.kafka_bootstrap,
        "topic_raw": st.topics.raw,
        "topic_dlq": st.topics.dlq,
    }
    if env.get("INTENTFLOW_CORS_ORIGINS"):
        kw["cors_origins"] = tuple(o.strip() for o in env["INTENTFLOW_CORS_ORIGINS"].split(",") if o.strip())
    if env.get("INTENTFLOW_WRITE_KEY"):
        kw["write_key"] = env["INTENTFLOW_WRITE_KEY"]
    if env.get("INTENTFLOW_RATE_LIMIT_PER_S"):
        kw["rate_limit_per_s"] = float(env["INTENTFLOW_RATE_LIMIT_PER_S"])
    if env.get("INTENTFLOW_RATE_BURST"):
        kw["rate_burst"] = int(env["INTENTFLOW_RATE_BURST"])
    kw.update(overrides)
    return CollectorSettings(**kw)


# ---- metrics --------------------------------------------------------------------------------------


class Histogram:
    """Cumulative-bucket histogram for the Prometheus text format (values in ms)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_MS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, cum = [], 0
        for bound, n in zip(self.buckets, self.counts):
            cum += n
            out.append(f'{name}_bucket{{le="{bound}"}} {cum}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.sum:.3f}")
        out.append(f"{name}_count {self.count}")
        return out


@dataclass
class Metrics:
    """Counters of one collector process (exported by ``/metrics``)."""

    requests: dict[int, int] = field(default_factory=dict)
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    produced: dict[str, int] = field(default_factory=dict)
    request_ms: Histogram = field(default_factory=Histogram)
    produce_ms: Histogram = field(default_factory=Histogram)

    def render(self) -> str:
        lines = ["# TYPE intentflow_collector_requests_total counter"]
        lines += [f'intentflow_collector_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
        lines += ["# TYPE intentflow_collector_events_accepted_total counter",
                  f"intentflow_collector_events_accepted_total {self.accepted}",
                  "# TYPE intentflow_collector_events_duplicate_total counter",
                  f"intentflow_collector_events_duplicate_total {self.duplicates}",
                  "# TYPE intentflow_collector_events_rejected_total counter"]
        lines += [f'intentflow_collector_events_rejected_total{{reason="{r}"}} {n}'
                  for r, n in sorted(self.rejected.items())]
        lines.append("# TYPE intentflow_collector_records_produced_total counter")
        lines += [f'intentflow_collector_records_produced_total{{topic="{t}"}} {n}'
                  for t, n in sorted(self.produced.items())]
        lines.append("# TYPE intentflow_collector_request_ms histogram")
        lines += self.request_ms.lines("intentflow_collector_request_ms")
        lines.append("# TYPE intentflow_collector_produce_ms histogram")
        lines += self.produce_ms.lines("intentflow_collector_produce_ms")
        return "\n".join(lines) + "\n"


# ---- rate limit, dedup ----------------------------------------------------------------------------


class TokenBuckets:
    """One token bucket per client key; the least recently used keys are forgotten past ``max_keys``."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now_s: float | None = None) -> float:
        """Take one token; return 0.0 when allowed, else the seconds until a token is available."""
        now_s = time.monotonic() if now_s is None else now_s
        tokens, last = self._buckets.pop(key, (float(self.burst), now_s))
        tokens = min(float(self.burst), tokens + (now_s - last) * self.rate_per_s)
        wait_s = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait_s = (1.0 - tokens) / self.rate_per_s if self.rate_per_s > 0 else float("inf")
        self._buckets[key] = (tokens, now_s)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait_s


class SeenIds:
    """Bounded LRU set of event ids the broker acknowledged."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add_all(self, ids: list[str]) -> None:
        for i in ids:
            self._ids[i] = None
            self._ids.move_to_end(i)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


# ---- Kafka ----------------------------------------------------------------------------------------


class KafkaUnavailable(RuntimeError):
    """The broker cannot be reached or did not acknowledge in time."""


class Producer:
    """A lazily (re)connecting kafka-python producer; every call blocks, so run it in an executor."""

    #: least time between two connection attempts while the broker is down, s (our choice).
    RECONNECT_INTERVAL_S = 1.0

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self._producer = None
        self._lock = threading.Lock()
        self._last_attempt = 0.0

    def _get(self):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        with self._lock:
            if self._producer is not None:
                return self._producer
            now = time.monotonic()
            if now - self._last_attempt < self.RECONNECT_INTERVAL_S:
                raise KafkaUnavailable("broker unreachable (retrying)")
            self._last_attempt = now
            timeout_ms = int(self.settings.produce_timeout_s * 1000)
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    acks="all",
                    linger_ms=self.settings.linger_ms,
                    bootstrap_timeout_ms=min(timeout_ms, 2000),
                    max_block_ms=timeout_ms,
                    request_timeout_ms=max(1000, timeout_ms // 2),
                    delivery_timeout_ms=timeout_ms + self.settings.linger_ms,
                    max_request_size=4 * 1024 * 1024,
                    client_id="intentflow-collector",
                )
            except KafkaError as exc:
                raise KafkaUnavailable(f"broker unreachable: {exc}") from None
            return self._producer

    def connected(self) -> bool:
        """True when a producer could bootstrap from the broker (connecting now if there is none yet)."""
        try:
            self._get()
            return True
        except KafkaUnavailable:
            return False

    def produce(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Send ``(topic, key, value)`` records and wait for every acknowledgement.

        Raises:
            KafkaUnavailable: no broker, or not every record acknowledged within ``produce_timeout_s``.
        """
        from kafka.errors import KafkaError

        if not records:
            return
        producer = self._get()
        deadline = time.monotonic() + self.settings.produce_timeout_s + 1.0
        try:
            futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
            for fut in futures:
                fut.get(timeout=max(0.001, deadline - time.monotonic()))
        except KafkaError as exc:
            raise KafkaUnavailable(f"not acknowledged: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


# ---- the application ------------------------------------------------------------------------------

SETTINGS_KEY = web.AppKey("collector_settings", CollectorSettings)
STATE_KEY = web.AppKey("collector_state", object)


@dataclass
class _State:
    settings: CollectorSettings
    producer: Producer
    executor: ThreadPoolExecutor
    metrics: Metrics = field(default_factory=Metrics)
    buckets: TokenBuckets | None = None
    seen: SeenIds | None = None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def _client_ip(request: web.Request, settings: CollectorSettings) -> str | None:
    if settings.trust_forwarded_for:
        fwd = request.headers.get("X-Forwarded-For")
        if fwd:
            return fwd.split(",")[0].strip()
    return request.remote


def _origin_allowed(origin: str | None, settings: CollectorSettings) -> bool:
    return origin is None or "*" in settings.cors_origins or origin in settings.cors_origins


@web.middleware
async def _cors_middleware(request: web.Request, handler):
    settings = request.app[SETTINGS_KEY]
    origin = request.headers.get("Origin")
    if not request.path.startswith("/v1/events"):
        return await handler(request)
    if not _origin_allowed(origin, settings):
        return _json({"error": "origin_not_allowed", "origin": origin}, status=403)
    if request.method == "OPTIONS":
        resp = web.Response(status=204)
    else:
        resp = await handler(request)
    if origin is not None:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Vary"] = "Origin"
        resp.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type, Content-Encoding, X-Write-Key"
        resp.headers["Access-Control-Max-Age"] = "600"
    return resp


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The (decompressed) body, or None when it exceeds ``limit`` bytes (read at most limit+1)."""
    if request.content_length is not None and request.content_length > limit and not request.headers.get(
        "Content-Encoding"
    ):
        return None
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _split_batch(obj: Any) -> tuple[list[Any], Any]:
    """``(events, sent_at_ms)`` of a parsed body; raises ValueError for other shapes."""
    if isinstance(obj, list):
        return obj, None
    if isinstance(obj, dict):
        if "events" in obj:
            if not isinstance(obj["events"], list):
                raise ValueError("`events` must be a list")
            return obj["events"], obj.get("sent_at_ms")
        if "type" in obj:  # one bare event
            return [obj], obj.get("sent_at_ms")
    raise ValueError("expected {'sent_at_ms':..,'events':[..]}, a list of events or one event")


async def handle_events(request: web.Request) -> web.Response:
    """``POST /v1/events`` (see the module docstring)."""
    state: _State = request.app[STATE_KEY]
    settings = state.settings
    m = state.metrics
    t0 = time.perf_counter()
    received_at_ms = int(time.time() * 1000)

    def done(resp: web.Response) -> web.Response:
        m.requests[resp.status] = m.requests.get(resp.status, 0) + 1
        m.request_ms.observe((time.perf_counter() - t0) * 1000)
        return resp

    if settings.write_key is not None:
        given = request.headers.get("X-Write-Key") or request.query.get("write_key")
        if given != settings.write_key:
            return done(_json({"error": "invalid_write_key"}, status=401))
    ctype = request.content_type
    if ctype not in ("application/json", "text/plain", "application/octet-stream", ""):
        return done(_json({"error": "unsupported_content_type", "content_type": ctype}, status=415))
    client_ip = _client_ip(request, settings)
    wait_s = state.buckets.take(client_ip or "?") if state.buckets else 0.0
    if wait_s > 0:
        retry = str(max(1, int(wait_s + 0.999)))
        return done(_json({"error": "rate_limited", "retry_after_s": int(retry)}, status=429,
                          headers={"Retry-After": retry}))
    body = await _read_body(request, settings.max_batch_bytes)
    if body is None:
        return done(_json({"error": "batch_too_large", "limit_bytes": settings.max_batch_bytes}, status=413))
    try:
        parsed = loads_fast(body)
        items, sent_at_ms = _split_batch(parsed)
    except ContractError as exc:
        return done(_json({"error": exc.reason, "detail": exc.detail}, status=400))
    except ValueError as exc:
        return done(_json({"error": "bad_batch", "detail": str(exc)}, status=400))
    if len(items) > settings.max_batch_events:
        return done(_json({"error": "too_many_events", "limit": settings.max_batch_events}, status=400))
    if isinstance(parsed, dict) and "events" not in parsed and len(body) > settings.max_event_bytes:
        return done(_json({"error": "event_too_large", "limit_bytes": settings.max_event_bytes}, status=413))

    user_agent = request.headers.get("User-Agent")
    results: list[dict[str, Any]] = [{} for _ in items]
    accepted: list[tuple[int, dict[str, Any]]] = []
    rejected: list[tuple[int, dict[str, Any]]] = []
    batch_ids: set[str] = set()
    for i, item in enumerate(items):
        try:
            payload = orjson.dumps(item)
        except TypeError:  # lone surrogates / NaN from the lenient parser: measured on a cleaned copy
            payload = dumps_dlq_safe(item)
        event_id = item.get("event_id") if isinstance(item, dict) else None
        try:
            if len(payload) > settings.max_event_bytes:
                raise ContractError("event_too_large", f"{len(payload)} bytes > {settings.max_event_bytes}")
            event = normalize_event(item, received_at_ms=received_at_ms, sent_at_ms=sent_at_ms,
                                    client_ip=client_ip, user_agent=user_agent)
        except ContractError as exc:
            rec = dlq_record(exc.reason, "collector", payload, detail=exc.detail,
                             received_at_ms=received_at_ms, event_id=event_id if isinstance(event_id, str) else None)
            rejected.append((i, rec))
            results[i] = {"index": i, "status": "rejected", "event_id": rec["event_id"],
                          "reason": exc.reason, "detail": exc.detail}
            continue
        eid = event["event_id"]
        if eid in batch_ids or (state.seen is not None and eid in state.seen):
            results[i] = {"index": i, "status": "duplicate", "event_id": eid}
            continue
        batch_ids.add(eid)
        accepted.append((i, event))
        results[i] = {"index": i, "status": "accepted", "event_id": eid}

    events_sorted = sort_events(e for _, e in accepted)
    records = [(settings.topic_raw, e["session_id"].encode(), dumps_event(e)) for e in events_sorted]
    records += [(settings.topic_dlq, (rec["event_id"] or "").encode() or None, dumps_dlq(rec)) for _, rec in rejected]
    tp = time.perf_counter()
    try:
        await asyncio.get_running_loop().run_in_executor(state.executor, state.producer.produce, records)
    except KafkaUnavailable as exc:
        log.warning("answering 503: %s", exc)
        return done(_json({"error": "kafka_unavailable", "detail": str(exc)[:300],
                           "retry_after_s": settings.retry_after_s}, status=503,
                          headers={"Retry-After": str(settings.retry_after_s)}))
    m.produce_ms.observe((time.perf_counter() - tp) * 1000)
    if state.seen is not None:
        state.seen.add_all([e["event_id"] for e in events_sorted])
    n_dup = len(items) - len(accepted) - len(rejected)
    m.accepted += len(accepted)
    m.duplicates += n_dup
    for _, rec in rejected:
        m.rejected[rec["reason"]] = m.rejected.get(rec["reason"], 0) + 1
    if accepted:
        m.produced[settings.topic_raw] = m.produced.get(settings.topic_raw, 0) + len(accepted)
    if rejected:
        m.produced[settings.topic_dlq] = m.produced.get(settings.topic_dlq, 0) + len(rejected)
    return done(_json({"accepted": len(accepted), "rejected": len(rejected), "duplicates": n_dup,
                       "received_at_ms": received_at_ms, "results": results}))


def dumps_dlq_safe(item: Any) -> bytes:
    """JSON bytes of an item orjson refuses (lone surrogates, NaN): via the stdlib, surrogates replaced."""
    import json

    return json.dumps(item, ensure_ascii=False, default=repr).encode("utf-8", "replace")


async def handle_healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 when a broker connection exists, else 503."""
    state: _State = request.app[STATE_KEY]
    ok = await asyncio.get_running_loop().run_in_executor(state.executor, state.producer.connected)
    return _json({"status": "ok" if ok else "degraded", "kafka": ok}, status=200 if ok else 503)


async def handle_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition format 0.0.4."""
    state: _State = request.app[STATE_KEY]
    return web.Response(text=state.metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def create_app(settings: CollectorSettings | None = None) -> web.Application:
    """Build the collector's aiohttp application (see module docstring).

    The producer connects lazily (first request), so the app starts even when Kafka is down.
    """
    settings = settings or collector_settings()
    # aiohttp's own body limit sits above ours, so ours answers first with a JSON reason.
    app = web.Application(middlewares=[_cors_middleware], client_max_size=settings.max_batch_bytes * 4)
    app[SETTINGS_KEY] = settings
    state = _State(
        settings=settings,
        producer=Producer(settings),
        executor=ThreadPoolExecutor(max_workers=4, thread_name_prefix="collector-produce"),
        buckets=TokenBuckets(settings.rate_limit_per_s, settings.rate_burst) if settings.rate_limit_per_s > 0 else None,
        seen=SeenIds(settings.dedup_capacity) if settings.dedup_capacity > 0 else None,
    )
    app[STATE_KEY] = state
    app.router.add_post("/v1/events", handle_events)
    app.router.add_route("OPTIONS", "/v1/events", handle_events)  # answered by the CORS middleware
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/metrics", handle_metrics)

    async def _close(app_: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, state.producer.close)
        state.executor.shutdown(wait=False)

    app.on_cleanup.append(_close)
    if settings.mount_decision and importlib.util.find_spec("collector.decision") is not None:
        importlib.import_module("collector.decision").register(app)
        importlib.import_module("collector.edge").register(app)  # edge scoring: model, rules, runtime
    return app


@click.command("collector")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8088, show_default=True, type=int)
@click.option("--write-key", default=None, help="require this key (header X-Write-Key or ?write_key=)")
@click.option("--cors-origin", "cors_origins", multiple=True, help="allowed Origin (repeatable; '*' for any)")
def collector_cmd(host: str, port: int, write_key: str | None, cors_origins: tuple[str, ...]) -> None:
    """Run the HTTP collector: POST /v1/events -> Kafka signals.raw (+ signals.dlq)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
    overrides: dict[str, Any] = {}
    if write_key:
        overrides["write_key"] = write_key
    if cors_origins:
        overrides["cors_origins"] = cors_origins
    settings = collector_settings(**overrides)
    click.echo(f"collector on http://{host}:{port} -> {settings.kafka_bootstrap} "
               f"topics {settings.topic_raw} / {settings.topic_dlq}")
    web.run_app(create_app(settings), host=host, port=port, print=None)
