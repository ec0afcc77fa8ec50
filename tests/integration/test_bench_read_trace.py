"""``bench.levels.read_trace`` against the real Redis: the window on the client clock and paging past one
XRANGE chunk (20,000 entries)."""
from __future__ import annotations

import pytest
import redis as redis_lib

from bench.levels import read_trace

pytestmark = [pytest.mark.integration, pytest.mark.claim]


def test_read_trace_keeps_the_client_window_and_pages_past_a_chunk(stack, redis_client):
    _client, prefix = redis_client
    r = redis_lib.Redis.from_url(stack.redis_url)  # bytes, as the benchmark's client
    key = prefix + "trace"
    n = 20_005
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        # entry id = when readable (ms); two entries share a millisecond so sequence numbers matter
        pipe.xadd(key, {"event_id": f"e{i}", "kafka_ts_ms": 5_000 + i, "client_ts_ms": 4_000 + i}, id=f"{10_000 + i // 2}-{i % 2}")
    pipe.execute()
    try:
        got = read_trace(r, key, start_ms=4_003, end_ms=4_000 + n - 2)
    finally:
        r.delete(key)
        r.close()
    expected = [(10_000 + i // 2, 5_000 + i, 4_000 + i) for i in range(3, n - 1)]
    assert len(got) == n - 4
    assert got == expected
