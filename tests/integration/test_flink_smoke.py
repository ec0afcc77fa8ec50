"""A PyFlink job reads signals.raw through the Kafka connector and writes to Redis: on the local
mini-cluster and submitted to the standalone cluster (``flink run``)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.flink]


def _produce(stack, topic: str, counts: dict[str, int]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    for session_id, n in counts.items():
        for i in range(n):
            producer.send(topic, key=session_id.encode(), value=json.dumps({"session_id": session_id, "i": i}).encode())
    producer.flush(10)
    producer.close()


def _assert_counts(client, prefix: str, counts: dict[str, int]) -> None:
    got = {s: int(client.get(f"{prefix}count:{s}") or 0) for s in counts}
    assert got == counts


def test_smoke_job_on_local_minicluster(stack, topics, redis_client):
    client, prefix = redis_client
    counts = {"s-a": 3, "s-b": 5, "s-c": 1}
    _produce(stack, topics.raw, counts)
    res = subprocess.run([sys.executable, "-m", "jobs.smoke", "--topic", topics.raw, "--redis-prefix", prefix],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_counts(client, prefix, counts)
    # Thread mode: the operator runs inside the gateway JVM (PEMJA), not in a Python worker process.
    cmdline = client.get(prefix + "worker_cmdline")
    assert "java" in cmdline.split()[0] and "GatewayServer" in cmdline, cmdline[:300]


def test_smoke_job_submitted_to_standalone_cluster(stack, topics, redis_client):
    from intentflow import stack as local_stack
    from intentflow.services import flink_cluster

    client, prefix = redis_client
    counts = {"s-x": 4, "s-y": 2}
    _produce(stack, topics.raw, counts)
    started_here = not local_stack.status()["flink"]
    flink_cluster.start_flink_cluster()
    try:
        env = flink_cluster.standalone_flink_env()
        flink = flink_cluster.flink_home() / "bin" / "flink"
        res = subprocess.run(["bash", str(flink), "run", "-py", str(ROOT / "jobs" / "smoke.py"), "-pyexec", sys.executable,
                              "--topic", topics.raw, "--redis-prefix", prefix],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and int(client.get(f"{prefix}count:s-x") or 0) < 4:
            time.sleep(0.5)
        _assert_counts(client, prefix, counts)
        # the operator ran in the TaskManager JVM of the cluster (thread mode)
        assert "TaskManagerRunner" in client.get(prefix + "worker_cmdline")
    finally:
        if started_here:
            flink_cluster.stop_flink_cluster()
