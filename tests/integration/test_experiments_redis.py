"""Experiments on the real Redis: holdout sessions get the default layout from the decision API, and the
experiment counts written by the job's writer are exact when the same facts are written again."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from collector.decision import DEFAULT_ACTION, DecisionSettings, register
from connectors.redis_store import RedisActionWriter
from udfs.config import JobConfig
from udfs.decide import Decider, decide_all
from udfs.experiments import HOLDOUT, PERSONALIZED, arm_for, fold_facts
from udfs.rules import DEFAULT_RULES_PATH, RuleEngine
from udfs.scenarios import article_session
from udfs.scoring import ReloadingScorer

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000
EXP = "exp-redis"


def _decider(holdout_pct: float) -> Decider:
    ruleset = json.loads(DEFAULT_RULES_PATH.read_text())
    ruleset["experiment"] = {"id": EXP, "holdout_pct": holdout_pct}
    return Decider(JobConfig(), ReloadingScorer(), RuleEngine(ruleset), clock_ms=lambda: T0)


def _writer(stack, prefix: str) -> RedisActionWriter:
    cfg = JobConfig()
    return RedisActionWriter(stack.redis_url, prefix, cfg.action_ttl_s, cfg.session_ttl_s, 1000)


def _write_facts(stack, prefix: str, facts: list) -> None:
    writer = _writer(stack, prefix)
    try:
        writer.write([], {}, {}, {}, facts=facts)
    finally:
        writer.close()


def _variant_facts(experiment_id: str) -> list:
    """Counts of an adaptive threshold whose ``lower`` variant converts at 15 % against control's 5 %."""
    facts = []
    for variant, sessions, rate in (("control", 4000, 0.05), ("lower", 600, 0.15), ("higher", 600, 0.05)):
        for i in range(sessions):
            facts.append((experiment_id, variant, "sessions", T0, f"{variant}-{i}"))
            if i < sessions * rate:
                facts.append((experiment_id, variant, "sessions_converted", T0, f"{variant}-{i}"))
    return facts


async def test_holdout_session_gets_the_default_layout_and_personalized_gets_its_action(stack, redis_client):
    _redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    sessions = {arm: next(f"{arm[:1]}{i}" for i in range(1000) if arm_for(EXP, f"anon-{arm[:1]}{i}", 50) == arm)
                for arm in (HOLDOUT, PERSONALIZED)}
    events = []
    for n, sid in enumerate(sessions.values()):
        for e in article_session(sid, T0 + n):
            events.append(dict(e, anonymous_id=f"anon-{sid}"))
    actions, _, _ = decide_all(_decider(50), events, 100)
    assert {a["arm"] for a in actions} == {HOLDOUT, PERSONALIZED}
    writer = _writer(stack, prefix)
    try:
        writer.write(actions, {}, {}, {})
    finally:
        writer.close()
    app = web.Application()
    # a generous Redis deadline: this test is about what is answered, not how fast (a loaded machine)
    register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix, timeout_s=2.0))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        held = await (await client.get("/v1/decision", params={"session_id": sessions[HOLDOUT]})).json()
        served = await (await client.get("/v1/decision", params={"session_id": sessions[PERSONALIZED]})).json()
    finally:
        await client.close()
    assert (held["action"], held["source"], held["params"]) == (DEFAULT_ACTION, "holdout", {})
    assert held["experiment_id"] == EXP and held["arm"] == HOLDOUT and held["event_ts_ms"] >= T0
    assert "rule_id" not in held and "intent_score" not in held  # nothing of the shadow action leaks
    assert served["source"] == "redis" and served["action"] == "show_video_demo_and_price_comparison"
    assert served["arm"] == PERSONALIZED and served["propensity"] == pytest.approx(0.5)
    # the shadow action is logged in the actions stream like any other
    logged = [f for _, f in _redis.xrange(prefix + "actions")]
    assert {f["arm"] for f in logged} == {HOLDOUT, PERSONALIZED}


