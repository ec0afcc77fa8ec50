"""The services of ``intentflow chaos`` and what they counted: a private Kafka broker and Redis
(``intentflow/services/own_broker.py``, ``own_redis.py``: own ports and folders, so the shared local
stack is never stopped), the collector and the live job as subprocesses; the job's counts per session in Redis, repeated
actions, and the poison records written to ``signals.raw`` and found again in ``signals.dlq``.

With ``cluster=True`` the job runs on the local standalone Flink cluster instead (``flink-conf/``: a
JobManager and two TaskManagers of one slot each, started here unless one runs already; ``flink run -d``),
so a TaskManager can be killed: :meth:`Services.kill_taskmanager` SIGKILLs the TaskManager JVM that runs
the job (found through the REST API and the port it listens on), and the JobManager restarts the job on
the other one from its latest checkpoint; :meth:`Services.start_taskmanager` starts a TaskManager again,
as a supervisor (systemd, Kubernetes) would."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Redis key prefix of the job in the chaos run.
REDIS_PREFIX = "chaos:"


class Services:
    """The private broker and Redis, the collector subprocess and the live job subprocess."""

    def __init__(self, workdir: Path, cluster: bool = False) -> None:
        from intentflow.services.own_broker import OwnBroker, free_port
        from intentflow.services.own_redis import OwnRedis

        self.workdir = workdir
        (workdir / "kafka").mkdir(parents=True, exist_ok=True)
        (workdir / "redis").mkdir(parents=True, exist_ok=True)
        self.broker = OwnBroker(workdir / "kafka")
        self.redis = OwnRedis(workdir / "redis", extra_args=("--appendonly", "yes", "--appendfsync", "everysec"))
        self.collector_port = free_port()
        self.collector: subprocess.Popen | None = None
        self.job: subprocess.Popen | None = None
        self.job_log = workdir / "job.log"
        self.job_name = f"intentflow-chaos-{uuid.uuid4().hex[:8]}"
        self.topic_prefix = f"chaos{uuid.uuid4().hex[:6]}."
        self.cluster = cluster
        self.cluster_started_here = False
        self.job_id: str | None = None
        self.env = {**os.environ, "INTENTFLOW_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                    "INTENTFLOW_REDIS_URL": self.redis.url(), "INTENTFLOW_TOPIC_PREFIX": self.topic_prefix,
                    "INTENTFLOW_RATE_LIMIT_PER_S": "0", "PYTHONPATH": str(ROOT)}

    @property
    def collector_url(self) -> str:
        return f"http://127.0.0.1:{self.collector_port}/v1/events"

    def start(self) -> None:
        from intentflow.services.kafka_broker import create_topics

        self.broker.start()
        self.redis.start()
        create_topics(self.broker.bootstrap, prefix=self.topic_prefix)
        self.start_collector()
        job_args = ["--redis-prefix", REDIS_PREFIX, "--start", "earliest", "--group-id", "chaos",
                    "--window-ms", "20",
                    "--checkpoint-dir", str(self.workdir / "checkpoints"), "--job-name", self.job_name]
        if self.cluster:
            self._submit_to_cluster(job_args)
            return
        log = open(self.job_log, "ab")
        self.job = subprocess.Popen([sys.executable, "-m", "jobs.personalization", *job_args],
                                    cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _submit_to_cluster(self, job_args: list[str]) -> None:
        from intentflow.services import flink_cluster

        self.cluster_started_here = not flink_cluster.flink_pids()
        flink_cluster.start_flink_cluster()
        flink = flink_cluster.flink_home() / "bin" / "flink"
        res = subprocess.run(["bash", str(flink), "run", "-d", "-py", str(ROOT / "jobs" / "personalization.py"),
                              "-pyexec", sys.executable, "-pyclientexec", sys.executable, *job_args],
                             cwd=ROOT, env={**flink_cluster.standalone_flink_env(), **self.env},
                             capture_output=True, text=True, timeout=300)
        self.job_log.write_text(res.stdout + res.stderr)
        found = re.search(r"JobID ([0-9a-f]{32})", res.stdout + res.stderr)
        if res.returncode != 0 or not found:
            raise RuntimeError(f"flink run -d failed ({res.returncode}); see {self.job_log}")
        self.job_id = found.group(1)

    def _rest(self):
        from intentflow.flink_rest import FlinkRest

        return FlinkRest()

    def kill_taskmanager(self) -> None:
        """SIGKILL the TaskManager JVM that runs the job (cluster mode), found by the RPC port in its REST
        ``path``; wait until the JobManager has noticed (the job left RUNNING) or 60 s passed.

        Raises:
            RuntimeError: not in cluster mode, or no TaskManager of the job could be found.
        """
        if not self.cluster or self.job_id is None:
            raise RuntimeError("kill_taskmanager needs the job on the standalone cluster (Services(cluster=True))")
        rest = self._rest()
        ids = _wait(lambda: rest.job_taskmanager_ids(self.job_id), 60, "the job's TaskManager")
        tm = next(t for t in rest.taskmanagers() if t["id"] in ids)
        port = int(re.search(r"@[^:/]+:(\d+)/", tm["path"]).group(1))
        pid = _listening_pid(port)
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: rest.job_state(self.job_id) != "RUNNING" or len(rest.taskmanagers()) < 2, 60,
              "the JobManager to notice the lost TaskManager")

    def start_taskmanager(self) -> None:
        """Start one more TaskManager of the standalone cluster (``bin/taskmanager.sh start``) and wait until
        the JobManager lists two again (raises TimeoutError after 120 s)."""
        from intentflow.services import flink_cluster

        script = flink_cluster.flink_home() / "bin" / "taskmanager.sh"
        subprocess.run(["bash", str(script), "start"], env=flink_cluster.standalone_flink_env(), check=True,
                       capture_output=True, timeout=60)
        rest = self._rest()
        _wait(lambda: len(rest.taskmanagers()) >= 2, 120, "two TaskManagers")

    def start_collector(self) -> None:
        log = open(self.workdir / "collector.log", "ab")
        self.collector = subprocess.Popen(
            [sys.executable, "-m", "intentflow.cli", "collector", "--port", str(self.collector_port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: _port_open(self.collector_port), 60, "the collector to listen")

    def stop_collector(self) -> None:
        if self.collector is not None and self.collector.poll() is None:
            self.collector.send_signal(signal.SIGTERM)
            self.collector.wait(30)
        self.collector = None

    def job_restarts(self) -> int:
        """Flink failovers of this job so far: lines of the mini-cluster's log (``FLINK_LOG_DIR``, shared by
        every local job, hence the unique job name) where it switched to RESTARTING."""
        from operators.layout import LOGS

        pattern = re.compile(rf"Job {re.escape(self.job_name)} \(\w+\) switched from state \w+ to RESTARTING")
        # the mini-cluster logs in flink-*-python-*.log, the standalone JobManager in flink-*-standalonesession-*
        return sum(len(pattern.findall(path.read_text(errors="replace")))
                   for pattern_glob in ("flink-*-python-*.log*", "flink-*-standalonesession-*.log*")
                   for path in (LOGS / "flink").glob(pattern_glob))

    def job_alive(self) -> bool:
        if self.cluster:
            from intentflow.flink_rest import FlinkRestError

            try:
                return self.job_id is not None and self._rest().job_state(self.job_id) not in (
                    "FAILED", "CANCELED", "FINISHED", "SUSPENDED")
            except FlinkRestError:
                return False
        return self.job is not None and self.job.poll() is None

    def stop(self) -> None:
        if self.cluster:
            from intentflow.flink_rest import FlinkRestError
            from intentflow.services import flink_cluster

            if self.job_id is not None:
                try:
                    self._rest().cancel(self.job_id)
                except FlinkRestError:
                    pass
            if self.cluster_started_here:
                flink_cluster.stop_flink_cluster()
        if self.job is not None and self.job.poll() is None:
            os.killpg(self.job.pid, signal.SIGKILL)
            self.job.wait(30)
        self.stop_collector()
        self.redis.stop()
        self.broker.stop()


def _listening_pid(port: int) -> int:
    """The pid of the process listening on TCP ``port`` (``ss -Htlnp``). Raises RuntimeError if none."""
    out = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"pid=(\d+)", out)
    if not found:
        raise RuntimeError(f"no process listens on port {port} (ss: {out.strip()!r})")
    return int(found.group(1))


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def _redis_client(services: Services):
    import redis

    return redis.Redis.from_url(services.redis.url(), decode_responses=True, socket_timeout=2,
                                socket_connect_timeout=2)


def counted_by_job(services: Services, session_ids: list[str]) -> dict[str, int]:
    """``{session_id: applied + suppressed + ignored + late}`` from the job's session hashes (0 if none)."""
    import redis

    try:
        client = _redis_client(services)
        pipe = client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.hmget(f"{REDIS_PREFIX}session:{sid}", "applied", "suppressed", "ignored", "late")
        rows = pipe.execute()
        client.close()
    except redis.RedisError:
        return {}
    return {sid: sum(int(v or 0) for v in row) for sid, row in zip(session_ids, rows)}


