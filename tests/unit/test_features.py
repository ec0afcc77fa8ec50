"""The one feature definition: names, order, units, dtype."""
from __future__ import annotations

import re

import numpy as np
import pytest

from udfs import features as F

#: Names other parts (rules, job) rely on (brief of issue 5 / docs/contracts.md §2).
REQUIRED = (
    "session_age_s", "time_since_last_event_s", "event_count", "page_view_count", "product_view_count",
    "max_scroll_depth_pct", "scroll_depth_pct_ema", "hover_ms_total", "hover_ms_product_card",
    "hover_ms_spec", "hover_ms_max_element", "click_count", "click_velocity_per_min",
    "compare_click_count", "visible_time_on_page_s", "form_interaction_count",
    "trajectory_straightness_ema", "trajectory_speed_px_s_ema", "add_to_cart_count",
)

UNIT_SUFFIX = re.compile(r"_(s|ms|pct|px|px_s|per_min|count|flag|ratio|mbps)(_ema)?$|^hover_ms_")


def test_required_names_present():
    missing = [n for n in REQUIRED if n not in F.FEATURE_NAMES]
    assert missing == []


def test_names_unique_and_index_consistent():
    assert len(set(F.FEATURE_NAMES)) == len(F.FEATURE_NAMES) == F.N_FEATURES
    for i, spec in enumerate(F.FEATURES):
        assert F.FEATURE_INDEX[spec.name] == i


@pytest.mark.parametrize("spec", F.FEATURES, ids=lambda s: s.name)
def test_every_feature_is_float32_unit_suffixed_and_defined(spec):
    assert spec.dtype == "float32"
    # unitless 0-1 quantities (straightness) carry no suffix but must say so in their unit
    assert UNIT_SUFFIX.search(spec.name) or spec.unit == "ratio", f"{spec.name} has no unit suffix"
    assert spec.unit and len(spec.definition) > 10


def test_feature_indices_and_unknown_names():
    idx = F.feature_indices(["add_to_cart_count", "session_age_s"])
    assert idx.dtype == np.int64
    assert list(idx) == [F.FEATURE_NAMES.index("add_to_cart_count"), F.FEATURE_NAMES.index("session_age_s")]
    with pytest.raises(KeyError, match="no_such_feature"):
        F.feature_indices(["session_age_s", "no_such_feature"])


def test_as_dict_round_trip_and_shape_check():
    vec = np.arange(F.N_FEATURES, dtype=np.float32)
    d = F.as_dict(vec)
    assert list(d) == list(F.FEATURE_NAMES)
    assert d[F.FEATURE_NAMES[3]] == 3.0
    with pytest.raises(ValueError, match=rf"expected shape \({F.N_FEATURES},\), got \({F.N_FEATURES - 1},\)"):
        F.as_dict(vec[:-1])
