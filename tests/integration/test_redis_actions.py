"""The Redis writer of the job and the baseline (connectors/redis_store.py) against the real Redis of
the local stack: the Lua write-if-newer script, the idempotent actions stream, the ``agg`` sets and the
``stats`` counters (docs/contracts.md §5). Every expectation is written out by hand from the contract."""
from __future__ import annotations

import json

import pytest

from connectors.redis_store import AGG_TTL_S, RedisActionWriter

pytestmark = [pytest.mark.integration, pytest.mark.claim]

ACTION_TTL_S = 1800
SESSION_TTL_S = 1800


def _action(event_id: str, event_ts_ms: int, action: str, session_id: str = "s-1") -> dict:
    return {"session_id": session_id, "event_id": event_id, "event_ts_ms": event_ts_ms, "action": action,
            "params": {"item_id": event_id}, "rule_id": f"r-{action}", "rule_version": 1,
            "rules_version": "2026-12-01.1", "model_version": "intent-lr/1", "intent_score": 0.5,
            "decided_at_ms": event_ts_ms + 7}


@pytest.fixture
def writer(stack, redis_client):
    client, prefix = redis_client
    w = RedisActionWriter(stack.redis_url, prefix, ACTION_TTL_S, SESSION_TTL_S, stream_maxlen=100_000)
    yield w, client, prefix
    w.close()


def _write_actions(w: RedisActionWriter, *actions: dict) -> None:
    w.write(actions, sessions={}, aggregates={}, counters={})


def test_latest_action_is_written_only_if_newer(writer):
    w, client, p = writer
    _write_actions(w, _action("e-200", 200, "simplify_layout"))
    _write_actions(w, _action("e-100", 100, "show_video_demo"))  # older: a replay after a restart
    latest = client.hgetall(f"{p}action:s-1")
    assert (latest["event_id"], latest["event_ts_ms"], latest["action"]) == ("e-200", "200", "simplify_layout")
    assert json.loads(latest["params"]) == {"item_id": "e-200"}
    _write_actions(w, _action("e-300", 300, "rerank_towards_item"))  # newer: replaces
    assert client.hget(f"{p}action:s-1", "action") == "rerank_towards_item"
    _write_actions(w, _action("e-300b", 300, "simplify_layout"))  # same event time: the later write wins
    assert client.hget(f"{p}action:s-1", "event_id") == "e-300b"
    assert 0 < client.ttl(f"{p}action:s-1") <= ACTION_TTL_S
    # the stream has every action once, in write order, even the one that did not become the latest
    assert [f["event_id"] for _, f in client.xrange(f"{p}actions")] == ["e-200", "e-100", "e-300", "e-300b"]


def test_the_actions_stream_append_is_idempotent(writer):
    w, client, p = writer
    a, b = _action("e-1", 10, "simplify_layout"), _action("e-2", 20, "show_video_demo", session_id="s-2")
    _write_actions(w, a, b)
    _write_actions(w, a, b)  # a replay from a checkpoint sends the same actions again
    _write_actions(w, b)
    stream = [f for _, f in client.xrange(f"{p}actions")]
    assert [(f["session_id"], f["event_id"]) for f in stream] == [("s-1", "e-1"), ("s-2", "e-2")]
    assert client.get(f"{p}seen:e-1") == "1" and 0 < client.ttl(f"{p}seen:e-1") <= ACTION_TTL_S


def test_agg_sets_and_stats_counters(writer):
    w, client, p = writer
    aggregates = {("laptop:specs", 1000, "hover"): {"s-1", "s-2"}, ("laptop:video", 1020, "click"): {"s-1"}}
    w.write([], sessions={"s-1": {"applied": 3, "intent_score": 0.25}},
            aggregates=aggregates, counters={"events": 5, "applied": 3, "late": 0, "suppressed:cooldown": 2})
    # a replayed batch: the sets stay the same, the counters count again (documented in §5)
    w.write([], sessions={}, aggregates={("laptop:specs", 1000, "hover"): {"s-2", "s-3"}},
            counters={"events": 1, "applied": 1})
    assert client.smembers(f"{p}agg:laptop:specs:1000:hover") == {"s-1", "s-2", "s-3"}
    assert client.smembers(f"{p}agg:laptop:video:1020:click") == {"s-1"}
    assert 0 < client.ttl(f"{p}agg:laptop:specs:1000:hover") <= AGG_TTL_S
    assert client.hgetall(f"{p}stats") == {"events": "6", "applied": "4", "suppressed:cooldown": "2"}
    assert client.hgetall(f"{p}session:s-1") == {"applied": "3", "intent_score": "0.25"}
    assert 0 < client.ttl(f"{p}session:s-1") <= SESSION_TTL_S


def test_a_flush_is_written_after_the_scripts_were_flushed_and_nothing_counts_twice(writer):
    # a restarted or emptied Redis has no scripts: the writer loads them again and resends the flush
    w, client, p = writer
    w.write([_action("e-1", 1_000, "a")], sessions={"s-1": {"applied": 1}}, aggregates={("c", 1000, "click"): {"s-1"}},
            counters={"events": 1})
    client.script_flush()
    w.write([_action("e-2", 2_000, "b")], sessions={"s-1": {"applied": 2}}, aggregates={("c", 1000, "click"): {"s-2"}},
            counters={"events": 1})
    assert client.hget(f"{p}action:s-1", "action") == "b"
    assert client.hgetall(f"{p}session:s-1") == {"applied": "2"}
    assert client.smembers(f"{p}agg:c:1000:click") == {"s-1", "s-2"}
    assert client.hgetall(f"{p}stats") == {"events": "2"}
    assert [f["event_id"] for _id, f in client.xrange(f"{p}actions")] == ["e-1", "e-2"]


def test_the_writer_tells_when_redis_lost_the_prefixs_data(writer):
    # the epoch marker: missing on a later write = Redis was emptied (restart without persistence, FLUSHALL)
    w, client, p = writer
    assert w.write([], {"s-1": {"applied": 1}}, {}, {}) is False  # the first write: nothing to compare with
    assert w.write([], {"s-1": {"applied": 2}}, {}, {}) is False
    for key in client.scan_iter(match=f"{p}*"):
        client.delete(key)
    assert w.write([], {"s-2": {"applied": 1}}, {}, {}) is True
    assert w.write([], {"s-2": {"applied": 2}}, {}, {}) is False
    client.script_flush()  # a restart also loses the scripts: the resend must still say so
    for key in client.scan_iter(match=f"{p}*"):
        client.delete(key)
    assert w.write([_action("e-9", 9_000, "a")], {}, {}, {}) is True