def duplicated_actions(services: Services, prefix: str) -> int:
    """Entries of the actions stream of sessions starting with ``prefix`` that repeat an ``event_id``."""
    client = _redis_client(services)
    ids = Counter(fields.get("event_id") for _, fields in client.xrange(f"{REDIS_PREFIX}actions")
                  if fields.get("session_id", "").startswith(prefix))
    client.close()
    return sum(n - 1 for n in ids.values() if n > 1)


def write_poison(services: Services, prefix: str) -> int:
    """Garbage written straight to ``signals.raw`` (not through the collector): not JSON, JSON that is not
    an event, an event of an unknown type, a truncated event. Returns how many records."""
    from kafka import KafkaProducer

    records = [b"\x00\xffnot json " + prefix.encode(), json.dumps({"poison": prefix}).encode(),
               json.dumps({"event_id": str(uuid.uuid4()), "type": "teleport", "session_id": prefix + "p",
                           "ts_ms": int(time.time() * 1000)}).encode(),
               b'{"event_id": "' + prefix.encode() + b'", "type": "click", "session_id": "']
    producer = KafkaProducer(bootstrap_servers=services.broker.bootstrap, acks="all")
    for value in records:
        producer.send(services.topic_prefix + "signals.raw", key=(prefix + "p").encode(), value=value)
    producer.flush(30)
    producer.close()
    return len(records)


def poison_in_dlq(services: Services, prefix: str) -> int:
    """Records of ``signals.dlq`` whose payload carries the phase's session prefix."""
    from kafka import KafkaConsumer, TopicPartition

    topic = services.topic_prefix + "signals.dlq"
    consumer = KafkaConsumer(bootstrap_servers=services.broker.bootstrap, enable_auto_commit=False, group_id=None)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    end = sum(consumer.end_offsets(parts).values())
    seen, n = 0, 0
    deadline = time.monotonic() + 30
    while seen < end and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                seen += 1
                if prefix.encode() in record.value:
                    n += 1
    consumer.close()
    return n
