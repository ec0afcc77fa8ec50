"""The personalization job on the real stack: Kafka -> Flink mini-cluster (thread mode) -> Redis and
the actions/DLQ topics."""
from __future__ import annotations

import json
import time

import numpy as np
import orjson
import pytest

from tests.conftest import ROOT, real_data, scripted_sessions
from tests.job_support import (LiveJob, actions_stream, produce, read_topic, run_bounded, session_counts,
                               wait_for)
from udfs.contract import make_event
from udfs.decide import COUNT_FIELDS
from udfs.limits import ALLOWED_LATENESS_MS
from udfs.scenarios import article_session, shallow_session
from udfs.session import event_order_key, replay_features

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_764_000_000_000
#: Records the job must dead-letter, never fail on; None is a Kafka record without a value (a tombstone).
MALFORMED = [b"{not json", b'{"type": "click"}', orjson.dumps({"event_id": "x", "type": "teleport"}), None]


def _otto_events(shared_data, n_sessions: int = 25) -> list[dict]:
    from udfs.datasets.otto import iter_events

    events, sessions = [], []
    for event in iter_events(shared_data / "otto" / "test_resources_train.jsonl"):
        if event["session_id"] not in sessions:
            if len(sessions) == n_sessions:
                continue
            sessions.append(event["session_id"])
        events.append(event)
    return events


def _recorded_events(n_sessions: int = 25) -> list[dict]:
    """25 real OTTO sessions; without the data folder, 25 scripted sessions of every behavioural type
    (tests/conftest.py ``scripted_sessions``), so the job tests run (not skip) on any machine."""
    data = real_data()
    return _otto_events(data, n_sessions) if data is not None else scripted_sessions(n_sessions, 16, seed=18)


@pytest.fixture
def scenario():
    """Recorded events: the article's visitor, a shallow visitor, 25 recorded sessions (real OTTO ones, or
    scripted ones when ``../shared/data`` is missing), duplicates of the article session, one late event,
    and malformed records."""
    article = article_session("article-1", T0)
    shallow = shallow_session("shallow-1", T0 + 5)
    recorded = _recorded_events()
    late = make_event("scroll", session_id="article-1", client_ts_ms=T0 + 10_000 - ALLOWED_LATENESS_MS - 60_000,
                      source_key="late-1",
                      props={"scroll_depth_pct": 90.0, "scroll_depth_pct_raw": 90.0, "offset_px": 1,
                             "document_height_px": 2})
    good = sorted(article + shallow, key=event_order_key) + recorded
    return {"good": good, "duplicates": article[:3], "late": late, "malformed": MALFORMED,
            "sessions": {"article-1": article, "shallow-1": shallow,
                         **{sid: [e for e in recorded if e["session_id"] == sid]
                            for sid in {e["session_id"] for e in recorded}}}}


def _produce_scenario(stack, topics, scenario) -> int:
    return produce(stack.kafka_bootstrap, topics.raw,
                   [*scenario["good"], *scenario["duplicates"], scenario["late"], *scenario["malformed"]])


def _actions_key(actions):
    return sorted((a["session_id"], a["event_id"], a["action"], a["rule_id"], str(a["rule_version"]),
                   round(float(a["intent_score"]), 5)) for a in actions)


def _first_session_decided(client, rp: str, job, accept, name: str, t0_ms: int, stack, topics,
                           timeout_s: float = 120) -> str:
    """Send one article visitor after the other (``{name}-0``, ``{name}-1``, ...) until one's action
    satisfies ``accept(action fields)``; return that session id. Each round waits for the visitor's
    action, so the rounds follow the job, not a clock."""
    deadline = time.monotonic() + timeout_s
    for n in range(1000):
        sid = f"{name}-{n}"
        produce(stack.kafka_bootstrap, topics.raw, article_session(sid, t0_ms + 20_000 * n, key=sid))
        wait_for(lambda: client.hget(f"{rp}action:{sid}", "rule_id"), 60, f"the action of {sid}", job)
        if accept(client.hgetall(f"{rp}action:{sid}")):
            return sid
        assert time.monotonic() < deadline, f"no session decided as expected within {timeout_s} s"
    raise AssertionError("unreachable")


