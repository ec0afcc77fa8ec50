"""The local stack: a real Kafka broker (KRaft), a real Redis server and, on demand, a standalone
Flink cluster, started from this checkout and stopped by pid.

Where everything lives under ``.stack/`` (ignored by git): ``operators.layout``. One module per service
in ``intentflow/services/`` (Kafka, Redis, Flink, the jars); this module starts and stops them together
and is the ``intentflow stack`` command.

``up`` is idempotent: a service whose pid file names a live process that answers is left alone.
``down`` stops only processes whose pid files this module wrote.
"""
from __future__ import annotations

import shutil
import sys

import click

from intentflow.services.flink_cluster import (  # noqa: F401 - flink_home, standalone_flink_env: bench/targets.py
    FLINK_REST_PORT, flink_home, flink_pids, standalone_flink_env, start_flink_cluster, stop_flink_cluster)
from intentflow.services.jars import build_operators_jar, fetch_jars
from intentflow.services.kafka_broker import KAFKA, KAFKA_PORT, create_topics, start_kafka
from intentflow.services.process import port_open, read_pid, say, stop_service
from intentflow.services.redis_server import REDIS, REDIS_PORT, start_redis
from operators.layout import DATA, LOGS

#: The cluster's pids under their former name (bench/targets.py ``ClusterJob.pids`` calls it).
_flink_pids = flink_pids


def up(flink: bool = False) -> None:
    """Fetch jars if needed, start Kafka and Redis, create topics (and the Flink cluster if asked)."""
    fetch_jars()
    start_redis()
    start_kafka()
    created = create_topics()
    say("topics created: " + ", ".join(created) if created else "topics present")
    if flink:
        start_flink_cluster()


def down() -> None:
    """Stop everything this stack started, by pid; leave data in .stack/data."""
    stop_flink_cluster()
    stop_service(KAFKA)
    stop_service(REDIS)


def status() -> dict[str, bool]:
    return {
        "kafka": read_pid(KAFKA) is not None and port_open(KAFKA_PORT),
        "redis": read_pid(REDIS) is not None and port_open(REDIS_PORT),
        "flink": bool(flink_pids()) and port_open(FLINK_REST_PORT),
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
        say(f"wiped {DATA}")


@stack_cmd.command("status")
@click.option("--check", is_flag=True, help="Exit 1 when Kafka or Redis is down (for scripts; `make status` "
                                             "only prints).")
def status_cmd(check: bool) -> None:
    """Print each service: up or down, its pids, address and log."""
    st = status()
    pids = {"kafka": [p for p in [read_pid(KAFKA)] if p], "redis": [p for p in [read_pid(REDIS)] if p],
            "flink": flink_pids()}
    where = {"kafka": (f"127.0.0.1:{KAFKA_PORT}", KAFKA.log), "redis": (f"127.0.0.1:{REDIS_PORT}", REDIS.log),
             "flink": (f"http://127.0.0.1:{FLINK_REST_PORT}", LOGS / "flink")}
    for name, ok in st.items():
        pid_text = ("pid " + ",".join(map(str, pids[name]))) if pids[name] else "no pid"
        address, log = where[name]
        click.echo(f"{name:6s} {'up' if ok else 'down':5s} {pid_text:16s} {address:24s} log {log}")
    if check and not (st["kafka"] and st["redis"]):
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
