"""udfs.microbatch: the earlier batch layout (still read), the Python copy of a shard's sessions, the write
buffer. The batch bytes of today: tests/unit/test_batch_layout.py."""
from __future__ import annotations

import sys

import orjson
import pytest

from udfs.config import JobConfig
from udfs.decide import Decider, SessionEntry, decide_all, session_summaries
from udfs.microbatch import (ShardSessions, WriteBuffer, decode_batch, decode_stored, encode_stored, last_of_flush,
                             on_schedule)
from udfs.partitioning import shard_of
from udfs.rules import RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

T0 = 1_764_000_000_000


def _events():
    return article_session("s-article", T0)


def test_earlier_list_layout_keeps_order_timestamps_and_dead_letters_bad_values():
    # batches of the layout before values crossed as bytes may still be in a checkpoint's pending list
    events = _events()[:3]
    values = [orjson.dumps(events[0]).decode(), "{not json", orjson.dumps(events[1]).decode(),
              orjson.dumps({"type": "click"}).decode(), orjson.dumps(events[2]).decode()]
    decoded, dlq = decode_batch(["11,12,13,,15", *values])
    assert [e["event_id"] for e in decoded] == [e["event_id"] for e in events]
    assert [e.get("_kafka_ts_ms") for e in decoded] == [11, 13, 15]
    assert len(dlq) == 2 and {d["reason"] for d in dlq} <= {"invalid_json", "missing_field", "parse_error"}
    assert all(d["stage"] == "parse" for d in dlq)


def test_earlier_list_layout_without_timestamps_and_empty():
    event = _events()[0]
    decoded, dlq = decode_batch(["", orjson.dumps(event).decode()])
    assert "_kafka_ts_ms" not in decoded[0] and not dlq
    assert decode_batch([""]) == ([], [])
    with pytest.raises(ValueError, match="at least its timestamp entry"):
        decode_batch([])


def test_earlier_list_layout_last_of_flush_mark_and_decode_ignore_it():
    event = _events()[0]
    value = orjson.dumps(event).decode()
    assert last_of_flush(["L7", value]) and not last_of_flush(["7", value]) and not last_of_flush([])
    assert decode_batch(["L7", value])[0][0]["_kafka_ts_ms"] == 7


def test_write_buffer_merges_the_writes_of_a_flush():
    buf = WriteBuffer()
    assert buf.take() is None
    buf.add(100, [{"a": 1}], {("c", 0, "click"): {"s1"}}, {"events": 2}, [("e1", 1, 1, 1)])
    buf.add(105, [{"a": 2}], {("c", 0, "click"): {"s2"}, ("d", 0, "click"): {"s3"}}, {"events": 3, "late": 1},
            [("e2", 2, 2, 2)], summaries={"s1": {"applied": 1}})
    buf.add(106, summaries={"s1": {"applied": 2}}, facts=[("x", "holdout", "sessions", 0, "s1")])
    assert buf.since_ms == 100
    actions, summaries, aggregates, counters, trace, facts = buf.take()
    assert facts == [("x", "holdout", "sessions", 0, "s1")]
    assert actions == [{"a": 1}, {"a": 2}] and [t[0] for t in trace] == ["e1", "e2"]
    assert aggregates == {("c", 0, "click"): {"s1", "s2"}, ("d", 0, "click"): {"s3"}}
    assert counters == {"events": 5, "late": 1} and summaries == {"s1": {"applied": 2}}
    assert buf.take() is None and buf.since_ms is None


def test_shard_sessions_reads_keyed_state_only_for_restored_sessions():
    shard = ShardSessions(ttl_ms=10_000, write_interval_ms=1_000)
    stored = {"old": SessionEntry()}
    asked: list[str] = []

    def from_state(sid):
        asked.append(sid)
        return stored.get(sid)

    shard.restore(["old"], now_ms=1_000)
    load = shard.loader(now_ms=5_000, stored=from_state)
    assert load("old") is stored["old"] and load("new") is None
    assert asked == ["old"] and shard.stored_ids == set()


