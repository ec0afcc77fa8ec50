"""The collector's answer is the truth (issue 14 item 3).

- Every ``POST /v1/events`` is answered by ``produce_timeout_s`` after its body was read, also when the
  producer hangs and requests queue up behind it (today: up to 18.5 s with a documented 10 s).
- A batch answered 503 and resent (same event ids) is neither lost nor counted twice: on a real broker
  that this test starts, stops and restarts itself (never the shared one), the resent events are all on
  the topic, and the copies are dropped by the job's dedup by ``event_id``
  (``udfs.decide.SessionEntry.remember``), run here on the records as the job reads them.
- A body that is not what its ``Content-Encoding`` says is a 400 with a reason, never a 5xx.
"""
from __future__ import annotations

import asyncio
import gzip
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import create_app
from collector.producer import KafkaUnavailable, Producer
from collector.settings import collector_settings
from intentflow.services.kafka_broker import create_topics
from tests.job_support import read_records
from intentflow.services.own_broker import OwnBroker
from udfs.config import JobConfig, Topics
from udfs.contract import parse_event
from udfs.decide import Decider, decide_all
from udfs.rules import RuleEngine
from udfs.scoring import ReloadingScorer

pytestmark = pytest.mark.integration

#: Upper bound on waiting for answers that must come by ``produce_timeout_s``: only turns a hang
#: (no answer at all) into a failure; the test asserts no durations.
HANG_GUARD_S = 60


def _events(prefix: str, n: int, n_sessions: int = 4) -> list[dict]:
    now_ms = int(time.time() * 1000)
    return [{"event_id": str(uuid.uuid4()), "type": "click", "session_id": f"{prefix}{i % n_sessions}",
             "seq": i, "client_ts_ms": now_ms - 10_000 + i,
             "props": {"element_id": f"e{i}", "element_role": "product_card"}} for i in range(n)]


