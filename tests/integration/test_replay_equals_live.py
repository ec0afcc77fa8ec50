"""Replay = live (README "Semantics: Determinism"): a live job fed while it runs, a replay of the same
topic and a replay of a file give the same actions, and these are the actions the pure decider
(udfs/decide.py, no Flink) computes from the same events. The input is interleaved across sessions in a
random order, and within a session neighbouring events are swapped when they are less than the allowed
lateness apart, so arrival order is not event-time order."""
from __future__ import annotations

import random
import uuid

import orjson
import pytest

from tests.job_support import LiveJob, actions_stream, produce, run_bounded, session_counts, wait_for
from udfs.config import JobConfig
from udfs.contract import make_event
from udfs.decide import COUNT_FIELDS, Decider, decide_all
from udfs.rules import RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = [pytest.mark.integration, pytest.mark.flink, pytest.mark.claim]

T0 = 1_764_000_000_000
N_SESSIONS = 12
N_CHUNKS = 4


def shuffled_sessions(seed: int = 18) -> list[dict]:
    """Scripted visitors (article and shallow), interleaved at random; within a session, neighbours
    closer than 2 s (within ``JobConfig.allowed_lateness_ms``) in event time are swapped with probability 0.7."""
    rng = random.Random(seed)
    # a retry-sized reorder (2 s, within the allowed lateness of 5 min): with the whole horizon, most
    # neighbours would swap and some visitors would fire nothing, leaving nothing to compare
    bound_ms = min(JobConfig().allowed_lateness_ms, 2_000)
    sessions = []
    for i in range(N_SESSIONS):
        make = article_session if i % 2 == 0 else shallow_session
        s = make(f"r{i}", T0 + 1000 * rng.randint(0, 60), key=f"replay-live-{i}")
        for j in range(len(s) - 1):
            if s[j + 1]["ts_ms"] - s[j]["ts_ms"] < bound_ms and rng.random() < 0.7:
                s[j], s[j + 1] = s[j + 1], s[j]
        sessions.append(s)
    events, pos = [], [0] * N_SESSIONS
    while open_ := [k for k in range(N_SESSIONS) if pos[k] < len(sessions[k])]:
        k = rng.choice(open_)
        events.append(sessions[k][pos[k]])
        pos[k] += 1
    return events


def _key(actions) -> list[tuple]:
    return sorted((a["session_id"], a["event_id"], a["action"], a["rule_id"], str(a["rule_version"]),
                   round(float(a["intent_score"]), 5)) for a in actions)


def test_live_topic_replay_and_file_replay_equal_the_pure_decider(stack, topics, redis_client, tmp_path):
    client, prefix = redis_client
    events = shuffled_sessions()
    decider = Decider(JobConfig(), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)
    expected_actions, expected_dlq, _ = decide_all(decider, events, 1)
    expected = _key(expected_actions)
    assert len({a["session_id"] for a in expected_actions}) == N_SESSIONS and not expected_dlq
    newest: dict[str, int] = {}
    behind = 0  # events that arrive after a newer event of their session
    for e in events:
        behind += e["ts_ms"] < newest.get(e["session_id"], e["ts_ms"])
        newest[e["session_id"]] = max(newest.get(e["session_id"], e["ts_ms"]), e["ts_ms"])
    assert behind >= 5, "the input is (nearly) in event-time order: it would not test ordering"

    # live: the job runs first; the topic is fed in chunks while it runs, each after the previous one
    # was processed (so the events arrive in many micro-batches, not as one pre-filled backlog)
    live = prefix + "live:"
    warmup_id = f"warmup-{uuid.uuid4().hex[:8]}"
    with LiveJob(topics, live, "--window-ms", "20") as job:
        produce(stack.kafka_bootstrap, topics.raw, [make_event("page_view", session_id=warmup_id, client_ts_ms=T0,
                                                               source_key=warmup_id, props={"title": "warm-up"})])
        wait_for(lambda: client.exists(f"{live}session:{warmup_id}"), 120, "the live job to consume", job)
        size = -(-len(events) // N_CHUNKS)
        for n in range(N_CHUNKS):
            produce(stack.kafka_bootstrap, topics.raw, events[n * size:(n + 1) * size])
            done = min(len(events), (n + 1) * size) + 1  # + the warm-up event

            def processed(done=done):
                counts = session_counts(client, live)
                return sum(c[f] for c in counts.values() for f in COUNT_FIELDS) >= done
            wait_for(processed, 120, f"the live job to process chunk {n + 1}", job)
    live_actions = [a for a in actions_stream(client, live) if a["session_id"] != warmup_id]

    # replays: the same topic from the first offset, and the same events from a file
    run_bounded(topics, prefix + "topic:", "--window-ms", "50")
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    run_bounded(topics, prefix + "file:", events_file=str(events_file))

    assert _key(live_actions) == expected
    for run in ("topic:", "file:"):
        got = [a for a in actions_stream(client, prefix + run) if a["session_id"] != warmup_id]
        assert _key(got) == expected, run
    for sid in {a["session_id"] for a in expected_actions}:  # latest = the newest in event time
        newest_action = max((a for a in expected_actions if a["session_id"] == sid), key=lambda a: a["event_ts_ms"])
        assert client.hget(f"{live}action:{sid}", "event_id") == newest_action["event_id"], sid
