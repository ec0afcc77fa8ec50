"""A small client of Flink's REST API (the JobManager's, default the local standalone cluster's) for the
savepoint lifecycle, and where a job can be restored from.

REST endpoints used (Flink 2.2 REST API, https://nightlies.apache.org/flink/flink-docs-release-2.2/docs/ops/rest_api/):
``GET /overview``, ``GET /jobs/overview``, ``GET /jobs/:jid/checkpoints``, ``POST /jobs/:jid/savepoints``,
``POST /jobs/:jid/stop``, ``GET /jobs/:jid/savepoints/:triggerid``; for the chaos suite's TaskManager kill
``GET /taskmanagers``, ``GET /jobs/:jid``, ``GET /jobs/:jid/vertices/:vid/taskmanagers``, ``PATCH /jobs/:jid``.

Restore points: a savepoint (``<savepoint dir>/savepoint-<job>-<id>/_metadata``) or a retained
checkpoint (``<checkpoint dir>/<job id>/chk-<n>/_metadata``, kept after a cancel:
``execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION`` in flink-conf/),
found on disk under this checkout's ``.stack/data`` (or the given folders) and through the REST API
(the latest completed checkpoint and savepoint of each job the JobManager still knows).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

#: The local standalone cluster's REST endpoint (flink-conf/config.yaml ``rest.port``).
DEFAULT_JOBMANAGER = "127.0.0.1:8081"
#: The job name ``jobs/personalization.py`` runs under.
JOB_NAME = "intentflow-personalization"


class FlinkRestError(RuntimeError):
    """The JobManager refused a request, could not be reached, or an operation failed."""


@dataclass(frozen=True)
class RestorePoint:
    """A savepoint or retained checkpoint a job can start from.

    Attributes:
        path: what ``flink run -s`` / ``execution.state-recovery.path`` takes (a folder with ``_metadata``,
            as a ``file:`` URI or a plain path).
        kind: ``savepoint`` or ``checkpoint``.
        time_ms: when it completed, epoch ms (the ``_metadata`` file's mtime, or the REST timestamp).
        job_id: the job that took it ("" when unknown).
    """

    path: str
    kind: str
    time_ms: int
    job_id: str = ""


def _norm(path: str) -> str:
    """A path or ``file:`` URI as a plain absolute path (to tell the same point found twice apart)."""
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    return str(Path(path)).rstrip("/")


def newest(points: list[RestorePoint]) -> RestorePoint | None:
    """The most recent restore point (ties: a savepoint before a checkpoint), or None when there is none."""
    if not points:
        return None
    return max(points, key=lambda p: (p.time_ms, p.kind == "savepoint"))


def merge(points: list[RestorePoint]) -> list[RestorePoint]:
    """Points found on disk and through REST, each once (by path), newest first."""
    seen: dict[str, RestorePoint] = {}
    for p in points:
        key = _norm(p.path)
        if key not in seen or p.time_ms > seen[key].time_ms:
            seen[key] = p
    return sorted(seen.values(), key=lambda p: (p.time_ms, p.kind == "savepoint"), reverse=True)


def scan_dirs(checkpoint_dir: Path | None, savepoint_dir: Path | None) -> list[RestorePoint]:
    """Restore points on disk: ``<checkpoint_dir>/<job id>/chk-<n>/_metadata`` and
    ``<savepoint_dir>/savepoint-*/_metadata`` (a folder without ``_metadata`` is incomplete: skipped)."""
    out: list[RestorePoint] = []
    if checkpoint_dir and checkpoint_dir.is_dir():
        for meta in checkpoint_dir.glob("*/chk-*/_metadata"):
            out.append(RestorePoint(str(meta.parent), "checkpoint", int(meta.stat().st_mtime * 1000),
                                    meta.parent.parent.name))
    if savepoint_dir and savepoint_dir.is_dir():
        for meta in savepoint_dir.glob("savepoint-*/_metadata"):
            out.append(RestorePoint(str(meta.parent), "savepoint", int(meta.stat().st_mtime * 1000)))
    return out


class FlinkRest:
    """The REST API of one JobManager.

    Args:
        jobmanager: ``host:port`` of its REST endpoint (or a full ``http(s)://`` URL).
        timeout_s: per request, s.
    """

    def __init__(self, jobmanager: str = DEFAULT_JOBMANAGER, timeout_s: float = 10.0) -> None:
        self.base = jobmanager if jobmanager.startswith(("http://", "https://")) else f"http://{jobmanager}"
        self.base = self.base.rstrip("/")
        self.timeout_s = timeout_s
        self.http = requests.Session()

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            resp = self.http.request(method, self.base + path, json=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise FlinkRestError(f"no Flink JobManager at {self.base} ({exc.__class__.__name__}); "
                                 f"start one (`make flink-up`) or pass --jobmanager host:port") from exc
        if resp.status_code >= 400:
            raise FlinkRestError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else {}

    def overview(self) -> dict:
        """``GET /overview``: ``taskmanagers``, ``slots-total``, ``slots-available``, ``jobs-running``, ``flink-version``."""
        return self._call("GET", "/overview")

    def jobs(self) -> list[dict]:
        """``GET /jobs/overview``: every job the JobManager knows, newest first (``jid``, ``name``, ``state``,
        ``start-time`` epoch ms, ``duration`` ms, ``tasks``)."""
        return sorted(self._call("GET", "/jobs/overview").get("jobs", []), key=lambda j: j.get("start-time", 0),
                      reverse=True)

    def taskmanagers(self) -> list[dict]:
        """``GET /taskmanagers``: each TaskManager's ``id``, ``path`` (its RPC address,
        ``pekko.tcp://flink@<host>:<port>/user/rpc/taskmanager_<n>``), ``slotsNumber``, ``freeSlots``."""
        return self._call("GET", "/taskmanagers").get("taskmanagers", [])

    def job_state(self, job_id: str) -> str:
        """``GET /jobs/:jid``: the job's ``state`` (``RUNNING``, ``RESTARTING``, ``FAILED``, ...)."""
        return self._call("GET", f"/jobs/{job_id}")["state"]

    def job_taskmanager_ids(self, job_id: str) -> set[str]:
        """Ids of the TaskManagers that run a subtask of the job (``GET /jobs/:jid``, then
        ``GET /jobs/:jid/vertices/:vid/taskmanagers`` per vertex, field ``taskmanager-id``)."""
        out: set[str] = set()
        for vertex in self._call("GET", f"/jobs/{job_id}").get("vertices", []):
            info = self._call("GET", f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
            out.update(tm["taskmanager-id"] for tm in info.get("taskmanagers", []) if tm.get("taskmanager-id"))
        return out

    def cancel(self, job_id: str) -> None:
        """``PATCH /jobs/:jid?mode=cancel``."""
        self._call("PATCH", f"/jobs/{job_id}?mode=cancel")

    def checkpoints(self, job_id: str) -> dict:
        """``GET /jobs/:jid/checkpoints``: ``counts``, ``latest`` {completed, savepoint, failed, restored}, ``history``."""
        return self._call("GET", f"/jobs/{job_id}/checkpoints")

    def running_job(self, job_id: str | None = None, name: str = JOB_NAME) -> str:
        """The id of ``job_id`` if given, else of the one RUNNING job called ``name``.

        Raises:
            FlinkRestError: none or several are running (the message lists them).
        """
        if job_id:
            return job_id
        running = [j for j in self.jobs() if j["state"] == "RUNNING" and j["name"] == name]
        if len(running) != 1:
            listed = ", ".join(f"{j['jid']} ({j['state']})" for j in self.jobs()) or "none"
            raise FlinkRestError(f"{len(running)} running jobs named {name!r} at {self.base} (jobs: {listed}); "
                                 f"name one by its id")
        return running[0]["jid"]

    def _wait_savepoint(self, job_id: str, trigger: dict, timeout_s: float) -> str:
        request_id = trigger["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self._call("GET", f"/jobs/{job_id}/savepoints/{request_id}")
            if status.get("status", {}).get("id") == "COMPLETED":
                op = status.get("operation", {})
                if "location" in op:
                    return op["location"]
                cause = op.get("failure-cause", {})
                raise FlinkRestError(f"savepoint of {job_id} failed: {cause.get('stack-trace', cause)}"[:3000])
            time.sleep(0.5)
        raise FlinkRestError(f"savepoint of {job_id} not complete after {timeout_s:.0f} s")

    def savepoint(self, job_id: str, target_dir: str, timeout_s: float = 300.0) -> str:
        """Take a savepoint of a running job (it keeps running); return its location (a ``file:`` URI).

        Raises:
            FlinkRestError: refused, failed, or not complete within ``timeout_s``.
        """
        trigger = self._call("POST", f"/jobs/{job_id}/savepoints", {"target-directory": target_dir, "cancel-job": False})
        return self._wait_savepoint(job_id, trigger, timeout_s)

    def stop(self, job_id: str, target_dir: str, drain: bool = False, timeout_s: float = 300.0) -> str:
        """Stop a job with a savepoint (sources stop, the last checkpoint is the savepoint); return its location.

        Args:
            drain: also emit MAX_WATERMARK (fires every event-time timer: only for a job not resumed later).

        Raises:
            FlinkRestError: refused, failed, or not complete within ``timeout_s``.
        """
        trigger = self._call("POST", f"/jobs/{job_id}/stop", {"targetDirectory": target_dir, "drain": drain})
        return self._wait_savepoint(job_id, trigger, timeout_s)

    def restore_points(self, name: str = JOB_NAME) -> list[RestorePoint]:
        """The latest completed checkpoint and savepoint of every job called ``name`` the JobManager knows."""
        out: list[RestorePoint] = []
        for job in self.jobs():
            if job["name"] != name:
                continue
            latest = (self.checkpoints(job["jid"]).get("latest") or {})
            for key, kind in (("completed", "checkpoint"), ("savepoint", "savepoint")):
                point = latest.get(key)
                if point and point.get("external_path") and point.get("external_path") != "<checkpoint-not-externally-addressable>":
                    out.append(RestorePoint(point["external_path"], kind, int(point.get("latest_ack_timestamp", 0)),
                                            job["jid"]))
        return out
