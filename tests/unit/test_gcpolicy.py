"""``udfs.gcpolicy.FrozenGenerations``: objects alive at a state write leave the collected generations, and
once per interval everything is released and collected (issue 10)."""
from __future__ import annotations

import gc

import pytest

from udfs.gcpolicy import FrozenGenerations


@pytest.fixture(autouse=True)
def _unfreeze():
    yield
    gc.unfreeze()


def test_a_state_write_freezes_what_is_alive_and_the_interval_releases_and_collects_it():
    gc.unfreeze()
    policy = FrozenGenerations(full_interval_ms=1_000, now_ms=0)
    sessions = [{"i": i, "log": [i]} for i in range(1_000)]  # containers the cyclic GC would scan
    assert policy.after_state_write(10) is False
    assert gc.get_freeze_count() >= len(sessions)
    assert policy.full_collections == 0
    # a cycle that became garbage after the freeze is collected by an ordinary collection
    cycle = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
    assert policy.after_state_write(1_010) is True  # one interval after the last full collection
    assert policy.full_collections == 1 and policy.last_full_pause_ms is not None
    assert policy.after_state_write(1_500) is False
    del sessions


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="full_interval_ms"):
        FrozenGenerations(full_interval_ms=0)
