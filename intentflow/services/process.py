"""What every service of the local stack shares: a :class:`Service` (name, ports, log, pid file), its
pid, whether its ports are free, waiting until it answers, and stopping it by pid.

Services: ``kafka_broker.py``, ``redis_server.py``, ``flink_cluster.py``; their jars: ``jars.py``; the
``intentflow stack`` command: ``intentflow/stack.py``.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import click

from operators.layout import RUN

#: Seconds to wait for each service to answer before giving up (first start formats storage and
#: loads ~60 MB of jars; 60 s is several times what it took on our 2-core machine).
HEALTH_TIMEOUT_S = 60.0


class StackError(click.ClickException):
    """A service could not be set up or started; the message names it and its log."""


@dataclass(frozen=True)
class Service:
    """A process of the stack: its name, the TCP ports it listens on, its log, and its pid file under RUN."""

    name: str
    ports: tuple[int, ...]
    log: Path

    @property
    def pid_file(self) -> Path:
        return RUN / f"{self.name}.pid"


def say(msg: str) -> None:
    """Print a ``[stack]`` progress line on stderr."""
    click.echo(f"[stack] {msg}", err=True)


def read_pid(service: Service) -> int | None:
    """The pid in ``service``'s pid file when that process is alive, else None."""
    try:
        pid = int(service.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        return sock.connect_ex((host, port)) == 0


def check_ports_free(service: Service) -> None:
    """Raises StackError naming the busy ports when a process the stack did not start holds one."""
    busy = [p for p in service.ports if port_open(p)]
    if busy:
        hint = {"kafka": "INTENTFLOW_KAFKA_BOOTSTRAP", "redis": "INTENTFLOW_REDIS_URL",
                "flink": "INTENTFLOW_FLINK_REST"}.get(service.name, "its INTENTFLOW_* setting")
        raise StackError(
            f"{service.name}: port {', '.join(map(str, busy))} is already in use by a process this stack "
            f"did not start (see `ss -ltnp | grep {busy[0]}`). Stop it, or point intentflow at the running "
            f"service with {hint}."
        )


def wait_healthy(service: Service, healthy, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    """Poll ``healthy()`` every 0.3 s until it is true; raises StackError (with the log's tail) when the
    process died or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        pid = read_pid(service)
        if pid is None and service.pid_file.exists():
            break  # the process died
        try:
            if healthy():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last_error = exc
        time.sleep(0.3)
    tail = ""
    if service.log.exists():
        tail = "\n".join(service.log.read_text(errors="replace").splitlines()[-15:])
    raise StackError(
        f"{service.name} did not come up within {timeout_s:.0f} s (last error: {last_error}). "
        f"Log: {service.log}\n{tail}"
    )


def stop_pid(pid: int, name: str, timeout_s: float = 20.0) -> None:
    """SIGTERM ``pid``, wait up to ``timeout_s`` for it to exit, then SIGKILL it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            say(f"{name} stopped (pid {pid})")
            return
        # reap our own child if it is one
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    say(f"{name} killed after {timeout_s:.0f} s (pid {pid})")


def stop_service(service: Service) -> None:
    """Stop ``service`` by its pid file (when alive) and remove the file."""
    pid = read_pid(service)
    if pid is not None:
        stop_pid(pid, service.name)
    service.pid_file.unlink(missing_ok=True)
