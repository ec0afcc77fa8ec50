"""SIMULATION of threshold adaptation on evidence (udfs.rules.adapt with the mSPRT, pure code, no Flink).

Simulated sessions are split over the adaptive threshold's variants as ``variant_for`` splits them
(explore_pct 20: 80 % control, 10 % lower, 10 % higher) and purchase with a probability that depends only
on the threshold value they saw (a made-up response model). The counts are read after every 1,000
sessions, as a scheduled ``intentflow rules adapt --every-s`` would read them: the threshold must reach
the model's best value and stay there, and must never move when no value is better."""
from __future__ import annotations

import json

import numpy as np
import pytest

from udfs.rules import DEFAULT_RULES_PATH, adapt, adapt_moves

RULE = "shallow_engagement"
CHUNK = 1_000
#: SIMULATION response model: P(purchase | scroll threshold of shallow_engagement). Best value 15.
PEAKED = {10: 0.07, 15: 0.10, 20: 0.07, 25: 0.05, 30: 0.04, 35: 0.03, 40: 0.03}
FLAT = {v: 0.06 for v in PEAKED}


def _threshold(ruleset) -> tuple[dict, float, str]:
    rule = next(r for r in ruleset["rules"] if r["id"] == RULE)
    comparison = rule["when"]["all"][1]
    return comparison, float(comparison["value"]), f"{RULE}@{rule['version']}"


def _run(model: dict[int, float], sessions: int, seed: int) -> list[tuple[int, float]]:
    """``[(sessions so far, new value)]`` of every move."""
    rng = np.random.default_rng(seed)
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    comparison, value, experiment = _threshold(ruleset)
    step, lo, hi = comparison["adaptive"]["step"], comparison["adaptive"]["min"], comparison["adaptive"]["max"]
    n = {"control": 0, "lower": 0, "higher": 0}
    c = dict(n)
    moves = []
    for done in range(CHUNK, sessions + 1, CHUNK):
        split = rng.multinomial(CHUNK, [0.8, 0.1, 0.1])
        for variant, k, v in zip(("control", "lower", "higher"), split, (value, max(lo, value - step), min(hi, value + step))):
            n[variant] += int(k)
            c[variant] += int(rng.binomial(k, model[int(v)]))
        exposures, conversions = {experiment: n}, {experiment: c}
        if adapt_moves(ruleset, exposures, conversions, test="msprt"):
            ruleset = adapt(ruleset, exposures, conversions, test="msprt")
            comparison, value, experiment = _threshold(ruleset)
            assert lo <= value <= hi
            moves.append((done, value))
            n = {"control": 0, "lower": 0, "higher": 0}  # a new rule version: a new experiment
            c = dict(n)
    return moves


def test_threshold_converges_to_the_best_value_and_stays(capsys):
    runs = [_run(PEAKED, 150_000, seed) for seed in range(10)]
    finals = [moves[-1][1] if moves else 25.0 for moves in runs]
    reached = [next((done for done, v in moves if v == 15.0), None) for moves in runs]
    with capsys.disabled():
        print(f"\nSIMULATION adapt: final thresholds {finals}; sessions to reach the best value 15: {reached}")
    assert all(v == 15.0 for v in finals)
    assert all(r is not None and r <= 100_000 for r in reached)


def test_threshold_stays_put_when_no_value_is_better(capsys):
    runs = [_run(FLAT, 50_000, seed) for seed in range(100)]
    moved = sum(bool(m) for m in runs)
    with capsys.disabled():
        print(f"\nSIMULATION adapt, flat response: {moved} of 100 runs moved the threshold (50,000 sessions, "
              f"50 reads each, alpha 0.05)")
    assert moved / 100 <= 0.05


def test_adapt_rejects_an_unknown_test():
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    with pytest.raises(ValueError, match="msprt"):
        adapt_moves(ruleset, {}, {}, test="t")
