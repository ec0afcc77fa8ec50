"""SIMULATION, the closed loop of an adaptive threshold on the real stack: seeded visitors through the
collector, the live job (Flink mini-cluster) and the decision API convert with a probability that depends
on the ``shallow_engagement`` threshold their action says they were judged by
(``udfs.simulation.THRESHOLD_RESPONSES``), while ``intentflow rules adapt --publish`` runs every few
seconds on the job's live counts in Redis (``intentflow.simulate.AdaptLoop``) and the job hot-reloads every
moved threshold from the rules topic.

* peaked response (best value 35, the ruleset starts at 25): the threshold must reach 35 by 25 -> 30 ->
  35, stay there until the last visitor, the later visitors must be judged by the moved thresholds, and
  the rules topic and the audit log must hold the moves;
* flat response (no best value): the threshold must not move.
"""
from __future__ import annotations

import asyncio
import json

import pytest

from connectors.rules_topic import latest_ruleset_record
from intentflow.rules_cmd import publish_ruleset
from intentflow.simulate import AdaptLoop, fresh_rule_version, run_visitors, simulation_ruleset
from tests.job_support import start_warm_job, wait_for
from tests.live_collector import LiveCollector
from udfs.rules import adaptive_variant_values
from udfs.simulation import ADAPTIVE_RULE_ID, best_threshold

pytestmark = [pytest.mark.integration, pytest.mark.flink]

PEAKED_EXPERIMENT = "simulation-adapt-peaked-test"
FLAT_EXPERIMENT = "simulation-adapt-flat-test"
SEED = 11
#: Visitors of the peaked run. A pure-code run of the same model (tests/unit/test_adapt_on_evidence.py::
#: test_the_simulators_threshold_models, reads every 200 sessions) reaches 35 after at most 5,600 sessions
#: in 200 seeds with --adapt-min-exposures 100; the live loop reads a little later (hot reload, the
#: purchase arriving after the session), hence the margin.
PEAKED_VISITORS = 6_500
#: Visitors of the flat run: more than the median the peaked run needs to reach its best value.
FLAT_VISITORS = 4_000
RATE_PER_S = 60
EVERY_S = 4.0
MIN_EXPOSURES = 100


def _wait_for_experiment(live_url: str, experiment_id: str, response: str, thresholds, first_index: int, job) -> int:
    """Send one visitor at a time until the job decides under ``experiment_id`` (the ruleset published
    last reached it); return the index of the next visitor."""
    index = first_index

    def switched() -> bool:
        nonlocal index
        probe = asyncio.run(run_visitors(live_url, visitors=1, seed=SEED, experiment_id=experiment_id, holdout_pct=0,
                                         run_id=experiment_id, first_index=index, timeout_s=5, response=response,
                                         thresholds=thresholds))
        index += 1
        return bool(probe.decided)

    wait_for(switched, 120, f"the job to take the ruleset of {experiment_id}", job, poll_s=0.5)
    return index


