"""The job's real topology (Java micro-batcher, the Python operator, the output splitter) on an in-memory
source with a collecting sink, no Kafka: the seams of ``jobs.personalization.build_pipeline``. A faster
check than the Kafka runs of test_personalization_job.py, next to them, not instead of them.

Expected values come from the pure decision core (``udfs.decide.decide_all``) over the same events.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import orjson
import pytest

from tests.job_support import ROOT, failure_summary, session_counts
from udfs.config import JobConfig
from udfs.decide import COUNT_FIELDS, Decider, decide_all
from udfs.rules import RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_764_200_000_000


def _interleaved(n_sessions: int) -> list[dict]:
    """Sessions overlapping in time: each session's events in its own order, sessions interleaved."""
    per_session = [(article_session if i % 2 else shallow_session)(f"topo{i}", T0 + 300 * i) for i in range(n_sessions)]
    out: list[dict] = []
    while any(per_session):
        for events in per_session:
            if events:
                out.append(events.pop(0))
    return out


def test_collection_source_runs_the_real_topology_and_matches_the_decision_core(stack, redis_client, tmp_path):
    client, prefix = redis_client
    events = _interleaved(40)
    malformed = ["not json at all", json.dumps({"type": "teleport", "session_id": "x"}), "[1, 2, 3]"]
    values = [orjson.dumps(e).decode() for e in events]
    values[5:5] = malformed[:1]
    values[40:40] = malformed[1:]
    (tmp_path / "in.jsonl").write_text("\n".join(values) + "\n")

    res = subprocess.run([sys.executable, "-m", "tests.topology_run", str(tmp_path / "in.jsonl"),
                          str(tmp_path / "out.jsonl"), "--redis-prefix", prefix], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, failure_summary(res.stdout + res.stderr)
    outputs = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    actions = [o for o in outputs if "reason" not in o]
    dlq = [o for o in outputs if "reason" in o]

    reference, reference_dlq, store = decide_all(Decider(replace(JobConfig()), ReloadingScorer(),
                                                         RuleEngine.default()), events, 64)
    assert reference, "the scripted sessions must fire rules, or this test proves nothing"
    assert sorted((a["event_id"], a["rule_id"]) for a in actions) == sorted(
        (a["event_id"], a["rule_id"]) for a in reference)
    # every malformed value is in the DLQ with its parse reason; nothing else is
    assert not reference_dlq
    assert Counter((r["stage"], r["reason"]) for r in dlq) == Counter(
        {("parse", "invalid_json"): 1, ("parse", "not_an_object"): 1, ("parse", "unknown_type"): 1})
    # the session summaries in Redis equal the decision core's state, session by session
    counts = session_counts(client, prefix)
    assert counts == {sid: {f: entry.count_dict()[f] for f in COUNT_FIELDS} for sid, entry in store.items()}
