"""``intentflow simulate``: SIMULATION — seeded visitors through the collector, the live job and the
decision API, converting with the probability the response model gives the layout they were served
(udfs/simulation.py), then the experiment report.

Why this module is over 400 lines: it drives one SIMULATION end to end through the real parts: the paced
visitors through the collector and the decision API, the in-process adaptation loop (``--adapt-every-s``)
and the report; the response models are in ``udfs/simulation.py``, the statistics in
``udfs/experiment_stats.py``.

Each visitor posts its behavioral events to ``POST /v1/events`` (as the SDK does), polls ``GET
/v1/decision``, renders the action (or the default layout when the answer is ``holdout``), sends its
``exposure`` and, if its seeded draw says so, an ``add_to_cart`` and a ``purchase``. Visitors start at a
fixed rate (paced, not all at once). ``--drop-personalized-pct`` simulates a bug that loses that share of
the personalized arm's visitors before they reach the collector: a sample ratio mismatch the report must
flag. Everything this prints is labelled SIMULATION.

The closed loop of adaptive thresholds: ``--response threshold-peaked`` (or ``threshold-flat``) makes a
visitor's conversion depend on the adaptive threshold it was judged by (``udfs.simulation.
THRESHOLD_RESPONSES``: the value of the variant its action's ``params.experiment_id``/``params.variant``
name, in the ruleset of that rule version), and ``--adapt-every-s S`` runs what ``intentflow rules adapt
--publish`` does every S seconds while the visitors flow: it reads the job's live counts, and when the
mSPRT calls a variant better it publishes the moved threshold (a new rule version) to the rules topic; the
job hot-reloads it and judges the later visitors by it. Every move is printed with the number of visitors
started so far.
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

from udfs.simulation import (ADAPTIVE_RULE_ID, DEFAULT_LAYOUT, LAYOUT_RESPONSE, RESPONSES, conversion_probability,
                              deep_share, threshold_conversion_probability, visitor_plan)

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
        judged: with a threshold response model, ``(visitor index, experiment id, variant, threshold)`` of
            every visitor whose action came from the adaptive rule, in the order their decisions arrived.
        moves: with an :class:`AdaptLoop`, its moves (:attr:`AdaptLoop.moves`).
    """

    visitors: int = 0
    dropped: int = 0
    undecided: int = 0
    decided: Counter = field(default_factory=Counter)
    exposed: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    carted: Counter = field(default_factory=Counter)
    layouts: Counter = field(default_factory=Counter)
    judged: list[tuple[int, str, str, float]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)


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


def _conversion_probability(decision: dict[str, Any], layout: str, response: str,
                            thresholds: dict[str, dict[str, float]], index: int, result: SimulationResult) -> float:
    """P(purchase) of a decided visitor under ``response``: by the threshold of the adaptive rule's variant
    its action names (recorded in ``result.judged``), else by the layout."""
    params = decision.get("params") or {}
    experiment = params.get("experiment_id")
    if response == LAYOUT_RESPONSE or decision.get("source") != "redis" or \
            decision.get("rule_id") != ADAPTIVE_RULE_ID or experiment is None:
        return conversion_probability(layout)
    try:
        threshold = thresholds[experiment][params["variant"]]
    except KeyError as exc:
        raise click.ClickException(f"SIMULATION: decision of {decision.get('session_id')} names {experiment} "
                                   f"variant {params.get('variant')}, a threshold this run did not publish") from exc
    result.judged.append((index, experiment, params["variant"], threshold))
    return threshold_conversion_probability(response, threshold)


