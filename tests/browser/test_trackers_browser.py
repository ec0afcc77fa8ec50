"""The official trackers (Snowplow, Segment, rrweb, PostHog; web/node_modules) in Debian's headless
Chromium on the demo page, pointed at the real collector -> Kafka (-> the personalization job -> Redis).

1. ``test_tracker_signals_reach_signals_raw``: the article's laptop visitor (scroll past 70 %, 3 s on
   "16GB RAM", Compare) tracked by each tracker instead of our SDK; what lands in ``signals.raw`` is
   contract-valid, carries the tracker's ``source``, and has exactly the signals the README table says
   the tracker can carry (rrweb and PostHog: no hover; PostHog: no scroll depth, its recorded scrolls
   in ``signals.dlq`` with the reason).
2. ``test_trackers_reach_actions_through_the_job``: the same through the job: Snowplow and Segment
   visitors get the article's action (video demo and price comparison); rrweb and PostHog, which cannot
   carry hover, cannot get it: a quick leaver tracked by them gets the simplified page instead. The
   actions each session got are written to ``artifacts/trackers_e2e.json``.
"""
from __future__ import annotations

import contextlib
import json
import uuid

import orjson
import pytest

from support import ARTIFACTS, Browser, ServerThread, browser_missing_reason
from tests.job_support import read_records, wait_for
from tracker_support import TRACKERS, VISITOR_UA, article_visitor, bundle_missing_reason, tracker_app
from udfs.contract import parse_event

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DEEP_SCROLL_PCT, DEEP_HOVER_MS = 70, 2000  # rules/default.v1.json, deep_engagement_product
#: what reaches signals.raw from the article visitor, per tracker (the README table says why)
CARRIES = {
    "snowplow": {"scroll", "hover", "click"},
    "segment": {"scroll", "hover", "click"},
    "rrweb": {"scroll", "click", "mouse_trajectory"},
    "posthog": {"click", "mouse_trajectory"},
}
#: how long a tracker may take to send what it buffers (posthog-js flushes every few seconds), s
SEND_TIMEOUT_S = 30


def _skip_reason() -> str | None:
    return browser_missing_reason() or bundle_missing_reason()


def _settings(stack, topics, origin: str):
    from collector.settings import collector_settings

    return collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
                              rate_limit_per_s=0, mount_decision=False, cors_origins=(origin,))


def _events(stack, topics, source: str) -> list[dict]:
    return [e for e in (parse_event(r.value) for r in read_records(stack.kafka_bootstrap, topics.raw))
            if e["source"] == source]


def _has_compare_click(events: list[dict]) -> bool:
    return any(e["type"] == "click" and e["props"]["element_role"] == "compare_button" for e in events)


@contextlib.contextmanager
def _page_server(stack, topics, browser, extra=None):
    srv = ServerThread(lambda: (extra or (lambda a: a))(tracker_app(_settings(stack, topics, srv.base_url))), browser)
    with srv:
        yield srv


@pytest.mark.parametrize("tracker", TRACKERS)
def test_tracker_signals_reach_signals_raw(stack, topics, tracker):
    reason = _skip_reason()
    if reason:
        from tests.conftest import skip_unless_ci
        skip_unless_ci(reason)
    with Browser(user_agent=VISITOR_UA, as_visitor=True) as browser:
        with _page_server(stack, topics, browser) as srv:
            article_visitor(browser, srv.base_url, tracker)
            events = wait_for(lambda: (lambda ev: ev if _has_compare_click(ev) else None)(
                _events(stack, topics, tracker)), SEND_TIMEOUT_S, f"{tracker}'s Compare click in signals.raw")
            errors = browser.call("page_errors")
            browser.call("goto", url="about:blank")
    assert errors == []
    assert len({e["session_id"] for e in events}) == 1 and all(not e["context"]["is_bot"] for e in events)
    kinds = {e["type"] for e in events}
    assert CARRIES[tracker] <= kinds
    for cannot in {"scroll", "hover"} - CARRIES[tracker]:
        assert cannot not in kinds
    max_scroll = max((e["props"]["scroll_depth_pct"] for e in events if e["type"] == "scroll"), default=0)
    spec_hover = max((e["props"]["hover_ms"] for e in events if e["type"] == "hover"
                      and e["props"]["element_role"] == "spec"), default=0)
    if "scroll" in CARRIES[tracker]:
        assert max_scroll > DEEP_SCROLL_PCT
    if "hover" in CARRIES[tracker]:
        assert spec_hover > DEEP_HOVER_MS
    else:
        assert spec_hover == 0  # the signal this tracker cannot carry
    if tracker == "posthog":  # the recording's scrolls: offsets without a document height -> DLQ, reasoned
        dlq = [orjson.loads(r.value) for r in read_records(stack.kafka_bootstrap, topics.dlq)]
        assert dlq and {d["reason"] for d in dlq} == {"scroll_depth_not_a_number"}


def _action_of(client, redis_prefix: str, session_id: str) -> list[str]:
    return [f["action"] for _, f in client.xrange(redis_prefix + "actions") if f.get("session_id") == session_id]


@pytest.mark.flink
def test_trackers_reach_actions_through_the_job(stack, topics, redis_client):
    reason = _skip_reason()
    if reason:
        from tests.conftest import skip_unless_ci
        skip_unless_ci(reason)
    from tests.e2e_support import start_job

    client, key_prefix = redis_client
    redis_prefix = key_prefix + "if:"
    outcomes: dict[str, tuple[str, list[str]]] = {}
    job = start_job(topics, redis_prefix)
    try:
        for tracker in TRACKERS:
            deep = tracker in ("snowplow", "segment")
            with Browser(user_agent=VISITOR_UA, as_visitor=True, viewport_h_px=800 if deep else 560) as browser:
                with _page_server(stack, topics, browser) as srv:
                    if deep:
                        article_visitor(browser, srv.base_url, tracker)
                        expected = "show_video_demo_and_price_comparison"
                    else:  # a quick leaver: looks for 10.5 s, moves the pointer, leaves; no scroll, no hover
                        browser.call("goto", url=f"{srv.base_url}/tracker-demo/{tracker}/?v={uuid.uuid4().hex[:6]}")
                        browser.call("wait_for", expr="window.trackerDemo && window.trackerDemo.ready",
                                     timeout_ms=20000)
                        browser.call("sleep", ms=10500)
                        browser.call("hover", selector="#compare")
                        browser.call("click", selector="#compare")
                        if tracker == "rrweb":
                            browser.eval("window.trackerDemo.flush()")
                        expected = "simplify_layout"
                    events = wait_for(lambda: (lambda ev: ev if _has_compare_click(ev) else None)(
                        _events(stack, topics, tracker)), SEND_TIMEOUT_S, f"{tracker}'s events in signals.raw", job)
                    session_id = events[0]["session_id"]
                    actions = wait_for(lambda: (lambda a: a if expected in a else None)(
                        _action_of(client, redis_prefix, session_id)), 60, f"{tracker}: {expected}", job)
                    browser.call("goto", url="about:blank")
            outcomes[tracker] = (session_id, actions)
    finally:
        job.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "trackers_e2e.json").write_text(json.dumps(
        {t: {"session_id": s, "actions": a} for t, (s, a) in outcomes.items()}, indent=2))
    for tracker in ("rrweb", "posthog"):  # without hover, never the article's action
        assert "show_video_demo_and_price_comparison" not in outcomes[tracker][1]
