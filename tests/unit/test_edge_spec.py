"""web/sdk/edge-spec.v1.json is generated from udfs/features.py, udfs/noise.py and udfs/session.py."""
from __future__ import annotations

import dataclasses
import json

from udfs import edge_spec
from udfs.features import FEATURES
from udfs.noise import DEFAULT_NOISE_CONFIG, NoiseConfig


def test_committed_spec_is_up_to_date():
    assert edge_spec.SPEC_PATH.read_text(encoding="utf-8") == edge_spec.render(), (
        "web/sdk/edge-spec.v1.json is stale: run `python -m udfs.edge_spec`")


def test_spec_carries_the_feature_list_and_noise_parameters_from_their_one_source():
    spec = json.loads(edge_spec.render())
    assert [f["name"] for f in spec["features"]] == [f.name for f in FEATURES]
    assert [f["unit"] for f in spec["features"]] == [f.unit for f in FEATURES]
    assert {f["dtype"] for f in spec["features"]} == {"float32"} == {spec["feature_dtype"]}
    assert spec["noise"] == dataclasses.asdict(DEFAULT_NOISE_CONFIG)
    assert set(spec["noise"]) == {f.name for f in dataclasses.fields(NoiseConfig)}
    assert spec["session"]["click_velocity_window_ms"] == 60_000


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "edge-spec.v1.json"
    stale.write_text(edge_spec.render().replace('"hover_min_ms": 100', '"hover_min_ms": 101'))
    monkeypatch.setattr(edge_spec, "SPEC_PATH", stale)
    assert edge_spec.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert edge_spec.main([]) == 0
    assert edge_spec.main(["--check"]) == 0
