"""A private redis-server for outage and AUTH tests: own port, own folder, stopped and restarted at will.

The shared Redis of the local stack (127.0.0.1:6379) is never stopped by a test; a test that needs Redis
to go away, or to require a password, starts one of these (``stack/redis/redis.conf`` with its own port
and folder, optionally ``requirepass`` and an ACL user) and stops only that one, by its pid.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from operators.layout import ROOT
from intentflow.services.own_broker import free_port

#: Longest wait for the server to answer after a (re)start, s.
START_TIMEOUT_S = 30.0


class OwnRedis:
    """One redis-server under ``folder``; :meth:`start`, :meth:`stop`, :meth:`start` again (same port).

    Args:
        folder: working folder (log, dump).
        password: ``requirepass`` of the default user (None: no AUTH).
        acl_user: ``(name, password)`` of an extra ACL user with every right on every key.
        extra_args: more ``redis-server`` options, e.g. ``("--appendonly", "yes")`` (persistence).
    """

    def __init__(self, folder: Path, password: str | None = None, acl_user: tuple[str, str] | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.folder = folder
        self.extra_args = tuple(extra_args)
        self.port = free_port()
        self.password = password
        self.acl_user = acl_user
        self.proc: subprocess.Popen | None = None
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (stack/system-deps.sh installs it)")
        self.binary = binary

    def url(self, user: str | None = None, password: str | None = None, db: int = 0) -> str:
        """``redis://[user:password@]127.0.0.1:port/db``; default credentials: the default user's password."""
        password = self.password if password is None and user is None else password
        auth = ""
        if password is not None:
            auth = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start the server and wait until it answers PING (raises TimeoutError after START_TIMEOUT_S)."""
        args = [self.binary, str(ROOT / "stack" / "redis" / "redis.conf"), "--port", str(self.port),
                "--dir", str(self.folder), "--daemonize", "no", "--logfile", str(self.folder / "redis.log")]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.acl_user is not None:
            name, secret = self.acl_user
            args += ["--user", name, "on", f">{secret}", "~*", "&*", "+@all"]  # one argument per ACL rule
        args += list(self.extra_args)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"own redis exited with {self.proc.returncode}; see {self.folder / 'redis.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"own redis on port {self.port} not up after {START_TIMEOUT_S} s")
            time.sleep(0.1)

    def healthy(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url(), socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop this server (SIGTERM, SIGKILL after 10 s); its data is gone unless persistence is on."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
