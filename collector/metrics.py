"""Prometheus metrics of the collector and the decision API (``prometheus_client``), served at ``/metrics``.

One :class:`ServiceMetrics` per aiohttp application, each with its own ``CollectorRegistry`` (so two
apps in one process, as in the tests, never share counters). :func:`install` puts it on an app: the
request middleware, the ``GET /metrics`` route (Prometheus text format 0.0.4) and the app key
:data:`METRICS_KEY` through which the handlers count. Metric names, units in the names (seconds, as
Prometheus recommends):

======================================================== ========= =====================================
name                                                     type      labels
======================================================== ========= =====================================
``intentflow_http_request_duration_seconds``             histogram ``route`` (the route's path template,
                                                                   ``unmatched`` for 404s), ``method``,
                                                                   ``status``
``intentflow_http_requests_in_flight``                   gauge     ``route``
``intentflow_collector_events_accepted_total``           counter   ``source`` (the write key's source)
``intentflow_collector_events_rejected_total``           counter   ``source``, ``reason`` (DLQ reason)
``intentflow_collector_events_duplicate_total``          counter   ``source``
``intentflow_collector_records_produced_total``          counter   ``topic``
``intentflow_collector_kafka_produce_duration_seconds``  histogram ``outcome`` (``acked``/``unavailable``)
``intentflow_decision_redis_read_duration_seconds``      histogram ``outcome`` (``hit``/``miss``/``error``)
``intentflow_decision_answers_total``                    counter   ``source`` (``redis``/``none``/
                                                                   ``redis_unavailable``)
======================================================== ========= =====================================
"""
from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Request latency buckets, s: the decision API answers in under 1 ms, a collector batch waits on the
#: broker's acknowledgement (ms) and at most ``produce_timeout_s`` (10 s by default).
REQUEST_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
#: Kafka produce (send + every acknowledgement) buckets, s.
PRODUCE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Redis read buckets, s: a loopback HGETALL takes ~0.1-0.5 ms; the read timeout is 50 ms.
REDIS_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

#: Route label of requests that matched no route (404/405), so scanners cannot blow up the label set.
UNMATCHED_ROUTE = "unmatched"


class ServiceMetrics:
    """The metric objects of one application, registered in their own ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration_s = Histogram(
            "intentflow_http_request_duration_seconds", "HTTP request latency, from the request's arrival "
            "to its answer, s", ("route", "method", "status"), buckets=REQUEST_BUCKETS_S, registry=r)
        self.requests_in_flight = Gauge(
            "intentflow_http_requests_in_flight", "HTTP requests being handled now", ("route",), registry=r)
        self.events_accepted = Counter(
            "intentflow_collector_events_accepted", "events acknowledged by the broker on the raw topic",
            ("source",), registry=r)
        self.events_rejected = Counter(
            "intentflow_collector_events_rejected", "events rejected to the DLQ, by reason",
            ("source", "reason"), registry=r)
        self.events_duplicate = Counter(
            "intentflow_collector_events_duplicate", "events not produced again: their event_id was "
            "already acknowledged through this collector or repeated in the batch", ("source",), registry=r)
        self.records_produced = Counter(
            "intentflow_collector_records_produced", "records acknowledged by the broker, by topic",
            ("topic",), registry=r)
        self.kafka_produce_duration_s = Histogram(
            "intentflow_collector_kafka_produce_duration_seconds", "time from handing a batch's records to "
            "the producer to the last acknowledgement (or giving up), s", ("outcome",),
            buckets=PRODUCE_BUCKETS_S, registry=r)
        self.redis_read_duration_s = Histogram(
            "intentflow_decision_redis_read_duration_seconds", "decision API: time of the Redis read of a "
            "session's action, s", ("outcome",), buckets=REDIS_BUCKETS_S, registry=r)
        self.decision_answers = Counter(
            "intentflow_decision_answers", "decision API answers by where they came from", ("source",), registry=r)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text exposition format 0.0.4."""
        return generate_latest(self.registry)


METRICS_KEY = web.AppKey("intentflow_metrics", ServiceMetrics)


def route_label(request: web.Request) -> str:
    """The matched route's path template (``/v1/events``, ``/sdk/{filename}``), else ``unmatched``."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None) if route is not None else None
    if resource is None or info.http_exception is not None:
        return UNMATCHED_ROUTE
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    """Count every request: in-flight gauge, latency histogram by route, method and status."""
    metrics = request.app[METRICS_KEY]
    route = route_label(request)
    t0 = time.perf_counter()
    status = 500
    in_flight = metrics.requests_in_flight.labels(route)
    in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        in_flight.dec()
        metrics.request_duration_s.labels(route, request.method, str(status)).observe(time.perf_counter() - t0)


async def handle_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition format 0.0.4."""
    body = request.app[METRICS_KEY].exposition()
    resp = web.Response(body=body, headers={"X-Content-Type-Options": "nosniff"})
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def install(app: web.Application) -> ServiceMetrics:
    """Give ``app`` its metrics (once): the app key, the outermost middleware and ``GET /metrics``.

    Returns the app's :class:`ServiceMetrics` (the existing one when already installed). Call before
    the app starts (middlewares and routes are frozen then).
    """
    if METRICS_KEY in app:
        return app[METRICS_KEY]
    metrics = ServiceMetrics()
    app[METRICS_KEY] = metrics
    app.middlewares.insert(0, metrics_middleware)
    app.router.add_get("/metrics", handle_metrics)
    return metrics
