"""SessionState: order, noise filter, enrichment, features; replay_features is the batch reference."""
from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from udfs.contract import make_event
from udfs.features import FEATURE_INDEX, FEATURE_NAMES, N_FEATURES
from udfs.noise import REASON_DEBOUNCED_CLICK, REASON_HOVER_TOO_SHORT, NoiseConfig
from udfs.session import (
    STATUS_APPLIED, STATUS_IGNORED, STATUS_LATE, STATUS_SUPPRESSED, SessionState, event_order_key,
    network_class, replay_features, replay_session,
)

T0 = 1_764_500_000_000
DESKTOP = {"device_class": "desktop", "viewport_w_px": 1440, "viewport_h_px": 900,
           "network": {"effective_type": "4g", "rtt_ms": 50, "downlink_mbps": 10.0},
           "geo": {"country": "DE", "region": "BE"}}
_n = 0


def ev(kind: str, dt_ms: int, session: str = "s1", item: str | None = "laptop-1", context=None, **props):
    global _n
    _n += 1
    return make_event(kind, session_id=session, client_ts_ms=T0 + dt_ms, source_key=f"test:{_n}", seq=_n,
                      page={"path": "/p", "item_id": item}, context=context or DESKTOP,
                      props=props or None)


def traj(dt_ms: int, straightness: float, speed: float, samples: int, session: str = "s1", item="laptop-1"):
    return ev("mouse_trajectory", dt_ms, session=session, item=item, path_length_px=100.0, straightness=straightness,
              mean_speed_px_s=speed, jerk_px_s3=0.0, pause_count=0, sample_count=samples, duration_ms=200)


def article_session():
    """The source article's scenario: view a laptop, scroll to specs, hover 3 s on '16GB RAM', click Compare."""
    return [
        ev("page_view", 0, title="Laptop"),
        ev("scroll", 2_000, scroll_depth_pct=40.0),
        ev("scroll", 4_000, scroll_depth_pct=75.0),
        ev("hover", 7_000, element_id="spec-ram", element_role="spec", hover_ms=3000),
        ev("click", 8_000, element_id="compare", element_role="compare_button", x_px=10, y_px=10),
    ]


def test_article_scenario_features():
    s = SessionState()
    outcomes = [s.apply(e) for e in article_session()]
    assert all(o.status == STATUS_APPLIED for o in outcomes)
    f = s.feature_dict()
    assert f["session_age_s"] == 8.0
    assert f["time_since_last_event_s"] == 1.0
    assert f["event_count"] == 5 and f["page_view_count"] == 1 and f["product_view_count"] == 1
    assert f["max_scroll_depth_pct"] == 75.0
    assert f["scroll_depth_pct_ema"] == pytest.approx(40 + (75 - 40) / 3, rel=1e-6)
    assert f["hover_ms_spec"] == 3000 and f["hover_ms_total"] == 3000 and f["hover_ms_product_card"] == 0
    assert f["hover_ms_max_element"] == 3000
    assert f["click_count"] == 1 and f["compare_click_count"] == 1 and f["click_velocity_per_min"] == 1
    assert f["device_desktop_flag"] == 1 and f["device_mobile_flag"] == 0
    assert f["viewport_w_px"] == 1440 and f["network_rtt_ms"] == 50 and f["network_slow_flag"] == 0
    e = s.enrichment()
    assert e["device_class"] == "desktop" and e["network_class"] == "fast" and e["geo_country"] == "DE"
    assert e["page_view_count"] == 1


def test_features_vector_shape_dtype_order():
    s = SessionState()
    for e in article_session():
        s.apply(e)
    vec = s.features()
    assert vec.shape == (N_FEATURES,) and vec.dtype == np.float32
    assert vec[FEATURE_INDEX["hover_ms_spec"]] == 3000
    assert list(s.feature_dict()) == list(FEATURE_NAMES)


def test_suppressed_events_change_no_feature():
    s = SessionState()
    s.apply(ev("click", 0, element_id="buy", element_role="add_to_cart_button"))
    before = s.features()
    out = s.apply(ev("click", 200, element_id="buy", element_role="add_to_cart_button"))
    assert out.status == STATUS_SUPPRESSED and out.reason == REASON_DEBOUNCED_CLICK
    out = s.apply(ev("hover", 300, element_id="card", element_role="product_card", hover_ms=40))
    assert out.reason == REASON_HOVER_TOO_SHORT
    np.testing.assert_array_equal(s.features(), before)
    assert s.suppressed_count == 2


def test_late_event_is_counted_and_changes_nothing():
    s = SessionState()
    s.apply(ev("page_view", 5_000))
    before = s.features()
    out = s.apply(ev("click", 1_000, element_id="x"))
    assert out.status == STATUS_LATE and s.late_count == 1
    np.testing.assert_array_equal(s.features(), before)


