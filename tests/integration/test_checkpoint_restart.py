"""Kill the job mid-stream (SIGKILL of its JVM) and restart it from the last checkpoint: every event is
counted exactly once in keyed state, no effect is duplicated, and the actions equal a run that never
failed (the decision core over the same events)."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.job_support import LiveJob, actions_stream, produce, session_counts, wait_for
from udfs.config import JobConfig
from udfs.decide import COUNT_FIELDS, Decider, decide_all
from udfs.experiments import fold_facts
from udfs.rules import RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_764_100_000_000


def _events(first: int, n_sessions: int) -> list[dict]:
    out = []
    for i in range(first, first + n_sessions):
        out += (article_session if i % 3 else shallow_session)(f"r{i}", T0 + 1000 * i)
    return out


def _processed(client, rp: str) -> int:
    return sum(c[f] for c in session_counts(client, rp).values() for f in COUNT_FIELDS)


def _latest_checkpoint(root: Path) -> Path | None:
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def test_kill_and_restart_from_checkpoint_loses_and_duplicates_nothing(stack, topics, redis_client, tmp_path):
    client, prefix = redis_client
    rp = prefix + "if:"
    checkpoints = tmp_path / "checkpoints"
    first, second = _events(0, 60), _events(60, 240)
    produce(stack.kafka_bootstrap, topics.raw, first)
    args = ("--checkpoint-dir", str(checkpoints), "--checkpoint-interval-ms", "1000", "--group-id", "restart-test")

    job = LiveJob(topics, rp, *args)
    try:
        wait_for(lambda: _processed(client, rp) >= len(first), 120, "the first batch", job)
        # produce the second part slowly; once the job is well into it, wait for a checkpoint taken
        # mid-stream (its keyed list state holds batches not yet written to session state, its source
        # offsets are inside the second part) and kill the job right after it
        producer = threading.Thread(target=lambda: produce(stack.kafka_bootstrap, topics.raw,
                                                           _slow(second, per_s=250)))
        producer.start()
        wait_for(lambda: _processed(client, rp) > len(first) + 150, 120, "the job to be mid-stream", job)
        mid = time.time()
        wait_for(lambda: (c := _latest_checkpoint(checkpoints)) and c.stat().st_mtime > mid + 0.2, 30,
                 "a checkpoint taken mid-stream", job)
    finally:
        job.stop()  # SIGKILL to the process group: the JVM and its mini-cluster die at once
    producer.join(120)
    processed_at_kill = _processed(client, rp)
    assert processed_at_kill < len(first) + len(second), "the kill came too late to be mid-stream"

    checkpoint = _latest_checkpoint(checkpoints)
    assert checkpoint is not None
    # --start latest: only the checkpoint's offsets can bring back what the killed job had not read,
    # so a restore that silently started afresh would miss events and fail the counts below
    with LiveJob(topics, rp, *args, "--from-savepoint", str(checkpoint), start="latest") as restarted:
        wait_for(lambda: _processed(client, rp) >= len(first) + len(second), 240,
                 f"every event after restart ({len(first) + len(second)})",
                 restarted)
        time.sleep(1.0)  # anything double-counted would show up now

    # per session: the counts equal those of a failure-free run of the decision core over the same events
    reference, _, store = decide_all(Decider(replace(JobConfig()), ReloadingScorer(), RuleEngine.default()),
                                     first + second, 64)
    counts = session_counts(client, rp)
    assert counts == {sid: {f: entry.count_dict()[f] for f in COUNT_FIELDS} for sid, entry in store.items()}
    assert sum(c["deduplicated"] + c["late"] for c in counts.values()) == 0

    # the action stream: every action once, the same as the failure-free run's
    stream = actions_stream(client, rp)
    assert len({a["event_id"] for a in stream}) == len(stream)
    assert sorted((a["event_id"], a["rule_id"]) for a in stream) == sorted(
        (a["event_id"], a["rule_id"]) for a in reference)
    # the latest action per session: the failure-free run's last one for that session
    latest: dict[str, dict] = {}
    for action in reference:
        latest[action["session_id"]] = action
    for sid, action in latest.items():
        stored = client.hgetall(f"{rp}action:{sid}")
        assert (stored["event_id"], stored["rule_id"]) == (action["event_id"], action["rule_id"]), sid
    # experiment counts (udfs/experiments.py) equal a failure-free run's, though batches were decided again
    facts = Decider(replace(JobConfig()), ReloadingScorer(), RuleEngine.default()).decide(first + second, {}.get).facts
    expected = fold_facts(facts)
    assert expected and all(client.hgetall(f"{rp}exp:{experiment_id}") == {k: str(n) for k, n in fields.items()}
                            for experiment_id, fields in expected.items())


def _slow(events, per_s: int):
    for i, event in enumerate(events):
        if i % 50 == 0:
            time.sleep(50 / per_s)
        yield event
