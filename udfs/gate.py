"""The promotion gate of a newly trained model version (issue 17, item 3), and shadow scoring.

:func:`gate_decision` compares a candidate version with the version in force on the SAME held-out rows (the
most recent window of the product's own labelled events; the caller picks them by time): paired bootstrap
over the rows (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13, percentile intervals)
of the differences candidate - current of ROC-AUC and of the Brier score. The candidate passes when it is
better on both with the interval excluding "worse":

* ROC-AUC difference: the lower bound of the ``1 - alpha`` interval is > 0;
* Brier difference: the upper bound is < 0 (a lower Brier is better);

and, when shadow counts are given, it has been scored in shadow on at least ``min_shadow_rows`` live rows
(:class:`ShadowCounts`). The decision dict is what the caller records in the candidate's manifest
(``promotion``), whichever way it goes.

:class:`ShadowCounts` accumulates, per micro-batch, both versions' scores of the same rows: rows scored,
rows whose scores differ by more than ``tolerance``, and rows where the two fall on different sides of a
score threshold (a rule decision that would change).

Pure numpy (ROC-AUC via the Mann-Whitney U statistic: ``scipy.stats.rankdata`` average ranks; Hanley &
McNeil 1982).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Bootstrap resamples. 2000: our choice; Efron & Tibshirani (ch. 13) suggest at least 1000 for percentile
#: intervals.
DEFAULT_N_BOOT = 2000

#: Two-sided level of the intervals: 0.05 (95 % intervals).
DEFAULT_ALPHA = 0.05

#: Live rows a candidate must have been scored on in shadow before it can be promoted. 10,000: our choice,
#: about a few minutes of the demo traffic; 0 disables the requirement.
DEFAULT_MIN_SHADOW_ROWS = 10_000


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC of scores ``p`` for 0/1 labels ``y`` (Mann-Whitney U / (n_pos * n_neg), ties counted half).

    Raises:
        ValueError: ``y`` has a single class.
    """
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC-AUC needs both classes")
    ranks = rankdata(np.asarray(p, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference of probability ``p`` and 0/1 outcome ``y`` (Brier 1950)."""
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))


@dataclass
class ShadowCounts:
    """Counts of a candidate scored beside the version in force (add one micro-batch at a time).

    Args:
        tolerance: two scores of a row "differ" when ``|a - b| > tolerance`` (0.05: our choice, below the
            gap between a decile's bounds of intent-lr/2's validation scores in its upper half).
        thresholds: score thresholds of the rules in force; a row "flips" when the versions fall on
            different sides (``>=``) of any of them.
    """

    tolerance: float = 0.05
    thresholds: tuple[float, ...] = ()
    rows: int = 0
    differ: int = 0
    flips: int = 0
    sum_abs_diff: float = 0.0
    batches: int = field(default=0)

    def add(self, current: np.ndarray, candidate: np.ndarray) -> None:
        """Count one batch: the two versions' scores of the same rows (``float[N]`` each).

        Raises:
            ValueError: the arrays differ in shape.
        """
        a, b = np.asarray(current, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"shadow scores of different shapes: {a.shape} vs {b.shape}")
        diff = np.abs(a - b)
        self.rows += int(a.size)
        self.batches += 1
        self.differ += int((diff > self.tolerance).sum())
        self.sum_abs_diff += float(diff.sum())
        if self.thresholds and a.size:
            flips = np.zeros(a.shape, dtype=bool)
            for t in self.thresholds:
                flips |= (a >= t) != (b >= t)
            self.flips += int(flips.sum())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts, with the mean absolute difference."""
        return {"rows": self.rows, "batches": self.batches, "differ": self.differ, "flips": self.flips,
                "tolerance": self.tolerance, "thresholds": list(self.thresholds),
                "mean_abs_diff": self.sum_abs_diff / self.rows if self.rows else 0.0}


def gate_decision(y: np.ndarray, p_candidate: np.ndarray, p_current: np.ndarray, *,
                  shadow: ShadowCounts | None = None, min_shadow_rows: int = DEFAULT_MIN_SHADOW_ROWS,
                  n_boot: int = DEFAULT_N_BOOT, alpha: float = DEFAULT_ALPHA, seed: int = 0) -> dict[str, Any]:
    """Decide whether the candidate replaces the version in force (module docstring).

    Args:
        y: ``[n]`` 0/1 labels of the held-out window; p_candidate, p_current: ``[n]`` scores of both versions.
        shadow: live shadow counts of the candidate, or None when it was not scored in shadow (then it does
            not pass unless ``min_shadow_rows`` is 0).
        n_boot, alpha, seed: bootstrap resamples, two-sided level, RNG seed.

    Returns:
        ``{"promote": bool, "reasons": [str], "n", "positives", "roc_auc": {"candidate", "current",
        "diff", "ci"}, "brier": {...}, "bootstrap": {"n_boot", "alpha", "seed", "resamples_used"},
        "shadow": counts or None}``.

    Raises:
        ValueError: shapes differ, or ``y`` has a single class.
    """
    y = np.asarray(y).astype(np.int8)
    a, b = np.asarray(p_candidate, dtype=np.float64), np.asarray(p_current, dtype=np.float64)
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        raise ValueError(f"y, p_candidate and p_current must be 1-D of one length, got {y.shape}, {a.shape}, {b.shape}")
    auc_a, auc_b = roc_auc(y, a), roc_auc(y, b)
    brier_a, brier_b = brier(y, a), brier(y, b)
    rng = np.random.default_rng(seed)
    auc_diffs, brier_diffs = [], []
    n = len(y)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        if yb.min() == yb.max():
            continue  # a resample with one class has no ROC-AUC
        auc_diffs.append(roc_auc(yb, a[idx]) - roc_auc(yb, b[idx]))
        brier_diffs.append(brier(yb, a[idx]) - brier(yb, b[idx]))
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    auc_ci = [float(np.percentile(auc_diffs, lo)), float(np.percentile(auc_diffs, hi))]
    brier_ci = [float(np.percentile(brier_diffs, lo)), float(np.percentile(brier_diffs, hi))]
    reasons = []
    if not auc_ci[0] > 0:
        reasons.append(f"ROC-AUC not better: difference {auc_a - auc_b:+.4f}, {100 * (1 - alpha):g} % interval "
                       f"[{auc_ci[0]:+.4f}, {auc_ci[1]:+.4f}] includes 0 or less")
    if not brier_ci[1] < 0:
        reasons.append(f"Brier not better: difference {brier_a - brier_b:+.5f}, interval "
                       f"[{brier_ci[0]:+.5f}, {brier_ci[1]:+.5f}] includes 0 or more")
    shadow_rows = shadow.rows if shadow is not None else 0
    if shadow_rows < min_shadow_rows:
        reasons.append(f"scored in shadow on {shadow_rows} live rows, fewer than {min_shadow_rows}")
    return {
        "promote": not reasons, "reasons": reasons, "n": int(n), "positives": int(y.sum()),
        "roc_auc": {"candidate": auc_a, "current": auc_b, "diff": auc_a - auc_b, "ci": auc_ci},
        "brier": {"candidate": brier_a, "current": brier_b, "diff": brier_a - brier_b, "ci": brier_ci},
        "bootstrap": {"n_boot": n_boot, "alpha": alpha, "seed": seed, "resamples_used": len(auc_diffs),
                      "method": "paired percentile bootstrap over held-out rows"},
        "shadow": shadow.as_dict() if shadow is not None else None,
        "min_shadow_rows": min_shadow_rows,
    }
