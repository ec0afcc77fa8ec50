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


def test_variant_for_follows_its_documented_buckets():
    import zlib

    for sid in [f"s{i}" for i in range(200)]:
        bucket_pct = (zlib.crc32(f"shallow_engagement|{sid}".encode()) % 10000) / 100
        expected = 1 if bucket_pct < 10 else 2 if bucket_pct < 20 else 0  # explore 20: lower < 10, higher < 20
        assert variant_for("shallow_engagement", sid, 20.0) == expected, sid
    assert variant_for("shallow_engagement", None, 20.0) == 0


def test_each_session_is_judged_by_its_own_variants_threshold():
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    rule = next(r for r in ruleset["rules"] if r["id"] == "shallow_engagement")
    cond = next(c for c in rule["when"]["all"] if "adaptive" in c)
    lower = cond["value"] - cond["adaptive"]["step"]
    # depths below control's and higher's threshold, above lower's: only "lower" keeps the full page
    # (two different depths: the noise filter drops a scroll that does not move)
    depths = iter([lower + 1.0, lower + 3.0] * 120)
    events = []
    for i in range(120):
        for e in shallow_session(f"t{i}", T0 + 100_000 * i):
            if e["type"] == "scroll":
                depth = next(depths)
                e["props"].update(scroll_depth_pct=depth, scroll_depth_pct_raw=depth)
            events.append(e)
    decider = Decider(JobConfig(), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)
    actions, _, _ = decide_all(decider, events, 64)
    fired = {a["session_id"] for a in actions if a["rule_id"] == "shallow_engagement"}
    explore = float(cond["adaptive"]["explore_pct"])
    expected = {f"t{i}" for i in range(120) if VARIANTS[variant_for("shallow_engagement", f"t{i}", explore)] != "lower"}
    assert fired == expected and 0 < len(expected) < 120


def test_ruleset_errors_say_what_is_wrong(tmp_path):
    from udfs.rules import RulesetError, load_ruleset

    with pytest.raises(RulesetError, match="ruleset file .*nope.json"):
        load_ruleset(tmp_path / "nope.json")
    with pytest.raises(RulesetError, match="not UTF-8"):
        load_ruleset(b'{"rules_version": "\xff"}')
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    rule = next(r for r in ruleset["rules"] if r["id"] == "shallow_engagement")
    cond = next(c for c in rule["when"]["all"] if "adaptive" in c)
    rule["when"]["all"].append(json.loads(json.dumps(cond)))
    with pytest.raises(RulesetError, match="at most one adaptive threshold per rule, found 2"):
        load_ruleset(ruleset)


def test_adaptive_variant_values_name_each_variants_threshold_clamped_to_its_range():
    from udfs.rules import adaptive_variant_values, validate_ruleset

    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    assert adaptive_variant_values(ruleset) == {"shallow_engagement@1": {"control": 25.0, "lower": 20.0,
                                                                         "higher": 30.0}}
    shallow_rule = next(r for r in ruleset["rules"] if r["id"] == "shallow_engagement")
    comparison = next(c for c in shallow_rule["when"]["all"] if "adaptive" in c)
    comparison["value"], shallow_rule["version"] = 40, 7  # at max: the higher variant is clamped to 40
    assert adaptive_variant_values(validate_ruleset(ruleset)) == {
        "shallow_engagement@7": {"control": 40.0, "lower": 35.0, "higher": 40.0}}
    shallow_rule["enabled"] = False
    assert adaptive_variant_values(validate_ruleset(ruleset)) == {}
