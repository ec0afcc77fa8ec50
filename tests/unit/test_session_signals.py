"""Session features of the signals the scenario tests do not send (visibility, forms, carts), the
ignore reasons, and the enrichment dict (udfs/session.py; docs/contracts.md §2). Expected values are
the events' own numbers."""
from __future__ import annotations

import pytest

from udfs.contract import make_event
from udfs.session import (REASON_NOT_BEHAVIORAL, REASON_UNKNOWN_TYPE, STATUS_APPLIED, STATUS_IGNORED,
                          SessionState)

pytestmark = pytest.mark.claim

T0 = 1_764_000_000_000
CONTEXT = {"device_class": "tablet", "viewport_w_px": 820, "viewport_h_px": 1180,
           "network": {"effective_type": "3g", "rtt_ms": 300, "downlink_mbps": 0.7},
           "geo": {"country": "FR", "region": "IDF"}}


def _ev(kind: str, dt_ms: int, n: int, **props) -> dict:
    return make_event(kind, session_id="s", client_ts_ms=T0 + dt_ms, source_key=f"sig:{n}", seq=n,
                      page={"path": "/p", "item_id": "laptop-1"}, context=CONTEXT, props=props or None)


def test_visibility_forms_and_carts_update_their_features():
    s = SessionState()
    steps = [
        _ev("page_view", 0, 1, title="t"),
        _ev("visibility", 12_500, 2, state="hidden", visible_ms=12_500),
        _ev("visibility", 20_000, 3, state="visible", visible_ms=12_500),
        _ev("form", 21_000, 4, form_id="alert", field_id="email", action="focus"),
        _ev("form", 22_000, 5, form_id="alert", field_id="email", action="blur"),
        _ev("add_to_cart", 23_000, 6, item_id="laptop-1", quantity=1, price=999.0),
        _ev("add_to_cart", 24_000, 7, item_id="sleeve-14", quantity=2, price=29.0),
    ]
    assert [s.apply(e).status for e in steps] == [STATUS_APPLIED] * len(steps)
    f = s.feature_dict()
    assert f["visible_time_on_page_s"] == 12.5  # the largest visible_ms so far, in s
    assert f["form_interaction_count"] == 2.0
    assert f["add_to_cart_count"] == 2.0
    assert f["time_since_last_event_s"] == 1.0  # 23 s -> 24 s


def test_the_first_event_has_no_gap_and_a_new_page_resets_visible_time():
    s = SessionState()
    s.apply(_ev("page_view", 0, 1, title="t"))
    assert s.feature_dict()["time_since_last_event_s"] == 0.0
    s.apply(_ev("visibility", 5_000, 2, state="hidden", visible_ms=5_000))
    assert s.feature_dict()["visible_time_on_page_s"] == 5.0
    s.apply(_ev("page_view", 6_000, 3, title="u"))
    assert s.feature_dict()["visible_time_on_page_s"] == 0.0


def test_ignored_events_say_why():
    s = SessionState()
    out = s.apply(_ev("exposure", 0, 1, experiment_id="e", variant="v", content_id="c"))
    assert (out.status, out.reason) == (STATUS_IGNORED, REASON_NOT_BEHAVIORAL)
    intent = _ev("intent", 1, 2, intent_score=0.5, model_version="intent-lr/1", rules_version="r",
                 feature_hash="fnv1a32:00000000", trigger_event_id="x", action=None, rule_id=None, edge_latency_ms=1.0)
    out = s.apply(intent)
    assert (out.status, out.reason) == (STATUS_IGNORED, REASON_UNKNOWN_TYPE)


