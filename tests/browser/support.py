"""Helpers of the browser tests: a local HTTP server in a thread, a capture collector, the node driver.

The browser itself is Debian's Chromium (``/usr/bin/chromium``) driven by ``playwright-core`` from
``web/node_modules`` (``npm ci`` in ``web/``); Python's ``playwright`` package is not used because it
downloads its own browser.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DRIVER = Path(__file__).resolve().parent / "driver.mjs"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("INTENTFLOW_CHROMIUM", "/usr/bin/chromium")


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} missing: apt-get install -y chromium"
    if shutil.which("node") is None:
        return "node missing"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "playwright-core missing: run `npm ci` in web/"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Run an aiohttp application on 127.0.0.1:<free port> in a background thread's event loop."""

    def __init__(self, make_app: Callable[[], web.Application], browser: "Browser | None" = None):
        self._make_app = make_app
        self._browser = browser  # sent to about:blank before the server stops (no stray page requests)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - surfaced in __enter__
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    async def _start(self) -> None:
        app = self._make_app()
        if asyncio.iscoroutine(app):
            app = await app
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._browser is not None:
            try:
                self._browser.call("goto", url="about:blank")
            except Exception:  # noqa: BLE001 - the test's own error matters more
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


class CaptureCollector:
    """A stand-in ``POST /v1/events`` that records every request body (for SDK-behaviour tests
    that do not need Kafka). ``fail_first`` answers that many requests with 503."""

    def __init__(self, fail_first: int = 0):
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        with self._lock:
            n = len(self.requests)
            entry = {"bytes": len(raw), "content_type": request.headers.get("Content-Type", ""),
                     "status": 503 if n < self.fail_first else 202, "body": None}
            try:
                entry["body"] = json.loads(raw)
            except ValueError:
                entry["status"] = 400
            self.requests.append(entry)
        return web.json_response({"status": entry["status"]}, status=entry["status"])

    def events(self, accepted_only: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            out = []
            for r in self.requests:
                if accepted_only and r["status"] != 202:
                    continue
                body = r["body"] or {}
                out.extend(body.get("events", []))
            return out


class Browser:
    """Headless Debian Chromium behind ``driver.mjs``; ``call(cmd, **args)`` returns the command's value.

    Use as a context manager. ``call`` raises ``AssertionError`` with the driver's message when a
    command fails, and ``TimeoutError`` when the driver does not answer within ``timeout_s``.
    """

    def __init__(self, *, viewport_w_px: int = 1280, viewport_h_px: int = 800, user_agent: str | None = None,
                 as_visitor: bool = False, timeout_s: float = 45.0):
        self.timeout_s = timeout_s
        opts = {"chromium": CHROMIUM, "viewport_w_px": viewport_w_px, "viewport_h_px": viewport_h_px,
                "user_agent": user_agent, "as_visitor": as_visitor}
        self._proc = subprocess.Popen(["node", str(DRIVER), json.dumps(opts)], cwd=WEB, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._answer("start")

    def _answer(self, what: str) -> Any:
        box: dict[str, Any] = {}

        def read() -> None:
            box["line"] = self._proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(self.timeout_s)
        if t.is_alive():
            self._proc.kill()
            raise TimeoutError(f"browser driver did not answer {what} within {self.timeout_s} s")
        line = box.get("line", "")
        if not line:
            self._proc.wait(5)
            raise AssertionError(f"browser driver ended during {what}:\n{self._proc.stderr.read()}")
        msg = json.loads(line)
        if not msg.get("ok"):
            raise AssertionError(f"browser command {what} failed: {msg.get('error')}")
        return msg.get("value")

    def call(self, cmd: str, **args: Any) -> Any:
        self._proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self._proc.stdin.flush()
        return self._answer(cmd)

    def eval(self, expr: str) -> Any:
        return self.call("eval", expr=expr)

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.call("screenshot", path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(json.dumps({"cmd": "close"}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(15)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
