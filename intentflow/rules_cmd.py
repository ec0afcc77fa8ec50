"""``intentflow rules``: validate a ruleset, publish it to the ``rules`` topic, show the latest one.

The job reads the ``rules`` topic into broadcast state and swaps its engine when a valid ruleset arrives
(``udfs.rules.reload``). Records: key ``b"ruleset"`` (one key, so a compacted topic keeps the latest),
value = the validated ruleset as compact UTF-8 JSON, header ``rules_version``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from connectors.rules_topic import MissingTopicError, latest_ruleset_record, publish_ruleset

def _settings():
    from udfs.config import stack_settings  # noqa: PLC0415

    return stack_settings()


@click.group("rules")
def rules_cmd() -> None:
    """Rulesets: validate, publish to the rules topic, show the latest."""


@rules_cmd.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "model_name", default=None, help="model whose latest version is in force (default: the job's)")
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="models folder (default: $INTENTFLOW_MODELS_DIR or models/)")
def validate_cmd(file: Path, model_name: str | None, models_dir: Path | None) -> None:
    """Validate FILE against schemas/rules.v1.json and the feature list; exit 1 with the reason if invalid.

    Warns (on stderr, exit 0) when an intent-score threshold is never reached by the validation scores of the
    model in force, or when a quantile threshold's fallback value is not the quantile's score for it."""
    from udfs.rules import RuleEngine, RulesetError, load_ruleset  # noqa: PLC0415
    from udfs.thresholds import (QuantilesError, ScoreQuantiles, stale_quantile_values,  # noqa: PLC0415
                                 unreachable_thresholds)

    try:
        quantiles = ScoreQuantiles.of_model(model_name, models_dir=models_dir)
    except (FileNotFoundError, QuantilesError) as exc:
        quantiles = None
        click.echo(f"warning: intent-score thresholds not checked against a model: {exc}", err=True)
    try:
        engine = RuleEngine(load_ruleset(file), None, quantiles)
    except (RulesetError, QuantilesError, FileNotFoundError) as exc:
        raise click.ClickException(f"{file}: invalid: {exc}") from exc
    if quantiles is not None:
        for warning in unreachable_thresholds(engine.ruleset, quantiles) + stale_quantile_values(engine.ruleset, quantiles):
            click.echo(f"warning: {warning}", err=True)
    click.echo(f"{file}: valid, rules_version {engine.rules_version}, enabled rules in evaluation order: "
               f"{', '.join(engine.rule_ids())}")


@rules_cmd.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default=None, help=f"Rules topic.  [default: {_settings().topics.rules} (INTENTFLOW_TOPIC_PREFIX + rules)]")
@click.option("--bootstrap", default=None, help=f"Kafka bootstrap servers.  [default: {_settings().kafka_bootstrap} (INTENTFLOW_KAFKA_BOOTSTRAP)]")
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
@click.option("--topic", default=None, help=f"Rules topic.  [default: {_settings().topics.rules} (INTENTFLOW_TOPIC_PREFIX + rules)]")
@click.option("--bootstrap", default=None, help=f"Kafka bootstrap servers.  [default: {_settings().kafka_bootstrap} (INTENTFLOW_KAFKA_BOOTSTRAP)]")
@click.option("--timeout-s", default=10.0, show_default=True, help="seconds to wait for the broker")
def show_cmd(topic: str | None, bootstrap: str | None, timeout_s: float) -> None:
    """Print the latest ruleset on the rules topic (JSON), and whether it is valid (on stderr)."""
    from udfs.rules import RulesetError, load_ruleset  # noqa: PLC0415

    settings = _settings()
    topic = topic or settings.topics.rules
    bootstrap = bootstrap or settings.kafka_bootstrap
    try:
        found = latest_ruleset_record(bootstrap, topic, timeout_s)
    except MissingTopicError as exc:
        raise click.ClickException(str(exc)) from exc
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
