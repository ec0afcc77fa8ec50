"""``intentflow rules``: validate a ruleset, publish it to the ``rules`` topic, show the latest one.

The job reads the ``rules`` topic into broadcast state and swaps its engine when a valid ruleset arrives
(``udfs.rules.reload``). Records: key ``b"ruleset"`` (one key, so a compacted topic keeps the latest),
value = the validated ruleset as compact UTF-8 JSON, header ``rules_version``.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING, Any

import click

from connectors.redis_store import RedisKeys

from connectors.rules_topic import MissingTopicError, latest_ruleset_record, publish_ruleset

if TYPE_CHECKING:
    from udfs.rules import ThresholdMove

def _settings():
    from udfs.config import stack_settings  # noqa: PLC0415

    return stack_settings()


def kafka_failure(exc: Exception, bootstrap: str) -> click.ClickException:
    """The one-line error of a command whose broker did not answer (exit 1, no traceback)."""
    return click.ClickException(f"Kafka at {bootstrap} did not answer: {exc!r} (is the broker up? "
                                "`intentflow stack status`)")


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
@click.option("--timeout-s", default=10.0, show_default=True, help="seconds to wait for the broker")
def publish_cmd(file: Path, topic: str | None, bootstrap: str | None, timeout_s: float) -> None:
    """Validate FILE, then produce it to the rules topic (the job picks it up without a restart)."""
    from udfs.rules import RulesetError, load_ruleset  # noqa: PLC0415

    settings = _settings()
    topic = topic or settings.topics.rules
    bootstrap = bootstrap or settings.kafka_bootstrap
    try:
        ruleset = load_ruleset(file)
    except RulesetError as exc:
        raise click.ClickException(f"{file}: invalid, not published: {exc}") from exc
    from kafka.errors import KafkaError  # noqa: PLC0415

    try:
        partition, offset = publish_ruleset(ruleset, bootstrap, topic, timeout_s)
    except KafkaError as exc:
        raise kafka_failure(exc, bootstrap) from None
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
    from kafka.errors import KafkaError  # noqa: PLC0415

    try:
        found = latest_ruleset_record(bootstrap, topic, timeout_s)
    except MissingTopicError as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaError as exc:
        raise kafka_failure(exc, bootstrap) from None
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


def read_variant_counts(redis_url: str, prefix: str, ruleset: dict[str, Any]
                        ) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """``(exposures, conversions)`` of :func:`udfs.rules.adapt` from the job's experiment counts in Redis:
    per adaptive experiment ``"<rule id>@<version>"`` of ``ruleset``, the sessions assigned to each
    variant (``sessions``) and those with a purchase (``sessions_converted``), docs/experiments.md."""
    import redis  # noqa: PLC0415

    from udfs.experiment_stats import parse_counts  # noqa: PLC0415
    from udfs.rules import RuleEngine  # noqa: PLC0415

    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
    exposures: dict[str, dict[str, int]] = {}
    conversions: dict[str, dict[str, int]] = {}
    try:
        for experiment_id, _rule_id, _explore in RuleEngine(ruleset).adaptive_experiments:
            counts = parse_counts(client.hgetall(RedisKeys(prefix).experiment(experiment_id)))
            exposures[experiment_id] = {v: sum(m.get("sessions", {}).values()) for v, m in counts.items()}
            conversions[experiment_id] = {v: sum(m.get("sessions_converted", {}).values()) for v, m in counts.items()}
    finally:
        client.close()
    return exposures, conversions


def _ruleset_in_force(rules_file: Path | None, bootstrap: str, topic: str) -> tuple[dict[str, Any], str]:
    from udfs.rules import DEFAULT_RULES_PATH, RulesetError, load_ruleset  # noqa: PLC0415

    if rules_file is None:
        try:
            found = latest_ruleset_record(bootstrap, topic)
        except MissingTopicError:
            found = None
        if found is not None:
            try:
                return load_ruleset(found[0]), f"{topic} offset {found[2]}"
            except RulesetError:
                pass  # the job keeps its previous ruleset too; fall back to the file
        rules_file = DEFAULT_RULES_PATH
    return load_ruleset(Path(rules_file)), str(rules_file)


@dataclass
class AdaptRun:
    """One read of the counts by :func:`adapt_once`.

    Attributes:
        ruleset: the ruleset in force after the read (the adapted one when thresholds moved and it was
            not a dry run, else the input).
        moves: the thresholds moved (or, in a dry run, that would move).
        exposures: ``{experiment id: {variant: sessions}}`` read (:func:`read_variant_counts`).
        published: ``(partition, offset)`` of the published ruleset, or None.
    """

    ruleset: dict[str, Any]
    moves: list[ThresholdMove]
    exposures: dict[str, dict[str, int]]
    published: tuple[int, int] | None = None


def adapt_once(ruleset: dict[str, Any], redis_url: str, prefix: str, *, alpha: float = 0.05,
               min_exposures: int = 200, dry_run: bool = False, publish_to: tuple[str, str] | None = None,
               audit_log: Path | None = None, on_adapted=None) -> AdaptRun:
    """Read the job's counts of the adaptive experiments of ``ruleset`` and move the thresholds the mSPRT
    calls better (:func:`udfs.rules.adapt`, ``test="msprt"``): what one run of ``intentflow rules adapt``
    does.

    Args:
        ruleset: the validated ruleset in force.
        redis_url, prefix: the job's Redis and ``--redis-prefix``.
        alpha, min_exposures: of :func:`udfs.rules.adapt_moves`.
        dry_run: find the moves, change and publish nothing, log nothing.
        publish_to: ``(bootstrap, topic)`` to publish the adapted ruleset to (hot reload), or None.
        audit_log: JSON-lines file every move is appended to with its reason, or None.
        on_adapted: called with the adapted ruleset before it is published (e.g. to learn its thresholds
            before the job can judge anyone by them), or None.
    Returns:
        :class:`AdaptRun`.
    Raises:
        redis.RedisError, kafka.errors.KafkaError: Redis or the broker failed; RulesetError: cannot happen
        for a valid ``ruleset``.
    """
    import time  # noqa: PLC0415
    from dataclasses import asdict  # noqa: PLC0415

    from udfs.rules import adapt, adapt_moves  # noqa: PLC0415

    exposures, conversions = read_variant_counts(redis_url, prefix, ruleset)
    kw = {"alpha": alpha, "min_exposures": min_exposures, "test": "msprt"}
    moves = adapt_moves(ruleset, exposures, conversions, **kw)
    if not moves or dry_run:
        return AdaptRun(ruleset, moves, exposures)
    new = adapt(ruleset, exposures, conversions, today=time.strftime("%Y-%m-%d", time.gmtime()), **kw)
    if on_adapted is not None:
        on_adapted(new)
    published = publish_ruleset(new, *publish_to) if publish_to is not None else None
    if audit_log is not None:
        audit_log.parent.mkdir(parents=True, exist_ok=True)
        with audit_log.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"at_ms": int(time.time() * 1000), "from_rules_version": ruleset["rules_version"],
                                "to_rules_version": new["rules_version"], "published": published is not None,
                                "moves": [{**asdict(m), "reason": "variant beats control, mSPRT always-valid "
                                           f"p {m.p_value:.3g} < alpha/2 {alpha / 2}"} for m in moves]}) + "\n")
    return AdaptRun(new, moves, exposures, published)


@rules_cmd.command("adapt")
@click.option("--dry-run", is_flag=True, help="print the moves, change and publish nothing")
@click.option("--publish", "do_publish", is_flag=True, help="publish the adapted ruleset to the rules topic")
@click.option("--every-s", type=click.FloatRange(1), default=None, help="run continuously, every this many seconds")
@click.option("--max-runs", type=click.IntRange(1), default=None,
              help="with --every-s: stop after this many runs (default: run until stopped)")
@click.option("--rules-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="the ruleset in force (default: the latest on the rules topic, else rules/default.v1.json)")
@click.option("--prefix", default="if:", show_default=True, help="the job's --redis-prefix")
@click.option("--redis-url", default=None, help=f"Redis URL.  [default: {_settings().redis_url} (INTENTFLOW_REDIS_URL)]")
@click.option("--topic", default=None, help=f"Rules topic.  [default: {_settings().topics.rules} (INTENTFLOW_TOPIC_PREFIX + rules)]")
@click.option("--bootstrap", default=None, help=f"Kafka bootstrap servers.  [default: {_settings().kafka_bootstrap} (INTENTFLOW_KAFKA_BOOTSTRAP)]")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Significance level of the mSPRT that must call a variant better before a threshold moves.")
@click.option("--min-exposures", type=click.IntRange(1), default=200, show_default=True,
              help="Exposed sessions each arm needs before its threshold may move.")
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), default=Path("artifacts/rules-audit.jsonl"),
              show_default=True, help="every move is appended here as one JSON line, with its reason")
def adapt_cmd(dry_run, do_publish, every_s, max_runs, rules_file, prefix, redis_url, topic, bootstrap, alpha, min_exposures,
              audit_log) -> None:
    """Move adaptive thresholds only on evidence: a variant whose purchase rate beats control's by the
    mSPRT's always-valid p-value (valid under repeated reads, so --every-s may run forever). The moved
    rule's version is bumped (its experiment, and its counts, start afresh: one move per rule per test),
    the value never leaves [min, max]; the new ruleset is printed, published with --publish (hot reload)
    and the reason appended to the audit log."""
    import time  # noqa: PLC0415

    settings = _settings()
    topic = topic or settings.topics.rules
    bootstrap = bootstrap or settings.kafka_bootstrap
    redis_url = redis_url or settings.redis_url
    ruleset, where = _ruleset_in_force(rules_file, bootstrap, topic)
    runs = 0
    while True:
        runs += 1
        run = adapt_once(ruleset, redis_url, prefix, alpha=alpha, min_exposures=min_exposures, dry_run=dry_run,
                         publish_to=(bootstrap, topic) if do_publish else None, audit_log=audit_log)
        if not run.moves:
            click.echo(f"{ruleset['rules_version']} ({where}): no threshold moves (sessions per variant: "
                       f"{run.exposures})", err=True)
        for m in run.moves:
            click.echo(f"{m.rule_id}: {m.old_value} -> {m.new_value} (variant {m.variant}): purchase rate "
                       f"{m.variant_rate:.4f} vs control {m.control_rate:.4f}, always-valid p {m.p_value:.3g} "
                       f"(mSPRT, alpha {alpha}/2 per variant)", err=True)
        if run.moves and not dry_run:
            click.echo(json.dumps(run.ruleset, indent=2))
            ruleset, where = run.ruleset, (f"{topic} (published)" if run.published else "adapted")
        if every_s is None or (max_runs is not None and runs >= max_runs):
            return
        time.sleep(every_s)