def test_bounded_run_decides_counts_and_dead_letters_everything(stack, topics, redis_client, scenario):
    client, prefix = redis_client
    rp = prefix + "if:"
    produced = _produce_scenario(stack, topics, scenario)
    run_bounded(topics, rp)

    # the article's visitor: video demo + price comparison, fired by the 3 s hover on "16GB RAM"
    latest = client.hgetall(f"{rp}action:article-1")
    assert latest["action"] == "show_video_demo_and_price_comparison"
    assert latest["rule_id"] == "deep_engagement_product"
    assert int(latest["event_ts_ms"]) == T0 + 7500
    assert latest["model_version"].startswith("intent-lr/") and latest["rules_version"]
    assert client.hget(f"{rp}action:shallow-1", "action") == "simplify_layout"

    # DLQ: the malformed records with their reasons, and the late event
    dlq = read_topic(stack.kafka_bootstrap, topics.dlq)
    assert sorted((r["stage"], r["reason"]) for r in dlq) == [
        ("job", "late_event"), ("parse", "invalid_json"), ("parse", "invalid_json"), ("parse", "missing_field"),
        ("parse", "unknown_type")]
    assert [r["event_id"] for r in dlq if r["stage"] == "job"] == [scenario["late"]["event_id"]]

    # every produced record is accounted for: session counts + parse-stage DLQ
    counts = session_counts(client, rp)
    total = sum(c[f] for c in counts.values() for f in COUNT_FIELDS)
    assert total + sum(1 for r in dlq if r["stage"] == "parse") == produced
    assert counts["article-1"]["deduplicated"] == len(scenario["duplicates"])
    assert counts["article-1"]["late"] == 1

    # duplicates gave no second action; the actions topic holds what the stream holds
    stream = actions_stream(client, rp)
    assert len({a["event_id"] for a in stream}) == len(stream) > 0
    assert _actions_key(read_topic(stack.kafka_bootstrap, topics.actions)) == _actions_key(stream)

    # features computed by the stream equal the batch reference, session by session
    for session_id, events in scenario["sessions"].items():
        stream_features = np.array(json.loads(client.hget(f"{rp}session:{session_id}", "features")), dtype=np.float32)
        np.testing.assert_array_equal(stream_features, replay_features(events)[-1], err_msg=session_id)


def test_batching_file_replay_and_live_give_the_same_actions(stack, topics, redis_client, scenario, tmp_path):
    client, prefix = redis_client
    produce(stack.kafka_bootstrap, topics.raw, [*scenario["good"], *scenario["duplicates"]])
    expected_events = len(scenario["good"]) + len(scenario["duplicates"])

    run_bounded(topics, prefix + "w10:", "--window-ms", "10", "--max-batch-size", "1")
    run_bounded(topics, prefix + "w50:", "--window-ms", "50", "--max-batch-size", "256")
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(orjson.dumps(e) for e in [*scenario["good"], *scenario["duplicates"]]))
    run_bounded(topics, prefix + "file:", events_file=str(events_file))

    with LiveJob(topics, prefix + "live:") as job:
        def processed():
            counts = session_counts(client, prefix + "live:")
            return sum(c[f] for c in counts.values() for f in COUNT_FIELDS) >= expected_events
        wait_for(processed, 120, "the live job to process every event", job)
        time.sleep(0.5)

    reference = _actions_key(actions_stream(client, prefix + "w10:"))
    assert len(reference) >= 2
    for run in ("w50:", "file:", "live:"):
        assert _actions_key(actions_stream(client, prefix + run)) == reference, run


