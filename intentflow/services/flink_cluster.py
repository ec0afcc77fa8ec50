"""The local stack's standalone Flink cluster (JobManager + one TaskManager, ``flink-conf/``), run from
the Flink distribution inside the apache-flink wheel; REST on 127.0.0.1:8081."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from intentflow.services.process import (HEALTH_TIMEOUT_S, Service, StackError, check_ports_free, say, stop_pid,
                                        wait_healthy)
from operators.layout import LOGS, RUN, STACK, flink_process_env

#: The JobManager's REST port (Flink's default; flink-conf/config.yaml rest.port).
FLINK_REST_PORT = 8081
#: The JobManager's RPC port (Flink's default).
FLINK_RPC_PORT = 6123


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


def flink_pids() -> list[int]:
    """The live pids of the cluster's JobManager and TaskManager (from Flink's pid files under RUN)."""
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
    if flink_pids():
        wait_healthy(FLINK, _flink_healthy)
        say(f"flink cluster already running on http://127.0.0.1:{FLINK_REST_PORT}")
        return
    check_ports_free(FLINK)
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
                say(f"flink cluster up on http://127.0.0.1:{FLINK_REST_PORT}, logs {LOGS / 'flink'}")
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    raise StackError(f"flink cluster did not come up within {HEALTH_TIMEOUT_S:.0f} s. Logs: {LOGS / 'flink'}")


def stop_flink_cluster() -> None:
    """Stop the standalone cluster's JobManager and TaskManager by their pid files."""
    pids = flink_pids()
    for pid in pids:
        stop_pid(pid, "flink")
    for pid_file in RUN.glob("flink-*.pid"):
        pid_file.unlink(missing_ok=True)
