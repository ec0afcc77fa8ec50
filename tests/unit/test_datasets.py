"""Converters of the real data sets (udfs.datasets.*) -> contract events."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from udfs.contract import validate_event
from udfs.datasets import otto


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_otto_resplits_at_30_min_gap_and_maps_types(tmp_path):
    t0 = 1_659_304_800_000
    rows = [
        {"aid": 1, "ts": t0, "type": "clicks"},
        {"aid": 2, "ts": t0 + 60_000, "type": "carts"},
        # 30 min + 1 ms after the previous row: a new session
        {"aid": 3, "ts": t0 + 60_000 + 30 * 60_000 + 1, "type": "orders"},
        {"aid": 4, "ts": t0 + 60_000 + 30 * 60_000 + 1, "type": "orders"},
    ]
    path = _write_jsonl(tmp_path / "s.jsonl", [{"session": 7, "events": rows}, {"session": 9, "labels": {}}])
    stats: dict = {}
    events = list(otto.iter_events(path, stats=stats))
    assert [e["type"] for e in events] == ["page_view", "click", "add_to_cart", "purchase", "purchase"]
    assert [e["session_id"] for e in events] == ["otto-7-0"] * 3 + ["otto-7-1"] * 2
    assert [e["seq"] for e in events] == [0, 1, 2, 0, 1]
    assert {e["anonymous_id"] for e in events} == {"otto-7"}
    assert events[0]["page"]["item_id"] == "1" and events[1]["props"]["element_role"] == "product_card"
    assert events[2]["props"] == {"item_id": "2", "quantity": 1, "price": None}
    # the two order rows sharing one ms: one order id, file order kept
    assert [e["props"]["item_ids"] for e in events[3:]] == [["3"], ["4"]]
    assert events[3]["props"]["order_id"] == events[4]["props"]["order_id"] == f"otto-7-{t0 + 1_860_001}"
    assert stats == {"users": 1, "sessions": 2, "rows_read": 4, "lines_skipped_no_events": 1}
    for e in events:
        assert validate_event(e) == e


def test_otto_ties_keep_file_order_and_ids_are_deterministic(tmp_path):
    t0 = 1_659_304_800_000
    rows = [{"aid": 5, "ts": t0 + 10, "type": "carts"}, {"aid": 6, "ts": t0, "type": "clicks"},
            {"aid": 7, "ts": t0 + 10, "type": "orders"}]
    path = _write_jsonl(tmp_path / "s.jsonl", [{"session": 1, "events": rows}])
    first = list(otto.iter_events(path))
    # sorted by ts; the cart (file row 0) stays before the order (row 2) at the same ms
    assert [e["type"] for e in first] == ["page_view", "click", "add_to_cart", "purchase"]
    assert [e["ts_ms"] for e in first] == [t0, t0, t0 + 10, t0 + 10]
    second = list(otto.iter_events(path))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    assert len({e["event_id"] for e in first}) == 4


def test_otto_real_file_per_session_time_order(shared_data):
    stats: dict = {}
    events = list(otto.iter_events(shared_data / "otto" / "test_resources_train.jsonl", stats=stats))
    # counted independently from the raw file: rows per type
    raw = Counter()
    for line in (shared_data / "otto" / "test_resources_train.jsonl").read_text().splitlines():
        raw.update(ev["type"] for ev in json.loads(line)["events"])
    types = Counter(e["type"] for e in events)
    assert types["page_view"] == types["click"] == raw["clicks"]
    assert types["add_to_cart"] == raw["carts"] and types["purchase"] == raw["orders"]
    assert stats["users"] == 20 and stats["rows_read"] == sum(raw.values())
    seen_sessions: set[str] = set()
    prev = None
    for e in events:
        if prev is None or e["session_id"] != prev["session_id"]:
            assert e["session_id"] not in seen_sessions, "sessions must come grouped"
            seen_sessions.add(e["session_id"])
        else:
            assert e["ts_ms"] >= prev["ts_ms"] and e["seq"] == prev["seq"] + 1
            assert e["ts_ms"] - prev["ts_ms"] <= otto.SESSION_GAP_MS
        prev = e
    assert len(seen_sessions) == stats["sessions"]
    assert len({e["event_id"] for e in events}) == len(events)


def test_otto_limit(shared_data):
    assert len(list(otto.iter_events(shared_data / "otto", limit=17))) == 17


def test_otto_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(otto.iter_events(tmp_path / "nope.jsonl"))
