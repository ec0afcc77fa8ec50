"""Collector and decision API metrics (issue 15 item 2): scrape ``/metrics`` after real traffic and find
each metric with the values the traffic implies, parsed with prometheus_client's own parser."""
from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from collector.app import create_app
from collector.settings import collector_settings
from collector.decision import DecisionSettings, register
from collector.metrics import METRICS_KEY
from intentflow.services.own_broker import free_port

pytestmark = pytest.mark.integration


def _event(session_id: str, **extra) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": "click", "session_id": session_id,
            "client_ts_ms": int(time.time() * 1000), "props": {"element_id": "e"}, **extra}


def _families(text: str) -> dict:
    return {fam.name: fam for fam in text_string_to_metric_families(text)}


def _value(families: dict, family: str, sample: str, **labels) -> float:
    """The value of one sample (0.0 when absent)."""
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


async def test_metrics_after_traffic(stack, topics, redis_client):
    redis, prefix = redis_client
    settings = collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
                                  rate_limit_per_s=0, mount_decision=False, write_keys={"web": "kw", "partner": "kp"})
    app = create_app(settings)
    decision_settings = DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix + "if:")
    register(app, decision_settings)
    redis.hset(decision_settings.action_key("s-hit"), mapping={"action": "simplify_layout", "params": "{}"})
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        web_batch = {"events": [_event("s1"), _event("s1"), _event("s1", type="swipe")]}
        assert (await client.post("/v1/events", json=web_batch, headers={"X-Write-Key": "kw"})).status == 200
        partner_batch = {"events": [_event("s2", type="hover", props={"hover_ms": -5})]}
        assert (await client.post("/v1/events?write_key=kp", json=partner_batch)).status == 200
        assert (await client.post("/v1/events", json=web_batch, headers={"X-Write-Key": "kw"})).status == 200
        assert (await client.post("/v1/events", data=b"{", headers={"X-Write-Key": "kw"})).status == 400
        assert (await client.post("/v1/events", json=web_batch)).status == 401
        for session_id in ("s-hit", "s-miss"):
            assert (await client.get("/v1/decision", params={"session_id": session_id})).status == 200
        assert (await client.get("/no/such/page")).status == 404
        text = await (await client.get("/metrics")).text()
    finally:
        await client.close()
    families = _families(text)

    req = "intentflow_http_request_duration_seconds"
    expected_counts = {("/v1/events", "POST", "200"): 3, ("/v1/events", "POST", "400"): 1,
                       ("/v1/events", "POST", "401"): 1, ("/v1/decision", "GET", "200"): 2,
                       ("unmatched", "GET", "404"): 1}
    for (route, method, status), n in expected_counts.items():
        assert _value(families, req, req + "_count", route=route, method=method, status=status) == n
        assert _value(families, req, req + "_bucket", route=route, method=method, status=status, le="+Inf") == n

    acc, rej, dup = ("intentflow_collector_events_accepted", "intentflow_collector_events_rejected",
                     "intentflow_collector_events_duplicate")
    assert _value(families, acc, acc + "_total", source="web") == 2  # the second batch: duplicates
    assert _value(families, dup, dup + "_total", source="web") == 2
    assert _value(families, rej, rej + "_total", source="web", reason="unknown_type") == 2
    assert _value(families, rej, rej + "_total", source="partner", reason="negative_duration") == 1
    assert _value(families, acc, acc + "_total", source="partner") == 0

    produced = "intentflow_collector_records_produced"
    assert _value(families, produced, produced + "_total", topic=topics.raw) == 2
    assert _value(families, produced, produced + "_total", topic=topics.dlq) == 3

    kafka = "intentflow_collector_kafka_produce_duration_seconds"
    assert _value(families, kafka, kafka + "_count", outcome="acked") == 3
    assert _value(families, kafka, kafka + "_sum", outcome="acked") > 0

    redis_read = "intentflow_decision_redis_read_duration_seconds"
    assert _value(families, redis_read, redis_read + "_count", outcome="hit") == 1
    assert _value(families, redis_read, redis_read + "_count", outcome="miss") == 1
    answers = "intentflow_decision_answers"
    assert _value(families, answers, answers + "_total", source="redis") == 1
    assert _value(families, answers, answers + "_total", source="none") == 1


async def test_unavailable_kafka_and_redis_are_counted():
    settings = collector_settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", topic_raw="raw", topic_dlq="dlq",
                                  rate_limit_per_s=0, mount_decision=False, produce_timeout_s=0.5)
    app = create_app(settings)
    register(app, DecisionSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert (await client.post("/v1/events", json={"events": [_event("s")]})).status == 503
        assert (await client.get("/v1/decision", params={"session_id": "s"})).status == 200
        families = _families(await (await client.get("/metrics")).text())
    finally:
        await client.close()
    kafka = "intentflow_collector_kafka_produce_duration_seconds"
    assert _value(families, kafka, kafka + "_count", outcome="unavailable") == 1
    req = "intentflow_http_request_duration_seconds"
    assert _value(families, req, req + "_count", route="/v1/events", method="POST", status="503") == 1
    redis_read = "intentflow_decision_redis_read_duration_seconds"
    assert _value(families, redis_read, redis_read + "_count", outcome="error") == 1
    answers = "intentflow_decision_answers"
    assert _value(families, answers, answers + "_total", source="redis_unavailable") == 1


def test_two_apps_in_one_process_keep_their_own_counts():
    first, second = create_app(collector_settings(mount_decision=False)), create_app(collector_settings(mount_decision=False))
    first[METRICS_KEY].events_accepted.labels("web").inc(5)
    assert b'intentflow_collector_events_accepted_total{source="web"} 5.0' in first[METRICS_KEY].exposition()
    assert b"intentflow_collector_events_accepted_total{" not in second[METRICS_KEY].exposition()


class GatedProducer:
    """Acknowledges a batch only when the test opens the gate; tells when a batch is waiting."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.gate = threading.Event()

    def produce(self, records, deadline_s=None, on_ack=None) -> None:
        self.waiting.set()
        self.gate.wait(60)

    def connected(self) -> bool:
        return True

    def close(self) -> None:
        self.gate.set()


async def test_in_flight_requests_are_counted_while_they_wait_on_the_broker():
    producer = GatedProducer()
    settings = collector_settings(topic_raw="raw", topic_dlq="dlq", rate_limit_per_s=0, mount_decision=False,
                                  produce_timeout_s=60)
    client = TestClient(TestServer(create_app(settings, producer=producer)))
    await client.start_server()
    try:
        post = asyncio.ensure_future(client.post("/v1/events", json={"events": [_event("s")]}))
        assert await asyncio.to_thread(producer.waiting.wait, 60)
        during = _families(await (await client.get("/metrics")).text())
        producer.gate.set()
        assert (await post).status == 200
        after = _families(await (await client.get("/metrics")).text())
    finally:
        producer.gate.set()
        await client.close()
    gauge = "intentflow_http_requests_in_flight"
    assert _value(during, gauge, gauge, route="/v1/events") == 1
    assert _value(during, gauge, gauge, route="/metrics") == 1  # the scrape itself
    assert _value(after, gauge, gauge, route="/v1/events") == 0
