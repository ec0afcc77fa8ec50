"""The server stays the authority: a browser's `intent` event never changes a server decision (issue 12).

A tampered `intent` event (score 1.0 and a claimed high-intent action, from a shallow visitor) passes
the collector's normalization (it is a valid event of the contract) and goes through the job's
decision code (`udfs.decide.Decider`, the code the Flink job and the baseline run); the actions are
exactly those without it, and it is counted as `ignored`.
"""
from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from udfs.config import JobConfig
from udfs.contract import ContractError
from udfs.decide import Decider, decide_all
from udfs.edge import SCORE_TOLERANCE, check_intent, feature_hash
from udfs.normalize import normalize_event
from udfs.rules import RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ModelRegistry, ReloadingScorer

T0_MS = 1_764_000_000_000
#: the model version in force (the latest under models/intent-lr)
MODEL_VERSION = ModelRegistry().latest().model_version


def _as_sent(event: dict) -> dict:
    """An event as the SDK sends it (no collector fields), to go through the collector's normalization."""
    return {k: v for k, v in event.items() if k not in ("received_at_ms", "flags")}


def _forged_intent(session_event: dict, ts_ms: int, seq: int) -> dict:
    return {**_as_sent(session_event), "event_id": str(uuid.uuid4()), "type": "intent", "seq": seq,
            "client_ts_ms": ts_ms, "ts_ms": ts_ms,
            "props": {"intent_score": 1.0, "model_version": MODEL_VERSION, "rules_version": "2026-11-30.1",
                      "feature_hash": "fnv1a32:deadbeef", "trigger_event_id": session_event["event_id"],
                      "action": "rerank_towards_item", "rule_id": "rerank_compared_item", "edge_latency_ms": 0.1}}


def _decide(events: list[dict]):
    decider = Decider(JobConfig(), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)
    return decide_all(decider, events, batch_size=4)


def test_a_tampered_intent_event_changes_no_server_decision():
    received_at_ms = T0_MS + 60_000
    shallow = [normalize_event(_as_sent(e), received_at_ms=received_at_ms)
               for e in shallow_session("shallow-tampered", T0_MS)]
    # one forged intent event after every real signal, each claiming certainty and the top rule
    forged = [normalize_event(_forged_intent(e, e["ts_ms"] + 1, 100 + i), received_at_ms=received_at_ms)
              for i, e in enumerate(shallow)]
    assert all(f["type"] == "intent" and f["props"]["intent_score"] == 1.0 for f in forged)  # accepted as valid
    mixed = sorted(shallow + forged, key=lambda e: (e["ts_ms"], e["seq"]))

    honest_actions, _, honest_store = _decide(shallow)
    tampered_actions, dlq, tampered_store = _decide(mixed)

    assert honest_actions, "the shallow visitor gets the simple page (the comparison must compare something)"
    assert [a["action"] for a in honest_actions] == ["simplify_layout"]
    assert tampered_actions == honest_actions
    assert not dlq
    honest, tampered = honest_store["shallow-tampered"], tampered_store["shallow-tampered"]
    assert np.array_equal(tampered.state.features(), honest.state.features())
    assert tampered.last_intent_score == honest.last_intent_score < 0.6
    assert tampered.count_dict()["ignored"] == len(forged)
    assert tampered.count_dict()["applied"] == honest.count_dict()["applied"]


def test_intent_events_outside_the_contract_are_rejected():
    e = shallow_session("shallow-bad", T0_MS)[0]
    for props in ({"intent_score": 1.5, "model_version": MODEL_VERSION}, {"intent_score": 0.5},
                  {"intent_score": 0.5, "model_version": MODEL_VERSION, "features": [1, 2, 3]}):
        raw = {**_forged_intent(e, T0_MS, 7), "props": props}
        try:
            normalize_event(raw, received_at_ms=T0_MS)
        except ContractError as exc:
            assert exc.reason in ("wrong_type", "missing_field", "schema_violation"), exc.reason
        else:
            # unknown props are dropped by normalization (flag props_unknown_dropped), never passed on
            assert "features" not in normalize_event(raw, received_at_ms=T0_MS)["props"]


def test_check_intent_counts_agreement_and_disagreement():
    scorer = ReloadingScorer()
    engine = RuleEngine.default()
    from udfs.edge import reference_replay

    rows = reference_replay(article_session("article-check", T0_MS), scorer.scorer, engine)
    last = rows[-1]
    vector = np.asarray(last["features"], dtype=np.float32)
    honest = {"intent_score": last["intent_score"], "model_version": MODEL_VERSION, "feature_hash": feature_hash(vector),
              "rule_id": last["decision"]["rule_id"] if last["decision"] else None}
    ok = check_intent(honest, vector, last["intent_score"], honest["rule_id"])
    assert ok.same_features and ok.same_rule and not ok.disagrees and ok.score_diff == 0.0
    near = check_intent({**honest, "intent_score": last["intent_score"] + SCORE_TOLERANCE / 2}, vector,
                        last["intent_score"], honest["rule_id"])
    assert not near.disagrees
    forged = check_intent({**honest, "intent_score": 1.0, "rule_id": "rerank_compared_item",
                           "feature_hash": "fnv1a32:deadbeef"}, vector, last["intent_score"], honest["rule_id"])
    assert forged.disagrees and not forged.same_features and not forged.same_rule
    garbage = check_intent({"intent_score": "high"}, vector, 0.3, None)
    assert garbage.disagrees and math.isnan(garbage.score_diff)