def test_exposure_is_ignored_and_other_session_rejected():
    s = SessionState()
    s.apply(ev("page_view", 0))
    out = s.apply(ev("exposure", 10, experiment_id="e", variant="a", content_id="c"))
    assert out.status == STATUS_IGNORED and s.feature_dict()["event_count"] == 1
    with pytest.raises(ValueError, match="event of session 'other' applied to session 's1'"):
        s.apply(ev("page_view", 20, session="other"))


def test_page_scope_resets_scroll_and_visible_time_not_session_counts():
    s = SessionState()
    for e in [ev("page_view", 0), ev("scroll", 10, scroll_depth_pct=80.0),
              ev("visibility", 20, state="hidden", visible_ms=15_000),
              ev("hover", 30, element_id="c1", element_role="product_card", hover_ms=2500),
              ev("page_view", 40, item="laptop-2")]:
        s.apply(e)
    f = s.feature_dict()
    assert f["max_scroll_depth_pct"] == 0 and f["scroll_depth_pct_ema"] == 0 and f["visible_time_on_page_s"] == 0
    assert f["hover_ms_product_card"] == 2500 and f["page_view_count"] == 2
    s.apply(ev("page_view", 50, item="laptop-1"))
    f = s.feature_dict()
    assert f["distinct_product_view_count"] == 2 and f["current_item_view_count"] == 2
    assert f["product_view_count"] == 3


def test_click_velocity_trailing_minute():
    s = SessionState()
    for i in range(5):
        s.apply(ev("click", i * 1_000, element_id=f"e{i}"))
    assert s.feature_dict()["click_velocity_per_min"] == 5
    s.apply(ev("page_view", 60_500))  # clicks at 0 and 500.. leave: window (500, 60500]
    assert s.feature_dict()["click_velocity_per_min"] == 4
    s.apply(ev("page_view", 200_000))
    assert s.feature_dict()["click_velocity_per_min"] == 0
    assert s.feature_dict()["click_count"] == 5


def test_hover_dwell_per_element_and_ema():
    s = SessionState()
    for dt, el, ms in [(0, "a", 1000), (1, "b", 1500), (2, "a", 1000)]:
        s.apply(ev("hover", dt, element_id=el, element_role="price", hover_ms=ms))
    f = s.feature_dict()
    assert f["hover_ms_max_element"] == 2000 and f["hover_ms_total"] == 3500
    a = 1 / 3
    assert f["hover_ms_ema"] == pytest.approx(a * 1000 + (1 - a) * (a * 1500 + (1 - a) * 1000), rel=1e-6)


def test_trajectory_ema_and_too_few_samples():
    s = SessionState()
    s.apply(traj(0, 0.9, 300.0, 20))
    out = s.apply(traj(1, 0.1, 5000.0, 2))
    assert out.status == STATUS_SUPPRESSED
    s.apply(traj(2, 0.3, 600.0, 20))
    f = s.feature_dict()
    assert f["trajectory_straightness_ema"] == pytest.approx(0.9 + (0.3 - 0.9) / 3, rel=1e-6)
    assert f["trajectory_speed_px_s_ema"] == pytest.approx(300 + (600 - 300) / 3, rel=1e-6)


def test_network_class():
    assert network_class({"effective_type": "3g"}) == "slow"
    assert network_class({"effective_type": "4g", "save_data": True}) == "slow"
    assert network_class({"effective_type": "4g"}) == "fast"
    assert network_class(None) == "unknown" and network_class({"effective_type": None}) == "unknown"


def test_pickle_mid_session_continues_identically():
    events = article_session() + [ev("add_to_cart", 9_000, item_id="laptop-1", quantity=1, price=999.0)]
    a = SessionState(NoiseConfig(click_debounce_ms=700), visit_count=3)
    for e in events[:3]:
        a.apply(e)
    b = pickle.loads(pickle.dumps(a))
    for e in events[3:]:
        assert a.apply(e) == b.apply(e)
    np.testing.assert_array_equal(a.features(), b.features())
    assert b.noise_config.click_debounce_ms == 700 and b.feature_dict()["visit_count"] == 3


