"""HTTP endpoints for the trackers people already run, mounted on the collector by :func:`register`.

Each endpoint takes the tracker's payload as the tracker sends it, maps it with :mod:`udfs.trackers`
(docs/contracts.md §6) and produces like ``POST /v1/events``: accepted events to ``signals.raw``
(key ``session_id``, every event with ``source`` and ``source_event_id``), rejected ones to
``signals.dlq`` (stage ``collector``, the reason, a detail naming the tracker's field), and answers only
after the broker acknowledged every record.

==========================================================  ==============================================
route                                                       tracker
==========================================================  ==============================================
``POST /com.snowplowanalytics.snowplow/tp2``                Snowplow (payload_data JSON)
``GET /i``                                                  Snowplow pixel (query string; answers a GIF)
``POST /v1/batch``, ``/v1/track``, ``/v1/page``,            Segment HTTP API and RudderStack (analytics.js
``/v1/identify`` (+ ``/v1/b``, ``/v1/t``, ``/v1/p``,        uses the one-letter paths)
``/v1/i``)
``POST /v1/rrweb``                                          rrweb (``{session_id, events: [...]}``)
``POST /s/``, ``/e/``, ``/i/v0/e/``, ``/batch/``            PostHog (posthog-js recordings and events)
``GET|POST /flags/``, ``/decide/``, ``/array/{token}/``      PostHog's client configuration: session
``config[.js]``                                             recording on, endpoint ``/s/``, no flags
==========================================================  ==============================================

Same rules as ``/v1/events`` (settings of :class:`collector.settings.CollectorSettings`): the batch and
per-event byte limits (413), at most ``max_batch_events`` events (400), the per-IP rate limit (429 +
Retry-After), the CORS allow-list (403 for another ``Origin``; credentials allowed, as Snowplow's tracker
sends cookies), 503 + Retry-After when Kafka does not acknowledge, duplicates by ``event_id``. The
write key, when configured, is read from ``X-Write-Key`` or ``?write_key=`` as for ``/v1/events``, and
also where each tracker puts its own key: Segment's basic-auth user name or body ``writeKey``, PostHog's
``token``/``api_key``, Snowplow's app id ``aid``. A body that is not the tracker's format is 400
(``bad_batch``/``invalid_json``) with the reason; events inside a valid body that cannot be mapped go
to the DLQ and the answer lists them (``results``).

Answer (except ``GET /i``): ``200 {"accepted", "rejected", "duplicates", "received_at_ms",
"results": [{"index", "status", "event_id", "source_event_id", "reason"?, "detail"?}]}`` (PostHog's
client also reads ``"status": 1``).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from collector.app import STATE_KEY, _client_ip, _json, _State
from collector.limits import origin_allowed, read_body
from collector.producer import KafkaUnavailable
from udfs.contract import ContractError, dumps_event
from udfs.dlq import dlq_record, dumps_dlq
from udfs.jsontext import loads_fast
from udfs.normalize import sort_events
from udfs.trackers import Item, Rejected, event_id_for, posthog, rrweb, segment, snowplow, to_event

#: A 1x1 transparent GIF, the answer of Snowplow's ``GET /i`` pixel.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
DOM_STATES_KEY = web.AppKey("tracker_dom_states", rrweb.DomStates)
#: the request body as read (decompressed) is kept on the request under this key (for tests' recorders)
BODY_KEY = web.RequestKey("tracker_body", bytes)

SNOWPLOW_POST_PATH = "/com.snowplowanalytics.snowplow/tp2"
SEGMENT_PATHS = ("/v1/batch", "/v1/track", "/v1/page", "/v1/identify", "/v1/b", "/v1/t", "/v1/p", "/v1/i")
POSTHOG_PATHS = ("/s/", "/e/", "/i/v0/e/", "/batch/")
POSTHOG_CONFIG_PATHS = ("/flags/", "/decide/")


class BadRequest(Exception):
    """A body that is not the tracker's format: answered 400 with ``error`` and ``detail``."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


#: A parser turns (request, body bytes, the app) into (items, the write key the payload carries).
Parser = Callable[[web.Request, bytes, web.Application], tuple[list[Item], str | None]]


def _cors_headers(resp: web.StreamResponse, origin: str | None) -> None:
    if origin is None:
        return
    resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Access-Control-Allow-Credentials"] = "true"
    resp.headers["Vary"] = "Origin"
    resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    resp.headers["Access-Control-Allow-Headers"] = "Content-Type, Content-Encoding, Authorization, X-Write-Key"
    resp.headers["Access-Control-Max-Age"] = "600"


