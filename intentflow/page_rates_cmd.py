"""``intentflow page-rates``: build a page-rates table from a window of events, publish it, show the latest.

A table (udfs/page_rates.py) holds per-page bounce and exit rates counted over a closed event-time window
of the product's own events; the job annotates page views with the rates of the table in force (the
``--page-rates-table`` file, then the newest valid table on the ``page-rates`` topic), so a decision is a
function of the events, the ruleset, the model and the table version (docs/contracts.md).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from intentflow.rules_cmd import kafka_failure


def _settings():
    from udfs.config import stack_settings  # noqa: PLC0415

    return stack_settings()


def _read_events(path: Path) -> list[dict]:
    """Events of a JSONL file, each checked for what counting needs (an object with an integer ``ts_ms``).

    Raises:
        click.ClickException: a line that is not a JSON object or lacks an integer ``ts_ms`` (file and line named).
    """
    import orjson  # noqa: PLC0415

    out = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise click.ClickException(f"{path}:{n}: not JSON: {exc}") from None
            if not isinstance(event, dict):
                raise click.ClickException(f"{path}:{n}: an event is a JSON object, got {type(event).__name__}")
            ts = event.get("ts_ms")
            if not isinstance(ts, int) or isinstance(ts, bool):
                raise click.ClickException(f"{path}:{n}: ts_ms must be an integer (epoch ms), got {ts!r}")
            out.append(event)
    return out


@click.group("page-rates")
def page_rates_cmd() -> None:
    """Page-rates tables: build from events, publish to the page-rates topic, show the latest."""


@page_rates_cmd.command("build")
@click.option("--events", "events_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Contract events, JSONL (repeatable).")
@click.option("--kafka-topic", default=None, help="Read contract events from this topic (between --from-ms and --to-ms).")
@click.option("--from-ms", type=int, default=None, help="First event time counted, ms (and Kafka record time read).")
@click.option("--to-ms", type=int, default=None, help="End of the window (exclusive), ms.")
@click.option("--version", "version", default=None,
              help="The table's name (page_rates_version) [default: UTC date and time, e.g. 2026-12-04T15:02:07Z].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where the table goes (JSON).")
def build_cmd(events_files: tuple[Path, ...], kafka_topic: str | None, from_ms: int | None, to_ms: int | None,
              version: str | None, out: Path) -> None:
    """Count the page views of the events in [--from-ms, --to-ms) and write the table of every page seen.

    The window of the counts is the event-time range given (or that of the events): the table's rates are
    those of udfs.page_stats.PageStats after seeing all of it (smoothed towards the UCI priors, 20
    pseudo-counts)."""
    from kafka.errors import KafkaError  # noqa: PLC0415

    from models.training_data import dedup_events, read_kafka_events  # noqa: PLC0415
    from udfs.page_rates import PageRatesError, build_table  # noqa: PLC0415

    if not events_files and not kafka_topic:
        raise click.UsageError("give --events FILE and/or --kafka-topic TOPIC")
    if from_ms is not None and to_ms is not None and from_ms >= to_ms:
        raise click.UsageError(f"--from-ms {from_ms} must be before --to-ms {to_ms}")
    events: list[dict] = []
    for path in events_files:
        events.extend(_read_events(path))
    if kafka_topic:
        bootstrap = _settings().kafka_bootstrap
        try:
            events.extend(read_kafka_events(bootstrap, kafka_topic, from_ms, to_ms))
        except (KafkaError, TimeoutError) as exc:
            raise kafka_failure(exc, bootstrap) from None
    events = dedup_events(events)
    if not any(e.get("type") == "page_view" for e in events):
        raise click.ClickException(f"no page_view among the {len(events)} events read")
    version = version or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        table = build_table(events, version, from_ms, to_ms)
    except PageRatesError as exc:
        raise click.ClickException(str(exc)) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table.to_document(), indent=1) + "\n")
    n_views = sum(1 for e in events if e.get("type") == "page_view" and table.from_ms <= e["ts_ms"] < table.to_ms)
    click.echo(f"wrote {out}: page_rates_version {table.version}, {len(table.pages)} pages from {n_views} page "
               f"views, event time [{table.from_ms}, {table.to_ms})")


@page_rates_cmd.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", default=None, help=f"Page-rates topic.  [default: {_settings().topics.page_rates} "
                                            "(INTENTFLOW_TOPIC_PREFIX + page-rates)]")
@click.option("--bootstrap", default=None, help=f"Kafka bootstrap servers.  [default: {_settings().kafka_bootstrap} "
                                                "(INTENTFLOW_KAFKA_BOOTSTRAP)]")
def publish_cmd(file: Path, topic: str | None, bootstrap: str | None) -> None:
    """Validate FILE, then produce it to the page-rates topic (the job uses it without a restart)."""
    from connectors.rules_topic import publish_page_rates  # noqa: PLC0415
    from udfs.page_rates import PageRatesError, PageRatesTable  # noqa: PLC0415

    from kafka.errors import KafkaError  # noqa: PLC0415

    settings = _settings()
    try:
        table = PageRatesTable.from_json(file.read_bytes())
    except PageRatesError as exc:
        raise click.ClickException(f"{file}: invalid, not published: {exc}") from exc
    topic = topic or settings.topics.page_rates
    bootstrap = bootstrap or settings.kafka_bootstrap
    try:
        partition, offset = publish_page_rates(table, bootstrap, topic)
    except KafkaError as exc:
        raise kafka_failure(exc, bootstrap) from None
    click.echo(f"published page_rates_version {table.version} ({len(table.pages)} pages) to {topic} "
               f"partition {partition} offset {offset}")


@page_rates_cmd.command("show")
@click.option("--topic", default=None, help=f"Page-rates topic.  [default: {_settings().topics.page_rates} "
                                            "(INTENTFLOW_TOPIC_PREFIX + page-rates)]")
@click.option("--bootstrap", default=None, help=f"Kafka bootstrap servers.  [default: {_settings().kafka_bootstrap} "
                                                "(INTENTFLOW_KAFKA_BOOTSTRAP)]")
@click.option("--timeout-s", default=10.0, show_default=True, help="seconds to wait for the broker")
def show_cmd(topic: str | None, bootstrap: str | None, timeout_s: float) -> None:
    """Print the version, window and page count of the latest table on the topic, and whether it is valid."""
    from kafka.errors import KafkaError  # noqa: PLC0415

    from connectors.rules_topic import MissingTopicError, latest_ruleset_record  # noqa: PLC0415
    from udfs.page_rates import PageRatesError, PageRatesTable  # noqa: PLC0415

    settings = _settings()
    topic = topic or settings.topics.page_rates
    bootstrap = bootstrap or settings.kafka_bootstrap
    try:
        found = latest_ruleset_record(bootstrap, topic, timeout_s)
    except MissingTopicError as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaError as exc:
        raise kafka_failure(exc, bootstrap) from None
    if found is None:
        raise click.ClickException(f"no page-rates table on topic {topic!r}")
    value, partition, offset = found
    try:
        table = PageRatesTable.from_json(bytes(value))
    except PageRatesError as exc:
        raise click.ClickException(f"{topic} partition {partition} offset {offset}: INVALID (the job keeps its "
                                   f"previous table): {exc}") from exc
    click.echo(f"{topic} partition {partition} offset {offset}: valid, page_rates_version {table.version}, "
               f"{len(table.pages)} pages, event time [{table.from_ms}, {table.to_ms})")