def test_restored_sessions_never_read_expire_a_ttl_after_the_restore():
    # keyed state has no incremental TTL cleanup: a restored session that gets no event must leave it
    # through expire(), or it stays on the heap until the next restart
    shard = ShardSessions(ttl_ms=10_000, write_interval_ms=1_000)
    shard.restore(["quiet", "back"], now_ms=1_000)
    assert shard.expire(10_999) == []  # within the TTL of the restore
    assert shard.loader(15_000, stored=lambda sid: SessionEntry())("back") is not None
    shard.update({"back": SessionEntry()}, now_ms=15_000)
    assert shard.expire(21_000) == ["quiet"] and shard.stored_ids == set()  # one sweep per 10 s (TTL)
    assert shard.expire(31_000) == ["back"]  # touched at 15,000


def test_shard_sessions_write_rhythms_and_expiry():
    shard = ShardSessions(ttl_ms=10_000, write_interval_ms=1_000, summary_interval_ms=300)
    entry = SessionEntry()
    shard.update({"a": entry}, now_ms=5_000)
    assert shard.next_due_ms() == 0  # created at 0 with phase 0: the first writes are due at once
    assert shard.write_due(5_000) and shard.take_dirty(5_000) == {"a": entry}
    assert shard.summary_due(5_000) and shard.take_summary_dirty(5_000) == {"a": entry}
    assert shard.next_due_ms() is None and not shard.write_due(5_500)
    shard.update({"a": entry}, now_ms=5_100)
    # the summaries' schedule is -300 + k * 300 (created at 0, phase 0): the write taken at 5,000 counts as
    # the one due at 4,800, so the next is due at 5,100 (not 300 ms after whenever a write ran)
    assert shard.next_due_ms() == 5_100
    assert not shard.summary_due(5_099) and shard.summary_due(5_100)
    assert not shard.write_due(5_900) and shard.write_due(5_900, force=True) and shard.write_due(6_000)
    # the copy wins while fresh; an expired one is forgotten and counts as new
    assert shard.loader(6_000, stored={}.get)("a") is entry
    assert shard.loader(15_101, stored={}.get)("a") is None and "a" not in shard.entries
    assert not shard.dirty and not shard.summary_dirty
    shard.update({"b": entry}, now_ms=20_000)
    assert shard.expire(70_000) == ["b"] and shard.expire(70_001) == []
    with pytest.raises(ValueError, match="must be > 0"):
        ShardSessions(0, 1)
    with pytest.raises(ValueError, match=r"phase must be within \[0, 1\)"):
        ShardSessions(1, 1, phase=1.0)


def test_shards_created_together_write_at_spread_moments():
    shards = [ShardSessions(60_000, 10_000, 1_000, now_ms=100_000, phase=i / 8) for i in range(8)]
    for shard in shards:
        shard.update({"s": SessionEntry()}, now_ms=100_000)
    due = [shard.last_write_ms + shard.write_interval_ms for shard in shards]
    assert due == [100_000 + 1_250 * i for i in range(8)]
    assert [s.write_due(100_000) for s in shards] == [True] + [False] * 7
    assert all(s.write_due(100_000 + 1_250 * i) for i, s in enumerate(shards))


def test_shards_keep_their_spread_after_a_quiet_spell():
    """After a spell with nothing to write, every shard's write is overdue and all run at the first batch;
    they must go back to their own moments, not stay together (before 2026-12-04 they did: at 100,000
    open sessions the 8 shards' state writes ran back to back every 10 s, a ~0.9 s stall)."""
    shards = [ShardSessions(600_000, 10_000, 1_000, now_ms=100_000, phase=i / 8) for i in range(8)]
    quiet_until = 100_000 + 37_300  # nothing changed since creation: no write was due
    for shard in shards:
        shard.update({"s": SessionEntry()}, now_ms=quiet_until)
        assert shard.write_due(quiet_until) and shard.summary_due(quiet_until)  # all overdue
        shard.take_dirty(quiet_until)
        shard.take_summary_dirty(quiet_until)
        shard.update({"s": SessionEntry()}, now_ms=quiet_until + 1)
    next_writes = sorted(s.last_write_ms + s.write_interval_ms for s in shards)
    # each on its own grid 90,000 + 1,250 i + 10,000 k (created at 100,000): the first point after the spell
    own = sorted(min(t for t in range(90_000 + 1_250 * i, 200_000, 10_000) if t > quiet_until) for i in range(8))
    assert next_writes == own and len(set(next_writes)) == 8  # 1.25 s apart, as created
    assert len({s.last_summary_ms % 1_000 for s in shards}) == 8  # summaries spread over the second too
    assert all(quiet_until < t <= quiet_until + 10_000 for t in next_writes)


