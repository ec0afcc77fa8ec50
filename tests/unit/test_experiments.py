"""Arm assignment, propensities and experiment counting (udfs/experiments.py) through the decider."""
from __future__ import annotations

import copy
import json
import pickle
import random
from collections import Counter
from dataclasses import replace

import pytest
from scipy.stats import binomtest, chi2_contingency

from udfs.config import JobConfig
from udfs.contract import make_event
from udfs.decide import Decider, SessionEntry, decide_all
from udfs.experiments import (
    HOLDOUT,
    PERSONALIZED,
    ExperimentSession,
    arm_for,
    fold_facts,
    observe_event,
    variant_propensity,
)
from udfs.rules import DEFAULT_RULES_PATH, RuleEngine, RulesetError, load_ruleset, variant_for
from udfs.scenarios import DESKTOP_CONTEXT, LAPTOP_PAGE, article_session, shallow_session
from udfs.scoring import ReloadingScorer

T0 = 1_764_000_000_000
EXP = "exp-test"


def _ruleset(holdout_pct: float = 50, **experiment) -> dict:
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    ruleset["experiment"] = {"id": EXP, "holdout_pct": holdout_pct, **experiment}
    return ruleset


def _decider(ruleset: dict) -> Decider:
    return Decider(replace(JobConfig()), ReloadingScorer(), RuleEngine(ruleset), clock_ms=lambda: 0)


def _event(kind: str, session_id: str, t_ms: int, n: int, anonymous_id: str | None = None, **props) -> dict:
    return make_event(kind, session_id=session_id, anonymous_id=anonymous_id or f"anon-{session_id}",
                      client_ts_ms=t_ms, seq=n, source_key=f"x:{session_id}:{kind}:{n}", page=dict(LAPTOP_PAGE),
                      context=dict(DESKTOP_CONTEXT), props=props or None)


def _exposure(session_id: str, t_ms: int, n: int, variant: str = "x", experiment_id: str = EXP) -> dict:
    return _event("exposure", session_id, t_ms, n, experiment_id=experiment_id, variant=variant, content_id="c")


def _purchase(session_id: str, t_ms: int, n: int) -> dict:
    return _event("purchase", session_id, t_ms, n, order_id=f"o-{n}", value=10.0)


# -- assignment ----------------------------------------------------------------------------------------


def test_arm_is_deterministic_per_visitor_and_splits_as_configured():
    arms = [arm_for(EXP, f"visitor-{i}", 20) for i in range(20_000)]
    assert arms == [arm_for(EXP, f"visitor-{i}", 20) for i in range(20_000)]
    n_holdout = arms.count(HOLDOUT)
    # two-sided exact binomial test of the configured 20 %: a biased hash would fail it
    assert binomtest(n_holdout, len(arms), 0.20).pvalue > 0.001, n_holdout
    assert arm_for(EXP, "v", 0) == PERSONALIZED and arm_for(EXP, "v", 100) == HOLDOUT
    assert arm_for(EXP, None, 50) == PERSONALIZED
    # another experiment id re-randomizes: the arms of two experiments are independent
    other = [arm_for("exp-other", f"visitor-{i}", 20) for i in range(20_000)]
    table = Counter(zip(arms, other))
    chi2 = chi2_contingency([[table[(a, b)] for b in (HOLDOUT, PERSONALIZED)] for a in (HOLDOUT, PERSONALIZED)])
    assert chi2.pvalue > 0.001


def test_arm_is_independent_of_the_threshold_variant():
    sids = [f"visitor-{i}" for i in range(20_000)]
    table = Counter((arm_for(EXP, s, 50), variant_for("shallow_engagement", s, 20)) for s in sids)
    rows = [[table[(a, v)] for v in (0, 1, 2)] for a in (HOLDOUT, PERSONALIZED)]
    assert chi2_contingency(rows).pvalue > 0.001, rows


def test_returning_visitor_keeps_the_arm_across_sessions():
    engine = RuleEngine(_ruleset(50))
    anon = next(f"v{i}" for i in range(100) if arm_for(EXP, f"v{i}", 50) == HOLDOUT)
    events = article_session("s-1", T0) + article_session("s-2", T0 + 3_600_000)
    for e in events:
        e["anonymous_id"] = anon
    actions, _, _ = decide_all(_decider(engine.ruleset), events, 5)
    assert {a["session_id"] for a in actions} == {"s-1", "s-2"}
    assert {a["arm"] for a in actions} == {HOLDOUT}


