"""The rule engine (udfs/rules.py) and the default rules (rules/default.v1.json)."""
from __future__ import annotations

import copy
import json
import random

import pytest

from udfs.rules import (
    DEFAULT_RULES_PATH,
    VARIANTS,
    RuleEngine,
    RulesetError,
    adapt,
    adapt_moves,
    known_feature_names,
    load_ruleset,
    reload,
    two_proportion_p_value,
    validate_ruleset,
    variant_for,
)

T0_MS = 1_764_460_800_000  # 2025-11-30T00:00:00Z, an arbitrary event-time origin


def default_ruleset() -> dict:
    return json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


def zero_features(**values: float) -> dict[str, float]:
    features = {name: 0.0 for name in known_feature_names()}
    for name, value in values.items():
        assert name in features, name
        features[name] = float(value)
    return features


def event(type_: str, ts_ms: int, *, session_id: str = "s-1", item_id: str | None = "laptop-16gb",
          **props) -> dict:
    return {"event_id": f"e-{ts_ms}", "type": type_, "session_id": session_id, "ts_ms": ts_ms,
            "page": {"url": "https://shop.example/p/laptop-16gb", "path": "/p/laptop-16gb", "item_id": item_id,
                     "content_ids": [], "referrer": None},
            "props": props}


def simple_ruleset(*rules: dict, rules_version: str = "2026-11-30.1") -> dict:
    out = []
    for rule in rules:
        base = {"version": 1, "description": "test rule", "priority": 1, "cooldown_ms": 0,
                "action": {"name": "act_" + rule["id"], "params": {}}}
        base.update(rule)
        out.append(base)
    return {"rules_version": rules_version, "rules": out}


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.default()


# ------------------------------------------------------------------------------------ the default file


def test_default_file_validates_against_the_schema_and_feature_list():
    ruleset = load_ruleset(DEFAULT_RULES_PATH)
    assert ruleset["rules_version"] == "2026-12-02.1"
    assert {r["action"]["name"] for r in ruleset["rules"]} == {
        "show_video_demo_and_price_comparison", "simplify_layout", "rerank_towards_item"}
    # the schema is applied, not only present: a ruleset that schemas/rules.v1.json itself refuses (checked
    # here with jsonschema alone, independently of udfs.rules) is refused, naming the rule and the field
    import jsonschema

    schema = json.loads((DEFAULT_RULES_PATH.parents[1] / "schemas" / "rules.v1.json").read_text(encoding="utf-8"))
    jsonschema.validate(default_ruleset(), schema)
    bad = default_ruleset()
    bad["rules"][0]["cooldown_ms"] = "one minute"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(RulesetError, match=r"\(rules\[0\]\) field cooldown_ms: 'one minute' is not of type"):
        load_ruleset(json.dumps(bad))
    # and the feature list: a condition on a feature udfs.features does not compute is refused
    unknown = default_ruleset()
    unknown["rules"][0]["when"]["all"][1]["feature"] = "time_on_moon_s"
    with pytest.raises(RulesetError, match="unknown feature 'time_on_moon_s'"):
        load_ruleset(json.dumps(unknown))


def test_every_default_threshold_names_its_source():
    def comparisons(node):
        for key in ("all", "any"):
            for child in node.get(key, []):
                yield from comparisons(child)
        if "not" in node:
            yield from comparisons(node["not"])
        if "feature" in node:
            yield node
        if "intent_score" in node:
            yield node["intent_score"]

    for rule in default_ruleset()["rules"]:
        for comparison in comparisons(rule["when"]):
            assert comparison.get("source", "").startswith(("article", "ours")), (rule["id"], comparison)


def test_rules_are_evaluated_by_priority_then_id(engine):
    assert engine.rule_ids() == ("rerank_compared_item", "deep_engagement_product", "shallow_engagement")


# ------------------------------------------------------------------------------------ the article's scenario


