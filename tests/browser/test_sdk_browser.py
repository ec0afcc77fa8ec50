"""The capture SDK in a real browser (headless Debian Chromium): events, hidden tabs, the beacon limit,
short and growing pages. Run: ``.venv/bin/pytest -m browser tests/browser``.
"""
from __future__ import annotations

import json
import time

import pytest
from aiohttp import web

from collector.decision import DecisionSettings, register
from support import CaptureCollector, ServerThread

pytestmark = pytest.mark.browser

BEACON_LIMIT_BYTES = 64 * 1024

#: Script-tag build on a page shorter than the viewport.
SHORT_PAGE = """<!doctype html><html><head><link rel="icon" href="data:,"><title>short</title></head>
<body><p data-if-id="only" data-if-role="spec">A short page.</p>
<script src="/sdk/intentflow.iife.js" data-endpoint="/v1/events"></script></body></html>"""

#: A page that grows (infinite scroll): 3000 px now, more appended by the test.
GROWING_PAGE = """<!doctype html><html><head><link rel="icon" href="data:,"><title>growing</title>
<style>body{margin:0} .block{height:1000px;border-bottom:1px solid #ccc}</style></head>
<body><div id="feed"><div class="block"></div><div class="block"></div><div class="block"></div></div>
<script src="/sdk/intentflow.iife.js" data-endpoint="/v1/events"></script></body></html>"""


def _capture_app(capture: CaptureCollector, redis_url: str = "redis://127.0.0.1:1/0"):
    def make() -> web.Application:
        app = web.Application()
        register(app, DecisionSettings(redis_url=redis_url, redis_prefix="test-unused:"))
        app.router.add_post("/v1/events", capture.handle)
        async def short(_request: web.Request) -> web.Response:
            return web.Response(text=SHORT_PAGE, content_type="text/html")

        async def growing(_request: web.Request) -> web.Response:
            return web.Response(text=GROWING_PAGE, content_type="text/html")

        app.router.add_get("/test/short", short)
        app.router.add_get("/test/growing", growing)
        return app
    return make


