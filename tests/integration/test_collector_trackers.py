"""Tracker endpoints of the collector against the real local broker: the payloads recorded from the
official trackers land in signals.raw contract-valid (with ``source``), malformed ones in signals.dlq
with reasons; limits, write keys, CORS and Kafka outages as for /v1/events."""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import STATE_KEY, create_app
from collector.settings import collector_settings
from tests.job_support import read_records as read_topic
from udfs.contract import parse_event

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trackers"
SOURCE_OF = {"snowplow": "snowplow", "snowplow_get": "snowplow", "segment": "segment", "rrweb": "rrweb",
             "posthog": "posthog"}


def settings_for(stack, topics, **kw):
    kw.setdefault("rate_limit_per_s", 0)
    kw.setdefault("mount_decision", False)
    return collector_settings(kafka_bootstrap=kw.pop("kafka_bootstrap", stack.kafka_bootstrap),
                              topic_raw=topics.raw, topic_dlq=topics.dlq, **kw)


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


async def replay(client, name: str) -> list[dict]:
    """Send every recorded request of fixture ``name`` as the tracker sent it; return the answers."""
    answers = []
    for req in json.loads((FIXTURES / f"{name}.json").read_text())["requests"]:
        body = base64.b64decode(req["body_b64"])
        url = req["path"] + (f"?{req['query']}" if req["query"] else "")
        headers = {k: v for k, v in req["headers"].items()}
        if req["content_type"]:
            headers["Content-Type"] = req["content_type"]
        if req["method"] == "GET":
            resp = await client.get(url, headers=headers)
        else:
            resp = await client.post(url, data=body, headers=headers)
        assert resp.status == 200, (name, req["path"], await resp.text())
        if resp.content_type == "application/json" and not req["path"].startswith("/flags"):
            answers.append(await resp.json())
        else:
            answers.append({"content_type": resp.content_type})
    return answers


@pytest.mark.parametrize("name", list(SOURCE_OF))
async def test_recorded_tracker_payloads_land_in_signals_raw(stack, topics, make_client, name):
    client = await make_client(settings_for(stack, topics))
    answers = await replay(client, name)
    counted = [a for a in answers if "accepted" in a]
    if name == "snowplow_get":  # the pixel answers a GIF: one event per request, all mappable
        assert {a["content_type"] for a in answers} == {"image/gif"}
        counted = [{"accepted": 1, "rejected": 0, "duplicates": 1}] * len(answers)
    accepted = sum(a["accepted"] for a in counted)
    rejected = sum(a["rejected"] for a in counted)
    raw = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.raw)
    dlq = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.dlq)
    assert len(raw) == accepted > 0 and len(dlq) == rejected
    events = [parse_event(r.value) for r in raw]  # the job's own contract check
    assert all(r.key.decode() == e["session_id"] for r, e in zip(raw, events))
    assert {e["source"] for e in events} == {SOURCE_OF[name]}
    assert all(e["received_at_ms"] is not None and not e["context"]["is_bot"] for e in events)
    assert len({e["session_id"] for e in events}) == 1  # one visitor, one session
    kinds = Counter(e["type"] for e in events)
    assert kinds["click"] >= 1 and kinds["page_view"] >= 1
    if name == "posthog":  # rrweb scrolls without the document height: in the DLQ, with the reason
        records = [orjson.loads(r.value) for r in dlq]
        assert records and {d["reason"] for d in records} == {"scroll_depth_not_a_number"}
        assert all(d["stage"] == "collector" and "rrweb scroll" in d["detail"] for d in records)
    else:
        assert rejected == 0
    # the tracker retries: the same payloads again are duplicates, nothing produced twice
    again = await replay(client, name)
    if name != "snowplow_get":
        assert sum(a.get("accepted", 0) for a in again) == 0
        assert sum(a.get("duplicates", 0) for a in again) == accepted
    assert len(await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.raw)) == accepted


SP_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
SP_EVENT = {"e": "se", "se_ca": "ui", "se_ac": "hover", "se_la": "spec-ram-16gb", "se_pr": "spec", "se_va": "2500",
            "eid": "5b1f4f7e-1111-4c1e-9a2a-0c2d3e4f5a6b", "sid": "sp-s", "duid": "sp-d", "dtm": "1796211097858",
            "stm": "1796211097864", "vp": "1280x800", "url": "http://shop.example/p/1"}


