"""The collector: HTTP ``POST /v1/events`` -> normalized events on Kafka ``signals.raw`` (+ ``signals.dlq``).

Endpoints:

``POST /v1/events``
    Body: ``{"sent_at_ms": int|null, "events": [event, ...]}``, a bare list of events, or one event
    object; ``Content-Type`` ``application/json``, ``text/plain`` (what ``sendBeacon`` sends) or none;
    ``Content-Encoding: gzip``/``deflate`` accepted (aiohttp decompresses; the batch limit applies to the
    decompressed body; limits are those of ``udfs.limits``, one definition for collector, job and
    decision API). Each event is normalized (:func:`udfs.normalize.normalize_event`, stamped with
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
    - ``400`` ``invalid_json`` / ``bad_batch`` / ``too_many_events`` / ``bad_content_encoding`` (a
      body that is not what its ``Content-Encoding`` says); ``415`` other content types or encodings;
    - ``401`` wrong or missing write key (header ``X-Write-Key`` or query ``write_key``, since
      ``sendBeacon`` cannot set headers; one key, or one per source: ``write_keys``);
      ``403`` an ``Origin`` outside the CORS allow-list;
    - ``429`` + ``Retry-After`` over the client's rate limit (token bucket per client IP);
    - ``503`` + ``Retry-After`` when Kafka has not acknowledged every record ``produce_timeout_s``
      after the body was read (or cannot be reached). The answer is never later than that.

    A client's bytes never cause a 5xx: what is malformed is a 4xx or a DLQ record with a reason.

    **Retries after a 503.** Nothing is reported accepted, but part of the batch may be written (records
    acknowledged before the deadline, or in flight at it). The client resends the same events (same
    ``event_id``; the SDK does). Nothing is lost: every event not known to be written is produced
    again. Nothing is counted twice: ids the broker acknowledged through this collector, also after the
    503, are answered ``duplicate`` and not produced again; every other copy is dropped by the job's
    dedup by ``event_id`` (``udfs.decide.SessionEntry.remember``: per session in keyed state, for
    ``JobConfig.dedup_ttl_ms`` of event time, up to ``dedup_max_ids`` ids per session), which runs
    before the lateness check, so a copy never ends in the DLQ as ``late_event`` either
    (``tests/integration/test_collector_truth.py``).

``GET /healthz``  ``200 {"status": "ok", "kafka": true}`` or ``503`` when no broker is connected.
``GET /metrics``  Prometheus text format (``collector/metrics.py``, ``prometheus_client``): request
latency by route and status, in-flight requests, events accepted / rejected by reason / duplicates per
source, records produced by topic, Kafka produce latency, Redis read latency of the decision API.
``GET /openapi.json``  the OpenAPI 3.0 document of these routes (``collector/openapi.py``).

Logs never carry a client's IP or write key (``collector/access_log.py``).

``create_app`` also mounts ``collector.decision.register(app)`` (decision API + web pages) when that
module exists. Settings come from :func:`collector.settings.collector_settings` (environment) or are
passed in.

This module holds the routes, the application and the ``intentflow collector`` command; the settings are
in ``collector/settings.py``, what a request may send (write keys, origins, rate, sizes, duplicates) in
``collector/limits.py``, the Kafka producer in ``collector/producer.py``, the metrics in
``collector/metrics.py``.
"""
from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import click
import orjson
from aiohttp import web

from collector import metrics as service_metrics
from collector.access_log import TRUST_FORWARDED_KEY, PrefixAccessLogger, client_ip, install_log_filters
from collector.limits import SeenIds, TokenBuckets, event_payload, origin_allowed, read_body, request_source
from collector.openapi import openapi_document
from collector.producer import KafkaUnavailable, Producer
from collector.settings import CONTENT_ENCODINGS, CollectorSettings, collector_settings, parse_write_keys
from udfs.contract import ContractError, dumps_event
from udfs.dlq import dlq_record, dumps_dlq
from udfs.jsontext import loads_fast
from udfs.normalize import normalize_event, sort_events
from udfs.settings import checked_settings