# -- ruleset -------------------------------------------------------------------------------------------


def test_experiment_block_is_validated_and_defaults_are_filled():
    ruleset = load_ruleset(_ruleset(10))
    assert ruleset["experiment"] == {"id": EXP, "holdout_pct": 10, "attribution_window_ms": 1_800_000,
                                     "bucket_ms": 60_000}
    for bad, field in (({"holdout_pct": 120}, "holdout_pct"), ({"id": "Bad Id"}, "id"),
                       ({"attribution_window_ms": 0}, "attribution_window_ms"), ({"arms": 3}, "arms")):
        broken = _ruleset(10)
        broken["experiment"].update(bad)
        with pytest.raises(RulesetError, match="experiment"):
            load_ruleset(broken)
        assert field  # the message names the block; the field is in jsonschema's text
    assert RuleEngine(_ruleset(10)).experiment.holdout_pct == 10.0


# -- actions carry arm, variant, propensity ---------------------------------------------------------------


def test_every_action_carries_experiment_arm_variant_and_propensity():
    events = []
    for i in range(60):
        make = article_session if i % 2 else shallow_session
        events += make(f"s{i}", T0 + 1000 * i)
    actions, _, _ = decide_all(_decider(_ruleset(30)), events, 16)
    assert len(actions) >= 50
    arms = set()
    for a in actions:
        assert a["experiment_id"] == EXP
        arm = arm_for(EXP, a["session_id"], 30)
        assert a["arm"] == arm
        arms.add(arm)
        p_arm = 0.3 if arm == HOLDOUT else 0.7
        if a["rule_id"] == "shallow_engagement":
            assert a["variant"] == a["params"]["variant"]
            assert a["propensity"] == pytest.approx(p_arm * variant_propensity(a["variant"], 20))
        else:
            assert a["variant"] is None and a["propensity"] == pytest.approx(p_arm)
    assert arms == {HOLDOUT, PERSONALIZED}  # holdout sessions are decided too (shadow actions)


def test_without_an_experiment_actions_are_personalized_with_the_variant_propensity():
    ruleset = _ruleset(0)
    del ruleset["experiment"]
    actions, _, _ = decide_all(_decider(ruleset), shallow_session("s", T0), 4)
    assert actions and actions[0]["experiment_id"] is None and actions[0]["arm"] == PERSONALIZED
    assert actions[0]["propensity"] == pytest.approx(variant_propensity(actions[0]["variant"], 20))


# -- counting ------------------------------------------------------------------------------------------


def _counts(ruleset: dict, events: list[dict], batch_size: int) -> dict:
    decider = _decider(ruleset)
    store: dict = {}
    facts = []
    for i in range(0, len(events), batch_size):
        result = decider.decide(events[i:i + batch_size], store.get)
        store.update(result.touched)
        facts += result.facts
    return fold_facts(facts)


def _metric(counts: dict, arm: str, metric: str, experiment_id: str = EXP) -> int:
    return sum(n for field, n in counts.get(experiment_id, {}).items() if field.startswith(f"{arm}|{metric}|"))


def test_conversion_counts_only_within_the_attribution_window_after_the_exposure():
    window_ms = 600_000
    ruleset = _ruleset(0, attribution_window_ms=window_ms)
    events = (
        article_session("in", T0) + [_exposure("in", T0 + 11_000, 90), _purchase("in", T0 + 11_000 + window_ms, 91)]
        + article_session("late", T0) + [_exposure("late", T0 + 11_000, 90),
                                          _purchase("late", T0 + 12_000 + window_ms, 91)]
        + article_session("before", T0) + [_purchase("before", T0 + 10_500, 90), _exposure("before", T0 + 11_000, 91)]
        + article_session("unexposed", T0) + [_purchase("unexposed", T0 + 11_000, 90)]
        + article_session("other_exp", T0) + [_exposure("other_exp", T0 + 11_000, 90, experiment_id="nope"),
                                              _purchase("other_exp", T0 + 12_000, 91)])
    counts = _counts(ruleset, events, 3)
    assert _metric(counts, PERSONALIZED, "sessions") == 5
    assert _metric(counts, PERSONALIZED, "triggered") == 5
    assert _metric(counts, PERSONALIZED, "exposed") == 3
    assert _metric(counts, PERSONALIZED, "converted") == 1  # "in" only: "late" is past, "before" before it
    assert _metric(counts, PERSONALIZED, "sessions_converted") == 5
    # the bucket of a conversion is its purchase's event time
    assert counts[EXP][f"{PERSONALIZED}|converted|{(T0 + 11_000 + window_ms) // 60_000 * 60_000}"] == 1


