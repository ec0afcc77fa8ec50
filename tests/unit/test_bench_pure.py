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


# ------------------------------------------------------------------ issue 19: scale and soak arithmetic

def test_slope_ci_flat_vs_growing():
    from bench.stats import slope_ci

    xs = list(range(1, 31))
    noise = [((i * 7919) % 13) - 6 for i in xs]  # deterministic, mean ~0, no trend
    flat = slope_ci(xs, [1000 + e for e in noise])
    assert flat["flat"] is True and flat["ci_low"] < 0 < flat["ci_high"]
    grow = slope_ci(xs, [1000 + 50 * x + e for x, e in zip(xs, noise)])
    assert grow["flat"] is False and grow["ci_low"] > 40 and abs(grow["slope"] - 50) < 2
    assert slope_ci([1, 2], [3, 4])["flat"] is None
    with pytest.raises(ValueError):
        slope_ci([1, 2, 3], [1, 2])


def test_slope_ci_interval_is_t_times_stderr():
    from scipy import stats as sst

    from bench.stats import slope_ci

    xs, ys = [1, 2, 3, 4, 5], [2.0, 4.1, 5.9, 8.2, 9.9]
    fit = slope_ci(xs, ys)
    t = sst.t.ppf(0.975, 3)
    assert fit["ci_high"] - fit["slope"] == pytest.approx(t * fit["stderr"])
    assert fit["slope"] == pytest.approx(1.99)


def test_per_unit():
    from bench.stats import per_unit

    assert per_unit(4_500_000, 1000) == 4500.0
    assert per_unit(None, 10) is None and per_unit(10, 0) is None


def test_recovery_figures_counts_only_events_after_the_kill():
    from bench.stats import recovery_figures

    kill = 10_000
    trace = [(9_500, 9_400, 9_400),          # before the kill: ignored
             (25_000, 10_100, 10_100),       # first post-kill event readable 15 s after the kill, 14.9 s late
             (26_000, 20_000, 20_000),       # still behind
             (30_500, 30_000, 30_000)]       # readable within 1 s of its append: caught up at 20.5 s
    fig = recovery_figures(trace, kill)
    assert fig == {"first_readable_s": 15.0, "caught_up_s": 20.5, "events_after_kill": 3}
    assert recovery_figures(trace[:1], kill)["first_readable_s"] is None


def test_redis_memory_estimate_mean_times_count():
    from bench.stats import redis_memory_estimate

    est = redis_memory_estimate({"session": (1000, [300, 500]), "agg": (10, [])})
    assert est["session"] == {"keys": 1000, "sampled": 2, "mean_bytes": 400.0, "total_bytes": 400_000}
    assert est["agg"]["total_bytes"] == 0 and est["total_bytes"] == 400_000


def test_listening_ports_from_proc_net_tcp():
    from bench.flinkrest import listening_ports

    text = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            "   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n"
            "   1: 0100007F:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1\n"
            "   2: 0100007F:1F93 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 333 1\n"
            "   3: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1\n")
    # 0x1F91 = 8081 (ours), 0x1F92 = 8082 (another process's), 0x1F93 established, 0x2382 = 9090 out of range
    assert listening_ports(text, {"111", "333", "444"}) == [8081]


def test_open_each_touches_every_slot_once_then_take_goes_on():
    templates = []
    for k in range(5):
        events = article_session(f"t{k}", 0)
        templates.append(Template(f"t{k}", [compile_event(e) for e in events]))
    stream = EventStream(templates, run_id=42, seed=1, concurrent=7)
    opening = stream.open_each()
    sessions = [parse_event(fill(h, m, t, 1)) for _, h, m, t in opening]
    assert len({e["session_id"] for e in sessions}) == 7 and all(e["seq"] == 0 for e in sessions)
    later = [parse_event(fill(h, m, t, 1)) for _, h, m, t in stream.take(30)]
    firsts = {e["session_id"] for e in later if e["seq"] == 0}
    assert not firsts & {e["session_id"] for e in sessions}  # opened sessions continue, not restart


def _inputs(**over):
    m = {"sustained_eps": 5000, "core_ms_per_1k_events": 125.0, "flink_state_bytes_per_session": 4000.0,
         "heap_bytes_per_session": 3000.0, "rss_bytes_per_session": 20_000.0, "base_rss_bytes": 800 * 1024 ** 2,
         "redis_bytes_per_session": 1000.0, "redis_agg_bytes_per_eps": 0.0, "redis_actions_stream_bytes": 0.0,
         "checkpoint_write_bytes_per_s": 100 * 1024 ** 2}
    m.update(over)
    return m


