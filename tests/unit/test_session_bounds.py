"""SessionState behaviour nothing asserted (docs/mutation.md: the survivors of mutmut over udfs/session.py):
page rates, the bounds of the per-session tables, implausible events, the weekend flag on real dates,
network and device features, order ties on ``seq``, old pickles, and the replay helpers' arguments.
Expected values are the events' own numbers, the calendar, or udfs/session.py's docstrings."""
from __future__ import annotations

import pickle
from array import array
from collections import deque
from datetime import datetime, timezone

import pytest

from udfs.contract import make_event
from udfs.noise import NoiseConfig
from udfs.plausibility import REASON_IMPLAUSIBLE
from udfs.noise import REASON_BOT
from udfs.session import (MAX_TRACKED_KEYS, STATE_VERSION, STATUS_SUPPRESSED, SessionState, event_order_key,
                          replay_features, replay_session, weekend_flag)

T0 = 1_764_000_000_000  # 2025-11-24 16:00 UTC, a Monday
CONTEXT = {"device_class": "mobile", "viewport_w_px": 390, "viewport_h_px": 844,
           "network": {"effective_type": "4g", "rtt_ms": 75, "downlink_mbps": 2.5}}
_n = 0


def _ev(kind: str, ts_ms: int, *, item: str | None = "laptop-1", context: dict | None = None,
        session: str = "s", **props) -> dict:
    global _n
    _n += 1
    return make_event(kind, session_id=session, client_ts_ms=ts_ms, source_key=f"bounds:{_n}", seq=_n,
                      page={"path": "/p", "item_id": item}, context=context or CONTEXT, props=props or None)


def _features(events, state: SessionState | None = None) -> dict[str, float]:
    state = state or SessionState()
    for e in events:
        state.apply(e)
    return state.feature_dict()


def _rated_view(ts_ms: int, bounce: float | None, exit_rate: float | None) -> dict:
    e = _ev("page_view", ts_ms, title="t")
    if bounce is not None:
        e["_page_bounce_rate"] = bounce
    if exit_rate is not None:
        e["_page_exit_rate"] = exit_rate
    return e


def test_page_rates_are_the_mean_over_the_rated_page_views_only():
    f = _features([_rated_view(T0, 0.25, 0.5), _rated_view(T0 + 1_000, 0.75, 0.25),
                   _rated_view(T0 + 2_000, 0.9, None),  # half a pair: not counted
                   _rated_view(T0 + 3_000, None, None)])
    assert f["page_bounce_rate_mean_ratio"] == pytest.approx((0.25 + 0.75) / 2)
    assert f["page_exit_rate_mean_ratio"] == pytest.approx((0.5 + 0.25) / 2)


def test_items_past_max_tracked_keys_are_counted_as_new_and_not_tracked():
    views = [_ev("page_view", T0 + 1_000 * i, item=f"item-{i}", title="t") for i in range(MAX_TRACKED_KEYS)]
    extra = f"item-{MAX_TRACKED_KEYS}"
    views += [_ev("page_view", T0 + 1_000 * (MAX_TRACKED_KEYS + k), item=extra, title="t") for k in range(2)]
    f = _features(views)
    assert f["distinct_product_view_count"] == MAX_TRACKED_KEYS + 2  # the untracked item counted twice as new
    assert f["current_item_view_count"] == 1.0


def test_hover_elements_past_max_tracked_keys_are_not_accumulated():
    hovers = [_ev("hover", T0 + 1_000 * i, element_id=f"el-{i}", element_role="spec", hover_ms=100)
              for i in range(MAX_TRACKED_KEYS)]
    hovers += [_ev("hover", T0 + 1_000 * (MAX_TRACKED_KEYS + k), element_id="el-new", element_role="price", hover_ms=150)
               for k in range(2)]
    f = _features(hovers)
    assert f["hover_ms_max_element"] == 150.0  # an untracked element's dwell is this hover's only


def test_spec_hovers_add_up_and_hovers_without_element_id_are_keyed_by_role():
    f = _features([_ev("hover", T0, element_role="spec", hover_ms=1_500),
                   _ev("hover", T0 + 2_000, element_role="spec", hover_ms=2_000),
                   _ev("hover", T0 + 4_000, element_role="price", hover_ms=1_200)])
    assert f["hover_ms_spec"] == 3_500.0
    assert f["hover_ms_max_element"] == 3_500.0  # "spec": 1,500 + 2,000; "price": 1,200 on its own


