"""The local stack: a real Kafka broker (KRaft), a real Redis server and, on demand, a standalone
Flink cluster, started from this checkout and stopped by pid.

Where everything lives under ``.stack/`` (ignored by git): ``operators.layout``.

``up`` is idempotent: a service whose pid file names a live process that answers is left alone.
``down`` stops only processes whose pid files this module wrote.
"""
from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import click

from operators.layout import (  # noqa: F401 - the stack's paths are the job's
    DATA, FLINK_CONF_DIR, KAFKA_CONNECTOR_JAR, LIB, LOGS, OPERATORS_JAR, OPERATORS_SRC, ROOT, RUN, STACK,
    flink_process_env, python_site_packages)

KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
REDIS_PORT = 6379
FLINK_REST_PORT = 8081
FLINK_RPC_PORT = 6123

#: Seconds to wait for each service to answer before giving up (first start formats storage and
#: loads ~60 MB of jars; 60 s is several times what it took on our 2-core machine).
HEALTH_TIMEOUT_S = 60.0


class StackError(click.ClickException):
    """A service could not be set up or started; the message names it and its log."""


@dataclass(frozen=True)
class Service:
    name: str
    ports: tuple[int, ...]
    log: Path

    @property
    def pid_file(self) -> Path:
        return RUN / f"{self.name}.pid"


KAFKA = Service("kafka", (KAFKA_PORT, KAFKA_CONTROLLER_PORT), LOGS / "kafka.log")
REDIS = Service("redis", (REDIS_PORT,), LOGS / "redis.log")


def _say(msg: str) -> None:
    click.echo(f"[stack] {msg}", err=True)