def test_article_scenario_view_scroll_hover_compare(engine):
    """Views a laptop, scrolls to specs, hovers 3 s on '16GB RAM', clicks Compare (source article)."""
    last_fired: dict[str, int] = {}
    decisions = []
    steps = [
        (event("page_view", T0_MS), zero_features(page_view_count=1, product_view_count=1), 0.05),
        (event("scroll", T0_MS + 4000, scroll_depth_pct=78), zero_features(
            page_view_count=1, product_view_count=1, session_age_s=4, max_scroll_depth_pct=78), 0.10),
        (event("hover", T0_MS + 8000, element_id="spec-ram", element_role="spec", hover_ms=3000), zero_features(
            page_view_count=1, product_view_count=1, session_age_s=8, max_scroll_depth_pct=78,
            hover_ms_spec=3000), 0.35),
        (event("click", T0_MS + 9000, element_id="compare", element_role="compare_button"), zero_features(
            page_view_count=1, product_view_count=1, session_age_s=9, max_scroll_depth_pct=78,
            hover_ms_spec=3000, click_count=1, compare_click_count=1), 0.74),
    ]
    for ev, features, score in steps:
        decision = engine.evaluate(features, score, ev, last_fired)
        decisions.append(decision)
        if decision is not None:
            last_fired[decision.rule_id] = decision.event_ts_ms
    assert decisions[0] is None and decisions[1] is None  # scrolled deep, but no hover yet
    assert decisions[2].action == "show_video_demo_and_price_comparison"
    assert decisions[2].rule_id == "deep_engagement_product"
    assert decisions[3].action == "rerank_towards_item"
    assert decisions[3].params == {"item_id": "laptop-16gb"}
    assert decisions[3].as_dict() == {"action": "rerank_towards_item", "params": {"item_id": "laptop-16gb"},
                                      "rule_id": "rerank_compared_item", "rule_version": 2,
                                      "rules_version": "2026-12-02.1"}


def test_deep_scroll_and_3s_hover_on_product_card_shows_video_demo(engine):
    features = zero_features(max_scroll_depth_pct=75, hover_ms_product_card=3000, session_age_s=20)
    decision = engine.evaluate(features, 0.2, event("hover", T0_MS, element_role="product_card"), {})
    assert decision is not None and decision.action == "show_video_demo_and_price_comparison"


@pytest.mark.parametrize("scroll_pct, hover_ms", [(70, 3000), (75, 2000), (69, 5000), (100, 0)])
def test_article_thresholds_are_strict(engine, scroll_pct, hover_ms):
    """'exceeds 70%' and 'surpasses 2 seconds': exactly 70 % or exactly 2000 ms is not enough."""
    features = zero_features(max_scroll_depth_pct=scroll_pct, hover_ms_product_card=hover_ms, session_age_s=3)
    assert engine.evaluate(features, 0.2, event("hover", T0_MS), {}) is None


def test_shallow_engagement_simplifies_layout(engine):
    features = zero_features(session_age_s=12, max_scroll_depth_pct=5, page_view_count=1)
    decision = engine.evaluate(features, 0.02, event("scroll", T0_MS, scroll_depth_pct=5), {})
    assert decision is not None and decision.action == "simplify_layout"
    assert decision.rule_id == "shallow_engagement"
    # the scroll threshold is adaptive: the action names the experiment and the session's variant
    assert decision.params["experiment_id"] == "shallow_engagement@1"
    assert decision.params["variant"] == VARIANTS[variant_for("shallow_engagement", "s-1", 20)]


def test_shallow_engagement_waits_10_s_and_ignores_engaged_sessions(engine):
    early = zero_features(session_age_s=9, max_scroll_depth_pct=5)
    assert engine.evaluate(early, 0.02, event("scroll", T0_MS), {}) is None
    hovered = zero_features(session_age_s=30, max_scroll_depth_pct=5, hover_ms_product_card=1500)
    assert engine.evaluate(hovered, 0.02, event("scroll", T0_MS), {}) is None


def test_high_intent_without_compare_does_not_rerank(engine):
    features = zero_features(session_age_s=30, max_scroll_depth_pct=40, compare_click_count=0)
    assert engine.evaluate(features, 0.95, event("click", T0_MS), {}) is None


