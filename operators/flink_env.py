"""Build a PyFlink ``StreamExecutionEnvironment`` wired to this checkout.

PyFlink starts its gateway JVM (which hosts the local mini-cluster) from the Python process on the
first call to ``get_execution_environment``; that JVM reads ``$FLINK_CONF_DIR/config.yaml`` and, in
thread mode, embeds CPython, which finds our packages only through ``PYTHONPATH``. So the process
environment is set here before any PyFlink call, and the host-specific settings
(``pipeline.jars``, ``python.executable``, checkpoint storage) are set on the job's configuration.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from operators import layout


def configure_process_env() -> None:
    """Export FLINK_CONF_DIR, FLINK_LOG_DIR and PYTHONPATH for the gateway JVM (idempotent)."""
    for key, value in layout.flink_process_env().items():
        if key in ("FLINK_CONF_DIR", "FLINK_LOG_DIR", "PYTHONPATH", "PYFLINK_PYTHON"):
            os.environ[key] = value


def flink_conf_settings() -> dict[str, str]:
    """``flink-conf/config.yaml`` flattened to ``{"a.b.c": "value"}``.

    The local mini-cluster that PyFlink starts does not apply every key of ``$FLINK_CONF_DIR`` to the
    job (measured here: ``python.execution-mode: thread`` in the file alone still ran Python operators
    in process mode), so the job configuration carries all of them explicitly.
    """
    import yaml

    def flatten(prefix: str, node) -> dict[str, str]:
        if isinstance(node, dict):
            out: dict[str, str] = {}
            for key, value in node.items():
                out.update(flatten(f"{prefix}.{key}" if prefix else str(key), value))
            return out
        return {prefix: str(node).lower() if isinstance(node, bool) else str(node)}

    with open(layout.FLINK_CONF_DIR / "config.yaml") as fh:
        flat = flatten("", yaml.safe_load(fh))
    # Keys of the standalone cluster's processes are left out: a mini-cluster that took rest.port
    # 8081 failed to start next to another job's mini-cluster or the standalone cluster.
    cluster_only = ("env.", "rest.", "jobmanager.rpc.", "jobmanager.bind-host", "taskmanager.bind-host",
                    "taskmanager.host", "jobmanager.memory.", "taskmanager.memory.process.",
                    "taskmanager.numberOfTaskSlots")
    settings = {k: v for k, v in flat.items() if not k.startswith(cluster_only)}
    # the mini-cluster's web UI / REST endpoint: the first free port from 8082
    settings["rest.bind-port"] = "8082-8182"
    return settings


def job_configuration(checkpoint_dir: Path | None = None, extra: dict[str, str] | None = None):
    """Return a ``pyflink.common.Configuration`` with the connector jar, interpreter and checkpoints.

    Args:
        checkpoint_dir: where checkpoints go (``file://`` URI made from it); default
            ``.stack/data/checkpoints``.
        extra: more ``key: value`` settings, applied last (override flink-conf/config.yaml).

    Raises:
        FileNotFoundError: the Kafka connector jar or the operators jar is missing (run ``intentflow stack fetch``).
    """
    from pyflink.common import Configuration

    jars = [layout.KAFKA_CONNECTOR_JAR, layout.OPERATORS_JAR]
    for jar in jars:
        if not jar.exists():
            raise FileNotFoundError(f"{jar} is missing: run `intentflow stack fetch` (or `make setup`)")
    checkpoint_dir = checkpoint_dir or layout.DATA / "checkpoints"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    conf = Configuration()
    for key, value in flink_conf_settings().items():
        conf.set_string(key, value)
    conf.set_string("pipeline.jars", ";".join(jar.resolve().as_uri() for jar in jars))
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("execution.checkpointing.dir", checkpoint_dir.resolve().as_uri())
    for key, value in (extra or {}).items():
        conf.set_string(key, str(value))
    return conf


def create_env(parallelism: int = 1, checkpoint_dir: Path | None = None, extra: dict[str, str] | None = None):
    """A ``StreamExecutionEnvironment`` (local mini-cluster, or the cluster ``flink run`` targets).

    Args:
        parallelism: operator parallelism (2 at most makes sense on a 2-core machine).
        checkpoint_dir, extra: see :func:`job_configuration`.
    """
    configure_process_env()
    from pyflink.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment(job_configuration(checkpoint_dir, extra))
    env.set_parallelism(parallelism)
    return env
