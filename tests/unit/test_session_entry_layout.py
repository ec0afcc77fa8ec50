"""The compact layout of ``udfs.decide.SessionEntry`` (issue 19): the lateness log as pickled bytes, the
lagging state built only when an event leaves the window, and entries pickled with the earlier layout
(a log of dicts) still restored to the same features."""
from __future__ import annotations

import pickle

import numpy as np

from udfs.decide import SessionEntry, log_entry
from udfs.scenarios import article_session
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.plausibility import FLAG_TRAJECTORY_IMPLAUSIBLE, FLAG_VALUE_IMPLAUSIBLE
from udfs.session import (PAGE_BOUNCE_RATE_FIELD, PAGE_EXIT_RATE_FIELD, SessionState, event_order_key, replay_event,
                          replay_record)

T0 = 1_700_000_000_000
LATENESS_MS = 300_000


def _entry(events) -> SessionEntry:
    entry = SessionEntry()
    for event in events:
        entry.apply(event, LATENESS_MS)
    return entry


def test_the_log_holds_each_event_as_its_order_key_and_the_pickle_of_its_replay_record():
    events = article_session("s-layout", T0)
    entry = _entry(events)
    assert [key for key, _ in entry.log] == [event_order_key(e) for e in events]
    assert [pickle.loads(raw) for _, raw in entry.log] == [replay_record(e) for e in events]
    assert all(isinstance(raw, bytes) for _, raw in entry.log)
    # the point of the record: a fraction of the whole event's pickle
    whole = sum(len(pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL)) for e in events)
    assert sum(len(raw) for _, raw in entry.log) < whole / 2


def _plain(value):
    """``value`` as nested tuples of plain values: states compared by value (in insertion order), not by
    which string objects they share (which the pickle bytes would show)."""
    from array import array

    from udfs.noise import NoiseFilter

    if isinstance(value, (SessionState, NoiseFilter)):
        return type(value).__name__, _plain(value.__getstate__())
    if isinstance(value, dict):
        return "dict", tuple((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(_plain(v) for v in value)
    if isinstance(value, array):
        return "array", value.typecode, tuple(value)
    return value


def _states_match_event_by_event(events: list[dict]) -> int:
    """Apply each session's events whole and as replay records; assert equal pickled states after every
    event. Returns the number of events compared."""
    by_session: dict[str, list[dict]] = {}
    for event in events:
        by_session.setdefault(event["session_id"], []).append(event)
    n = 0
    for session_id, session in by_session.items():
        whole, replayed = SessionState(), SessionState()
        for event in sorted(session, key=event_order_key):
            record = pickle.loads(pickle.dumps(replay_record(event), protocol=pickle.HIGHEST_PROTOCOL))
            a = whole.apply(dict(event))
            b = replayed.apply(replay_event(record, session_id))
            assert a == b, (session_id, event)
            assert _plain(whole) == _plain(replayed), (session_id, event)
            n += 1
    return n


def test_applying_replay_records_leaves_every_state_exactly_as_the_whole_events_of_recorded_sessions():
    from tests.conftest import real_data, scripted_sessions

    root = real_data()
    if root is None:
        events = scripted_sessions(60, 40, seed=19)
    else:
        from bench.loadgen import build_templates, fill
        from udfs.contract import parse_event

        templates, _ = build_templates(root, seed=7)
        events = []
        for k, tpl in enumerate(templates[:400]):
            for j, (parts, slots) in enumerate(tpl.events):
                out = [parts[0]]
                for slot, part in zip(slots, parts[1:]):
                    out.append(b"\0TS\0" if slot == "ts" else
                               (f"00000000-0000-4000-8000-{k:06x}{j:06x}" if slot == "event_id" else f"rec-{k}").encode())
                    out.append(part)
                head, mid, tail = b"".join(out).split(b"\0TS\0")
                events.append(parse_event(fill(head, mid, tail, T0 + j * 1_500)))
    assert _states_match_event_by_event(events) == len(events) > 1000 if root else len(events)


_CONTEXTS = st.one_of(
    st.none(), st.just({}),
    st.fixed_dictionaries({}, optional={
        "device_class": st.sampled_from(["mobile", "tablet", "desktop", "unknown", None]),
        "is_bot": st.sampled_from([True, False, None]),
        "viewport_w_px": st.one_of(st.none(), st.integers(0, 4000)),
        "viewport_h_px": st.one_of(st.none(), st.integers(0, 4000)),
        "network": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "effective_type": st.sampled_from(["slow-2g", "2g", "3g", "4g", None]),
            "rtt_ms": st.one_of(st.none(), st.integers(0, 3000)),
            "downlink_mbps": st.one_of(st.none(), st.floats(0, 100)),
            "save_data": st.sampled_from([True, False, None])})),
        "geo": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "country": st.sampled_from(["DE", "US", None]), "region": st.sampled_from(["BE", "CA", None])})),
        "user_agent": st.text(max_size=20), "locale": st.sampled_from(["de-DE", None])}))