def test_rerank_needs_an_item_on_the_page(engine):
    features = zero_features(session_age_s=30, max_scroll_depth_pct=40, compare_click_count=2)
    assert engine.evaluate(features, 0.95, event("click", T0_MS, item_id=None), {}) is None
    decision = engine.evaluate(features, 0.95, event("click", T0_MS, item_id="sku-9"), {})
    assert decision.params == {"item_id": "sku-9"}


def test_to_action_has_the_contract_fields(engine):
    features = zero_features(max_scroll_depth_pct=75, hover_ms_product_card=3000)
    decision = engine.evaluate(features, 0.3, event("hover", T0_MS), {})
    action = decision.to_action(session_id="s-1", model_version="intent-lr/1", intent_score=0.3,
                                event_id="e-1", decided_at_ms=T0_MS + 7)
    assert list(action) == ["session_id", "action", "params", "rule_id", "rule_version", "rules_version",
                            "model_version", "intent_score", "event_id", "event_ts_ms", "decided_at_ms"]
    assert action["event_ts_ms"] == T0_MS and action["decided_at_ms"] == T0_MS + 7


# ------------------------------------------------------------------------------------ priorities


def test_highest_priority_wins_when_several_rules_match(engine):
    features = zero_features(max_scroll_depth_pct=80, hover_ms_product_card=4000, compare_click_count=1)
    assert engine.evaluate(features, 0.9, event("click", T0_MS), {}).rule_id == "rerank_compared_item"
    assert engine.evaluate(features, 0.1, event("click", T0_MS), {}).rule_id == "deep_engagement_product"


def test_priority_tie_goes_to_the_smaller_rule_id():
    always = {"feature": "event_count", "op": ">=", "value": 0}
    ruleset = simple_ruleset({"id": "zeta", "priority": 5, "when": always},
                             {"id": "alpha", "priority": 5, "when": always},
                             {"id": "low", "priority": 1, "when": always})
    engine = RuleEngine(ruleset)
    assert engine.evaluate(zero_features(), 0.0, event("click", T0_MS), {}).rule_id == "alpha"
    # the order of the rules in the file does not matter
    ruleset["rules"].reverse()
    assert RuleEngine(ruleset).evaluate(zero_features(), 0.0, event("click", T0_MS), {}).rule_id == "alpha"


def test_disabled_rule_never_fires():
    always = {"feature": "event_count", "op": ">=", "value": 0}
    engine = RuleEngine(simple_ruleset({"id": "off", "priority": 9, "when": always, "enabled": False},
                                       {"id": "on", "priority": 1, "when": always}))
    assert engine.evaluate(zero_features(), 0.0, event("click", T0_MS), {}).rule_id == "on"


def test_event_tests_not_any_and_params_from_event():
    ruleset = simple_ruleset({
        "id": "compare_click", "when": {"all": [
            {"event_type": "click"}, {"event_element_role": "compare_button"},
            {"not": {"feature": "add_to_cart_count", "op": ">", "value": 0}},
            {"any": [{"intent_score": {"op": ">", "value": 0.5}}, {"feature": "click_count", "op": ">=", "value": 3}]},
        ]},
        "action": {"name": "act", "params": {"element": {"$event": "props.element_id"}, "k": 3}}})
    engine = RuleEngine(ruleset)
    click = event("click", T0_MS, element_id="cmp", element_role="compare_button")
    assert engine.evaluate(zero_features(), 0.6, click, {}).params == {"element": "cmp", "k": 3}
    assert engine.evaluate(zero_features(click_count=3), 0.1, click, {}) is not None
    assert engine.evaluate(zero_features(), 0.1, click, {}) is None  # any: neither
    assert engine.evaluate(zero_features(add_to_cart_count=1), 0.6, click, {}) is None  # not
    assert engine.evaluate(zero_features(), 0.6, event("hover", T0_MS, element_role="compare_button"), {}) is None
    assert engine.evaluate(zero_features(), 0.6, event("click", T0_MS, element_role="price"), {}) is None


# ------------------------------------------------------------------------------------ cool-down


