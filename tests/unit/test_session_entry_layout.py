"""The compact layout of ``udfs.decide.SessionEntry`` (issue 19): the lateness log as pickled bytes, the
lagging state built only when an event leaves the window, and entries pickled with the earlier layout
(a log of dicts) still restored to the same features."""
from __future__ import annotations

import pickle

import numpy as np

from udfs.decide import SessionEntry, log_entry
from udfs.scenarios import article_session
from udfs.session import event_order_key

T0 = 1_700_000_000_000
LATENESS_MS = 300_000


def _entry(events) -> SessionEntry:
    entry = SessionEntry()
    for event in events:
        entry.apply(event, LATENESS_MS)
    return entry


def test_the_log_holds_each_event_as_its_order_key_and_its_exact_pickle():
    events = article_session("s-layout", T0)
    entry = _entry(events)
    assert [key for key, _ in entry.log] == [event_order_key(e) for e in events]
    assert [pickle.loads(raw) for _, raw in entry.log] == events
    assert all(isinstance(raw, bytes) for _, raw in entry.log)


def test_no_lagging_state_until_an_event_leaves_the_window_then_it_has_applied_exactly_those():
    events = article_session("s-lag", T0)
    entry = _entry(events)
    assert entry.lag is None
    later = dict(events[-1], event_id="00000000-0000-4000-8000-00000000beef", ts_ms=events[-1]["ts_ms"] + LATENESS_MS + 5_000,
                 client_ts_ms=events[-1]["ts_ms"] + LATENESS_MS + 5_000, seq=None)
    entry.apply(later, LATENESS_MS)
    assert entry.lag is not None
    # every article event is now older than the window: all of them slid into the lagging state
    assert [key for key, _ in entry.log] == [event_order_key(later)]
    reference = _entry(events)
    assert np.array_equal(entry.lag.features(), reference.state.features())


def test_an_out_of_order_event_before_any_slide_rebuilds_from_a_fresh_state_like_in_order_arrival():
    events = article_session("s-ooo", T0)
    shuffled = events[:3] + events[4:] + [events[3]]
    assert np.array_equal(_entry(shuffled).state.features(), _entry(events).state.features())


def test_an_entry_pickled_with_a_log_of_dicts_is_restored_with_the_same_features():
    events = article_session("s-old", T0)
    entry = _entry(events)
    old = list(entry.__getstate__())
    old[2] = [pickle.loads(raw) for _, raw in entry.log]  # the earlier layout: the event dicts themselves
    restored = SessionEntry.__new__(SessionEntry)
    restored.__setstate__(tuple(old))
    assert restored.log == [log_entry(e) for e in events]
    extra = dict(events[-1], event_id="00000000-0000-4000-8000-00000000cafe", ts_ms=events[-1]["ts_ms"] + 10, seq=None)
    a, b = restored.apply(extra, LATENESS_MS), entry.apply(extra, LATENESS_MS)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_the_keyed_state_value_is_compressed_and_decodes_to_the_same_session():
    from udfs.microbatch import decode_stored, encode_stored

    entry = _entry(article_session("s-stored", T0))
    value = encode_stored(entry)
    assert isinstance(value, bytes) and len(value) < len(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    back = decode_stored(value)
    assert back.log == entry.log and np.array_equal(back.state.features(), entry.state.features())
    assert decode_stored(entry) is entry  # stored before values were compressed
    assert value[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    import zlib

    older = zlib.compress(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL), 1)  # written before zstd
    assert decode_stored(older).log == entry.log
    assert decode_stored(None) is None


def test_the_entry_keeps_its_latest_action_and_the_rebuild_takes_it_with_the_summary():
    from udfs.config import JobConfig
    from udfs.decide import Decider
    from udfs.microbatch import ShardSessions, redis_rebuild
    from udfs.rules import RuleEngine
    from udfs.scoring import ReloadingScorer

    decider = Decider(JobConfig(), ReloadingScorer(JobConfig().model_name), RuleEngine.default())
    events = article_session("s-rebuild", T0)
    result = decider.decide(events, lambda _sid: None)
    assert result.actions, "the article scenario decides an action"
    entry = result.touched["s-rebuild"]
    latest = max(result.actions, key=lambda a: a["event_ts_ms"])
    assert entry.last_action == latest
    restored = pickle.loads(pickle.dumps(entry))
    assert restored.last_action == latest and restored.last_action_ts_ms() == latest["event_ts_ms"]
    # held as bytes, not as the dict: a caller's change to the action does not reach the entry
    latest_copy = dict(latest)
    latest["rule_id"] = "changed after the decision"
    assert entry.last_action == latest_copy
    # state of the version that held the dict itself still restores
    old = list(entry.__getstate__())
    old[9] = latest_copy
    from_dict = SessionEntry.__new__(SessionEntry)
    from_dict.__setstate__(tuple(old))
    assert from_dict.last_action == latest_copy and from_dict.last_action_ts_ms() == latest_copy["event_ts_ms"]
    shard = ShardSessions(1_800_000, 10_000, 1_000, now_ms=0)
    shard.update(result.touched, 1)
    actions, summaries = redis_rebuild([shard], "intent-lr/1", "r1")
    assert actions == [latest_copy]
    assert summaries["s-rebuild"]["applied"] == entry.count_dict()["applied"] and summaries["s-rebuild"]["rules_version"] == "r1"
