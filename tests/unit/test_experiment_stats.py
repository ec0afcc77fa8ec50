"""Analysis of experiment counts (udfs/experiment_stats.py): SRM, fixed-horizon lift, and the A/A check of the
sequential test under continuous peeking (pure code, no Flink)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from udfs.experiment_stats import (
    experiment_report,
    fixed_horizon_lift,
    msprt,
    parse_counts,
    srm_check,
)

ALPHA = 0.05
REPETITIONS = 200
LOOKS = 40
UNITS_PER_LOOK = 150  # per arm: 6,000 units per arm at the end
BASE_RATE = 0.05


def _peeking_runs(rate_t: float, rate_c: float, seed: int):
    """``REPETITIONS`` seeded experiments, each looked at ``LOOKS`` times: (mSPRT rejected, fixed-horizon
    test rejected at any look), per repetition."""
    rng = np.random.default_rng(seed)
    seq_rejections, naive_rejections = [], []
    for _ in range(REPETITIONS):
        conv_t = np.cumsum(rng.binomial(UNITS_PER_LOOK, rate_t, LOOKS))
        conv_c = np.cumsum(rng.binomial(UNITS_PER_LOOK, rate_c, LOOKS))
        n = UNITS_PER_LOOK * np.arange(1, LOOKS + 1)
        looks = list(zip(conv_t.tolist(), n.tolist(), conv_c.tolist(), n.tolist()))
        seq_rejections.append(msprt(looks, alpha=ALPHA).rejected)
        naive_rejections.append(any(fixed_horizon_lift(*look).p_value <= ALPHA for look in looks[::4]))
    return np.array(seq_rejections), np.array(naive_rejections)


def test_a_a_false_positive_rate_of_the_sequential_test_stays_at_or_below_alpha_under_peeking(capsys):
    sequential, naive = _peeking_runs(BASE_RATE, BASE_RATE, seed=20261202)
    rate = sequential.mean()
    with capsys.disabled():
        print(f"\nA/A ({REPETITIONS} seeded repetitions, {LOOKS} looks each, {LOOKS * UNITS_PER_LOOK} units/arm,"
              f" rate {BASE_RATE}): mSPRT false-positive rate {rate:.3f} (alpha {ALPHA});"
              f" fixed-horizon test read at {LOOKS // 4} looks: {naive.mean():.3f}")
    assert rate <= ALPHA
    # the reason for a sequential test: peeking at the fixed-horizon test inflates its error rate
    assert naive.mean() > rate


def test_sequential_test_detects_a_real_lift():
    sequential, _ = _peeking_runs(0.08, BASE_RATE, seed=7)
    assert sequential.mean() >= 0.8  # power at 6,000 units per arm for 5 % -> 8 %


def test_confidence_sequence_covers_the_true_difference_at_every_look():
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(REPETITIONS):
        conv_t = np.cumsum(rng.binomial(UNITS_PER_LOOK, 0.07, LOOKS))
        conv_c = np.cumsum(rng.binomial(UNITS_PER_LOOK, BASE_RATE, LOOKS))
        n = UNITS_PER_LOOK * np.arange(1, LOOKS + 1)
        seq = msprt(list(zip(conv_t.tolist(), n.tolist(), conv_c.tolist(), n.tolist())))
        misses += any(not lo <= 0.02 <= hi for lo, hi in zip(seq.cs_low, seq.cs_high))
    assert misses / REPETITIONS <= ALPHA


def test_always_valid_p_value_never_increases_and_small_arms_are_not_tested():
    seq = msprt([(0, 50, 0, 50), (30, 200, 10, 200), (31, 400, 25, 400)])
    assert seq.p_values[0] == 1.0 and seq.cs_low[0] == -np.inf
    assert seq.p_values == sorted(seq.p_values, reverse=True)
    with pytest.raises(ValueError):
        msprt([(5, 4, 0, 10)])
    with pytest.raises(ValueError):
        msprt([], tau=0)


def test_srm_flags_a_skewed_split_and_passes_a_fair_one():
    assert srm_check({"holdout": 5_500, "personalized": 4_500}, {"holdout": 0.5, "personalized": 0.5}).flagged
    fair = srm_check({"holdout": 5_030, "personalized": 4_970}, {"holdout": 0.5, "personalized": 0.5})
    assert not fair.flagged and fair.p_value > 0.5
    assert srm_check({"holdout": 0, "personalized": 0}, {"holdout": 0.1, "personalized": 0.9}).p_value == 1.0
    with pytest.raises(ValueError, match="sum to 1"):
        srm_check({"a": 1}, {"a": 0.5})
    with pytest.raises(ValueError, match="no configured share"):
        srm_check({"a": 1, "b": 3}, {"a": 1.0})


def test_fixed_horizon_lift_matches_the_textbook_numbers():
    lift = fixed_horizon_lift(120, 1000, 100, 1000)
    assert lift.abs_lift == pytest.approx(0.02)
    lo, hi = lift.abs_ci
    assert lo < 0.02 < hi and hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.12 * 0.88 / 1000 + 0.1 * 0.9 / 1000), rel=0.1)
    assert lift.rel_lift == pytest.approx(0.2) and lift.rel_ci[0] < 0.2 < lift.rel_ci[1]
    assert 0.1 < lift.p_value < 0.2
    assert fixed_horizon_lift(0, 0, 1, 10) is None
    with pytest.raises(ValueError):
        fixed_horizon_lift(11, 10, 1, 10)


def test_report_from_redis_fields():
    fields = {"holdout|sessions|0": "500", "personalized|sessions|0": "480", "holdout|exposed|0": "300",
              "personalized|exposed|0": "310", "holdout|converted|0": "15", "personalized|converted|60000": "31",
              "holdout|sessions|60000": "10"}
    report = experiment_report(fields, {"holdout": 0.5, "personalized": 0.5}, "holdout")
    assert report["arms"]["holdout"]["sessions"] == 510 and report["arms"]["personalized"]["rate"] == pytest.approx(0.1)
    comparison = report["comparisons"]["personalized"]
    assert comparison["fixed_horizon"]["abs_lift"] == pytest.approx(0.1 - 0.05)
    assert [p["bucket_start_ms"] for p in comparison["series"]] == [0, 60000]
    assert not report["srm"]["flagged"] and report["cuped"] is None
    with pytest.raises(ValueError, match="arm"):
        parse_counts({"bad": 1})


def test_sessions_needed_matches_the_arcsine_formula_and_the_detectable_lift_inverts_it():
    import math

    from scipy.stats import norm

    from udfs.experiment_power import minimum_detectable_lift, sessions_needed

    # Cohen (1988) §6.2: n_control = (z_{1-alpha/2} + z_power)^2 (1 + 1/k) / h^2, h = 2 asin sqrt(p1) - 2 asin sqrt(p0)
    for p0, p1, k in ((0.10, 0.16, 1.0), (0.10, 0.16, 4.0), (0.03, 0.035, 1.0), (0.5, 0.4, 0.5)):
        h = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))
        textbook = (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 * (1 + 1 / k) / h ** 2
        assert sessions_needed(p0, p1, k) == math.ceil(textbook)
    # the lift detectable with the sessions needed for a lift is that lift
    n = sessions_needed(0.10, 0.16, 4.0)
    assert minimum_detectable_lift(0.10, n, 4 * n) == pytest.approx(0.06, abs=0.002)
    # more sessions detect smaller lifts
    assert minimum_detectable_lift(0.10, 4 * n, 16 * n) < minimum_detectable_lift(0.10, n, 4 * n)
    assert minimum_detectable_lift(0.10, 0, 10) is None and sessions_needed(0.2, 0.2) is None
    with pytest.raises(ValueError):
        sessions_needed(0.1, 1.2)
    with pytest.raises(ValueError):
        minimum_detectable_lift(1.0, 10, 10)


@pytest.mark.parametrize("counts", [(3, 50, 0, 40), (0, 50, 0, 40), (50, 50, 40, 40), (3, 50, 40, 40)])
def test_fixed_horizon_lift_with_an_arm_at_0_or_100_percent_warns_nothing(counts):
    """statsmodels divides by the control's rate for ratios we do not use; no RuntimeWarning reaches the caller
    (it did in the experiments endpoint's test log), and the difference's interval is still finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lift = fixed_horizon_lift(*counts)
    assert lift is not None and all(math.isfinite(x) for x in lift.abs_ci)
