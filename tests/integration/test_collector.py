"""The collector against the real local broker: exact counts, 503 without Kafka, limits, CORS, keys."""
from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
import uuid
from collections import Counter

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import STATE_KEY, create_app
from collector.settings import collector_settings

from tests.job_support import read_records as read_topic

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)
DESKTOP_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")


def good_event(i: int, session: str, etype: str = "click") -> dict:
    props = {"click": {"element_id": f"e{i}", "element_role": "product_card", "x_px": 10, "y_px": 20},
             "scroll": {"scroll_depth_pct": 40 + i % 80, "offset_px": 100, "document_height_px": 3000},
             "hover": {"element_id": "p", "element_role": "price", "hover_ms": 300 + i}}[etype]
    return {"event_id": str(uuid.uuid4()), "type": etype, "session_id": session, "anonymous_id": "a-" + session,
            "seq": i, "client_ts_ms": NOW_MS - 60_000 + i, "page": {"url": "https://shop.example/p/1", "item_id": "1"},
            "context": {"viewport_w_px": 1280, "viewport_h_px": 800}, "props": props}


#: bad kinds cycled through the 10k run: mutation -> the reason the DLQ record must carry
BAD_KINDS = [
    (lambda e: e.pop("session_id"), "missing_field"),
    (lambda e: e.update(type="hover", props={"hover_ms": -40}), "negative_duration"),
    (lambda e: e.update(type="swipe"), "unknown_type"),
    (lambda e: e.update(type="scroll", props={"scroll_depth_pct": None}), "scroll_depth_not_a_number"),
    (lambda e: e.update(seq="seven"), "wrong_type"),
]


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


async def test_10000_events_exact_counts_on_raw_and_dlq(stack, topics, make_client):
    client = await make_client(settings_for(stack, topics))
    expected_accepted, expected_rejected = set(), Counter()
    total_accepted = total_rejected = 0
    batch_size, n_batches = 500, 20
    for b in range(n_batches):
        events = []
        for j in range(batch_size):
            i = b * batch_size + j
            ev = good_event(i, f"s{i % 97}", ("click", "scroll", "hover")[i % 3])
            if i % 10 == 0:
                mutate, reason = BAD_KINDS[(i // 10) % len(BAD_KINDS)]
                mutate(ev)
                expected_rejected[reason] += 1
            else:
                expected_accepted.add(ev["event_id"])
            events.append(ev)
        body = orjson.dumps({"sent_at_ms": int(time.time() * 1000), "events": events})
        headers = {"User-Agent": DESKTOP_UA}
        if b % 4 == 1:  # sendBeacon-style
            headers["Content-Type"] = "text/plain;charset=UTF-8"
        elif b % 4 == 2:
            body = gzip.compress(body)
            headers.update({"Content-Encoding": "gzip", "Content-Type": "application/json"})
        else:
            headers["Content-Type"] = "application/json"
        resp = await client.post("/v1/events", data=body, headers=headers)
        assert resp.status == 200, await resp.text()
        out = await resp.json()
        total_accepted += out["accepted"]
        total_rejected += out["rejected"]
        assert len(out["results"]) == batch_size
    assert total_accepted == 9_000 == len(expected_accepted)
    assert total_rejected == 1_000 == sum(expected_rejected.values())

    raw = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.raw)
    dlq = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.dlq)
    assert len(raw) == 9_000 and len(dlq) == 1_000
    raw_events = [orjson.loads(r.value) for r in raw]
    assert {e["event_id"] for e in raw_events} == expected_accepted
    assert all(r.key.decode() == orjson.loads(r.value)["session_id"] for r in raw)
    assert all(e["received_at_ms"] is not None and e["context"]["device_class"] == "desktop" for e in raw_events)
    dlq_records = [orjson.loads(r.value) for r in dlq]
    assert Counter(d["reason"] for d in dlq_records) == expected_rejected
    assert {d["stage"] for d in dlq_records} == {"collector"}
    assert all(json.loads(d["payload"]) for d in dlq_records)  # the original payload is kept
    metrics = await (await client.get("/metrics")).text()
    assert 'intentflow_collector_events_accepted_total{source="default"} 9000.0' in metrics
    assert 'intentflow_collector_events_rejected_total{reason="negative_duration",source="default"} 200.0' in metrics
    assert f'intentflow_collector_records_produced_total{{topic="{topics.raw}"}} 9000.0' in metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_forwarder(port: int, target: str):
    """A TCP forwarder on ``port`` to the real broker: 'Kafka comes back' without touching the broker."""
    host, tport = target.rsplit(":", 1)

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection(host, int(tport))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def test_503_while_kafka_unreachable_then_nothing_lost(stack, topics, make_client):
    port = _free_port()  # nothing listens here: Kafka is "down" for this collector
    client = await make_client(settings_for(stack, topics, kafka_bootstrap=f"127.0.0.1:{port}",
                                            produce_timeout_s=2.0))
    events = [good_event(i, f"s{i % 3}") for i in range(50)]
    body = {"sent_at_ms": int(time.time() * 1000), "events": events}
    resp = await client.post("/v1/events", json=body)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert (await resp.json())["error"] == "kafka_unavailable"
    health = await client.get("/healthz")
    assert health.status == 503 and (await health.json())["kafka"] is False

    server = await _start_forwarder(port, stack.kafka_bootstrap)  # Kafka "comes back"
    try:
        deadline = time.monotonic() + 30
        while True:  # the client retries the same batch (same event ids) as the SDK does
            await asyncio.sleep(1.1)
            resp = await client.post("/v1/events", json=body)
            if resp.status != 503 or time.monotonic() > deadline:
                break
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["accepted"] == 50
        assert (await client.get("/healthz")).status == 200
    finally:
        server.close()
    raw = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.raw)
    assert sorted(orjson.loads(r.value)["event_id"] for r in raw) == sorted(e["event_id"] for e in events)
    metrics = await (await client.get("/metrics")).text()
    assert 'intentflow_http_request_duration_seconds_count{method="POST",route="/v1/events",status="503"}' in metrics


