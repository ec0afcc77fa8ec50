"""The promotion gate (issue 17, item 3): paired bootstrap CIs, shadow counts, CURRENT pointer, manifest record."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from udfs.gate import ShadowCounts, brier, gate_decision, roc_auc
from udfs.scoring import ModelError, ModelRegistry

ROOT = Path(__file__).resolve().parents[2]


def labelled(n: int = 2000, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.int8)
    signal = y + rng.normal(0, 1.0, n)
    good = 1 / (1 + np.exp(-(signal * 2 - 2.5)))
    noise = 1 / (1 + np.exp(-(rng.normal(0, 1.0, n) - 1.4)))
    return y, good, noise


def test_roc_auc_and_brier_match_scikit_learn():
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y, good, _ = labelled(500)
    good = np.round(good, 2)  # ties
    assert roc_auc(y, good) == pytest.approx(roc_auc_score(y, good), abs=1e-12)
    assert brier(y, good) == pytest.approx(brier_score_loss(y, good), abs=1e-12)


def test_a_better_candidate_passes_and_a_worse_or_equal_one_does_not():
    y, good, noise = labelled()
    shadow = ShadowCounts(thresholds=(0.5,))
    shadow.add(noise, good)
    up = gate_decision(y, good, noise, shadow=shadow, min_shadow_rows=1000, n_boot=300)
    assert up["promote"] and up["roc_auc"]["ci"][0] > 0 and up["brier"]["ci"][1] < 0 and up["reasons"] == []
    down = gate_decision(y, noise, good, shadow=shadow, min_shadow_rows=1000, n_boot=300)
    assert not down["promote"] and len(down["reasons"]) == 2
    same = gate_decision(y, good, good, shadow=shadow, min_shadow_rows=1000, n_boot=300)
    assert not same["promote"]  # equal is not better
    unshadowed = gate_decision(y, good, noise, n_boot=300)
    assert not unshadowed["promote"] and "shadow" in unshadowed["reasons"][0]


def test_shadow_counts_count_differences_and_threshold_flips():
    s = ShadowCounts(tolerance=0.05, thresholds=(0.3,))
    s.add(np.array([0.10, 0.29, 0.50, 0.9]), np.array([0.12, 0.31, 0.40, 0.9]))
    assert (s.rows, s.differ, s.flips, s.batches) == (4, 1, 1, 1)
    assert s.as_dict()["mean_abs_diff"] == pytest.approx((0.02 + 0.02 + 0.10) / 4)
    with pytest.raises(ValueError):
        s.add(np.zeros(2), np.zeros(3))


def test_gate_records_every_decision_and_moves_current_only_on_promotion(tmp_path):
    from models.gate_cmd import record_decision

    for v in (1, 2):
        shutil.copytree(ROOT / "models" / "intent-lr" / "2", tmp_path / "intent-lr" / str(v))
        path = tmp_path / "intent-lr" / str(v) / "manifest.json"
        shipped = {k: val for k, val in json.loads(path.read_text()).items() if k != "promotion"}  # no history yet
        path.write_text(json.dumps({**shipped, "version": v, "model_version": f"intent-lr/{v}"}))
    registry = ModelRegistry(tmp_path)
    assert registry.current_version("intent-lr") is None and registry.latest("intent-lr").version == 2
    record_decision(tmp_path, "intent-lr", 2, 1, {"promote": False, "reasons": ["x"]}, {})
    assert registry.current_version("intent-lr") is None
    (tmp_path / "intent-lr" / "CURRENT").write_text("1\n")
    assert registry.latest("intent-lr").version == 1  # CURRENT wins over the highest version
    record_decision(tmp_path, "intent-lr", 2, 1, {"promote": True, "reasons": []}, {"moments": 5})
    assert registry.current_version("intent-lr") == 2
    history = json.loads((tmp_path / "intent-lr" / "2" / "manifest.json").read_text())["promotion"]
    assert [h["promote"] for h in history] == [False, True] and history[1]["window"] == {"moments": 5}
    (tmp_path / "intent-lr" / "CURRENT").write_text("two")
    with pytest.raises(ModelError):
        registry.latest("intent-lr")


def test_reloading_scorer_scores_the_shadow_candidate_beside_the_version_in_force(tmp_path):
    from udfs.features import N_FEATURES
    from udfs.scoring import ReloadingScorer

    for v in (1, 2):
        shutil.copytree(ROOT / "models" / "intent-lr" / str(v), tmp_path / "intent-lr" / str(v))
    (tmp_path / "intent-lr" / "CURRENT").write_text("2\n")
    now = [0.0]
    scorer = ReloadingScorer("intent-lr", ModelRegistry(tmp_path), clock=lambda: now[0])
    batch = np.random.default_rng(0).random((40, N_FEATURES)).astype(np.float32) * 20
    scorer.score_with_version(batch)
    assert scorer.shadow_version is None and scorer.take_shadow_counters() == {}
    (tmp_path / "intent-lr" / "SHADOW").write_text("1\n")
    now[0] = 10.0
    scores, version = scorer.score_with_version(batch)
    assert version == "intent-lr/2" and scorer.shadow_version == "intent-lr/1"
    counts = scorer.take_shadow_counters()
    assert counts["shadow_rows:intent-lr/1"] == 40 and 0 <= counts["shadow_differ:intent-lr/1"] <= 40
    assert counts["shadow_abs_diff_micro:intent-lr/1"] > 0 and scorer.take_shadow_counters() == {}
    from udfs.config import JobConfig  # the job's counters carry them (udfs.decide -> {p}stats in Redis)
    from udfs.decide import Decider
    from udfs.rules import RuleEngine
    from udfs.scenarios import article_session

    result = Decider(JobConfig(), scorer, RuleEngine.default(), clock_ms=lambda: 0).decide(
        article_session("s", 1_764_000_000_000), {}.get)
    assert result.counters["shadow_rows:intent-lr/1"] == result.counters["applied"] == 6
    (tmp_path / "intent-lr" / "SHADOW").unlink()
    now[0] = 20.0
    scorer.score_with_version(batch)
    assert scorer.shadow_version is None and scorer.take_shadow_counters() == {}
