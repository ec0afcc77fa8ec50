"""SIMULATION building blocks (udfs/simulation.py): seeded visitors, the response model, and that every
simulated visitor is decided by the default rules (so every visitor can be exposed)."""
from __future__ import annotations

import pytest

from udfs.config import JobConfig
from udfs.contract import make_event
from udfs.decide import Decider, decide_all
from udfs.rules import VARIANTS, RuleEngine, variant_for
from udfs.scoring import ReloadingScorer
from udfs.simulation import (ADAPTIVE_RULE_ID, CONVERSION_PROBABILITY, THRESHOLD_RESPONSES, best_threshold,
                              conversion_probability, deep_share, threshold_conversion_probability, true_lift,
                              visitor_plan)

T0 = 1_764_000_000_000


def test_visitors_are_seeded_and_both_kinds_occur():
    plans = [visitor_plan(3, i, "run") for i in range(200)]
    assert plans == [visitor_plan(3, i, "run") for i in range(200)]
    assert plans != [visitor_plan(4, i, "run") for i in range(200)]
    kinds = {p.kind for p in plans}
    assert kinds == {"deep", "shallow"}
    assert len({p.anonymous_id for p in plans}) == 200 and all(0 <= p.u < 1 for p in plans)


def test_response_model_has_one_built_in_lift():
    assert true_lift() == pytest.approx(0.06)
    assert conversion_probability("default") == 0.10
    with pytest.raises(KeyError):
        conversion_probability("unknown_layout")
    with pytest.raises(ValueError):
        true_lift({**CONVERSION_PROBABILITY, "simplify_layout": 0.5})


def test_every_simulated_visitor_triggers_a_rule_that_the_response_model_knows():
    events = []
    for i in range(40):
        plan = visitor_plan(1, i, "run")
        events += [make_event(kind, session_id=plan.session_id, anonymous_id=plan.anonymous_id,
                              client_ts_ms=T0 + 100_000 * i + dt, seq=n, source_key=f"{plan.session_id}:{n}",
                              context={"device_class": "desktop"}, page={"item_id": "laptop-pro-14"}, props=props)
                   for n, (kind, dt, props) in enumerate(plan.timeline)]
    actions, _, _ = decide_all(Decider(JobConfig(), ReloadingScorer(), RuleEngine.default()), events, 64)
    assert {a["session_id"] for a in actions} == {visitor_plan(1, i, "run").session_id for i in range(40)}
    assert {a["action"] for a in actions} <= set(CONVERSION_PROBABILITY)


def test_threshold_models_have_one_best_value_or_none():
    assert best_threshold("threshold-peaked") == 35.0
    assert best_threshold("threshold-flat") is None
    peaked = THRESHOLD_RESPONSES["threshold-peaked"]
    # from the shipped value 25 each step up is better, and 35's neighbours are worse: a path 25 -> 30 -> 35
    assert peaked[25.0] < peaked[30.0] < peaked[35.0] > peaked[40.0]
    assert threshold_conversion_probability("threshold-peaked", 35) == 0.50
    assert len(set(THRESHOLD_RESPONSES["threshold-flat"].values())) == 1
    with pytest.raises(KeyError):
        threshold_conversion_probability("threshold-peaked", 12.5)
    with pytest.raises(KeyError):
        best_threshold("layout")


def test_threshold_runs_send_only_visitors_the_adaptive_rule_judges():
    assert deep_share("layout") == 0.5 and deep_share("threshold-flat") == 0.0
    with pytest.raises(KeyError):
        deep_share("unknown")
    plans = [visitor_plan(3, i, "run", deep_share("threshold-peaked")) for i in range(200)]
    assert {p.kind for p in plans} == {"shallow"}
    # the same visitors otherwise: the same ids and uniform draws as the layout model's
    assert [p.u for p in plans] == [visitor_plan(3, i, "run").u for i in range(200)]