def test_cooldown_is_per_rule_in_event_time(engine):
    features = zero_features(max_scroll_depth_pct=80, hover_ms_product_card=3000)
    cooldown_ms = next(r["cooldown_ms"] for r in default_ruleset()["rules"] if r["id"] == "deep_engagement_product")
    last_fired = {"deep_engagement_product": T0_MS}
    decision, reason = engine.evaluate_with_reason(features, 0.2, event("hover", T0_MS + cooldown_ms - 1),
                                                   last_fired)
    assert decision is None and reason == "cooldown:deep_engagement_product"
    decision = engine.evaluate(features, 0.2, event("hover", T0_MS + cooldown_ms), last_fired)
    assert decision is not None and decision.event_ts_ms == T0_MS + cooldown_ms
    # another rule's cool-down does not block this one
    assert engine.evaluate(features, 0.2, event("hover", T0_MS + 1), {"shallow_engagement": T0_MS}) is not None


def test_winner_cooling_down_suppresses_lower_priority_rules(engine):
    """No flapping: while the rerank cools down, the video demo (which also matches) does not replace it."""
    features = zero_features(max_scroll_depth_pct=80, hover_ms_product_card=3000, compare_click_count=1)
    decision, reason = engine.evaluate_with_reason(features, 0.9, event("click", T0_MS + 1000),
                                                   {"rerank_compared_item": T0_MS})
    assert decision is None and reason == "cooldown:rerank_compared_item"


def test_replay_decides_the_same_as_live(engine):
    """Decisions depend on event time only, not on when (wall clock) they are evaluated."""
    rng = random.Random(7)

    def run() -> list:
        last_fired: dict[str, int] = {}
        out = []
        for i in range(300):
            features = zero_features(max_scroll_depth_pct=rng.uniform(0, 100), hover_ms_product_card=rng.uniform(0, 4000),
                                     session_age_s=i, compare_click_count=rng.randint(0, 1))
            d = engine.evaluate(features, rng.random(), event("scroll", T0_MS + i * 1000), last_fired)
            if d is not None:
                last_fired[d.rule_id] = d.event_ts_ms
            out.append(None if d is None else (d.rule_id, d.event_ts_ms, tuple(sorted(d.params.items()))))
        return out

    rng.seed(7)
    live = run()
    rng.seed(7)
    assert run() == live
    assert sum(d is not None for d in live) > 3


# ------------------------------------------------------------------------------------ invalid rulesets


def _rejected(mutate) -> str:
    ruleset = default_ruleset()
    mutate(ruleset)
    with pytest.raises(RulesetError) as info:
        RuleEngine(ruleset)
    return str(info.value)


def test_unknown_feature_is_rejected_naming_rule_and_field():
    message = _rejected(lambda r: r["rules"][1]["when"]["all"][0].update(feature="scroll_depth"))
    assert "rule 'deep_engagement_product' (rules[1])" in message
    assert "when.all[0].feature" in message and "unknown feature 'scroll_depth'" in message


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["rules"][1]["when"]["all"][0].update(op="gt"), "when.all[0].op: 'gt' is not one of"),
    (lambda r: r["rules"][1]["when"]["all"][0].pop("value"), "when.all[0]: 'value' is a required property"),
    (lambda r: r["rules"][0].pop("priority"), "rule 'rerank_compared_item' (rules[0]): 'priority' is a required"),
    (lambda r: r["rules"][2].update(id="deep_engagement_product"), "field id: duplicate rule id"),
    (lambda r: r["rules"][0]["when"]["all"][0]["intent_score"].update(value=1.5), "intent_score.value: 1.5 is greater"),
    (lambda r: r["rules"][0]["when"]["all"].append({"foo": 1}), "when.all[3]: not a condition"),
    (lambda r: r["rules"][1].update(cooldown_ms=-1), "field cooldown_ms: -1 is less than the minimum"),
    (lambda r: r["rules"][2]["when"]["all"][1]["adaptive"].update(min=30), "value 25 outside [min 30, max 40]"),
    (lambda r: r.update(rules_version="v1"), "field rules_version: 'v1' does not match"),
])
def test_invalid_rulesets_are_rejected_with_the_reason(mutate, expected):
    assert expected in _rejected(mutate)


