"""`intentflow rules publish/show` against the real broker, on a fresh topic set."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from connectors.rules_topic import RULESET_KEY, latest_ruleset_record
from intentflow.rules_cmd import rules_cmd
from udfs.rules import DEFAULT_RULES_PATH, RuleEngine, reload

pytestmark = pytest.mark.integration


def _end_offset(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def test_publish_then_read_back_and_show_the_latest(stack, topics, tmp_path):
    runner = CliRunner()
    args = ["--topic", topics.rules, "--bootstrap", stack.kafka_bootstrap]

    result = runner.invoke(rules_cmd, ["publish", str(DEFAULT_RULES_PATH), *args])
    assert result.exit_code == 0, result.output
    assert f"published rules_version 2026-12-02.1 to {topics.rules}" in result.output

    # the raw record: key, header and a value the job's reload accepts
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topics.rules, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=10000)
    records = []
    for record in consumer:
        records.append(record)
        break
    consumer.close()
    assert len(records) == 1 and records[0].key == RULESET_KEY
    assert dict(records[0].headers)["rules_version"] == b"2026-12-02.1"
    engine, reason = reload(None, records[0].value)
    assert reason is None and engine.rule_ids() == RuleEngine.default().rule_ids()

    # a newer ruleset: `show` returns it
    newer = json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    newer["rules_version"] = "2026-12-01.1"
    newer["rules"][0]["enabled"] = False
    newer_path = tmp_path / "newer.json"
    newer_path.write_text(json.dumps(newer), encoding="utf-8")
    assert runner.invoke(rules_cmd, ["publish", str(newer_path), *args]).exit_code == 0
    value, _, offset = latest_ruleset_record(stack.kafka_bootstrap, topics.rules)
    assert offset == 1 and json.loads(value)["rules_version"] == "2026-12-01.1"
    shown = runner.invoke(rules_cmd, ["show", *args])
    assert shown.exit_code == 0, shown.output
    assert '"rules_version": "2026-12-01.1"' in shown.output


def test_invalid_ruleset_is_not_published(stack, topics, tmp_path):
    broken = json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    broken["rules"][1]["when"]["all"][0]["feature"] = "scroll_depth"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    result = CliRunner().invoke(rules_cmd, ["publish", str(path), "--topic", topics.rules,
                                            "--bootstrap", stack.kafka_bootstrap])
    assert result.exit_code == 1
    assert "unknown feature 'scroll_depth'" in result.output and "not published" in result.output
    assert _end_offset(stack.kafka_bootstrap, topics.rules) == 0
    shown = CliRunner().invoke(rules_cmd, ["show", "--topic", topics.rules, "--bootstrap", stack.kafka_bootstrap])
    assert shown.exit_code == 1 and "no ruleset on topic" in shown.output