def test_implausible_events_are_suppressed_and_counted_each_time():
    s = SessionState()
    s.apply(_ev("page_view", T0, title="t"))
    for k in range(2):
        e = _ev("click", T0 + 1_000 * (k + 1), element_id=f"b{k}")
        e["flags"] = ["value_implausible"]
        out = s.apply(e)
        assert (out.status, out.reason) == (STATUS_SUPPRESSED, REASON_IMPLAUSIBLE)
    assert s.suppressed_count == 2 and s.feature_dict()["click_count"] == 0.0


@pytest.mark.parametrize("day,weekend", [
    ("2026-12-04", 0.0),  # Friday
    ("2026-12-05", 1.0),  # Saturday
    ("2026-12-06", 1.0),  # Sunday
    ("2026-12-07", 0.0),  # Monday
    ("2026-12-02", 0.0),  # Wednesday
])
def test_weekend_flag_of_an_applied_event_follows_the_calendar(day, weekend):
    ts = int(datetime.fromisoformat(day + "T12:00:00").replace(tzinfo=timezone.utc).timestamp() * 1000)
    assert _features([_ev("click", ts, element_id="b")])["weekend_flag"] == weekend
    assert weekend_flag(ts) == weekend


def test_device_and_network_features_are_the_contexts_values_and_zero_when_missing():
    f = _features([_ev("click", T0, element_id="b")])
    assert (f["device_mobile_flag"], f["device_tablet_flag"], f["device_desktop_flag"]) == (1.0, 0.0, 0.0)
    assert (f["network_rtt_ms"], f["network_downlink_mbps"]) == (75.0, 2.5)
    bare = _features([_ev("click", T0, element_id="b", context={"device_class": "desktop"})])
    assert (bare["network_rtt_ms"], bare["network_downlink_mbps"]) == (0.0, 0.0)
    assert (bare["viewport_w_px"], bare["viewport_h_px"]) == (0.0, 0.0)


def test_scroll_depths_below_1_pct_count_and_a_negative_depth_counts_as_0():
    assert _features([_ev("scroll", T0, scroll_depth_pct=0.5)])["max_scroll_depth_pct"] == 0.5
    raw = _ev("scroll", T0, scroll_depth_pct=5.0)
    raw["props"]["scroll_depth_pct"] = -5.0  # not from normalize (which clamps): the session clamps too
    f = _features([raw])
    assert (f["max_scroll_depth_pct"], f["scroll_depth_pct_ema"]) == (0.0, 0.0)


def test_a_visibility_without_visible_ms_adds_no_visible_time():
    f = _features([_ev("page_view", T0, title="t"), _ev("visibility", T0 + 1_000, state="hidden")])
    assert f["visible_time_on_page_s"] == 0.0


def test_equal_times_are_ordered_by_seq_before_event_id():
    a = {"ts_ms": 5, "seq": 1, "event_id": "a"}
    b = {"ts_ms": 5, "seq": 0, "event_id": "b"}
    assert sorted([a, b], key=event_order_key) == [b, a]


def test_a_state_of_another_layout_is_refused_naming_both_layouts():
    state = SessionState().__getstate__()
    other = (STATE_VERSION - 1,) + state[1:]
    with pytest.raises(ValueError, match=rf"layout {STATE_VERSION - 1}, this code reads {STATE_VERSION}"):
        SessionState.__new__(SessionState).__setstate__(other)


def test_a_state_pickled_with_a_list_of_features_and_a_deque_of_clicks_is_migrated():
    """States pickled before ``_v`` became an array and ``_click_ts`` a list (same layout version)."""
    first = [_ev("page_view", T0, title="t"), _ev("click", T0 + 1_000, element_id="a"),
             _ev("click", T0 + 2_000, element_id="b")]
    later = [_ev("click", T0 + 70_000, element_id="c"), _ev("scroll", T0 + 71_000, scroll_depth_pct=40.0)]
    reference = SessionState()
    for e in first:
        reference.apply(e)
    slots = list(SessionState.__slots__)
    old = list(reference.__getstate__())
    old[1 + slots.index("_v")] = list(reference._v)
    old[1 + slots.index("_click_ts")] = deque(old[1 + slots.index("_click_ts")])
    restored = SessionState.__new__(SessionState)
    restored.__setstate__(tuple(old))
    # and as pickled until 2026-12-04: _v as the array itself (now its raw bytes)
    as_array = list(reference.__getstate__())
    as_array[1 + slots.index("_v")] = array("d", reference._v)
    restored_array = SessionState.__new__(SessionState)
    restored_array.__setstate__(pickle.loads(pickle.dumps(tuple(as_array))))  # shares nothing with the others
    assert isinstance(reference.__getstate__()[1 + slots.index("_v")], bytes)
    reference = pickle.loads(pickle.dumps(reference))
    for e in later:
        assert restored.apply(e) == reference.apply(e) == restored_array.apply(e)
    assert restored.feature_dict() == reference.feature_dict() == restored_array.feature_dict()
    assert restored.feature_dict()["click_velocity_per_min"] == 1.0  # the clicks 68 s before left the window


