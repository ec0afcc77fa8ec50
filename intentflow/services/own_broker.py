"""A second, private Kafka broker for outage tests: own ports, own data folder, stopped and restarted at will.

The shared broker of the local stack (127.0.0.1:9092) is never stopped by a test; a test that needs
Kafka to go away starts one of these (the same jars and ``stack/kafka/server.properties`` as
``intentflow.services.kafka_broker``, KRaft, broker and controller in one JVM) and stops only that one, by its pid.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from intentflow.services.kafka_broker import kafka_cluster_id, kafka_cmd
from operators.layout import ROOT

#: Longest wait for the broker to answer after a (re)start, s (a cold JVM start takes ~5-15 s on 2 cores).
START_TIMEOUT_S = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnBroker:
    """One single-node KRaft broker under ``folder``; :meth:`start`, :meth:`stop`, :meth:`start` again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.config = folder / "server.properties"
        self.log_dir = folder / "data"
        text = (ROOT / "stack" / "kafka" / "server.properties").read_text()
        text = text.replace("9093", str(self.controller_port)).replace("9092", str(self.port))
        self.config.write_text(text + f"\nlog.dirs={self.log_dir}\n")
        res = subprocess.run(kafka_cmd("kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(), "-c",
                                        str(self.config)),
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"formatting {self.log_dir} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

    def start(self) -> None:
        """Start the broker and wait until it lists topics (raises TimeoutError after START_TIMEOUT_S)."""
        with open(self.folder / "kafka.log", "ab") as log:
            self.proc = subprocess.Popen(kafka_cmd("kafka.Kafka", str(self.config)), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"own broker exited with {self.proc.returncode}; see {self.folder / 'kafka.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"own broker on {self.bootstrap} not up after {START_TIMEOUT_S} s")
            time.sleep(0.5)

    def healthy(self) -> bool:
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def stop(self) -> None:
        """Stop this broker (SIGTERM, SIGKILL after 30 s) and wait until its port is closed."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