def _with_cors(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Wrap a handler with the collector's CORS rules (403 for an Origin outside the allow-list,
    204 for a preflight) and credentialed CORS headers on the answer."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        state: _State = request.app[STATE_KEY]
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, state.settings):
            resp = _json({"error": "origin_not_allowed", "origin": origin}, status=403)
        elif request.method == "OPTIONS":
            resp = web.Response(status=204)
        else:
            resp = await handler(request)
        _cors_headers(resp, origin if origin_allowed(origin, state.settings) else None)
        return resp

    wrapped.__doc__ = handler.__doc__
    return wrapped


def _basic_auth_user(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("basic "):
        return None
    try:
        return base64.b64decode(auth[6:].strip()).decode("utf-8", "replace").split(":", 1)[0]
    except (binascii.Error, ValueError):
        return None


def _rejection_record(item: Rejected, source: str, received_at_ms: int) -> dict[str, Any]:
    event_id = event_id_for(source, item.source_event_id) if item.source_event_id else None
    return dlq_record(item.reason, "collector", item.payload, detail=item.detail,
                      received_at_ms=received_at_ms, event_id=event_id)


async def ingest(request: web.Request, source: str, parse: Parser, *, answer_pixel: bool = False) -> web.StreamResponse:
    """Common path of every tracker endpoint: rate limit, body limit, parse + map, write key,
    normalize, dedup, produce, answer (see the module docstring)."""
    state: _State = request.app[STATE_KEY]
    settings = state.settings
    m = state.metrics
    received_at_ms = int(time.time() * 1000)

    def done(resp: web.StreamResponse) -> web.StreamResponse:  # requests are counted by the metrics middleware
        return resp

    authorized = settings.write_key is None or settings.write_key in (
        request.headers.get("X-Write-Key"), request.query.get("write_key"))
    client_ip = _client_ip(request, settings)
    wait_s = state.buckets.take(client_ip or "?") if state.buckets else 0.0
    if wait_s > 0:
        retry = str(max(1, int(wait_s + 0.999)))
        return done(_json({"error": "rate_limited", "retry_after_s": int(retry)}, status=429,
                          headers={"Retry-After": retry}))
    if request.method == "GET":
        body = request.query_string.encode()
    else:
        body = await read_body(request, settings.max_batch_bytes)
        if body is None:
            return done(_json({"error": "batch_too_large", "limit_bytes": settings.max_batch_bytes}, status=413))
    request[BODY_KEY] = body
    # the answer is due produce_timeout_s after the body is read, as for /v1/events
    deadline_s = time.monotonic() + settings.produce_timeout_s
    try:
        items, payload_key = parse(request, body, request.app)
    except BadRequest as exc:
        return done(_json({"error": exc.error, "detail": exc.detail[:300]}, status=400))
    except ContractError as exc:
        return done(_json({"error": exc.reason, "detail": exc.detail}, status=400))
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:  # a body no parser rule expected
        return done(_json({"error": "bad_batch", "detail": f"{source} body: {type(exc).__name__}: {exc}"[:300]},
                          status=400))
    if not authorized and payload_key != settings.write_key:
        return done(_json({"error": "invalid_write_key"}, status=401))
    if len(items) > settings.max_batch_events:
        return done(_json({"error": "too_many_events", "limit": settings.max_batch_events}, status=400))

    request_ua = request.headers.get("User-Agent")
    results: list[dict[str, Any]] = []
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    batch_ids: set[str] = set()
    for i, item in enumerate(items):
        if isinstance(item, Rejected):
            rec = _rejection_record(item, source, received_at_ms)
            rejected.append(rec)
            results.append({"index": i, "status": "rejected", "event_id": rec["event_id"],
                            "source_event_id": item.source_event_id, "reason": item.reason, "detail": item.detail})
            continue
        try:
            size = len(dumps_event(item.raw)) if isinstance(item.raw, dict) else 0
            if size > settings.max_event_bytes:
                raise ContractError("event_too_large", f"{size} bytes > {settings.max_event_bytes}")
            event = to_event(item, received_at_ms=received_at_ms, client_ip=client_ip, user_agent=request_ua)
        except (ValueError, TypeError, OverflowError) as exc:  # ContractError, or a value orjson cannot encode
            reason = exc.reason if isinstance(exc, ContractError) else "wrong_type"
            detail = f"{item.source} mapped to {item.raw.get('type')}: {getattr(exc, 'detail', str(exc))}"
            rec = dlq_record(reason, "collector", item.payload, detail=detail, received_at_ms=received_at_ms,
                             event_id=item.raw.get("event_id"))
            rejected.append(rec)
            results.append({"index": i, "status": "rejected", "event_id": rec["event_id"],
                            "source_event_id": item.source_event_id, "reason": reason, "detail": detail[:300]})
            continue
        eid = event["event_id"]
        if eid in batch_ids or (state.seen is not None and eid in state.seen):
            results.append({"index": i, "status": "duplicate", "event_id": eid, "source_event_id": item.source_event_id})
            continue
        batch_ids.add(eid)
        accepted.append(event)
        results.append({"index": i, "status": "accepted", "event_id": eid, "source_event_id": item.source_event_id})

    events_sorted = sort_events(accepted)
    records = [(settings.topic_raw, e["session_id"].encode(), dumps_event(e)) for e in events_sorted]
    records += [(settings.topic_dlq, (rec["event_id"] or "").encode() or None, dumps_dlq(rec)) for rec in rejected]
    tp = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(state.executor, state.producer.produce, records, deadline_s),
                               timeout=max(0.0, deadline_s - time.monotonic()))
    except (KafkaUnavailable, TimeoutError) as exc:
        m.kafka_produce_duration_s.labels("unavailable").observe(time.perf_counter() - tp)
        detail = str(exc) or f"not acknowledged within produce_timeout_s={settings.produce_timeout_s}"
        return done(_json({"error": "kafka_unavailable", "detail": detail[:300],
                           "retry_after_s": settings.retry_after_s}, status=503,
                          headers={"Retry-After": str(settings.retry_after_s)}))
    m.kafka_produce_duration_s.labels("acked").observe(time.perf_counter() - tp)
    if state.seen is not None:
        state.seen.add_all([e["event_id"] for e in events_sorted])
    n_dup = len(items) - len(accepted) - len(rejected)
    m.events_accepted.labels(source).inc(len(accepted))
    m.events_duplicate.labels(source).inc(n_dup)
    for rec in rejected:
        m.events_rejected.labels(source, rec["reason"]).inc()
    for topic, n in ((settings.topic_raw, len(accepted)), (settings.topic_dlq, len(rejected))):
        if n:
            m.records_produced.labels(topic).inc(n)
    if answer_pixel:
        return done(web.Response(body=PIXEL_GIF, content_type="image/gif",
                                 headers={"Cache-Control": "no-cache, no-store"}))
    return done(_json({"status": 1, "accepted": len(accepted), "rejected": len(rejected), "duplicates": n_dup,
                       "received_at_ms": received_at_ms, "results": results}))


