"""Quantile thresholds of rules (issue 17): resolved against the model in force, warnings for thresholds a
model never reaches, and `intentflow rules validate`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from udfs.rules import RuleEngine, RulesetError
from udfs.thresholds import QuantilesError, ScoreQuantiles, stale_quantile_values, unreachable_thresholds

LEVELS = [q / 100 for q in range(101)]


def quantiles(top: float, version: str = "m/1") -> ScoreQuantiles:
    return ScoreQuantiles(version, tuple(LEVELS), tuple(top * q for q in LEVELS))  # uniform on [0, top]


def ruleset(cmp: dict) -> dict:
    return {"rules_version": "2026-12-02.1", "rules": [
        {"id": "hi", "version": 1, "description": "d", "priority": 1, "cooldown_ms": 0,
         "when": {"intent_score": cmp}, "action": {"name": "act", "params": {}}}]}


def event():
    return {"type": "click", "ts_ms": 1, "session_id": "s", "props": {}, "page": {}}


def test_value_at_interpolates_between_levels_and_refuses_bad_input():
    q = quantiles(0.5)
    assert q.value_at(0.9) == pytest.approx(0.45) and q.value_at(0.905) == pytest.approx(0.4525)
    assert q.value_at(1.0) == 0.5 and q.min_score == 0.0
    with pytest.raises(ValueError):
        q.value_at(1.5)
    with pytest.raises(QuantilesError):
        ScoreQuantiles("m/1", (0.0, 0.5), (0.1, 0.2))  # does not reach level 1
    with pytest.raises(QuantilesError):
        ScoreQuantiles.from_manifest({"name": "m", "version": 1})


def test_a_quantile_threshold_means_the_same_share_for_models_of_different_scales():
    rules = ruleset({"op": ">=", "quantile": 0.9})
    low, high = RuleEngine(rules, score_quantiles=quantiles(0.2, "low/1")), RuleEngine(rules, score_quantiles=quantiles(1.0, "high/1"))
    assert low.evaluate({}, 0.19, event(), {}) is not None and low.evaluate({}, 0.17, event(), {}) is None
    assert high.evaluate({}, 0.19, event(), {}) is None and high.evaluate({}, 0.91, event(), {}) is not None
    assert low.quantile_model_version == "low/1"
    moved = low.for_model({"model_version": "high/1", "score_quantiles": {"levels": LEVELS, "values": list(quantiles(1.0).values)}})
    assert moved.quantile_model_version == "high/1" and moved.evaluate({}, 0.19, event(), {}) is None
    assert RuleEngine(ruleset({"op": ">=", "value": 0.5})).quantile_model_version is None  # no quantiles: no model needed
    with pytest.raises(RulesetError):
        RuleEngine(ruleset({"op": ">="}), score_quantiles=quantiles(1.0))  # neither value nor quantile
    with pytest.raises(RulesetError):
        RuleEngine(ruleset({"op": ">=", "quantile": 0.9, "adaptive": {"min": 0, "max": 1, "step": 0.1, "explore_pct": 10}}),
                   score_quantiles=quantiles(1.0))


def test_unreachable_and_stale_thresholds_are_reported():
    q = quantiles(0.52, "intent-lr/9")
    assert unreachable_thresholds(ruleset({"op": ">=", "value": 0.6}), q)[0].startswith("rule 'hi' when.intent_score")
    assert unreachable_thresholds(ruleset({"op": ">", "value": 0.52}), q) != []
    assert unreachable_thresholds(ruleset({"op": ">=", "value": 0.5}), q) == []
    assert unreachable_thresholds(ruleset({"op": ">=", "quantile": 0.99}), q) == []
    assert stale_quantile_values(ruleset({"op": ">=", "quantile": 0.5, "value": 0.3}), q) != []
    assert stale_quantile_values(ruleset({"op": ">=", "quantile": 0.5, "value": q.value_at(0.5)}), q) == []


def test_rules_validate_warns_about_a_threshold_the_model_in_force_never_reaches(tmp_path):
    from intentflow.rules_cmd import rules_cmd

    models = tmp_path / "models" / "m" / "1"
    models.mkdir(parents=True)
    (models / "model.onnx").write_bytes(b"x")
    (models / "manifest.json").write_text(json.dumps({"name": "m", "version": 1, "model_version": "m/1",
                                                      "score_quantiles": {"levels": LEVELS, "values": list(quantiles(0.52).values)}}))
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(ruleset({"op": ">=", "value": 0.6})))
    runner = CliRunner()
    result = runner.invoke(rules_cmd, ["validate", str(path), "--model", "m", "--models-dir", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    assert "never met by m/1" in result.output and "valid" in result.output
    path.write_text(json.dumps(ruleset({"op": ">=", "quantile": 0.9})))
    result = runner.invoke(rules_cmd, ["validate", str(path), "--model", "m", "--models-dir", str(tmp_path / "models")])
    assert result.exit_code == 0 and "warning" not in result.output


def test_default_ruleset_thresholds_are_reachable_and_current_for_the_shipped_model():
    from udfs.rules import DEFAULT_RULES_PATH, load_ruleset

    q = ScoreQuantiles.of_model(version=2)  # intent-lr/2 records quantiles; intent-lr/1, in force, does not
    rules = load_ruleset(DEFAULT_RULES_PATH)
    assert unreachable_thresholds(rules, q) == []
    # the one value that differs from its quantile on purpose: 0.6 is what intent-lr/1 (in force, no
    # quantiles) and the edge engine read, so browser and server agree while intent-lr/1 is in force
    assert [m.split(" when")[0] for m in stale_quantile_values(rules, q)] == ["rule 'rerank_compared_item'"]


def test_a_model_without_quantiles_keeps_the_thresholds_and_the_job_going():
    """intent-lr/1 records no score_quantiles: the Decider's re-resolution keeps the last thresholds (no crash,
    no re-resolution on every batch)."""
    import pickle

    rules = ruleset({"op": ">=", "quantile": 0.9})
    engine = RuleEngine(rules, score_quantiles=quantiles(0.5, "intent-lr/2"))
    old = engine.for_model({"name": "intent-lr", "version": 1, "model_version": "intent-lr/1"})
    assert old.quantile_model_version == "intent-lr/1" and old.score_quantiles.model_version == "intent-lr/2"
    assert old.for_model({"model_version": "intent-lr/1"}) is old
    assert old.evaluate({}, 0.46, event(), {}) is not None and old.evaluate({}, 0.44, event(), {}) is None
    again = pickle.loads(pickle.dumps(old))
    assert again.quantile_model_version == "intent-lr/1" and again.evaluate({}, 0.46, event(), {}) is not None


def test_decider_with_a_model_that_records_no_quantiles_keeps_deciding(tmp_path):
    import shutil
    from pathlib import Path

    from udfs.config import JobConfig
    from udfs.decide import Decider
    from udfs.scenarios import article_session
    from udfs.scoring import ModelRegistry, ReloadingScorer

    root = Path(__file__).resolve().parents[2]
    shutil.copytree(root / "models" / "intent-lr" / "1", tmp_path / "intent-lr" / "1")
    scorer = ReloadingScorer("intent-lr", ModelRegistry(tmp_path))
    decider = Decider(JobConfig(), scorer, RuleEngine.default(), clock_ms=lambda: 0)
    result = decider.decide(article_session("s", 1_764_000_000_000), {}.get)
    assert result.model_version == "intent-lr/1" and decider.engine.quantile_model_version == "intent-lr/1"
    assert "deep_engagement_product" in [a["rule_id"] for a in result.actions]  # still deciding
