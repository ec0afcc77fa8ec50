"""GET /v1/decision against the real Redis of the local stack, and the static web files."""
from __future__ import annotations

import json
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from collector.decision import DEFAULT_ACTION, DecisionSettings, decode_action, register
from udfs.limits import ID_MAX_CHARS

pytestmark = pytest.mark.integration

ACTION = {
    "session_id": "s-1", "action": "show_video_demo_and_price_comparison", "params": json.dumps({"k": 1}),
    "rule_id": "deep_engagement_product", "rule_version": "1", "rules_version": "2026-11-30.1",
    "model_version": "intent-lr/1", "intent_score": "0.73", "event_id": "e-1", "event_ts_ms": "1700000000123",
    "decided_at_ms": "1700000000150",
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client(settings: DecisionSettings) -> TestClient:
    app = web.Application()
    register(app, settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_stored_action_is_returned_with_numbers_and_params(stack, redis_client):
    redis, prefix = redis_client
    settings = DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix + "if:")
    redis.hset(settings.action_key("s-1"), mapping=ACTION)
    redis.expire(settings.action_key("s-1"), 1800)
    client = await _client(settings)
    try:
        resp = await client.get("/v1/decision", params={"session_id": "s-1"})
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
    finally:
        await client.close()
    assert body["source"] == "redis"
    assert body["action"] == "show_video_demo_and_price_comparison"
    assert body["params"] == {"k": 1}
    assert body["rule_version"] == 1 and body["event_ts_ms"] == 1700000000123 and body["decided_at_ms"] == 1700000000150
    assert body["intent_score"] == pytest.approx(0.73)
    assert body["lookup_ms"] >= 0 and body["served_at_ms"] > 1700000000000


async def test_no_action_gives_the_default_and_says_none(stack, redis_client):
    _redis, prefix = redis_client
    client = await _client(DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix + "if:"))
    try:
        body = await (await client.get("/v1/decision", params={"session_id": "nobody"})).json()
    finally:
        await client.close()
    assert (body["action"], body["source"], body["params"]) == (DEFAULT_ACTION, "none", {})


async def test_unreachable_redis_gives_the_default_quickly():
    client = await _client(DecisionSettings(redis_url=f"redis://127.0.0.1:{_closed_port()}/0", timeout_s=0.05))
    try:
        resp = await client.get("/v1/decision", params={"session_id": "s-1"})
        body = await resp.json()
    finally:
        await client.close()
    assert resp.status == 200
    assert (body["action"], body["source"]) == (DEFAULT_ACTION, "redis_unavailable")
    assert body["lookup_ms"] < 1000


async def test_missing_or_oversized_session_id_is_a_400(stack):
    client = await _client(DecisionSettings(redis_url=stack.redis_url))
    try:
        assert (await client.get("/v1/decision")).status == 400
        too_long = "x" * (ID_MAX_CHARS + 1)
        assert (await client.get("/v1/decision", params={"session_id": too_long})).status == 400
        assert (await client.get("/v1/decision", params={"session_id": too_long[:-1]})).status == 200
    finally:
        await client.close()


async def test_sdk_and_demo_page_are_served(stack):
    client = await _client(DecisionSettings(redis_url=stack.redis_url))
    try:
        demo = await client.get("/demo/")
        assert demo.status == 200 and "16GB RAM" in await demo.text()
        sdk = await client.get("/sdk/intentflow.js")
        assert sdk.status == 200 and "javascript" in sdk.headers["Content-Type"]
        assert "export function init" in await sdk.text()
        iife = await client.get("/sdk/intentflow.iife.js")
        assert iife.status == 200 and "globalThis.IntentFlow" in await iife.text()
        css = await client.get("/demo/demo.css")
        assert css.status == 200
        redirect = await client.get("/demo", allow_redirects=False)
        assert redirect.status == 302 and redirect.headers["Location"] == "/demo/"
        assert (await client.get("/sdk/../collector/decision.py")).status in (403, 404)
    finally:
        await client.close()


def test_decode_action_handles_bad_fields():
    out = decode_action({"action": "simplify_layout", "params": "not json", "intent_score": "x", "rule_version": "2"})
    assert out["params"] == {} and out["params_invalid"] is True
    assert out["intent_score"] is None and out["rule_version"] == 2
    assert decode_action({"action": "a"})["params"] == {}