# ---- parsers ------------------------------------------------------------------------------------


def _loads(body: bytes, what: str) -> Any:
    try:
        return loads_fast(body)
    except ContractError as exc:
        raise BadRequest("invalid_json", f"{what}: {exc.detail}") from None


def parse_snowplow_post(request: web.Request, body: bytes, _app: web.Application) -> tuple[list[Item], str | None]:
    try:
        events = snowplow.split_post_body(_loads(body, "snowplow tp2 body"))
    except ValueError as exc:
        raise BadRequest("bad_batch", f"snowplow tp2 body: {exc}") from None
    aids = {e.get("aid") for e in events if isinstance(e, dict)}
    return snowplow.map_payload(events), (aids.pop() if len(aids) == 1 else None)


def parse_snowplow_get(request: web.Request, body: bytes, _app: web.Application) -> tuple[list[Item], str | None]:
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    params.pop("write_key", None)
    if not params.get("e"):
        raise BadRequest("bad_batch", "snowplow /i: the query string carries no event (parameter e)")
    return [snowplow.map_event(params)], params.get("aid")


def parse_segment(request: web.Request, body: bytes, _app: web.Application) -> tuple[list[Item], str | None]:
    obj = _loads(body, "segment body")
    try:
        items, body_key = segment.map_body(obj, path=request.path)
    except ValueError as exc:
        raise BadRequest("bad_batch", f"segment body: {exc}") from None
    return items, _basic_auth_user(request) or body_key


def parse_rrweb(request: web.Request, body: bytes, app: web.Application) -> tuple[list[Item], str | None]:
    try:
        return rrweb.map_batch(_loads(body, "rrweb body"), dom_states=app[DOM_STATES_KEY]), None
    except ValueError as exc:
        raise BadRequest("bad_batch", f"rrweb body: {exc}") from None


