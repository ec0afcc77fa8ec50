"""``intentflow backtest --candidate rules.json``: a candidate ruleset against the one in force, on history.

Reads the events of a topic (default ``signals.raw`` with the stack's prefix) whose Kafka timestamps fall in
``[--from-ts-ms, --to-ts-ms]`` (bounded: up to the end offsets read at start), and decides them twice with
the job's decision core (:class:`udfs.decide.Decider`: dedup, lateness, noise filter, features, ONE ONNX call
per micro-batch, rules, experiment assignment) in micro-batches of ``--batch-events`` in Kafka order, once with
the ruleset in force (``--rules``, default the job's default ruleset) and once with the candidate. The
Flink job wraps the same core (jobs/personalization.py), and deciding is batching-invariant
(tests/unit/test_decide.py), so these are the decisions the job made or would make, minus the
rulesets published to the ``rules`` topic while the history was recorded (a backtest uses one
ruleset per side).

It reports how many decisions differ, per rule (:func:`udfs.offpolicy.decision_differences`), and an
off-policy estimate of the candidate's conversion rate per session from the logging ruleset's propensities
(IPS and SNIPS with percentile-bootstrap intervals, :func:`udfs.offpolicy.estimate`; the unit, treatment and
outcome are defined there). The candidate is evaluated as a policy that serves its decision (its first action
per session) to every session, whatever its own experiment's holdout. ``--json FILE`` writes the whole report.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from udfs.config import JobConfig, kafka_client_kwargs, stack_settings


def read_events(bootstrap: str, topic: str, from_ts_ms: int | None, to_ts_ms: int | None,
                progress: bool = True) -> tuple[list[bytes], int]:
    """The raw values of ``topic`` with Kafka timestamps in ``[from_ts_ms, to_ts_ms]``, partition by
    partition in offset order, up to the end offsets read at start; and the number of records read.

    Raises:
        click.ClickException: the topic does not exist.
    """
    from kafka import KafkaConsumer, TopicPartition
    from tqdm import tqdm

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000,
                             **kafka_client_kwargs())
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise click.ClickException(f"topic {topic} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        start = {tp: 0 for tp in tps}
        if from_ts_ms is not None:
            found = consumer.offsets_for_times({tp: from_ts_ms for tp in tps})
            start = {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
        for tp in tps:
            consumer.seek(tp, start[tp])
        total = sum(max(0, end[tp] - start[tp]) for tp in tps)
        values: list[bytes] = []
        read = 0
        done = {tp for tp in tps if start[tp] >= end[tp]}
        with tqdm(total=total, unit="record", desc=f"reading {topic}", disable=not progress, file=sys.stderr) as bar:
            while len(done) < len(tps):
                polled = consumer.poll(timeout_ms=1000, max_records=5000)
                if not polled:
                    continue
                for tp, records in polled.items():
                    for rec in records:
                        if rec.offset >= end[tp]:
                            done.add(tp)
                            break
                        read += 1
                        bar.update(1)
                        if to_ts_ms is None or rec.timestamp <= to_ts_ms:
                            values.append(rec.value)
                        if rec.offset + 1 >= end[tp]:
                            done.add(tp)
        return values, read
    finally:
        consumer.close()


def parse_values(values: list[bytes], progress: bool = True) -> list[dict]:
    """The contract events of ``values`` in order; values the contract refuses are left out (the job sends
    them to the DLQ: no decision, no session)."""
    from tqdm import tqdm

    from udfs.contract import ContractError, parse_event

    events = []
    for raw in tqdm(values, unit="event", desc="parsing", disable=not progress, file=sys.stderr):
        try:
            events.append(parse_event(raw))
        except ContractError:
            continue
    return events


#: Events handed to ``udfs.decide.decide_all`` per progress-bar step.
_CHUNK_EVENTS = 5_000


def decide_with(events: list[dict], rules_json: str, config: JobConfig, batch_events: int, progress: bool = True,
                label: str = "") -> list[dict]:
    """Every action of one ruleset over ``events``, in micro-batches of ``batch_events``
    (:func:`udfs.decide.decide_all`, the job's decision core, one session store across the chunks).

    Raises:
        ValueError: an invalid ruleset (:class:`udfs.rules.RuleEngine`).
    """
    from tqdm import tqdm

    from udfs.decide import Decider, decide_all
    from udfs.rules import RuleEngine
    from udfs.scoring import ReloadingScorer

    decider = Decider(config, ReloadingScorer(config.model_name, version=config.model_version),
                      RuleEngine.from_json(rules_json))
    store: dict = {}
    actions: list[dict] = []
    step = max(batch_events, _CHUNK_EVENTS - _CHUNK_EVENTS % batch_events)  # whole micro-batches per chunk
    with tqdm(total=len(events), unit="event", desc=f"deciding ({label})", disable=not progress,
              file=sys.stderr) as bar:
        for i in range(0, len(events), step):
            chunk_actions, _dlq, store = decide_all(decider, events[i:i + step], batch_events, store)
            actions.extend(chunk_actions)
            bar.update(len(events[i:i + step]))
    return actions


def backtest(values: list[bytes], current_json: str, candidate_json: str, config: JobConfig,
             batch_events: int = 256, n_boot: int = 1000, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The report of :func:`backtest_cmd` for already read values (see the module docstring)."""
    from udfs.offpolicy import decision_differences, estimate, logged_session
    from udfs.rules import RuleEngine

    current_engine = RuleEngine.from_json(current_json)
    candidate_engine = RuleEngine.from_json(candidate_json)
    events = parse_values(values, progress)
    current = decide_with(events, current_json, config, batch_events, progress, "in force")
    candidate = decide_with(events, candidate_json, config, batch_events, progress, "candidate")
    session_ids = list(dict.fromkeys(e["session_id"] for e in events))
    purchased = {e["session_id"] for e in events if e["type"] == "purchase"}
    first_current: dict[str, dict] = {}
    for action in current:
        first_current.setdefault(action["session_id"], action)
    first_candidate: dict[str, dict] = {}
    for action in candidate:
        first_candidate.setdefault(action["session_id"], action)
    experiment = current_engine.experiment
    holdout = experiment.holdout_pct / 100.0 if experiment is not None else None
    logged = [logged_session(sid, first_current.get(sid), holdout, sid in purchased, first_candidate.get(sid))
              for sid in session_ids]
    return {"events": len(events), "values_refused_by_the_contract": len(values) - len(events),
            "sessions": len(session_ids),
            "rules_versions": {"in_force": current_engine.rules_version, "candidate": candidate_engine.rules_version},
            "decisions": decision_differences({a["event_id"]: a for a in current}, {a["event_id"]: a for a in candidate}),
            "candidate_conversion_rate": estimate(logged, n_boot=n_boot, seed=seed)}


def _summary(report: dict[str, Any]) -> str:
    d = report["decisions"]
    est = report["candidate_conversion_rate"]
    lines = [f"backtest: {report['events']:,} events, {report['sessions']:,} sessions; rulesets "
             f"{report['rules_versions']['in_force']} (in force) vs {report['rules_versions']['candidate']} (candidate)",
             f"decisions: {d['events_with_a_decision']:,} events with a decision, {d['differ']:,} differ",
             "  rule                         in force  candidate  differ"]
    for rule_id, c in d["by_rule"].items():
        lines.append(f"  {rule_id:<28} {c['current']:>8,} {c['candidate']:>10,} {c['differ']:>7,}")
    lines.append(f"candidate conversion rate per session (logged: {est['logged_conversion_rate']:.4f}; "
                 f"{est['matched']:,} of {est['sessions']:,} sessions match the candidate, effective sample size "
                 f"{est['effective_sample_size']:,.0f}):")
    for name in ("ips", "snips"):
        e = est[name]
        lines.append(f"  {name.upper():<6} {e['estimate']:.4f}  {est['level']:.0%} CI {e['ci_low']:.4f} .. "
                     f"{e['ci_high']:.4f} (bootstrap, {est['n_boot']} resamples)")
    return "\n".join(lines)


@click.command("backtest")
@click.option("--candidate", "candidate_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The candidate ruleset (JSON, schemas/rules.v1.json).")
@click.option("--rules", "rules_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The ruleset in force (default: the job's default, rules/default.v1.json).")
@click.option("--from-ts-ms", type=int, default=None, help="First Kafka timestamp to read, epoch ms (default: the beginning).")
@click.option("--to-ts-ms", type=int, default=None, help="Last Kafka timestamp to read, epoch ms (default: the end offsets at start).")
@click.option("--topic", default=None, help="Topic to read [default: signals.raw with INTENTFLOW_TOPIC_PREFIX].")
@click.option("--batch-events", type=click.IntRange(1, 100_000), default=JobConfig.max_batch_size, show_default=True,
              help="Events per micro-batch of the replay.")
@click.option("--model-version", default=None, help="Model version to score with [default: the current one].")
@click.option("--bootstrap-resamples", "n_boot", type=click.IntRange(10, 100_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report here too.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def backtest_cmd(candidate_path, rules_path, from_ts_ms, to_ts_ms, topic, batch_events, model_version, n_boot, seed,
                 json_path, quiet) -> None:
    """Replay history with the ruleset in force and a candidate side by side: differing decisions per rule,
    and IPS/SNIPS estimates of the candidate's conversion rate from the logged propensities."""
    from udfs.rules import DEFAULT_RULES_PATH

    settings = stack_settings()
    topic = topic or settings.topics.raw
    current_json = Path(rules_path or DEFAULT_RULES_PATH).read_text()
    candidate_json = Path(candidate_path).read_text()
    config = JobConfig() if model_version is None else replace(JobConfig(), model_version=model_version)
    values, read = read_events(settings.kafka_bootstrap, topic, from_ts_ms, to_ts_ms, progress=not quiet)
    if not values:
        raise click.ClickException(f"no events in {topic} within the time range ({read} records read)")
    try:
        report = backtest(values, current_json, candidate_json, config, batch_events, n_boot, seed, progress=not quiet)
    except ValueError as exc:
        raise click.ClickException(f"invalid ruleset: {exc}") from None
    report.update({"topic": topic, "from_ts_ms": from_ts_ms, "to_ts_ms": to_ts_ms, "records_read": read})
    click.echo(_summary(report))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2, default=str) + "\n")
        click.echo(f"report: {json_path}")
