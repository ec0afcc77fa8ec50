"""``intentflow job``: run the job (no subcommand: on the local mini-cluster, options of
``jobs.personalization.job_cmd``), or operate it on a Flink cluster through its REST API:

    intentflow job status   [--jobmanager host:port]          jobs, checkpoints, restore points
    intentflow job savepoint [JOB_ID] [--target-dir DIR]      a savepoint; the job keeps running
    intentflow job stop     [JOB_ID] [--target-dir DIR]       stop with a savepoint
    intentflow job resume   [--from PATH] [-- JOB OPTIONS]    submit from the newest restore point
    intentflow job submit   [-- JOB OPTIONS]                  submit (``flink run -d``) without state

``--jobmanager`` defaults to the local standalone cluster (``make flink-up``, 127.0.0.1:8081).
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from intentflow.flink_rest import DEFAULT_JOBMANAGER, JOB_NAME, FlinkRest, FlinkRestError, merge, newest, scan_dirs
from jobs.personalization import job_cmd
from operators import layout

#: Where savepoints go by default (this checkout's ``.stack/data/savepoints``; the job's checkpoints are
#: in ``.stack/data/checkpoints``, operators/flink_env.py).
SAVEPOINT_DIR = layout.DATA / "savepoints"
CHECKPOINT_DIR = layout.DATA / "checkpoints"

_jobmanager = click.option("--jobmanager", "-m", default=DEFAULT_JOBMANAGER, show_default=True,
                           help="host:port of the Flink JobManager's REST endpoint.")
_target_dir = click.option("--target-dir", type=click.Path(file_okay=False, path_type=Path), default=SAVEPOINT_DIR,
                           show_default=True, help="Folder the savepoint is written to (the TaskManagers and the "
                                                   "JobManager must all see it: a shared or local file system).")


#: Off by default: in thread mode a TaskManager's embedded interpreter keeps the modules an earlier job
#: imported, from that job's distributed-cache folder, which Flink deletes when the job ends. A second job on
#: the same TaskManagers (an upgrade, a resume) then ran the first job's code and failed to find its models
#: ("no versions of model 'intent-lr' under /tmp/flink-dist-cache-.../<first job>/intentflow-job/models").
#: So --package is for TaskManagers that run one job (application mode, e.g. Kubernetes).
_package = click.option("--package/--no-package", default=False, show_default=True,
                        help="Ship the job's Python packages, models, rules and schemas with it (flink run -pyfs), "
                             "for TaskManagers that run only this job (application mode): thread mode keeps an "
                             "earlier job's modules. Default: the TaskManagers use this checkout at the same path.")


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc))


@click.pass_context
def _run_job(ctx: click.Context, **options) -> None:
    if ctx.invoked_subcommand is None:
        job_cmd.callback(**options)


#: A group that is also a command: without a subcommand it runs the job with its options.
job_group = click.Group(
    name="job", params=list(job_cmd.params), callback=_run_job, invoke_without_command=True,
    help="Run the personalization job on the local mini-cluster (no subcommand; the options below), or "
         "operate it on a Flink cluster: status, savepoint, stop, resume, submit (--help on each).")


#: What the TaskManagers need of this checkout, shipped with the job (``flink run -pyfs``): the job's
#: Python packages, the model versions (manifest + ONNX), the default ruleset and the JSON schemas.
PACKAGE_PARTS = ("jobs", "operators", "udfs", "connectors", "models", "rules", "schemas")
#: File kinds copied from PACKAGE_PARTS (no caches, no Java sources or build output: the jars travel
#: as ``pipeline.jars``, which ``flink run`` uploads with the job).
PACKAGE_SUFFIXES = (".py", ".json", ".onnx")


def build_package(dest: Path) -> Path:
    """Copy what the TaskManagers need into ``dest/intentflow-job`` (replaced if present); return that folder.

    A folder, not a zip: the model registry reads ONNX files by path (``udfs.scoring.DEFAULT_MODELS_DIR``,
    next to ``udfs/``), which a zip on the Python path would not allow.
    """
    import shutil

    pkg = dest / "intentflow-job"
    if pkg.exists():
        shutil.rmtree(pkg)
    for part in PACKAGE_PARTS:
        for src in sorted((layout.ROOT / part).rglob("*")):
            rel = src.relative_to(layout.ROOT)
            if (src.is_file() and src.suffix in PACKAGE_SUFFIXES and "__pycache__" not in rel.parts
                    and rel.parts[:2] != ("operators", "java")):
                (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, pkg / rel)
    return pkg


def _submit(jobmanager: str, job_args: tuple[str, ...], from_path: str | None, package: bool = True) -> str:
    """``flink run -d`` of jobs/personalization.py on ``jobmanager`` (with the package of
    :func:`build_package` as ``-pyfs`` when ``package``); returns the job id."""
    from intentflow.services import flink_cluster

    env = flink_cluster.standalone_flink_env()
    args = ["bash", str(flink_cluster.flink_home() / "bin" / "flink"), "run", "-d", "-m", jobmanager]
    if from_path:
        args += ["-s", from_path]
    entry = layout.ROOT / "jobs" / "personalization.py"
    with tempfile.TemporaryDirectory(prefix="intentflow-submit-") as tmp:
        if package:
            # `flink run` uploads it to the JobManager's blob server with the job: not needed afterwards
            pkg = build_package(Path(tmp))
            args += ["-pyfs", str(pkg)]
            entry = pkg / "jobs" / "personalization.py"
            env["INTENTFLOW_HOME"] = str(layout.ROOT)  # the client finds the jars (pipeline.jars) here
        args += ["-py", str(entry), "-pyexec", sys.executable, *job_args]
        res = subprocess.run(args, cwd=layout.ROOT, env=env, capture_output=True, text=True, timeout=600)
    match = re.search(r"JobID ([0-9a-f]{32})", res.stdout)
    if res.returncode != 0 or not match:
        tail = "\n".join(line for line in (res.stdout + res.stderr).splitlines() if not line.startswith("\tat "))
        raise click.ClickException(f"flink run failed (exit {res.returncode}):\n{tail[-4000:]}")
    return match.group(1)


@job_group.command("status")
@_jobmanager
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path), default=CHECKPOINT_DIR,
              show_default=True, help="Where retained checkpoints are looked for on disk.")
@click.option("--savepoint-dir", type=click.Path(file_okay=False, path_type=Path), default=SAVEPOINT_DIR,
              show_default=True, help="Where savepoints are looked for on disk.")
def status_cmd(jobmanager: str, checkpoint_dir: Path, savepoint_dir: Path) -> None:
    """The cluster, its jobs (state, uptime, latest checkpoint) and the restore points, newest first."""
    rest = FlinkRest(jobmanager)
    try:
        ov = rest.overview()
        jobs = rest.jobs()
        points = rest.restore_points()
    except FlinkRestError as exc:
        _fail(exc)
    click.echo(f"cluster {rest.base}: Flink {ov.get('flink-version')}, {ov.get('taskmanagers')} TaskManagers, "
               f"{ov.get('slots-available')}/{ov.get('slots-total')} slots free, web UI {rest.base}")
    for job in jobs:
        line = f"  {job['jid']}  {job['state']:<9} {job['name']}  up {job.get('duration', 0) / 1000:.0f} s"
        if job["state"] == "RUNNING":
            cp = rest.checkpoints(job["jid"])
            done = (cp.get("latest") or {}).get("completed") or {}
            counts = cp.get("counts", {})
            line += (f", checkpoints {counts.get('completed', 0)} completed / {counts.get('failed', 0)} failed"
                     + (f", latest #{done.get('id')} took {done.get('end_to_end_duration')} ms" if done else ""))
        click.echo(line)
    if not jobs:
        click.echo("  no jobs")
    points = merge(points + scan_dirs(checkpoint_dir, savepoint_dir))
    click.echo(f"restore points ({len(points)}, newest first; `intentflow job resume` takes the first):")
    for p in points[:10]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.time_ms / 1000))
        click.echo(f"  {when}  {p.kind:<10} {p.path}")


@job_group.command("savepoint")
@click.argument("job_id", required=False)
@_jobmanager
@_target_dir
def savepoint_cmd(job_id: str | None, jobmanager: str, target_dir: Path) -> None:
    """Take a savepoint of JOB_ID (default: the one running intentflow job); it keeps running. Prints the path."""
    rest = FlinkRest(jobmanager)
    try:
        jid = rest.running_job(job_id)
        click.echo(rest.savepoint(jid, target_dir.resolve().as_uri()))
    except FlinkRestError as exc:
        _fail(exc)


@job_group.command("stop")
@click.argument("job_id", required=False)
@_jobmanager
@_target_dir
@click.option("--drain", is_flag=True, help="Fire every event-time timer before stopping (only for a job that "
                                            "will not be resumed: its sessions would be flushed as at end of input).")
def stop_cmd(job_id: str | None, jobmanager: str, target_dir: Path, drain: bool) -> None:
    """Stop JOB_ID (default: the one running intentflow job) with a savepoint. Prints the path."""
    rest = FlinkRest(jobmanager)
    try:
        jid = rest.running_job(job_id)
        click.echo(rest.stop(jid, target_dir.resolve().as_uri(), drain=drain))
    except FlinkRestError as exc:
        _fail(exc)


@job_group.command("resume", context_settings={"ignore_unknown_options": True})
@_jobmanager
@click.option("--from", "from_path", default=None,
              help="Savepoint or retained checkpoint to start from (default: the newest, see `status`).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path), default=CHECKPOINT_DIR,
              show_default=True, help="Where retained checkpoints are looked for on disk.")
@click.option("--savepoint-dir", type=click.Path(file_okay=False, path_type=Path), default=SAVEPOINT_DIR,
              show_default=True, help="Where savepoints are looked for on disk.")
@_package
@click.argument("job_args", nargs=-1, type=click.UNPROCESSED)
def resume_cmd(jobmanager: str, from_path: str | None, checkpoint_dir: Path, savepoint_dir: Path, package: bool,
               job_args: tuple[str, ...]) -> None:
    """Submit the job (`flink run -d`) from the newest restore point. JOB_ARGS are `intentflow job`'s options
    (e.g. -- --rules-file rules/new.json); the state's max parallelism must be the job's."""
    if from_path is None:
        try:
            points = FlinkRest(jobmanager).restore_points(JOB_NAME)
        except FlinkRestError:
            points = []  # the JobManager may have been restarted: the folders still hold them
        best = newest(merge(points + scan_dirs(checkpoint_dir, savepoint_dir)))
        if best is None:
            raise click.ClickException(f"no savepoint or retained checkpoint in {savepoint_dir} or {checkpoint_dir} "
                                       f"or at {jobmanager}: start without state (`intentflow job submit`)")
        from_path = best.path
        click.echo(f"resuming from {best.kind} {best.path}", err=True)
    click.echo(_submit(jobmanager, job_args, from_path, package))


@job_group.command("submit", context_settings={"ignore_unknown_options": True})
@_jobmanager
@_package
@click.argument("job_args", nargs=-1, type=click.UNPROCESSED)
def submit_cmd(jobmanager: str, package: bool, job_args: tuple[str, ...]) -> None:
    """Submit the job to a cluster (`flink run -d -py jobs/personalization.py`) without state; prints the job id.
    JOB_ARGS are `intentflow job`'s options (after --). The TaskManagers need Python 3.11 with the packages of
    constraints.txt (`pip install -c constraints.txt .`), operators/embedded_site on PYTHONPATH (it preloads
    onnxruntime) and flink-python in lib/, as docker/flink.Dockerfile builds them."""
    click.echo(_submit(jobmanager, job_args, None, package))