def test_on_schedule_is_the_latest_grid_point():
    assert on_schedule(1_000, 300, 1_000) == 1_000 and on_schedule(1_000, 300, 1_299) == 1_000
    assert on_schedule(1_000, 300, 1_300) == 1_300 and on_schedule(1_000, 300, 2_250) == 2_200
    assert on_schedule(1_000, 300, 900) == 1_000  # a clock that went back: the schedule stays


@pytest.mark.parametrize("write_every_batch,pre_encode", [(False, False), (True, False), (False, True)])
def test_deciding_shard_by_shard_equals_deciding_all_at_once(write_every_batch, pre_encode):
    """Routing to shards and batching per shard does not change a decision (DESIGN.md, semantics); nor
    does holding the sessions written to keyed state as their stored bytes (``take_dirty_stored``), nor
    holding changed sessions encoded ahead of the write (``pre_encode``)."""
    cfg = JobConfig()
    events = []
    for i in range(24):
        events += (article_session if i % 2 == 0 else shallow_session)(f"s{i}", T0 + 997 * i)
    events.sort(key=lambda e: e["client_ts_ms"])
    scorer = ReloadingScorer()
    ref_actions, _, ref_store = decide_all(Decider(cfg, scorer, RuleEngine.default(), clock_ms=lambda: 0), events,
                                           10_000)
    keys = list(range(100, 100 + cfg.max_parallelism))
    decider = Decider(cfg, scorer, RuleEngine.default(), clock_ms=lambda: 0)
    shards: dict[int, ShardSessions] = {}
    actions = []
    for i in range(0, len(events), 3):
        per_shard: dict[int, list] = {}
        for e in events[i:i + 3]:
            per_shard.setdefault(shard_of(e["session_id"], keys), []).append(orjson.dumps(e).decode())
        for key, values in per_shard.items():
            shard = shards.setdefault(key, ShardSessions(1_800_000, 1_000, pre_encode_lead_ms=1_000))
            decoded, dlq = decode_batch([",".join("" for _ in values), *values])
            assert not dlq
            result = decider.decide(decoded, shard.loader(0, {}.get))
            shard.update(result.touched, 0)
            actions.extend(result.actions)
            if pre_encode:
                assert shard.pre_encode(0, 100) == len(result.touched)
                assert set(shard.encoded_ahead) >= set(result.touched) and shard.dirty
            if write_every_batch:
                stored = shard.take_dirty_stored(0)
                assert set(stored) == set(result.touched) and not shard.dirty
                assert all(shard.entries[sid] is blob for sid, blob in stored.items())
    key = lambda a: a["event_id"]  # noqa: E731
    assert ref_actions and sorted(actions, key=key) == sorted(ref_actions, key=key)
    if write_every_batch:  # every session is held as bytes, and they decode to what was decided
        held = {sid: e for shard in shards.values() for sid, e in shard.entries.items()}
        assert held and all(type(e) is bytes for e in held.values())
        decoded = {sid: decode_stored(e) for sid, e in held.items()}
        assert session_summaries(decoded, "m", "r") == session_summaries(ref_store, "m", "r")


def test_a_session_held_as_stored_bytes_is_decoded_on_its_next_event():
    shard = ShardSessions(ttl_ms=10_000, write_interval_ms=1_000, summary_interval_ms=1_000)
    entry = SessionEntry()
    entry.counts[0] = 7
    shard.update({"a": entry}, now_ms=100)
    stored = shard.take_dirty_stored(1_000)
    assert list(stored) == ["a"] and stored["a"] == encode_stored(entry) and shard.entries["a"] is stored["a"]
    loaded = shard.loader(2_000, stored={}.get)("a")
    assert type(loaded) is SessionEntry and loaded is not entry and loaded.counts[0] == 7
    assert shard.entries["a"] is stored["a"]  # kept as bytes until the decider's result is taken
    shard.update({"a": loaded}, now_ms=2_000)
    assert shard.entries["a"] is loaded and shard.dirty == {"a"}
    assert shard.take_summary_dirty(2_000) == {"a": loaded}
    assert shard.loader(20_000, stored={}.get)("a") is None  # expired: as for an object