class HangingProducer:
    """Stands in for a producer whose broker never answers: every ``produce`` blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def produce(self, records, deadline_s=None, on_ack=None) -> None:
        self.calls += 1
        self.release.wait(HANG_GUARD_S)
        raise KafkaUnavailable("released by the test")

    def connected(self) -> bool:
        return False

    def close(self) -> None:
        self.release.set()


async def test_every_request_is_answered_by_the_deadline_while_the_producer_hangs():
    producer = HangingProducer()
    settings = collector_settings(kafka_bootstrap="127.0.0.1:1", topic_raw="raw", topic_dlq="dlq",
                                  rate_limit_per_s=0, mount_decision=False, produce_timeout_s=0.2)
    client = TestClient(TestServer(create_app(settings, producer=producer)))
    await client.start_server()
    try:
        # three times as many requests as the producer has threads: most queue behind hung ones
        posts = [client.post("/v1/events", json={"events": _events(f"s{k}-", 3)}) for k in range(12)]
        responses = await asyncio.wait_for(asyncio.gather(*posts), HANG_GUARD_S)
        assert [r.status for r in responses] == [503] * 12
        assert {r.headers["Retry-After"] for r in responses} == {"5"}
        assert {(await r.json())["error"] for r in responses} == {"kafka_unavailable"}
        health = await asyncio.wait_for(client.get("/healthz"), HANG_GUARD_S)  # behind the hung threads too
        assert health.status == 503 and (await health.json())["kafka"] is False
    finally:
        producer.release.set()
        await client.close()


class PartlyAckingProducer:
    """First call: the broker acknowledges the first ``n_acked`` records, then the deadline passes (503).
    Later calls: every record acknowledged. Keeps what each call was given."""

    def __init__(self, n_acked: int) -> None:
        self.n_acked = n_acked
        self.calls: list[list[tuple]] = []

    def produce(self, records, deadline_s=None, on_ack=None) -> None:
        self.calls.append(list(records))
        first = len(self.calls) == 1
        for index in range(self.n_acked if first else len(records)):
            on_ack(index)
        if first:
            raise KafkaUnavailable("not acknowledged: KafkaTimeoutError")

    def connected(self) -> bool:
        return True

    def close(self) -> None:
        pass


async def test_events_acknowledged_before_a_503_are_not_produced_again_on_retry():
    producer = PartlyAckingProducer(n_acked=3)
    settings = collector_settings(topic_raw="raw", topic_dlq="dlq", rate_limit_per_s=0, mount_decision=False)
    client = TestClient(TestServer(create_app(settings, producer=producer)))
    await client.start_server()
    events = _events("s", 8, n_sessions=1)  # one session: sent in seq order, so the first 3 are events[:3]
    try:
        assert (await client.post("/v1/events", json={"events": events})).status == 503
        resp = await client.post("/v1/events", json={"events": events})  # the client's retry, same ids
        out = await resp.json()
    finally:
        await client.close()
    assert resp.status == 200 and (out["accepted"], out["duplicates"]) == (5, 3)
    assert [r["status"] for r in out["results"]] == ["duplicate"] * 3 + ["accepted"] * 5
    resent = [orjson.loads(value)["event_id"] for _topic, _key, value in producer.calls[1]]
    assert resent == [e["event_id"] for e in events[3:]]


def test_a_batch_past_its_deadline_is_not_sent_at_all():
    producer = Producer(collector_settings(kafka_bootstrap="127.0.0.1:1"))
    with pytest.raises(KafkaUnavailable, match="nothing sent"):
        producer.produce([("raw", b"k", b"v")], deadline_s=time.monotonic() - 0.001)
    assert producer._producer is None  # not even a connection was attempted


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    broker = OwnBroker(tmp_path_factory.mktemp("own-kafka"))
    broker.start()
    yield broker
    broker.stop()


async def _post_until_answered_200(client: TestClient, body: dict, tries: int = 60):
    for _ in range(tries):  # the SDK's retry: the same events, the same ids, after Retry-After
        resp = await asyncio.wait_for(client.post("/v1/events", json=body), HANG_GUARD_S)
        if resp.status == 200:
            return await resp.json()
        assert resp.status == 503, await resp.text()
        await asyncio.sleep(1.0)
    raise AssertionError(f"still 503 after {tries} tries")


async def test_503_batches_resent_after_a_broker_outage_are_not_lost_nor_counted_twice(own_broker):
    topics = Topics.with_prefix(f"t{uuid.uuid4().hex[:10]}.")
    create_topics(own_broker.bootstrap, prefix=topics.raw.split("signals.")[0])
    settings = collector_settings(kafka_bootstrap=own_broker.bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
                                  rate_limit_per_s=0, mount_decision=False, produce_timeout_s=3.0)
    first = TestClient(TestServer(create_app(settings)))
    other = TestClient(TestServer(create_app(settings)))  # a second collector instance behind the same LB
    await first.start_server()
    await other.start_server()
    batch_a = {"events": _events("a", 40)}
    batch_b = {"events": _events("b", 40)}
    try:
        resp = await first.post("/v1/events", json=batch_a)
        assert resp.status == 200 and (await resp.json())["accepted"] == 40

        await asyncio.to_thread(own_broker.stop)
        resp = await asyncio.wait_for(first.post("/v1/events", json=batch_b), HANG_GUARD_S)
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        await asyncio.to_thread(own_broker.start)

        out = await _post_until_answered_200(first, batch_b)
        assert out["rejected"] == 0 and out["accepted"] + out["duplicates"] == 40
        # the client retries both batches once more, through the other instance, which has no memory
        # of what the first one wrote: every event goes to the topic again
        for batch in (batch_a, batch_b):
            out = await _post_until_answered_200(other, batch)
            assert out["accepted"] == 40
    finally:
        await first.close()
        await other.close()

    records = await asyncio.to_thread(read_records, own_broker.bootstrap, topics.raw)
    records.sort(key=lambda r: (r.partition, r.offset))  # the job reads each partition in offset order
    sent_ids = {e["event_id"] for e in batch_a["events"] + batch_b["events"]}
    copies = Counter(orjson.loads(r.value)["event_id"] for r in records)
    assert set(copies) == sent_ids  # nothing lost, nothing foreign
    assert sum(copies.values()) >= len(sent_ids) + 80  # the copies the job must drop are there

    events = [parse_event(r.value) for r in records]  # the job's parse path
    decider = Decider(replace(JobConfig(), allowed_lateness_ms=2000), ReloadingScorer(), RuleEngine.default(),
                      clock_ms=lambda: 0)
    _actions, dlq, store = decide_all(decider, events, batch_size=16)
    assert dlq == []  # no copy ends as late_event either
    per_session = Counter(e["session_id"] for e in batch_a["events"] + batch_b["events"])
    copies_per_session = Counter(orjson.loads(r.value)["session_id"] for r in records)
    for session_id, n_sent in per_session.items():
        counts = store[session_id].count_dict()
        assert counts["applied"] + counts["suppressed"] + counts["ignored"] == n_sent, (session_id, counts)
        assert counts["deduplicated"] == copies_per_session[session_id] - n_sent
        assert counts["late"] == 0


@pytest.fixture
async def client(stack, topics):
    settings = collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw,
                                  topic_dlq=topics.dlq, rate_limit_per_s=0, mount_decision=False)
    test_client = TestClient(TestServer(create_app(settings)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def test_invalid_utf8_in_the_event_id_of_a_rejected_event_is_no_500(stack, topics, client):
    event = _events("s", 1)[0] | {"type": "hover", "props": {"hover_ms": -1}}  # rejected: negative_duration
    body = orjson.dumps({"events": [event]}).replace(event["event_id"].encode(), b"id-\xff\xfe-1")
    resp = await client.post("/v1/events", data=body)
    assert resp.status == 200, await resp.text()
    result = (await resp.json())["results"][0]
    assert result["status"] == "rejected" and result["reason"] == "negative_duration"
    dlq = await asyncio.to_thread(read_records, stack.kafka_bootstrap, topics.dlq)
    record = orjson.loads(dlq[0].value)
    assert record["event_id"] == "id-??-1"  # the bad bytes replaced, as in the record's payload
    assert dlq[0].key == record["event_id"].encode()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(client, encoding):
    body = orjson.dumps({"events": _events("s", 2)})
    resp = await client.post("/v1/events", data=body, headers={"Content-Encoding": encoding,
                                                                "Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"] == "bad_content_encoding"
    # the same body, compressed as declared, is accepted (and the collector still answers after the 400)
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    resp = await client.post("/v1/events", data=packed, headers={"Content-Encoding": encoding,
                                                                  "Content-Type": "application/json"})
    assert resp.status == 200 and (await resp.json())["accepted"] == 2


async def test_unknown_content_encoding_is_a_415_and_deep_nesting_a_rejection(client):
    resp = await client.post("/v1/events", data=b"[]", headers={"Content-Encoding": "compress"})
    assert resp.status == 415 and (await resp.json())["error"] == "unsupported_content_encoding"
    # a page object nested 400 levels deep: beyond what orjson serializes (254 levels); was a 500
    event = orjson.dumps(_events("s", 1)[0] | {"page": "PAGE"}).decode()
    deep_page = '{"a":' * 400 + "1" + "}" * 400
    body = '{"events": [' + event.replace('"PAGE"', deep_page) + "]}"
    resp = await client.post("/v1/events", data=body.encode())
    assert resp.status == 200
    result = (await resp.json())["results"][0]
    assert result["status"] == "rejected" and result["reason"] == "wrong_type" and "nested deeper" in result["detail"]