@pytest.mark.parametrize("vector", [np.zeros(32, dtype=np.float32), np.arange(32, dtype=np.float32) / 7])
def test_feature_hash_is_fnv1a_of_the_float32_bytes(vector):
    h = 0x811C9DC5
    for byte in vector.astype("<f4").tobytes():
        h = ((h ^ byte) * 0x01000193) % 2**32
    assert feature_hash(vector) == f"fnv1a32:{h:08x}"
    assert feature_hash(vector.astype(np.float64)) == feature_hash(vector)


def test_audit_counts_honest_and_forged_intent_events_per_model_version():
    from udfs.edge import audit_intents, reference_replay

    scorer = ReloadingScorer().scorer
    engine = RuleEngine.default()
    events = article_session("article-audit", T0_MS)
    rows = {r["event_id"]: r for r in reference_replay(events, scorer, engine)}
    honest = []
    for i, e in enumerate(events):
        row = rows[e["event_id"]]
        if row["status"] != "applied":
            continue
        honest.append({**e, "event_id": str(uuid.uuid4()), "type": "intent", "seq": 100 + i, "ts_ms": e["ts_ms"],
                       "props": {"intent_score": row["intent_score"], "model_version": MODEL_VERSION,
                                 "feature_hash": feature_hash(np.asarray(row["features"], dtype=np.float32)),
                                 "trigger_event_id": e["event_id"],
                                 "rule_id": row["decision"]["rule_id"] if row["decision"] else None}})
    forged = [_forged_intent(events[1], events[1]["ts_ms"], 200),
              {**_forged_intent(events[2], events[2]["ts_ms"], 201), "props": {
                  **_forged_intent(events[2], 0, 0)["props"], "trigger_event_id": "no-such-event"}}]
    counts = audit_intents(events + honest + forged, scorer, engine)
    assert set(counts) == {MODEL_VERSION}
    c = counts[MODEL_VERSION]
    assert c["intent"] == len(honest) + 2
    assert c["disagree"] == 2 and c["unknown_trigger"] == 1
    assert c["feature_mismatch"] == 1 and c["rule_mismatch"] == 1
    assert c["score_diff_max"] > 0.5


def test_the_job_counts_agreeing_and_disagreeing_intent_events_per_model_version():
    """Issue 12 item 4: the decider checks each intent event against its own result for the trigger event
    and counts agreement per claimed model version; an unknown trigger is counted as unchecked."""
    from udfs.edge import reference_replay

    received_at_ms = T0_MS + 60_000
    article = [normalize_event(_as_sent(e), received_at_ms=received_at_ms)
               for e in article_session("article-edge", T0_MS)]
    from udfs.scoring import ModelRegistry

    scorer, engine = ReloadingScorer(), RuleEngine.default()
    steps = {step["event_id"]: step for step in reference_replay(article, ModelRegistry().load(), engine)}
    honest = []
    for i, event in enumerate(article):
        step = steps[event["event_id"]]
        if "intent_score" not in step:
            continue
        props = {"intent_score": step["intent_score"], "model_version": MODEL_VERSION,
                 "feature_hash": feature_hash(np.asarray(step["features"], dtype=np.float32)),
                 "trigger_event_id": event["event_id"],
                 "rule_id": (step["decision"] or {}).get("rule_id"), "action": (step["decision"] or {}).get("action")}
        honest.append(normalize_event({**_forged_intent(event, event["ts_ms"] + 1, 200 + i), "props": props},
                                      received_at_ms=received_at_ms))
    assert len(honest) >= 3
    forged = normalize_event(_forged_intent(article[-1], article[-1]["ts_ms"] + 2, 300), received_at_ms=received_at_ms)
    orphan = normalize_event({**_forged_intent(article[0], article[-1]["ts_ms"] + 3, 301),
                              "props": {**_forged_intent(article[0], 0, 0)["props"], "trigger_event_id": "nope"}},
                             received_at_ms=received_at_ms)
    events = sorted(article + honest + [forged, orphan], key=lambda e: (e["ts_ms"], e["seq"]))
    decider = Decider(JobConfig(), scorer, engine, clock_ms=lambda: 0)
    result = decider.decide(events, {}.get)
    counters = result.counters
    # the first intent event opens the checks: its own trigger came before it in the same batch, so all
    # honest ones are checked
    assert counters["edge_intent:" + MODEL_VERSION] == len(honest) + 1
    assert counters["edge_disagree:" + MODEL_VERSION] == 1  # the forged one
    assert counters["edge_unchecked"] == 1
    honest_only, _, _ = _decide(article)
    assert [a["event_id"] for a in result.actions] == [a["event_id"] for a in honest_only]
