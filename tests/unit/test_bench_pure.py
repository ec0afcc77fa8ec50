"""Pure parts of the end-to-end benchmark (bench/run.py, bench/loadgen.py): no Kafka, no Redis, no data sets."""
from __future__ import annotations

import random
from collections import defaultdict

import pytest

from bench.loadgen import EventStream, Template, augment_session, compile_event, events_due, fill, next_due_s
from bench.stats import lag_trend, percentiles, ratio
from udfs.contract import make_event, parse_event
from udfs.scenarios import article_session

TRAJ = [{"path_length_px": 300.0, "straightness": 0.8, "mean_speed_px_s": 500.0, "jerk_px_s3": 1e5,
         "pause_count": 0, "sample_count": 12, "duration_ms": 600}]


def _click_session(sid: str, n_pages: int) -> list[dict]:
    out = []
    for i in range(n_pages):
        page = {"path": f"/product/{i}", "item_id": str(i), "content_ids": [str(i)]}
        out.append(make_event("page_view", session_id=sid, client_ts_ms=1000 * i, seq=2 * i,
                              source_key=f"t:{sid}:{i}:pv", page=page))
        out.append(make_event("click", session_id=sid, client_ts_ms=1000 * i, seq=2 * i + 1,
                              source_key=f"t:{sid}:{i}:c", page=page,
                              props={"element_id": f"product-{i}", "element_role": "product_card"}))
    return out


# ------------------------------------------------------------------ percentiles, lag, ratio

def test_percentiles_are_nearest_rank():
    p = percentiles([float(v) for v in range(100, 0, -1)])  # 1..100, unsorted
    assert (p["p50_ms"], p["p95_ms"], p["p99_ms"], p["max_ms"], p["n"]) == (50.0, 95.0, 99.0, 100.0, 100)


def test_percentiles_small_and_empty():
    assert percentiles([7.0])["p99_ms"] == 7.0
    p = percentiles([1.0, 2.0, 3.0])  # ceil(0.5*3)=2nd, ceil(0.99*3)=3rd
    assert (p["p50_ms"], p["p99_ms"]) == (2.0, 3.0)
    assert percentiles([])["p50_ms"] is None


def test_lag_trend_growing_vs_bounded():
    growing = [(t * 0.5, int(200 * t * 0.5)) for t in range(20)]  # +200 events/s
    assert lag_trend(growing, 1000)["bounded"] is False
    assert lag_trend(growing, 1000)["slope_eps"] == pytest.approx(200, rel=0.01)
    rng = random.Random(1)
    flat = [(t * 0.5, 40 + rng.randint(-20, 20)) for t in range(60)]
    res = lag_trend(flat, 1000)
    assert res["bounded"] is True and res["max_lag"] <= 60


def test_ratio():
    assert ratio(30.0, 15.0) == 2.0
    assert ratio(None, 1.0) is None and ratio(1.0, 0) is None


# ------------------------------------------------------------------ pacing

def test_events_due_pacing_math():
    assert events_due(0.0, 1000, 10_000) == 1  # event 0 is due at t=0
    assert events_due(0.0999, 1000, 10_000) == 100
    assert events_due(0.1, 1000, 10_000) == 101
    assert events_due(60.0, 1000, 10_000) == 10_000  # capped
    assert events_due(-1.0, 1000, 10_000) == 0
    assert events_due(0.0, None, 123) == 123  # flat out
    assert next_due_s(500, 2000) == 0.25
    # over a whole second exactly rate events are due before the next second starts
    assert events_due(1.0 - 1e-9, 2000, 10**9) == 2000


# ------------------------------------------------------------------ the mix rule

def test_mix_rule_inserts_scroll_hover_and_maybe_trajectory_after_each_page_view():
    session = _click_session("s", 40)
    out = augment_session(session, random.Random(3), TRAJ)
    assert [e for e in out if e["type"] in ("page_view", "click")] == session  # originals kept, in order
    i, extra_counts = 0, []
    while i < len(out):
        if out[i]["type"] == "page_view":
            j = i + 1
            while j < len(out) and out[j]["type"] not in ("page_view", "click"):
                j += 1
            kinds = [e["type"] for e in out[i + 1:j]]
            assert kinds in (["scroll", "hover"], ["scroll", "hover", "mouse_trajectory"])
            assert out[j]["type"] == "click"  # inserted before the page's click
            extra_counts.append(len(kinds))
            i = j
        else:
            i += 1
    assert len(extra_counts) == 40
    assert 2 in extra_counts and 3 in extra_counts  # probability 0.5 -> both occur in 40 draws
    for e in out:
        if e["type"] == "scroll":
            assert 0.0 <= e["props"]["scroll_depth_pct"] <= 100.0
        if e["type"] == "hover":
            assert e["props"]["hover_ms"] >= 1 and e["props"]["element_role"] == "product_card"


