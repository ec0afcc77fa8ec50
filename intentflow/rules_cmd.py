"""``intentflow rules``: validate a ruleset, publish it to the ``rules`` topic, show the latest one.

The job reads the ``rules`` topic into broadcast state and swaps its engine when a valid ruleset arrives
(``udfs.rules.reload``). Records: key ``b"ruleset"`` (one key, so a compacted topic keeps the latest),
value = the validated ruleset as compact UTF-8 JSON, header ``rules_version``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

#: Kafka record key of every ruleset record.
RULESET_KEY = b"ruleset"


def _settings():
    from udfs.config import stack_settings  # noqa: PLC0415

    return stack_settings()


def publish_ruleset(ruleset: dict[str, Any], bootstrap: str, topic: str, timeout_s: float = 10.0) -> tuple[int, int]:
    """Validate ``ruleset`` and produce it to ``topic`` (acks=all); return ``(partition, offset)``.

    Raises:
        udfs.rules.RulesetError: the ruleset is invalid (nothing is produced).
        kafka.errors.KafkaError: the broker did not take the record within ``timeout_s``.
    """
    from kafka import KafkaProducer  # noqa: PLC0415

    from udfs.config import kafka_client_kwargs  # noqa: PLC0415
    from udfs.rules import validate_ruleset  # noqa: PLC0415

    normalized = validate_ruleset(ruleset)
    value = json.dumps(normalized, separators=(",", ":"), sort_keys=False).encode("utf-8")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, **kafka_client_kwargs())
    try:
        future = producer.send(topic, key=RULESET_KEY, value=value,
                               headers=[("rules_version", normalized["rules_version"].encode())])
        meta = future.get(timeout=timeout_s)
        producer.flush(timeout_s)
        return meta.partition, meta.offset
    finally:
        producer.close(timeout=timeout_s)


def latest_ruleset_record(bootstrap: str, topic: str, timeout_s: float = 10.0) -> tuple[bytes, int, int] | None:
    """The value, partition and offset of the newest record (by record timestamp) on ``topic``, or None
    when the topic is empty. Reads only the last record of each partition."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    from udfs.config import kafka_client_kwargs  # noqa: PLC0415

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000), bootstrap_timeout_ms=int(timeout_s * 1000),
                             **kafka_client_kwargs())
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise click.ClickException(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        wanted = {tp for tp in tps if ends[tp] > 0}
        for tp in wanted:
            consumer.seek(tp, ends[tp] - 1)
        best = None
        for record in consumer:
            tp = TopicPartition(record.topic, record.partition)
            if tp in wanted and record.offset == ends[tp] - 1:
                if best is None or record.timestamp > best[0]:
                    best = (record.timestamp, record.value, record.partition, record.offset)
                wanted.discard(tp)
            if not wanted:
                break
        return None if best is None else best[1:]
    finally:
        consumer.close()


@click.group("rules")
def rules_cmd() -> None:
    """Rulesets: validate, publish to the rules topic, show the latest."""


@rules_cmd.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate_cmd(file: Path) -> None:
    """Validate FILE against schemas/rules.v1.json and the feature list; exit 1 with the reason if invalid."""
    from udfs.rules import RuleEngine, RulesetError  # noqa: PLC0415

    try:
        engine = RuleEngine.from_file(file)
    except RulesetError as exc:
        raise click.ClickException(f"{file}: invalid: {exc}") from exc
    click.echo(f"{file}: valid, rules_version {engine.rules_version}, enabled rules in evaluation order: "
               f"{', '.join(engine.rule_ids())}")


@rules_cmd.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default=None, help="default: stack_settings().topics.rules")
@click.option("--bootstrap", default=None, help="default: stack_settings().kafka_bootstrap")
def publish_cmd(file: Path, topic: str | None, bootstrap: str | None) -> None:
    """Validate FILE, then produce it to the rules topic (the job picks it up without a restart)."""
    from udfs.rules import RulesetError, load_ruleset  # noqa: PLC0415

    settings = _settings()
    topic = topic or settings.topics.rules
    bootstrap = bootstrap or settings.kafka_bootstrap
    try:
        ruleset = load_ruleset(file)
    except RulesetError as exc:
        raise click.ClickException(f"{file}: invalid, not published: {exc}") from exc
    partition, offset = publish_ruleset(ruleset, bootstrap, topic)
    click.echo(f"published rules_version {ruleset['rules_version']} to {topic} partition {partition} offset {offset}")


@rules_cmd.command("show")
@click.option("--topic", default=None, help="default: stack_settings().topics.rules")
@click.option("--bootstrap", default=None, help="default: stack_settings().kafka_bootstrap")
@click.option("--timeout-s", default=10.0, show_default=True, help="seconds to wait for the broker")
def show_cmd(topic: str | None, bootstrap: str | None, timeout_s: float) -> None:
    """Print the latest ruleset on the rules topic (JSON), and whether it is valid (on stderr)."""
    from udfs.rules import RulesetError, load_ruleset  # noqa: PLC0415

    settings = _settings()
    topic = topic or settings.topics.rules
    bootstrap = bootstrap or settings.kafka_bootstrap
    found = latest_ruleset_record(bootstrap, topic, timeout_s)
    if found is None:
        raise click.ClickException(f"no ruleset on topic {topic!r}")
    value, partition, offset = found
    try:
        ruleset = load_ruleset(value)
        status = f"valid, rules_version {ruleset['rules_version']}"
    except RulesetError as exc:
        status = f"INVALID (the job keeps its previous ruleset): {exc}"
    click.echo(f"{topic} partition {partition} offset {offset}: {status}", err=True)
    try:
        click.echo(json.dumps(json.loads(value), indent=2))
    except ValueError:
        sys.stdout.write(value.decode("utf-8", "replace") + "\n")