def test_a_purchase_that_arrives_before_its_exposure_is_attributed_when_the_exposure_arrives():
    # the exposure is 1 s older than the purchase that arrived first: inside the lateness bound
    events = article_session("s", T0) + [_purchase("s", T0 + 12_000, 90), _exposure("s", T0 + 11_000, 91)]
    counts = _counts(_ruleset(0, attribution_window_ms=600_000), events, 1)
    assert _metric(counts, PERSONALIZED, "converted") == 1
    # beyond the lateness bound the exposure is a late event (DLQ, counted there), not an exposure
    beyond_ms = 11_000 + JobConfig().allowed_lateness_ms + 1_000
    events = article_session("s", T0) + [_purchase("s", T0 + beyond_ms, 90), _exposure("s", T0 + 11_000, 91)]
    _, dlq, _ = decide_all(_decider(_ruleset(0)), events, 1)
    assert [r["reason"] for r in dlq] == ["late_event"]
    assert _metric(_counts(_ruleset(0), events, 1), PERSONALIZED, "exposed") == 0


def test_cart_is_a_secondary_metric_and_bots_count_nothing():
    bot_events = article_session("bot", T0)
    for e in bot_events:
        e["context"] = dict(e["context"], is_bot=True, device_class="bot")
    events = (article_session("s", T0) + [_exposure("s", T0 + 11_000, 90),
                                          _event("add_to_cart", "s", T0 + 12_000, 91, item_id="laptop")]
              + bot_events)
    counts = _counts(_ruleset(0), events, 4)
    assert _metric(counts, PERSONALIZED, "carted") == 1 and _metric(counts, PERSONALIZED, "converted") == 0
    assert _metric(counts, PERSONALIZED, "sessions") == 1