def test_enrichment_is_the_sessions_context():
    s = SessionState(visit_count=3)
    assert s.enrichment() == {"device_class": "unknown", "viewport_w_px": None, "viewport_h_px": None,
                              "network_class": "unknown", "geo_country": None, "geo_region": None,
                              "session_age_s": 0.0, "page_view_count": 0, "visit_count": 3}
    s.apply(_ev("page_view", 0, 1, title="t"))
    s.apply(_ev("scroll", 4_000, 2, scroll_depth_pct=30.0, scroll_depth_pct_raw=30.0, offset_px=600,
                document_height_px=4000))
    e = s.enrichment()
    assert {k: e[k] for k in ("device_class", "viewport_w_px", "viewport_h_px", "geo_country", "geo_region")} == {
        "device_class": "tablet", "viewport_w_px": 820, "viewport_h_px": 1180, "geo_country": "FR", "geo_region": "IDF"}
    assert e["network_class"] == "slow"  # 3g, 300 ms round trip
    assert (e["session_age_s"], e["page_view_count"], e["visit_count"]) == (4.0, 1, 3)


def test_context_flags_item_views_purchases_and_clamped_depth():
    s = SessionState()
    n = iter(range(100, 200))
    s.apply(_ev("page_view", 0, next(n), title="t"))  # tablet on 3g (CONTEXT)
    f = s.feature_dict()
    assert (f["device_tablet_flag"], f["device_desktop_flag"], f["network_slow_flag"]) == (1.0, 0.0, 1.0)
    assert f["current_item_view_count"] == 1.0
    s.apply(_ev("page_view", 1_000, next(n), title="t"))
    assert s.feature_dict()["current_item_view_count"] == 2.0  # the same item again
    no_item = make_event("page_view", session_id="s", client_ts_ms=T0 + 2_000, source_key="no-item", seq=150,
                         page={"path": "/cart"}, context=CONTEXT, props={"title": "cart"})
    s.apply(no_item)
    assert s.feature_dict()["current_item_view_count"] == 0.0
    # the session clamps a depth the normalizer did not (e.g. a replayed file): at most 100 %
    deep = _ev("scroll", 3_000, next(n), scroll_depth_pct=100.0, scroll_depth_pct_raw=150.0, offset_px=9000,
               document_height_px=6000)
    deep["props"]["scroll_depth_pct"] = 150.0  # past the contract: the session's own clamp must hold
    s.apply(deep)
    assert s.feature_dict()["max_scroll_depth_pct"] == 100.0
    for dt in (4_000, 5_000):
        s.apply(_ev("purchase", dt, next(n), order_id=f"o{dt}", value=10.0, currency="EUR", item_ids=["laptop-1"]))
    assert s.feature_dict()["purchase_count"] == 2.0
    desktop = SessionState()
    desktop.apply(make_event("page_view", session_id="d", client_ts_ms=T0, source_key="d", seq=1,
                             context={"device_class": "desktop", "network": {"effective_type": "4g", "rtt_ms": 40}},
                             props={"title": "t"}))
    f = desktop.feature_dict()
    assert (f["device_tablet_flag"], f["device_desktop_flag"], f["network_slow_flag"]) == (0.0, 1.0, 0.0)


def test_a_suppressed_event_says_so_and_equal_times_are_not_late():
    from udfs.noise import REASON_HOVER_TOO_SHORT
    from udfs.session import STATUS_SUPPRESSED

    s = SessionState()
    s.apply(_ev("page_view", 0, 1, title="t"))
    out = s.apply(_ev("hover", 1_000, 2, element_id="x", element_role="spec", hover_ms=10))
    assert (out.status, out.reason) == (STATUS_SUPPRESSED, REASON_HOVER_TOO_SHORT)
    same_ms = _ev("click", 1_000, 3, element_id="y", element_role="spec", x_px=1, y_px=1)
    assert s.apply(same_ms).status == STATUS_APPLIED  # same millisecond as the last event: not late


def test_event_order_key_orders_by_time_then_seq_then_id():
    from udfs.session import event_order_key

    def e(ts, seq, eid):
        return {"ts_ms": ts, "seq": seq, "event_id": eid}
    events = [e(2, None, "a"), e(1, 5, "z"), e(2, 3, "b"), e(2, None, "0"), e(2, 0, "c"), e(1, 5, "y")]
    ordered = sorted(events, key=event_order_key)
    assert [(x["ts_ms"], x["seq"], x["event_id"]) for x in ordered] == [
        (1, 5, "y"), (1, 5, "z"), (2, 0, "c"), (2, 3, "b"), (2, None, "0"), (2, None, "a")]
