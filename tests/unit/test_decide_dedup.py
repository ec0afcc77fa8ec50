"""Dedup past ``dedup_max_ids`` (udfs/decide.py ``SessionEntry.remember``, JobConfig.dedup_max_ids): the
per-session id memory is bounded; ids older than ``dedup_ttl_ms`` go first, then the oldest inserted."""
from __future__ import annotations

from dataclasses import replace

import pytest

from udfs.config import JobConfig
from udfs.decide import Decider, SessionEntry, decide_all
from udfs.rules import RuleEngine
from udfs.contract import make_event
from udfs.scoring import ReloadingScorer

pytestmark = pytest.mark.claim

T0 = 1_764_000_000_000


def test_remember_is_bounded_and_forgets_the_oldest_inserted_first():
    entry = SessionEntry()
    for i in range(6):
        assert entry.remember(f"e{i}", T0 + i, ttl_ms=600_000, max_ids=4) is True
    assert [f"e{i}" for i in range(6) if f"e{i}" in entry.seen] == ["e2", "e3", "e4", "e5"]
    assert len(entry.seen) == 4
    assert [entry.remember(f"e{i}", T0 + 10, 600_000, 4) for i in (5, 4, 3, 2)] == [False] * 4
    assert entry.remember("e0", T0 + 10, 600_000, 4) is True  # forgotten: counted as new (the bound's price)


def test_remember_drops_expired_ids_before_newer_ones():
    entry = SessionEntry()
    entry.remember("new-1", T0 + 1_000_000, ttl_ms=600_000, max_ids=3)
    entry.remember("old-1", T0, ttl_ms=600_000, max_ids=3)  # inserted later, but 1000 s older in event time
    entry.remember("new-2", T0 + 1_000_001, ttl_ms=600_000, max_ids=3)
    entry.remember("new-3", T0 + 1_000_002, ttl_ms=600_000, max_ids=3)  # 4 > 3: old-1 is past the TTL
    assert [i for i in ("new-1", "old-1", "new-2", "new-3") if i in entry.seen] == ["new-1", "new-2", "new-3"]
    assert entry.seen.ts_ms() == [T0 + 1_000_000, T0 + 1_000_001, T0 + 1_000_002]


def _scrolls(session_id: str, n: int) -> list[dict]:
    return [make_event("scroll", session_id=session_id, client_ts_ms=T0 + 1000 * i, source_key=f"{session_id}-{i}",
                       props={"scroll_depth_pct": 5.0 * i, "scroll_depth_pct_raw": 5.0 * i, "offset_px": 10 * i,
                              "document_height_px": 4000}) for i in range(n)]


@pytest.mark.parametrize("max_ids", [4, 8])
def test_the_decider_deduplicates_the_last_max_ids_events_of_a_session(max_ids):
    session = _scrolls("d", 12)
    decider = Decider(replace(JobConfig(), dedup_max_ids=max_ids), ReloadingScorer(), RuleEngine.default(),
                      clock_ms=lambda: 0)
    _, _, store = decide_all(decider, session, 1)
    _, _, store = decide_all(decider, session[-max_ids:], 1, store)  # redelivered: all within the bound
    assert store["d"].count_dict()["deduplicated"] == max_ids
    assert len(store["d"].seen) == max_ids
    _, _, store = decide_all(decider, session[:1], 1, store)  # forgotten: not a duplicate any more
    counts = store["d"].count_dict()
    assert counts["deduplicated"] == max_ids
    assert sum(counts.values()) == len(session) + max_ids + 1