def test_a_state_write_always_takes_the_pending_summaries_with_it():
    # summary every 5 s, state every 1 s: without the rule, a state write at 1_000 would checkpoint
    # "a" while its summary waits until 5_000, and a restore would never write it
    shard = ShardSessions(ttl_ms=60_000, write_interval_ms=1_000, summary_interval_ms=5_000, now_ms=0, phase=0.5)
    entry = SessionEntry()
    shard.update({"a": entry}, now_ms=100)
    assert shard.due(200) == (False, False)
    assert shard.summary_due(1_500) is False and shard.write_due(1_500) is True
    assert shard.due(1_500) == (True, True)
    assert shard.take_summary_dirty(1_500) == {"a": entry} and shard.take_dirty(1_500) == {"a": entry}
    # nothing dirty: nothing due, forced or not
    assert shard.due(10_000, force=True) == (False, False)
    shard.update({"b": entry}, now_ms=10_100)
    assert shard.due(10_200, force=True) == (True, True)


def _entry(count: int) -> SessionEntry:
    entry = SessionEntry()
    entry.counts[0] = count
    return entry


def test_pre_encode_takes_idle_changed_sessions_oldest_first_only_near_the_write():
    # writes due at 10_000, 20_000, ...; encode ahead in the last 4 s before one, sessions idle >= 1.5 s
    shard = ShardSessions(600_000, 10_000, 1_000, now_ms=10_000, pre_encode_lead_ms=4_000, pre_encode_idle_ms=1_500)
    shard.take_dirty(10_000)  # the write due at creation (phase 0): the next is due at 20_000
    shard.update({"a": _entry(1), "b": _entry(2)}, now_ms=10_100)
    shard.update({"c": _entry(3)}, now_ms=14_000)
    shard.update({"a": shard.entries["a"]}, now_ms=14_800)  # "a" changed again: now the newest
    assert shard.pre_encode(15_999, 10) == 0  # before the lead window (16_000 .. 20_000)
    assert shard.pre_encode(16_000, 1) == 1 and list(shard.encoded_ahead) == ["b"]  # the oldest change first
    assert shard.pre_encode(16_000, 10) == 1 and list(shard.encoded_ahead) == ["b", "c"]  # "a" idle < 1.5 s
    assert shard.pre_encode(16_300, 0) == 0
    assert shard.pre_encode(16_300, 10) == 1 and set(shard.encoded_ahead) == {"a", "b", "c"}  # idle 1.5 s now
    assert all(type(shard.entries[sid]) is SessionEntry for sid in "abc")  # the objects stay
    assert shard.dirty == {"a", "b", "c"} and not shard.encode_queue  # encoded ahead, still to be written


def test_pre_encode_idle_time_shrinks_to_the_time_left_before_the_write():
    # write due at 20_000; idle 1.5 s far from it, down to the time left near it
    shard = ShardSessions(600_000, 10_000, 1_000, now_ms=10_000, pre_encode_lead_ms=4_000, pre_encode_idle_ms=1_500)
    shard.take_dirty(10_000)
    shard.update({"a": _entry(1)}, now_ms=19_000)
    shard.update({"b": _entry(2)}, now_ms=19_500)
    assert shard.pre_encode(19_200, 10) == 0  # 800 ms left: "a" idle 200 ms
    assert shard.pre_encode(19_700, 10) == 1 and list(shard.encoded_ahead) == ["a"]  # 300 left: a 700, b 200
    assert shard.pre_encode(19_800, 10) == 1 and list(shard.encoded_ahead) == ["a", "b"]  # 200 left: b 300


def test_a_session_encoded_ahead_keeps_its_object_for_its_pending_summary():
    shard = ShardSessions(600_000, 10_000, 1_000, now_ms=10_000, pre_encode_lead_ms=10_000)
    entry = _entry(1)
    shard.update({"a": entry}, now_ms=10_100)
    assert shard.pre_encode(12_000, 10) == 1 and shard.entries["a"] is entry
    assert shard.take_summary_dirty(12_000)["a"] is entry  # read as the object, not decoded from bytes
    ahead = shard.encoded_ahead["a"]
    stored = shard.take_dirty_stored(20_000)
    assert stored["a"] is ahead and decode_stored(stored["a"]).counts[0] == 1 and not shard.encoded_ahead


