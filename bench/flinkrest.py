"""The job's own figures from Flink's REST API (the mini-cluster the job's JVM hosts): heap, checkpoints.

The job's mini-cluster binds the first free REST port of ``bench.targets.REST_BIND_CONF`` (8081-8199); it
is found from the JVM's listening sockets (``/proc/<pid>/fd`` socket inodes matched with
``/proc/net/tcp{,6}`` rows in state LISTEN), then checked with ``GET /jobs/overview``.

Endpoints (Flink 2.2 REST API, https://nightlies.apache.org/flink/flink-docs-release-2.2/docs/ops/rest_api/):
``/jobs/overview``, ``/jobs/<id>/checkpoints`` (``latest.completed``: ``state_size``, ``checkpointed_size``,
``end_to_end_duration``, ``external_path``), ``/taskmanagers`` and ``/taskmanagers/<id>/metrics?get=...``
(``Status.JVM.Memory.Heap.Used``/``Committed``/``Max``, bytes). In the mini-cluster the JobManager,
the TaskManager and the embedded CPython are one JVM process, so the TaskManager's heap is that JVM's heap.
"""
from __future__ import annotations

import json
import os
import time
import urllib.request

#: The REST port range of the job (bench.targets.REST_BIND_CONF).
REST_PORT_RANGE = range(8081, 8200)
#: TCP state LISTEN in /proc/net/tcp (include/net/tcp_states.h: TCP_LISTEN = 10).
TCP_LISTEN_HEX = "0A"
HEAP_METRICS = ("Status.JVM.Memory.Heap.Used", "Status.JVM.Memory.Heap.Committed", "Status.JVM.Memory.Heap.Max")


def listening_ports(proc_net_tcp: str, inodes: set[str], ports: range = REST_PORT_RANGE) -> list[int]:
    """Ports in ``ports`` listened on by a socket whose inode is in ``inodes``, from /proc/net/tcp text.

    A row: ``sl local_address rem_address st ... inode ...``; ``local_address`` is ``HEXIP:HEXPORT``,
    ``st`` the state in hex, the inode the 10th field (0-based 9).
    """
    out = []
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN_HEX or fields[9] not in inodes:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        if port in ports:
            out.append(port)
    return sorted(set(out))


def socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def _get(port: int, path: str, timeout_s: float = 5.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as resp:
        return json.loads(resp.read())


def find_rest_port(jvm_pid: int, timeout_s: float = 60.0) -> int | None:
    """The REST port of the mini-cluster in ``jvm_pid`` (None when none answers within ``timeout_s``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        inodes = socket_inodes(jvm_pid)
        text = ""
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(name) as fh:
                    text += fh.read()
            except OSError:
                pass
        for port in listening_ports(text, inodes):
            try:
                _get(port, "/jobs/overview", 2.0)
                return port
            except Exception:  # noqa: BLE001 - not the REST endpoint (or not ready yet)
                continue
        time.sleep(1.0)
    return None


class FlinkRest:
    """The job's REST endpoint (one running job in the mini-cluster)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._job_id: str | None = None
        self._tm_id: str | None = None

    def job_id(self) -> str | None:
        if self._job_id is None:
            jobs = [j for j in _get(self.port, "/jobs/overview").get("jobs", []) if j.get("state") == "RUNNING"]
            self._job_id = jobs[0]["jid"] if jobs else None
        return self._job_id

    def heap(self) -> dict[str, int]:
        """``{"used": bytes, "committed": bytes, "max": bytes}`` of the JVM heap (TaskManager metrics)."""
        if self._tm_id is None:
            self._tm_id = _get(self.port, "/taskmanagers")["taskmanagers"][0]["id"]
        rows = _get(self.port, f"/taskmanagers/{self._tm_id}/metrics?get={','.join(HEAP_METRICS)}")
        out = {}
        for row in rows:
            out[row["id"].rsplit(".", 1)[1].lower()] = int(float(row["value"]))
        return out

    def checkpoints(self) -> dict:
        """``/jobs/<id>/checkpoints`` as returned (empty dict without a running job)."""
        jid = self.job_id()
        return _get(self.port, f"/jobs/{jid}/checkpoints") if jid else {}

    def latest_checkpoint(self) -> dict | None:
        """The latest completed checkpoint: ``id``, ``state_size`` / ``checkpointed_size`` (bytes),
        ``end_to_end_duration`` (ms), ``trigger_timestamp`` / ``latest_ack_timestamp`` (epoch ms),
        ``external_path``; None before the first."""
        latest = (self.checkpoints().get("latest") or {}).get("completed")
        if not latest:
            return None
        keys = ("id", "state_size", "checkpointed_size", "end_to_end_duration", "trigger_timestamp",
                "latest_ack_timestamp", "external_path")
        return {k: latest.get(k) for k in keys}

    def wait_checkpoint_after(self, epoch_ms: int, timeout_s: float = 120.0) -> dict | None:
        """Wait for a completed checkpoint triggered at or after ``epoch_ms``; return it (None on timeout)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            try:
                cp = self.latest_checkpoint()
            except Exception:  # noqa: BLE001 - the REST endpoint can be briefly busy
                cp = None
            if cp and (cp.get("trigger_timestamp") or 0) >= epoch_ms:
                return cp
            time.sleep(1.0)
        return None
