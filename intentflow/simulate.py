"""``intentflow simulate``: SIMULATION — seeded visitors through the collector, the live job and the
decision API, converting with the probability the response model gives the layout they were served
(udfs/simulation.py), then the experiment report.

Each visitor posts its behavioral events to ``POST /v1/events`` (as the SDK does), polls ``GET
/v1/decision``, renders the action (or the default layout when the answer is ``holdout``), sends its
``exposure`` and, if its seeded draw says so, an ``add_to_cart`` and a ``purchase``. Visitors start at a
fixed rate (paced, not all at once). ``--drop-personalized-pct`` simulates a bug that loses that share of
the personalized arm's visitors before they reach the collector: a sample ratio mismatch the report must
flag. Everything this prints is labelled SIMULATION.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from connectors.redis_store import RedisKeys

from udfs.config import stack_settings

from udfs.simulation import DEFAULT_LAYOUT, conversion_probability, visitor_plan

ROOT = Path(__file__).resolve().parents[1]

#: A desktop Chrome user agent: the collector classifies the request's user agent, and a bot-like one
#: (aiohttp's own) would keep the visitor out of the features and the experiment.
SIM_USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/156.0.0.0 Safari/537.36")
_PAGE = {"url": "http://127.0.0.1:8088/demo/", "path": "/demo/", "item_id": "laptop-pro-14",
         "content_ids": ["laptop-pro-14:specs", "laptop-pro-14:video-demo"]}
_CONTEXT = {"device_class": "desktop", "viewport_w_px": 1440, "viewport_h_px": 900}


@dataclass
class SimulationResult:
    """What the simulated visitors did, by the arm the decision API told them (SIMULATION).

    Attributes:
        visitors: visitors planned; dropped: lost before the collector (``--drop-personalized-pct``);
        undecided: no decision within the timeout (or one of another experiment); decided, exposed,
        converted, carted: ``{arm: visitors}``; layouts: ``{layout: visitors}``.
    """

    visitors: int = 0
    dropped: int = 0
    undecided: int = 0
    decided: Counter = field(default_factory=Counter)
    exposed: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    carted: Counter = field(default_factory=Counter)
    layouts: Counter = field(default_factory=Counter)


def _raw_event(plan, n: int, kind: str, ts_ms: int, props: dict[str, Any]) -> dict[str, Any]:
    from udfs.contract import derive_event_id  # noqa: PLC0415

    return {"event_id": derive_event_id(f"{plan.session_id}:{n}"), "type": kind, "session_id": plan.session_id,
            "anonymous_id": plan.anonymous_id, "seq": n, "client_ts_ms": ts_ms, "page": dict(_PAGE),
            "context": dict(_CONTEXT), "props": props}


#: Attempts of one POST answered 429 (rate limit) or 503 (broker not acknowledging), as the SDK retries.
POST_ATTEMPTS = 10


async def _post(http, url: str, events: list[dict[str, Any]]) -> None:
    for attempt in range(POST_ATTEMPTS):
        async with http.post(url, json={"sent_at_ms": int(time.time() * 1000), "events": events},
                             headers={"User-Agent": SIM_USER_AGENT}) as resp:
            if resp.status == 200:
                return
            if resp.status not in (429, 503) or attempt == POST_ATTEMPTS - 1:
                raise click.ClickException(f"collector answered {resp.status}: {(await resp.text())[:300]} (all "
                                           "simulated visitors come from one address: run the collector with "
                                           "INTENTFLOW_RATE_LIMIT_PER_S=0)")
            retry_s = float(resp.headers.get("Retry-After") or 0.5)
        await asyncio.sleep(retry_s)


async def _decision(http, url: str, session_id: str, experiment_id: str, timeout_s: float, poll_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with http.get(url, params={"session_id": session_id}) as resp:
            body = await resp.json()
        if body.get("source") in ("redis", "holdout"):
            if body.get("experiment_id") != experiment_id:
                return None  # decided under another experiment (the ruleset had not reached the job yet)
            # the rules may decide again on a later event of the same batch (e.g. a re-rank after the
            # video demo): take the answer once it stopped changing for one poll
            await asyncio.sleep(poll_s * 2)
            async with http.get(url, params={"session_id": session_id}) as resp:
                again = await resp.json()
            # a Redis read over the API's 50 ms deadline answers "redis_unavailable": keep the first answer
            return again if again.get("source") in ("redis", "holdout") else body
        await asyncio.sleep(poll_s)
    return None


async def _visitor(http, index: int, *, seed: int, run_id: str, events_url: str, decision_url: str,
                   experiment_id: str, holdout_pct: float, drop_personalized_pct: float, timeout_s: float,
                   poll_s: float, result: SimulationResult) -> None:
    from udfs.experiments import PERSONALIZED, arm_for  # noqa: PLC0415

    plan = visitor_plan(seed, index, run_id)
    result.visitors += 1
    if drop_personalized_pct and arm_for(experiment_id, plan.anonymous_id, holdout_pct) == PERSONALIZED:
        if random.Random(f"drop:{plan.anonymous_id}").random() * 100 < drop_personalized_pct:
            result.dropped += 1
            return
    start_ms = int(time.time() * 1000) - plan.span_ms  # the script's last event is now
    await _post(http, events_url, [_raw_event(plan, n, kind, start_ms + dt_ms, props)
                                   for n, (kind, dt_ms, props) in enumerate(plan.timeline)])
    decision = await _decision(http, decision_url, plan.session_id, experiment_id, timeout_s, poll_s)
    if decision is None:
        result.undecided += 1
        return
    arm = decision["arm"]
    layout = decision["action"] if decision["source"] == "redis" else DEFAULT_LAYOUT
    result.decided[arm] += 1
    result.layouts[layout] += 1
    now_ms = int(time.time() * 1000)
    n = len(plan.timeline)
    events = [_raw_event(plan, n, "exposure", now_ms, {"experiment_id": experiment_id, "variant": arm,
                                                        "content_id": layout})]
    result.exposed[arm] += 1
    if plan.u < conversion_probability(layout):
        events.append(_raw_event(plan, n + 1, "add_to_cart", now_ms + 1,
                                 {"item_id": "laptop-pro-14", "quantity": 1, "price": 1299.0}))
        events.append(_raw_event(plan, n + 2, "purchase", now_ms + 2,
                                 {"order_id": f"o-{plan.session_id}", "value": 1299.0, "currency": "EUR",
                                  "item_ids": ["laptop-pro-14"]}))
        result.converted[arm] += 1
        result.carted[arm] += 1
    await _post(http, events_url, events)


async def run_visitors(collector_url: str, *, visitors: int, seed: int, experiment_id: str, holdout_pct: float,
                       run_id: str = "sim", first_index: int = 0, rate_per_s: float = 50.0,
                       drop_personalized_pct: float = 0.0, decision_url: str | None = None,
                       timeout_s: float = 30.0, poll_s: float = 0.15) -> SimulationResult:
    """SIMULATION: drive ``visitors`` seeded visitors (indexes ``first_index..``) through a collector at
    ``collector_url`` (``/v1/events``) and a decision API (``decision_url``, default the collector's
    ``/v1/decision``), starting ``rate_per_s`` visitors per second.

    Raises:
        click.ClickException: the collector refused events (other than a 503, which is retried).
    """
    import aiohttp  # noqa: PLC0415

    result = SimulationResult()
    events_url = collector_url.rstrip("/") + "/v1/events"
    decision_url = decision_url or collector_url.rstrip("/") + "/v1/decision"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        tasks = []
        for index in range(first_index, first_index + visitors):
            tasks.append(asyncio.create_task(_visitor(
                http, index, seed=seed, run_id=run_id, events_url=events_url, decision_url=decision_url,
                experiment_id=experiment_id, holdout_pct=holdout_pct, drop_personalized_pct=drop_personalized_pct,
                timeout_s=timeout_s, poll_s=poll_s, result=result)))
            await asyncio.sleep(1.0 / rate_per_s)
        await asyncio.gather(*tasks)
    return result


def simulation_ruleset(experiment_id: str, holdout_pct: float, rules_file: Path = ROOT / "rules" / "default.v1.json",
                       rules_version: str | None = None) -> dict[str, Any]:
    """The ruleset of ``rules_file`` with the simulation's experiment block (validated)."""
    from udfs.rules import load_ruleset  # noqa: PLC0415

    ruleset = json.loads(Path(rules_file).read_text())
    ruleset["experiment"] = {"id": experiment_id, "holdout_pct": holdout_pct,
                             "description": "SIMULATION (intentflow simulate)"}
    if rules_version:
        ruleset["rules_version"] = rules_version
    return load_ruleset(ruleset)