def test_experiment_counts_are_exact_when_facts_are_written_again(stack, redis_client):
    redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    events = []
    for i in range(40):
        session = article_session(f"s{i}", T0 + 1000 * i)
        events += [dict(e, anonymous_id=f"anon-s{i}") for e in session]
    decider = _decider(50)
    store: dict = {}
    result = decider.decide(events, store.get)
    assert result.facts
    writer = _writer(stack, prefix)
    try:
        writer.write([], {}, {}, {}, facts=result.facts)
        writer.write([], {}, {}, {}, facts=result.facts[: len(result.facts) // 2])  # a replay after a restore
        # the session summaries written between (HSET of the counts) keep the marker fields of the hash
        writer.write([], {f"s{i}": {"applied": 1} for i in range(40)}, {}, {}, facts=result.facts)
    finally:
        writer.close()
    stored = {field: int(n) for field, n in redis.hgetall(f"{prefix}exp:{EXP}").items()}
    assert stored == fold_facts(result.facts)[EXP]
    assert sum(n for field, n in stored.items() if "|sessions|" in field) == 40
    assert redis.smembers(f"{prefix}experiments") == {EXP, "shallow_engagement@1"}
    # the markers are fields of the session hash and expire with it: no key of their own (issue 19)
    assert redis.hget(f"{prefix}session:s0", f"fact:{EXP}:sessions") == "1"
    assert 0 < redis.ttl(f"{prefix}session:s0") <= JobConfig().session_ttl_s
    assert not list(redis.scan_iter(match=f"{prefix}expfact:*"))


def test_report_command_reads_the_counts_and_flags_a_skewed_split(stack, redis_client, tmp_path):
    """``intentflow experiments report`` on counts the job's writer put in Redis: a 50/50 experiment whose
    holdout got 60 % of the sessions is flagged as SRM; the simulation label and the plot are there."""
    from click.testing import CliRunner

    from intentflow.experiments_cmd import report_cmd

    redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    experiment_id = "simulation-report-test"
    facts = []
    for i in range(2000):
        arm = HOLDOUT if i % 10 < 6 else PERSONALIZED  # 60/40 where 50/50 is configured
        bucket = T0 + 60_000 * (i // 400)
        facts.append((experiment_id, arm, "sessions", bucket, f"s{i}"))
        facts.append((experiment_id, arm, "exposed", bucket, f"s{i}"))
        if i % (20 if arm == HOLDOUT else 8) == 0:
            facts.append((experiment_id, arm, "converted", bucket, f"s{i}"))
    _write_facts(stack, prefix, facts)
    plot = tmp_path / "lift.png"
    result = CliRunner().invoke(report_cmd, ["--redis-url", stack.redis_url, "--prefix", prefix, "--experiment",
                                             experiment_id, "--holdout-pct", "50", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"SIMULATION — experiment {experiment_id}")
    assert "SAMPLE RATIO MISMATCH" in result.output
    assert plot.stat().st_size > 10_000
    as_json = CliRunner().invoke(report_cmd, ["--redis-url", stack.redis_url, "--prefix", prefix, "--experiment",
                                              experiment_id, "--holdout-pct", "50", "--json"])
    report = json.loads(as_json.output)[experiment_id]
    assert report["simulation"] and report["srm"]["flagged"]
    n = Counter((arm, metric) for _, arm, metric, _, _ in facts)
    assert report["arms"][HOLDOUT]["exposed"] == n[(HOLDOUT, "exposed")] == 1200
    assert report["arms"][HOLDOUT]["converted"] == n[(HOLDOUT, "converted")] > 0
    fixed = report["comparisons"][PERSONALIZED]["fixed_horizon"]
    assert fixed["abs_lift"] == pytest.approx(n[(PERSONALIZED, "converted")] / 800 - n[(HOLDOUT, "converted")] / 1200)
    unknown = CliRunner().invoke(report_cmd, ["--redis-url", stack.redis_url, "--prefix", prefix, "--experiment",
                                              experiment_id])
    assert unknown.exit_code != 0 and "--holdout-pct" in unknown.output


def test_rules_adapt_moves_a_threshold_on_evidence_publishes_it_and_audits(stack, topics, redis_client, tmp_path):
    """``intentflow rules adapt`` reads the variant counts from Redis, moves the shallow-engagement
    threshold to the variant that beats control by the mSPRT, bumps the versions, publishes the ruleset
    to the rules topic and appends the reason to the audit log; ``--dry-run`` changes nothing."""
    from click.testing import CliRunner

    from intentflow.rules_cmd import adapt_cmd, latest_ruleset_record
    from udfs.rules import load_ruleset

    _redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    experiment_id = "shallow_engagement@1"
    facts = _variant_facts(experiment_id)
    _write_facts(stack, prefix, facts)
    audit = tmp_path / "audit.jsonl"
    common = ["--rules-file", str(DEFAULT_RULES_PATH), "--prefix", prefix, "--redis-url", stack.redis_url,
              "--topic", topics.rules, "--bootstrap", stack.kafka_bootstrap, "--audit-log", str(audit)]
    dry = CliRunner().invoke(adapt_cmd, [*common, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "shallow_engagement: 25.0 -> 20.0 (variant lower)" in dry.output and not audit.exists()
    assert latest_ruleset_record(stack.kafka_bootstrap, topics.rules, timeout_s=5) is None
    run = CliRunner().invoke(adapt_cmd, [*common, "--publish"])
    assert run.exit_code == 0, run.output
    published = load_ruleset(latest_ruleset_record(stack.kafka_bootstrap, topics.rules)[0])
    rule = next(r for r in published["rules"] if r["id"] == "shallow_engagement")
    assert rule["version"] == 2 and rule["when"]["all"][1]["value"] == 20
    assert published["rules_version"] != json.loads(DEFAULT_RULES_PATH.read_text())["rules_version"]
    (line,) = audit.read_text().splitlines()
    entry = json.loads(line)
    assert entry["published"] and entry["moves"][0]["variant"] == "lower" and "mSPRT" in entry["moves"][0]["reason"]


def test_rules_adapt_every_s_moves_a_rule_at_most_once_per_test(stack, topics, redis_client, tmp_path):
    """``--every-s`` runs the adaptation again and again (``--max-runs`` ends it for the test): the first run
    moves the threshold and bumps the rule's version; the moved rule's experiment is then a new one without
    counts, so the second run moves nothing (one move per rule per test) and the audit log has one line."""
    from click.testing import CliRunner

    from intentflow.rules_cmd import adapt_cmd

    _redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    facts = _variant_facts("shallow_engagement@1")
    _write_facts(stack, prefix, facts)
    audit = tmp_path / "audit.jsonl"
    run = CliRunner().invoke(adapt_cmd, ["--rules-file", str(DEFAULT_RULES_PATH), "--prefix", prefix, "--redis-url",
                                         stack.redis_url, "--topic", topics.rules, "--bootstrap", stack.kafka_bootstrap,
                                         "--audit-log", str(audit), "--every-s", "1", "--max-runs", "2"])
    assert run.exit_code == 0, run.output
    assert run.output.count("shallow_engagement: 25.0 -> 20.0 (variant lower)") == 1
    assert "no threshold moves" in run.output  # the second run
    (line,) = audit.read_text().splitlines()
    assert json.loads(line)["moves"][0]["rule_id"] == "shallow_engagement"


async def test_experiments_endpoint_reports_from_the_counts(stack, redis_client):
    redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    experiment_id = "simulation-endpoint-test"
    facts = []
    for i in range(600):
        arm = HOLDOUT if i % 2 else PERSONALIZED
        for metric in ("sessions", "exposed") + (("converted",) if i % (10 if arm == HOLDOUT else 5) < 1 else ()):
            facts.append((experiment_id, arm, metric, T0 + 60_000 * (i // 200), f"s{i}"))
    _write_facts(stack, prefix, facts)
    app = web.Application()
    register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        ok = await client.get("/v1/experiments", params={"holdout_pct": "50"})
        body = await ok.json()
        unknown = await (await client.get("/v1/experiments")).json()
        bad = await client.get("/v1/experiments", params={"holdout_pct": "abc"})
    finally:
        await client.close()
    assert ok.status == 200 and ok.headers["Cache-Control"] == "no-store"
    entry = body["experiments"][experiment_id]
    assert entry["simulation"] is True
    report = entry["report"]
    n = Counter((arm, metric) for _, arm, metric, _, _ in facts)
    assert report["arms"][PERSONALIZED]["converted"] == n[(PERSONALIZED, "converted")]
    assert report["comparisons"][PERSONALIZED]["fixed_horizon"]["abs_lift"] == pytest.approx(
        n[(PERSONALIZED, "converted")] / 300 - n[(HOLDOUT, "converted")] / 300)
    assert not report["srm"]["flagged"] and len(report["comparisons"][PERSONALIZED]["series"]) == 3
    # without the split the counts are listed, the report is not made up
    assert unknown["experiments"][experiment_id]["report"] is None and "holdout" in unknown["experiments"][experiment_id]["error"]
    assert bad.status == 400