def test_the_write_reuses_the_bytes_encoded_ahead_and_encodes_what_changed_since():
    shard = ShardSessions(600_000, 10_000, 60_000, now_ms=10_000, phase=0.5, pre_encode_lead_ms=10_000)
    shard.take_summary_dirty(10_000)
    a, b = _entry(1), _entry(2)
    shard.update({"a": a, "b": b}, now_ms=10_100)
    shard.summary_dirty.clear()  # summaries written (their own rhythm)
    assert shard.pre_encode(10_200, 10) == 2
    early = dict(shard.encoded_ahead)
    # "b" gets an event: its object is changed in place and queued again; its early bytes are dropped
    loaded = shard.loader(10_300, stored={}.get)("b")
    assert loaded is b
    loaded.counts[0] = 5
    shard.update({"b": loaded}, now_ms=10_300)
    assert list(shard.encoded_ahead) == ["a"] and list(shard.encode_queue) == ["b"]
    assert shard.write_due(15_000)
    stored = shard.take_dirty_stored(15_000)
    assert stored["a"] is early["a"]  # not encoded twice
    assert stored["b"] != early["b"] and stored["b"] == encode_stored(loaded)
    assert decode_stored(stored["b"]).counts[0] == 5
    assert stored["a"] == encode_stored(a)  # the same bytes the write would have made
    assert not shard.dirty and not shard.encode_queue and not shard.encoded_ahead
    assert shard.entries["a"] is stored["a"] and shard.entries["b"] is stored["b"]  # held as bytes now
    assert shard.take_dirty(15_000) == {}


def test_a_state_write_leaves_the_replaced_objects_to_be_freed_a_few_per_batch():
    shard = ShardSessions(600_000, 10_000, 1_000)
    objs = [_entry(i) for i in range(5)]
    shard.update({f"s{i}": o for i, o in enumerate(objs)}, now_ms=0)
    stored = shard.take_dirty_stored(0)
    assert all(shard.entries[sid] is blob for sid, blob in stored.items())  # the copy holds bytes
    assert sorted(map(id, shard.retired)) == sorted(map(id, objs))  # the objects wait to be freed
    refs = lambda: [sys.getrefcount(objs[i]) for i in range(len(objs))]  # noqa: E731
    held = refs()
    assert shard.release_retired(2) == 2 and len(shard.retired) == 3
    assert sum(a == b - 1 for a, b in zip(refs(), held)) == 2  # two of them no longer held by the shard
    assert shard.release_retired(10) == 3 and not shard.retired
    assert all(a == b - 1 for a, b in zip(refs(), held))
    assert shard.release_retired(10) == 0
    shard.update({"s0": decode_stored(stored["s0"])}, now_ms=1)
    assert not shard.retired and shard.take_dirty(10_000) and not shard.retired  # objects handed out, kept


def test_take_dirty_hands_out_objects_even_for_sessions_encoded_ahead():
    shard = ShardSessions(600_000, 10_000, 1_000, pre_encode_lead_ms=10_000)
    shard.update({"a": _entry(4)}, now_ms=0)
    assert shard.pre_encode(0, 5) == 1 and "a" in shard.encoded_ahead
    taken = shard.take_dirty(0)
    assert type(taken["a"]) is SessionEntry and taken["a"].counts[0] == 4 and not shard.encoded_ahead


def test_forgetting_a_session_takes_it_off_the_encode_queue():
    shard = ShardSessions(60_000, 10_000, 1_000, pre_encode_lead_ms=10_000)
    shard.update({"a": _entry(1), "b": _entry(2), "c": _entry(3)}, now_ms=0)
    assert shard.pre_encode(0, 1) == 1 and list(shard.encoded_ahead) == ["a"]
    shard.forget("a")
    shard.forget("b")
    assert not shard.encoded_ahead and list(shard.encode_queue) == ["c"] and shard.pre_encode(0, 5) == 1
    with pytest.raises(ValueError, match="must be >= 0"):
        ShardSessions(1, 1, pre_encode_lead_ms=-1)


def test_without_a_lead_nothing_is_queued_or_encoded_ahead():
    shard = ShardSessions(60_000, 10_000, 1_000)  # pre_encode_lead_ms 0: off
    shard.update({"a": _entry(1)}, now_ms=0)
    shard.take_summary_dirty(0)
    assert not shard.encode_queue and shard.pre_encode(9_999, 5) == 0 and not shard.encoded_ahead
