"""IPS / SNIPS of ``udfs.offpolicy`` on a seeded SIMULATION whose true values are known by construction
(a made-up response model, not data), and the decision comparison of ``intentflow backtest``."""
from __future__ import annotations

import math

import numpy as np
import pytest

from udfs.offpolicy import NO_ACTION, decision_differences, estimate, logged_session, treatment_of

HOLDOUT = 0.5
ACTION = {"rule_id": "r1", "action": "show_video"}


def _p_convert(x: int, served: bool) -> float:
    """SIMULATION response model: 5 % base, +5 pp for engaged visitors (x = 1), 15 % when served."""
    return 0.15 if served else 0.05 + 0.05 * x


def _simulated_log(n: int, seed: int, candidate_acts_when_engaged: bool) -> list:
    """Logging policy: holdout 50 %; the personalized arm serves ACTION to engaged sessions (x = 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        x = int(rng.random() < 0.5)
        holdout = rng.random() < HOLDOUT
        decided = dict(ACTION, arm="holdout" if holdout else "personalized",
                       propensity=HOLDOUT if holdout else 1 - HOLDOUT) if x else None
        served = bool(x) and not holdout
        converted = rng.random() < _p_convert(x, served)
        candidate = ACTION if (x and candidate_acts_when_engaged) else None
        out.append(logged_session(f"s{k}", decided, HOLDOUT, converted, candidate))
    return out


def test_snips_and_ips_recover_a_candidate_that_serves_nothing():
    sessions = _simulated_log(20_000, seed=1, candidate_acts_when_engaged=False)
    true_value = 0.5 * _p_convert(0, False) + 0.5 * _p_convert(1, False)  # 0.075
    logged = 0.5 * _p_convert(0, False) + 0.5 * (HOLDOUT * _p_convert(1, False) + (1 - HOLDOUT) * _p_convert(1, True))
    res = estimate(sessions, n_boot=300, seed=3)
    for name in ("ips", "snips"):
        assert res[name]["ci_low"] <= true_value <= res[name]["ci_high"], (name, res[name])
        assert not res[name]["ci_low"] <= logged <= res[name]["ci_high"], (name, res[name])  # 0.0875: a different policy
    assert res["matched"] == sum(1 for s in sessions if s.treatment == NO_ACTION)
    assert res["logged_conversion_rate"] == pytest.approx(logged, abs=0.01)


def test_the_candidate_that_acts_like_the_logging_arm_is_estimated_at_its_served_value():
    sessions = _simulated_log(20_000, seed=2, candidate_acts_when_engaged=True)
    true_value = 0.5 * _p_convert(0, False) + 0.5 * _p_convert(1, True)  # 0.1: everyone personalized
    res = estimate(sessions, n_boot=300, seed=4)
    assert res["snips"]["ci_low"] <= true_value <= res["snips"]["ci_high"]
    assert res["ips"]["ci_low"] <= true_value <= res["ips"]["ci_high"]
    assert 0 < res["effective_sample_size"] < len(sessions)


def test_propensities_of_the_logged_treatment():
    assert logged_session("a", None, 0.5, True, None).propensity == 1.0  # nothing decided: both arms serve nothing
    shadow = logged_session("b", dict(ACTION, arm="holdout", propensity=0.5), 0.5, False, ACTION)
    assert (shadow.treatment, shadow.propensity, shadow.candidate) == (NO_ACTION, 0.5, "r1:show_video")
    served = logged_session("c", dict(ACTION, arm="personalized", propensity=0.45), 0.5, True, None)
    assert (served.treatment, served.propensity, served.converted) == ("r1:show_video", 0.45, 1)
    with pytest.raises(ValueError, match="outside"):
        logged_session("d", dict(ACTION, arm="personalized", propensity=0.0), 0.5, True, None)


def test_estimates_are_nan_without_sessions_or_without_a_match():
    assert math.isnan(estimate([], n_boot=10)["ips"]["estimate"])
    no_match = [logged_session("a", dict(ACTION, arm="personalized", propensity=1.0), None, True, None)]
    res = estimate(no_match, n_boot=10)
    assert res["ips"]["estimate"] == 0.0 and math.isnan(res["snips"]["estimate"]) and res["matched"] == 0


def test_decision_differences_per_rule():
    cur = {"e1": {"rule_id": "r1", "action": "a"}, "e2": {"rule_id": "r1", "action": "a"},
           "e3": {"rule_id": "r2", "action": "b"}}
    cand = {"e1": {"rule_id": "r1", "action": "a"}, "e3": {"rule_id": "r3", "action": "c"},
            "e4": {"rule_id": "r3", "action": "c"}}
    d = decision_differences(cur, cand)
    assert (d["events_with_a_decision"], d["differ"], d["same"]) == (4, 3, 1)
    assert d["by_rule"] == {"r1": {"current": 2, "candidate": 1, "differ": 1},
                            "r2": {"current": 1, "candidate": 0, "differ": 1},
                            "r3": {"current": 0, "candidate": 2, "differ": 2}}
    assert treatment_of(None) == NO_ACTION
