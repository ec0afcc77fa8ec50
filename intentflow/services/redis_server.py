"""The local stack's Redis: ``redis-server`` on 127.0.0.1:6379 with ``stack/redis/redis.conf`` (no
persistence)."""
from __future__ import annotations

import os
import shutil
import subprocess

from intentflow.services.process import Service, StackError, check_ports_free, read_pid, say, wait_healthy
from operators.layout import DATA, LOGS, ROOT, RUN

#: The server's port (loopback; stack/redis/redis.conf).
REDIS_PORT = 6379
REDIS = Service("redis", (REDIS_PORT,), LOGS / "redis.log")


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("redis-server missing: installing Debian's redis-server")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        res = subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], capture_output=True, text=True)
        found = shutil.which("redis-server")
        if res.returncode == 0 and found:
            # Debian's package starts a system service on 6379; the stack runs its own.
            subprocess.run(["sh", "-c", "service redis-server stop || true"], capture_output=True)
            return found
        raise StackError(f"apt-get install redis-server failed:\n{res.stderr[-2000:]}")
    raise StackError("redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server) "
                     "and run `make up` again.")


def _redis_healthy() -> bool:
    import redis

    return bool(redis.Redis(port=REDIS_PORT, socket_timeout=1).ping())


def start_redis() -> None:
    """Start redis-server on loopback with no persistence."""
    if read_pid(REDIS) is not None:
        wait_healthy(REDIS, _redis_healthy)
        say(f"redis already running (pid {read_pid(REDIS)}) on 127.0.0.1:{REDIS_PORT}")
        return
    binary = _redis_binary()
    check_ports_free(REDIS)
    workdir = DATA / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(REDIS.log, "ab") as log:
        proc = subprocess.Popen([binary, str(ROOT / "stack" / "redis" / "redis.conf"), "--dir", str(workdir),
                                 "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    REDIS.pid_file.write_text(str(proc.pid))
    wait_healthy(REDIS, _redis_healthy)
    say(f"redis up (pid {proc.pid}) on 127.0.0.1:{REDIS_PORT}, log {REDIS.log}")
