"""Adaptive thresholds through feedback: the two-proportion test (or the mSPRT) of each threshold
variant against control, the moves that pass it (:func:`adapt_moves`), and the new ruleset with the
thresholds moved and the versions bumped (:func:`adapt`). The rules' semantics: ``udfs/rules.py``."""
from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from udfs.assignment import VARIANTS
from udfs.ruleset import adaptive_comparison, validate_ruleset, variant_values

def two_proportion_p_value(conversions_a: int, exposures_a: int, conversions_b: int, exposures_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (H0: equal conversion rates).

    Returns 1.0 when a group is empty or the pooled rate is 0 or 1 (no evidence either way).
    Raises ValueError when conversions exceed exposures or a count is negative.
    """
    from scipy.stats import norm  # noqa: PLC0415 - only for adapt, never per event

    for c, n in ((conversions_a, exposures_a), (conversions_b, exposures_b)):
        if c < 0 or n < 0 or c > n:
            raise ValueError(f"need 0 <= conversions <= exposures, got {c} of {n}")
    if exposures_a == 0 or exposures_b == 0:
        return 1.0
    pooled = (conversions_a + conversions_b) / (exposures_a + exposures_b)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / exposures_a + 1 / exposures_b))
    z = (conversions_a / exposures_a - conversions_b / exposures_b) / se
    return float(2 * norm.sf(abs(z)))


@dataclass(frozen=True, slots=True)
class ThresholdMove:
    """One adaptive threshold moved by :func:`adapt`: from ``old_value`` to ``new_value`` (variant
    ``variant``), with the conversion rates, the relative lift over control and the test's p-value."""

    rule_id: str
    experiment_id: str
    variant: str
    old_value: float
    new_value: float
    control_rate: float
    variant_rate: float
    lift: float
    p_value: float


def adapt_moves(ruleset: Mapping[str, Any], exposures: Mapping[str, Mapping[str, int]],
                conversions: Mapping[str, Mapping[str, int]], *, alpha: float = 0.05,
                min_exposures: int = 200, test: str = "z") -> list[ThresholdMove]:
    """The threshold moves :func:`adapt` would make, without changing anything.

    Args:
        exposures: ``{experiment id: {variant: sessions}}``, experiment id ``"<rule id>@<rule version>"``,
            variant in :data:`VARIANTS`. Count sessions *assigned* to the variant (:func:`variant_for`),
            whether or not the action fired: comparing only sessions that got the action would compare
            populations the thresholds themselves selected.
        conversions: same shape, sessions of those that converted (a ``purchase`` event).
        alpha: family-wise significance level; each of the two variants is tested against control at
            ``alpha / 2`` (Bonferroni). 0.05 is the conventional level, our choice.
        min_exposures: sessions needed in control and in the variant before testing (our choice, 200:
            keeps the normal approximation of the z-test reasonable at conversion rates of a few %).
        test: ``"z"``: the pooled two-proportion z-test (:func:`two_proportion_p_value`), valid when
            read once at a fixed horizon; ``"msprt"``: the always-valid p-value of the mixture SPRT
            (``udfs.experiment_stats.msprt``, Johari et al. 2022), valid however often the counts are
            read — what a scheduled ``intentflow rules adapt --every-s`` needs.
    Raises:
        ValueError: a count is negative or conversions exceed exposures, or an unknown ``test``.
    """
    if test not in ("z", "msprt"):
        raise ValueError(f"test must be 'z' or 'msprt', got {test!r}")
    moves = []
    for rule in ruleset["rules"]:
        comparison = adaptive_comparison(rule)
        if comparison is None or not comparison["adaptive"].get("explore_pct", 0):
            continue
        experiment_id = f"{rule['id']}@{rule['version']}"
        n, c = exposures.get(experiment_id, {}), conversions.get(experiment_id, {})
        n0, c0 = int(n.get("control", 0)), int(c.get("control", 0))
        if n0 < min_exposures:
            continue
        values = variant_values(comparison)
        best = None
        for i in (1, 2):
            ni, ci = int(n.get(VARIANTS[i], 0)), int(c.get(VARIANTS[i], 0))
            if ni < min_exposures or values[i] == values[0]:
                continue
            if test == "msprt":
                from udfs.experiment_stats import msprt  # noqa: PLC0415

                p_value = msprt([(ci, ni, c0, n0)], alpha=alpha / 2, min_units=min_exposures).p_value
            else:
                p_value = two_proportion_p_value(ci, ni, c0, n0)
            rate_i, rate_0 = ci / ni, c0 / n0
            if p_value < alpha / 2 and rate_i > rate_0 and (best is None or rate_i > best.variant_rate):
                best = ThresholdMove(rule["id"], experiment_id, VARIANTS[i], values[0], values[i], rate_0, rate_i,
                                     (rate_i - rate_0) / rate_0 if rate_0 else math.inf, p_value)
        if best is not None:
            moves.append(best)
    return moves


def _bump_rules_version(rules_version: str, today: str | None) -> str:
    day, _, n = rules_version.rpartition(".")
    if today is None or today == day:
        return f"{day}.{int(n) + 1}"
    return f"{today}.1"


def adapt(ruleset: Mapping[str, Any], exposures: Mapping[str, Mapping[str, int]],
          conversions: Mapping[str, Mapping[str, int]], *, alpha: float = 0.05, min_exposures: int = 200,
          today: str | None = None, known_features: Iterable[str] | None = None, test: str = "z") -> dict[str, Any]:
    """Adaptive thresholds through feedback: a new ruleset where each adaptive threshold whose ``lower``
    or ``higher`` variant converted significantly better than ``control`` (see :func:`adapt_moves`) is
    moved to that variant's value. Each moved rule's ``version`` is incremented (so its experiment id,
    and the counting, start afresh) and ``rules_version`` becomes ``<day>.<n+1>`` (``today`` as
    'YYYY-MM-DD' starts ``<today>.1`` on a new day). Pure: the input is not modified; with no move the
    result equals the input (same versions).

    Raises:
        RulesetError: the result does not validate (cannot happen for a valid input; checked anyway).
        ValueError: see :func:`adapt_moves`.
    """
    moves = adapt_moves(ruleset, exposures, conversions, alpha=alpha, min_exposures=min_exposures, test=test)
    out = copy.deepcopy(dict(ruleset))
    if not moves:
        return out
    by_rule = {m.rule_id: m for m in moves}
    for rule in out["rules"]:
        move = by_rule.get(rule["id"])
        if move is None:
            continue
        comparison = adaptive_comparison(rule)
        new_value = move.new_value
        comparison["value"] = int(new_value) if float(new_value).is_integer() and isinstance(
            comparison["value"], int) else new_value
        rule["version"] = int(rule["version"]) + 1
    out["rules_version"] = _bump_rules_version(out["rules_version"], today)
    validate_ruleset(out, known_features)
    return out


def adaptive_variant_values(ruleset: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The threshold each variant of each enabled adaptive rule is judged by:
    ``{experiment id "<rule id>@<rule version>": {"control" | "lower" | "higher": value}}`` (values in the
    unit of the compared feature, lower/higher clamped to [min, max] as the engine clamps them). Rules
    without an adaptive threshold or with ``explore_pct`` 0 are absent. ``ruleset`` must be valid
    (:func:`udfs.ruleset.validate_ruleset`); nothing is raised for a valid one."""
    out: dict[str, dict[str, float]] = {}
    for rule in ruleset["rules"]:
        comparison = adaptive_comparison(rule)
        if comparison is None or not rule.get("enabled", True) or not comparison["adaptive"].get("explore_pct", 0):
            continue
        out[f"{rule['id']}@{rule['version']}"] = dict(zip(VARIANTS, variant_values(comparison)))
    return out
