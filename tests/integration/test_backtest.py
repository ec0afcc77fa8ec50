"""``intentflow backtest --candidate`` on the real broker: the events of a Kafka time range decided with the
ruleset in force and a candidate; the differing decisions per rule and the off-policy inputs checked against
the pure decider run independently (each session decided in one batch) on the same events."""
from __future__ import annotations

import json
import time

import orjson
import pytest
from click.testing import CliRunner

from intentflow.backtest import backtest_cmd
from udfs.config import JobConfig
from udfs.contract import make_event
from udfs.decide import Decider, decide_all
from udfs.offpolicy import decision_differences
from udfs.rules import DEFAULT_RULES_PATH, RuleEngine
from udfs.scenarios import article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = [pytest.mark.integration, pytest.mark.claim]

T0 = 1_764_000_000_000


def _rulesets(tmp_path):
    current = json.loads(DEFAULT_RULES_PATH.read_text())
    current["rules_version"] = "2026-12-02.101"
    current["experiment"]["holdout_pct"] = 50
    candidate = json.loads(json.dumps(current))
    candidate["rules_version"] = "2026-12-02.102"
    for rule in candidate["rules"]:
        if rule["id"] == "deep_engagement_product":
            rule["enabled"] = False
    paths = tmp_path / "current.json", tmp_path / "candidate.json"
    paths[0].write_text(json.dumps(current))
    paths[1].write_text(json.dumps(candidate))
    return paths


def _sessions(tag: str, n: int) -> list[dict]:
    events = []
    for k in range(n):
        sid = f"bt-{tag}-{k}"
        make = article_session if k % 2 == 0 else shallow_session
        session = make(sid, T0 + 60_000 * k, key=sid)
        if k % 3 == 0:  # some sessions buy
            session.append(make_event("purchase", session_id=sid, client_ts_ms=session[-1]["ts_ms"] + 1_000,
                                      source_key=f"{sid}:purchase"))
        events += session
    return events


def _produce(bootstrap: str, topic: str, events: list[dict]) -> list[int]:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    futures = [producer.send(topic, key=e["session_id"].encode(), value=orjson.dumps(e)) for e in events]
    producer.flush(30)
    producer.close()
    return [f.get(30).timestamp for f in futures]


def test_backtest_reports_the_differing_decisions_of_a_time_range_and_the_off_policy_inputs(stack, topics, tmp_path):
    current_path, candidate_path = _rulesets(tmp_path)
    before = _sessions("old", 6)
    stamps_before = _produce(stack.kafka_bootstrap, topics.raw, before)
    while int(time.time() * 1000) <= max(stamps_before) + 2:
        time.sleep(0.002)
    wanted = _sessions("new", 12)
    stamps = _produce(stack.kafka_bootstrap, topics.raw, wanted)
    assert min(stamps) > max(stamps_before)
    out = tmp_path / "report.json"
    res = CliRunner().invoke(backtest_cmd, ["--candidate", str(candidate_path), "--rules", str(current_path),
                                            "--topic", topics.raw, "--from-ts-ms", str(min(stamps)),
                                            "--to-ts-ms", str(max(stamps)), "--bootstrap-resamples", "50",
                                            "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())

    # independently: every wanted session decided in one batch by the pure decider, both rulesets
    def decide(path) -> list[dict]:
        decider = Decider(JobConfig(), ReloadingScorer(JobConfig().model_name), RuleEngine.from_file(path))
        actions = []
        for k in range(12):
            session = [e for e in wanted if e["session_id"] == f"bt-new-{k}"]
            actions += decide_all(decider, session, len(session))[0]
        return actions

    current, candidate = decide(current_path), decide(candidate_path)
    expected = decision_differences({a["event_id"]: a for a in current}, {a["event_id"]: a for a in candidate})
    assert report["decisions"] == json.loads(json.dumps(expected))
    assert report["decisions"]["by_rule"]["deep_engagement_product"]["candidate"] == 0
    assert report["decisions"]["differ"] > 0
    assert report["events"] == len(wanted) and report["sessions"] == 12  # the older sessions are outside the range
    est = report["candidate_conversion_rate"]
    first = {}
    for a in current:
        first.setdefault(a["session_id"], a)
    first_candidate = {}
    for a in candidate:
        first_candidate.setdefault(a["session_id"], a)
    # a session matches the candidate when the logged treatment (nothing in the holdout) is the candidate's
    def treatment(a):
        return "-" if a is None or a.get("arm") == "holdout" else f"{a['rule_id']}:{a['action']}"

    def candidate_treatment(a):
        return "-" if a is None else f"{a['rule_id']}:{a['action']}"

    matched = sum(1 for k in range(12) if treatment(first.get(f"bt-new-{k}")) == candidate_treatment(first_candidate.get(f"bt-new-{k}")))
    assert est["sessions"] == 12 and est["matched"] == matched
    assert est["logged_conversion_rate"] == pytest.approx(4 / 12)  # sessions 0, 3, 6, 9 buy
    assert "differ" in res.output and "SNIPS" in res.output
