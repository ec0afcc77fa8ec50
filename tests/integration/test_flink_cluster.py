"""The personalization job submitted to a standalone Flink cluster (``flink run -py``), bounded, gives
the same decisions as the decision core over the same events."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.job_support import actions_stream, failure_summary, job_env, produce, session_counts, wait_for
from udfs.decide import COUNT_FIELDS
from udfs.scenarios import article_session, shallow_session

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_764_200_000_000


def test_personalization_job_on_the_standalone_cluster(stack, topics, redis_client):
    from intentflow import stack as local_stack
    from intentflow.services import flink_cluster

    client, prefix = redis_client
    rp = prefix + "if:"
    events = article_session("cluster-a", T0) + shallow_session("cluster-b", T0 + 3)
    produce(stack.kafka_bootstrap, topics.raw, sorted(events, key=lambda e: e["ts_ms"]))

    started_here = not local_stack.status()["flink"]
    flink_cluster.start_flink_cluster()
    try:
        env = {**flink_cluster.standalone_flink_env(), "INTENTFLOW_TOPIC_PREFIX": job_env(topics)["INTENTFLOW_TOPIC_PREFIX"]}
        flink = flink_cluster.flink_home() / "bin" / "flink"
        res = subprocess.run(["bash", str(flink), "run", "-py", str(ROOT / "jobs" / "personalization.py"),
                              "-pyexec", sys.executable, "--bounded", "--start", "earliest", "--redis-prefix", rp,
                              "--group-id", "cluster-test"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, failure_summary(res.stdout + res.stderr)
        wait_for(lambda: sum(c[f] for c in session_counts(client, rp).values() for f in COUNT_FIELDS) >= len(events),
                 60, "the cluster job's session counts")
        time.sleep(0.5)
    finally:
        if started_here:
            flink_cluster.stop_flink_cluster()

    by_session = {a["session_id"]: a for a in actions_stream(client, rp)}
    assert by_session["cluster-a"]["rule_id"] == "deep_engagement_product"
    assert by_session["cluster-b"]["rule_id"] == "shallow_engagement"
    assert client.hget(f"{rp}action:cluster-a", "action") == "show_video_demo_and_price_comparison"
