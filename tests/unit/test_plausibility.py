"""Physically impossible pointer trajectories (issue 14, reported case 5): flagged, raw kept, no feature.

Before: a ``mouse_trajectory`` built from the 65535,65535 overflow samples real recorders emit was accepted
unflagged and drove ``trajectory_speed_px_s_ema`` to millions of px/s on a 1280 px viewport.
"""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.datasets.balabit import OVERFLOW_PX
from udfs.datasets.trajectory import summarize_trajectory
from udfs.features import FEATURE_INDEX
from udfs.normalize import normalize_event
from udfs.plausibility import (FALLBACK_VIEWPORT_PX, FLAG_TRAJECTORY_IMPLAUSIBLE, MAX_VIEWPORT_CROSSINGS_PER_S,
                               REASON_IMPLAUSIBLE, max_speed_px_s, trajectory_violation)
from udfs.session import STATUS_APPLIED, STATUS_SUPPRESSED, SessionState

NOW_MS = 1_764_500_000_000
VIEWPORT = (1280, 800)
SPEED = FEATURE_INDEX["trajectory_speed_px_s_ema"]


def _event(props: dict, viewport=VIEWPORT, n: int = 0) -> dict:
    raw = {"event_id": f"1b4e28ba-2ca1-41d4-8b8e-0b1c2d3e4f{n:02x}", "type": "mouse_trajectory",
           "session_id": "s1", "anonymous_id": "a1", "client_ts_ms": NOW_MS - 2_000 + n, "seq": n,
           "page": {"url": "https://shop.example/p/42"}, "props": props,
           "context": {} if viewport is None else {"viewport_w_px": viewport[0], "viewport_h_px": viewport[1]}}
    return normalize_event(raw, received_at_ms=NOW_MS, sent_at_ms=NOW_MS - 100)


def _overflow_stretch() -> dict:
    """A recorder's stretch at 60 Hz in which every other sample is the 16-bit overflow (65535, 65535)."""
    samples = []
    for i in range(12):
        t = i * 1000 / 60
        samples.append((t, OVERFLOW_PX, OVERFLOW_PX) if i % 2 else (t, 600 + 3 * i, 400 + 2 * i))
    return summarize_trajectory(samples)


def _real_stretch() -> dict:
    """A quick, straight 700 px move across a 1280 px viewport in 300 ms at 60 Hz."""
    return summarize_trajectory([(i * 1000 / 60, 200 + 700 * i / 18, 300 + 100 * i / 18) for i in range(19)])


def test_overflow_trajectory_is_flagged_raw_kept_and_kept_out_of_the_features():
    props = _overflow_stretch()
    assert props["mean_speed_px_s"] > 1_000_000  # the order of magnitude
    event = _event(props)
    assert FLAG_TRAJECTORY_IMPLAUSIBLE in event["flags"]
    assert event["props"]["mean_speed_px_s"] == props["mean_speed_px_s"]  # raw value preserved
    assert event["props"]["path_length_px"] == props["path_length_px"]

    state = SessionState()
    first = _event(_real_stretch(), n=1)
    assert FLAG_TRAJECTORY_IMPLAUSIBLE not in first["flags"]
    assert state.apply(first).status == STATUS_APPLIED
    speed_before = float(state.features()[SPEED])
    assert 0 < speed_before < max_speed_px_s(*VIEWPORT)
    outcome = state.apply({**event, "ts_ms": first["ts_ms"] + 1})
    assert (outcome.status, outcome.reason) == (STATUS_SUPPRESSED, REASON_IMPLAUSIBLE)
    assert float(state.features()[SPEED]) == speed_before  # the feature did not move


def test_speed_bound_scales_with_the_viewport_and_falls_back_to_the_largest_display():
    assert max_speed_px_s(1280, 800) == pytest.approx(MAX_VIEWPORT_CROSSINGS_PER_S * math.hypot(1280, 800))
    assert max_speed_px_s(None, 800) == max_speed_px_s(*FALLBACK_VIEWPORT_PX) > max_speed_px_s(1280, 800)
    props = {"path_length_px": 100.0, "mean_speed_px_s": 40_000.0, "sample_count": 10}
    assert trajectory_violation(props, 1280, 800) is not None  # 40,000 > 24 x 1,509 px/s
    assert trajectory_violation(props, 3840, 2160) is None  # < 24 x 4,406 px/s on a 4K viewport
    assert trajectory_violation(props) is None
    overflow = _overflow_stretch()
    assert trajectory_violation(overflow) is not None  # implausible even on an 8K display
    assert FLAG_TRAJECTORY_IMPLAUSIBLE in _event(overflow, viewport=None)["flags"]


def test_a_path_longer_than_its_steps_could_be_inside_the_viewport_is_flagged():
    props = {"path_length_px": 3 * math.hypot(*VIEWPORT) + 1, "mean_speed_px_s": 10.0, "sample_count": 4}
    assert "path_length_px" in trajectory_violation(props, *VIEWPORT)
    assert trajectory_violation({**props, "path_length_px": 3 * math.hypot(*VIEWPORT)}, *VIEWPORT) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 1000), st.integers(0, VIEWPORT[0]), st.integers(0, VIEWPORT[1])),
                min_size=4, max_size=60))
def test_samples_inside_the_viewport_never_break_the_path_bound(steps):
    """Geometry, whatever the timing: a stretch recorded inside the viewport cannot be flagged for its path."""
    t, samples = 0.0, []
    for dt, x, y in steps:
        t += dt
        samples.append((t, float(x), float(y)))
    props = summarize_trajectory(samples)
    detail = trajectory_violation({**props, "mean_speed_px_s": 0.0}, *VIEWPORT)
    assert detail is None, (props, detail)