def test_sizing_one_taskmanager_for_a_small_load():
    from bench.sizing import size

    r = size(2000, 100_000, _inputs())
    assert r["interpreters"] == 1  # 2,000 <= 0.7 * 5,000
    assert r["cores"] == pytest.approx(max(2000 / 1000 * 125 / 1000, 2000 / 5000) * 2.0)  # interpreter 40 % busy
    assert r["rss_per_tm_bytes"] == pytest.approx(800 * 1024 ** 2 + 20_000 * 100_000)
    assert r["heap_per_tm_bytes"] == 4000 * 100_000  # the larger of state and measured heap per session
    assert r["redis_bytes"] == 1000 * 100_000
    assert r["checkpoint_s"] == pytest.approx(4000 * 100_000 / (100 * 1024 ** 2))
    # ceilings: 4 partitions x 3,500 = 14,000/s (x7), 8 shards x 3,500 (x14), 25 GiB / 0.1 GB of Redis (x268)
    assert r["limits"] == [] and r["next_limit"] == "Kafka partitions (4)" and r["next_limit_at_x_load"] == 7.0


def test_sizing_scales_out_and_names_the_limits():
    from bench.sizing import size

    r = size(20_000, 10_000_000, _inputs())
    assert r["interpreters"] == 6  # ceil(20,000 / 3,500)
    assert r["heap_per_tm_bytes"] == pytest.approx(4000 * 10_000_000 / 6)  # 6.2 GiB > 4 GiB
    text = "; ".join(r["limits"])
    assert "GIL: 6" in text and "Kafka: 6 partitions" in text and "heap" in text
    assert "max parallelism" not in text  # 6 <= 8 shards
    assert "max parallelism" in "; ".join(size(40_000, 1000, _inputs())["limits"])
    missing = size(2000, 1000, _inputs(sustained_eps=None, rss_bytes_per_session=None))
    assert missing["interpreters"] is None and missing["rss_per_tm_bytes"] is None


def test_replace_block_keeps_markers():
    from bench.sizing import replace_block

    text = "a\n<!-- x:begin -->\nold\n<!-- x:end -->\nb\n"
    assert replace_block(text, "x", "new") == "a\n<!-- x:begin -->\nnew\n<!-- x:end -->\nb\n"
    with pytest.raises(ValueError):
        replace_block("no markers", "x", "new")


def test_marginal_costs_is_the_slope_over_sessions_in_state():
    from bench.scale import marginal_costs

    rows = [{"sessions_in_state": n, "checkpoint": {"state_size": 1_000_000 + 3000 * n},
             "level": {"heap_used_bytes": {"min": 5e7 + 2000 * n}, "rss_bytes": {"last": 8e8 + 20_000 * n}},
             "redis": {"session_families_bytes": 900 * n}} for n in (3_000, 12_000, 100_000)]
    m = marginal_costs(rows)
    assert m["flink_state"]["slope"] == pytest.approx(3000)
    assert m["jvm_rss"]["slope"] == pytest.approx(20_000) and m["redis_session_keys"]["slope"] == pytest.approx(900)
    two = marginal_costs(rows[:2])
    assert two["heap_used_min"]["slope"] == pytest.approx(2000) and two["heap_used_min"]["ci_low"] is None


def test_soak_slopes_leave_out_the_warmup():
    from bench.scale import soak_slopes

    minutes = [{"minute": i, "heap_used_min_bytes": (10 * i if i <= 5 else 50 + (i % 2)), "p99_ms": 100}
               for i in range(1, 21)]
    s = soak_slopes(minutes, warmup_min=5)
    assert s["heap_used_min_bytes"]["n"] == 15 and s["heap_used_min_bytes"]["flat"] is True
    assert s["rss_bytes"]["slope"] is None  # no data


def test_redis_family_slopes_find_the_family_that_grows():
    from bench.scale import redis_family_slopes

    minutes = [{"minute": i, "redis_families": {"session": {"keys": 10, "bytes": 5000 + (i % 2)},
                                                 "stats": {"keys": i, "bytes": 1000 * i}}}
               for i in range(1, 21)]
    s = redis_family_slopes(minutes, warmup_min=5)
    assert s["stats"]["slope"] == pytest.approx(1000) and s["stats"]["flat"] is False
    assert s["session"]["flat"] is True and s["session"]["n"] == 15


