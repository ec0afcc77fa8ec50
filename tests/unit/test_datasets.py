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
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        list(otto.iter_events(tmp_path / "nope.jsonl"))


# ---- YOOCHOOSE -------------------------------------------------------------------------------------

from udfs.datasets import balabit, jsonl, rrweb, trajectory, yoochoose  # noqa: E402


def test_yoochoose_float_seconds_to_ms_and_ties_in_file_order(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("SessionId\tItemId\tTime\n"
                    "5\t100\t1396860669.277\n"
                    "6\t300\t1396860000.5\n"
                    "5\t101\t1396860600.0\n"      # earlier than the first row: sorted first
                    "5\t102\t1396860669.277\n"    # tie with row 1: stays after it
                    "5\t103\tnot-a-time\n")
    stats: dict = {}
    events = list(yoochoose.iter_events(path, stats=stats))
    s5 = [e for e in events if e["session_id"] == "yc-5"]
    assert [e["ts_ms"] for e in s5] == [1_396_860_600_000] * 2 + [1_396_860_669_277] * 4
    assert [e["page"]["item_id"] for e in s5 if e["type"] == "click"] == ["101", "100", "102"]
    assert [e["seq"] for e in s5] == list(range(6))
    assert [e["type"] for e in s5[:2]] == ["page_view", "click"]
    assert stats == {"rows_read": 4, "malformed_rows_dropped": 1, "sessions": 2}
    assert yoochoose.seconds_to_ms("1396437466.94") == 1_396_437_466_940


def test_yoochoose_real_file_counts(shared_data):
    path = shared_data / "yoochoose_rsc15" / "yoochoose-clicks-100k_test.txt"
    n_rows = sum(1 for _ in path.open()) - 1
    stats: dict = {}
    events = list(yoochoose.iter_events(path, stats=stats))
    assert len(events) == 2 * n_rows and stats["rows_read"] == n_rows
    assert all(1_388_534_400_000 <= e["ts_ms"] < 1_420_070_400_000 for e in events)  # all in 2014
    assert len({e["event_id"] for e in events}) == len(events)


# ---- mouse trajectories and Balabit ----------------------------------------------------------------

def test_summarize_trajectory_straight_line_at_constant_speed():
    # 5 samples, 10 ms apart, 3-4-5 steps of 5 px: 20 px in 40 ms = 500 px/s, straight, no jerk
    samples = [(i * 10.0, 3.0 * i, 4.0 * i) for i in range(5)]
    out = trajectory.summarize_trajectory(samples)
    assert out == {"path_length_px": 20.0, "straightness": 1.0, "mean_speed_px_s": 500.0, "jerk_px_s3": 0.0,
                   "pause_count": 0, "sample_count": 5, "duration_ms": 40}


def test_summarize_trajectory_pause_and_there_and_back():
    # out 10 px, a 200 ms still stretch (a pause >= 100 ms below 20 px/s), back 10 px
    samples = [(0.0, 0.0, 0.0), (10.0, 10.0, 0.0), (110.0, 10.0, 0.0), (210.0, 10.0, 0.0), (220.0, 0.0, 0.0)]
    out = trajectory.summarize_trajectory(samples)
    assert out["path_length_px"] == 20.0 and out["straightness"] == 0.0 and out["pause_count"] == 1
    assert out["mean_speed_px_s"] == round(20 / 0.22, 3)


def _balabit_file(tmp_path, rows):
    d = tmp_path / "training_files" / "user1"
    d.mkdir(parents=True)
    f = d / "session_42"
    f.write_text("record timestamp,client timestamp,button,state,x,y\n" + "\n".join(rows) + "\n")
    return f


def test_balabit_drops_overflow_and_duplicates_and_splits_at_60s(tmp_path):
    rows = [f"{t:.3f},{t:.3f},NoButton,Move,{100 + 10 * i},200" for i, t in enumerate([0.00, 0.02, 0.04, 0.06, 0.08])]
    rows.insert(2, rows[1])                                   # exact duplicate
    rows.insert(4, "0.050,0.050,NoButton,Move,65535,65535")   # overflow
    rows.append("0.100,0.100,Left,Pressed,140,200")           # not a move sample
    later = [f"{t:.3f},{t:.3f},NoButton,Move,{10 * i},50" for i, t in enumerate([70.0, 70.02, 70.04, 70.06])]
    path = _balabit_file(tmp_path, rows + later)
    stats: dict = {}
    events = list(balabit.iter_events(tmp_path, stats=stats))
    assert stats["overflow_rows_dropped"] == 1 and stats["duplicate_rows_dropped"] == 1
    assert stats["gaps_over_60s"] == 1 and stats["non_move_rows"] == 1
    assert [e["props"]["sample_count"] for e in events] == [5, 4]
    assert events[0]["props"]["path_length_px"] == 40.0  # the overflow row did not add a 65 km jump
    assert events[0]["ts_ms"] == balabit.BASE_TS_MS + 80
    assert events[1]["ts_ms"] == balabit.BASE_TS_MS + 70_060
    assert {e["session_id"] for e in events} == {"balabit-user1-42"}
    assert [e["seq"] for e in events] == [0, 1]
    assert [e["event_id"] for e in events] == [e["event_id"] for e in balabit.iter_events(path)]


def test_balabit_real_data_counts(shared_data):
    stats: dict = {}
    events = list(balabit.iter_events(shared_data / "balabit_mouse", stats=stats))
    assert stats["sessions"] == 10
    # independent count of the quirks from the raw files
    overflow = dup = 0
    for f in (shared_data / "balabit_mouse" / "training_files").rglob("session_*"):
        prev = None
        for line in f.read_text().splitlines()[1:]:
            cells = line.split(",")
            if line == prev:
                dup += 1
                continue
            prev = line
            overflow += cells[4] == "65535" and cells[5] == "65535"
    assert stats["overflow_rows_dropped"] == overflow > 0
    assert stats["duplicate_rows_dropped"] == dup > 0
    assert stats["gaps_over_60s"] > 0
    assert len(events) > 1000
    assert all(e["props"]["sample_count"] >= trajectory.TRAJECTORY_MIN_SAMPLES for e in events)
    assert all(e["props"]["duration_ms"] < trajectory.TRAJECTORY_MAX_DURATION_MS + 400 for e in events)


# ---- rrweb -----------------------------------------------------------------------------------------

def test_rrweb_fixture_gives_a_page_view_with_title_and_viewport(shared_data):
    stats: dict = {}
    events = list(rrweb.iter_events(shared_data / "rrweb_fixtures", stats=stats))
    assert len(events) == 1
    ev = events[0]
    assert ev["type"] == "page_view" and ev["props"]["title"] == "Link click"
    assert ev["page"]["url"] == "about:blank"
    assert (ev["context"]["viewport_w_px"], ev["context"]["viewport_h_px"]) == (1920, 1080)
    assert stats["events_without_timestamp"] == 2


def test_rrweb_incremental_events(tmp_path):
    t0 = 1_700_000_100_000
    rec = [
        {"type": 4, "timestamp": t0, "data": {"href": "https://shop.example/p/1", "width": 1000, "height": 700}},
        {"type": 3, "timestamp": t0 + 100, "data": {"source": 1, "positions": [
            {"x": 0, "y": 0, "id": 1, "timeOffset": -60}, {"x": 30, "y": 40, "id": 1, "timeOffset": -40},
            {"x": 60, "y": 80, "id": 1, "timeOffset": -20}, {"x": 90, "y": 120, "id": 1, "timeOffset": 0}]}},
        {"type": 3, "timestamp": t0 + 200, "data": {"source": 2, "type": 2, "id": 15, "x": 90, "y": 120}},
        {"type": 3, "timestamp": t0 + 300, "data": {"source": 4, "width": 800, "height": 600}},
        {"type": 3, "timestamp": t0 + 400, "data": {"source": 3, "id": 1, "x": 0, "y": 1400}},
        {"type": 3, "timestamp": t0 + 500, "data": {"source": 5, "id": 22, "text": "secret", "isChecked": False}},
    ]
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(rec))
    events = list(rrweb.iter_events(path, document_height_px=4000))
    assert [e["type"] for e in events] == ["page_view", "mouse_trajectory", "click", "scroll", "form"]
    traj = events[1]["props"]
    assert traj["path_length_px"] == 150.0 and traj["duration_ms"] == 60 and traj["straightness"] == 1.0
    assert events[1]["ts_ms"] == t0 + 100
    assert events[2]["props"]["x_px"] == 90 and events[2]["props"]["element_id"] == "rrweb-node-15"
    assert events[3]["props"]["scroll_depth_pct"] == 50.0  # (1400 + 600) / 4000
    assert events[3]["context"]["viewport_h_px"] == 600
    assert "secret" not in json.dumps(events)
    stats: dict = {}
    assert [e["type"] for e in rrweb.iter_events(path, stats=stats)] == ["page_view", "mouse_trajectory", "click", "form"]
    assert stats["scroll_no_document_height"] == 1


