"""``intentflow job --from-ts-ms A --to-ts-ms B`` (README: "backtest between two Kafka timestamps") on the
real stack, and what the job writes besides actions: the ``agg`` sets and the ``stats`` counters
(docs/contracts.md §5). The expectation is computed by the pure decider (udfs/decide.py) from the events
whose Kafka timestamps lie in the range, independently of the job."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import orjson
import pytest

from tests.job_support import actions_stream, run_bounded
from udfs.config import JobConfig
from udfs.decide import Decider, decide_all
from udfs.rules import RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = [pytest.mark.integration, pytest.mark.flink, pytest.mark.claim]

T0 = 1_764_000_000_000
WINDOW_MS = 20


def _produce_group(bootstrap: str, topic: str, events: list[dict], after_ts_ms: int) -> tuple[int, int]:
    """Produce ``events`` once the wall clock is past ``after_ts_ms`` + 2 ms, so their Kafka timestamps
    (LogAppendTime, stamped by the broker) are all later than any record produced before; return the
    (min, max) Kafka timestamp the broker gave them."""
    from kafka import KafkaProducer

    while int(time.time() * 1000) <= after_ts_ms + 2:
        time.sleep(0.002)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    futures = [producer.send(topic, key=e["session_id"].encode(), value=orjson.dumps(e)) for e in events]
    producer.flush(30)
    producer.close()
    stamps = [f.get(30).timestamp for f in futures]
    assert min(stamps) > after_ts_ms, "the broker's timestamps are not append times"
    return min(stamps), max(stamps)


def _interleave(*sessions: list[dict]) -> list[dict]:
    """Round-robin over the sessions: arrival order mixes sessions, each session keeps its own order."""
    out, i = [], 0
    while any(i < len(s) for s in sessions):
        out += [s[i] for s in sessions if i < len(s)]
        i += 1
    return out


def _expected(events: list[dict]):
    decider = Decider(replace(JobConfig(), window_ms=WINDOW_MS), ReloadingScorer(), RuleEngine.default(),
                      clock_ms=lambda: 0)
    actions, _, _ = decide_all(decider, events, 1)
    # counters and aggregate sets do not depend on batch boundaries; one batch gives the totals
    one = Decider(replace(JobConfig(), window_ms=WINDOW_MS), ReloadingScorer(), RuleEngine.default(),
                  clock_ms=lambda: 0).decide(events, lambda _sid: None)
    return actions, Counter({k: v for k, v in one.counters.items() if v}), one.aggregates


def test_from_to_ts_ms_replays_only_the_range_and_writes_agg_and_stats(stack, topics, redis_client):
    client, prefix = redis_client
    rp = prefix + "if:"
    before = _interleave(article_session("a-before", T0), shallow_session("s-before", T0 + 3))
    inside = _interleave(article_session("a-in-1", T0 + 100), shallow_session("s-in", T0 + 107),
                         article_session("a-in-2", T0 + 5000, key="second"))
    after = _interleave(article_session("a-after", T0 + 200), shallow_session("s-after", T0 + 9))
    _, before_max = _produce_group(stack.kafka_bootstrap, topics.raw, before, 0)
    inside_min, inside_max = _produce_group(stack.kafka_bootstrap, topics.raw, inside, before_max)
    after_min, _ = _produce_group(stack.kafka_bootstrap, topics.raw, after, inside_max + 1)
    assert before_max < inside_min and inside_max + 1 < after_min

    # from the first record of the range on; up to (the stop is past the range's last record, before the next)
    run_bounded(topics, rp, "--from-ts-ms", str(inside_min), "--to-ts-ms", str(inside_max + 1),
                "--window-ms", str(WINDOW_MS))

    exp_actions, exp_counters, exp_aggregates = _expected(inside)
    assert exp_actions and exp_aggregates  # the expectation is not empty: the test can tell
    sessions = {k[len(rp + "session:"):] for k in client.scan_iter(match=rp + "session:*")}
    assert sessions == {"a-in-1", "s-in", "a-in-2"}
    got = sorted((a["session_id"], a["event_id"], a["action"], a["rule_id"]) for a in actions_stream(client, rp))
    assert got == sorted((a["session_id"], a["event_id"], a["action"], a["rule_id"]) for a in exp_actions)
    for sid in ("a-in-1", "s-in", "a-in-2"):
        last = [a for a in exp_actions if a["session_id"] == sid]
        if last:
            assert client.hget(f"{rp}action:{sid}", "event_id") == last[-1]["event_id"], sid
    stats = {k: int(v) for k, v in client.hgetall(rp + "stats").items()}
    assert stats == dict(exp_counters)
    agg = {k[len(rp + "agg:"):]: client.smembers(k) for k in client.scan_iter(match=rp + "agg:*")}
    assert agg == {f"{c}:{w}:{t}": members for (c, w, t), members in exp_aggregates.items()}
