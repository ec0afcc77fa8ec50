"""Adaptive-threshold variants as actions carry them (docs/contracts.md §4: ``params.experiment_id``,
``params.variant`` fixed per session by ``udfs.rules.variant_for``), action fields, and the p-value's
empty-group rule. Expectations come from ``variant_for`` and the ruleset file, not from the engine."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from udfs.config import JobConfig
from udfs.decide import Decider, decide_all
from udfs.rules import DEFAULT_RULES_PATH, VARIANTS, RuleEngine, two_proportion_p_value, variant_for
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = pytest.mark.claim

T0 = 1_764_000_000_000


def _adaptive(rule: dict) -> dict:
    return next(c["adaptive"] for c in rule["when"]["all"] if "adaptive" in c)


def test_each_sessions_action_carries_its_own_variant():
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    shallow_rule = next(r for r in ruleset["rules"] if r["id"] == "shallow_engagement")
    explore_pct = float(_adaptive(shallow_rule)["explore_pct"])
    events = [e for i in range(120) for e in shallow_session(f"v{i}", T0 + 100_000 * i)]
    decider = Decider(JobConfig(), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)
    actions, _, _ = decide_all(decider, events, 64)
    assert len(actions) == 120  # the 12 % scroll is shallow for every variant's threshold
    for a in actions:
        assert a["rule_id"] == "shallow_engagement" and a["rule_version"] == shallow_rule["version"]
        assert isinstance(a["rule_version"], int)
        assert a["params"]["experiment_id"] == f"shallow_engagement@{shallow_rule['version']}"
        assert a["params"]["variant"] == VARIANTS[variant_for("shallow_engagement", a["session_id"], explore_pct)]
    seen = Counter(a["params"]["variant"] for a in actions)
    assert set(seen) == set(VARIANTS), seen  # sessions are spread over the variants, not all the same


def test_an_action_without_params_has_an_empty_params_object():
    decider = Decider(JobConfig(), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)
    actions, _, _ = decide_all(decider, article_session("a", T0), 1)
    assert [(a["action"], a["params"]) for a in actions] == [("show_video_demo_and_price_comparison", {})]


@pytest.mark.parametrize("counts", [(0, 0, 3, 10), (3, 10, 0, 0)])
def test_p_value_of_an_empty_group_is_one(counts):
    assert two_proportion_p_value(*counts) == 1.0
