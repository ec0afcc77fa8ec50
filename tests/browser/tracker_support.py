"""The demo page with an official tracker instead of our SDK, served by the real collector app.

``tracker_app(settings, recorder)`` is the collector (``collector.app.create_app``: the tracker
endpoints of ``collector/trackers.py``) plus:

- ``GET /tracker-demo/{tracker}/``: ``web/demo/index.html`` with our SDK's script replaced by the
  tracker's official bundle from ``web/node_modules`` and ``tests/browser/tracker_page.js``;
- ``/demo/`` static files (the page's CSS), ``/vendor/`` = ``web/node_modules`` (the tracker bundles);
- with a :class:`Recorder`, a middleware that keeps every request to a tracker endpoint as sent
  (method, path, query, content type, body base64) so tests can save them as fixtures.
"""
from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.app import create_app
from collector.trackers import BODY_KEY

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
PAGE_JS = Path(__file__).resolve().parent / "tracker_page.js"

#: tracker -> its official browser bundle inside web/node_modules (the npm packages of web/package.json)
BUNDLES = {
    "snowplow": "@snowplow/browser-tracker/dist/index.umd.min.js",
    "segment": "@segment/analytics-next/dist/umd/index.js",
    "rrweb": "rrweb/dist/rrweb.umd.min.cjs",
    "posthog": "posthog-js/dist/array.full.js",
}
TRACKERS = tuple(BUNDLES)
_TRACKER_PREFIXES = ("/com.snowplowanalytics", "/i", "/v1/", "/s/", "/e/", "/flags", "/decide", "/batch/")


def bundle_missing_reason() -> str | None:
    """Why the tracker pages cannot be served (a bundle missing: ``npm ci`` in web/), or None."""
    for name, rel in BUNDLES.items():
        if not (WEB / "node_modules" / rel).exists():
            return f"{name} bundle {rel} missing: run `npm ci` in web/"
    return None


class Recorder:
    """Requests to tracker endpoints as sent: ``[{"method", "path", "query", "content_type",
    "headers", "body_b64", "status"}]`` (thread-safe)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if request.method == "OPTIONS" or not request.path.startswith(_TRACKER_PREFIXES) or request.path.startswith("/v1/decision"):
            return await handler(request)
        resp = await handler(request)
        body = request.get(BODY_KEY) or b""
        entry = {"method": request.method, "path": request.path, "query": request.query_string,
                 "content_type": request.headers.get("Content-Type", ""),
                 "headers": {k: v for k, v in request.headers.items()
                             if k.lower() in ("content-encoding", "authorization", "user-agent")},
                 "body_b64": base64.b64encode(body).decode(), "status": resp.status}
        with self._lock:
            self.requests.append(entry)
        return resp

    def of(self, path_prefix: str, method: str = "POST") -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].startswith(path_prefix) and r["method"] == method]


def tracker_page_html(tracker: str) -> str:
    """The demo page's HTML with ``tracker``'s bundle and tracker_page.js instead of our SDK."""
    html = (WEB / "demo" / "index.html").read_text()
    sdk_script = '<script type="module" src="/demo/demo.js"></script>'
    assert sdk_script in html, "web/demo/index.html changed: update tests/browser/tracker_support.py"
    scripts = (f'<script src="/vendor/{BUNDLES[tracker]}"></script>\n'
               f'  <script src="/tracker-demo/page.js"></script>')
    html = html.replace(sdk_script, scripts)
    return html.replace("<html lang=\"en\">", f'<html lang="en" data-tracker="{tracker}">')


def tracker_app(settings, recorder: Recorder | None = None) -> web.Application:
    """The collector app with the tracker demo pages (see module docstring)."""
    app = create_app(settings)
    if recorder is not None:
        app.middlewares.append(recorder.middleware)

    async def page(request: web.Request) -> web.Response:
        tracker = request.match_info["tracker"]
        if tracker not in BUNDLES:
            raise web.HTTPNotFound()
        return web.Response(text=tracker_page_html(tracker), content_type="text/html")

    async def page_js(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE_JS, headers={"Content-Type": "text/javascript"})

    app.router.add_get("/tracker-demo/page.js", page_js)
    app.router.add_get("/tracker-demo/{tracker}/", page)
    app.router.add_static("/vendor/", WEB / "node_modules", append_version=False)
    if not any(getattr(r, "canonical", None) == "/demo" for r in app.router.resources()):
        app.router.add_static("/demo/", WEB / "demo", append_version=False)
    return app


#: A person's browser (not HeadlessChrome): posthog-js drops events of headless user agents, and the
#: collector flags them as bots (tests/browser/test_e2e_personalization.py uses the same).
VISITOR_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")
#: How long the visitor rests on the "16GB RAM" spec line, ms (the article's scenario: 3 s).
SPEC_HOVER_MS = 3000
#: the visitor's pause at the deepest scroll before moving to "16GB RAM", ms. rrweb samples scroll at
#: most every 150 ms (``sampling.scroll`` in tracker_page.js) and its trailing sample reads the position
#: when it fires: without the pause, the hover's scroll-into-view can come first and the deepest position
#: is never recorded (CI, 2026-12-05: 67.5 % recorded of 77.8 % reached).
DEEPEST_SCROLL_PAUSE_MS = 500


def article_visitor(browser, base_url: str, tracker: str, query: str = "") -> None:
    """The source article's laptop visitor on the tracker's demo page: scrolls past 70 %, rests on
    "16GB RAM" for :data:`SPEC_HOVER_MS`, clicks Compare. Returns when the page's tracker is loaded and
    the steps are done (what the tracker still buffers is sent later)."""
    browser.call("goto", url=f"{base_url}/tracker-demo/{tracker}/{query}")
    browser.call("wait_for", expr="window.trackerDemo && window.trackerDemo.ready", timeout_ms=20000)
    browser.call("wheel_to_pct", pct=75)
    browser.call("sleep", ms=DEEPEST_SCROLL_PAUSE_MS)
    browser.call("hover", selector="#spec-ram")
    browser.call("sleep", ms=SPEC_HOVER_MS)
    browser.call("click", selector="#compare")
    if tracker == "rrweb":
        browser.eval("window.trackerDemo.flush()")
