"""One limit, everywhere: collector, the job's parse path and the decision API accept the same ids.

Issue 14 item 5: session ids of 129-256 characters were accepted by the collector and the job but
refused by the decision API (128), so such a visitor could never be personalized. The limits now live
in ``udfs.limits``; this test drives the real collector (real broker), the job's ``parse_event`` on the
records the collector wrote, and the decision API (real Redis) with ids on both sides of each limit.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import create_app
from collector.settings import CollectorSettings, collector_settings
from collector.decision import DecisionSettings, register
from collector.openapi import openapi_document
from tests.conftest import ROOT
from tests.job_support import read_records
from udfs import limits
from udfs.contract import ContractError, parse_event
from udfs.contract_models import event_json_schema

pytestmark = pytest.mark.integration

#: id lengths probed: typical, the old decision-API limit and one past it, the limit and one past it
ID_LENGTHS = (1, 36, 128, 129, limits.ID_MAX_CHARS - 1, limits.ID_MAX_CHARS, limits.ID_MAX_CHARS + 1)


def _event(session_id: str, **fields) -> dict:
    now_ms = int(time.time() * 1000)
    return {"event_id": str(uuid.uuid4()), "type": "click", "session_id": session_id, "client_ts_ms": now_ms,
            "props": {"element_id": "e1", "element_role": "product_card"}, **fields}


@pytest.fixture
async def client(stack, topics, redis_client):
    _redis, prefix = redis_client
    settings = collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw,
                                  topic_dlq=topics.dlq, rate_limit_per_s=0, mount_decision=False)
    app = create_app(settings)
    register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix + "if:"))
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def test_collector_job_and_decision_api_agree_on_id_lengths(stack, topics, client):
    outcomes = {}
    for n in ID_LENGTHS:
        session_id = f"s{n}-".ljust(n, "x")[:n]
        resp = await client.post("/v1/events", json={"events": [_event(session_id)]})
        assert resp.status == 200, await resp.text()
        result = (await resp.json())["results"][0]
        decision = await client.get("/v1/decision", params={"session_id": session_id})
        outcomes[n] = (result["status"], decision.status)
        if result["status"] == "rejected":
            assert result["reason"] == "wrong_type" and "session_id" in result["detail"]
    expected = {n: ("accepted", 200) if n <= limits.ID_MAX_CHARS else ("rejected", 400) for n in ID_LENGTHS}
    assert outcomes == expected

    raw = await asyncio.to_thread(read_records, stack.kafka_bootstrap, topics.raw)
    accepted = [n for n in ID_LENGTHS if n <= limits.ID_MAX_CHARS]
    assert sorted(len(orjson.loads(r.value)["session_id"]) for r in raw) == accepted
    longest = next(r.value for r in raw if len(orjson.loads(r.value)["session_id"]) == limits.ID_MAX_CHARS)
    # the job's parse path takes every record the collector wrote ...
    for record in raw:
        assert len(parse_event(record.value)["session_id"]) in accepted
    # ... and refuses one character more, for each id field
    for field in ("session_id", "anonymous_id", "user_id"):
        event = orjson.loads(longest)
        event[field] = "y" * (limits.ID_MAX_CHARS + 1)
        with pytest.raises(ContractError) as err:
            parse_event(orjson.dumps(event))
        assert err.value.reason == "wrong_type" and field in err.value.detail
        event[field] = "y" * limits.ID_MAX_CHARS
        assert parse_event(orjson.dumps(event))[field] == event[field]


async def test_other_ids_and_strings_follow_the_same_limits(stack, topics, client):
    too_long_id = "a" * (limits.ID_MAX_CHARS + 1)
    longest_id = "a" * limits.ID_MAX_CHARS
    long_text = "t" * (limits.STRING_MAX_CHARS + 10)
    events = [
        _event("s1", anonymous_id=too_long_id),
        _event("s2", user_id=too_long_id),
        _event("s3", anonymous_id=longest_id, user_id=longest_id),
        _event("s4", props={"element_id": long_text, "element_role": "price"}),
    ]
    resp = await client.post("/v1/events", json={"events": events})
    results = (await resp.json())["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected", "accepted", "accepted"]
    raw = {orjson.loads(r.value)["session_id"]: r.value
           for r in await asyncio.to_thread(read_records, stack.kafka_bootstrap, topics.raw)}
    cut = parse_event(raw["s4"])  # the collector cut the string to the contract's limit; the job takes it
    assert len(cut["props"]["element_id"]) == limits.STRING_MAX_CHARS and "text_truncated" in cut["flags"]
    uncut = orjson.loads(raw["s4"])
    uncut["props"]["element_id"] = long_text
    with pytest.raises(ContractError, match="element_id"):
        parse_event(orjson.dumps(uncut))
    assert parse_event(raw["s3"])["user_id"] == longest_id


def test_every_published_description_states_the_same_limits():
    settings = CollectorSettings()
    assert (settings.max_event_bytes, settings.max_batch_bytes, settings.max_batch_events) == (
        limits.EVENT_MAX_BYTES, limits.BATCH_MAX_BYTES, limits.BATCH_MAX_EVENTS)
    # the generated JSON Schema of the event, as committed
    committed = json.loads((ROOT / "schemas" / "event.v1.json").read_text())
    assert committed == json.loads(json.dumps(event_json_schema()))
    assert committed["$defs"]["ClickEvent"]["properties"]["session_id"]["maxLength"] == limits.ID_MAX_CHARS
    # the OpenAPI document of the collector and decision API
    doc = openapi_document()
    raw_event = doc["components"]["schemas"]["RawEvent"]["properties"]
    assert raw_event["session_id"]["maxLength"] == limits.ID_MAX_CHARS
    decision_param = doc["paths"]["/v1/decision"]["get"]["parameters"][0]
    assert decision_param["schema"]["maxLength"] == limits.ID_MAX_CHARS
    assert doc["components"]["schemas"]["Batch"]["properties"]["events"]["maxItems"] == limits.BATCH_MAX_EVENTS
    # the browser SDK cuts strings at the same length
    for sdk in ("intentflow.js", "intentflow.iife.js"):
        text = (ROOT / "web" / "sdk" / sdk).read_text()
        assert int(re.search(r"const MAX_STRING_CHARS = (\d+);", text).group(1)) == limits.STRING_MAX_CHARS