def test_an_adaptive_threshold_moves_to_the_simulators_best_value_and_stays_put_without_one(
        stack, topics, redis_client, tmp_path, capsys):
    from collector import app as collector_app
    from collector.decision import DecisionSettings, register

    _redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    version = fresh_rule_version(stack.redis_url, prefix)
    assert version == 1  # a fresh prefix has no counts yet
    peaked = simulation_ruleset(PEAKED_EXPERIMENT, 0, rule_versions={ADAPTIVE_RULE_ID: version})
    rules_path = tmp_path / "rules.json"
    rules_path.write_text(json.dumps(peaked))
    audit = tmp_path / "audit.jsonl"
    settings = collector_app.collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw,
                                                topic_dlq=topics.dlq, mount_decision=False,
                                                rate_limit_per_s=0)  # every simulated visitor has one address
    app = collector_app.create_app(settings)
    register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix))
    with start_warm_job(topics, prefix, rules_path) as job, LiveCollector(app) as live:
        # 1) peaked: 25 -> 30 -> 35 on the live counts, and then no further move
        loop = AdaptLoop(peaked, stack.redis_url, prefix, stack.kafka_bootstrap, topics.rules, EVERY_S,
                         min_exposures=MIN_EXPOSURES, audit_log=audit)
        assert loop.threshold() == 25.0
        lines = []
        result = asyncio.run(run_visitors(live.url, visitors=PEAKED_VISITORS, seed=SEED, experiment_id=PEAKED_EXPERIMENT,
                                          holdout_pct=0, run_id=PEAKED_EXPERIMENT, rate_per_s=RATE_PER_S,
                                          response="threshold-peaked", adapt_loop=loop, echo=lines.append))
        path = [m["to"] for m in loop.moves]
        with capsys.disabled():
            print(f"\nSIMULATION adapt, peaked response (best {best_threshold('threshold-peaked'):g}): "
                  f"{PEAKED_VISITORS} visitors at {RATE_PER_S}/s, {loop.reads} reads every {EVERY_S:g} s, "
                  f"undecided {result.undecided}; moves:")
            for line in lines:
                print("  " + line)
        assert path == [30.0, 35.0], loop.moves
        assert loop.threshold() == best_threshold("threshold-peaked") == 35.0
        assert result.undecided == 0, result
        # the simulator judged the later visitors by what the job decided under the moved thresholds:
        # the visitors decided under the last rule version were judged by 30, 35 or 40 only, and there are
        # many of them (the move happened well before the end)
        final_experiment = f"{ADAPTIVE_RULE_ID}@{version + 2}"
        assert adaptive_variant_values(loop.ruleset)[final_experiment] == {"control": 35.0, "lower": 30.0,
                                                                           "higher": 40.0}
        after = [(i, v) for i, e, _, v in result.judged if e == final_experiment]
        assert len(after) >= 500 and {v for _, v in after} == {30.0, 35.0, 40.0}
        # the published ruleset is the job's, and every move is audited with its reason
        value, _, _ = latest_ruleset_record(stack.kafka_bootstrap, topics.rules)
        assert adaptive_variant_values(json.loads(value)) == adaptive_variant_values(loop.ruleset)
        audited = [json.loads(line) for line in audit.read_text().splitlines()]
        assert [m["new_value"] for a in audited for m in a["moves"]] == path
        assert all("mSPRT" in m["reason"] for a in audited for m in a["moves"])

        # 2) flat: a new experiment and rule version by hot reload; no value is better, nothing moves
        flat = simulation_ruleset(FLAT_EXPERIMENT, 0, rules_version="2026-12-03.90",
                                  rule_versions={ADAPTIVE_RULE_ID: fresh_rule_version(stack.redis_url, prefix)})
        publish_ruleset(flat, stack.kafka_bootstrap, topics.rules)
        first = _wait_for_experiment(live.url, FLAT_EXPERIMENT, "threshold-flat", adaptive_variant_values(flat),
                                     PEAKED_VISITORS, job)
        loop = AdaptLoop(flat, stack.redis_url, prefix, stack.kafka_bootstrap, topics.rules, EVERY_S,
                         min_exposures=MIN_EXPOSURES, audit_log=audit)
        result = asyncio.run(run_visitors(live.url, visitors=FLAT_VISITORS, seed=SEED, experiment_id=FLAT_EXPERIMENT,
                                          holdout_pct=0, run_id=FLAT_EXPERIMENT, first_index=first,
                                          rate_per_s=RATE_PER_S, response="threshold-flat", adapt_loop=loop))
        judged = {v for _, _, _, v in result.judged}
        with capsys.disabled():
            print(f"SIMULATION adapt, flat response: {FLAT_VISITORS} visitors, {loop.reads} reads, moves "
                  f"{loop.moves}, sessions per variant at the last read {loop.last_sessions}, judged by "
                  f"{sorted(judged)}, undecided {result.undecided}")
        # the adaptation read the flat run's counts often, and late enough to see most of its visitors
        assert loop.reads >= 10 and sum(loop.last_sessions.values()) >= FLAT_VISITORS * 0.8
        assert loop.moves == [] and loop.threshold() == 25.0
        assert judged == {20.0, 25.0, 30.0}
        assert len(audit.read_text().splitlines()) == len(audited)
