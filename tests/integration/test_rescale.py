"""Rescaling from a savepoint keeps every session: the job runs on the standalone cluster (two
TaskManagers, one slot each) at parallelism 1, stops with a savepoint, resumes at parallelism 2 from it,
stops again and resumes at 1. Each restart starts at the *end* of the topic (``--start latest``), so only
the savepoint's offsets bring the events produced while the job was down: had the savepoint been ignored,
those events would be missed and the sessions would start empty. Per session, the counts and the actions
must equal the decision core run once over all the events, in order (features continued exactly)."""
from __future__ import annotations

import re
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

T0 = 1_764_300_000_000


def _parts(n_sessions: int = 24) -> list[list[dict]]:
    """Every session's events split in three consecutive parts (one per run of the job)."""
    parts: list[list[dict]] = [[], [], []]
    for i in range(n_sessions):
        events = (article_session if i % 2 else shallow_session)(f"rescale-{i}", T0 + 113 * i)
        cut = [len(events) // 3, 2 * len(events) // 3]
        parts[0] += events[:cut[0]]
        parts[1] += events[cut[0]:cut[1]]
        parts[2] += events[cut[1]:]
    return [sorted(p, key=lambda e: e["ts_ms"]) for p in parts]


def _flink(env, *args: str, timeout_s: float = 300) -> str:
    from intentflow.services import flink_cluster

    res = subprocess.run(["bash", str(flink_cluster.flink_home() / "bin" / "flink"), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout_s)
    assert res.returncode == 0, failure_summary(res.stdout + res.stderr)
    return res.stdout


def _submit(env, rp: str, parallelism: int, start: str, savepoint: str | None = None) -> str:
    args = ["run", "-d"]
    if savepoint:
        args += ["-s", savepoint]
    args += ["-py", str(ROOT / "jobs" / "personalization.py"), "-pyexec", sys.executable, "--start", start,
             "--parallelism", str(parallelism), "--redis-prefix", rp, "--group-id", "rescale-test"]
    out = _flink(env, *args)
    match = re.search(r"JobID ([0-9a-f]{32})", out)
    assert match, out
    return match.group(1)


def _running(job_id: str) -> bool:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:8081/jobs/{job_id}", timeout=5) as resp:
        job = json.load(resp)
    return job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"]
                                             if not v["name"].startswith("Source: rules"))


def _processed(client, rp: str) -> dict[str, int]:
    return {sid: sum(c[f] for f in COUNT_FIELDS) for sid, c in session_counts(client, rp).items()}


def test_savepoint_rescale_1_to_2_to_1_keeps_every_session(stack, topics, redis_client, tmp_path):
    from intentflow import stack as local_stack
    from intentflow.services import flink_cluster

    client, prefix = redis_client
    rp = prefix + "if:"
    parts = _parts()
    expected_after = [len(parts[0]), len(parts[0]) + len(parts[1]), sum(map(len, parts))]
    started_here = not local_stack.status()["flink"]
    flink_cluster.start_flink_cluster()
    env = {**flink_cluster.standalone_flink_env(), "INTENTFLOW_TOPIC_PREFIX": job_env(topics)["INTENTFLOW_TOPIC_PREFIX"]}
    job_id = None
    try:
        produce(stack.kafka_bootstrap, topics.raw, parts[0])
        savepoint = None
        for run, parallelism in enumerate((1, 2, 1)):
            job_id = _submit(env, rp, parallelism, "earliest" if run == 0 else "latest", savepoint)
            wait_for(lambda: _running(job_id), 90, f"run {run} (parallelism {parallelism}) to be running")
            if run > 0:
                time.sleep(2.0)  # the source has its splits: now produce what arrived "while it was down"
                produce(stack.kafka_bootstrap, topics.raw, parts[run])
            wait_for(lambda: sum(_processed(client, rp).values()) >= expected_after[run], 120,
                     f"run {run}: {expected_after[run]} events processed")
            time.sleep(1.5)  # summaries are written every second; let anything extra show up
            assert sum(_processed(client, rp).values()) == expected_after[run]
            if run < 2:
                out = _flink(env, "stop", "--savepointPath", (tmp_path / "savepoints").as_uri(), job_id)
                match = re.search(r"Savepoint completed\. Path: (\S+)", out)
                assert match, out
                savepoint = match.group(1)
                job_id = None
        _flink(env, "cancel", job_id)
        job_id = None
    finally:
        if job_id:
            subprocess.run(["bash", str(flink_cluster.flink_home() / "bin" / "flink"), "cancel", job_id], env=env,
                           capture_output=True, timeout=60)
        if started_here:
            flink_cluster.stop_flink_cluster()

    all_events = [e for p in parts for e in p]
    per_session: dict[str, int] = {}
    for e in all_events:
        per_session[e["session_id"]] = per_session.get(e["session_id"], 0) + 1
    counts = session_counts(client, rp)
    assert {sid: sum(c[f] for f in COUNT_FIELDS) for sid, c in counts.items()} == per_session
    assert sum(c["deduplicated"] + c["late"] for c in counts.values()) == 0
    reference, _, _ = decide_all(Decider(replace(JobConfig()), ReloadingScorer(), RuleEngine.default()),
                                 all_events, 64)
    stream = actions_stream(client, rp)
    assert len({a["event_id"] for a in stream}) == len(stream)
    assert sorted((a["session_id"], a["event_id"], a["rule_id"]) for a in stream) == sorted(
        (a["session_id"], a["event_id"], a["rule_id"]) for a in reference)
    last_part = {e["event_id"] for e in parts[2]}
    assert any(a["event_id"] in last_part for a in stream), "decisions after both rescales"