def test_replay_session_is_a_first_visit_unless_told():
    _, rows, _ = replay_session([_ev("click", T0, element_id="b", session="r")])
    f = dict(zip(SessionState().feature_dict(), rows[-1].tolist()))
    assert (f["visit_count"], f["returning_visitor_flag"]) == (1.0, 0.0)


def test_replay_features_uses_the_given_noise_config():
    clicks = [_ev("click", T0, element_id="b", session="n"), _ev("click", T0 + 800, element_id="b", session="n")]
    slow = NoiseConfig(click_debounce_ms=1_000)
    rows = replay_features(clicks, noise_config=slow)
    assert rows[-1][list(SessionState().feature_dict()).index("click_count")] == 1.0  # 800 ms < 1,000: debounced
    assert replay_features(clicks)[-1][list(SessionState().feature_dict()).index("click_count")] == 2.0


def test_a_bot_flagged_context_is_suppressed_by_the_noise_filter():
    out = SessionState().apply(_ev("click", T0, element_id="b", context={"device_class": "bot", "is_bot": True}))
    assert (out.status, out.reason) == (STATUS_SUPPRESSED, REASON_BOT)


def test_the_second_visit_is_a_returning_visitor():
    assert SessionState(visit_count=2).feature_dict()["returning_visitor_flag"] == 1.0
    assert SessionState(visit_count=1).feature_dict()["returning_visitor_flag"] == 0.0


def test_card_hovers_and_compare_clicks_add_up_and_late_events_are_counted():
    s = SessionState()
    steps = [_ev("hover", T0, element_id="c1", element_role="product_card", hover_ms=1_500),
             _ev("hover", T0 + 2_000, element_id="c2", element_role="product_card", hover_ms=2_000),
             _ev("click", T0 + 3_000, element_id="cmp-1", element_role="compare_button"),
             _ev("click", T0 + 4_000, element_id="cmp-2", element_role="compare_button")]
    for e in steps:
        s.apply(e)
    for k in range(2):
        s.apply(_ev("click", T0 + 10 * k, element_id=f"late-{k}"))  # older than the newest event seen
    f = s.feature_dict()
    assert (f["hover_ms_product_card"], f["compare_click_count"], s.late_count) == (3_500.0, 2.0, 2)


def test_a_click_exactly_one_window_old_has_left_the_click_velocity():
    from udfs.session import CLICK_VELOCITY_WINDOW_MS as W

    at_edge = _features([_ev("click", T0, element_id="a"), _ev("click", T0 + W, element_id="b")])
    assert at_edge["click_velocity_per_min"] == 1.0
    two_old = _features([_ev("click", T0, element_id="a"), _ev("click", T0 + 1_000, element_id="b"),
                         _ev("click", T0 + 1_000 + W, element_id="c")])
    assert two_old["click_velocity_per_min"] == 1.0


def test_replay_helpers_pass_visit_counts_and_noise_config_on():
    names = list(SessionState().feature_dict())
    clicks = [_ev("click", T0, element_id="b", session="v"), _ev("click", T0 + 800, element_id="b", session="v")]
    rows = replay_features(clicks, visit_counts={"v": 3})
    assert (rows[-1][names.index("visit_count")], rows[-1][names.index("returning_visitor_flag")]) == (3.0, 1.0)
    _, session_rows, _ = replay_session(clicks, noise_config=NoiseConfig(click_debounce_ms=1_000), visit_count=3)
    assert session_rows[-1][names.index("click_count")] == 1.0  # 800 ms < 1,000: debounced
    assert session_rows[-1][names.index("visit_count")] == 3.0