def mixed_sessions(seed: int = 7, n_sessions: int = 4, n_events: int = 60):
    rng = random.Random(seed)
    out = []
    for k in range(n_sessions):
        t = 0
        for _ in range(n_events):
            t += rng.choice([0, 0, 50, 300, 700, 2_000, 40_000])
            kind = rng.choice(["page_view", "click", "click", "scroll", "hover", "visibility", "form",
                               "mouse_trajectory", "add_to_cart", "exposure"])
            props = {
                "page_view": {}, "click": {"element_id": rng.choice(["a", "b"]), "element_role": "compare_button"},
                "scroll": {"scroll_depth_pct": rng.uniform(0, 100)},
                "hover": {"element_id": rng.choice(["a", "b"]), "element_role": "product_card",
                          "hover_ms": rng.choice([50, 500, 3000])},
                "visibility": {"state": "visible", "visible_ms": rng.randint(0, 60_000)},
                "form": {"form_id": "f", "field_id": "q", "action": "focus"},
                "mouse_trajectory": None,
                "add_to_cart": {"item_id": "i1", "quantity": 1},
                "exposure": {"experiment_id": "x", "variant": "a", "content_id": "c"},
            }[kind]
            item = rng.choice(["i1", "i2", None])
            if props is None:
                out.append(traj(t, rng.random(), rng.uniform(0, 2000), rng.randint(1, 30), f"s{k}", item))
            else:
                out.append(ev(kind, t, session=f"s{k}", item=item, **props))
    return out


def test_replay_features_equals_event_by_event_stream_and_is_order_independent():
    events = mixed_sessions()
    reference = replay_features(events)
    assert reference.shape == (len(events), N_FEATURES) and reference.dtype == np.float32
    # stream: each session's events in event-time order, state pickled between events as Flink does
    states: dict[str, bytes] = {}
    for i in sorted(range(len(events)), key=lambda i: event_order_key(events[i])):
        e = events[i]
        raw = states.get(e["session_id"])
        s = pickle.loads(raw) if raw else SessionState()
        s.apply(e)
        states[e["session_id"]] = pickle.dumps(s)
        np.testing.assert_array_equal(s.features(), reference[i])
    shuffled = list(range(len(events)))
    random.Random(1).shuffle(shuffled)
    again = replay_features([events[i] for i in shuffled])
    np.testing.assert_array_equal(again, reference[shuffled])


def test_no_look_ahead_prefix_features_equal_full_replay():
    events = [e for e in mixed_sessions(seed=3, n_sessions=1, n_events=40)]
    ordered, full, outcomes = replay_session(events)
    assert len(outcomes) == len(ordered)
    for k in (1, 7, 20, 39):
        _, prefix, _ = replay_session(ordered[:k])
        np.testing.assert_array_equal(prefix[-1], full[k - 1])


def test_replay_session_rejects_two_sessions():
    with pytest.raises(ValueError, match="event of session 'b' applied to session 'a'"):
        replay_session([ev("page_view", 0, session="a"), ev("page_view", 1, session="b")])


def test_pickle_of_another_layout_is_refused():
    s = SessionState()
    s.apply(ev("page_view", 0))
    state = s.__getstate__()
    with pytest.raises(ValueError, match="layout"):
        SessionState.__new__(SessionState).__setstate__((state[0] + 1,) + state[1:])
    with pytest.raises(ValueError, match="layout"):
        SessionState.__new__(SessionState).__setstate__(state[:-1])


def test_page_type_counts_and_times_weekend_and_returning_visitor():
    """Issue 17: per-page-type counts and time on page (closed by the next page view), weekend, returning."""
    from udfs.contract import make_event
    from udfs.session import weekend_flag

    saturday = 1_764_374_400_000  # 2025-11-29 00:00 UTC, a Saturday
    assert weekend_flag(saturday) == 1.0 and weekend_flag(saturday + 2 * 86_400_000) == 0.0
    steps = [("page_view", 0, {"path": "/account", "type": "administrative"}),
             ("scroll", 5_000, {"path": "/account", "type": "administrative"}),
             ("page_view", 8_000, {"path": "/p/1", "item_id": "1"}),  # untyped with item: product related
             ("page_view", 20_000, {"path": "/help", "type": "informational"}),
             ("page_view", 30_000, {"path": "/"}),  # untyped, no item: no type
             ("page_view", 35_000, {"path": "/p/2", "item_id": "2"}),
             ("click", 36_500, {"path": "/p/2", "item_id": "2"})]
    props = {"page_view": {"title": "t"}, "scroll": {"scroll_depth_pct": 50.0, "offset_px": 1, "document_height_px": 9},
             "click": {"element_id": "b", "x_px": 1, "y_px": 1}}
    state = SessionState(visit_count=3)
    for n, (kind, dt, page) in enumerate(steps):
        state.apply(make_event(kind, session_id="s", client_ts_ms=saturday + dt, seq=n, source_key=f"k{n}",
                               page=page, props=props[kind]))
    d = state.feature_dict()
    assert (d["administrative_page_view_count"], d["administrative_page_time_s"]) == (1.0, 8.0)
    assert (d["product_related_page_view_count"], d["product_related_page_time_s"]) == (2.0, 13.5)
    assert (d["informational_page_view_count"], d["informational_page_time_s"]) == (1.0, 10.0)
    assert d["page_view_count"] == 5.0 and d["weekend_flag"] == 1.0 and d["returning_visitor_flag"] == 1.0
    assert SessionState().feature_dict()["returning_visitor_flag"] == 0.0
