"""The jars of the local stack: the pinned Kafka broker and Flink Kafka connector from Maven Central
(``stack/pom.xml``), and the job's Java operators built from ``operators/java``."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from intentflow.services.process import StackError, say
from operators.layout import KAFKA_CONNECTOR_JAR, LIB, OPERATORS_JAR, OPERATORS_SRC, ROOT

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
        say(f"fetching {profile} jars from Maven Central into {out}")
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
    say(f"building the job's Java operators into {OPERATORS_JAR}")
    cmd = [mvn, "-B", "-f", str(OPERATORS_SRC / "pom.xml"), "-DskipTests", "package"]
    if quiet:
        cmd.insert(1, "-q")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not OPERATORS_JAR.exists():
        raise StackError(f"mvn could not build operators/java:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    return OPERATORS_JAR
