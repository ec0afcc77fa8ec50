"""Serve a collector application for real on a free port, from a background thread with its own loop.

The same way ``intentflow collector`` serves it (``aiohttp.web.AppRunner`` + ``TCPSite`` with
``collector.access_log.PrefixAccessLogger``), so tests that speak plain HTTP to it (schemathesis,
``requests``) exercise the live server, access log included.
"""
from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from collector.access_log import PrefixAccessLogger
from intentflow.services.own_broker import free_port

#: Longest wait for the server to come up or shut down, s.
START_STOP_TIMEOUT_S = 30


class LiveCollector:
    """Context manager: ``with LiveCollector(app) as live: requests.get(live.url + "/healthz")``."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="live-collector", daemon=True)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._runner = web.AppRunner(self.app, access_log_class=PrefixAccessLogger)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def __enter__(self) -> LiveCollector:
        self._thread.start()
        if not self._ready.wait(START_STOP_TIMEOUT_S):
            raise TimeoutError("collector did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_STOP_TIMEOUT_S)
