"""The dedup memory as one buffer of ids and an array of times (udfs/dedup.py): the same decisions as the ``{event_id: ts_ms}``
dict it replaces, for any sequence of ids, times and bounds; entries pickled with the dict still restore."""
from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.decide import SessionEntry
from udfs.dedup import SeenEventIds

T0 = 1_764_000_000_000


class DictSeen:
    """The dict model of ``SessionEntry.remember`` before udfs/dedup.py (udfs/decide.py at ab257fb)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def remember(self, event_id: str, ts_ms: int, ttl_ms: int, max_ids: int) -> bool:
        seen = self.seen
        if event_id in seen:
            return False
        seen[event_id] = ts_ms
        if len(seen) > max_ids:
            horizon = ts_ms - ttl_ms
            for key in [k for k, t in seen.items() if t < horizon]:
                del seen[key]
            while len(seen) > max_ids:
                del seen[next(iter(seen))]
        return True


# few distinct ids (so that many repeat) of any text, times in any order (redeliveries, late events); the
# bound mostly fixed, sometimes lowered (a restart with another dedup_max_ids: several ids to forget at once)
_CALLS = st.lists(st.tuples(st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]), st.text(max_size=40)),
                            st.integers(-1_000_000, 1_000_000), st.sampled_from([None, None, None, 1, 2, 5])),
                  max_size=120)


@settings(max_examples=400, deadline=None)
@given(_CALLS, st.integers(1, 8), st.sampled_from([0, 1, 1_000, 50_000, 600_000]))
def test_the_same_dedup_decisions_and_memory_as_the_dict_for_any_calls(calls, max_ids, ttl_ms):
    model, seen = DictSeen(), SeenEventIds()
    for event_id, dt_ms, other_max_ids in calls:
        bound = max_ids if other_max_ids is None else other_max_ids
        assert seen.remember(event_id, T0 + dt_ms, ttl_ms, bound) == model.remember(event_id, T0 + dt_ms, ttl_ms, bound)
        assert len(seen) == len(model.seen)
    assert seen.ts_ms() == list(model.seen.values())
    assert seen == SeenEventIds(model.seen.items())  # the same records in the same order
    assert seen.event_ids() == list(model.seen)
    assert all(event_id in seen for event_id in model.seen)
    restored = pickle.loads(pickle.dumps(seen, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored == seen and isinstance(restored._ids, bytearray)


def test_an_id_is_found_only_whole_never_as_a_part_or_a_join_of_others():
    seen = SeenEventIds()
    for event_id in ("ab", "c", "x\ud800y", "é"):
        assert seen.remember(event_id, T0, 600_000, 8) is True
    for other in ("a", "b", "abc", "bc", "", "x", "y", "\ud800", "e", "E\u0301"):
        assert other not in seen, other
    for again in ("ab", "c", "x\ud800y", "é"):
        assert again in seen and seen.remember(again, T0, 600_000, 8) is False
    assert seen.event_ids() == ["ab", "c", "x\ud800y", "é"]


def test_a_contract_id_costs_its_text_a_separator_and_eight_bytes_of_time():
    seen = SeenEventIds()
    for i in range(17):
        seen.remember(f"00000000-0000-4000-8000-{i:012x}", T0 + i, 600_000, 512)
    ids, ts = seen.__getstate__()
    assert (len(ids), len(ts)) == (1 + 17 * 37, 17 * 8)


def test_an_entry_pickled_with_the_dict_restores_the_same_memory_and_goes_on_deciding_identically():
    model, entry = DictSeen(), SessionEntry()
    for i in range(10):
        assert model.remember(f"e{i}", T0 + 1_000 * i, 5_000, 6) == entry.remember(f"e{i}", T0 + 1_000 * i, 5_000, 6)
    old = list(entry.__getstate__())
    assert old[3] is entry.seen
    old[3] = dict(model.seen)  # the layout written before udfs/dedup.py: {event_id: ts_ms}
    restored = SessionEntry.__new__(SessionEntry)
    restored.__setstate__(pickle.loads(pickle.dumps(tuple(old), protocol=pickle.HIGHEST_PROTOCOL)))
    assert isinstance(restored.seen, SeenEventIds) and restored.seen == entry.seen
    for i in (9, 3, 4, 10, 11, 5, 12):  # remembered, forgotten, new; past the bound again
        expected = model.remember(f"e{i}", T0 + 1_000 * (i + 3), 5_000, 6)
        assert restored.remember(f"e{i}", T0 + 1_000 * (i + 3), 5_000, 6) == expected, i
    assert restored.seen.ts_ms() == list(model.seen.values())

