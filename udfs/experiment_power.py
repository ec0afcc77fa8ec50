"""How many sessions an experiment needs: the power of the fixed-horizon test of two conversion rates.

Pure (statsmodels). Used by ``intentflow demo`` to say what its SIMULATION experiment can detect; the
analysis of the counts themselves is udfs/experiment_stats.py.
"""
from __future__ import annotations

import math

from udfs.experiment_stats import DEFAULT_ALPHA

__all__ = ["DEFAULT_POWER", "minimum_detectable_lift", "sessions_needed"]

#: Power of the sample-size figures (:func:`minimum_detectable_lift`, :func:`sessions_needed`): the
#: conventional 80 % (Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed., 1988, §2.4).
DEFAULT_POWER = 0.8


def minimum_detectable_lift(p_control: float, n_control: int, n_treatment: int, alpha: float = DEFAULT_ALPHA,
                            power: float = DEFAULT_POWER) -> float | None:
    """The smallest absolute lift (treatment - control rate, a fraction) a two-sided fixed-horizon test of two
    proportions detects with ``power`` at ``alpha`` with these arm sizes, from the control rate
    ``p_control``: the arcsine effect size ``h`` of ``statsmodels.stats.power.NormalIndPower`` (Cohen 1988,
    §6.2), turned back into a rate, ``p_t = sin(asin(sqrt(p_control)) + h / 2)^2``. None when an arm is
    empty or no rate up to 1 is detectable.

    Raises:
        ValueError: ``p_control`` outside [0, 1).
    """
    from statsmodels.stats.power import NormalIndPower

    if not 0.0 <= p_control < 1.0:
        raise ValueError(f"p_control must be within [0, 1), got {p_control}")
    if n_control <= 0 or n_treatment <= 0:
        return None
    h = NormalIndPower().solve_power(effect_size=None, nobs1=n_control, alpha=alpha, power=power,
                                     ratio=n_treatment / n_control, alternative="two-sided")
    angle = math.asin(math.sqrt(p_control)) + float(h) / 2
    if angle >= math.pi / 2:
        return None
    return math.sin(angle) ** 2 - p_control


def sessions_needed(p_control: float, p_treatment: float, treatment_per_control: float = 1.0,
                    alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER) -> int | None:
    """Units (e.g. exposed sessions) the control arm needs for a two-sided fixed-horizon test to detect
    ``p_treatment`` vs ``p_control`` with ``power`` at ``alpha`` (the treatment arm has
    ``treatment_per_control`` times as many): ``statsmodels`` ``NormalIndPower`` with the arcsine effect size
    ``proportion_effectsize`` (Cohen 1988, §6.2), rounded up. None when the rates are equal.

    Raises:
        ValueError: a rate outside [0, 1] or a non-positive ratio.
    """
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    if not (0.0 <= p_control <= 1.0 and 0.0 <= p_treatment <= 1.0) or treatment_per_control <= 0:
        raise ValueError(f"rates must be within [0, 1] and the ratio > 0, got {p_control}, {p_treatment}, "
                         f"{treatment_per_control}")
    h = abs(float(proportion_effectsize(p_treatment, p_control)))
    if h == 0.0:
        return None
    n = NormalIndPower().solve_power(effect_size=h, nobs1=None, alpha=alpha, power=power,
                                     ratio=treatment_per_control, alternative="two-sided")
    return math.ceil(float(n))
