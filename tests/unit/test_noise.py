"""Noise filter: debounce, threshold suppression, EMA."""
from __future__ import annotations

import dataclasses
import pickle

import pytest

from udfs import noise as N


def click(f: N.NoiseFilter, ts_ms: int, element_id: str = "btn", **ctx):
    return f.check("click", ts_ms, {"element_id": element_id}, ctx or None)


def test_debounce_same_element_within_500_ms():
    f = N.NoiseFilter()
    assert click(f, 1000) is None
    assert click(f, 1499) == N.REASON_DEBOUNCED_CLICK
    # classic debounce: the reference is the previous click (even suppressed), so 1998 is < 500 after 1499
    assert click(f, 1998) == N.REASON_DEBOUNCED_CLICK
    assert click(f, 2498) is None  # exactly 500 ms after the previous click: kept


def test_debounce_is_per_element_and_configurable():
    f = N.NoiseFilter()
    assert click(f, 1000, "a") is None
    assert click(f, 1100, "b") is None
    assert click(f, 1200, "a") == N.REASON_DEBOUNCED_CLICK
    g = N.NoiseFilter(N.NoiseConfig(click_debounce_ms=100))
    assert click(g, 1000, "a") is None
    assert click(g, 1150, "a") is None


def test_clicks_without_element_id_debounce_by_position():
    f = N.NoiseFilter()
    assert f.check("click", 0, {"element_id": None, "x_px": 10, "y_px": 20}, None) is None
    assert f.check("click", 100, {"element_id": None, "x_px": 10, "y_px": 20}, None) == N.REASON_DEBOUNCED_CLICK
    assert f.check("click", 200, {"element_id": None, "x_px": 300, "y_px": 20}, None) is None


def test_click_table_stays_bounded():
    cfg = N.NoiseConfig(max_tracked_click_elements=8)
    f = N.NoiseFilter(cfg)
    for i in range(100):
        click(f, i * 1000, f"e{i}")
    assert len(f._last_click_ts_ms) <= 9


def test_hover_threshold():
    f = N.NoiseFilter()
    assert f.check("hover", 0, {"hover_ms": 99}, None) == N.REASON_HOVER_TOO_SHORT
    assert f.check("hover", 0, {"hover_ms": 100}, None) is None
    assert f.check("hover", 0, {"hover_ms": None}, None) == N.REASON_HOVER_TOO_SHORT


def test_trajectory_sample_threshold():
    f = N.NoiseFilter()
    assert f.check("mouse_trajectory", 0, {"sample_count": 3}, None) == N.REASON_TRAJECTORY_TOO_FEW_SAMPLES
    assert f.check("mouse_trajectory", 0, {"sample_count": 4}, None) is None


def test_scroll_delta_against_last_applied_and_new_page():
    f = N.NoiseFilter()
    assert f.check("scroll", 0, {"scroll_depth_pct": 10.0}, None) is None
    assert f.check("scroll", 1, {"scroll_depth_pct": 10.6}, None) == N.REASON_SCROLL_TOO_SMALL
    # creeping scroll: measured against the last *applied* depth (10.0), so 11.0 passes
    assert f.check("scroll", 2, {"scroll_depth_pct": 11.0}, None) is None
    f.new_page()
    assert f.check("scroll", 3, {"scroll_depth_pct": 11.0}, None) is None


def test_bots_suppressed_unless_configured():
    assert N.NoiseFilter().check("page_view", 0, {}, {"is_bot": True}) == N.REASON_BOT
    keep = N.NoiseFilter(N.NoiseConfig(drop_bot_events=False))
    assert keep.check("page_view", 0, {}, {"is_bot": True}) is None


def test_ema_steps():
    assert N.ema(None, 6.0, 0.5) == 6.0
    assert N.ema(6.0, 2.0, 0.5) == pytest.approx(4.0)
    assert N.ema(4.0, 10.0, 1.0 / 3.0) == pytest.approx(6.0)


def test_config_is_frozen_and_validated():
    cfg = N.NoiseConfig()
    assert cfg.click_debounce_ms == 500  # the article's number
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'click_debounce_ms'"):
        cfg.click_debounce_ms = 1  # type: ignore[misc]
    for bad in ({"ema_alpha": 0.0}, {"ema_alpha": 1.5}, {"click_debounce_ms": -1}, {"hover_min_ms": -5},
                {"max_tracked_click_elements": 0}):
        with pytest.raises(ValueError, match=f"^{next(iter(bad))} must"):
            N.NoiseConfig(**bad)


def test_filter_pickles_with_state():
    f = N.NoiseFilter(N.NoiseConfig(click_debounce_ms=800))
    click(f, 0, "a")
    g = pickle.loads(pickle.dumps(f))
    assert g.config.click_debounce_ms == 800
    assert click(g, 700, "a") == N.REASON_DEBOUNCED_CLICK
    d = pickle.loads(pickle.dumps(N.NoiseFilter()))
    assert d.config is N.DEFAULT_NOISE_CONFIG