# ---- our JSONL -------------------------------------------------------------------------------------

def test_jsonl_canonical_raw_and_rejected_lines(tmp_path):
    canonical = next(otto.iter_events(_write_jsonl(tmp_path / "o.jsonl", [
        {"session": 1, "events": [{"aid": 5, "ts": 1_659_304_800_000, "type": "carts"}]}])))
    raw_client = {"type": "hover", "session_id": "s9", "client_ts_ms": 1_659_304_800, "props": {"hover_ms": 250}}
    bad = {"type": "hover", "session_id": "s9", "client_ts_ms": 1_659_304_800_000, "props": {"hover_ms": -1}}
    path = tmp_path / "mine.jsonl"
    path.write_bytes(b"\n".join([json.dumps(canonical).encode(), json.dumps(raw_client).encode(),
                                 json.dumps(bad).encode(), b"{broken"]) + b"\n")
    rejects: list = []
    stats: dict = {}
    events = list(jsonl.iter_events(path, stats=stats, on_reject=lambda r, d, line: rejects.append((r, line))))
    assert events[0] == canonical
    assert events[1]["ts_ms"] == 1_659_304_800_000 and "ts_unit_seconds" in events[1]["flags"]
    assert [r for r, _ in rejects] == ["negative_duration", "invalid_json"]
    assert rejects[1][1] == b"{broken"
    assert stats == {"lines_read": 4, "normalized": 1, "rejected_negative_duration": 1, "rejected_invalid_json": 1}