def test_rule_published_mid_stream_changes_later_decisions(stack, topics, redis_client):
    from connectors.rules_topic import publish_ruleset
    from udfs.rules import load_ruleset

    client, prefix = redis_client
    rp = prefix + "if:"
    with LiveJob(topics, rp) as job:
        produce(stack.kafka_bootstrap, topics.raw, article_session("before", T0))
        wait_for(lambda: client.hget(f"{rp}action:before", "rule_id"), 120, "the first action", job)

        ruleset = load_ruleset("rules/default.v1.json")
        ruleset["rules_version"] = "2099-01-01.2"
        for rule in ruleset["rules"]:
            if rule["id"] == "deep_engagement_product":
                rule["version"] += 1
                rule["action"] = {"name": "show_price_comparison_only", "params": {}}
        publish_ruleset(ruleset, stack.kafka_bootstrap, topics.rules)
        # event-driven, not a fixed sleep: a new article visitor every round until one is decided by the
        # new ruleset (the broadcast arrives within the source's poll interval)
        after_id = _first_session_decided(client, rp, job, lambda fields: fields.get("rules_version") == "2099-01-01.2",
                                          "after", T0 + 60_000, stack, topics)

    before, after = client.hgetall(f"{rp}action:before"), client.hgetall(f"{rp}action:{after_id}")
    assert before["action"] == "show_video_demo_and_price_comparison"
    assert after["action"] == "show_price_comparison_only"
    assert after["rules_version"] == "2099-01-01.2" and after["rule_version"] == "2"


def test_session_state_expires_after_its_ttl(stack, topics, redis_client):
    client, prefix = redis_client
    rp = prefix + "if:"
    session = article_session("ttl-1", T0)
    with LiveJob(topics, rp, "--session-ttl-s", "2") as job:
        produce(stack.kafka_bootstrap, topics.raw, session[:3])
        wait_for(lambda: client.hget(f"{rp}session:ttl-1", "applied") == "3", 120, "three applied events", job)
        time.sleep(3.5)  # longer than the TTL: the next event finds no state
        produce(stack.kafka_bootstrap, topics.raw, session[3:4])
        wait_for(lambda: client.hget(f"{rp}session:ttl-1", "applied") == "1", 60, "a fresh session state", job)
    features = json.loads(client.hget(f"{rp}session:ttl-1", "features"))
    assert features[0] == 0.0  # session_age_s starts again at the first event after expiry


def test_new_model_version_is_picked_up_without_restart(stack, topics, redis_client, tmp_path):
    import shutil

    client, prefix = redis_client
    rp = prefix + "if:"
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "intent-lr" / "1", models / "intent-lr" / "1")
    with LiveJob(topics, rp, "--models-root", str(models)) as job:
        produce(stack.kafka_bootstrap, topics.raw, article_session("model-before", T0))
        wait_for(lambda: client.hget(f"{rp}action:model-before", "model_version"), 120, "the first action", job)
        # publish version 2: same weights, a new folder and manifest version (how `intentflow train` adds one)
        manifest = json.loads((models / "intent-lr" / "1" / "manifest.json").read_text())
        manifest.update(version=2, model_version="intent-lr/2")
        (models / "intent-lr" / "2").mkdir()
        shutil.copy(models / "intent-lr" / "1" / "model.onnx", models / "intent-lr" / "2" / "model.onnx")
        (models / "intent-lr" / "2" / "manifest.json").write_text(json.dumps(manifest))
        # event-driven, not a fixed sleep: a new visitor every round until one is scored by version 2
        # (ReloadingScorer looks for new versions every 5 s)
        after_id = _first_session_decided(client, rp, job, lambda fields: fields.get("model_version") == "intent-lr/2",
                                          "model-after", T0 + 60_000, stack, topics)
    assert client.hget(f"{rp}action:model-before", "model_version") == "intent-lr/1"
    assert client.hget(f"{rp}action:{after_id}", "model_version") == "intent-lr/2"
