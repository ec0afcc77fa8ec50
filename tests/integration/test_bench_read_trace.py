"""``bench.levels.read_trace`` against the real Redis: the window on the client clock and paging past one
XRANGE page, and the writer's one packed entry per pipeline."""
from __future__ import annotations

import time

import pytest
import redis as redis_lib

from bench.levels import TRACE_PAGE_ENTRIES, read_trace
from connectors.redis_store import encode_trace

pytestmark = [pytest.mark.integration, pytest.mark.claim]


def test_read_trace_keeps_the_client_window_and_pages_past_a_chunk(stack, redis_client):
    _client, prefix = redis_client
    r = redis_lib.Redis.from_url(stack.redis_url)  # bytes, as the benchmark's client
    key = prefix + "trace"
    # pages of TRACE_PAGE_ENTRIES entries; entries of 3 events each; two entries share a millisecond so
    # sequence numbers matter, and the first entry is alone in its millisecond so a page ends between the
    # two entries of one millisecond (the next page must start at that millisecond's next sequence number)
    n_entries = TRACE_PAGE_ENTRIES + 5
    pipe = r.pipeline(transaction=False)
    events = []
    ids = [divmod(i + 1, 2) for i in range(n_entries)]  # (ms offset, sequence number): 0-1, 1-0, 1-1, 2-0, ...
    assert ids[TRACE_PAGE_ENTRIES - 1][0] == ids[TRACE_PAGE_ENTRIES][0], "a page boundary splits a millisecond"
    for i, (ms, seq) in enumerate(ids):
        batch = [(f"e{i}-{j}", 5_000 + 3 * i + j, 4_000 + 3 * i + j, 0) for j in range(3)]
        events += [(10_000 + ms, kafka, client) for _eid, kafka, client, _ts in batch]
        pipe.xadd(key, {"events": encode_trace(batch)}, id=f"{10_000 + ms}-{seq}")
    pipe.execute()
    start_ms, end_ms = 4_000 + 4, 4_000 + 3 * n_entries - 2
    try:
        got = read_trace(r, key, start_ms=start_ms, end_ms=end_ms)
    finally:
        r.delete(key)
        r.close()
    expected = [e for e in events if start_ms <= e[2] <= end_ms]
    assert len(expected) == 3 * n_entries - 5
    assert got == expected


def test_the_writer_packs_a_pipelines_traces_into_one_entry_read_back_by_read_trace(stack, redis_client):
    from connectors.redis_store import RedisActionWriter

    _client, prefix = redis_client
    writer = RedisActionWriter(stack.redis_url, prefix, 60, 60, 1000)
    now_ms = int(time.time() * 1000)
    trace = [(f"00000000-0000-4000-8000-00000000000{i}", now_ms - 50 + i, now_ms - 60 + i, now_ms - 70) for i in range(5)]
    try:
        writer.write([], {}, {}, {}, trace)
        r = redis_lib.Redis.from_url(stack.redis_url)
        entries = r.xrange(prefix + "trace")
        got = read_trace(r, prefix + "trace", now_ms - 60, now_ms - 57)
        r.close()
    finally:
        writer.close()
    assert len(entries) == 1
    readable_ms = int(entries[0][0].split(b"-")[0])
    assert readable_ms >= now_ms - 1000
    assert got == [(readable_ms, now_ms - 50 + i, now_ms - 60 + i) for i in range(4)]