async def _visitor(http, index: int, *, seed: int, run_id: str, events_url: str, decision_url: str,
                   experiment_id: str, holdout_pct: float, drop_personalized_pct: float, timeout_s: float,
                   poll_s: float, result: SimulationResult, response: str = LAYOUT_RESPONSE,
                   thresholds: dict[str, dict[str, float]] | None = None) -> None:
    from udfs.experiments import PERSONALIZED, arm_for  # noqa: PLC0415

    plan = visitor_plan(seed, index, run_id, deep_share(response))
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
    if plan.u < _conversion_probability(decision, layout, response, thresholds or {}, index, result):
        events.append(_raw_event(plan, n + 1, "add_to_cart", now_ms + 1,
                                 {"item_id": "laptop-pro-14", "quantity": 1, "price": 1299.0}))
        events.append(_raw_event(plan, n + 2, "purchase", now_ms + 2,
                                 {"order_id": f"o-{plan.session_id}", "value": 1299.0, "currency": "EUR",
                                  "item_ids": ["laptop-pro-14"]}))
        result.converted[arm] += 1
        result.carted[arm] += 1
    await _post(http, events_url, events)


@dataclass
class AdaptLoop:
    """``intentflow rules adapt --publish`` run every ``every_s`` seconds while simulated visitors flow
    (:func:`intentflow.rules_cmd.adapt_once`), keeping the simulator's map of thresholds in step.

    Attributes:
        ruleset: the ruleset in force (the job's), replaced by every adapted one.
        redis_url, prefix: the job's Redis and ``--redis-prefix``; bootstrap, topic: the rules topic.
        every_s: seconds between reads of the counts.
        alpha, min_exposures: of :func:`udfs.rules.adapt_moves`.
        audit_log: the JSON-lines audit log of the moves, or None.
        thresholds: ``{experiment id: {variant: threshold}}`` of every ruleset in force so far
            (:func:`udfs.rules.adaptive_variant_values`); a new rule version is added before it is published.
        moves: one dict per move: ``visitors`` (started so far), ``sessions`` (counted by the job in the
            experiment that moved, all variants), ``elapsed_s`` (since the loop started), ``rule_id``,
            ``experiment_id``, ``variant``, ``from``, ``to``, ``p_value``, ``rules_version`` (the new one).
        reads: how many times the counts were read.
        last_sessions: ``{variant: sessions}`` of the adaptive experiment in force at the last read (all
            its variants' sessions counted by the job since its rule version started).
    """

    ruleset: dict[str, Any]
    redis_url: str
    prefix: str
    bootstrap: str
    topic: str
    every_s: float
    alpha: float = 0.05
    min_exposures: int = 200
    audit_log: Path | None = None
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    moves: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0
    last_sessions: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from udfs.rules import adaptive_variant_values  # noqa: PLC0415

        self.thresholds.update(adaptive_variant_values(self.ruleset))

    def _learn(self, ruleset: dict[str, Any]) -> None:
        from udfs.rules import adaptive_variant_values  # noqa: PLC0415

        self.thresholds.update(adaptive_variant_values(ruleset))

    def step(self, visitors_so_far: int, elapsed_s: float) -> list[dict[str, Any]]:
        """Read the counts once, move and publish what the mSPRT calls better; return the new moves.
        Raises what :func:`intentflow.rules_cmd.adapt_once` raises."""
        from intentflow.rules_cmd import adapt_once  # noqa: PLC0415

        from udfs.rules import adaptive_variant_values  # noqa: PLC0415

        self.reads += 1
        in_force = next(iter(e for e in adaptive_variant_values(self.ruleset) if e.startswith(ADAPTIVE_RULE_ID + "@")),
                        None)
        run = adapt_once(self.ruleset, self.redis_url, self.prefix, alpha=self.alpha,
                         min_exposures=self.min_exposures, publish_to=(self.bootstrap, self.topic),
                         audit_log=self.audit_log, on_adapted=self._learn)
        new = [{"visitors": visitors_so_far, "sessions": sum(run.exposures.get(m.experiment_id, {}).values()),
                "elapsed_s": round(elapsed_s, 1), "rule_id": m.rule_id, "experiment_id": m.experiment_id,
                "variant": m.variant, "from": m.old_value, "to": m.new_value, "p_value": m.p_value,
                "rules_version": run.ruleset["rules_version"]} for m in run.moves]
        self.last_sessions = dict(run.exposures.get(in_force, {}))
        self.ruleset = run.ruleset
        self.moves.extend(new)
        return new

    def threshold(self, rule_id: str = ADAPTIVE_RULE_ID) -> float:
        """The control value of ``rule_id``'s adaptive threshold in the ruleset in force.
        Raises KeyError when the ruleset has no such adaptive rule."""
        from udfs.rules import adaptive_variant_values  # noqa: PLC0415

        values = adaptive_variant_values(self.ruleset)
        return next(v["control"] for e, v in values.items() if e.rpartition("@")[0] == rule_id)


