"""GET /v1/rules serves the ruleset in force: the newest valid one on the rules topic (real broker)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaProducer

from collector import edge
from connectors.rules_topic import RULESET_KEY, publish_ruleset

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def test_rules_follow_the_topic_and_ignore_an_invalid_newest_record(stack, topics):
    app = web.Application()
    edge.register(app, edge.EdgeSettings(kafka_bootstrap=stack.kafka_bootstrap, rules_topic=topics.rules,
                                         rules_refresh_s=0))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        state = client.app[edge._STATE_KEY]
        empty = await client.get("/v1/rules")  # nothing published yet: the job's initial file
        assert empty.headers["X-Intentflow-Rules-Source"] == "file"

        ruleset = json.loads((ROOT / "rules" / "default.v1.json").read_text())
        newer = copy.deepcopy(ruleset)
        newer["rules_version"] = "2026-12-02.7"
        newer["rules"][1]["when"]["all"][0]["value"] = 65
        publish_ruleset(newer, stack.kafka_bootstrap, topics.rules)
        await client.get("/v1/rules")  # starts the background lookup
        await state.rules_task
        resp = await client.get("/v1/rules")
        body = await resp.json()
        assert resp.headers["X-Intentflow-Rules-Source"] == "topic"
        assert body["rules_version"] == "2026-12-02.7" and body["rules"][1]["when"]["all"][0]["value"] == 65

        producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        producer.send(topics.rules, key=RULESET_KEY, value=b'{"rules_version": "broken"}').get(timeout=10)
        producer.close()
        await client.get("/v1/rules")
        await state.rules_task
        resp = await client.get("/v1/rules")
        assert (await resp.json())["rules_version"] == "2026-12-02.7"  # the job keeps the previous one too
    finally:
        await client.close()