def _wait(pred, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_hover_time_does_not_grow_while_the_tab_is_hidden(browser):
    capture = CaptureCollector()
    with ServerThread(_capture_app(capture), browser) as srv:
        # the page's clock is Playwright's fake clock, paused: only clock_run_for moves it, so the
        # hover time the SDK measures is exactly the visible time the test let pass
        browser.call("clock_install")
        browser.call("goto", url=srv.base_url + "/demo/")
        browser.call("clock_pause")
        browser.call("hover", selector="#spec-ram")
        browser.call("clock_run_for", ms=600)
        browser.call("set_visibility", state="hidden")
        hidden_start = browser.eval("window.intentflowDemo.tracker.activeHoverMs()['spec-ram-16gb']")
        browser.call("clock_run_for", ms=1500)
        hidden_end = browser.eval("window.intentflowDemo.tracker.activeHoverMs()['spec-ram-16gb']")
        browser.call("set_visibility", state="visible")
        browser.call("clock_run_for", ms=600)
        browser.call("mouse_move", x=5, y=5, steps=5)  # leave the spec: the hover event is sent
        browser.eval("window.intentflowDemo.tracker.flush()")
        sid = browser.eval("window.intentflowDemo.tracker.sessionId")
        hovers = _wait(lambda: [e for e in capture.events() if e["type"] == "hover"
                                and e["props"]["element_id"] == "spec-ram-16gb"], what="hover event")
    assert hidden_start == 600, hidden_start
    assert hidden_end == hidden_start, "hover time grew while the tab was hidden"
    total_hover_ms = sum(e["props"]["hover_ms"] for e in hovers)
    # visible hover: 600 + 600 ms of the page's clock; the 1500 ms hidden must not count
    assert total_hover_ms == 1200, total_hover_ms
    vis = [e["props"] for e in capture.events() if e["type"] == "visibility" and e["session_id"] == sid]
    assert [v["state"] for v in vis][:2] == ["hidden", "visible"]
    assert vis[1]["visible_ms"] == vis[0]["visible_ms"], "visible time grew while hidden"


def test_a_batch_over_the_beacon_limit_is_split_without_loss(browser):
    capture = CaptureCollector()
    n_events = 300  # ~600 bytes each: ~180 KB, about three beacon limits
    track_many = f"""(() => {{
        const t = window.intentflowDemo.tracker;
        t.options.maxBatchEvents = 1e9; t.options.flushIntervalMs = 600000; // one queue, split at flush
        const ids = [];
        for (let i = 0; i < {n_events}; i++) {{
          ids.push(t.track('form', {{ form_id: 'bulk-' + 'x'.repeat(500), field_id: 'f' + i, action: 'change' }}).event_id);
        }}
        return ids;
    }})()"""
    with ServerThread(_capture_app(capture), browser) as srv:
        browser.call("goto", url=srv.base_url + "/demo/")
        browser.eval("window.intentflowDemo.tracker.flush()")
        # 1) while visible: fetch(keepalive), one body after the other
        live_ids = browser.eval(track_many)
        browser.eval("window.intentflowDemo.tracker.flush()")
        _wait(lambda: set(live_ids) <= {e["event_id"] for e in capture.events()}, what="live events")
        # 2) page hidden: sendBeacon for every body at once. Chromium refuses the bodies beyond the
        #    shared 64 KiB in-flight quota; the fallback fetch(keepalive) is refused too on a real
        #    unload (same quota), which the page emulates by failing fetch. Refused bodies wait in the
        #    localStorage outbox and the next page of the site sends them.
        browser.call("sleep", ms=200)
        unload_ids = browser.eval(track_many)
        browser.eval("(() => { window.sends = []; const t = window.intentflowDemo.tracker;"
                     " t.options.onSend = (i) => sends.push(i.transport);"
                     " window.fetch = () => Promise.reject(new TypeError('keep-alive quota')); })()")
        browser.call("set_visibility", state="hidden")
        browser.call("sleep", ms=200)
        transports = browser.eval("window.sends")
        outbox_n = browser.eval("JSON.parse(localStorage.getItem('intentflow:outbox') || '[]').length")
        browser.call("goto", url=srv.base_url + "/demo/")
        _wait(lambda: set(unload_ids) <= {e["event_id"] for e in capture.events()}, what="events of the hidden page")
        resent = browser.eval("window.intentflowDemo.tracker.stats.resent_from_outbox")
        assert browser.eval("localStorage.getItem('intentflow:outbox')") is None
    sizes = [r["bytes"] for r in capture.requests]
    assert max(sizes) <= BEACON_LIMIT_BYTES, sizes
    assert sum(1 for s in sizes if s > BEACON_LIMIT_BYTES / 2) >= 4, f"expected several near-full bodies: {sizes}"
    received = [e["event_id"] for e in capture.events()]
    for ids in (live_ids, unload_ids):
        assert set(ids) <= set(received), f"lost {len(set(ids) - set(received))} events"
    live_counts = {i: received.count(i) for i in live_ids}
    assert max(live_counts.values()) == 1, "the live path sent an event twice"
    # several bodies were handed to sendBeacon at once and the ones beyond the quota were refused
    # (whether the first is accepted depends on whether the live part's last keep-alive request has
    # released its quota yet)
    assert len(transports) >= 3 and "beacon_refused" in transports, transports
    assert outbox_n > 0 and resent == outbox_n, (outbox_n, resent)
    assert all(r["content_type"].startswith("text/plain") for r in capture.requests)


def test_scroll_depth_on_a_short_page_and_a_growing_page(browser):
    capture = CaptureCollector()
    with ServerThread(_capture_app(capture), browser) as srv:
        browser.call("goto", url=srv.base_url + "/test/short")
        browser.eval("IntentFlow.tracker.flush()")
        short_sid = browser.eval("IntentFlow.tracker.sessionId")
        short = _wait(lambda: [e["props"] for e in capture.events() if e["type"] == "scroll"
                               and e["session_id"] == short_sid], what="short-page scroll")
        browser.call("goto", url=srv.base_url + "/test/growing")
        browser.call("wheel_to_pct", pct=100)
        browser.call("sleep", ms=200)
        browser.eval("(() => { const f = document.getElementById('feed');"
                     " for (let i = 0; i < 3; i++) { const d = document.createElement('div'); d.className = 'block';"
                     " f.appendChild(d); } })()")
        browser.call("sleep", ms=200)
        browser.call("wheel_to_pct", pct=80)
        browser.call("sleep", ms=300)
        browser.eval("IntentFlow.tracker.flush()")
        grow_sid = browser.eval("IntentFlow.tracker.sessionId")
        grow = _wait(lambda: [e["props"] for e in capture.events() if e["type"] == "scroll"
                              and e["session_id"] == grow_sid and e["props"]["document_height_px"] > 5000],
                     what="scroll after growth")
        grow = [e["props"] for e in capture.events() if e["type"] == "scroll" and e["session_id"] == grow_sid]
    assert short[0]["scroll_depth_pct"] == 100 and short[0]["offset_px"] == 0, short
    before = [g for g in grow if g["document_height_px"] < 3100]
    after = [g for g in grow if g["document_height_px"] > 5000]
    assert max(g["scroll_depth_pct"] for g in before) == 100, before
    assert after and 75 <= max(g["scroll_depth_pct"] for g in after) < 100, after
    assert max(g["offset_px"] for g in after) > max(g["offset_px"] for g in before)
    for g in grow:
        assert 0 <= g["scroll_depth_pct"] <= 100


def test_form_interactions_never_carry_the_typed_value(browser):
    capture = CaptureCollector()
    secret = "visitor.secret@example.com"
    with ServerThread(_capture_app(capture), browser) as srv:
        browser.call("goto", url=srv.base_url + "/demo/")
        browser.call("click", selector="#alert-email")
        browser.eval(f"(() => {{ const el = document.getElementById('alert-email'); el.value = {json.dumps(secret)};"
                     " el.dispatchEvent(new Event('change', {bubbles: true})); })()")
        browser.eval("document.getElementById('alert-email').blur()")
        browser.call("goto", url=srv.base_url + "/demo/")  # pagehide: the form is abandoned
        browser.eval("window.intentflowDemo.tracker.flush()")
        forms = _wait(lambda: [e["props"] for e in capture.events() if e["type"] == "form"
                               and e["props"]["action"] == "abandon"], what="abandon")
        # at-least-once: a request cancelled by the navigation may arrive and be sent again from the
        # outbox; the copy has the same event_id (the collector and the job drop it)
        unique = {e["event_id"]: e for e in capture.events()}
        form_events = sorted((e for e in unique.values() if e["type"] == "form"), key=lambda e: e["seq"])
        forms = [e["props"] for e in form_events]
        forms_sid = form_events[0]["session_id"]
        form_events = [{k: e[k] for k in ("seq", "client_ts_ms", "props")} for e in form_events]
    assert [f["action"] for f in forms] == ["focus", "change", "blur", "abandon"], json.dumps(form_events)
    # the second load of the page continues the session (same tab): count the first page's events only
    second_view_seq = sorted(e["seq"] for e in capture.events() if e["type"] == "page_view"
                             and e["session_id"] == forms_sid)[1]
    hidden = [e for e in unique.values() if e["type"] == "visibility" and e["session_id"] == forms_sid
              and e["props"]["state"] == "hidden" and e["seq"] < second_view_seq]
    assert len(hidden) == 1, "pagehide and visibilitychange must give one `hidden` event, not two"
    assert all(f["form_id"] == "price-alert-form" and f["field_id"] == "alert-email" for f in forms)
    raw = json.dumps([r["body"] for r in capture.requests])
    assert secret not in raw and "secret" not in raw