async def _adapt_while(loop: AdaptLoop, result: SimulationResult, done: asyncio.Event, started: float,
                       echo) -> None:
    while True:
        try:
            await asyncio.wait_for(done.wait(), loop.every_s)
            return
        except asyncio.TimeoutError:
            pass
        for move in await asyncio.to_thread(loop.step, result.visitors, time.monotonic() - started):
            if echo is not None:
                echo(f"SIMULATION adapt: after {move['visitors']} visitors ({move['sessions']} sessions counted in "
                     f"{move['experiment_id']}, {move['elapsed_s']} s) {move['rule_id']} {move['from']:g} -> "
                     f"{move['to']:g} (variant {move['variant']}, mSPRT p {move['p_value']:.3g}), published as "
                     f"rules_version {move['rules_version']}")


async def run_visitors(collector_url: str, *, visitors: int, seed: int, experiment_id: str, holdout_pct: float,
                       run_id: str = "sim", first_index: int = 0, rate_per_s: float = 50.0,
                       drop_personalized_pct: float = 0.0, decision_url: str | None = None,
                       timeout_s: float = 30.0, poll_s: float = 0.15, response: str = LAYOUT_RESPONSE,
                       thresholds: dict[str, dict[str, float]] | None = None, adapt_loop: AdaptLoop | None = None,
                       echo=None) -> SimulationResult:
    """SIMULATION: drive ``visitors`` seeded visitors (indexes ``first_index..``) through a collector at
    ``collector_url`` (``/v1/events``) and a decision API (``decision_url``, default the collector's
    ``/v1/decision``), starting ``rate_per_s`` visitors per second.

    ``response`` is the response model (:data:`udfs.simulation.RESPONSES`); a threshold model needs the
    thresholds of the rule versions the job may judge by: ``thresholds`` (``{experiment id: {variant:
    value}}``, :func:`udfs.rules.adaptive_variant_values`) or ``adapt_loop``'s. With ``adapt_loop`` the
    counts are read and thresholds moved every ``adapt_loop.every_s`` s until the last visitor is done
    (moves in ``result.moves``, each also passed to ``echo`` as a line when given).

    Raises:
        click.ClickException: the collector refused events (other than a 503, which is retried), or a
            visitor was judged by a threshold this run does not know.
        KeyError: unknown ``response``.
    """
    import aiohttp  # noqa: PLC0415

    deep_share(response)  # the KeyError of an unknown model before any visitor starts
    result = SimulationResult()
    if adapt_loop is not None:
        thresholds = adapt_loop.thresholds
        result.moves = adapt_loop.moves
    events_url = collector_url.rstrip("/") + "/v1/events"
    decision_url = decision_url or collector_url.rstrip("/") + "/v1/decision"
    done = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        adapter = None
        if adapt_loop is not None:
            adapter = asyncio.create_task(_adapt_while(adapt_loop, result, done, time.monotonic(), echo))
        try:
            tasks = []
            for index in range(first_index, first_index + visitors):
                tasks.append(asyncio.create_task(_visitor(
                    http, index, seed=seed, run_id=run_id, events_url=events_url, decision_url=decision_url,
                    experiment_id=experiment_id, holdout_pct=holdout_pct, drop_personalized_pct=drop_personalized_pct,
                    timeout_s=timeout_s, poll_s=poll_s, result=result, response=response, thresholds=thresholds)))
                await asyncio.sleep(1.0 / rate_per_s)
                if adapter is not None and adapter.done():
                    adapter.result()  # the adaptation failed: raise its error now
            await asyncio.gather(*tasks)
        finally:
            done.set()
            if adapter is not None:
                await adapter
    return result


