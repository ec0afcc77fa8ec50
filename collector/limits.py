"""What a request to the collector may send: its write key and ``Origin``, its rate (a token bucket per
client address), its body size and event depth, and which event ids were already acknowledged (duplicates).

Used by ``POST /v1/events`` (``collector/app.py``) and the tracker endpoints (``collector/trackers.py``).
"""
from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from typing import Any, Callable

import orjson
from aiohttp import web

from collector.settings import DEFAULT_SOURCE, CollectorSettings
from udfs.limits import EVENT_MAX_DEPTH, json_depth


def request_source(request: web.Request, settings: CollectorSettings) -> str | None:
    """The source a request's write key belongs to, or None when keys are required and it has none.

    The key comes from header ``X-Write-Key`` or query ``write_key`` (``sendBeacon`` cannot set
    headers). Without any configured key every request is source :data:`DEFAULT_SOURCE`.
    """
    if settings.write_key is None and not settings.write_keys:
        return DEFAULT_SOURCE
    given = request.headers.get("X-Write-Key") or request.query.get("write_key")
    if given is None:
        return None
    for source, key in settings.write_keys.items():
        if hmac.compare_digest(given.encode(), key.encode()):
            return source
    if settings.write_key is not None and hmac.compare_digest(given.encode(), settings.write_key.encode()):
        return DEFAULT_SOURCE
    return None


def origin_allowed(origin: str | None, settings: CollectorSettings) -> bool:
    """True when ``origin`` is absent (servers, replay), allowed by ``*`` or listed in ``cors_origins``."""
    return origin is None or "*" in settings.cors_origins or origin in settings.cors_origins


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The (decompressed) body, or None when it exceeds ``limit`` bytes (read at most limit+1)."""
    if request.content_length is not None and request.content_length > limit and not request.headers.get(
        "Content-Encoding"
    ):
        return None
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class TokenBuckets:
    """One token bucket per client key; the least recently used keys are forgotten past ``max_keys``."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000,
                 clock_s: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        #: monotonic clock in s (injectable for tests)
        self.clock_s = clock_s
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now_s: float | None = None) -> float:
        """Take one token; return 0.0 when allowed, else the seconds until a token is available."""
        now_s = self.clock_s() if now_s is None else now_s
        tokens, last = self._buckets.pop(key, (float(self.burst), now_s))
        tokens = min(float(self.burst), tokens + (now_s - last) * self.rate_per_s)
        wait_s = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait_s = (1.0 - tokens) / self.rate_per_s if self.rate_per_s > 0 else float("inf")
        self._buckets[key] = (tokens, now_s)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait_s


class SeenIds:
    """Bounded LRU set of event ids the broker acknowledged."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add_all(self, ids: list[str]) -> None:
        for i in ids:
            self._ids[i] = None
            self._ids.move_to_end(i)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


def event_payload(item: Any) -> bytes:
    """JSON bytes of one event as sent, for its size check and its DLQ record.

    Containers nested deeper than ``udfs.limits.EVENT_MAX_DEPTH`` are replaced by ``"..."`` (such an
    event is rejected anyway, and serializers have recursion limits); items orjson refuses (lone
    surrogates, NaN from the lenient parser) go through :func:`dumps_dlq_safe`.
    """
    if json_depth(item, EVENT_MAX_DEPTH) > EVENT_MAX_DEPTH:
        item = _cut_depth(item, EVENT_MAX_DEPTH)
    try:
        return orjson.dumps(item)
    except TypeError:
        return dumps_dlq_safe(item)


def _cut_depth(value: Any, levels: int) -> Any:
    if not isinstance(value, (dict, list)):
        return value
    if levels <= 0:
        return "..."
    if isinstance(value, dict):
        return {k: _cut_depth(v, levels - 1) for k, v in value.items()}
    return [_cut_depth(v, levels - 1) for v in value]


def dumps_dlq_safe(item: Any) -> bytes:
    """JSON bytes of an item orjson refuses (lone surrogates, NaN): via the stdlib, surrogates replaced."""
    import json

    return json.dumps(item, ensure_ascii=False, default=repr).encode("utf-8", "replace")
