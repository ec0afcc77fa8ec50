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

from udfs.settings import path_settings

#: Paths under the checkout (:func:`home`), resolved at each access, never at import (module ``__getattr__``,
#: PEP 562): ``layout.ROOT``, ``layout.STACK``, ...; ``from operators.layout import LOGS`` resolves at that import.
_PATHS = {
    "ROOT": (),
    "STACK": (".stack",),
    "LIB": (".stack", "lib"),
    "DATA": (".stack", "data"),
    "LOGS": (".stack", "logs"),
    "RUN": (".stack", "run"),
    "FLINK_CONF_DIR": ("flink-conf",),
    "KAFKA_CONNECTOR_JAR": (".stack", "lib", "flink", "flink-sql-connector-kafka-5.0.0-2.2.jar"),
    #: the job's own Java operators (operators/java) and their jar, built by ``intentflow stack fetch``
    "OPERATORS_SRC": ("operators", "java"),
    "OPERATORS_JAR": ("operators", "java", "target", "intentflow-operators.jar"),
}


def home() -> Path:
    """The checkout whose ``.stack/``, ``flink-conf/`` and jars the job uses: ``INTENTFLOW_HOME``
    (``udfs.settings.PathSettings.home``; a job submitted as a package runs from a temporary folder
    and finds the jars through it), else this checkout."""
    return path_settings().home


def __getattr__(name: str) -> Path:
    parts = _PATHS.get(name)
    if parts is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return home().joinpath(*parts)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PATHS])


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
    env["FLINK_CONF_DIR"] = str(__getattr__("FLINK_CONF_DIR"))
    env["FLINK_LOG_DIR"] = str(__getattr__("LOGS") / "flink")
    env["FLINK_PID_DIR"] = str(__getattr__("RUN"))
    root = home()
    parts = [str(root / "operators" / "embedded_site"), python_site_packages(), str(root)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYFLINK_PYTHON"] = sys.executable
    (__getattr__("LOGS") / "flink").mkdir(parents=True, exist_ok=True)
    return env


def prometheus_reporter_jar() -> Path:
    """Flink's Prometheus metric reporter in the apache-flink wheel's distribution
    (``pyflink/plugins/metrics-prometheus/flink-metrics-prometheus-<version>.jar``).

    Raises:
        FileNotFoundError: the wheel has no such jar (a PyFlink build without plugins).
    """
    import importlib.util

    spec = importlib.util.find_spec("pyflink")
    home = Path(spec.origin).parent if spec and spec.origin else None
    jars = sorted(home.glob("plugins/metrics-prometheus/flink-metrics-prometheus-*.jar")) if home else []
    if not jars:
        raise FileNotFoundError(f"flink-metrics-prometheus jar not found under {home}/plugins/metrics-prometheus")
    return jars[-1]
