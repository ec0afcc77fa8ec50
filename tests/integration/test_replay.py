"""`intentflow replay` into the real broker: counts, per-session order, DLQ, pacing, checksums."""
from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from intentflow.replay import checksum_table, parse_speed, replay, replay_cmd, verify_data
from udfs.datasets import otto

from tests.conftest import real_data
from tests.job_support import read_records as read_topic

pytestmark = pytest.mark.integration


def _otto_file(tmp_path) -> tuple[Path, int]:
    """(OTTO sessions file, its number of users): the real ``test_resources_train.jsonl``, 20 users; without
    the data folder a scripted file in the same format (20 users, clicks / carts / orders, ties on the same
    ms and pauses over the 30 min that split a user's session), so the replay is checked anyway."""
    data = real_data()
    if data is not None:
        return data / "otto" / "test_resources_train.jsonl", 20
    rng = random.Random(18)
    lines = []
    for user in range(20):
        ts, rows = 1_659_304_800_000 + 3_600_000 * user, []
        for _ in range(rng.randint(3, 12)):
            ts += rng.choice([0, 1_000, 45_000, 31 * 60_000])
            rows.append({"aid": rng.randint(1, 2_000_000), "ts": ts, "type": rng.choice(["clicks", "clicks", "carts", "orders"])})
        lines.append(json.dumps({"session": user, "events": rows}))
    path = tmp_path / "otto_scripted.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, 20


def test_replay_otto_counts_and_per_session_order(stack, topics, tmp_path):
    path, n_users = _otto_file(tmp_path)
    summary = replay("otto", path, topic=topics.raw, dlq_topic=topics.dlq, bootstrap=stack.kafka_bootstrap,
                     progress=False)
    expected = Counter(e["type"] for e in otto.iter_events(path))
    assert summary["by_type"] == dict(expected)
    assert summary["produced"] == sum(expected.values()) == summary["events_converted"]
    assert summary["failed"] == 0 and summary["source_stats"]["users"] == n_users
    records = read_topic(stack.kafka_bootstrap, topics.raw)
    assert len(records) == summary["produced"]
    per_session = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        ev = orjson.loads(r.value)
        assert r.key.decode() == ev["session_id"]
        per_session[ev["session_id"]].append(ev)
    assert len(per_session) == summary["sessions"] == summary["source_stats"]["sessions"]
    for events in per_session.values():
        assert [e["seq"] for e in events] == list(range(len(events)))
        assert all(a["ts_ms"] <= b["ts_ms"] for a, b in zip(events, events[1:]))
    # a second run gives the same event ids (dedup downstream)
    again = replay("otto", path, topic=topics.raw, dlq_topic=topics.dlq, bootstrap=stack.kafka_bootstrap,
                   progress=False, limit=50)
    records = read_topic(stack.kafka_bootstrap, topics.raw)
    ids = Counter(orjson.loads(r.value)["event_id"] for r in records)
    assert again["produced"] == 50 and sum(1 for n in ids.values() if n == 2) == 50


@pytest.mark.parametrize("source,limit", [("balabit", None), ("yoochoose", 4000), ("rrweb", None)])
def test_replay_other_real_data_sets(stack, topics, shared_data, source, limit):
    summary = replay(source, topic=topics.raw, dlq_topic=topics.dlq, bootstrap=stack.kafka_bootstrap,
                     progress=False, limit=limit)
    records = read_topic(stack.kafka_bootstrap, topics.raw)
    assert len(records) == summary["produced"] > 0 and summary["failed"] == 0
    assert Counter(orjson.loads(r.value)["type"] for r in records) == Counter(summary["by_type"])
    if source == "balabit":
        assert summary["source_stats"]["overflow_rows_dropped"] > 0
        assert summary["source_stats"]["duplicate_rows_dropped"] > 0
        assert set(summary["by_type"]) == {"mouse_trajectory"}
    if source == "yoochoose":
        assert summary["produced"] == 4000 and summary["by_type"] == {"click": 2000, "page_view": 2000}


def test_replay_jsonl_rejects_to_dlq_and_paces(stack, topics, tmp_path):
    t0 = 1_700_000_000_000
    lines = [{"type": "hover", "session_id": "s1", "client_ts_ms": t0 + dt, "seq": i, "props": {"hover_ms": 100}}
             for i, dt in enumerate((0, 300, 600))]
    lines.append({"type": "hover", "session_id": "s1", "client_ts_ms": t0 + 700, "props": {"hover_ms": -5}})
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    started = time.monotonic()
    summary = replay("jsonl", path, speed="x2", topic=topics.raw, dlq_topic=topics.dlq,
                     bootstrap=stack.kafka_bootstrap, progress=False)
    assert time.monotonic() - started >= 0.3  # 600 ms recorded at x2
    assert summary["produced"] == 3 and summary["dlq_produced"] == 1
    assert summary["rejected"] == {"negative_duration": 1}
    dlq = read_topic(stack.kafka_bootstrap, topics.dlq)
    assert [orjson.loads(r.value)["reason"] for r in dlq] == ["negative_duration"]
    raw = read_topic(stack.kafka_bootstrap, topics.raw)
    assert sorted(orjson.loads(r.value)["ts_ms"] for r in raw) == [t0, t0 + 300, t0 + 600]


def test_replay_cli_json_summary(stack, topics, shared_data):
    result = CliRunner().invoke(replay_cmd, ["--source", "rrweb", "--topic", topics.raw, "--dlq-topic", topics.dlq,
                                             "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["by_type"] == {"page_view": 1}


def test_without_data_folder_prints_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("INTENTFLOW_DATA_DIR", str(tmp_path / "absent"))
    result = CliRunner().invoke(replay_cmd, ["--source", "otto"])
    assert result.exit_code != 0
    assert "otto-de/recsys-dataset" in result.output and "balabit/Mouse-Dynamics-Challenge" in result.output


def test_checksums_of_shared_copy_and_a_corrupted_copy(shared_data, tmp_path):
    table = checksum_table()
    assert len(table) == 21
    assert all(status == "ok" for status in verify_data(shared_data).values())
    bad = tmp_path / "otto"
    bad.mkdir()
    data = (shared_data / "otto" / "test_resources_train.jsonl").read_bytes()
    (bad / "test_resources_train.jsonl").write_bytes(data[:-2] + b"9\n")
    result = verify_data(tmp_path)
    assert result["otto/test_resources_train.jsonl"] == "md5 mismatch"
    assert result["online_shoppers_intention.csv"] == "missing"


def test_parse_speed():
    assert parse_speed("max") is None and parse_speed("asrecorded") == 1.0
    assert parse_speed("x10") == 10.0 and parse_speed("2.5x") == 2.5
    with pytest.raises(ValueError, match="speed factor must be > 0"):
        parse_speed("x0")
