"""The collector's edge endpoints (collector/edge.py) without Kafka: model, rules from the file, runtime files."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from collector import edge
from collector.app import create_app
from collector.settings import collector_settings

ROOT = Path(__file__).resolve().parents[2]
ORT_DIR = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist"


@pytest.fixture
async def client_for():
    clients = []

    async def make(**overrides):
        settings = edge.EdgeSettings(kafka_bootstrap=None, rules_topic=None, **overrides)
        app = web.Application()
        edge.register(app, settings)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


async def test_model_current_serves_bytes_and_manifest_with_etag(client_for):
    client = await client_for()
    resp = await client.get("/v1/models/intent-lr/current")
    assert resp.status == 200
    body = await resp.json()
    # the version in force: CURRENT when the promotion gate wrote one, else the highest
    current = ROOT / "models" / "intent-lr" / "CURRENT"
    latest = (int(current.read_text().strip()) if current.exists()
              else max(int(p.name) for p in (ROOT / "models" / "intent-lr").iterdir() if p.name.isdigit()))
    manifest = json.loads((ROOT / "models" / "intent-lr" / str(latest) / "manifest.json").read_text())
    blob = base64.b64decode(body["model_base64"])
    assert blob == (ROOT / "models" / "intent-lr" / str(latest) / "model.onnx").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == body["sha256"] == manifest["sha256"]
    assert body["model_version"] == f"intent-lr/{latest}" and body["bytes"] == len(blob)
    assert body["features"] == [f["name"] for f in manifest["features"]]
    assert (body["input_name"], body["output_name"]) == ("features", "intent_score")
    assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["X-Intentflow-Model-Version"] == f"intent-lr/{latest}"
    etag = resp.headers["ETag"]
    again = await client.get("/v1/models/intent-lr/current", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    other = await client.get("/v1/models/intent-lr/current", headers={"If-None-Match": '"something-else"'})
    assert other.status == 200


async def test_model_errors_are_clear_4xx_and_a_broken_model_is_503(client_for, tmp_path):
    client = await client_for(models_root=tmp_path)
    assert (await client.get("/v1/models/intent-lr/current")).status == 404
    bad = await client.get("/v1/models/Not.A.Name/current")
    assert bad.status == 400 and (await bad.json())["error"] == "bad_model_name"
    # a new version appears: served at once (the ETag changes); a corrupted one is refused with 503
    shutil.copytree(ROOT / "models" / "intent-lr" / "1", tmp_path / "intent-lr" / "1")
    first = await client.get("/v1/models/intent-lr/current")
    assert first.status == 200
    shutil.copytree(ROOT / "models" / "intent-lr" / "1", tmp_path / "intent-lr" / "2")
    manifest = json.loads((tmp_path / "intent-lr" / "2" / "manifest.json").read_text())
    manifest["version"] = 2
    (tmp_path / "intent-lr" / "2" / "manifest.json").write_text(json.dumps(manifest))
    second = await client.get("/v1/models/intent-lr/current")
    assert (await second.json())["model_version"] == "intent-lr/2"
    assert second.headers["ETag"] != first.headers["ETag"]
    (tmp_path / "intent-lr" / "2" / "model.onnx").write_bytes(b"not a model")
    broken = await client.get("/v1/models/intent-lr/current")
    assert broken.status == 503 and (await broken.json())["error"] == "model_unavailable"


async def test_rules_serves_the_initial_file_when_no_topic_is_configured(client_for):
    client = await client_for()
    resp = await client.get("/v1/rules")
    assert resp.status == 200
    ruleset = await resp.json()
    assert ruleset["rules_version"] == json.loads((ROOT / "rules" / "default.v1.json").read_text())["rules_version"]
    assert all(r["enabled"] is True for r in ruleset["rules"])  # normalized as the job sees it
    assert resp.headers["X-Intentflow-Rules-Source"] == "file"
    assert (await client.get("/v1/rules", headers={"If-None-Match": resp.headers["ETag"]})).status == 304


async def test_rules_keep_the_last_ruleset_while_the_topic_is_unreachable(client_for):
    client = await client_for()
    first = await client.get("/v1/rules")
    state = client.app[edge._STATE_KEY]
    state.settings = edge.EdgeSettings(kafka_bootstrap="127.0.0.1:1", rules_topic="rules", rules_refresh_s=0)
    # a due refresh runs in the background: the page gets the current ruleset at once
    resp = await client.get("/v1/rules")
    assert resp.status == 200 and await resp.json() == await first.json()
    await state.rules_task
    assert state.rules.source == "stale" and state.rules.etag == first.headers["ETag"]
    resp = await client.get("/v1/rules")
    assert resp.headers["X-Intentflow-Rules-Source"] == "stale" and await resp.json() == await first.json()


async def test_rules_without_any_ruleset_file_is_503(client_for, tmp_path):
    client = await client_for(rules_file=tmp_path / "missing.json")
    resp = await client.get("/v1/rules")
    assert resp.status == 503 and (await resp.json())["error"] == "rules_unavailable"


@pytest.mark.skipif(not ORT_DIR.is_dir(), reason="onnxruntime-web missing: run `npm ci` in web/")
async def test_runtime_files_come_from_the_installed_package(client_for):
    client = await client_for()
    raw = (ORT_DIR / "ort-wasm-simd-threaded.wasm").read_bytes()
    resp = await client.get("/v1/edge/ort/ort-wasm-simd-threaded.wasm", headers={"Accept-Encoding": "gzip"},
                            auto_decompress=False)
    assert resp.status == 200 and resp.content_type == "application/wasm"
    assert resp.headers["Content-Encoding"] == "gzip"
    compressed = await resp.read()
    assert gzip.decompress(compressed) == raw and len(compressed) < len(raw) / 2
    plain = await client.get("/v1/edge/ort/ort.wasm.min.mjs", headers={"Accept-Encoding": "identity"})
    assert plain.content_type == "text/javascript" and "Content-Encoding" not in plain.headers
    assert await plain.read() == (ORT_DIR / "ort.wasm.min.mjs").read_bytes()
    assert (await client.get("/v1/edge/ort/ort.wasm.min.mjs",
                             headers={"If-None-Match": plain.headers["ETag"], "Accept-Encoding": "identity"})).status == 304
    for name in ("package.json", "ort.node.min.mjs", "..%2F..%2Fpackage.json"):
        assert (await client.get(f"/v1/edge/ort/{name}")).status == 404, name


async def test_runtime_missing_is_a_clear_503(client_for, tmp_path):
    client = await client_for(ort_dir=tmp_path)
    resp = await client.get("/v1/edge/ort/ort.wasm.min.mjs")
    assert resp.status == 503 and (await resp.json())["error"] == "runtime_not_installed"


async def test_cross_origin_pages_of_allowed_origins_only(client_for):
    client = await client_for(cors_origins=("https://shop.example",))
    ok = await client.get("/v1/rules", headers={"Origin": "https://shop.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    other = await client.get("/v1/rules", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_the_collector_mounts_the_edge_routes():
    app = create_app(collector_settings(rate_limit_per_s=0))
    paths = {r.resource.canonical for r in app.router.routes()}
    assert {"/v1/models/{name}/current", "/v1/rules", "/v1/edge/ort/{file}"} <= paths
