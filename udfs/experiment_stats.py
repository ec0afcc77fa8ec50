"""Analysis of the experiment counts (udfs/experiments.py): rates, lift with intervals, a sequential test
valid under continuous peeking, and the sample-ratio-mismatch check. Pure (numpy, scipy, statsmodels).

Input: the fields of one Redis hash ``{p}exp:{experiment id}``, ``{"<arm>|<metric>|<bucket_start_ms>":
sessions}`` (connectors/redis_store.py), as :func:`parse_counts` reads them.

Methods (docs/experiments.md says why these):

* **Fixed-horizon interval** of the absolute lift (difference of conversion rates, treatment - control):
  Newcombe's hybrid score interval, and of the relative lift (ratio - 1) the log-adjusted interval, both
  from ``statsmodels.stats.proportion.confint_proportions_2indep``; its p-value from
  ``test_proportions_2indep`` (score test). Valid only when read once, at a horizon fixed in advance.
* **Sequential test valid under continuous peeking**: the mixture sequential probability ratio test
  (mSPRT) with a normal mixing distribution, Johari, Koomen, Pekelis and Walsh, "Always Valid
  Inference: Continuous Monitoring of A/B Tests", Operations Research 70(3):1806-1821, 2022
  (arXiv:1512.04922), eq. (11) and section 4 (also Johari et al., "Peeking at A/B Tests", KDD 2017).
  For the difference of rates ``theta`` with estimate ``d`` and variance ``V`` at a look,
  ``Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))``; the always-valid p-value
  is the running minimum of ``1 / Lambda`` over the looks, and the always-valid confidence sequence
  is ``d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)))``. ``V`` is the
  normal approximation of the two-sample difference of proportions (pooled under H0 for the p-value,
  unpooled for the confidence sequence), so the guarantee is asymptotic; the A/A test
  (tests/unit/test_experiment_stats.py) measures the false-positive rate under peeking.
* **Sample ratio mismatch**: Pearson's chi-square goodness of fit of the assigned sessions per arm to the
  configured split (``scipy.stats.chisquare``), flagged below p = 0.001 (Fabijan et al., "Diagnosing
  Sample Ratio Mismatch in Online Controlled Experiments", KDD 2019, use the same threshold).

CUPED needs a pre-period covariate per unit; the counts carry none, so it is not applied (reported as
``"cuped": null``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "SIMULATION_PREFIX",
    "DesignUnknown",
    "experiment_design",
    "is_simulation",
    "DEFAULT_ALPHA",
    "DEFAULT_TAU",
    "SRM_P_THRESHOLD",
    "Lift",
    "Sequential",
    "Srm",
    "experiment_report",
    "fixed_horizon_lift",
    "msprt",
    "parse_counts",
    "srm_check",
]

#: Significance level (two-sided), the conventional 5 %.
DEFAULT_ALPHA = 0.05
#: Standard deviation of the normal mixing distribution of the mSPRT over the true difference of
#: conversion rates: 0.01 (one percentage point), the size of lift we expect from a layout change on
#: conversion rates of a few %. Any tau keeps the test valid; it only moves where it is most powerful
#: (Johari et al. 2022, section 4.3). Our choice.
DEFAULT_TAU = 0.01
#: Sample-ratio-mismatch p-value threshold (Fabijan et al. 2019).
SRM_P_THRESHOLD = 0.001
#: Looks of the sequential test start when each arm has this many units: below it the normal
#: approximation of a proportion with a rate of a few % is poor. Our choice.
MIN_UNITS_PER_ARM = 100


#: Experiments whose id starts with this hold simulated visitors (intentflow simulate): labelled SIMULATION.
SIMULATION_PREFIX = "simulation"


def is_simulation(experiment_id: str) -> bool:
    """True for an experiment of ``intentflow simulate`` (id starting with :data:`SIMULATION_PREFIX`)."""
    return experiment_id.startswith(SIMULATION_PREFIX)


class DesignUnknown(ValueError):
    """The split of an experiment cannot be known from the ruleset given (and no holdout share was given)."""


def experiment_design(experiment_id: str, ruleset: Mapping[str, Any] | None, holdout_pct: float | None
                      ) -> tuple[dict[str, float], str, str, str]:
    """``(shares, control arm, numerator, denominator)`` of an experiment.

    The personalization experiment (the ruleset's ``experiment.id``, or any id given ``holdout_pct``):
    arms holdout/personalized, conversions per exposed session. An adaptive threshold's experiment
    ``"<rule id>@<version>"``: variants control/lower/higher by the rule's ``explore_pct``, purchasing
    sessions per assigned session.

    Raises:
        DesignUnknown: no matching rule / experiment in ``ruleset`` and no ``holdout_pct``.
    """
    if "@" in experiment_id:
        rule_id, _, version = experiment_id.partition("@")
        for rule in (ruleset or {}).get("rules", []):
            if rule["id"] == rule_id and str(rule["version"]) == version:
                adaptive = _find_adaptive(rule["when"])
                explore = float(adaptive.get("explore_pct", 0)) if adaptive else 0.0
                shares = {"control": 1 - explore / 100, "lower": explore / 200, "higher": explore / 200}
                return shares, "control", "sessions_converted", "sessions"
        raise DesignUnknown(f"experiment {experiment_id}: rule {rule_id} version {version} is not in the ruleset given")
    if holdout_pct is None:
        block = (ruleset or {}).get("experiment") or {}
        if block.get("id") != experiment_id:
            raise DesignUnknown(f"experiment {experiment_id}: its holdout share is unknown; give the holdout share "
                                "(--holdout-pct, ?holdout_pct=) or the ruleset that configured it")
        holdout_pct = float(block["holdout_pct"])
    return ({"holdout": holdout_pct / 100, "personalized": 1 - holdout_pct / 100}, "holdout", "converted",
            "exposed")


def _find_adaptive(node: Any) -> Mapping[str, Any] | None:
    """The ``adaptive`` block of a rule's condition tree (at most one per rule, schemas/rules.v1.json)."""
    if isinstance(node, Mapping):
        if isinstance(node.get("adaptive"), Mapping):
            return node["adaptive"]
        children = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_adaptive(child)
        if found is not None:
            return found
    return None


def parse_counts(fields: Mapping[str, Any]) -> dict[str, dict[str, dict[int, int]]]:
    """``{"<arm>|<metric>|<bucket_start_ms>": n}`` -> ``{arm: {metric: {bucket_start_ms: n}}}``.

    Raises:
        ValueError: a field is not ``arm|metric|bucket`` or a count is not an integer >= 0.
    """
    out: dict[str, dict[str, dict[int, int]]] = {}
    for field, value in fields.items():
        field = field.decode() if isinstance(field, bytes) else str(field)
        parts = field.split("|")
        if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
            raise ValueError(f"experiment count field {field!r} is not '<arm>|<metric>|<bucket_start_ms>'")
        n = int(value)
        if n < 0:
            raise ValueError(f"experiment count {field!r} is negative: {n}")
        arm, metric, bucket = parts[0], parts[1], int(parts[2])
        per_bucket = out.setdefault(arm, {}).setdefault(metric, {})
        per_bucket[bucket] = per_bucket.get(bucket, 0) + n
    return out


@dataclass(frozen=True)
class Srm:
    """Sample-ratio-mismatch check: observed and expected units per arm, chi-square statistic, p-value,
    and ``flagged`` (p below :data:`SRM_P_THRESHOLD`)."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    flagged: bool


def srm_check(observed: Mapping[str, int], shares: Mapping[str, float]) -> Srm:
    """Chi-square goodness of fit of ``observed`` units per arm to the configured ``shares`` (fractions
    summing to 1; arms with share 0 are left out). With fewer than two arms or no units: p = 1.

    Raises:
        ValueError: shares do not sum to 1 (within 1e-9) or are negative, or an observed arm has share 0
            but units.
    """
    from scipy.stats import chisquare  # noqa: PLC0415

    if any(s < 0 for s in shares.values()) or abs(sum(shares.values()) - 1.0) > 1e-9:
        raise ValueError(f"arm shares must be >= 0 and sum to 1, got {dict(shares)}")
    arms = [a for a, s in shares.items() if s > 0]
    for arm, n in observed.items():
        if n and shares.get(arm, 0) == 0:
            raise ValueError(f"arm {arm!r} has {n} units but no configured share")
    obs = [int(observed.get(a, 0)) for a in arms]
    total = sum(obs)
    expected = {a: total * shares[a] for a in arms}
    if len(arms) < 2 or total == 0:
        return Srm(dict(zip(arms, obs)), expected, 0.0, 1.0, False)
    stat, p_value = chisquare(obs, [expected[a] for a in arms])
    return Srm(dict(zip(arms, obs)), expected, float(stat), float(p_value), bool(p_value < SRM_P_THRESHOLD))


@dataclass(frozen=True)
class Lift:
    """Treatment vs control at one horizon: rates, absolute lift (difference) and relative lift (ratio - 1)
    with their two-sided ``1 - alpha`` intervals, and the score test's p-value (fixed horizon)."""

    control_rate: float
    treatment_rate: float
    abs_lift: float
    abs_ci: tuple[float, float]
    rel_lift: float | None
    rel_ci: tuple[float, float] | None
    p_value: float


def fixed_horizon_lift(conv_t: int, n_t: int, conv_c: int, n_c: int, alpha: float = DEFAULT_ALPHA) -> Lift | None:
    """Fixed-horizon lift of treatment over control (statsmodels; see the module docstring).

    Returns None when an arm has no units. The relative lift and its interval are None when the control
    has no conversion.

    Raises:
        ValueError: conversions above units or negative counts.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep  # noqa: PLC0415

    for c, n in ((conv_t, n_t), (conv_c, n_c)):
        if c < 0 or n < 0 or c > n:
            raise ValueError(f"need 0 <= conversions <= units, got {c} of {n}")
    if n_t == 0 or n_c == 0:
        return None
    rate_t, rate_c = conv_t / n_t, conv_c / n_c
    rel = rel_ci = None
    # statsmodels computes the ratio and odds ratio of the rates whatever ``compare`` is: with an arm at 0 % or
    # 100 % that is a division by zero it warns about, in values this function does not use
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = confint_proportions_2indep(conv_t, n_t, conv_c, n_c, method="newcomb", compare="diff", alpha=alpha)
        if conv_c > 0 and conv_t > 0:
            rlo, rhi = confint_proportions_2indep(conv_t, n_t, conv_c, n_c, method="log-adjusted", compare="ratio",
                                                  alpha=alpha)
            rel, rel_ci = rate_t / rate_c - 1.0, (float(rlo) - 1.0, float(rhi) - 1.0)
        elif conv_c > 0:
            rel = rate_t / rate_c - 1.0
        if conv_t + conv_c in (0, n_t + n_c):
            p_value = 1.0
        else:
            p_value = float(test_proportions_2indep(conv_t, n_t, conv_c, n_c, method="score", compare="diff").pvalue)
    return Lift(rate_c, rate_t, rate_t - rate_c, (float(lo), float(hi)), rel, rel_ci, p_value)


@dataclass(frozen=True)
class Sequential:
    """mSPRT results over the looks: the always-valid p-value after each look (non-increasing), the
    confidence sequence of the absolute lift at each look, whether H0 (no difference) is rejected at
    ``alpha``, and the mixing ``tau``."""

    p_values: list[float]
    cs_low: list[float]
    cs_high: list[float]
    rejected: bool
    alpha: float
    tau: float

    @property
    def p_value(self) -> float:
        """The always-valid p-value after the last look (1.0 before any)."""
        return self.p_values[-1] if self.p_values else 1.0


def msprt(looks: Iterable[tuple[int, int, int, int]], alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU,
          min_units: int = MIN_UNITS_PER_ARM) -> Sequential:
    """Normal-mixture mSPRT for the difference of two conversion rates over a sequence of looks.

    Args:
        looks: cumulative ``(conv_t, n_t, conv_c, n_c)`` at each look, in time order (a look may be taken
            after every unit; fewer looks only lose power).
        alpha: level of the always-valid test and confidence sequence.
        tau: standard deviation of the normal mixing distribution (:data:`DEFAULT_TAU`).
        min_units: a look with fewer units in an arm is skipped (p-value 1, interval unbounded).
    Returns:
        :class:`Sequential`, one entry per look.
    Raises:
        ValueError: alpha not in (0, 1), tau <= 0, or counts not 0 <= conversions <= units.
    """
    if not 0 < alpha < 1 or tau <= 0:
        raise ValueError(f"need 0 < alpha < 1 and tau > 0, got alpha {alpha}, tau {tau}")
    tau2 = tau * tau
    p_running = 1.0
    p_values, lows, highs = [], [], []
    log_inv_alpha = math.log(1.0 / alpha)
    for conv_t, n_t, conv_c, n_c in looks:
        for c, n in ((conv_t, n_t), (conv_c, n_c)):
            if c < 0 or n < 0 or c > n:
                raise ValueError(f"need 0 <= conversions <= units, got {c} of {n}")
        if n_t < min_units or n_c < min_units:
            p_values.append(p_running)
            lows.append(-math.inf)
            highs.append(math.inf)
            continue
        rate_t, rate_c = conv_t / n_t, conv_c / n_c
        d = rate_t - rate_c
        pooled = (conv_t + conv_c) / (n_t + n_c)
        v0 = pooled * (1 - pooled) * (1 / n_t + 1 / n_c)
        if v0 > 0:
            log_lambda = 0.5 * math.log(v0 / (v0 + tau2)) + tau2 * d * d / (2 * v0 * (v0 + tau2))
            p_running = min(p_running, math.exp(-log_lambda) if log_lambda > 0 else 1.0)
        v = rate_t * (1 - rate_t) / n_t + rate_c * (1 - rate_c) / n_c
        if v > 0:
            half = math.sqrt(v * (v + tau2) / tau2 * (2 * log_inv_alpha + math.log((v + tau2) / v)))
            lows.append(d - half)
            highs.append(d + half)
        else:
            lows.append(-math.inf)
            highs.append(math.inf)
        p_values.append(p_running)
    return Sequential(p_values, lows, highs, bool(p_values and p_running <= alpha), alpha, tau)


def _cumulative(per_bucket: Mapping[int, int], buckets: list[int]) -> np.ndarray:
    return np.cumsum([per_bucket.get(b, 0) for b in buckets]).astype(np.int64)


def experiment_report(fields: Mapping[str, Any], shares: Mapping[str, float], control: str, *,
                      numerator: str = "converted", denominator: str = "exposed", srm_metric: str = "sessions",
                      alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU) -> dict[str, Any]:
    """The report of one experiment (JSON-able), every treatment arm against ``control``.

    Args:
        fields: the Redis hash ``{p}exp:{experiment id}`` (:func:`parse_counts`).
        shares: configured ``{arm: fraction}`` (sums to 1), for the SRM check.
        control: the control arm (``holdout`` for the personalization experiment, ``control`` for an
            adaptive threshold's variants).
        numerator, denominator: the metric pair of the rate (default conversions per exposed session).
        srm_metric: the metric of assigned units the SRM check uses.
    Returns:
        ``{"arms": {arm: {metric: total, ..., "rate"}}, "srm": Srm, "comparisons": {arm: {"fixed_horizon":
        Lift, "sequential": {"p_value", "cs_low", "cs_high", "rejected", "tau"}, "series": [{"bucket_start_ms",
        "units_t", "units_c", "abs_lift", "cs_low", "cs_high", "p_value"}]}}, "cuped": None, ...}`` with
        dataclasses as dicts.
    Raises:
        ValueError: from :func:`parse_counts` / :func:`srm_check`.
    """
    counts = parse_counts(fields)
    arms_seen = sorted(set(counts) | {a for a, s in shares.items() if s > 0})
    arms: dict[str, dict[str, Any]] = {}
    for arm in arms_seen:
        totals = {metric: sum(per.values()) for metric, per in counts.get(arm, {}).items()}
        n = totals.get(denominator, 0)
        totals["rate"] = totals.get(numerator, 0) / n if n else None
        arms[arm] = totals
    srm = srm_check({a: arms[a].get(srm_metric, 0) for a in arms_seen}, shares)
    buckets = sorted({b for per_arm in counts.values() for m in (numerator, denominator) for b in per_arm.get(m, {})})
    comparisons: dict[str, Any] = {}
    c_counts = counts.get(control, {})
    conv_c = _cumulative(c_counts.get(numerator, {}), buckets)
    n_c = _cumulative(c_counts.get(denominator, {}), buckets)
    for arm in arms_seen:
        if arm == control:
            continue
        t_counts = counts.get(arm, {})
        conv_t = _cumulative(t_counts.get(numerator, {}), buckets)
        n_t = _cumulative(t_counts.get(denominator, {}), buckets)
        looks = list(zip(conv_t.tolist(), n_t.tolist(), conv_c.tolist(), n_c.tolist()))
        # a conversion bucket can precede its exposure's bucket only by attribution order; clamp per look
        looks = [(min(ct, nt), nt, min(cc, nc), nc) for ct, nt, cc, nc in looks]
        seq = msprt(looks, alpha=alpha, tau=tau)
        lift = fixed_horizon_lift(*looks[-1], alpha=alpha) if looks else None
        series = [{"bucket_start_ms": b, "units_t": nt, "units_c": nc,
                   "abs_lift": (ct / nt - cc / nc) if nt and nc else None,
                   "cs_low": lo if math.isfinite(lo) else None, "cs_high": hi if math.isfinite(hi) else None,
                   "p_value": p}
                  for b, (ct, nt, cc, nc), lo, hi, p in zip(buckets, looks, seq.cs_low, seq.cs_high, seq.p_values)]
        comparisons[arm] = {
            "fixed_horizon": asdict(lift) if lift else None,
            "sequential": {"method": "mSPRT, normal mixture (Johari et al., Operations Research 2022)",
                           "p_value": seq.p_value, "rejected": seq.rejected, "alpha": alpha, "tau": tau,
                           "cs_low": series[-1]["cs_low"] if series else None,
                           "cs_high": series[-1]["cs_high"] if series else None},
            "series": series,
        }
    return {"control": control, "numerator": numerator, "denominator": denominator, "arms": arms,
            "srm": asdict(srm), "comparisons": comparisons, "cuped": None}
