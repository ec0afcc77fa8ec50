"""Edge scoring in headless Chromium (issue 12): the demo page with `?edge=1` shows the provisional
action for the article's laptop visitor before any server decision exists, with the same features and
score as the server's Python, and the server's decision then replaces it.

The collector here serves the real edge endpoints (collector/edge.py: model, rules, onnxruntime-web
from web/node_modules) and the real decision API, but no job runs: the decision API answers "none"
throughout, so whatever the page shows before step 4 came from the browser alone. Every `intent` event
the SDK sent is checked against the server's computation on the same events (normalized as the
collector does): bit-identical features (same FNV-1a hash of the float32 vector), score within 1e-5
(float32 tolerance of onnxruntime-web vs onnxruntime), same rule.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from aiohttp import web

from collector import edge
from collector.decision import DecisionSettings, register
from support import ARTIFACTS, Browser, CaptureCollector, ServerThread, browser_missing_reason
from udfs.edge import SCORE_TOLERANCE, feature_hash, reference_replay
from udfs.features import FEATURE_INDEX
from udfs.normalize import normalize_event
from udfs.rules import RuleEngine
from udfs.scoring import IntentScorer, ModelRegistry

pytestmark = pytest.mark.browser

#: A desktop Chrome user agent, and no navigator.webdriver (as_visitor): headless Chromium's own say
#: "bot", and the noise filter drops bot events (tests/browser/test_e2e_personalization.py).
VISITOR_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")


def _server_view(events: list[dict]) -> dict[str, dict]:
    """The server's computation on the events the SDK sent: {event_id: reference row}.

    Normalized as the collector did on arrival: each request reached it within a few ms of its
    ``sent_at_ms`` on this machine (one clock), below ``udfs.normalize.SKEW_TOLERANCE_MS``, so no
    clock-skew correction applies (1 ms of transit is assumed here).
    """
    normalized = [normalize_event(e, received_at_ms=e["sent_at_ms"] + 1, sent_at_ms=e["sent_at_ms"],
                                  user_agent=VISITOR_UA) for e in events]
    rows = reference_replay(normalized, IntentScorer(ModelRegistry().manifest_path("intent-lr")), RuleEngine.default())
    return {r["event_id"]: r for r in rows}


def test_edge_shows_the_provisional_action_first_with_the_servers_features_and_score(stack, redis_client):
    reason = browser_missing_reason()
    if reason:
        from tests.conftest import skip_unless_ci
        skip_unless_ci(reason)
    if not edge.EdgeSettings().ort_dir.is_dir():
        from tests.conftest import skip_unless_ci
        skip_unless_ci("onnxruntime-web missing: run `npm ci` in web/")
    redis, key_prefix = redis_client
    decision_settings = DecisionSettings(redis_url=stack.redis_url, redis_prefix=key_prefix + "if:")
    capture = CaptureCollector()

    def make() -> web.Application:
        app = web.Application()
        register(app, decision_settings)
        edge.register(app, edge.EdgeSettings(kafka_bootstrap=None, rules_topic=None))
        app.router.add_post("/v1/events", capture.handle)
        return app

    with ServerThread(make) as srv, Browser(user_agent=VISITOR_UA, as_visitor=True) as browser:
        browser.call("goto", url=srv.base_url + "/demo/?edge=1&poll_ms=100")
        browser.call("wait_for", timeout_ms=20000,
                     expr="window.intentflowDemo.tracker.edge !== null || !!window.intentflowDemo.tracker.edgeError")
        assert browser.eval("window.intentflowDemo.tracker.edgeError || null") is None
        load = browser.eval("window.intentflowDemo.tracker.edgeLoad")
        # the article's visitor: scroll past 70 %, 3 s on the product card, Compare
        browser.call("wheel_to_pct", pct=75)
        browser.call("hover", selector="#product-card")
        browser.call("sleep", ms=3000)
        browser.call("click", selector="#compare")
        browser.call("wait_for", timeout_ms=5000, expr=(
            "document.getElementById('decision-status').dataset.ifDecisionSource === 'edge'"
            " && !document.getElementById('video-demo').hidden && !document.getElementById('price-comparison').hidden"))
        # no server decision exists at this point: the decision API still says "none"
        assert browser.eval("window.intentflowDemo.lastDecision && window.intentflowDemo.lastDecision.source") == "none"
        applied = browser.eval("window.intentflowDemo.applied")
        assert applied[0]["source"] == "edge"
        assert (applied[0]["action"], applied[0]["rule_id"]) == ("show_video_demo_and_price_comparison",
                                                                 "deep_engagement_product")
        assert "edge" in browser.eval("document.getElementById('decision-status').textContent")
        browser.screenshot("edge_provisional.png")
        sid = browser.eval("window.intentflowDemo.tracker.sessionId")

        # the server decides (as the job writes it, docs/contracts.md §5) differently: its action replaces
        # the provisional one, which disappears
        provisional_ts = applied[0]["event_ts_ms"]
        redis.hset(decision_settings.action_key(sid), mapping={
            "session_id": sid, "action": "rerank_towards_item", "params": json.dumps({"item_id": "laptop-aurora-14"}),
            "rule_id": "rerank_compared_item", "rule_version": 1, "rules_version": "test.1",
            "model_version": "intent-lr/1", "intent_score": 0.7, "event_id": applied[0]["event_id"],
            "event_ts_ms": provisional_ts, "decided_at_ms": int(time.time() * 1000)})
        browser.call("wait_for", timeout_ms=5000,
                     expr="document.getElementById('decision-status').dataset.ifDecisionSource === 'redis'")
        assert browser.eval("document.body.dataset.ifAction") == "rerank_towards_item"
        assert browser.eval("document.getElementById('video-demo').hidden") is True
        assert browser.eval("document.querySelector('#related-list li').dataset.itemId") == "sleeve-14"

        # the next page of the same session continues from this page's features (sessionStorage)
        browser.call("goto", url=srv.base_url + "/demo/?edge=1&poll_ms=100")
        browser.call("wait_for", timeout_ms=20000, expr="!!window.intentflowDemo.tracker.lastEdgeResult")
        assert browser.eval("window.intentflowDemo.tracker.sessionId") == sid
        assert browser.eval("window.intentflowDemo.tracker.edge.features.featureDict().page_view_count") == 2
        second_page = browser.eval("window.intentflowDemo.tracker.lastEdgeResult")
        browser.eval("window.intentflowDemo.tracker.flush()")
        browser.call("wait_for", timeout_ms=5000, expr="window.intentflowDemo.tracker.queue.length === 0")
        errors = browser.call("page_errors")
        browser.call("goto", url="about:blank")
    assert not errors, errors

    events = capture.events()
    intents = [e for e in events if e["type"] == "intent"]
    server = _server_view(events)
    decided = [i for i in intents if i["props"]["action"]]
    assert decided and decided[0]["props"]["rule_id"] == "deep_engagement_product"
    worst = 0.0
    for intent in intents:
        p = intent["props"]
        row = server[p["trigger_event_id"]]
        assert row["status"] == "applied"
        assert p["feature_hash"] == feature_hash(np.asarray(row["features"], dtype=np.float32)), (p, row)
        worst = max(worst, abs(p["intent_score"] - row["intent_score"]))
        assert p["rule_id"] == (row["decision"]["rule_id"] if row["decision"] else None)
        assert p["model_version"] == "intent-lr/1"
    assert worst <= SCORE_TOLERANCE, worst
    # across pages: the second page's latest edge result equals the server's over the whole session
    row = server[second_page["event_id"]]
    assert second_page["feature_hash"] == feature_hash(np.asarray(row["features"], dtype=np.float32))
    assert row["features"][FEATURE_INDEX["page_view_count"]] == 2  # one session over both pages
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "edge_browser.json").write_text(json.dumps(
        {"load": load, "applied": applied, "intent_events": [i["props"] for i in intents],
         "max_score_diff": worst}, indent=2))


#: Runs the golden fixtures in the page: edge.js and onnxruntime-web as the SDK loads them from the
#: collector, the parity run of tests/unit/edge_parity_core.mjs; posts the result back.
RUN_PARITY_IN_PAGE = """(async () => {
  const edgeModule = await import('/sdk/edge.js');
  const { runParity } = await import('/parity/core.mjs');
  const loaded = await import('/v1/edge/ort/ort.wasm.min.mjs');
  const ort = loaded.default && loaded.default.InferenceSession ? loaded.default : loaded;
  ort.env.wasm.wasmPaths = location.origin + '/v1/edge/ort/';
  ort.env.wasm.numThreads = 1;
  const fx = await (await fetch('/parity/fixture.json')).json();
  const out = await runParity(fx, edgeModule, ort);
  const res = await fetch('/parity/result', { method: 'POST', body: JSON.stringify(out) });
  return res.status;
})()"""


def test_golden_fixtures_give_the_same_results_in_chromium(browser):
    """The node parity run (tests/unit/test_edge_parity.py) again in Chromium's own wasm and V8."""
    if not edge.EdgeSettings().ort_dir.is_dir():
        from tests.conftest import skip_unless_ci
        skip_unless_ci("onnxruntime-web missing: run `npm ci` in web/")
    from tests.conftest import real_data
    from tests.unit import test_edge_parity as parity

    fixture, reference = parity.build_fixture(real_data())  # scripted sessions without ../shared/data
    fixture_bytes = json.dumps(fixture).encode()
    results: dict = {}

    async def page(_request):
        return web.Response(text='<!doctype html><title>parity</title><link rel="icon" href="data:,">',
                            content_type="text/html")

    async def fixture_json(_request):
        return web.Response(body=fixture_bytes, content_type="application/json")

    async def core(_request):
        return web.FileResponse(parity.ROOT / "tests" / "unit" / "edge_parity_core.mjs",
                                headers={"Content-Type": "text/javascript"})

    async def result(request):
        results["out"] = json.loads(await request.read())
        return web.Response(status=204)

    def make() -> web.Application:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        register(app, DecisionSettings(redis_url="redis://127.0.0.1:1/0"))  # serves /sdk/; Redis unused
        edge.register(app, edge.EdgeSettings(kafka_bootstrap=None, rules_topic=None))
        app.router.add_get("/parity/", page)
        app.router.add_get("/parity/fixture.json", fixture_json)
        app.router.add_get("/parity/core.mjs", core)
        app.router.add_post("/parity/result", result)
        return app

    with ServerThread(make, browser) as srv:
        browser.call("goto", url=srv.base_url + "/parity/")
        assert browser.eval(RUN_PARITY_IN_PAGE) == 204
    js = results["out"]
    parity.check_features(reference, js)
    parity.check_scores(reference, js)
    parity.check_session_decisions(reference, js)
    parity.check_rule_cases(fixture, js)
    parity.check_orders(fixture, js)