log = logging.getLogger("intentflow.collector")


# ---- the application ------------------------------------------------------------------------------

SETTINGS_KEY = web.AppKey("collector_settings", CollectorSettings)
STATE_KEY = web.AppKey("collector_state", object)


@dataclass
class _State:
    settings: CollectorSettings
    producer: Producer
    executor: ThreadPoolExecutor
    metrics: service_metrics.ServiceMetrics
    buckets: TokenBuckets | None = None
    seen: SeenIds | None = None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def _client_ip(request: web.Request, settings: CollectorSettings) -> str | None:
    return client_ip(request, settings.trust_forwarded_for)


@web.middleware
async def _cors_middleware(request: web.Request, handler):
    settings = request.app[SETTINGS_KEY]
    origin = request.headers.get("Origin")
    if not request.path.startswith("/v1/events"):
        return await handler(request)
    if not origin_allowed(origin, settings):
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
    received_at_ms = int(time.time() * 1000)

    source = request_source(request, settings)
    if source is None:
        return _json({"error": "invalid_write_key"}, status=401)
    ctype = request.content_type
    if ctype not in ("application/json", "text/plain", "application/octet-stream", ""):
        return _json({"error": "unsupported_content_type", "content_type": ctype}, status=415)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding and encoding not in CONTENT_ENCODINGS:
        return _json({"error": "unsupported_content_encoding", "content_encoding": encoding[:100],
                      "supported": list(CONTENT_ENCODINGS)}, status=415)
    client_ip = _client_ip(request, settings)
    wait_s = state.buckets.take(client_ip or "?") if state.buckets else 0.0
    if wait_s > 0:
        retry = str(max(1, int(wait_s + 0.999)))
        return _json({"error": "rate_limited", "retry_after_s": int(retry)}, status=429,
                     headers={"Retry-After": retry})
    try:
        body = await read_body(request, settings.max_batch_bytes)
    except web.RequestPayloadError as exc:  # e.g. "Content-Encoding: gzip" on a body that is not gzip
        # The rest of the body cannot be decoded either: stop reading it and close the connection.
        request.content.feed_eof()
        resp = _json({"error": "bad_content_encoding",
                      "detail": f"body is not valid {encoding or 'content'}: {exc.__cause__ or exc}"[:300]},
                     status=400)
        resp.force_close()
        return resp
    if body is None:
        return _json({"error": "batch_too_large", "limit_bytes": settings.max_batch_bytes}, status=413)
    # The answer is due produce_timeout_s after the body is read (its upload time is the client's).
    deadline_s = time.monotonic() + settings.produce_timeout_s
    try:
        parsed = loads_fast(body)
        items, sent_at_ms = _split_batch(parsed)
    except ContractError as exc:
        return _json({"error": exc.reason, "detail": exc.detail}, status=400)
    except ValueError as exc:
        return _json({"error": "bad_batch", "detail": str(exc)}, status=400)
    if len(items) > settings.max_batch_events:
        return _json({"error": "too_many_events", "limit": settings.max_batch_events}, status=400)
    if isinstance(parsed, dict) and "events" not in parsed and len(body) > settings.max_event_bytes:
        return _json({"error": "event_too_large", "limit_bytes": settings.max_event_bytes}, status=413)

    user_agent = request.headers.get("User-Agent")
    results: list[dict[str, Any]] = [{} for _ in items]
    accepted: list[tuple[int, dict[str, Any]]] = []
    rejected: list[tuple[int, dict[str, Any]]] = []
    batch_ids: set[str] = set()
    for i, item in enumerate(items):
        payload = event_payload(item)
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
    loop = asyncio.get_running_loop()
    on_ack = None
    if state.seen is not None and events_sorted:
        raw_ids = [e["event_id"] for e in events_sorted]
        seen = state.seen

        def on_ack(index: int) -> None:  # producer I/O thread: hand the id to the loop
            if index < len(raw_ids):
                try:
                    loop.call_soon_threadsafe(seen.add_all, [raw_ids[index]])
                except RuntimeError:  # the loop is closed (shutdown): nothing to remember any more
                    pass

    tp = time.perf_counter()
    try:
        await asyncio.wait_for(
            loop.run_in_executor(state.executor, state.producer.produce, records, deadline_s, on_ack),
            timeout=max(0.0, deadline_s - time.monotonic()))
    except (KafkaUnavailable, TimeoutError) as exc:
        m.kafka_produce_duration_s.labels("unavailable").observe(time.perf_counter() - tp)
        detail = str(exc) or f"not acknowledged within produce_timeout_s={settings.produce_timeout_s}"
        log.warning("answering 503: %s", detail)
        return _json({"error": "kafka_unavailable", "detail": detail[:300],
                      "retry_after_s": settings.retry_after_s}, status=503,
                     headers={"Retry-After": str(settings.retry_after_s)})
    m.kafka_produce_duration_s.labels("acked").observe(time.perf_counter() - tp)
    if state.seen is not None:  # every id is acknowledged now (the callbacks may still be on their way)
        state.seen.add_all([e["event_id"] for e in events_sorted])
    n_dup = len(items) - len(accepted) - len(rejected)
    m.events_accepted.labels(source).inc(len(accepted))
    m.events_duplicate.labels(source).inc(n_dup)
    for _, rec in rejected:
        m.events_rejected.labels(source, rec["reason"]).inc()
    if accepted:
        m.records_produced.labels(settings.topic_raw).inc(len(accepted))
    if rejected:
        m.records_produced.labels(settings.topic_dlq).inc(len(rejected))
    return _json({"accepted": len(accepted), "rejected": len(rejected), "duplicates": n_dup,
                  "received_at_ms": received_at_ms, "results": results})