_EVENTS = st.fixed_dictionaries({
    "type": st.sampled_from(["page_view", "click", "scroll", "hover", "visibility", "form", "mouse_trajectory",
                             "add_to_cart", "purchase", "exposure", "intent"]),
    "gap_ms": st.sampled_from([0, 1, 90, 400, 2_000, 40_000, 400_000]),
    "props": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "element_id": st.sampled_from(["a", "b", None]), "element_role": st.sampled_from(
            ["compare_button", "product_card", "spec", None]),
        "scroll_depth_pct": st.one_of(st.none(), st.floats(-10, 120)), "hover_ms": st.sampled_from([0, 50, 900, None]),
        "visible_ms": st.one_of(st.none(), st.integers(0, 90_000)), "sample_count": st.sampled_from([0, 3, 20]),
        "straightness": st.floats(0, 1), "mean_speed_px_s": st.floats(0, 3000),
        "x_px": st.sampled_from([1, 2, None]), "y_px": st.sampled_from([1, None])})),
    "flags": st.sampled_from([None, [], [FLAG_VALUE_IMPLAUSIBLE], [FLAG_TRAJECTORY_IMPLAUSIBLE, "other"], ["other"]]),
    "page": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["product_related", "informational", "administrative", "checkout", None]),
        "item_id": st.sampled_from(["i1", "i2", None]), "url": st.just("https://shop.example/p")})),
    "context": _CONTEXTS,
    "rates": st.one_of(st.none(), st.tuples(st.floats(0, 1), st.floats(0, 1)), st.tuples(st.floats(0, 1), st.none())),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(_EVENTS, min_size=1, max_size=40))
def test_applying_replay_records_equals_applying_whole_events_for_any_fields(drafts):
    events, ts = [], T0
    for i, d in enumerate(drafts):
        ts += d["gap_ms"]
        event = {"event_id": f"e{i}", "session_id": "s-any", "ts_ms": ts, "seq": i, "type": d["type"],
                 "props": d["props"], "flags": d["flags"], "page": d["page"], "context": d["context"],
                 "anonymous_id": "a1", "client_ts_ms": ts}
        if d["rates"] is not None:
            event[PAGE_BOUNCE_RATE_FIELD], event[PAGE_EXIT_RATE_FIELD] = d["rates"]
        events.append(event)
    assert _states_match_event_by_event(events) == len(events)


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
    old[2] = [dict(e) for e in events]  # the first layout: the event dicts themselves
    restored = SessionEntry.__new__(SessionEntry)
    restored.__setstate__(tuple(old))
    assert restored.log.entries() == [log_entry(e) for e in events]
    extra = dict(events[-1], event_id="00000000-0000-4000-8000-00000000cafe", ts_ms=events[-1]["ts_ms"] + 10, seq=None)
    a, b = restored.apply(extra, LATENESS_MS), entry.apply(extra, LATENESS_MS)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_an_entry_pickled_with_a_log_of_pairs_is_restored_with_the_same_log_and_features():
    events = article_session("s-pairs", T0)
    entry = _entry(events)
    old = list(entry.__getstate__())
    old[2] = [log_entry(e) for e in events]  # the layout before the log was one buffer
    restored = SessionEntry.__new__(SessionEntry)
    restored.__setstate__(tuple(old))
    assert restored.log == entry.log
    late = dict(events[2], event_id="00000000-0000-4000-8000-00000000d00d", seq=None)
    a, b = restored.apply(late, LATENESS_MS), entry.apply(late, LATENESS_MS)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and restored.log == entry.log


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
