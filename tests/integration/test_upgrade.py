"""A savepoint upgrade through ``intentflow job submit|stop|resume`` on the standalone cluster: v1 runs
with the default ruleset, is stopped with a savepoint while events are still arriving, and v2 (another
ruleset version) resumes from the newest restore point, starting at the *end* of the topic, so only the
savepoint's offsets bring the events produced while no job ran. Per session, the counts and the actions
must equal the decision core run once over all the events (nothing lost, nothing decided twice, the
sessions continued), and the actions decided after the upgrade name v2's ruleset."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from tests.conftest import ROOT
from tests.job_support import actions_stream, failure_summary, job_env, produce, session_counts, wait_for
from udfs.config import JobConfig
from udfs.decide import COUNT_FIELDS, Decider, decide_all
from udfs.rules import RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_764_500_000_000
V2 = "2026-12-02.99"


def _parts(n_sessions: int = 16) -> list[list[dict]]:
    """Every session's events split in three consecutive parts."""
    parts: list[list[dict]] = [[], [], []]
    for i in range(n_sessions):
        events = (article_session if i % 2 else shallow_session)(f"upgrade-{i}", T0 + 97 * i)
        cut = [len(events) // 3, 2 * len(events) // 3]
        parts[0] += events[:cut[0]]
        parts[1] += events[cut[0]:cut[1]]
        parts[2] += events[cut[1]:]
    return [sorted(p, key=lambda e: e["ts_ms"]) for p in parts]


def _cli(env, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "intentflow.cli", "job", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, failure_summary(res.stdout + res.stderr)
    return res.stdout.strip().splitlines()[-1]


def _state(job_id: str) -> str:
    from intentflow.flink_rest import FlinkRest

    return {j["jid"]: j["state"] for j in FlinkRest().jobs()}.get(job_id, "")


def test_upgrade_with_a_savepoint_loses_and_repeats_nothing(stack, topics, redis_client, tmp_path):
    from intentflow import stack as local_stack
    from intentflow.services import flink_cluster
    from intentflow.flink_rest import FlinkRest

    client, prefix = redis_client
    rp = prefix + "if:"
    parts = _parts()
    total = sum(map(len, parts))
    v2_rules = tmp_path / "rules.v2.json"
    v2_rules.write_text(json.dumps({**json.loads((ROOT / "rules" / "default.v1.json").read_text()),
                                    "rules_version": V2}))
    dirs = ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--savepoint-dir", str(tmp_path / "savepoints")]
    job_args = ["--redis-prefix", rp, "--group-id", "upgrade-test", "--checkpoint-dir", str(tmp_path / "checkpoints"),
                "--checkpoint-interval-ms", "2000"]
    env = job_env(topics)
    started_here = not local_stack.status()["flink"]
    flink_cluster.start_flink_cluster()
    job_id = None
    try:
        produce(stack.kafka_bootstrap, topics.raw, parts[0])
        job_id = _cli(env, "submit", "--", "--start", "earliest", *job_args)
        wait_for(lambda: sum(c[f] for c in session_counts(client, rp).values() for f in COUNT_FIELDS) >= len(parts[0]),
                 180, "v1: the first part processed")
        produce(stack.kafka_bootstrap, topics.raw, parts[1])  # mid-stream: stop while these arrive
        savepoint = _cli(env, "stop", job_id, "--target-dir", str(tmp_path / "savepoints"))
        assert _state(job_id) == "FINISHED"
        job_id = None
        produce(stack.kafka_bootstrap, topics.raw, parts[2])  # while no job runs
        status = subprocess.run([sys.executable, "-m", "intentflow.cli", "job", "status", *dirs], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=60).stdout
        assert savepoint.split("/")[-1] in status, status
        job_id = _cli(env, "resume", *dirs, "--", "--start", "latest", "--rules-file", str(v2_rules), *job_args)
        wait_for(lambda: sum(c[f] for c in session_counts(client, rp).values() for f in COUNT_FIELDS) >= total,
                 180, "v2: every event processed")
        time.sleep(1.5)  # summaries are written every second; let anything extra show up
        FlinkRest().stop(job_id, (tmp_path / "savepoints").as_uri())
        job_id = None
    finally:
        if job_id:
            subprocess.run(["bash", str(flink_cluster.flink_home() / "bin" / "flink"), "cancel", job_id],
                           env=flink_cluster.standalone_flink_env(), capture_output=True, timeout=60)
        if started_here:
            flink_cluster.stop_flink_cluster()

    all_events = [e for p in parts for e in p]
    per_session: dict[str, int] = {}
    for e in all_events:
        per_session[e["session_id"]] = per_session.get(e["session_id"], 0) + 1
    counts = session_counts(client, rp)
    assert {sid: sum(c[f] for f in COUNT_FIELDS) for sid, c in counts.items()} == per_session
    assert sum(c["deduplicated"] + c["late"] for c in counts.values()) == 0
    reference, _, _ = decide_all(Decider(replace(JobConfig()), ReloadingScorer(), RuleEngine.default()), all_events, 64)
    stream = actions_stream(client, rp)
    assert len({a["event_id"] for a in stream}) == len(stream), "an event decided twice"
    assert sorted((a["session_id"], a["event_id"], a["rule_id"]) for a in stream) == sorted(
        (a["session_id"], a["event_id"], a["rule_id"]) for a in reference)
    last_part = {e["event_id"] for e in parts[2]}
    after = [a for a in stream if a["event_id"] in last_part]
    assert after and all(a["rules_version"] == V2 for a in after)
    assert any(a["rules_version"] != V2 for a in stream), "v1 decided the first part"