def _read_pid(service: Service) -> int | None:
    try:
        pid = int(service.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        return sock.connect_ex((host, port)) == 0


def _check_ports_free(service: Service) -> None:
    busy = [p for p in service.ports if port_open(p)]
    if busy:
        hint = {"kafka": "INTENTFLOW_KAFKA_BOOTSTRAP", "redis": "INTENTFLOW_REDIS_URL",
                "flink": "INTENTFLOW_FLINK_REST"}.get(service.name, "its INTENTFLOW_* setting")
        raise StackError(
            f"{service.name}: port {', '.join(map(str, busy))} is already in use by a process this stack "
            f"did not start (see `ss -ltnp | grep {busy[0]}`). Stop it, or point intentflow at the running "
            f"service with {hint}."
        )


def _wait(service: Service, healthy, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        pid = _read_pid(service)
        if pid is None and service.pid_file.exists():
            break  # the process died
        try:
            if healthy():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last_error = exc
        time.sleep(0.3)
    tail = ""
    if service.log.exists():
        tail = "\n".join(service.log.read_text(errors="replace").splitlines()[-15:])
    raise StackError(
        f"{service.name} did not come up within {timeout_s:.0f} s (last error: {last_error}). "
        f"Log: {service.log}\n{tail}"
    )


# --------------------------------------------------------------------------- jars


def fetch_jars(quiet: bool = True) -> None:
    """Resolve the pinned Kafka broker and Flink connector jars from Maven Central into .stack/lib.

    Raises:
        StackError: Maven is missing or could not resolve the artifacts.
    """
    wanted = {"kafka": LIB / "kafka" / "kafka_2.13-4.1.1.jar", "flink": KAFKA_CONNECTOR_JAR}
    missing = [profile for profile, jar in wanted.items() if not jar.exists()]
    if not missing:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch the Kafka and Flink connector jars: apt-get install maven")
    for profile in missing:
        out = LIB / profile
        out.mkdir(parents=True, exist_ok=True)
        _say(f"fetching {profile} jars from Maven Central into {out}")
        cmd = [mvn, "-B", "-f", str(ROOT / "stack" / "pom.xml"), f"-P{profile}",
               "dependency:copy-dependencies", f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
        if quiet:
            cmd.insert(1, "-q")
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not wanted[profile].exists():
            raise StackError(f"mvn could not fetch the {profile} jars:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def build_operators_jar(quiet: bool = True) -> Path:
    """Build the job's Java operators (operators/java) into :data:`OPERATORS_JAR` when a source is newer.

    Their tests run in ``make test`` (``mvn test``), not here.

    Raises:
        StackError: Maven is missing or the build failed (its output is in the message).
    """
    sources = [OPERATORS_SRC / "pom.xml", *(OPERATORS_SRC / "src" / "main").rglob("*.java")]
    if OPERATORS_JAR.exists() and OPERATORS_JAR.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return OPERATORS_JAR
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to build operators/java: apt-get install maven")
    _say(f"building the job's Java operators into {OPERATORS_JAR}")
    cmd = [mvn, "-B", "-f", str(OPERATORS_SRC / "pom.xml"), "-DskipTests", "package"]
    if quiet:
        cmd.insert(1, "-q")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not OPERATORS_JAR.exists():
        raise StackError(f"mvn could not build operators/java:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return OPERATORS_JAR


# --------------------------------------------------------------------------- kafka


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


def _kafka_cmd(*args: str) -> list[str]:
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
    if _read_pid(KAFKA) is not None:
        _wait(KAFKA, _kafka_healthy)
        _say(f"kafka already running (pid {_read_pid(KAFKA)}) on 127.0.0.1:{KAFKA_PORT}")
        return
    _check_ports_free(KAFKA)
    log_dir = DATA / "kafka"
    config = RUN / "server.properties"
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    config.write_text((ROOT / "stack" / "kafka" / "server.properties").read_text() + f"\nlog.dirs={log_dir}\n")
    if not (log_dir / "meta.properties").exists():
        log_dir.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(_kafka_cmd("kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(), "-c", str(config)),
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise StackError(f"formatting Kafka storage in {log_dir} failed:\n{res.stdout}\n{res.stderr}")
    with open(KAFKA.log, "ab") as log:
        proc = subprocess.Popen(_kafka_cmd("kafka.Kafka", str(config)), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    KAFKA.pid_file.write_text(str(proc.pid))
    _wait(KAFKA, _kafka_healthy)
    _say(f"kafka up (pid {proc.pid}) on 127.0.0.1:{KAFKA_PORT}, log {KAFKA.log}")


def create_topics(bootstrap: str | None = None, prefix: str = "") -> list[str]:
    """Create the intentflow topics if missing (idempotent); return the names created now."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from udfs.config import Topics, stack_settings

    bootstrap = bootstrap or stack_settings().kafka_bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
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


# --------------------------------------------------------------------------- redis


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _say("redis-server missing: installing Debian's redis-server")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        res = subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], capture_output=True, text=True)
        found = shutil.which("redis-server")
        if res.returncode == 0 and found:
            # Debian's package starts a system service on 6379; the stack runs its own.
            subprocess.run(["sh", "-c", "service redis-server stop || true"], capture_output=True)
            return found
        raise StackError(f"apt-get install redis-server failed:\n{res.stderr[-2000:]}")
    raise StackError("redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server) "
                     "and run `make up` again.")


def _redis_healthy() -> bool:
    import redis

    return bool(redis.Redis(port=REDIS_PORT, socket_timeout=1).ping())


def start_redis() -> None:
    """Start redis-server on loopback with no persistence."""
    if _read_pid(REDIS) is not None:
        _wait(REDIS, _redis_healthy)
        _say(f"redis already running (pid {_read_pid(REDIS)}) on 127.0.0.1:{REDIS_PORT}")
        return
    binary = _redis_binary()
    _check_ports_free(REDIS)
    workdir = DATA / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(REDIS.log, "ab") as log:
        proc = subprocess.Popen([binary, str(ROOT / "stack" / "redis" / "redis.conf"), "--dir", str(workdir),
                                 "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    REDIS.pid_file.write_text(str(proc.pid))
    _wait(REDIS, _redis_healthy)
    _say(f"redis up (pid {proc.pid}) on 127.0.0.1:{REDIS_PORT}, log {REDIS.log}")


# --------------------------------------------------------------------------- flink standalone


def flink_home() -> Path:
    """The Flink distribution shipped inside the apache-flink wheel (bin/, lib/, opt/)."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def standalone_flink_env() -> dict[str, str]:
    """Environment for the standalone cluster's scripts (start-cluster.sh, ``flink run``).

    The wheel's ``lib/`` lacks ``flink-python`` (it sits in ``opt/``), without which a cluster cannot
    run Python operators; ``.stack/flink-lib`` links both, and FLINK_LIB_DIR points there.
    """
    env = flink_process_env()
    home = flink_home()
    lib = STACK / "flink-lib"
    lib.mkdir(parents=True, exist_ok=True)
    wanted = list((home / "lib").glob("*.jar")) + list((home / "opt").glob("flink-python-*.jar"))
    for jar in wanted:
        link = lib / jar.name
        if not link.exists():
            link.symlink_to(jar)
    env["FLINK_LIB_DIR"] = str(lib)
    env["FLINK_OPT_DIR"] = str(home / "opt")
    return env


def _flink_healthy() -> bool:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{FLINK_REST_PORT}/taskmanagers", timeout=2) as resp:
        return len(json.load(resp).get("taskmanagers", [])) > 0


FLINK = Service("flink", (FLINK_REST_PORT, FLINK_RPC_PORT), LOGS / "flink")


def _flink_pids() -> list[int]:
    pids = []
    for pid_file in RUN.glob("flink-*.pid"):
        for line in pid_file.read_text().split():
            try:
                os.kill(int(line), 0)
                pids.append(int(line))
            except (ValueError, ProcessLookupError):
                pass
    return pids


def start_flink_cluster() -> None:
    """Start a standalone Flink cluster (JobManager + one TaskManager) with flink-conf/."""
    if _flink_pids():
        _wait(FLINK, _flink_healthy)
        _say(f"flink cluster already running on http://127.0.0.1:{FLINK_REST_PORT}")
        return
    _check_ports_free(FLINK)
    env = standalone_flink_env()
    script = flink_home() / "bin" / "start-cluster.sh"
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise StackError(f"start-cluster.sh failed:\n{res.stdout}\n{res.stderr}")
    # FLINK service has no single pid file; _wait checks liveness through the REST API only.
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if _flink_healthy():
                _say(f"flink cluster up on http://127.0.0.1:{FLINK_REST_PORT}, logs {LOGS / 'flink'}")
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    raise StackError(f"flink cluster did not come up within {HEALTH_TIMEOUT_S:.0f} s. Logs: {LOGS / 'flink'}")


def stop_flink_cluster() -> None:
    """Stop the standalone cluster's JobManager and TaskManager by their pid files."""
    pids = _flink_pids()
    for pid in pids:
        _stop_pid(pid, "flink")
    for pid_file in RUN.glob("flink-*.pid"):
        pid_file.unlink(missing_ok=True)


# --------------------------------------------------------------------------- down / status


def _stop_pid(pid: int, name: str, timeout_s: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _say(f"{name} stopped (pid {pid})")
            return
        # reap our own child if it is one
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    _say(f"{name} killed after {timeout_s:.0f} s (pid {pid})")


def stop_service(service: Service) -> None:
    pid = _read_pid(service)
    if pid is not None:
        _stop_pid(pid, service.name)
    service.pid_file.unlink(missing_ok=True)


def up(flink: bool = False) -> None:
    """Fetch jars if needed, start Kafka and Redis, create topics (and the Flink cluster if asked)."""
    fetch_jars()
    start_redis()
    start_kafka()
    created = create_topics()
    _say("topics created: " + ", ".join(created) if created else "topics present")
    if flink:
        start_flink_cluster()


def down() -> None:
    """Stop everything this stack started, by pid; leave data in .stack/data."""
    stop_flink_cluster()
    stop_service(KAFKA)
    stop_service(REDIS)


def status() -> dict[str, bool]:
    return {
        "kafka": _read_pid(KAFKA) is not None and port_open(KAFKA_PORT),
        "redis": _read_pid(REDIS) is not None and port_open(REDIS_PORT),
        "flink": bool(_flink_pids()) and port_open(FLINK_REST_PORT),
    }


@click.group("stack")
def stack_cmd() -> None:
    """Start and stop the local stack (Kafka KRaft broker, Redis, standalone Flink cluster)."""


@stack_cmd.command("up")
@click.option("--flink/--no-flink", default=False, help="Also start the standalone Flink cluster.")
def up_cmd(flink: bool) -> None:
    """Start Kafka and Redis (idempotent) and create the topics."""
    up(flink=flink)


@stack_cmd.command("down")
@click.option("--wipe", is_flag=True, help="Also delete .stack/data (Kafka logs, checkpoints).")
def down_cmd(wipe: bool) -> None:
    """Stop every process the stack started (by pid)."""
    down()
    if wipe:
        shutil.rmtree(DATA, ignore_errors=True)
        _say(f"wiped {DATA}")


@stack_cmd.command("status")
def status_cmd() -> None:
    """Print which services are running; exit 1 if Kafka or Redis is down (Flink is optional)."""
    st = status()
    for name, ok in st.items():
        click.echo(f"{name:6s} {'up' if ok else 'down'}")
    if not (st["kafka"] and st["redis"]):
        sys.exit(1)


@stack_cmd.command("fetch")
def fetch_cmd() -> None:
    """Fetch the pinned Kafka and Flink connector jars from Maven Central; build operators/java."""
    fetch_jars(quiet=False)
    build_operators_jar(quiet=False)


@stack_cmd.command("topics")
@click.option("--prefix", default="", help="Create the topic set under this prefix.")
def topics_cmd(prefix: str) -> None:
    """Create the topics (idempotent)."""
    click.echo(", ".join(create_topics(prefix=prefix)) or "topics present")


@stack_cmd.command("flink-up")
def flink_up_cmd() -> None:
    """Start the standalone Flink cluster (JobManager + TaskManager) with flink-conf/."""
    start_flink_cluster()


@stack_cmd.command("flink-down")
def flink_down_cmd() -> None:
    """Stop the standalone Flink cluster."""
    stop_flink_cluster()