async def test_limits_duplicates_and_rejections(stack, topics, make_client):
    client = await make_client(settings_for(stack, topics))
    # batch above 500 KB -> 413 with a reason, nothing produced
    big = [good_event(i, "s1") | {"props": {"element_id": "x" * 1000}} for i in range(600)]
    resp = await client.post("/v1/events", data=orjson.dumps({"events": big}))
    assert resp.status == 413 and (await resp.json())["error"] == "batch_too_large"
    # one bare event above 32 KB -> 413 event_too_large
    huge = good_event(0, "s1") | {"props": {"element_id": "x" * 40_000}}
    resp = await client.post("/v1/events", data=orjson.dumps(huge))
    assert resp.status == 413 and (await resp.json())["error"] == "event_too_large"
    # the same event inside a batch: rejected to the DLQ, the rest accepted
    ok = [good_event(i, "s2") for i in range(3)]
    resp = await client.post("/v1/events", json={"events": [ok[0], huge, ok[1], ok[2]]})
    out = await resp.json()
    assert resp.status == 200 and out["accepted"] == 3 and out["rejected"] == 1
    assert out["results"][1]["status"] == "rejected" and out["results"][1]["reason"] == "event_too_large"
    # not JSON -> 400
    resp = await client.post("/v1/events", data=b"{nope")
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_json"
    resp = await client.post("/v1/events", data=b'{"foo": 1}')
    assert resp.status == 400 and (await resp.json())["error"] == "bad_batch"
    # the same batch again (a beacon and a fetch of it): all duplicates, nothing produced twice
    resp = await client.post("/v1/events", json={"events": ok + [ok[0]]})
    out = await resp.json()
    assert out["duplicates"] == 4 and out["accepted"] == 0
    # invalid UTF-8 inside one field: cleaned, the event kept
    ev = good_event(9, "s3")
    raw_body = orjson.dumps({"events": [ev]}).replace(b'"e9"', b'"e\xff9"')
    resp = await client.post("/v1/events", data=raw_body, headers={"Content-Type": "text/plain"})
    assert resp.status == 200 and (await resp.json())["accepted"] == 1

    raw = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.raw)
    dlq = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.dlq)
    assert len(raw) == 4 and len(dlq) == 1
    cleaned = [orjson.loads(r.value) for r in raw if orjson.loads(r.value)["event_id"] == ev["event_id"]][0]
    assert cleaned["props"]["element_id"] == "e\ufffd9" and "text_cleaned" in cleaned["flags"]
    rec = orjson.loads(dlq[0].value)
    assert rec["reason"] == "event_too_large" and len(rec["payload"].encode()) == 8192


async def test_out_of_order_batch_produced_in_event_time_order(stack, topics, make_client):
    client = await make_client(settings_for(stack, topics))
    events = [good_event(i, "one-session") for i in range(6)]
    shuffled = [events[k] for k in (3, 0, 5, 1, 4, 2)]
    resp = await client.post("/v1/events", json={"events": shuffled})
    assert (await resp.json())["accepted"] == 6
    raw = await asyncio.to_thread(read_topic, stack.kafka_bootstrap, topics.raw)
    assert [orjson.loads(r.value)["seq"] for r in sorted(raw, key=lambda r: r.offset)] == [0, 1, 2, 3, 4, 5]


async def test_cors_write_key_rate_limit(stack, topics, make_client):
    client = await make_client(settings_for(stack, topics, write_key="k1", rate_limit_per_s=0.5, rate_burst=3,
                                            cors_origins=("https://shop.example",)))
    now_s = [1000.0]  # the rate limiter's clock, moved by the test only
    client.server.app[STATE_KEY].buckets.clock_s = lambda: now_s[0]
    body = {"events": [good_event(0, "s")]}
    resp = await client.options("/v1/events", headers={"Origin": "https://shop.example",
                                                        "Access-Control-Request-Method": "POST"})
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    resp = await client.post("/v1/events?write_key=k1", json=body, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await client.post("/v1/events", json=body)
    assert resp.status == 401
    resp = await client.post("/v1/events?write_key=k1", json=body, headers={"Origin": "https://shop.example"})
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    resp = await client.post("/v1/events", json=body, headers={"X-Write-Key": "k1"})
    assert resp.status == 200
    resp = await client.post("/v1/events", json=body, headers={"X-Write-Key": "k1"})
    assert resp.status == 200  # burst of 3 used (the 401 and 403 took no token)
    resp = await client.post("/v1/events", json=body, headers={"X-Write-Key": "k1"})
    assert resp.status == 429 and (await resp.json())["error"] == "rate_limited"
    assert resp.headers["Retry-After"] == "2"  # one token at 0.5/s
    now_s[0] += 1.9
    assert (await client.post("/v1/events", json=body, headers={"X-Write-Key": "k1"})).status == 429
    now_s[0] += 0.2  # 2.1 s later: the token has refilled
    assert (await client.post("/v1/events", json=body, headers={"X-Write-Key": "k1"})).status == 200