def simulation_ruleset(experiment_id: str, holdout_pct: float, rules_file: Path = ROOT / "rules" / "default.v1.json",
                       rules_version: str | None = None, rule_versions: dict[str, int] | None = None) -> dict[str, Any]:
    """The ruleset of ``rules_file`` with the simulation's experiment block (validated); ``rule_versions``
    (``{rule id: version}``) sets rule versions (a fresh adaptive experiment id ``"<rule id>@<version>"``,
    :func:`fresh_rule_version`). Raises RulesetError when the result is invalid, KeyError for an unknown
    rule id."""
    from udfs.rules import load_ruleset  # noqa: PLC0415

    ruleset = json.loads(Path(rules_file).read_text())
    ruleset["experiment"] = {"id": experiment_id, "holdout_pct": holdout_pct,
                             "description": "SIMULATION (intentflow simulate)"}
    if rules_version:
        ruleset["rules_version"] = rules_version
    by_id = {rule["id"]: rule for rule in ruleset["rules"]}
    for rule_id, version in (rule_versions or {}).items():
        by_id[rule_id]["version"] = int(version)
    return load_ruleset(ruleset)


def fresh_rule_version(redis_url: str, prefix: str, rule_id: str = ADAPTIVE_RULE_ID) -> int:
    """A version of ``rule_id`` no experiment counts exist for under the job's Redis ``prefix``: one above
    the highest ``"<rule id>@<version>"`` in the set ``{prefix}experiments`` (at least 1). An adaptive
    threshold's counts are keyed by rule id and version only, so a run that starts from the shipped
    version would add its visitors to every earlier run's. Raises redis.RedisError."""
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
    try:
        ids = client.smembers(RedisKeys(prefix).experiments)
    finally:
        client.close()
    versions = [int(v) for e in ids for r, _, v in [e.rpartition("@")] if r == rule_id and v.isdigit()]
    return max(versions, default=0) + 1


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
@click.option("--response", type=click.Choice(RESPONSES), default=LAYOUT_RESPONSE, show_default=True,
              help="response model of udfs/simulation.py: by the layout served, or by the adaptive threshold the "
                   "visitor was judged by, with a best value (threshold-peaked) or none (threshold-flat)")
@click.option("--adapt-every-s", type=click.FloatRange(0.5), default=None,
              help="while the visitors flow, run intentflow rules adapt --publish every this many seconds on the "
                   "job's live counts; the job hot-reloads each moved threshold")
@click.option("--adapt-min-exposures", type=click.IntRange(1), default=200, show_default=True,
              help="with --adapt-every-s: sessions each variant needs before its threshold may move")
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), default=Path("artifacts/rules-audit.jsonl"),
              show_default=True, help="with --adapt-every-s: every move is appended here as one JSON line")
