"""The demo product page in a real browser: events reach Kafka through the collector, and an action
written into Redis (as the job writes it, docs/contracts.md §5) re-renders the page.

Screenshots go to ``artifacts/`` (ignored by git); ``docs/img/demo_before.png`` and
``docs/img/demo_after.png`` for the README are copies made with ``INTENTFLOW_UPDATE_DOC_IMAGES=1``.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid

import pytest
from aiohttp import web

from collector.decision import DecisionSettings, register
from support import ARTIFACTS, ROOT, CaptureCollector, ServerThread

pytestmark = pytest.mark.browser

#: The types a visitor of the demo page produces (scroll, hover, click, trajectory, form, visibility).
VISITOR_TYPES = {"page_view", "scroll", "hover", "click", "mouse_trajectory", "form", "visibility"}


def write_action(redis, key: str, action: str, params: dict | None = None, *, rule_id: str, session_id: str,
                 decided_at_ms: int) -> None:
    """Write the latest action as the job does (docs/contracts.md §4 fields, §5 key, TTL 1800 s)."""
    redis.hset(key, mapping={
        "session_id": session_id, "action": action, "params": json.dumps(params or {}),
        "rule_id": rule_id, "rule_version": 1, "rules_version": "test.1", "model_version": "intent-lr/1",
        "intent_score": 0.8, "event_id": str(uuid.uuid4()), "event_ts_ms": decided_at_ms - 5,
        "decided_at_ms": decided_at_ms})
    redis.expire(key, 1800)


def _copy_small(src, dst) -> None:
    """Copy a screenshot for the README: 3/4 size, 128-colour palette (a few dozen KB instead of ~150)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with the train extra (matplotlib); without it copy as is
        shutil.copy(src, dst)
        return
    with Image.open(src) as img:
        small = img.convert("RGB").resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)
        small.quantize(colors=128).save(dst, optimize=True)


def _exposures(capture: CaptureCollector) -> set[tuple[str, str, str]]:
    return {(e["props"]["experiment_id"], e["props"]["variant"], e["props"]["content_id"])
            for e in capture.events() if e["type"] == "exposure"}


def _shown(browser, *element_ids: str) -> list[bool]:
    """Whether each element is rendered with a non-empty box (hidden attribute and CSS both count)."""
    return browser.eval(json.dumps(list(element_ids)) + ".map((id) => { const r ="
                        " document.getElementById(id).getBoundingClientRect(); return r.width > 0 && r.height > 0; })")


def test_an_action_in_redis_re_renders_the_page(browser, stack, redis_client):
    redis, prefix = redis_client
    settings = DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix + "if:")
    capture = CaptureCollector()

    def make() -> web.Application:
        app = web.Application()
        register(app, settings)
        app.router.add_post("/v1/events", capture.handle)
        return app

    with ServerThread(make, browser) as srv:
        browser.call("goto", url=srv.base_url + "/demo/?poll_ms=100")
        browser.call("wait_for", expr="document.getElementById('decision-status').dataset.ifDecisionSource === 'none'")
        sid = browser.eval("window.intentflowDemo.tracker.sessionId")
        assert _shown(browser, "video-demo", "price-comparison", "key-facts", "specs") == [False, False, False, True]
        before = browser.screenshot("demo_before.png")

        # 1) deep engagement -> video demo + price comparison
        write_action(redis, settings.action_key(sid), "show_video_demo_and_price_comparison",
                     rule_id="deep_engagement_product", session_id=sid, decided_at_ms=int(time.time() * 1000))
        browser.call("wait_for", timeout_ms=5000, expr=(
            "!document.getElementById('video-demo').hidden && !document.getElementById('price-comparison').hidden"))
        assert browser.eval("document.body.dataset.ifAction") == "show_video_demo_and_price_comparison"
        assert "deep_engagement_product" in browser.eval("document.getElementById('decision-status').textContent")
        # laid out on screen (not merely un-hidden), both within the first screen, nothing else changed
        assert _shown(browser, "video-demo", "price-comparison", "key-facts", "specs") == [True, True, False, True]
        assert browser.eval("['video-demo', 'price-comparison'].every((id) =>"
                            " document.getElementById(id).getBoundingClientRect().bottom <= innerHeight)")
        after = browser.screenshot("demo_after.png")

        # 2) high intent on the compared item (the page's own) -> related items re-ranked towards
        #    it; what is already shown stays
        related = "Array.from(document.querySelectorAll('#related-list li')).map((li) => li.dataset.itemId)"
        assert browser.eval(related) == ["mouse-silent", "zephyr-14", "sleeve-14", "dock-usb-c"]
        write_action(redis, settings.action_key(sid), "rerank_towards_item", {"item_id": "laptop-aurora-14"},
                     rule_id="rerank_compared_item", session_id=sid, decided_at_ms=int(time.time() * 1000))
        browser.call("wait_for", timeout_ms=5000,
                     expr="document.body.dataset.ifAction === 'rerank_towards_item'")
        assert browser.eval(related) == ["sleeve-14", "dock-usb-c", "mouse-silent", "zephyr-14"]
        assert _shown(browser, "video-demo", "price-comparison") == [True, True]

        # 3) shallow engagement -> simplified, scannable content
        write_action(redis, settings.action_key(sid), "simplify_layout", rule_id="shallow_engagement",
                     session_id=sid, decided_at_ms=int(time.time() * 1000))
        browser.call("wait_for", timeout_ms=5000, expr="document.body.classList.contains('layout-simple')")
        assert _shown(browser, "key-facts", "specs", "reviews", "description", "video-demo", "price-comparison") \
            == [True, False, False, False, False, False]
        browser.screenshot("demo_simplified.png")

        # 4) an expired action (key gone) keeps what is shown
        redis.delete(settings.action_key(sid))
        browser.call("wait_for", expr="document.getElementById('decision-status').dataset.ifDecisionSource === 'none'")
        assert browser.eval("document.body.classList.contains('layout-simple')")
        browser.eval("window.intentflowDemo.tracker.flush()")
        # wait for the event (the exposures arriving at the capture collector), not for a fixed time
        expected = {("deep_engagement_product", "show_video_demo_and_price_comparison", "video_demo"),
                    ("shallow_engagement", "simplify_layout", "key_facts"),
                    ("rerank_compared_item", "rerank_towards_item", "related:laptop-aurora-14")}
        deadline = time.monotonic() + 10
        while not expected <= (exposures := _exposures(capture)) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert expected <= exposures, exposures
    if os.environ.get("INTENTFLOW_UPDATE_DOC_IMAGES") == "1":
        _copy_small(before, ROOT / "docs" / "img" / "demo_before.png")
        _copy_small(after, ROOT / "docs" / "img" / "demo_after.png")
    assert before.stat().st_size > 10_000 and after.stat().st_size > 10_000
    assert ARTIFACTS.is_dir()