def test_soak_slopes_leave_the_capped_actions_stream_apart():
    from bench.scale import soak_slopes
    from bench.sizing import stream_full_minute

    # the actions stream fills until minute 15 (past the warm-up of 5), then stays at its cap; the rest is flat
    def row(i):
        stream = 1000 * min(i, 15)
        return {"minute": i, "redis_prefix_bytes_excl_trace": 50_000 + (i % 2) + stream,
                "redis_families": {"actions": {"keys": 1, "bytes": stream}, "session": {"keys": 9, "bytes": 50_000}}}
    minutes = [row(i) for i in range(1, 31)]
    s = soak_slopes(minutes, warmup_min=5)
    assert s["redis_prefix_bytes_excl_trace"]["flat"] is False and s["redis_prefix_bytes_excl_trace"]["slope"] > 0
    derived = s["redis_prefix_bytes_excl_trace_and_actions_stream"]
    assert derived["flat"] is True and derived["n"] == 25 and derived["mean"] == pytest.approx(50_000.5, abs=0.1)
    assert stream_full_minute(minutes) == 15
    # a leak outside the stream is not hidden by it
    leak = [{**r, "redis_prefix_bytes_excl_trace": r["redis_prefix_bytes_excl_trace"] + 100 * r["minute"]}
            for r in minutes]
    fit = soak_slopes(leak, warmup_min=5)["redis_prefix_bytes_excl_trace_and_actions_stream"]
    assert fit["flat"] is False and fit["slope"] == pytest.approx(100, rel=0.05)
    assert soak_slopes([{"minute": i, "p99_ms": 1} for i in range(1, 9)], 2)[
        "redis_prefix_bytes_excl_trace_and_actions_stream"]["slope"] is None
    assert stream_full_minute([{"minute": 1}]) is None


def test_capacity_points_and_interpolation():
    from bench.sizing import capacity_at, capacity_points

    counts = [{"sessions_in_state": 1000, "level": {"sent": 40_000, "achieved_eps": 2000.0, "drained": True,
                                                    "drain_s": 0.5}},
              {"sessions_in_state": 100_000, "level": {"sent": 40_000, "achieved_eps": 2000.0, "drained": True,
                                                       "drain_s": 20.0}}]
    pts = capacity_points(counts, sustained_eps=5000)
    assert pts == [(1000.0, 5000.0), (100_000.0, 1000.0)]  # kept up: 5,000; behind: 40,000 / (20 + 20 s)
    assert capacity_at(pts, 500) == 5000
    assert capacity_at(pts, 10_000) == pytest.approx(3000)  # halfway in log(sessions)
    assert capacity_at(pts, 200_000) == pytest.approx(500)  # beyond: inversely with sessions
    assert capacity_at([], 10) is None


def test_sizing_adds_interpreters_when_sessions_hold_one_back():
    from bench.sizing import size

    m = _inputs(capacity_points=[(1000.0, 5000.0), (100_000.0, 1000.0)])
    r = size(2000, 100_000, m)
    # K=1: 2,000 > 0.7 x 1,000; K=2: 1,000 > 0.7 x capacity(50k) = 0.7 x 1,602; holds
    assert r["interpreters"] == 2
    from bench.sizing import capacity_at

    assert r["cores"] == pytest.approx(max(2000 / 1000 * 125 / 1000,
                                           2000 / capacity_at(m["capacity_points"], 50_000)) * 2.0)


def test_by_second_groups_by_the_send_second_with_nearest_rank_percentiles():
    from bench.stats import by_second

    start = 10_000
    # (readable, kafka, client): second 0 has latencies 5, 7; second 2 has 100
    trace = [(start + 15, start + 10, start + 10), (start + 907, start + 900, start + 999),
             (start + 2_200, start + 2_100, start + 2_000)]
    assert by_second(trace, start) == [
        {"s": 0, "n": 2, "p50_ms": 5.0, "p99_ms": 7.0, "max_ms": 7.0},
        {"s": 2, "n": 1, "p50_ms": 100.0, "p99_ms": 100.0, "max_ms": 100.0},
    ]


