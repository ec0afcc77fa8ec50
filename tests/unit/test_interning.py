"""Restored sessions share their strings (udfs/interning.py, issue 19): equal element ids, item ids,
context names and rule ids of two sessions unpickled from keyed state are one object, and the restored
sessions decide exactly as the ones that were pickled."""
from __future__ import annotations

import pickle
import sys

from udfs.config import JobConfig
from udfs.decide import Decider
from udfs.interning import interned, interned_items, interned_keys
from udfs.rules import RuleEngine
from udfs.scenarios import article_session
from udfs.scoring import ReloadingScorer

T0 = 1_700_000_000_000


def _decider() -> Decider:
    return Decider(JobConfig(), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)


def _strings(entry) -> list[str]:
    """The restored strings this module is about, in a fixed order."""
    state = entry.state
    return [*entry.last_fired, *state._hover_by_element, *state._item_views, state._current_item,
            *(v for v in state._context if isinstance(v, str)), *state._noise._last_click_ts_ms]


def test_two_restored_sessions_hold_one_object_per_equal_string_and_decide_the_same():
    decider = _decider()
    store: dict = {}
    for sid in ("s-intern-a", "s-intern-b"):
        events = article_session(sid, T0)
        store.update(decider.decide(events[:-1], store.get).touched)
    restored = {sid: pickle.loads(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
                for sid, entry in store.items()}
    a, b = (_strings(restored[sid]) for sid in ("s-intern-a", "s-intern-b"))
    assert len(a) >= 5 and a == b  # the same scenario: the same ids and names
    assert all(x is y for x, y in zip(a, b))
    assert all(x is sys.intern(x) for x in a)
    # a rule fired, so its id is among them, shared with the ruleset's own string
    assert restored["s-intern-a"].last_fired
    # values unchanged: the next event decides the same with the restored entries as with the originals
    last = {sid: article_session(sid, T0)[-1:] for sid in store}
    with_original = [_decider().decide(last[sid], {sid: pickle.loads(pickle.dumps(store[sid]))}.get)
                     for sid in store]
    with_restored = [_decider().decide(last[sid], {sid: restored[sid]}.get) for sid in store]
    assert [r.actions for r in with_restored] == [r.actions for r in with_original]
    assert [r.counters for r in with_restored] == [r.counters for r in with_original]


def test_the_helpers_keep_values_and_order_and_leave_non_strings_alone():
    key = "".join(["el", "ement-7"])  # built at run time: not interned by the compiler
    mapping = {key: 1.5, 3: "x", None: 2}
    out = interned_keys(mapping)
    assert list(out.items()) == list(mapping.items())
    assert next(iter(out)) is sys.intern(key)
    assert interned(key) is sys.intern(key) and interned(7) == 7 and interned(None) is None
    assert interned_items(("desktop", 1280, None)) == ("desktop", 1280, None)