async def test_malformed_variants_go_to_the_dlq_with_reasons(stack, topics, make_client):
    client = await make_client(settings_for(stack, topics))
    bad_sp = [dict(SP_EVENT, eid="5b1f4f7e-1111-4c1e-9a2a-0c2d3e4f5a6c", se_ac="zoom"),
              {k: v for k, v in SP_EVENT.items() if k != "sid"} | {"eid": "5b1f4f7e-1111-4c1e-9a2a-0c2d3e4f5a6d"},
              dict(SP_EVENT, eid="5b1f4f7e-1111-4c1e-9a2a-0c2d3e4f5a6e", se_va="-40")]
    resp = await client.post("/com.snowplowanalytics.snowplow/tp2", json={"schema": SP_SCHEMA, "data": [SP_EVENT, *bad_sp]})
    out = await resp.json()
    assert resp.status == 200 and out["accepted"] == 1 and out["rejected"] == 3
    assert [r.get("reason") for r in out["results"]] == [None, "unmappable", "missing_field", "negative_duration"]
    seg = {"batch": [{"type": "identify", "messageId": "m-1", "anonymousId": "a", "timestamp": "2026-12-02T11:00:00Z"},
                     {"type": "track", "event": "Coupon Applied", "messageId": "m-2", "anonymousId": "a",
                      "timestamp": "2026-12-02T11:00:00Z"}]}
    out = await (await client.post("/v1/batch", json=seg)).json()
    assert out["rejected"] == 2
    rr = {"session_id": "r-1", "events": [{"type": 3, "data": {"source": 1, "positions": "x"}, "timestamp": 1}]}
    out = await (await client.post("/v1/rrweb", json=rr)).json()
    assert out["rejected"] == 1
    ph = [{"event": "$web_vitals", "uuid": "0190a1b2-0000-7000-8000-000000000009",
           "properties": {"$session_id": "p-1"}, "timestamp": "2026-12-02T11:00:00Z"}]
    out = await (await client.post("/e/?compression=gzip-js", data=gzip.compress(orjson.dumps(ph)))).json()
    assert out["rejected"] == 1 and out["status"] == 1

    dlq = [orjson.loads(r.value) for r in await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.dlq)]
    got = sorted((d["reason"], d["detail"].split(":")[0]) for d in dlq)
    assert got == sorted([
        ("unmappable", "snowplow se_ac='zoom'"), ("missing_field", "snowplow sid (session id"),
        ("negative_duration", "snowplow mapped to hover"), ("unmappable", "segment type='identify'"),
        ("unmappable", "segment event='Coupon Applied'"), ("wrong_type", "rrweb rrweb mouse move #0 data.positions"),
        ("unmappable", "posthog event='$web_vitals'")])
    assert all(d["stage"] == "collector" and json.loads(d["payload"]) for d in dlq)
    raw = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.raw)
    assert [parse_event(r.value)["props"]["hover_ms"] for r in raw] == [2500]


@pytest.mark.parametrize("method,path,body,status,error", [
    ("POST", "/com.snowplowanalytics.snowplow/tp2", b'{"schema": "iglu:com.acme/x/jsonschema/1-0-0", "data": []}',
     400, "bad_batch"),
    ("POST", "/com.snowplowanalytics.snowplow/tp2", b"{nope", 400, "invalid_json"),
    ("GET", "/i?tv=js-4", b"", 400, "bad_batch"),
    ("POST", "/v1/track", b"[1, 2]", 400, "bad_batch"),
    ("POST", "/v1/rrweb", b'{"events": []}', 400, "bad_batch"),
    ("POST", "/s/?compression=gzip-js", b"\x1f\x8bnot gzip at all", 400, "invalid_json"),
    ("POST", "/e/", b'{"nothing": 1}', 400, "bad_batch"),
])
async def test_bodies_that_are_not_the_trackers_format_are_400(stack, topics, make_client, method, path, body,
                                                                status, error):
    client = await make_client(settings_for(stack, topics))
    resp = await (client.get(path) if method == "GET" else client.post(path, data=body))
    assert resp.status == status and (await resp.json())["error"] == error