def test_hot_fraction_matches_a_simulation_of_poisson_sessions_between_state_writes():
    import numpy as np

    from bench.session_size import hot_fraction

    rng = np.random.default_rng(3)
    write_s = 10.0
    for gap_s in (0.5, 5.0, 50.0):
        # time since the last write, and whether the session had an event in it (first event after the
        # write: exponential with mean gap_s, memoryless)
        t = rng.uniform(0.0, write_s, 200_000)
        first = rng.exponential(gap_s, t.size)
        simulated = float(np.mean(first <= t))
        assert abs(hot_fraction(gap_s, write_s) - simulated) < 0.01, gap_s
    assert hot_fraction(1e-6, write_s) > 0.999 and hot_fraction(1e6, write_s) < 1e-4
    with pytest.raises(ValueError, match="must be > 0"):
        hot_fraction(0.0, write_s)


def test_parse_heap_info_reads_g1_total_and_used():
    from bench.scale import parse_heap_info

    text = ("12345:\n garbage-first heap   total 3145728K, used 712345K [0x0000000740000000, 0x0000000800000000)\n"
            "  region size 2048K, 3 young (6144K), 0 survivors (0K)\n")
    assert parse_heap_info(text) == (3145728 * 1024, 712345 * 1024)
    assert parse_heap_info("12345:\n def new generation   total 9216K, used 4003K") is None


def test_soak_slopes_fit_the_live_heap_only_where_it_was_measured():
    from bench.scale import soak_slopes

    minutes = [{"minute": i, "heap_used_min_bytes": 100, "p99_ms": 50,
                **({"heap_live_bytes": 1000 + 10 * i} if i % 3 == 0 else {})} for i in range(1, 31)]
    fit = soak_slopes(minutes, warmup_min=10)["heap_live_bytes"]
    assert fit["n"] == 7 and fit["slope"] == pytest.approx(10.0) and fit["flat"] is False


def test_slope_ci_of_a_constant_series_is_flat_zero():
    from bench.stats import slope_ci

    fit = slope_ci([1, 2, 3, 4], [7.0, 7.0, 7.0, 7.0])
    assert fit["slope"] == 0.0 and (fit["ci_low"], fit["ci_high"]) == (0.0, 0.0) and fit["flat"] is True
    assert slope_ci([1, 2, 3, 4], [7.0, 8.0, 9.0, 10.1])["flat"] is False


def test_targets_table_has_one_set_of_soak_rows_per_soak():
    from bench.sizing import targets_table

    def soak(ttl_s, heap_slope):
        flat = {"slope": 0.0, "ci_low": -1.0, "ci_high": 1.0, "n": 20, "flat": True, "mean": 1.0}
        heap = {**flat, "slope": heap_slope, "ci_low": heap_slope - 1.0, "ci_high": heap_slope + 1.0,
                "flat": heap_slope - 1.0 <= 0 <= heap_slope + 1.0}
        return {"session_ttl_s": ttl_s, "minutes": [{"minute": i} for i in range(1, 31)],
                "slopes": {"heap_live_bytes": heap, "redis_session_families_bytes": flat}}

    rows = targets_table({"counts": []}, [soak(600, 0.0), soak(1800, 5_000.0)], None).splitlines()
    heap_rows = [r for r in rows if "live heap" in r]
    assert len(heap_rows) == 2
    assert heap_rows[0].startswith("| soak (TTL 600 s)") and heap_rows[0].endswith("| met |")
    assert heap_rows[1].startswith("| soak (TTL 1,800 s)") and heap_rows[1].endswith("| missed |")
    assert sum("Redis (session keys) slope" in r for r in rows) == 2


def test_write_pause_simulation_encodes_ahead_only_when_on_and_writes_the_same_sessions():
    from bench.write_pause import simulate
    from udfs.decide import SessionEntry

    entries = [SessionEntry() for _ in range(3)]
    args = dict(entries=entries, n_sessions=400, events_per_s=200.0, seconds=25.0, window_ms=10, idle_ms=1_500,
                per_batch=16, write_interval_ms=10_000, summary_interval_ms=1_000, seed=1)
    off = simulate(lead_ms=0, **args)
    on = simulate(lead_ms=4_000, **args)
    assert off["encoded_ahead"] == 0 and on["encoded_ahead"] > 0
    # the same events (same seed): every changed session is encoded once per write, ahead or at it
    assert on["encoded_ahead"] + on["encoded_at_write"] >= off["encoded_at_write"] > 0
    assert on["encoded_at_write"] < off["encoded_at_write"]
    assert len(on["write_callback_us"]) == len(off["write_callback_us"]) >= 2
    assert len(on["callback_us"]) == len(off["callback_us"]) == 2_500
