"""``intentflow demo`` (what ``make demo`` runs after ``make up``): the whole path on real data.

1. starts the collector (``POST /v1/events``, the decision API and the demo product page) on
   http://127.0.0.1:8088/demo/ and the personalization job, live, on the local mini-cluster;
2. replays real recorded sessions into the demo's own ``signals.raw`` (OTTO clicks/carts/orders, Balabit
   mouse trajectories, YOOCHOOSE clicks; ``--limit-per-source``), shifted to now, plus the source
   article's laptop visitor and a quick leaver. The demo's topics carry the run's prefix
   (``INTENTFLOW_TOPIC_PREFIX=demo<time>.``, deleted at the end), so nothing another job or a ruleset
   published to the stack's rules topic does reaches the demo, and the demo reaches nothing else;
3. prints actions as the job writes them to Redis, then a summary: events in, how each ended (applied,
   suppressed by the noise filter, deduplicated, late, DLQ), actions per rule, throughput and the
   append->readable latency of every event (the job's trace stream);
4. SIMULATION (``--simulate-visitors``, udfs/simulation.py): the default rules with a 50 % holdout
   experiment ``simulation-demo-<time>`` are published to the demo's rules topic (hot reload) and, once
   the job runs them, seeded simulated visitors go through the same collector, job and decision API;
   then the experiment report (docs/experiments.md). Only simulated visitors are in that experiment: the
   replayed sessions ran before it existed (they come in clusters of one visitor's many sessions, which
   would skew the per-arm session counts that the sample-ratio check reads);
5. with ``--serve`` keeps the page up until Ctrl-C; then stops the job and the collector.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import click

from connectors.redis_store import RedisKeys, decode_trace

from intentflow.services.process import port_open
from operators.layout import ROOT
from udfs.config import kafka_client_kwargs

DEMO_SOURCES = ("otto", "balabit", "yoochoose")
COLLECTOR_PORT = 8088
#: Holdout share of the demo's experiment, %: an even split gives the short simulation the most power.
DEMO_HOLDOUT_PCT = 50.0


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "wb")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _delete_topics(settings) -> None:
    """Delete the demo run's own topics (``settings.topics``, prefixed); a failure is only reported."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000,
                                 **kafka_client_kwargs())
        try:
            admin.delete_topics(list(settings.topics.all()))
        finally:
            admin.close()
    except KafkaError as exc:
        click.echo(f"could not delete the demo's topics {sorted(settings.topics.all())}: {exc}", err=True)