def test_mix_rule_is_seeded_and_without_pool_adds_exactly_two():
    session = _click_session("s", 10)
    a = augment_session(session, random.Random(5), TRAJ)
    b = augment_session(session, random.Random(5), TRAJ)
    assert a == b
    assert len(augment_session(session, random.Random(5), [])) == len(session) + 2 * 10


def test_mix_rule_hover_median_near_stated_value():
    out = augment_session(_click_session("s", 2000), random.Random(11), [])
    hovers = sorted(e["props"]["hover_ms"] for e in out if e["type"] == "hover")
    assert 700 <= hovers[len(hovers) // 2] <= 900  # stated median 800 ms
    depths = [e["props"]["scroll_depth_pct"] for e in out if e["type"] == "scroll"]
    assert 37 <= sum(depths) / len(depths) <= 43  # Beta(2,3) mean 40 %


# ------------------------------------------------------------------ serialization and stream

def test_compile_and_fill_roundtrip():
    event = article_session("orig", 0)[3]
    parts, slots = compile_event(event)
    assert sorted(slots) == ["event_id", "session_id", "ts", "ts"]
    stream = EventStream([Template("orig", [(parts, slots)])], run_id=0xBEEF, concurrent=1)
    key, head, mid, tail = stream.take(1)[0]
    parsed = parse_event(fill(head, mid, tail, 1_700_000_000_123))
    assert parsed["client_ts_ms"] == parsed["ts_ms"] == 1_700_000_000_123
    assert parsed["session_id"] == key.decode() and parsed["session_id"].startswith("orig~beef.")
    assert parsed["props"] == event["props"] and parsed["type"] == "hover"


def test_stream_ids_unique_and_session_order_kept():
    templates = []
    for k in range(5):
        events = article_session(f"t{k}", 0)
        templates.append(Template(f"t{k}", [compile_event(e) for e in events]))
    stream = EventStream(templates, run_id=42, seed=1, concurrent=3)
    items = stream.take(200)  # > 5 templates * 6 events: templates are re-used in later passes
    seen_ids, seqs = set(), defaultdict(list)
    for key, head, mid, tail in items:
        e = parse_event(fill(head, mid, tail, 1))
        assert e["event_id"] not in seen_ids
        seen_ids.add(e["event_id"])
        seqs[e["session_id"]].append(e["seq"])
    for sid, s in seqs.items():
        assert s == list(range(len(s))), sid  # each session's events in order, none skipped
    assert len({sid.rsplit(".", 1)[1] for sid in seqs}) > 1  # several passes, distinct session ids
    again = EventStream(templates, run_id=42, seed=1, concurrent=3).take(200)
    assert again == items  # same seed -> same events for job and baseline


# ------------------------------------------------------------------ py-spy profile shares

def test_classify_stack_first_matching_category_wins():
    from bench.stats import classify_stack

    state = ["DecideMicroBatch._flush (operators/personalization.py:172)", "Decider.decide (udfs/decide.py:228)",
             "MapStateImpl.get (pyflink/fn_execution/datastream/embedded/state_impl.py:208)"]
    assert classify_stack(state) == "keyed_state_get_put_pickle"
    assert classify_stack(state[:2]) == "decide_features_rules"
    assert classify_stack(["DecideMicroBatch._flush (operators/personalization.py:180)",
                           "RedisActionWriter.write (connectors/redis_store.py:100)"]) == "redis_pipeline"
    assert classify_stack(["FunctionOperation._output_elements (pyflink/fn_execution/embedded/operations.py:57)"]) \
        == "operator_and_pyflink_runtime"
    assert classify_stack([""]) is None


def test_profile_shares_ignores_idle_and_sums_to_one():
    from bench.stats import profile_shares

    raw = (" 70\n"
           "a (operators/personalization.py:1);b (pyflink/fn_execution/datastream/embedded/state_impl.py:2) 20\n"
           "a (operators/personalization.py:1);c (connectors/redis_store.py:3) 10\n")
    res = profile_shares(raw)
    assert res["idle_samples"] == 70 and res["busy_samples"] == 30
    assert res["share_of_busy"] == {"keyed_state_get_put_pickle": 0.667, "redis_pipeline": 0.333}