def parse_posthog(request: web.Request, body: bytes, app: web.Application) -> tuple[list[Item], str | None]:
    obj = posthog.decode_body(body, request.query.get("compression"), request.content_type)
    try:
        events = posthog.split_events(obj)
    except ValueError as exc:
        raise BadRequest("bad_batch", f"posthog body: {exc}") from None
    sent = request.query.get("_")
    sent_at_ms = int(sent) if sent and sent.isdigit() else None
    key = None
    for ev in events:
        props = ev.get("properties") if isinstance(ev, dict) else None
        if isinstance(props, dict) and isinstance(props.get("token"), str):
            key = props["token"]
            break
    if key is None and isinstance(obj, dict):
        key = obj.get("api_key") if isinstance(obj.get("api_key"), str) else None
    return posthog.map_events(events, sent_at_ms=sent_at_ms, dom_states=app[DOM_STATES_KEY]), key


# ---- handlers ------------------------------------------------------------------------------------


async def handle_snowplow_post(request: web.Request) -> web.StreamResponse:
    """``POST /com.snowplowanalytics.snowplow/tp2``: a Snowplow payload_data body."""
    return await ingest(request, "snowplow", parse_snowplow_post)


async def handle_snowplow_get(request: web.Request) -> web.StreamResponse:
    """``GET /i?e=..``: one Snowplow event in the query string; answers a 1x1 GIF."""
    return await ingest(request, "snowplow", parse_snowplow_get, answer_pixel=True)


async def handle_segment(request: web.Request) -> web.StreamResponse:
    """``POST /v1/batch|track|page|identify`` (and ``/v1/b|t|p|i``): Segment / RudderStack messages."""
    return await ingest(request, "segment", parse_segment)


async def handle_rrweb(request: web.Request) -> web.StreamResponse:
    """``POST /v1/rrweb``: ``{session_id, events: [rrweb events], ...}``."""
    return await ingest(request, "rrweb", parse_rrweb)


async def handle_posthog(request: web.Request) -> web.StreamResponse:
    """``POST /s/``, ``/e/``, ``/i/v0/e/``, ``/batch/``: posthog-js recordings and events."""
    return await ingest(request, "posthog", parse_posthog)


#: What the collector tells posthog-js at start (remote config and ``/flags/``): record sessions and send
#: them to ``/s/``, autocapture on, gzip accepted, nothing else (no surveys, no site apps, no flags).
POSTHOG_CLIENT_CONFIG: dict[str, Any] = {
    "sessionRecording": {"endpoint": "/s/"}, "autocapture_opt_out": False, "supportedCompression": ["gzip-js"],
    "surveys": False, "heatmaps": False, "capturePerformance": False, "siteApps": [],
}


async def handle_posthog_config(request: web.Request) -> web.StreamResponse:
    """``/flags/``, ``/decide/``, ``GET /array/{token}/config``: the configuration posthog-js asks for at
    start (:data:`POSTHOG_CLIENT_CONFIG`; ``/flags/`` adds that there are no feature flags)."""
    await request.read()
    return _json({**POSTHOG_CLIENT_CONFIG, "featureFlags": {}, "featureFlagPayloads": {}, "flags": {},
                  "errorsWhileComputingFlags": False})


async def handle_posthog_config_js(request: web.Request) -> web.StreamResponse:
    """``GET /array/{token}/config.js``: the same configuration as the script posthog-js loads."""
    token = request.match_info["token"]
    config = orjson.dumps({"config": {**POSTHOG_CLIENT_CONFIG, "token": token}, "siteApps": []}).decode()
    script = f"(window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {{}})[{orjson.dumps(token).decode()}] = {config};"
    return web.Response(text=script, content_type="text/javascript")


def register(app: web.Application) -> None:
    """Add the tracker endpoints (module docstring) to the collector's ``app`` (before it starts)."""
    app[DOM_STATES_KEY] = rrweb.DomStates()
    routes: list[tuple[str, Callable]] = [(SNOWPLOW_POST_PATH, handle_snowplow_post), ("/v1/rrweb", handle_rrweb)]
    routes += [(p, handle_segment) for p in SEGMENT_PATHS] + [(p, handle_posthog) for p in POSTHOG_PATHS]
    for path, handler in routes:
        app.router.add_post(path, _with_cors(handler))
        app.router.add_route("OPTIONS", path, _with_cors(handler))
    app.router.add_get("/i", _with_cors(handle_snowplow_get))
    for path in (*POSTHOG_CONFIG_PATHS, "/array/{token}/config"):
        app.router.add_route("*", path, _with_cors(handle_posthog_config))
    app.router.add_get("/array/{token}/config.js", handle_posthog_config_js)
