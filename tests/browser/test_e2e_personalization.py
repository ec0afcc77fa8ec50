"""End to end: a scripted visitor in headless Chromium -> collector -> Kafka -> personalization job ->
Redis -> decision API -> the demo page re-renders.

Needs ``tests/e2e_support.py::start_job(topics, redis_prefix)`` from the job (issue 4): it starts the
personalization job reading ``topics.raw`` (from the earliest offset or from now) and writing Redis keys
under ``redis_prefix`` (docs/contracts.md §5), returns once the job consumes, and stops it on exit — a
context manager, or an object with ``stop()``.

Checks that the page update follows the visitor's last signal (page clock) and saves screenshots in
``artifacts/``. How fast is measured by ``bench/e2e_latency_bench.py`` (``bench/results/e2e_latency.json``),
never asserted here.
"""
from __future__ import annotations

import contextlib
import json

import pytest
from aiohttp import web

from collector.decision import DecisionSettings, register
from support import ARTIFACTS, Browser, ServerThread, browser_missing_reason

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.flink]

#: The visitor presents a desktop Chrome user agent and no ``navigator.webdriver``: headless Chromium's
#: own UA ("HeadlessChrome") and automation flag are flagged as a bot by the collector, and the noise
#: filter keeps bot events out of the features (udfs/noise.py ``drop_bot_events``), so an automated
#: visitor is never personalized (``test_automated_browser_is_not_personalized``).
#: The quick leaver's window height: the demo page is about 3,500 px tall, so it starts at ~16 %
#: scroll depth, below every variant of the adaptive shallow-engagement threshold (20/25/30 %,
#: rules/default.v1.json); a 800 px window starts at ~23 %, which the "lower" variant (20 %) rejects.
SHALLOW_VIEWPORT_H_PX = 560

VISITOR_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")


@contextlib.contextmanager
def _job(topics, redis_prefix: str):
    from tests.e2e_support import start_job

    job = start_job(topics, redis_prefix)
    if hasattr(job, "__enter__"):
        with job as running:
            yield running
    else:
        try:
            yield job
        finally:
            job.stop()


def _wait_page(browser, client, redis_prefix: str, expr: str, timeout_ms: int = 30000) -> None:
    """Wait for ``expr`` on the page; on failure, say what the job wrote to Redis."""
    try:
        browser.call("wait_for", timeout_ms=timeout_ms, expr=expr)
    except AssertionError as exc:
        sessions = {k: client.hgetall(k) for k in client.scan_iter(match=redis_prefix + "session:*")}
        actions = [f for _, f in client.xrange(redis_prefix + "actions")]
        raise AssertionError(f"{exc}\nsessions in Redis: {json.dumps(sessions, indent=1)}\n"
                             f"actions: {json.dumps(actions, indent=1)}") from None


def test_visitor_gets_video_demo_and_price_comparison_and_a_quick_leaver_gets_the_simple_page(stack, topics,
                                                                                                redis_client):
    reason = browser_missing_reason()
    if reason:
        from tests.conftest import skip_unless_ci
        skip_unless_ci(reason)
    from collector import app as collector_app
    from collector.settings import collector_settings

    _redis, key_prefix = redis_client
    redis_prefix = key_prefix + "if:"
    settings = collector_settings(
        kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
        mount_decision=False, cors_origins=("*",))

    def make() -> web.Application:
        app = collector_app.create_app(settings)
        register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=redis_prefix))
        return app

    with _job(topics, redis_prefix), ServerThread(make) as srv:
        # 1) deep engagement: scroll past 70 %, hover 3 s on the product card, click Compare
        with Browser(user_agent=VISITOR_UA, as_visitor=True) as browser:
            browser.call("goto", url=srv.base_url + "/demo/?poll_ms=50")
            browser.screenshot("e2e_before.png")
            browser.call("wheel_to_pct", pct=75)
            browser.call("hover", selector="#product-card")
            browser.call("sleep", ms=3000)
            browser.call("click", selector="#compare")
            last_signal_ms = browser.eval("window.intentflowDemo.tracker.lastCapturedTsMs")
            _wait_page(browser, _redis, redis_prefix, "!document.getElementById('video-demo').hidden"
                       " && !document.getElementById('price-comparison').hidden")
            applied = browser.eval("window.intentflowDemo.applied")
            browser.screenshot("e2e_after.png")
            browser.call("goto", url="about:blank")
        shown = next(a for a in applied if a["action"] == "show_video_demo_and_price_comparison")
        signal_to_page_ms = shown["applied_at_ms"] - last_signal_ms
        assert shown["source"] == "redis" and shown["rule_id"] == "deep_engagement_product"

        # 2) a visitor who leaves quickly (no scroll, no hover; hides the tab after the rules' 10 s)
        #    gets the simplified content when coming back (fresh browser profile: a new session)
        with Browser(user_agent=VISITOR_UA, as_visitor=True, viewport_h_px=SHALLOW_VIEWPORT_H_PX) as browser:
            browser.call("goto", url=srv.base_url + "/demo/?poll_ms=50")
            browser.call("sleep", ms=10500)
            browser.call("set_visibility", state="hidden")
            browser.call("sleep", ms=500)
            browser.call("set_visibility", state="visible")
            _wait_page(browser, _redis, redis_prefix, "document.body.classList.contains('layout-simple')")
            browser.screenshot("e2e_simplified.png")
            browser.call("goto", url="about:blank")

    # causality, not speed: the page changed after (because of) the last signal
    assert signal_to_page_ms > 0, signal_to_page_ms
    assert ARTIFACTS.is_dir()