@click.option("--collector-url", default="http://127.0.0.1:8088", show_default=True)
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="publish the default ruleset with this experiment to the rules topic first (hot reload)")
@click.option("--redis-url", default=None, help=f"Redis URL.  [default: {stack_settings().redis_url} (INTENTFLOW_REDIS_URL)]")
@click.option("--prefix", default="if:", show_default=True, help="the job's --redis-prefix")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write what the visitors did and the threshold moves here as JSON")
def simulate_cmd(visitors, seed, experiment_id, holdout_pct, drop_personalized_pct, rate_per_s, response,
                 adapt_every_s, adapt_min_exposures, audit_log, collector_url, publish, redis_url, prefix, plot,
                 json_out) -> None:
    """SIMULATION: seeded visitors through the collector and the live job; then the experiment report.

    With --response threshold-peaked or threshold-flat and --adapt-every-s, the adaptive threshold of
    shallow_engagement is moved on the live counts while the visitors flow (the closed loop,
    docs/experiments.md); the moves are printed with the visitors started so far."""
    from intentflow.experiments_cmd import format_report, plot_report  # noqa: PLC0415
    from intentflow.rules_cmd import _ruleset_in_force, publish_ruleset  # noqa: PLC0415
    from udfs.config import stack_settings  # noqa: PLC0415
    from udfs.experiment_stats import experiment_report  # noqa: PLC0415
    from udfs.rules import adaptive_variant_values  # noqa: PLC0415
    from udfs.simulation import best_threshold, true_lift  # noqa: PLC0415

    settings = stack_settings()
    redis_url = redis_url or settings.redis_url
    experiment_id = experiment_id or f"simulation-{seed}-{int(time.time())}"
    if not experiment_id.startswith("simulation"):
        raise click.BadParameter("must start with 'simulation' (its reports are labelled SIMULATION)",
                                 param_hint="--experiment-id")
    by_threshold = response != LAYOUT_RESPONSE
    if publish:
        # the adaptive threshold's counts are keyed by rule version: start at one no earlier run counted in
        rule_versions = ({ADAPTIVE_RULE_ID: fresh_rule_version(redis_url, prefix)}
                         if by_threshold or adapt_every_s is not None else None)
        ruleset = simulation_ruleset(experiment_id, holdout_pct, rule_versions=rule_versions)
        publish_ruleset(ruleset, settings.kafka_bootstrap, settings.topics.rules)
        click.echo(f"SIMULATION: published the default ruleset with experiment {experiment_id} "
                   f"(holdout {holdout_pct} %)", err=True)
    else:
        ruleset, _ = _ruleset_in_force(None, settings.kafka_bootstrap, settings.topics.rules)
    loop = None
    if adapt_every_s is not None:
        loop = AdaptLoop(ruleset, redis_url, prefix, settings.kafka_bootstrap, settings.topics.rules, adapt_every_s,
                         min_exposures=adapt_min_exposures, audit_log=audit_log)
        click.echo(f"SIMULATION: response model {response}; {ADAPTIVE_RULE_ID} starts at {loop.threshold():g} "
                   f"(best value of the model: {best_threshold(response) if by_threshold else 'n/a'}); adapting "
                   f"every {adapt_every_s:g} s", err=True)
    result = asyncio.run(run_visitors(collector_url, visitors=visitors, seed=seed, experiment_id=experiment_id,
                                      holdout_pct=holdout_pct, rate_per_s=rate_per_s,
                                      drop_personalized_pct=drop_personalized_pct, run_id=experiment_id,
                                      response=response, thresholds=adaptive_variant_values(ruleset),
                                      adapt_loop=loop, echo=lambda line: click.echo(line, err=True)))
    click.echo(f"SIMULATION: {result.visitors} visitors, {result.dropped} dropped, {result.undecided} undecided, "
               f"decided {dict(result.decided)}, converted {dict(result.converted)}"
               + (f"; built-in lift {true_lift() * 100:+.1f} pp" if not by_threshold else ""), err=True)
    summary = {"experiment_id": experiment_id, "response": response, "visitors": result.visitors,
               "undecided": result.undecided, "decided": dict(result.decided), "exposed": dict(result.exposed),
               "converted": dict(result.converted)}
    if by_threshold:
        judged = Counter(value for _, _, _, value in result.judged)
        summary.update({"best_threshold": best_threshold(response), "judged_by_threshold": dict(sorted(judged.items()))})
        click.echo(f"SIMULATION: visitors judged by each {ADAPTIVE_RULE_ID} threshold: {dict(sorted(judged.items()))}",
                   err=True)
    if loop is not None:
        summary.update({"adapt_every_s": adapt_every_s, "adapt_reads": loop.reads, "moves": loop.moves,
                        "final_threshold": loop.threshold()})
        click.echo(f"SIMULATION adapt: {len(loop.moves)} moves in {loop.reads} reads; {ADAPTIVE_RULE_ID} ends at "
                   f"{loop.threshold():g} (best value of the model: "
                   f"{best_threshold(response) if by_threshold else 'n/a'})", err=True)
    fields = wait_for_counts(redis_url, prefix, experiment_id, result)
    if holdout_pct > 0:
        shares = {"holdout": holdout_pct / 100, "personalized": 1 - holdout_pct / 100}
        report = experiment_report(fields, shares, "holdout")
        click.echo(format_report(experiment_id, report))
        if plot is not None:
            plot_report({experiment_id: report}, plot)
    elif plot is not None:
        click.echo("SIMULATION: no holdout, no lift to plot", err=True)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2) + "\n")