def _percentile(values: list[int], pct: float) -> float:
    """Nearest-rank percentile (values sorted here)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))
    return float(ordered[min(rank, len(ordered)) - 1])


def _wait_ready(client, rp: str, job: subprocess.Popen, bootstrap: str, topic: str, timeout_s: float) -> None:
    """Produce one warm-up event and wait until the job has written its session (the job is live)."""
    from kafka import KafkaProducer

    from udfs.contract import dumps_event, make_event

    session_id = f"demo-warmup-{uuid.uuid4().hex[:6]}"
    event = make_event("page_view", session_id=session_id, client_ts_ms=int(time.time() * 1000),
                       source_key=session_id, props={"title": "warm-up"})
    producer = KafkaProducer(bootstrap_servers=bootstrap, **kafka_client_kwargs())
    producer.send(topic, key=session_id.encode(), value=dumps_event(event))
    producer.flush(10)
    producer.close()
    deadline = time.monotonic() + timeout_s
    while not client.exists(RedisKeys(rp).session(session_id)):
        if job.poll() is not None:
            raise click.ClickException(f"the job exited with code {job.returncode}; log: {ROOT / '.stack/logs/demo-job.log'}")
        if time.monotonic() > deadline:
            raise click.ClickException(f"the job did not start within {timeout_s:.0f} s; log: "
                                       f"{ROOT / '.stack/logs/demo-job.log'}")
        time.sleep(0.3)


def _publish_experiment(client, rp: str, job: subprocess.Popen, settings, experiment_id: str,
                        timeout_s: float) -> None:
    """Publish the default rules with the demo's experiment to the demo's rules topic and wait until the
    job decides with them: a bot probe event (counted in no experiment) is sent until the probe session's
    summary in Redis carries the new ``rules_version``.

    Raises:
        click.ClickException: the job exited, or did not run the new ruleset within ``timeout_s``.
    """
    from kafka import KafkaProducer

    from connectors.rules_topic import publish_ruleset
    from intentflow.simulate import simulation_ruleset
    from udfs.contract import dumps_event, make_event

    ruleset = simulation_ruleset(experiment_id, DEMO_HOLDOUT_PCT,
                                 rules_version=f"{time.strftime('%Y-%m-%d')}.{int(time.time())}")
    publish_ruleset(ruleset, settings.kafka_bootstrap, settings.topics.rules)
    click.echo(f"\npublished ruleset {ruleset['rules_version']} with experiment {experiment_id} "
               f"({DEMO_HOLDOUT_PCT} % holdout) on {settings.topics.rules}; waiting until the job decides with it ...")
    probe_id = f"demo-ruleset-probe-{uuid.uuid4().hex[:6]}"
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, **kafka_client_kwargs())
    deadline, sent = time.monotonic() + timeout_s, 0
    try:
        while client.hget(RedisKeys(rp).session(probe_id), "rules_version") != ruleset["rules_version"]:
            if job.poll() is not None:
                raise click.ClickException(f"the job exited with code {job.returncode}; log: "
                                           f"{ROOT / '.stack/logs/demo-job.log'}")
            if time.monotonic() > deadline:
                raise click.ClickException(f"the job did not run the experiment's ruleset within {timeout_s:.0f} s")
            event = make_event("page_view", session_id=probe_id, client_ts_ms=int(time.time() * 1000),
                               source_key=f"{probe_id}-{sent}", props={"title": "ruleset probe"},
                               context={"is_bot": True})
            producer.send(settings.topics.raw, key=probe_id.encode(), value=dumps_event(event))
            producer.flush(10)
            sent += 1
            time.sleep(1.0)
    finally:
        producer.close()


def _simulated_experiment(redis_url: str, rp: str, experiment_id: str, visitors: int) -> None:
    """SIMULATION: seeded visitors through the demo's collector and job, then the experiment report."""
    import asyncio

    from intentflow.experiments_cmd import format_report
    from intentflow.simulate import run_visitors, wait_for_counts
    from udfs.experiment_stats import experiment_report
    from udfs.simulation import true_lift

    click.echo(f"\nSIMULATION: {visitors} seeded visitors through the collector, the job and the decision API "
               f"(made-up response model, udfs/simulation.py: {true_lift() * 100:+.1f} pp built in) ...")
    result = asyncio.run(run_visitors(f"http://127.0.0.1:{COLLECTOR_PORT}", visitors=visitors, seed=1,
                                      experiment_id=experiment_id, holdout_pct=DEMO_HOLDOUT_PCT,
                                      run_id=experiment_id, rate_per_s=50))
    if not result.decided:
        click.echo("SIMULATION: no visitor was decided in the demo's experiment; no report")
        return
    fields = wait_for_counts(redis_url, rp, experiment_id, result)
    shares = {"holdout": DEMO_HOLDOUT_PCT / 100, "personalized": 1 - DEMO_HOLDOUT_PCT / 100}
    report = experiment_report(fields, shares, "holdout")
    click.echo(format_report(experiment_id, report))
    click.echo(_power_note(report, visitors))


def _power_note(report: dict, visitors: int) -> str:
    """SIMULATION: the lift built into the response model, the smallest lift the experiment's sessions can
    detect with a fixed-horizon test (the report's mSPRT, udfs/experiment_stats.py, pays for its validity
    under continuous peeking with a larger sample), and how many sessions (and simulated ``visitors``, in
    proportion) the built-in lift needs (udfs.experiment_power: 80 % power, alpha 0.05)."""
    from udfs.experiment_power import minimum_detectable_lift, sessions_needed
    from udfs.simulation import DEFAULT_LAYOUT, conversion_probability, true_lift

    arms, den = report["arms"], report["denominator"]
    n_c, n_t = arms.get("holdout", {}).get(den, 0), arms.get("personalized", {}).get(den, 0)
    p0 = conversion_probability(DEFAULT_LAYOUT)
    lines = [f"SIMULATION: {true_lift() * 100:+.1f} pp is built in (P(purchase) {p0 * 100:.0f} % on the default "
             "layout); the measured lift is one random draw around it."]
    mde = minimum_detectable_lift(p0, n_c, n_t)
    if mde is not None:
        lines.append(f"  with {n_c} / {n_t} {den} sessions (holdout / personalized) the smallest lift a fixed-horizon "
                     f"test of two proportions detects at 80 % power (alpha 0.05) is {mde * 100:+.1f} pp (the report's "
                     "sequential test, valid under peeking, needs somewhat more)")
    if n_c and n_t:
        need = sessions_needed(p0, p0 + true_lift(), n_t / n_c)
        if need is not None:
            enough = math.ceil(need * (1 + n_t / n_c) / (n_c + n_t) * visitors)
            advice = (f"the {visitors} visitors run are about enough for it; the sequential test needs more"
                      if enough <= visitors else
                      f"about `.venv/bin/intentflow demo --simulate-visitors {enough}` (with `make up` first)")
            lines.append(f"  a fixed-horizon test of the built-in lift needs ~{need} holdout sessions "
                         f"(~{round(need * n_t / n_c)} personalized): {advice}")
    return "\n".join(lines)