def test_invalid_json_and_nan_are_rejected():
    with pytest.raises(RulesetError, match="invalid JSON at line 1"):
        RuleEngine.from_json('{"rules_version": ')
    text = json.dumps(default_ruleset()).replace('"value": 70', '"value": NaN')
    with pytest.raises(RulesetError, match="NaN is not a JSON number"):
        RuleEngine.from_json(text)


def test_reload_keeps_the_previous_engine_when_the_new_ruleset_is_invalid(engine):
    broken = default_ruleset()
    broken["rules"][0]["when"]["all"][1]["feature"] = "nope"
    kept, reason = reload(engine, json.dumps(broken).encode())
    assert kept is engine and "unknown feature 'nope'" in reason
    newer = default_ruleset()
    newer["rules_version"] = "2026-12-01.1"
    swapped, reason = reload(engine, json.dumps(newer).encode())
    assert reason is None and swapped.rules_version == "2026-12-01.1"


def test_feature_list_can_be_passed_in():
    ruleset = simple_ruleset({"id": "r", "when": {"feature": "custom_feature_s", "op": ">", "value": 1}})
    with pytest.raises(RulesetError, match="unknown feature 'custom_feature_s'"):
        validate_ruleset(ruleset)
    engine = RuleEngine(ruleset, known_features=["custom_feature_s"])
    assert engine.evaluate({"custom_feature_s": 2.0}, 0.0, event("click", T0_MS), {}) is not None


def test_missing_feature_raises_key_error_naming_it(engine):
    with pytest.raises(KeyError, match="compare_click_count"):
        engine.evaluate({}, 0.9, event("click", T0_MS), {})


# ------------------------------------------------------------------------------------ vector form


def test_vector_evaluation_equals_dict_evaluation(engine):
    import numpy as np
    rng = random.Random(3)
    names = engine.feature_order
    fired = 0
    for i in range(500):
        features = zero_features(max_scroll_depth_pct=rng.uniform(0, 100), hover_ms_product_card=rng.choice([0, 2500]),
                                 hover_ms_spec=rng.choice([0, 500, 2500]), session_age_s=rng.uniform(0, 30),
                                 compare_click_count=rng.randint(0, 1))
        vector = np.array([features[n] for n in names], dtype=np.float32)
        ev = event("scroll", T0_MS + i, session_id=f"s-{i}")
        score = rng.random()
        expected = engine.evaluate(features, score, ev, {})
        assert engine.evaluate_vector(vector, score, ev, {}) == expected
        fired += expected is not None
    assert fired > 50


# ------------------------------------------------------------------------------------ adaptive thresholds


def test_variant_assignment_is_deterministic_and_near_explore_pct():
    counts = [0, 0, 0]
    for i in range(20000):
        counts[variant_for("shallow_engagement", f"session-{i}", 20)] += 1
    assert variant_for("shallow_engagement", "abc", 20) == variant_for("shallow_engagement", "abc", 20)
    assert 0.78 < counts[0] / 20000 < 0.82
    assert 0.09 < counts[1] / 20000 < 0.11 and 0.09 < counts[2] / 20000 < 0.11
    assert variant_for("shallow_engagement", "abc", 0) == 0


def test_adaptive_threshold_variants_are_what_sessions_see(engine):
    features = zero_features(session_age_s=12, max_scroll_depth_pct=22)  # control 25, lower 20, higher 30
    seen = {}
    for i in range(400):
        sid = f"s-{i}"
        decision = engine.evaluate(features, 0.0, event("scroll", T0_MS, session_id=sid), {})
        seen.setdefault(VARIANTS[variant_for("shallow_engagement", sid, 20)], set()).add(decision is not None)
    assert seen == {"control": {True}, "lower": {False}, "higher": {True}}


