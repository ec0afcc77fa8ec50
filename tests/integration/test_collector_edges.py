"""Edges of the collector (issue 14 item 6): write keys per source, the CORS allow-list, and no raw client
IP in Kafka or in the logs."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from dataclasses import replace

import orjson
import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from collector.app import collector_cmd, create_app
from collector.settings import collector_settings, parse_write_keys
from connectors.redis_store import RedisActionWriter
from tests.job_support import read_records
from tests.live_collector import LiveCollector
from udfs.config import JobConfig
from udfs.contract import parse_event
from udfs.decide import Decider, session_summaries
from udfs.rules import RuleEngine
from udfs.scoring import ReloadingScorer

pytestmark = pytest.mark.integration

DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def _event(session_id: str, **extra) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": "click", "session_id": session_id,
            "client_ts_ms": int(time.time() * 1000), "props": {"element_id": "e", "element_role": "price"}, **extra}


def _settings(stack, topics, **kw):
    return collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
                              rate_limit_per_s=0, mount_decision=False, **kw)


@pytest.fixture
async def make_client():
    clients = []

    async def _make(settings):
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield _make
    for c in clients:
        await c.close()


def _samples(text: str, name: str) -> dict[tuple, float]:
    """``{sorted label items: value}`` of the samples named ``name`` in a Prometheus exposition."""
    return {tuple(sorted(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name}


async def test_write_keys_per_source_admit_their_source_and_count_it(stack, topics, make_client):
    client = await make_client(_settings(stack, topics, write_keys={"web": "key-web", "partner": "key-partner"}))
    web_batch = {"events": [_event("s-web"), _event("s-web")]}
    partner_batch = {"events": [_event("s-partner"), {"type": "swipe", "session_id": "s-partner", "client_ts_ms": 1}]}
    resp = await client.post("/v1/events", json=web_batch, headers={"X-Write-Key": "key-web"})
    assert resp.status == 200 and (await resp.json())["accepted"] == 2
    resp = await client.post("/v1/events?write_key=key-partner", json=partner_batch)  # the sendBeacon way
    out = await resp.json()
    assert resp.status == 200 and (out["accepted"], out["rejected"]) == (1, 1)
    for headers, query in (({}, ""), ({"X-Write-Key": "key-webX"}, ""), ({}, "?write_key=key-"),
                           ({"X-Write-Key": ""}, "")):
        resp = await client.post("/v1/events" + query, json={"events": [_event("s-none")]}, headers=headers)
        assert resp.status == 401 and (await resp.json())["error"] == "invalid_write_key"

    metrics = await (await client.get("/metrics")).text()
    assert _samples(metrics, "intentflow_collector_events_accepted_total") == {
        (("source", "web"),): 2.0, (("source", "partner"),): 1.0}
    assert _samples(metrics, "intentflow_collector_events_rejected_total") == {
        (("reason", "unknown_type"), ("source", "partner")): 1.0}
    raw = await asyncio.to_thread(read_records, stack.kafka_bootstrap, topics.raw)
    assert sorted(orjson.loads(r.value)["session_id"] for r in raw) == ["s-partner", "s-web", "s-web"]
    assert not any(b"key-web" in r.value or b"key-partner" in r.value for r in raw)  # keys are not data


def test_write_key_specs_are_parsed_strictly():
    assert parse_write_keys(["web=k1", " partner = k2 ", ""]) == {"web": "k1", "partner": "k2"}
    for bad in (["k1"], ["=k1"], ["web="], ["web=a", "web=b"]):
        with pytest.raises(ValueError, match="write key"):
            parse_write_keys(bad)
    assert collector_settings(env={"INTENTFLOW_WRITE_KEYS": "web=k1,partner=k2"}).write_keys == {
        "web": "k1", "partner": "k2"}
    result = CliRunner().invoke(collector_cmd, ["--source-write-key", "web"])  # refused before serving
    assert result.exit_code == 2 and "SOURCE=KEY" in result.output


async def test_cors_allow_list(stack, topics, make_client):
    client = await make_client(_settings(stack, topics, cors_origins=("https://shop.example",)))
    body = {"events": [_event("s-cors")]}
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    resp = await client.options("/v1/events", headers={"Origin": "https://shop.example", **preflight})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"] and resp.headers["Vary"] == "Origin"
    for origin in ("https://evil.example", "https://shop.example.evil.example", "http://shop.example", "null"):
        resp = await client.options("/v1/events", headers={"Origin": origin, **preflight})
        assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
        resp = await client.post("/v1/events", json=body, headers={"Origin": origin})
        assert resp.status == 403 and (await resp.json())["error"] == "origin_not_allowed"
    resp = await client.post("/v1/events", json=body)  # no Origin: a server or a replay, not a browser
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
    raw = await asyncio.to_thread(read_records, stack.kafka_bootstrap, topics.raw)
    assert len(raw) == 1  # the refused posts wrote nothing

    anyone = await make_client(_settings(stack, topics, cors_origins=("*",)))
    resp = await anyone.post("/v1/events", json=body, headers={"Origin": "https://any.example"})
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "https://any.example"


CLIENT_IPS = ("198.51.100.23", "2001:db8:85a3:1234:5678:8a2e:370:7334")


@pytest.fixture
def quiet_kafka_client():
    """kafka-python's DEBUG lines (thousands, about the broker, not clients) kept out of the capture."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def test_no_raw_client_ip_reaches_kafka_redis_or_the_logs(stack, topics, redis_client, caplog, quiet_kafka_client):
    caplog.set_level(logging.DEBUG)
    settings = _settings(stack, topics, trust_forwarded_for=True)
    with LiveCollector(create_app(settings)) as live:
        for ip in CLIENT_IPS:
            headers = {"X-Forwarded-For": f"{ip}, 10.0.0.1", "User-Agent": DESKTOP_UA}
            batch = {"events": [_event("s-ip"), _event("s-ip", type="hover", props={"hover_ms": -1})]}
            resp = requests.post(live.url + "/v1/events?write_key=unused", json=batch, headers=headers, timeout=30)
            assert resp.status_code == 200 and resp.json()["rejected"] == 1
            resp = requests.post(live.url + "/v1/events", data=b"{broken", headers=headers, timeout=30)
            assert resp.status_code == 400
        # a request aiohttp itself refuses, logged by aiohttp with the peer address
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            sock.sendall(b"NOT-HTTP\r\n\r\n")
            sock.recv(1024)
    raw = asyncio.run(asyncio.to_thread(read_records, stack.kafka_bootstrap, topics.raw))
    dlq = asyncio.run(asyncio.to_thread(read_records, stack.kafka_bootstrap, topics.dlq))
    assert len(raw) == 2 and len(dlq) == 2
    prefixes = {orjson.loads(r.value)["context"]["ip_prefix"] for r in raw}
    assert prefixes == {"198.51.100.0/24", "2001:db8:85a3::/48"}  # what is stored: the prefix
    for record in raw + dlq:
        for ip in CLIENT_IPS:
            assert ip.encode() not in record.value
    access_lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert sum("/v1/events" in line for line in access_lines) == 4
    assert any(line.startswith("198.51.100.0/24 ") for line in access_lines)
    # every line logged in this process, but those of the test's own HTTP client (urllib3)
    everything = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("urllib3"))
    for secret in (*CLIENT_IPS, "write_key=unused"):
        assert secret not in everything
    aiohttp_lines = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("aiohttp"))
    assert "Error handling request from 127.0.0.0/24" in aiohttp_lines and "127.0.0.1" not in aiohttp_lines

    # Redis: the job's decision path (udfs.decide + the operator's writer) over the records as read
    client, prefix = redis_client
    decider = Decider(replace(JobConfig(), redis_prefix=prefix), ReloadingScorer(), RuleEngine.default())
    result = decider.decide([parse_event(r.value) for r in raw], lambda _sid: None)
    writer = RedisActionWriter(stack.redis_url, prefix, 600, 600, 1000)
    writer.write(result.actions, session_summaries(result.touched, result.model_version, "v"), result.aggregates,
                 result.counters)
    writer.close()
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    assert f"{prefix}session:s-ip" in keys
    stored = []
    for key in keys:
        kind = client.type(key)
        stored.append(key)
        if kind == "hash":
            stored += [f"{k}={v}" for k, v in client.hgetall(key).items()]
        elif kind == "set":
            stored += list(client.smembers(key))
        elif kind == "stream":
            stored += [f"{k}={v}" for _, fields in client.xrange(key) for k, v in fields.items()]
        else:
            stored.append(str(client.get(key)))
    for ip in CLIENT_IPS:
        assert not any(ip in value for value in stored), ip