def test_sdk_events_reach_kafka_through_the_collector_and_satisfy_the_contract(browser, stack, topics):
    import collector.app as collector_app
    from collector.settings import collector_settings
    from kafka import KafkaConsumer

    from udfs.contract import validate_event

    settings = collector_settings(
        kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
        mount_decision=False, cors_origins=("*",))

    def make() -> web.Application:
        app = collector_app.create_app(settings)
        register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix="test-unused:"))
        return app

    secret = "typed.secret@example.com"
    with ServerThread(make, browser) as srv:
        browser.call("goto", url=srv.base_url + "/demo/")
        sid = browser.eval("window.intentflowDemo.tracker.sessionId")
        browser.call("wheel_to_pct", pct=75)
        browser.call("hover", selector="#spec-ram")
        browser.call("sleep", ms=400)
        browser.call("click", selector="#alert-email")
        browser.eval(f"(() => {{ const el = document.getElementById('alert-email'); el.value = {json.dumps(secret)};"
                     " el.dispatchEvent(new Event('change', {bubbles: true})); el.blur(); })()")
        browser.call("hover", selector="#product-card")
        browser.call("sleep", ms=400)
        browser.call("click", selector="#compare")
        browser.call("set_visibility", state="hidden")  # flush by beacon, as on leaving the tab
        browser.call("sleep", ms=300)
        sent = browser.eval("window.intentflowDemo.tracker.stats")

    consumer = KafkaConsumer(topics.raw, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    records = []
    try:
        # every event captured until the tab was hidden, plus the few the page sends when the test
        # navigates away at the end (pagehide); stop after 1 s without new records
        deadline = time.monotonic() + 20
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and (len(records) < sent["captured"] or time.monotonic() - quiet_since < 1):
            got = [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
            if got:
                records.extend(got)
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    assert sent["failures"] == 0, sent
    assert len(records) >= sent["captured"], (len(records), sent)
    events = [validate_event(json.loads(r.value)) for r in records]
    assert {r.key.decode() for r in records} == {sid}
    assert len({e["event_id"] for e in events}) == len(events)
    assert VISITOR_TYPES <= {e["type"] for e in events}, {e["type"] for e in events}
    for e in events:
        assert e["received_at_ms"] and e["sent_at_ms"] and e["ts_ms"] > 1_600_000_000_000
        assert e["context"]["viewport_w_px"] == 1280 and e["context"]["timezone"]
        assert e["page"]["item_id"] == "laptop-aurora-14"
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(1, len(seqs) + 1)), "an event is missing or duplicated (seq not 1..n)"
    hovers = {e["props"]["element_role"] for e in events if e["type"] == "hover"}
    assert {"spec", "product_card"} <= hovers
    clicks = [e["props"] for e in events if e["type"] == "click"]
    assert any(c["element_role"] == "compare_button" for c in clicks)
    assert max(e["props"]["scroll_depth_pct"] for e in events if e["type"] == "scroll") >= 70
    assert all(secret not in r.value.decode() for r in records)