async def handle_healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 when a broker connection exists, else 503 (also when that takes longer than
    ``produce_timeout_s``, e.g. every producer thread is waiting on a broker that does not answer)."""
    state: _State = request.app[STATE_KEY]
    try:
        ok = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(state.executor, state.producer.connected),
            timeout=state.settings.produce_timeout_s)
    except TimeoutError:
        ok = False
    return _json({"status": "ok" if ok else "degraded", "kafka": ok}, status=200 if ok else 503)


async def handle_openapi(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the OpenAPI document of the routes this app serves (collector/openapi.py)."""
    with_decision = any(getattr(r, "canonical", None) == "/v1/decision" for r in request.app.router.resources())
    return _json(openapi_document(include_decision=with_decision))


def create_app(settings: CollectorSettings | None = None, producer: Producer | None = None) -> web.Application:
    """Build the collector's aiohttp application (see module docstring).

    The producer connects lazily (first request), so the app starts even when Kafka is down.
    ``producer`` replaces the Kafka producer (anything with ``produce``, ``connected`` and ``close`` of
    :class:`Producer`); default ``Producer(settings)``.
    """
    settings = settings or collector_settings()
    # aiohttp's own body limit sits above ours, so ours answers first with a JSON reason.
    app = web.Application(middlewares=[_cors_middleware], client_max_size=settings.max_batch_bytes * 4)
    app[SETTINGS_KEY] = settings
    app[TRUST_FORWARDED_KEY] = settings.trust_forwarded_for
    metrics = service_metrics.install(app)
    install_log_filters()
    state = _State(
        settings=settings,
        producer=producer if producer is not None else Producer(settings),
        metrics=metrics,
        executor=ThreadPoolExecutor(max_workers=4, thread_name_prefix="collector-produce"),
        buckets=TokenBuckets(settings.rate_limit_per_s, settings.rate_burst) if settings.rate_limit_per_s > 0 else None,
        seen=SeenIds(settings.dedup_capacity) if settings.dedup_capacity > 0 else None,
    )
    app[STATE_KEY] = state
    app.router.add_post("/v1/events", handle_events)
    app.router.add_route("OPTIONS", "/v1/events", handle_events)  # answered by the CORS middleware
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/openapi.json", handle_openapi)
    importlib.import_module("collector.trackers").register(app)  # Snowplow, Segment, rrweb, PostHog endpoints

    async def _close(app_: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, state.producer.close)
        state.executor.shutdown(wait=False)

    app.on_cleanup.append(_close)
    if settings.mount_decision and importlib.util.find_spec("collector.decision") is not None:
        importlib.import_module("collector.decision").register(app)
        importlib.import_module("collector.edge").register(app)  # edge scoring: model, rules, runtime
    return app


