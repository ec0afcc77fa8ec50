"""Run the personalization job against a test's own topics and Redis prefix (real Kafka, real Redis,
the real Flink mini-cluster), bounded or live."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT_S = 300


def job_env(topics) -> dict[str, str]:
    env = dict(os.environ)
    prefix = topics.raw[: -len("signals.raw")]
    env["INTENTFLOW_TOPIC_PREFIX"] = prefix
    return env


def produce(bootstrap: str, topic: str, events: Iterable[dict | bytes | None]) -> int:
    """Produce events (dicts are JSON-encoded; bytes are sent as they are; None is a record without a value,
    a tombstone) keyed by session id."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    n = 0
    for event in events:
        if event is None or isinstance(event, (bytes, bytearray)):
            producer.send(topic, key=b"unknown", value=None if event is None else bytes(event))
        else:
            producer.send(topic, key=event["session_id"].encode(), value=orjson.dumps(event))
        n += 1
    producer.flush(30)
    producer.close()
    return n


def read_records(bootstrap: str, topic: str, timeout_s: float = 30) -> list:
    """Every record of ``topic`` (kafka-python ConsumerRecords): the exact count from the end offsets,
    then read up to them.

    Raises:
        AssertionError: fewer records than the end offsets promise arrived within ``timeout_s``.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             auto_offset_reset="earliest")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        total = sum(ends.values())
        records, deadline = [], time.monotonic() + timeout_s
        while len(records) < total and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                # a topic still being written: keep exactly the records up to the end offsets read above
                records.extend(r for r in batch if r.offset < ends[tp])
        assert len(records) == total, f"{topic}: read {len(records)} of {total} records"
        return records
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str) -> list[dict]:
    """All records of a topic, JSON-decoded."""
    return [json.loads(r.value) for r in read_records(bootstrap, topic)]


def run_bounded(topics, redis_prefix: str, *args: str, events_file: str | None = None) -> subprocess.CompletedProcess:
    """Run the job over the topic's current content (or a JSONL file) and wait for it to finish.

    Raises:
        AssertionError: the job failed (its stderr tail is in the message).
    """
    cmd = [sys.executable, "-m", "jobs.personalization", "--redis-prefix", redis_prefix,
           "--group-id", f"test-{uuid.uuid4().hex[:8]}"]
    cmd += ["--events-file", events_file] if events_file else ["--bounded", "--start", "earliest"]
    res = subprocess.run([*cmd, *args], cwd=ROOT, env=job_env(topics), capture_output=True, text=True,
                         timeout=JOB_TIMEOUT_S)
    assert res.returncode == 0, f"job failed:\n{failure_summary(res.stdout + res.stderr)}"
    return res


def failure_summary(output: str, max_chars: int = 6000) -> str:
    """The lines of a failed job's output that say why: Python tracebacks and Java 'Caused by' lines."""
    keep = [line for line in output.splitlines()
            if not line.startswith(("\tat ", "        at ")) and "... " not in line[:12]]
    text = "\n".join(keep)
    return text[-max_chars:]


class LiveJob:
    """The job on an unbounded source, in its own process group; ``stop()`` kills it (and its JVM)."""

    def __init__(self, topics, redis_prefix: str, *args: str, start: str = "earliest",
                 env: dict[str, str] | None = None) -> None:
        self.log_path = ROOT / "artifacts" / f"job-{uuid.uuid4().hex[:8]}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "jobs.personalization", "--redis-prefix", redis_prefix, "--start", start,
               "--group-id", f"test-{uuid.uuid4().hex[:8]}", *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**job_env(topics), **(env or {})}, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        return failure_summary(self.log_path.read_text(errors="replace"))

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait(30)
        self._log.close()

    def __enter__(self) -> "LiveJob":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout_s: float, what: str, job: LiveJob | None = None, poll_s: float = 0.2):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` (and the job log) on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if job is not None and not job.alive():
            raise AssertionError(f"job exited while waiting for {what}:\n{job.log_tail()}")
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}" + (f"\n{job.log_tail()}" if job else ""))


def session_counts(client, redis_prefix: str) -> dict[str, dict[str, int]]:
    """``{session_id: {applied, suppressed, ignored, deduplicated, late}}`` from the job's session hashes."""
    from udfs.decide import COUNT_FIELDS

    out = {}
    for key in client.scan_iter(match=f"{redis_prefix}session:*", count=1000):
        fields = client.hgetall(key)
        out[key[len(f"{redis_prefix}session:"):]] = {f: int(fields.get(f, 0)) for f in COUNT_FIELDS}
    return out


def actions_stream(client, redis_prefix: str) -> list[dict]:
    return [fields for _, fields in client.xrange(f"{redis_prefix}actions")]


def start_warm_job(topics, redis_prefix: str, rules_path, *args: str, timeout_s: float = 180) -> LiveJob:
    """A :class:`LiveJob` (``--window-ms 20``, ruleset ``rules_path``) that has written the session of a
    warm-up ``page_view`` to Redis, so it is consuming when this returns; stopped if it does not get there.

    Raises:
        AssertionError: the warm-up session did not appear within ``timeout_s`` (with the job log).
    """
    import redis

    from udfs.config import stack_settings
    from udfs.contract import make_event

    settings = stack_settings()
    job = LiveJob(topics, redis_prefix, "--window-ms", "20", "--rules-file", str(rules_path), *args)
    warmup = f"warmup-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        produce(settings.kafka_bootstrap, topics.raw, [make_event(
            "page_view", session_id=warmup, client_ts_ms=int(time.time() * 1000), source_key=warmup)])
        wait_for(lambda: client.exists(f"{redis_prefix}session:{warmup}"), timeout_s, "the job's warm-up event", job)
    except BaseException:
        job.stop()
        raise
    finally:
        client.close()
    return job
