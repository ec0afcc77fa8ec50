"""udfs.page_stats: per-page bounce / exit rates over other sessions (issue 17)."""
from __future__ import annotations

import random

import pytest

from udfs.contract import make_event
from udfs.page_stats import PageStats
from udfs.session import PAGE_BOUNCE_RATE_FIELD, PAGE_EXIT_RATE_FIELD, SessionState

T0 = 1_764_000_000_000


def view(session_id: str, path: str, dt_ms: int, seq: int = 0) -> dict:
    return make_event("page_view", session_id=session_id, client_ts_ms=T0 + dt_ms, seq=seq,
                      source_key=f"pv:{session_id}:{seq}:{dt_ms}", page={"path": path}, props={"title": path})


def test_counts_and_unsmoothed_rates():
    stats = PageStats(prior_weight=0.0)
    for e in [view("s1", "/a", 0, 0), view("s1", "/b", 1000, 1), view("s2", "/a", 2000, 0),
              view("s3", "/b", 3000, 0), view("s3", "/c", 4000, 1), view("s3", "/a", 5000, 2)]:
        stats.observe(e)
    assert stats.counts("/a") == (3, 1, 2, 1)  # views, continued, entrances, entered_continued
    assert stats.counts("/b") == (2, 1, 1, 1)
    assert stats.rates("/a") == (0.5, pytest.approx(2 / 3))
    assert stats.rates("/b") == (0.0, 0.5)
    assert stats.rates("/c") == (stats.bounce_prior, 0.0)  # no entrance on /c: the prior


def test_smoothing_towards_the_prior():
    stats = PageStats(prior_weight=20.0, bounce_prior=0.1, exit_prior=0.2)
    assert stats.rates("/never") == (0.1, 0.2)
    for i in range(20):
        stats.observe(view(f"s{i}", "/x", i))  # 20 single-page sessions: all bounced, all exits
    bounce, exit_rate = stats.rates("/x")
    assert bounce == pytest.approx((20 + 2) / 40) and exit_rate == pytest.approx((20 + 4) / 40)


def test_duplicates_and_out_of_order_views_are_not_counted():
    stats = PageStats(prior_weight=0.0)
    first = view("s", "/a", 1000, 1)
    stats.observe(first)
    stats.observe(dict(first))  # redelivered
    stats.observe(view("s", "/b", 500, 0))  # older than the counted view
    assert stats.counts("/a") == (1, 0, 1, 0) and stats.counts("/b") == (0, 0, 0, 0)


def test_window_drops_old_buckets():
    stats = PageStats(bucket_ms=1000, n_buckets=2, prior_weight=0.0)
    stats.observe(view("s1", "/a", 0))
    stats.observe(view("s2", "/a", 1500))
    assert stats.counts("/a")[0] == 2
    stats.observe(view("s3", "/b", 2500))  # bucket of T0 + 0 falls out of the window
    assert stats.counts("/a")[0] == 1
    stats.observe(view("s4", "/a", 100))  # older than the window: not counted
    assert stats.counts("/a")[0] == 1


def test_annotate_gives_rates_as_of_before_each_view_independent_of_arrival_order():
    events = [view(f"s{i % 7}", f"/p{i % 3}", 100 * i, seq=i) for i in range(60)]
    expected = PageStats()
    expected.annotate([dict(e) for e in events])
    a, b = [dict(e) for e in events], [dict(e) for e in events]
    random.Random(3).shuffle(b)
    PageStats().annotate(a)
    PageStats().annotate(b)
    by_id = {e["event_id"]: (e[PAGE_BOUNCE_RATE_FIELD], e[PAGE_EXIT_RATE_FIELD]) for e in b}
    assert [by_id[e["event_id"]] for e in a] == [(e[PAGE_BOUNCE_RATE_FIELD], e[PAGE_EXIT_RATE_FIELD]) for e in a]
    assert a[0][PAGE_BOUNCE_RATE_FIELD] == PageStats().bounce_prior  # the first view sees no other session


def test_session_features_average_the_annotated_rates():
    s = SessionState()
    a, b = view("s", "/a", 0, 0), view("s", "/b", 1000, 1)
    a[PAGE_BOUNCE_RATE_FIELD], a[PAGE_EXIT_RATE_FIELD] = 0.2, 0.4
    b[PAGE_BOUNCE_RATE_FIELD], b[PAGE_EXIT_RATE_FIELD] = 0.1, 0.1
    s.apply(a)
    s.apply(b)
    d = s.feature_dict()
    assert d["page_bounce_rate_mean_ratio"] == pytest.approx(0.15) and d["page_exit_rate_mean_ratio"] == pytest.approx(0.25)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError):
        PageStats(bucket_ms=0)
    with pytest.raises(ValueError):
        PageStats(bounce_prior=1.5)
