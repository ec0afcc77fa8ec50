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
from udfs.simulation import THRESHOLD_RESPONSES, best_threshold

RULE = "shallow_engagement"
CHUNK = 1_000
#: SIMULATION response model: P(purchase | scroll threshold of shallow_engagement). Best value 15.
PEAKED = {10: 0.07, 15: 0.10, 20: 0.07, 25: 0.05, 30: 0.04, 35: 0.03, 40: 0.03}
FLAT = {v: 0.06 for v in PEAKED}


def _threshold(ruleset) -> tuple[dict, float, str]:
    rule = next(r for r in ruleset["rules"] if r["id"] == RULE)
    comparison = rule["when"]["all"][1]
    return comparison, float(comparison["value"]), f"{RULE}@{rule['version']}"


def _run(model: dict[float, float], sessions: int, seed: int, chunk: int = CHUNK,
         min_exposures: int = 200) -> list[tuple[int, float]]:
    """``[(sessions so far, new value)]`` of every move, the counts read every ``chunk`` sessions."""
    rng = np.random.default_rng(seed)
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    comparison, value, experiment = _threshold(ruleset)
    step, lo, hi = comparison["adaptive"]["step"], comparison["adaptive"]["min"], comparison["adaptive"]["max"]
    n = {"control": 0, "lower": 0, "higher": 0}
    c = dict(n)
    moves = []
    for done in range(chunk, sessions + 1, chunk):
        split = rng.multinomial(chunk, [0.8, 0.1, 0.1])
        for variant, k, v in zip(("control", "lower", "higher"), split, (value, max(lo, value - step), min(hi, value + step))):
            n[variant] += int(k)
            c[variant] += int(rng.binomial(k, model[int(v)]))
        exposures, conversions = {experiment: n}, {experiment: c}
        if adapt_moves(ruleset, exposures, conversions, test="msprt", min_exposures=min_exposures):
            ruleset = adapt(ruleset, exposures, conversions, test="msprt", min_exposures=min_exposures)
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


@pytest.mark.parametrize("min_exposures", [100, 200])
def test_the_simulators_threshold_models(min_exposures, capsys):
    """The response models of ``intentflow simulate --response threshold-*`` (udfs/simulation.py), in pure
    code, read every 200 sessions (the live test reads about every 240: 60 visitors/s, every 4 s): the peaked one moves
    25 -> 30 -> 35 within a few thousand sessions and stays; the flat one never moves. What the sizes of the
    live test (tests/integration/test_simulation_adapt.py) and of its recorded run rest on."""
    peaked, flat = THRESHOLD_RESPONSES["threshold-peaked"], THRESHOLD_RESPONSES["threshold-flat"]
    runs = [_run(peaked, 8_000, seed, chunk=200, min_exposures=min_exposures) for seed in range(100)]
    reached = [next((done for done, v in moves if v == best_threshold("threshold-peaked")), None) for moves in runs]
    first = [moves[0][0] for moves in runs if moves]
    flat_moved = sum(bool(_run(flat, 8_000, seed, chunk=200, min_exposures=min_exposures)) for seed in range(100))
    done = [r for r in reached if r is not None]
    with capsys.disabled():
        print(f"\nSIMULATION threshold-peaked, min exposures {min_exposures}: first move after "
              f"{int(np.median(first))} sessions (median; max {max(first)}), 35 reached in {len(done)} of 100 runs "
              f"after {int(np.median(done))} (median; 99th percentile {int(np.percentile(done, 99))}, max "
              f"{max(done)}); threshold-flat: {flat_moved} of 100 runs of 8,000 sessions moved")
    assert all([v for _, v in moves] == [30.0, 35.0] for moves in runs)
    assert max(done) <= 6_600
    assert flat_moved <= 5  # the mSPRT's alpha 0.05 bounds it; in practice it is far below


def test_adapt_rejects_an_unknown_test():
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    with pytest.raises(ValueError, match="msprt"):
        adapt_moves(ruleset, {}, {}, test="t")
