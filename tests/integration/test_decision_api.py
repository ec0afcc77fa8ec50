"""GET /v1/decision against the real Redis of the local stack, and the static web files."""
from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from collector.decision import DEFAULT_ACTION, DecisionSettings, register
from connectors.redis_store import decode_action
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


async def _stalled_redis() -> tuple[asyncio.Server, list[bytes]]:
    """A "Redis" that accepts connections, reads what it is sent and never answers."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                received.append(data)
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), received


@pytest.mark.parametrize("kind", ["stalled", "closed_port"])
async def test_unreachable_or_stalled_redis_gives_the_default(kind):
    if kind == "stalled":
        server, received = await _stalled_redis()
        port = server.sockets[0].getsockname()[1]
    else:
        server, received, port = None, [], _closed_port()
    # the API's read timeout is what ends the wait on a stalled Redis: without it the request hangs
    # (a hang, not slowness, is what the 30 s guard catches)
    client = await _client(DecisionSettings(redis_url=f"redis://127.0.0.1:{port}/0", timeout_s=0.05))
    try:
        async with asyncio.timeout(30):
            resp = await client.get("/v1/decision", params={"session_id": "s-1"})
            body = await resp.json()
    finally:
        await client.close()
        if server is not None:
            server.close()
    assert resp.status == 200
    assert (body["action"], body["source"]) == (DEFAULT_ACTION, "redis_unavailable")
    if kind == "stalled":  # the connection was made and a command sent: a stall, not a refused connect
        assert received, "the decision API never connected to the stalled Redis"


async def _raw_get(port: int, raw_path: str) -> tuple[int, bytes]:
    """GET ``raw_path`` byte for byte (no client-side URL normalisation); return (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {raw_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("raw_path", ["/sdk/../collector/decision.py", "/sdk/%2e%2e/collector/decision.py",
                                      "/sdk/..%2fcollector/decision.py", "/demo/../../pyproject.toml",
                                      "/sdk/%2e%2e/%2e%2e/pyproject.toml"])
async def test_path_traversal_sent_raw_is_refused(stack, raw_path):
    client = await _client(DecisionSettings(redis_url=stack.redis_url))
    try:
        status, body = await _raw_get(client.port, raw_path)
        # the same raw request for a real file is answered: the raw client itself works
        ok_status, ok_body = await _raw_get(client.port, "/sdk/intentflow.js")
    finally:
        await client.close()
    assert ok_status == 200 and b"export function init" in ok_body
    assert status in (400, 403, 404), (status, body[:200])
    assert b"DecisionSettings" not in body and b"[build-system]" not in body


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
    finally:
        await client.close()


def test_decode_action_handles_bad_fields():
    out = decode_action({"action": "simplify_layout", "params": "not json", "intent_score": "x", "rule_version": "2"})
    assert out["params"] == {} and out["params_invalid"] is True
    assert out["intent_score"] is None and out["rule_version"] == 2
    assert decode_action({"action": "a"})["params"] == {}