@pytest.mark.parametrize("threshold", sorted(THRESHOLD_RESPONSES["threshold-peaked"]))
def test_every_threshold_the_models_know_judges_the_shallow_visitor_by_the_adaptive_rule(threshold):
    """With each value of the models in force (and its lower/higher variants), a simulated shallow visitor
    (max scroll 12 %) is decided by the adaptive rule exactly when its variant's threshold is above 12 %,
    and its action names a variant whose threshold the models know. So from 20 up nobody goes undecided;
    at 15 the ``lower`` variant (10) leaves its visitors undecided (udfs/simulation.py says so)."""
    import json

    from intentflow.simulate import simulation_ruleset
    from udfs.rules import adaptive_variant_values

    ruleset = simulation_ruleset("simulation-unit", 0, rule_versions={ADAPTIVE_RULE_ID: 5})
    rule = next(r for r in ruleset["rules"] if r["id"] == ADAPTIVE_RULE_ID)
    next(c for c in rule["when"]["all"] if "adaptive" in c)["value"] = threshold
    engine = RuleEngine(json.loads(json.dumps(ruleset)))
    values = adaptive_variant_values(engine.ruleset)
    events = []
    for i in range(60):
        plan = visitor_plan(1, i, "run", deep_share("threshold-peaked"))
        events += [make_event(kind, session_id=plan.session_id, anonymous_id=plan.anonymous_id,
                              client_ts_ms=T0 + 100_000 * i + dt, seq=n, source_key=f"{plan.session_id}:{n}",
                              context={"device_class": "desktop"}, page={"item_id": "laptop-pro-14"}, props=props)
                   for n, (kind, dt, props) in enumerate(plan.timeline)]
    actions, _, _ = decide_all(Decider(JobConfig(), ReloadingScorer(), engine), events, 64)
    explore_pct = engine.explore_pcts[ADAPTIVE_RULE_ID]
    variant_value = {p.session_id: values[f"{ADAPTIVE_RULE_ID}@5"][VARIANTS[variant_for(
        ADAPTIVE_RULE_ID, p.anonymous_id, explore_pct)]] for p in (visitor_plan(1, i, "run", 0.0) for i in range(60))}
    assert {a["session_id"] for a in actions} == {s for s, v in variant_value.items() if v > 12}
    assert (threshold == 15.0) == (min(variant_value.values()) == 10.0)
    for a in actions:
        assert a["rule_id"] == ADAPTIVE_RULE_ID and a["params"]["experiment_id"] == f"{ADAPTIVE_RULE_ID}@5"
        judged_by = values[a["params"]["experiment_id"]][a["params"]["variant"]]
        assert judged_by in THRESHOLD_RESPONSES["threshold-peaked"]


def test_the_simulator_converts_a_visitor_by_the_threshold_its_action_names():
    import click

    from intentflow.simulate import SimulationResult, _conversion_probability

    thresholds = {f"{ADAPTIVE_RULE_ID}@2": {"control": 30.0, "lower": 25.0, "higher": 35.0}}
    decision = {"source": "redis", "session_id": "s", "action": "simplify_layout", "rule_id": ADAPTIVE_RULE_ID,
                "params": {"experiment_id": f"{ADAPTIVE_RULE_ID}@2", "variant": "higher"}}
    result = SimulationResult()
    assert _conversion_probability(decision, "simplify_layout", "threshold-peaked", thresholds, 7, result) == 0.50
    assert _conversion_probability(decision, "simplify_layout", "threshold-flat", thresholds, 8, result) == 0.25
    assert result.judged == [(7, f"{ADAPTIVE_RULE_ID}@2", "higher", 35.0), (8, f"{ADAPTIVE_RULE_ID}@2", "higher", 35.0)]
    # the layout model, and a holdout visitor under a threshold model, convert by the layout
    assert _conversion_probability(decision, "simplify_layout", "layout", thresholds, 9, result) == 0.16
    holdout = {"source": "holdout", "session_id": "s", "action": "default", "params": {}}
    assert _conversion_probability(holdout, "default", "threshold-peaked", thresholds, 9, result) == 0.10
    assert len(result.judged) == 2
    # a rule version this run never published is an error, not a guess
    stale = {**decision, "params": {"experiment_id": f"{ADAPTIVE_RULE_ID}@9", "variant": "control"}}
    with pytest.raises(click.ClickException, match="did not publish"):
        _conversion_probability(stale, "simplify_layout", "threshold-peaked", thresholds, 10, result)
