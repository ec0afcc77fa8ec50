"""The demo's SIMULATION power note (intentflow/demo.py ``_power_note``): pure arithmetic, no services."""
from __future__ import annotations

import re

from intentflow.demo import _power_note


def _report(per_arm: int) -> dict:
    return {"arms": {"holdout": {"exposed": per_arm}, "personalized": {"exposed": per_arm}}, "denominator": "exposed"}


def test_enough_visitors_are_not_told_to_run_fewer():
    note = _power_note(_report(500), 1000)
    assert "are about enough for it; the sequential test needs more" in note
    assert "--simulate-visitors" not in note


def test_too_few_visitors_get_the_command_for_enough():
    note = _power_note(_report(50), 100)
    wanted = int(re.search(r"intentflow demo --simulate-visitors (\d+)", note).group(1))
    needed = int(re.search(r"needs ~(\d+) holdout sessions", note).group(1))
    assert wanted > 100 and abs(wanted - 2 * needed) <= 2  # equal arms: twice the holdout sessions
    assert "fixed-horizon test of two proportions detects at 80 % power" in note
