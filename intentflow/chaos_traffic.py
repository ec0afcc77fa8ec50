"""The traffic of ``intentflow chaos``: simulated browser tabs (one session each) that capture events at a
steady rate and post them through the collector like the SDK (flush every 100 ms, at most 25 events per
request, a failed request retried with the same events after 0.5 s doubling up to 30 s)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from udfs.limits import SDK_FLUSH_INTERVAL_MS, SDK_RETRY_FIRST_DELAY_MS, SDK_RETRY_MAX_DELAY_MS

#: Events per request at most (the SDK's DEFAULT_MAX_BATCH_EVENTS).
BATCH_EVENTS = 25
PAGE = {"url": "https://shop.example/p/laptop-pro-14", "item_id": "laptop-pro-14",
        "content_ids": ["laptop-pro-14:specs"]}
CONTEXT = {"viewport_w_px": 1440, "viewport_h_px": 900,
           "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
                         "Safari/537.36"}
#: What a tab does, in a loop: the article visitor's steps (udfs.scenarios.article_session).
STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("page_view", {"title": "Laptop Pro 14"}),
    ("scroll", {"scroll_depth_pct": 35.0, "offset_px": 900, "document_height_px": 3600}),
    ("scroll", {"scroll_depth_pct": 75.0, "offset_px": 2100, "document_height_px": 3600}),
    ("hover", {"element_id": "spec-ram-16gb", "element_role": "spec", "hover_ms": 3000}),
    ("hover", {"element_id": "product-card", "element_role": "product_card", "hover_ms": 2400}),
    ("click", {"element_id": "compare", "element_role": "compare_button", "x_px": 900, "y_px": 640}),
)


@dataclass
class TabStats:
    """What the collector answered, per session."""

    accepted: dict[str, set[str]] = field(default_factory=dict)
    rejected: int = 0
    non_200: int = 0


class Tab:
    """One browser tab (one session) sending like the SDK; see the module docstring."""

    def __init__(self, http, url: str, session_id: str, rate_per_s: float, stats: TabStats,
                 poison_every: int = 0) -> None:
        self.http, self.url, self.session_id, self.rate_per_s = http, url, session_id, rate_per_s
        self.stats, self.poison_every = stats, poison_every
        self.queue: list[dict] = []
        self.seq = 0

    def _capture(self, ts_ms: int) -> None:
        kind, props = STEPS[self.seq % len(STEPS)]
        self.queue.append({"event_id": str(uuid.uuid4()), "type": kind, "session_id": self.session_id,
                           "anonymous_id": "anon-" + self.session_id, "client_ts_ms": ts_ms, "seq": self.seq,
                           "page": PAGE, "context": CONTEXT, "props": props})
        self.seq += 1
        if self.poison_every and self.seq % self.poison_every == 0:  # malformed: the collector's DLQ
            self.queue.append({"event_id": str(uuid.uuid4()), "type": "scroll", "session_id": self.session_id,
                               "client_ts_ms": "not a time", "props": {"scroll_depth_pct": "deep"}})

    async def _post(self, batch: list[dict]) -> bool:
        import aiohttp

        try:
            async with self.http.post(self.url, json={"sent_at_ms": int(time.time() * 1000), "events": batch},
                                      timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status != 200:
                    self.stats.non_200 += 1
                    return False
                body = await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.stats.non_200 += 1
            return False
        ids = self.stats.accepted.setdefault(self.session_id, set())
        for result in body["results"]:
            if result["status"] in ("accepted", "duplicate"):
                ids.add(result["event_id"])
            else:
                self.stats.rejected += 1
        return True

    async def run(self, capturing: asyncio.Event, drain_deadline_s: Callable[[], float]) -> None:
        """Capture while ``capturing`` is set, send until the queue is empty (or the drain deadline)."""
        loop = asyncio.get_running_loop()
        next_capture = loop.time()
        next_send = loop.time()
        delay_s = 0.0
        while capturing.is_set() or (self.queue and loop.time() < drain_deadline_s()):
            now = loop.time()
            while capturing.is_set() and now >= next_capture:
                self._capture(int(time.time() * 1000 - (now - next_capture) * 1000))
                next_capture += 1.0 / self.rate_per_s
            if self.queue and now >= next_send:
                batch = self.queue[:BATCH_EVENTS]
                if await self._post(batch):
                    del self.queue[:len(batch)]
                    delay_s = 0.0
                    next_send = loop.time() + SDK_FLUSH_INTERVAL_MS / 1000
                else:  # same events again later: the SDK's capped exponential backoff
                    delay_s = min(SDK_RETRY_MAX_DELAY_MS / 1000, delay_s * 2 if delay_s else SDK_RETRY_FIRST_DELAY_MS / 1000)
                    next_send = loop.time() + delay_s
                continue
            await asyncio.sleep(0.02)
