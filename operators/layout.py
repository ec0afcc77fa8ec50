"""Where this checkout keeps what a Flink job needs: paths of ``.stack/``, ``flink-conf/`` and the jars,
and the environment of the JVMs that run Python operators.

Imported by the job's environment (``operators.flink_env``) and by the dev-stack manager
(``intentflow.stack``); it starts nothing and has no CLI, so the job never depends on the CLI
(layering contract in pyproject.toml, ``tests/unit/test_layering.py``).

Layout (all under ``.stack/``, ignored by git):
    lib/kafka/   Apache Kafka broker jars (stack/pom.xml, profile ``kafka``)
    lib/flink/   Flink's Kafka connector jar, handed to jobs through ``pipeline.jars``
    data/        Kafka log dirs, Redis working dir, Flink checkpoints
    logs/        kafka.log, redis.log, flink/ (standalone cluster)
    run/         pid files and the generated broker config
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(os.environ.get("INTENTFLOW_HOME", Path(__file__).resolve().parents[1]))
STACK = ROOT / ".stack"
LIB = STACK / "lib"
DATA = STACK / "data"
LOGS = STACK / "logs"
RUN = STACK / "run"
FLINK_CONF_DIR = ROOT / "flink-conf"
KAFKA_CONNECTOR_JAR = LIB / "flink" / "flink-sql-connector-kafka-5.0.0-2.2.jar"
#: The job's own Java operators (operators/java), built by :func:`build_operators_jar`.
OPERATORS_SRC = ROOT / "operators" / "java"
OPERATORS_JAR = OPERATORS_SRC / "target" / "intentflow-operators.jar"


def python_site_packages() -> str:
    """The site-packages of the running interpreter (PyFlink thread mode needs it on PYTHONPATH)."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def flink_process_env() -> dict[str, str]:
    """Environment for Flink JVMs (mini-cluster gateway, standalone cluster, ``flink run``).

    Thread mode embeds CPython in the JVM (PEMJA); it finds our packages only through PYTHONPATH,
    which must hold the venv's site-packages and this checkout (``.pth`` files of an editable
    install are not read from PYTHONPATH).
    """
    env = dict(os.environ)
    env["FLINK_CONF_DIR"] = str(FLINK_CONF_DIR)
    env["FLINK_LOG_DIR"] = str(LOGS / "flink")
    env["FLINK_PID_DIR"] = str(RUN)
    parts = [str(ROOT / "operators" / "embedded_site"), python_site_packages(), str(ROOT)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYFLINK_PYTHON"] = sys.executable
    (LOGS / "flink").mkdir(parents=True, exist_ok=True)
    return env
