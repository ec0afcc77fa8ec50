"""SIMULATION, small scale, on the real stack: seeded visitors through the collector, the live job (Flink
mini-cluster) and the decision API (intentflow/simulate.py). The job's counts equal what the visitors
did; the report finds the lift built into the simulator's response model inside its interval; a
skewed assignment (a simulated bug losing personalized visitors) is flagged as a sample ratio mismatch
after the experiment changed by hot reload of the ruleset."""
from __future__ import annotations

import asyncio
import json

import pytest

from intentflow.rules_cmd import publish_ruleset
from intentflow.simulate import run_visitors, simulation_ruleset, wait_for_counts
from tests.job_support import start_warm_job, wait_for
from tests.live_collector import LiveCollector
from udfs.experiment_stats import experiment_report
from udfs.experiments import HOLDOUT, PERSONALIZED
from udfs.simulation import true_lift

pytestmark = [pytest.mark.integration, pytest.mark.flink]

#: Fixed ids and seed: the arms (a hash of experiment id and anonymous id) and the visitors' draws are the
#: same in every run, so the figures below do not change from run to run.
LIFT_EXPERIMENT = "simulation-lift-test"
SRM_EXPERIMENT = "simulation-srm-test"
SEED = 11
VISITORS = 800
SHARES = {HOLDOUT: 0.5, PERSONALIZED: 0.5}


def test_simulated_visitors_show_the_built_in_lift_and_a_skewed_split_is_flagged(stack, topics, redis_client,
                                                                                    tmp_path, capsys):
    from collector import app as collector_app
    from collector.settings import collector_settings
    from collector.decision import DecisionSettings, register

    _redis, key_prefix = redis_client
    prefix = key_prefix + "if:"
    rules_path = tmp_path / "rules.json"
    rules_path.write_text(json.dumps(simulation_ruleset(LIFT_EXPERIMENT, 50)))
    settings = collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw,
                                                topic_dlq=topics.dlq, mount_decision=False,
                                                rate_limit_per_s=0)  # every simulated visitor has one address
    app = collector_app.create_app(settings)
    register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix))
    with start_warm_job(topics, prefix, rules_path) as job, LiveCollector(app) as live:
        # 1) the lift: 50/50 holdout, the response model's +6 pp
        result = asyncio.run(run_visitors(live.url, visitors=VISITORS, seed=SEED, experiment_id=LIFT_EXPERIMENT,
                                          holdout_pct=50, run_id=LIFT_EXPERIMENT, rate_per_s=40))
        assert result.undecided == 0 and result.dropped == 0, result
        fields = wait_for_counts(stack.redis_url, prefix, LIFT_EXPERIMENT, result)
        report = experiment_report(fields, SHARES, HOLDOUT)
        arms = report["arms"]
        # exact: the job counted every visitor once in its arm, every exposure and conversion once
        assert arms[HOLDOUT]["sessions"] + arms[PERSONALIZED]["sessions"] == VISITORS + 1  # + the warm-up session
        for arm in (HOLDOUT, PERSONALIZED):
            assert arms[arm]["exposed"] == arms[arm]["triggered"] == result.exposed[arm]
            assert arms[arm]["converted"] == arms[arm]["carted"] == result.converted[arm]
        assert set(result.layouts) - {"default"} and result.layouts["default"] == result.decided[HOLDOUT]
        fixed = report["comparisons"][PERSONALIZED]["fixed_horizon"]
        seq = report["comparisons"][PERSONALIZED]["sequential"]
        lo, hi = fixed["abs_ci"]
        with capsys.disabled():
            print(f"\nSIMULATION {VISITORS} visitors: exposed {dict(result.exposed)}, converted "
                  f"{dict(result.converted)}; lift {fixed['abs_lift'] * 100:+.2f} pp, 95 % CI {lo * 100:+.2f} .."
                  f" {hi * 100:+.2f} pp (built in: {true_lift() * 100:+.1f} pp); mSPRT p {seq['p_value']:.4f},"
                  f" CS {seq['cs_low'] * 100:+.2f} .. {seq['cs_high'] * 100:+.2f} pp; SRM p {report['srm']['p_value']:.3f}")
        assert lo <= true_lift() <= hi
        assert seq["cs_low"] <= true_lift() <= seq["cs_high"]
        assert fixed["abs_lift"] > 0
        assert not report["srm"]["flagged"]

        # 2) a new experiment by hot reload, and a bug that loses 46 % of the personalized visitors
        #    (about 65/35 where 50/50 is configured)
        publish_ruleset(simulation_ruleset(SRM_EXPERIMENT, 50, rules_version="2026-12-02.2"),
                        stack.kafka_bootstrap, topics.rules)
        probe_index = VISITORS
        probes = []

        def switched() -> bool:
            nonlocal probe_index
            probe = asyncio.run(run_visitors(live.url, visitors=1, seed=SEED, experiment_id=SRM_EXPERIMENT,
                                             holdout_pct=50, run_id=SRM_EXPERIMENT, first_index=probe_index,
                                             timeout_s=5))
            probe_index += 1
            probes.append(probe)
            return bool(probe.decided)

        wait_for(switched, 120, "the job to take the new ruleset from the rules topic", job, poll_s=0.5)
        skewed = asyncio.run(run_visitors(live.url, visitors=VISITORS // 2, seed=SEED, experiment_id=SRM_EXPERIMENT,
                                          holdout_pct=50, run_id=SRM_EXPERIMENT, first_index=probe_index,
                                          rate_per_s=40, drop_personalized_pct=46))
        assert skewed.dropped > 0
        for probe in probes:  # the probe that saw the new experiment counts in it too
            skewed.exposed.update(probe.exposed)
            skewed.converted.update(probe.converted)
        wait_for_counts(stack.redis_url, prefix, SRM_EXPERIMENT, skewed)
        srm_fields = {k: int(v) for k, v in _redis.hgetall(f"{prefix}exp:{SRM_EXPERIMENT}").items()}
        srm = experiment_report(srm_fields, SHARES, HOLDOUT)["srm"]
        with capsys.disabled():
            print(f"SIMULATION skewed split: sessions {srm['observed']}, chi2 {srm['chi2']:.1f}, p {srm['p_value']:.2g}")
        assert srm["flagged"]
        # the first experiment's exposures and conversions did not move (a probe decided under the old
        # ruleset adds to its sessions, never to its exposures)
        def exposures_and_conversions(counts):
            return {k: int(v) for k, v in counts.items() if "|exposed|" in k or "|converted|" in k}

        assert exposures_and_conversions(_redis.hgetall(f"{prefix}exp:{LIFT_EXPERIMENT}")) == \
            exposures_and_conversions(fields)