def wait_for_counts(redis_url: str, prefix: str, experiment_id: str, result: SimulationResult,
                    timeout_s: float = 120.0) -> dict[str, int]:
    """Wait until the job's counts of ``experiment_id`` hold every exposure and conversion the visitors
    sent; return the Redis hash (``{field: n}``). Raises click.ClickException on timeout."""
    import redis  # noqa: PLC0415

    from udfs.experiment_stats import parse_counts  # noqa: PLC0415

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            fields = {k: int(v) for k, v in client.hgetall(RedisKeys(prefix).experiment(experiment_id)).items()}
            counts = parse_counts(fields)
            got = {(arm, m): sum(counts.get(arm, {}).get(m, {}).values())
                   for arm in result.exposed for m in ("exposed", "converted")}
            want = {(arm, "exposed"): n for arm, n in result.exposed.items()}
            want.update({(arm, "converted"): result.converted[arm] for arm in result.exposed})
            if got == want:
                return fields
            if time.monotonic() > deadline:
                raise click.ClickException(f"counts of {experiment_id} did not settle: job has {got}, visitors sent {want}")
            time.sleep(0.5)
    finally:
        client.close()


@click.command("simulate")
@click.option("--visitors", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--experiment-id", default=None, help="default simulation-<seed>-<unix s> (must start with 'simulation')")
@click.option("--holdout-pct", default=50.0, show_default=True, type=click.FloatRange(0, 100))
@click.option("--drop-personalized-pct", default=0.0, show_default=True, type=click.FloatRange(0, 100),
              help="simulate a bug losing this share of the personalized arm's visitors (an SRM)")
@click.option("--rate-per-s", default=50.0, show_default=True, type=click.FloatRange(0.1),
              help="visitors started per second")
@click.option("--collector-url", default="http://127.0.0.1:8088", show_default=True)
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="publish the default ruleset with this experiment to the rules topic first (hot reload)")
@click.option("--redis-url", default=None, help=f"Redis URL.  [default: {stack_settings().redis_url} (INTENTFLOW_REDIS_URL)]")
@click.option("--prefix", default="if:", show_default=True, help="the job's --redis-prefix")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None)
def simulate_cmd(visitors, seed, experiment_id, holdout_pct, drop_personalized_pct, rate_per_s, collector_url,
                 publish, redis_url, prefix, plot) -> None:
    """SIMULATION: seeded visitors through the collector and the live job; then the experiment report."""
    from intentflow.experiments_cmd import format_report, plot_report  # noqa: PLC0415
    from intentflow.rules_cmd import publish_ruleset  # noqa: PLC0415
    from udfs.config import stack_settings  # noqa: PLC0415
    from udfs.experiment_stats import experiment_report  # noqa: PLC0415
    from udfs.simulation import true_lift  # noqa: PLC0415

    settings = stack_settings()
    experiment_id = experiment_id or f"simulation-{seed}-{int(time.time())}"
    if not experiment_id.startswith("simulation"):
        raise click.BadParameter("must start with 'simulation' (its reports are labelled SIMULATION)",
                                 param_hint="--experiment-id")
    if publish:
        publish_ruleset(simulation_ruleset(experiment_id, holdout_pct), settings.kafka_bootstrap, settings.topics.rules)
        click.echo(f"SIMULATION: published the default ruleset with experiment {experiment_id} "
                   f"(holdout {holdout_pct} %)", err=True)
    result = asyncio.run(run_visitors(collector_url, visitors=visitors, seed=seed, experiment_id=experiment_id,
                                      holdout_pct=holdout_pct, rate_per_s=rate_per_s,
                                      drop_personalized_pct=drop_personalized_pct, run_id=experiment_id))
    click.echo(f"SIMULATION: {result.visitors} visitors, {result.dropped} dropped, {result.undecided} undecided, "
               f"decided {dict(result.decided)}, converted {dict(result.converted)}; built-in lift "
               f"{true_lift() * 100:+.1f} pp", err=True)
    fields = wait_for_counts(redis_url or settings.redis_url, prefix, experiment_id, result)
    shares = {"holdout": holdout_pct / 100, "personalized": 1 - holdout_pct / 100}
    report = experiment_report(fields, shares, "holdout")
    click.echo(format_report(experiment_id, report))
    if plot is not None:
        plot_report({experiment_id: report}, plot)
