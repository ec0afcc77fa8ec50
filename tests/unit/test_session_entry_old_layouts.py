"""Keyed state pickled by earlier code restores into the current layout and decides identically (issue 19).

The fixture ``tests/fixtures/layouts/session_entries_ab257fb.pickle`` was written by the code at ab257fb
(``tests/fixtures/layouts/make_session_entries.py``): sessions of an experiment's ruleset, pickled with the
dedup memory as a ``{event_id: ts_ms}`` dict and the experiment state as dicts, sets and lists; with what
that code decided for the events after the pickle (new events, conversions, redeliveries of earlier ones).
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

from udfs.decide import SessionEntry
from udfs.dedup import SeenEventIds
from udfs.experiments import ExperimentSession

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "layouts"
sys.path.insert(0, str(FIXTURES))

from make_session_entries import decide_rest  # noqa: E402


def _fixture(commit: str) -> dict:
    return pickle.loads((FIXTURES / f"session_entries_{commit}.pickle").read_bytes())


def test_entries_pickled_at_ab257fb_restore_into_the_current_layout():
    fixture = _fixture("ab257fb")
    store = pickle.loads(fixture["store"])
    assert len(store) == 12
    for entry in store.values():
        assert isinstance(entry, SessionEntry)
        assert isinstance(entry.seen, SeenEventIds) and len(entry.seen) == sum(entry.counts) - entry.counts[3]
        assert isinstance(entry.exp, ExperimentSession) and entry.exp.arms and entry.exp.steady is not None
        assert all(isinstance(metrics, frozenset) for metrics in entry.exp.done.values())


def test_entries_pickled_at_ab257fb_decide_what_ab257fb_decided():
    fixture = _fixture("ab257fb")
    got = decide_rest(pickle.loads(fixture["store"]), fixture["rest"])
    expected = fixture["expected"]
    assert got["counters"]["deduplicated"] == expected["counters"]["deduplicated"] > 0  # redeliveries recognised
    assert any(f[2] in ("converted", "carted") for f in expected["facts"])  # conversions counted after the restore
    assert got == expected


def test_entries_restored_from_ab257fb_pickle_again_and_still_decide_the_same():
    fixture = _fixture("ab257fb")
    store = pickle.loads(pickle.dumps(pickle.loads(fixture["store"]), protocol=pickle.HIGHEST_PROTOCOL))
    assert decide_rest(store, fixture["rest"]) == fixture["expected"]
