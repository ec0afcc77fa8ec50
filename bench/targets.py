"""The targets of the benchmark: the job (mini-cluster, or the standalone cluster at parallelism 2),
the plain-Python baseline and the Quix Streams peer; how each is started and stopped."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import click

from bench.procs import _cmdline, proc_children

ROOT = Path(__file__).resolve().parents[1]
#: Max wait for the job to consume its first probe (JVM + mini-cluster start, ~10-20 s here), s.
READY_TIMEOUT_S = 180.0
#: The job's mini-cluster REST endpoint binds the first free port of this range (flink-conf/config.yaml
#: pins 8081, which the standalone cluster or another job on a shared machine may hold); nothing else of the job's config changes.
REST_BIND_CONF = {"rest.bind-port": "8082-8199"}


def _stack_pid(name: str) -> int | None:
    try:
        pid = int((ROOT / ".stack" / "run" / f"{name}.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def quix_python() -> str:
    """The interpreter of the Quix Streams peer: ``.stack/venv-quix`` from bench/quix-requirements.txt, made on
    first use (quixstreams needs protobuf >= 6, apache-flink < 6: they cannot share the project's venv).

    Raises:
        click.ClickException: the virtualenv could not be made (pip's output in the message).
    """
    venv = ROOT / ".stack" / "venv-quix"
    req = ROOT / "bench" / "quix-requirements.txt"
    marker = venv / ".installed"
    if not marker.exists() or marker.stat().st_mtime < req.stat().st_mtime:
        for cmd in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(req)]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise click.ClickException(f"could not make {venv}: {res.stdout[-1500:]}{res.stderr[-1500:]}")
        marker.touch()
    return str(venv / "bin" / "python")


def start_target(target: str, prefix: str, redis_prefix: str, run_dir: Path, window_ms: int, parallelism: int,
                 flink_conf: dict[str, str], from_beginning: bool = False, trace_every_n: int = 1,
                 jvm_args: str = "") -> subprocess.Popen:
    """Start ``job``, ``baseline`` or ``quix`` in its own process group, logging to ``run_dir``.

    Args:
        from_beginning: read the topic from its first offset (drain runs); else from its end.
        trace_every_n: 1 for latency levels (every event traced), 0 for drain runs.
        jvm_args: options of the job's JVM (mini-cluster), e.g. ``-Xms3g -Xmx3g``; PyFlink's gateway
            launcher (pyflink/pyflink_gateway_server.py) passes the ``JVM_ARGS`` variable to ``java``.
    """
    env = dict(os.environ, INTENTFLOW_TOPIC_PREFIX=prefix, PYTHONWARNINGS="ignore")
    if jvm_args:
        env["JVM_ARGS"] = f"{env.get('JVM_ARGS', '')} {jvm_args}".strip()
    common = ["--redis-prefix", redis_prefix, "--trace-every-n", str(trace_every_n), "--window-ms", str(window_ms)]
    if target == "job":
        args = ["--start", "earliest" if from_beginning else "latest", *common, "--parallelism", str(parallelism),
                "--group-id", f"{prefix}personalization", "--checkpoint-dir", str(run_dir / "checkpoints")]
        # The job's own command plus Flink settings: always REST_BIND_CONF, so a mini-cluster of someone
        # else on this machine (or the standalone cluster) holding 8081 does not fail us.
        flink_conf = dict(flink_conf)
        job_config = flink_conf.pop(JOB_CONFIG_KEY, {})  # JobConfig fields -> the job's options
        args += [x for name, value in job_config.items() for x in (f"--{name.replace('_', '-')}", str(value))]
        conf = [f"--flink-conf={key}={value}" for key, value in {**REST_BIND_CONF, **flink_conf}.items()]
        cmd = [sys.executable, "-m", "jobs.personalization", *args, *conf,
               *shlex.split(os.environ.get("INTENTFLOW_BENCH_JOB_ARGS", ""))]
    elif target == "quix":
        cmd = [quix_python(), "-m", "bench.quix_target", *common]
        if from_beginning:
            cmd.append("--from-beginning")
    else:
        cmd = [sys.executable, "-m", "bench.baseline", *common, "--hops-out", str(run_dir / "baseline_hops.jsonl")]
        if from_beginning:
            cmd.append("--from-beginning")
    log = open(run_dir / f"{target}.log", "ab")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


#: Key of ``flink_conf`` (:func:`start_target`) whose value, a dict, holds ``udfs.config.JobConfig`` fields
#: to set through the job's own options (``{"session_ttl_s": 120}`` -> ``--session-ttl-s 120``).
JOB_CONFIG_KEY = "intentflow.job-config"


def stop_target(proc: subprocess.Popen) -> None:
    """SIGTERM the target's process group, SIGKILL it after 15 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    try:  # the JVM may outlive the launcher for a moment
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def target_pids(target: str, proc: subprocess.Popen) -> list[int]:
    """The processes that do the target's work: the launcher and every descendant (the job's JVM too)."""
    return [proc.pid, *proc_children(proc.pid)]


#: Drain-only target: the job submitted to the local standalone cluster (flink-conf/: 2 TaskManagers x
#: 1 slot, each its own JVM and embedded CPython) at parallelism :data:`CLUSTER_PARALLELISM`.
CLUSTER_TARGET = "job-cluster-p2"
CLUSTER_PARALLELISM = 2


class ClusterJob:
    """The job on the standalone cluster (started here if it is not running, and then stopped again)."""

    def __init__(self, prefix: str, redis_prefix: str, window_ms: int, parallelism: int, run_dir: Path) -> None:
        from intentflow import stack as local_stack

        self.stack = local_stack
        self.started_here = not local_stack.status()["flink"]
        local_stack.start_flink_cluster()
        self.env = {**local_stack.standalone_flink_env(), "INTENTFLOW_TOPIC_PREFIX": prefix}
        flink = local_stack.flink_home() / "bin" / "flink"
        self.flink = ["bash", str(flink)]
        cmd = [*self.flink, "run", "-d", "-py", str(ROOT / "jobs" / "personalization.py"), "-pyexec", sys.executable,
               "--start", "earliest", "--parallelism", str(parallelism), "--redis-prefix", redis_prefix,
               "--trace-every-n", "0", "--window-ms", str(window_ms), "--group-id", f"{prefix}personalization"]
        res = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        (run_dir / f"{CLUSTER_TARGET}.log").write_text(res.stdout + res.stderr)
        match = re.search(r"JobID ([0-9a-f]{32})", res.stdout)
        if res.returncode != 0 or not match:
            self.stop()
            raise click.ClickException(f"could not submit the job to the cluster: {res.stdout[-1500:]}{res.stderr[-1500:]}")
        self.job_id = match.group(1)
        self.proc = subprocess.Popen(["sleep", "0"])  # placeholder handle; the work runs in the cluster
        self.taskmanagers = sum(1 for pid in self.pids() if "TaskManager" in _cmdline(pid))

    def pids(self) -> list[int]:
        """The cluster's JVMs (JobManager and TaskManagers, with their embedded CPython)."""
        return self.stack._flink_pids()

    def stop(self) -> None:
        job_id = getattr(self, "job_id", None)
        if job_id:
            subprocess.run([*self.flink, "cancel", job_id], env=self.env, capture_output=True, timeout=120)
            self.job_id = None
        if self.started_here:
            self.stack.stop_flink_cluster()
