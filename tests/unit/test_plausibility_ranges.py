"""Every numeric property of an event has a documented plausible range (issue 14, ``udfs.plausibility.RANGES``);
a value outside it is flagged by the normalizer, kept exactly as sent, and kept out of the features."""
from __future__ import annotations

import typing

import pytest

from udfs.contract_models import PROPS_MODELS, Context, Network
from udfs.normalize import normalize_event
from udfs.plausibility import FLAG_VALUE_IMPLAUSIBLE, RANGES, value_violations
from udfs.session import SessionState

NOW_MS = 1_764_500_000_000


def _numeric_fields(model) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        args = typing.get_args(field.annotation) or (field.annotation,)
        flat = []
        for a in args:
            flat.extend(typing.get_args(a) or (a,))
        if any(a in (int, float) for a in flat):
            out.append(name)
    return out


def test_every_numeric_field_of_the_contract_has_a_range():
    wanted = {("context", f) for f in _numeric_fields(Context) + _numeric_fields(Network)}
    wanted |= {(etype, f) for etype, model in PROPS_MODELS.items() for f in _numeric_fields(model)}
    assert wanted, "no numeric fields found: the enumeration is broken"
    missing = sorted(wanted - set(RANGES))
    assert not missing, f"numeric fields without a plausible range in udfs.plausibility.RANGES: {missing}"
    assert all(why for _lo, _hi, why in RANGES.values())


def _click(x_px: float, viewport_w_px: int = 1280) -> dict:
    return {"type": "click", "session_id": "s-r", "event_id": "6f1c1f4e-3c1b-4f7e-9a55-2b7c0d1e8a42",
            "client_ts_ms": NOW_MS - 1_000, "context": {"viewport_w_px": viewport_w_px, "viewport_h_px": 720},
            "props": {"element_id": "b", "x_px": x_px, "y_px": 10}}


def test_a_click_outside_the_viewport_is_flagged_kept_as_sent_and_out_of_the_features():
    inside = normalize_event(_click(1279.0), received_at_ms=NOW_MS)
    outside = normalize_event(_click(50_000.0), received_at_ms=NOW_MS)
    assert FLAG_VALUE_IMPLAUSIBLE not in inside["flags"]
    assert FLAG_VALUE_IMPLAUSIBLE in outside["flags"] and outside["props"]["x_px"] == 50_000.0
    state = SessionState()
    assert state.apply(dict(outside)).status == "suppressed"
    assert state.apply(dict(inside, event_id="6f1c1f4e-3c1b-4f7e-9a55-2b7c0d1e8a43")).status == "applied"


@pytest.mark.parametrize(("etype", "props", "context", "field"), [
    ("hover", {"hover_ms": 1_800_001}, {}, "hover.hover_ms"),
    ("mouse_trajectory", {"sample_count": 100, "duration_ms": 5, "pause_count": 0, "path_length_px": 10,
                          "straightness": 0.5, "mean_speed_px_s": 100, "jerk_px_s3": 0}, {}, "mouse_trajectory.sample_count"),
    ("mouse_trajectory", {"sample_count": 3, "duration_ms": 500, "pause_count": 4, "path_length_px": 10,
                          "straightness": 0.5, "mean_speed_px_s": 100, "jerk_px_s3": 0}, {}, "mouse_trajectory.pause_count"),
    ("scroll", {"scroll_depth_pct": 50, "offset_px": 5_000, "document_height_px": 1_000}, {"viewport_h_px": 700},
     "scroll.offset_px"),
    ("click", {"x_px": 1, "y_px": 1}, {"network": {"rtt_ms": 60_000}}, "context.rtt_ms"),
    ("click", {"x_px": 1, "y_px": 1}, {"viewport_w_px": 100_000, "viewport_h_px": 10}, "context.viewport_w_px"),
])
def test_out_of_range_values_are_named(etype, props, context, field):
    assert any(v.startswith(field + "=") for v in value_violations(etype, props, context))


def test_in_range_values_are_not_named():
    props = {"sample_count": 40, "duration_ms": 500, "pause_count": 2, "path_length_px": 900, "straightness": 0.8,
             "mean_speed_px_s": 1_800, "jerk_px_s3": -2.0e6}
    assert value_violations("mouse_trajectory", props, {"viewport_w_px": 1280, "viewport_h_px": 800}) == []


def test_docs_contracts_show_the_ranges_as_they_are_in_the_code():
    from pathlib import Path

    from udfs.plausibility import ranges_table

    text = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()
    block = text.split("<!-- ranges:begin -->\n", 1)[1].split("\n<!-- ranges:end -->", 1)[0]
    assert block == ranges_table(), "docs/contracts.md §1.1 differs from udfs.plausibility.RANGES"