@click.command("demo")
@click.option("--limit-per-source", type=int, default=3000, show_default=True,
              help="Events replayed from each real data set.")
@click.option("--serve", is_flag=True, help="Keep the collector and the demo page up until Ctrl-C.")
@click.option("--timeout-s", type=float, default=180, show_default=True,
              help="Give up waiting for the job after this long.")
@click.option("--simulate-visitors", type=click.IntRange(0), default=1000, show_default=True,
              help="SIMULATION: seeded visitors for the experiment report at the end (0: none).")
def demo_cmd(limit_per_source: int, serve: bool, timeout_s: float, simulate_visitors: int) -> None:
    """Replay real data through the job on the local stack and show the actions arriving in Redis."""
    import redis
    from kafka import KafkaProducer

    from intentflow.replay import replay
    from intentflow.services.kafka_broker import create_topics
    from udfs.config import stack_settings
    from udfs.contract import dumps_event
    from udfs.scenarios import article_session, shallow_session

    run_id = time.strftime("%H%M%S")
    rp = f"demo{run_id}:"
    # the demo's own topics (the collector and the job get the prefix in their environment): another
    # job's traffic or ruleset never reaches the demo
    topic_prefix = f"demo{run_id}."
    # the simulated visitors all come from one address: no per-client rate limit on the demo's collector
    env = dict(os.environ, INTENTFLOW_REDIS_PREFIX=rp, INTENTFLOW_RATE_LIMIT_PER_S="0",
               INTENTFLOW_TOPIC_PREFIX=topic_prefix)
    settings = stack_settings(env)
    create_topics(settings.kafka_bootstrap, prefix=topic_prefix)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    logs = ROOT / ".stack" / "logs"
    experiment_id = f"simulation-demo-{run_id}"
    collector = job = None
    try:
        if port_open(COLLECTOR_PORT):
            raise click.ClickException(f"port {COLLECTOR_PORT} is in use: stop what runs there (a collector?)")
        collector = _start([sys.executable, "-m", "intentflow.cli", "collector", "--port", str(COLLECTOR_PORT)],
                           logs / "demo-collector.log", env)
        # from the demo's start time, not "latest": latest is resolved when the source starts, seconds
        # after the warm-up event below was produced
        job = _start([sys.executable, "-m", "jobs.personalization", "--from-ts-ms", str(int(time.time() * 1000)),
                      "--redis-prefix", rp,
                      "--group-id", f"demo-{run_id}", "--trace-every-n", "1"], logs / "demo-job.log", env)
        click.echo(f"demo page:     http://127.0.0.1:{COLLECTOR_PORT}/demo/   (decisions under Redis prefix {rp})")
        click.echo(f"job log:       {logs / 'demo-job.log'}\nstarting the job on the local mini-cluster ...")
        _wait_ready(client, rp, job, settings.kafka_bootstrap, settings.topics.raw, timeout_s)
        click.echo(f"job is live. Replaying real data sets into {settings.topics.raw} (shifted to now):")

        produced = 0
        started = time.time()
        for source in DEMO_SOURCES:
            try:
                summary = replay(source, limit=limit_per_source, shift_to_now=True, progress=False,
                                 topic=settings.topics.raw, dlq_topic=settings.topics.dlq)
            except FileNotFoundError as exc:
                click.echo(f"  {source:10s} skipped: {exc}")
                continue
            produced += summary["produced"]
            click.echo(f"  {source:10s} {summary['produced']:6d} events, {summary['sessions']:5d} sessions, "
                       f"types {dict(summary['by_type'])}")
        now = int(time.time() * 1000)
        scripted = article_session("demo-article-visitor", now) + shallow_session("demo-quick-leaver", now + 1)
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", **kafka_client_kwargs())
        for event in sorted(scripted, key=lambda e: e["ts_ms"]):
            producer.send(settings.topics.raw, key=event["session_id"].encode(), value=dumps_event(event))
        producer.flush(10)
        producer.close()
        produced += len(scripted)
        click.echo(f"  {'scripted':10s} {len(scripted):6d} events (the article's laptop visitor and a quick leaver)")

        click.echo("\nactions arriving in Redis (stream " + rp + "actions):")
        last_id, read, listed, deadline = "0", 0, 0, time.monotonic() + timeout_s

        def read_actions(block_ms: int | None) -> int:
            """Print the actions appended since ``last_id`` (the first 12 and the scripted sessions')."""
            nonlocal last_id, read, listed
            n = 0
            for _, entries in client.xread({RedisKeys(rp).actions: last_id}, count=500, block=block_ms) or []:
                for entry_id, fields in entries:
                    last_id, n = entry_id, n + 1
                    if read < 12 or fields["session_id"].startswith("demo-"):
                        click.echo(f"  {fields['session_id'][:36]:36s} {fields['action']:38s} rule={fields['rule_id']} "
                                   f"score={float(fields['intent_score']):.3f} model={fields['model_version']}")
                        listed += 1
                    read += 1
            return n

        while True:
            read_actions(500)
            done = int(client.hget(RedisKeys(rp).stats, "events") or 0)
            if done >= produced + 1:  # + the warm-up event
                break
            if time.monotonic() > deadline or job.poll() is not None:
                raise click.ClickException(f"the job processed {done} of {produced} events; log: {logs / 'demo-job.log'}")
        # the actions of the last batches may have been appended after the read above
        while read_actions(None):
            pass
        if read > listed:
            click.echo(f"  ... and {read - listed} more actions (all in the stream {rp}actions)")
        elapsed_s = time.time() - started

        stats = {k: int(v) for k, v in client.hgetall(RedisKeys(rp).stats).items()}
        rules = Counter(f["rule_id"] for _, f in client.xrange(RedisKeys(rp).actions))
        append_to_readable = [int(i.split("-")[0]) - kafka_ms for i, f in client.xrange(RedisKeys(rp).trace)
                              for _eid, kafka_ms, _client_ms, _ts in decode_trace(f["events"]) if kafka_ms]
        click.echo("\nsummary")
        click.echo(f"  events produced      {produced + 1} (incl. 1 warm-up event)")
        click.echo(f"  events processed     {stats.get('events', 0)}: applied {stats.get('applied', 0)}, "
                   f"suppressed by the noise filter {stats.get('suppressed', 0)}, ignored {stats.get('ignored', 0)}, "
                   f"deduplicated {stats.get('deduplicated', 0)}, late {stats.get('late', 0)}")
        click.echo(f"  actions              {stats.get('actions', 0)} {dict(rules)}")
        click.echo(f"  throughput           {stats.get('events', 0) / elapsed_s:.0f} events/s over {elapsed_s:.1f} s "
                   "(replay as fast as possible, job on the local mini-cluster)")
        click.echo(f"  append->readable     p50 {_percentile(append_to_readable, 50):.0f} ms, "
                   f"p99 {_percentile(append_to_readable, 99):.0f} ms over {len(append_to_readable)} events "
                   "(under the flat-out replay; paced figures: make bench)")
        article = client.hgetall(RedisKeys(rp).action("demo-article-visitor"))
        click.echo(f"  article visitor      {article.get('action')} (rule {article.get('rule_id')})")
        click.echo(f"  quick leaver         {client.hget(f'{rp}action:demo-quick-leaver', 'action')}")
        if simulate_visitors:
            _publish_experiment(client, rp, job, settings, experiment_id, timeout_s)
            _simulated_experiment(settings.redis_url, rp, experiment_id, simulate_visitors)
        if serve:
            click.echo(f"\nserving http://127.0.0.1:{COLLECTOR_PORT}/demo/ with the job live; Ctrl-C stops.")
            try:
                while job.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        _stop(job)
        _stop(collector)
        client.close()
        _delete_topics(settings)
        click.echo("stopped the job and the collector; deleted the demo's topics.")