def _stream(n_sessions: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for i in range(n_sessions):
        sid = f"s{i}"
        t0 = T0 + 1000 * i
        session = article_session(sid, t0) if i % 3 else shallow_session(sid, t0)
        session.append(_exposure(sid, t0 + 13_000, 90))
        if rng.random() < 0.3:
            session.append(_purchase(sid, t0 + 15_000, 91))
        events += session
    events.sort(key=lambda e: e["ts_ms"])
    return events


def test_counts_are_exact_under_duplicates_and_any_batching():
    events = _stream(80, 1)
    reference = _counts(_ruleset(40), events, len(events))
    assert _metric(reference, HOLDOUT, "sessions") + _metric(reference, PERSONALIZED, "sessions") == 80
    assert _metric(reference, HOLDOUT, "converted") > 0 and _metric(reference, PERSONALIZED, "converted") > 0
    duplicated = [e for e in events for _ in (0, 1)]  # every event delivered twice
    for batch_size in (1, 7, 50):
        assert _counts(_ruleset(40), events, batch_size) == reference
        assert _counts(_ruleset(40), duplicated, batch_size) == reference
    # adaptive threshold experiment: personalized sessions per variant
    rule_exp = "shallow_engagement@1"
    assert sum(_metric(reference, v, "sessions", rule_exp) for v in ("control", "lower", "higher")) == \
        _metric(reference, PERSONALIZED, "sessions")


def test_counts_are_exact_when_batches_are_decided_again_after_a_restore():
    """A restore brings back the session entries of the last state write and decides the later batches
    again: the facts they produce again are dropped by the per-(experiment, metric, session) markers."""
    events = _stream(60, 2)
    ruleset = _ruleset(40)
    reference = _counts(ruleset, events, 10)
    batches = [events[i:i + 10] for i in range(0, len(events), 10)]
    decider = _decider(ruleset)
    store: dict = {}
    counts: dict = {}
    seen: set = set()
    naive: list = []  # every fact as emitted, without the markers
    checkpoint = pickle.dumps(store)
    for n, batch in enumerate(batches):
        result = decider.decide(batch, store.get)
        store.update(result.touched)
        fold_facts(result.facts, counts, seen)
        if n % 3 == 0:
            checkpoint = pickle.dumps(store)  # a state write
            replay_from = n + 1
        if n == 4:  # crash: restore the last state write, decide everything after it again
            store = pickle.loads(checkpoint)
            for again in batches[replay_from:n + 1]:
                result = decider.decide(again, store.get)
                store.update(result.touched)
                fold_facts(result.facts, counts, seen)
                naive += result.facts
    assert counts == reference
    assert naive  # the replay did emit facts again: the markers are what kept the counts exact


def test_session_entries_pickled_before_experiments_still_load():
    entry = SessionEntry()
    old_state = entry.__getstate__()[:8]
    restored = SessionEntry.__new__(SessionEntry)
    restored.__setstate__(old_state)
    assert isinstance(restored.exp, ExperimentSession)
    restored.__setstate__(entry.__getstate__()[:7])
    assert restored.edge_recent is None


def test_observe_event_without_a_config_counts_only_the_adaptive_experiments():
    state, out = ExperimentSession(), []
    adaptive = (("r@1", "r", 50.0),)
    observe_event(state, _event("page_view", "s", T0, 0), None, adaptive, out)
    observe_event(state, _purchase("s", T0 + 1, 1), None, adaptive, out)
    assert [(f.experiment_id, f.metric) for f in out] == [("r@1", "sessions"), ("r@1", "sessions_converted")]
    assert out[0].arm == ("control", "lower", "higher")[variant_for("r", "s", 50.0)]
    copy.deepcopy(state)  # picklable / copyable (keyed state)


def test_a_session_allocates_no_experiment_container_until_it_uses_one():
    a, b = ExperimentSession(), ExperimentSession()
    assert a.arms is b.arms and a.done is b.done and a.exposed_ts_ms is b.exposed_ts_ms  # one shared empty mapping
    assert a.purchase_ts_ms == a.cart_ts_ms == () and type(a.purchase_ts_ms) is tuple
    out: list = []
    observe_event(a, _event("page_view", "s", T0, 0), None, (("r@1", "r", 50.0),), out)
    assert a.arms and a.done and not b.arms and not b.done  # b untouched by a's first write
    assert a.exposed_ts_ms is b.exposed_ts_ms  # still nothing exposed


def test_restored_sessions_share_their_metric_sets_experiment_ids_and_steady_key():
    decider = _decider(_ruleset(holdout_pct=0))
    _, _, store = decide_all(decider, shallow_session("s1", T0) + shallow_session("s2", T0), 5)
    a, b = pickle.loads(pickle.dumps([store["s1"], store["s2"]], protocol=pickle.HIGHEST_PROTOCOL))
    c = pickle.loads(pickle.dumps(store["s1"], protocol=pickle.HIGHEST_PROTOCOL))  # another state read
    for x, y in ((a.exp, b.exp), (a.exp, c.exp)):
        assert x.done == y.done and x.done[EXP] is y.done[EXP]
        assert [id(k) for k in x.arms] == [id(k) for k in y.arms]
        assert x.steady == y.steady and x.steady is y.steady


def test_the_experiment_state_pickles_as_the_dicts_sets_and_lists_it_always_did():
    decider = _decider(_ruleset(holdout_pct=50))
    events = shallow_session("s1", T0) + [_exposure("s1", T0 + 20_000, 50), _purchase("s1", T0 + 30_000, 51)]
    _, _, store = decide_all(decider, events, 5)
    arms, done, exposed, purchases, carts, steady = store["s1"].exp.__getstate__()
    assert type(arms) is dict and type(done) is dict and all(type(v) is set for v in done.values())
    assert (type(exposed), type(purchases), type(carts)) == (dict, list, list)
    assert exposed == {EXP: T0 + 20_000} and purchases == [T0 + 30_000] and carts == []
    restored = ExperimentSession.__new__(ExperimentSession)
    restored.__setstate__((arms, done, exposed, purchases, carts))  # before `steady` was kept
    assert restored.steady is None and restored.purchase_ts_ms == (T0 + 30_000,)
    assert restored.done == {k: frozenset(v) for k, v in done.items()}
