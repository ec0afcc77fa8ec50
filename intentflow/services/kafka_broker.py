"""The local stack's Kafka: a single-node KRaft broker (broker and controller in one JVM) on
127.0.0.1:9092, and the intentflow topics (:func:`create_topics`, also used against any cluster)."""
from __future__ import annotations

import base64
import shutil
import subprocess
import uuid

from intentflow.services.process import Service, StackError, check_ports_free, read_pid, say, wait_healthy
from operators.layout import DATA, LIB, LOGS, ROOT, RUN

#: The broker's client port (plaintext, loopback; stack/kafka/server.properties).
KAFKA_PORT = 9092
#: The KRaft controller's port.
KAFKA_CONTROLLER_PORT = 9093
KAFKA = Service("kafka", (KAFKA_PORT, KAFKA_CONTROLLER_PORT), LOGS / "kafka.log")


def kafka_cluster_id() -> str:
    """A new KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).

    An id that starts with ``-`` is drawn again: ``kafka-storage format -t <id>`` would read it as an
    option ("argument --cluster-id/-t: expected one argument"), which is why Kafka's own
    ``org.apache.kafka.common.Uuid.randomUuid()`` skips such ids too (1 draw in 64 did, and failed CI).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_cmd(*args: str) -> list[str]:
    """The java command line running a Kafka main class with the stack's jars and log config (heap 256-768 MiB).

    Raises:
        StackError: no ``java`` on the PATH.
    """
    java = shutil.which("java")
    if java is None:
        raise StackError("Java 17 or newer is needed for Kafka and Flink (apt-get install openjdk-17-jre-headless)")
    return [java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={ROOT / 'stack' / 'kafka' / 'log4j2.yaml'}",
            "-cp", str(LIB / "kafka" / "*"), *args]


def _kafka_healthy() -> bool:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{KAFKA_PORT}", request_timeout_ms=3000)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def start_kafka() -> None:
    """Start the single-node KRaft broker (formatting its storage on first start)."""
    if read_pid(KAFKA) is not None:
        wait_healthy(KAFKA, _kafka_healthy)
        say(f"kafka already running (pid {read_pid(KAFKA)}) on 127.0.0.1:{KAFKA_PORT}")
        return
    check_ports_free(KAFKA)
    log_dir = DATA / "kafka"
    config = RUN / "server.properties"
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    config.write_text((ROOT / "stack" / "kafka" / "server.properties").read_text() + f"\nlog.dirs={log_dir}\n")
    if not (log_dir / "meta.properties").exists():
        log_dir.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(kafka_cmd("kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(), "-c", str(config)),
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise StackError(f"formatting Kafka storage in {log_dir} failed:\n{res.stdout}\n{res.stderr}")
    with open(KAFKA.log, "ab") as log:
        proc = subprocess.Popen(kafka_cmd("kafka.Kafka", str(config)), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    KAFKA.pid_file.write_text(str(proc.pid))
    wait_healthy(KAFKA, _kafka_healthy)
    say(f"kafka up (pid {proc.pid}) on 127.0.0.1:{KAFKA_PORT}, log {KAFKA.log}")


def create_topics(bootstrap: str | None = None, prefix: str = "") -> list[str]:
    """Create the intentflow topics if missing (idempotent); return the names created now."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from udfs.config import Topics, kafka_client_kwargs, stack_settings

    bootstrap = bootstrap or stack_settings().kafka_bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **kafka_client_kwargs())
    try:
        existing = set(admin.list_topics())
        wanted = Topics.with_prefix(prefix).all()
        # LogAppendTime: the broker stamps each record when it appends it, so the Kafka timestamp is
        # the append time the latency benchmark measures from, and records emitted by Flink timers
        # (whose timestamp is the timer's) are accepted.
        new = [NewTopic(name, parts, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})
               for name, parts in wanted.items() if name not in existing]
        created = []
        for topic in new:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