async def test_limits_write_keys_cors_and_rate_limit(stack, topics, make_client):
    client = await make_client(settings_for(stack, topics, write_key="k1", rate_limit_per_s=0.5, rate_burst=5,
                                            cors_origins=("https://shop.example",)))
    now_s = [1000.0]  # the rate limiter's clock, moved by the test only (never the machine's speed)
    client.server.app[STATE_KEY].buckets.clock_s = lambda: now_s[0]
    tp2 = {"schema": SP_SCHEMA, "data": [dict(SP_EVENT, aid="site-1")]}
    # preflight of Snowplow's credentialed POST
    resp = await client.options("/com.snowplowanalytics.snowplow/tp2", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    resp = await client.post("/com.snowplowanalytics.snowplow/tp2", json=tp2, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await client.post("/com.snowplowanalytics.snowplow/tp2", json=tp2)
    assert resp.status == 401 and (await resp.json())["error"] == "invalid_write_key"
    tp2["data"][0]["aid"] = "k1"  # Snowplow's app id as the key
    resp = await client.post("/com.snowplowanalytics.snowplow/tp2", json=tp2, headers={"Origin": "https://shop.example"})
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    seg = {"type": "page", "messageId": "m-9", "anonymousId": "a", "timestamp": "2026-12-02T11:00:00Z"}
    basic = base64.b64encode(b"k1:").decode()
    assert (await client.post("/v1/page", json=seg, headers={"Authorization": f"Basic {basic}"})).status == 200
    assert (await client.post("/v1/page", json=seg | {"writeKey": "k1"})).status == 200
    # above the batch limit: 413 before anything is parsed
    big = b'{"session_id": "s", "events": [' + b",".join([b'{"type": 5, "data": {"x": "' + b"y" * 1000 + b'"}}'] * 600) + b"]}"
    resp = await client.post("/v1/rrweb?write_key=k1", data=big)
    assert resp.status == 413 and (await resp.json())["error"] == "batch_too_large"
    # the bucket (burst 5: the 401, three 200s and the 413 took a token each) is empty: 429 + Retry-After
    resp = await client.post("/v1/page", json=seg, headers={"X-Write-Key": "k1"})
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"  # one token at 0.5/s
    now_s[0] += 2.1  # the token has refilled
    assert (await client.post("/v1/page", json=seg, headers={"X-Write-Key": "k1"})).status == 200


async def test_503_while_kafka_unreachable(stack, topics, make_client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = await make_client(settings_for(stack, topics, kafka_bootstrap=f"127.0.0.1:{port}", produce_timeout_s=2.0))
    resp = await client.post("/com.snowplowanalytics.snowplow/tp2", json={"schema": SP_SCHEMA, "data": [SP_EVENT]})
    assert resp.status == 503 and resp.headers["Retry-After"] == "5"
    assert (await resp.json())["error"] == "kafka_unavailable"


def test_replay_of_the_recorded_rrweb_session(stack, topics, tmp_path):
    """The rrweb session recorded in Chromium (all its batches as one recording file) through
    ``intentflow replay --source rrweb``: the same mapping as the live endpoint."""
    from click.testing import CliRunner

    from intentflow.replay import replay_cmd

    recording = []
    for req in json.loads((FIXTURES / "rrweb.json").read_text())["requests"]:
        recording += json.loads(base64.b64decode(req["body_b64"]))["events"]
    path = tmp_path / "article-visitor.json"
    path.write_text(json.dumps(recording))
    result = CliRunner().invoke(replay_cmd, ["--source", "rrweb", "--path", str(path), "--topic", topics.raw,
                                             "--dlq-topic", topics.dlq, "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    events = [parse_event(r.value) for r in read_topic(stack.kafka_bootstrap, topics.raw)]
    assert len(events) == summary["produced"] and summary["by_type"]["page_view"] == 1
    assert {e["source"] for e in events} == {"rrweb"} and {e["session_id"] for e in events} == {"rrweb-article-visitor"}
    clicks = [e for e in events if e["type"] == "click"]
    assert [c["props"]["element_role"] for c in clicks] == ["compare_button"]  # from the recorded DOM
    assert summary["source_stats"]["scroll_no_document_height"] > 0  # rrweb records no document height


ODD_BODIES = [b"", b"null", b"[]", b"{}", b'"text"', b"123456789012345678901234567890", b'{"data": [{}]}',
              b'{"batch": [null, 1, {"type": "track", "messageId": 123456789012345678901234567890}]}',
              b'[{"event": "$pageview", "properties": {"$session_id": 123456789012345678901234567890}}]',
              b'{"session_id": "s", "events": [{"type": 2, "data": {"node": [1]}, "timestamp": 1e400}]}',
              b"\xff\xfe\x00garbage"]


@pytest.mark.parametrize("path", ["/com.snowplowanalytics.snowplow/tp2", "/v1/batch", "/v1/track", "/v1/rrweb", "/s/",
                                  "/e/"])
async def test_odd_bodies_get_an_answer_never_a_5xx(stack, topics, make_client, path):
    client = await make_client(settings_for(stack, topics))
    statuses = []
    for body in ODD_BODIES:
        resp = await client.post(path, data=body, headers={"Content-Type": "text/plain"})
        statuses.append(resp.status)
        assert resp.status in (200, 400), (path, body, resp.status, await resp.text())
    assert 400 in statuses