@click.command("collector")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8088, show_default=True, type=int, help="Port to listen on.")
@click.option("--write-key", default=None, help="require this key (header X-Write-Key or ?write_key=)")
@click.option("--source-write-key", "source_write_keys", multiple=True, metavar="SOURCE=KEY",
              help="a write key of one source (repeatable); events are counted per source")
@click.option("--cors-origin", "cors_origins", multiple=True, help="allowed Origin (repeatable; '*' for any)")
@click.option("--rate-limit-per-s", type=click.FloatRange(0), default=None,
              help=f"Sustained requests/s per client address, token bucket; 0 = no limit.  [default: "
                   f"{CollectorSettings.rate_limit_per_s:g} (INTENTFLOW_RATE_LIMIT_PER_S)]")
@click.option("--rate-burst", type=click.IntRange(1), default=None,
              help=f"Requests a client may send at once before the sustained rate applies.  [default: "
                   f"{CollectorSettings.rate_burst} (INTENTFLOW_RATE_BURST)]")
@click.option("--kafka-bootstrap", default=None,
              help="Kafka bootstrap servers.  [default: 127.0.0.1:9092 (INTENTFLOW_KAFKA_BOOTSTRAP)]")
@click.option("--trust-forwarded-for", is_flag=True, default=False,
              help="Take the client address from X-Forwarded-For (only behind a proxy you run).")
def collector_cmd(host: str, port: int, write_key: str | None, source_write_keys: tuple[str, ...],
                  cors_origins: tuple[str, ...], rate_limit_per_s: float | None, rate_burst: int | None,
                  kafka_bootstrap: str | None, trust_forwarded_for: bool) -> None:
    """Run the HTTP collector: POST /v1/events -> Kafka signals.raw (+ signals.dlq)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
    overrides: dict[str, Any] = {}
    if write_key:
        overrides["write_key"] = write_key
    if source_write_keys:
        try:
            overrides["write_keys"] = parse_write_keys(source_write_keys)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--source-write-key") from None
    if cors_origins:
        overrides["cors_origins"] = cors_origins
    if rate_limit_per_s is not None:
        overrides["rate_limit_per_s"] = rate_limit_per_s
    if rate_burst is not None:
        overrides["rate_burst"] = rate_burst
    if kafka_bootstrap:
        overrides["kafka_bootstrap"] = kafka_bootstrap
    if trust_forwarded_for:
        overrides["trust_forwarded_for"] = True
    try:
        checked_settings(warn=logging.getLogger("intentflow.settings").warning)
        settings = collector_settings(**overrides)
    except ValueError as exc:  # SettingsError included: every problem of the environment, one per line
        raise click.ClickException(str(exc)) from None
    limit = (f"{settings.rate_limit_per_s:g} requests/s per client, burst {settings.rate_burst}"
             if settings.rate_limit_per_s > 0 else "no rate limit")
    click.echo(f"collector on http://{host}:{port} -> {settings.kafka_bootstrap} "
               f"topics {settings.topic_raw} / {settings.topic_dlq}; {limit}")
    web.run_app(create_app(settings), host=host, port=port, print=None, access_log_class=PrefixAccessLogger)