def test_two_proportion_p_value_matches_chi_square():
    from scipy.stats import chi2_contingency

    table = [[130, 1000 - 130], [100, 1000 - 100]]
    expected = chi2_contingency(table, correction=False).pvalue
    assert two_proportion_p_value(130, 1000, 100, 1000) == pytest.approx(expected, rel=1e-9)
    assert two_proportion_p_value(0, 100, 0, 100) == 1.0
    with pytest.raises(ValueError, match="need 0 <= conversions <= exposures"):
        two_proportion_p_value(5, 4, 1, 10)


def _counts(control, lower, higher):
    exp = {"shallow_engagement@1": {"control": control[1], "lower": lower[1], "higher": higher[1]}}
    conv = {"shallow_engagement@1": {"control": control[0], "lower": lower[0], "higher": higher[0]}}
    return exp, conv


def test_adapt_moves_threshold_when_a_variant_converts_significantly_better():
    ruleset = default_ruleset()
    before = copy.deepcopy(ruleset)
    exposures, conversions = _counts(control=(400, 8000), lower=(40, 1000), higher=(80, 1000))
    new = adapt(ruleset, exposures, conversions)
    assert ruleset == before  # pure
    rule = next(r for r in new["rules"] if r["id"] == "shallow_engagement")
    assert rule["when"]["all"][1]["value"] == 30 and rule["version"] == 2
    assert new["rules_version"] == "2026-12-02.2"
    assert adapt(ruleset, exposures, conversions, today="2026-12-03")["rules_version"] == "2026-12-03.1"
    (move,) = adapt_moves(ruleset, exposures, conversions)
    assert move.variant == "higher" and move.lift == pytest.approx(0.6) and move.p_value < 0.025
    RuleEngine(new)  # still a valid ruleset


@pytest.mark.parametrize("control, lower, higher", [
    ((400, 8000), (52, 1000), (55, 1000)),  # better, but not significant
    ((400, 8000), (20, 1000), (30, 1000)),  # significantly worse: stay
    ((20, 400), (8, 100), (20, 100)),       # too few exposures to test
])
def test_adapt_leaves_the_ruleset_alone_without_significant_improvement(control, lower, higher):
    ruleset = default_ruleset()
    assert adapt(ruleset, *_counts(control, lower, higher)) == ruleset


def test_adapt_ignores_counts_of_an_older_rule_version():
    exposures, conversions = _counts(control=(400, 8000), lower=(40, 1000), higher=(80, 1000))
    ruleset = default_ruleset()
    next(r for r in ruleset["rules"] if r["id"] == "shallow_engagement")["version"] = 2
    assert adapt(ruleset, exposures, conversions) == ruleset


def test_article_scenario_through_session_state(engine):
    """The same scenario with features computed by udfs.session.SessionState (the job's code path)."""
    import udfs.session as session
    state = session.SessionState()
    steps = [
        (event("page_view", T0_MS, title="Laptop 16GB"), 0.05),
        (event("scroll", T0_MS + 3000, scroll_depth_pct=40.0), 0.05),
        (event("scroll", T0_MS + 4000, scroll_depth_pct=78.0), 0.10),
        (event("hover", T0_MS + 8000, element_id="spec-ram", element_role="spec", hover_ms=3000), 0.35),
        (event("click", T0_MS + 9000, element_id="compare", element_role="compare_button", x_px=10, y_px=10), 0.74),
    ]
    last_fired: dict[str, int] = {}
    fired = []
    for ev, score in steps:
        assert state.apply(ev).applied, ev["type"]
        decision = engine.evaluate(state.feature_dict(), score, ev, last_fired)
        if decision is not None:
            last_fired[decision.rule_id] = decision.event_ts_ms
            fired.append((ev["type"], decision.rule_id, decision.params))
    assert fired == [("hover", "deep_engagement_product", {}),
                     ("click", "rerank_compared_item", {"item_id": "laptop-16gb"})]


def test_engine_pickles_by_ruleset(engine):
    import pickle

    clone = pickle.loads(pickle.dumps(engine))
    features = zero_features(max_scroll_depth_pct=75, hover_ms_product_card=3000)
    assert clone.rules_version == engine.rules_version
    assert clone.evaluate(features, 0.2, event("hover", T0_MS), {}) == engine.evaluate(features, 0.2,
                                                                                       event("hover", T0_MS), {})
