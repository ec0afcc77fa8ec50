"""Kafka SASL and TLS settings reach the collector, the CLI's clients and the job (issue 14 item 6).

A private broker (intentflow/services/own_broker.py, never the shared one) gets two more listeners
with mechanism ``PLAIN`` and one user: ``SASL_PLAINTEXT``, and ``SASL_SSL`` with a self-signed certificate for
127.0.0.1 made by keytool (the clients trust it through ``INTENTFLOW_KAFKA_SSL_CAFILE`` and check the
host name against it). The test runs once per listener; every client connects to that listener only,
configured by nothing but the ``INTENTFLOW_KAFKA_*`` environment variables of udfs.config:

- the collector (kafka-python producer) writes a batch, and answers 503, not 500, with a wrong password;
- topic creation (``intentflow.services.kafka_broker.create_topics``) and a consumer read through SASL;
- the Flink job (Java client: ``sasl.jaas.config`` from ``KafkaSecurity.java_properties``) reads the
  events and writes its DLQ record back through SASL, in a bounded run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import create_app
from collector.settings import collector_settings
from intentflow.services.kafka_broker import create_topics
from intentflow.services.own_broker import OwnBroker, free_port
from udfs.config import Topics, kafka_client_kwargs

pytestmark = [pytest.mark.integration, pytest.mark.flink]

USER, PASSWORD = "collector", "s3cret-" + uuid.uuid4().hex[:6]


PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
#: Password of the broker's throw-away PKCS12 keystore (made per test run by keytool).
KEYSTORE_PASSWORD = "ks-" + uuid.uuid4().hex[:8]


def self_signed_certificate(folder) -> tuple[str, str]:
    """``(PKCS12 keystore, PEM certificate)`` paths: a key pair and a self-signed certificate for the
    subject alternative name IP 127.0.0.1, made by the JDK's keytool (raises CalledProcessError)."""
    keystore, pem = folder / "broker.p12", folder / "broker-ca.pem"
    subprocess.run(["keytool", "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
                    "-validity", "2", "-dname", "CN=127.0.0.1", "-ext", "SAN=ip:127.0.0.1",
                    "-storetype", "PKCS12", "-keystore", str(keystore), "-storepass", KEYSTORE_PASSWORD,
                    "-keypass", KEYSTORE_PASSWORD], check=True, capture_output=True)
    subprocess.run(["keytool", "-exportcert", "-rfc", "-alias", "broker", "-keystore", str(keystore),
                    "-storepass", KEYSTORE_PASSWORD, "-file", str(pem)], check=True, capture_output=True)
    return str(keystore), str(pem)


class SaslBroker(OwnBroker):
    """An OwnBroker with SASL_PLAINTEXT and SASL_SSL listeners (PLAIN, one user) beside its plaintext one."""

    def __init__(self, folder) -> None:
        super().__init__(folder)
        self.ports = {protocol: free_port() for protocol in PROTOCOLS}
        keystore, self.ca_pem = self_signed_certificate(folder)
        text = self.config.read_text()
        extra = ",".join(f"{protocol}://127.0.0.1:{port}" for protocol, port in self.ports.items())
        lines = []
        for line in text.splitlines():
            if line.startswith(("listeners=", "advertised.listeners=")):
                line += "," + extra
            elif line.startswith("listener.security.protocol.map="):
                line += "".join(f",{protocol}:{protocol}" for protocol in PROTOCOLS)
            lines.append(line)
        jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
        lines += ["sasl.enabled.mechanisms=PLAIN",
                  f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
                  f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}",
                  "ssl.keystore.type=PKCS12", f"ssl.keystore.location={keystore}",
                  f"ssl.keystore.password={KEYSTORE_PASSWORD}", f"ssl.key.password={KEYSTORE_PASSWORD}"]
        self.config.write_text("\n".join(lines) + "\n")

    def bootstrap_for(self, protocol: str) -> str:
        return f"127.0.0.1:{self.ports[protocol]}"

    def env(self, protocol: str, password: str = PASSWORD) -> dict[str, str]:
        env = {"INTENTFLOW_KAFKA_BOOTSTRAP": self.bootstrap_for(protocol),
               "INTENTFLOW_KAFKA_SECURITY_PROTOCOL": protocol, "INTENTFLOW_KAFKA_SASL_MECHANISM": "PLAIN",
               "INTENTFLOW_KAFKA_SASL_USERNAME": USER, "INTENTFLOW_KAFKA_SASL_PASSWORD": password}
        if protocol == "SASL_SSL":
            env["INTENTFLOW_KAFKA_SSL_CAFILE"] = self.ca_pem
        return env


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    broker = SaslBroker(tmp_path_factory.mktemp("sasl-kafka"))
    broker.start()
    yield broker
    broker.stop()


def _read_all(bootstrap: str, topic: str, env: dict[str, str]) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             **kafka_client_kwargs(env))
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        total = sum(consumer.end_offsets(parts).values())
        out: list[bytes] = []
        for _ in range(60):
            for batch in consumer.poll(timeout_ms=500).values():
                out += [r.value for r in batch]
            if len(out) >= total:
                break
        return out
    finally:
        consumer.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_collector_topics_consumer_and_job_through_sasl(sasl_broker, monkeypatch, protocol):
    env = sasl_broker.env(protocol)
    bootstrap = sasl_broker.bootstrap_for(protocol)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    prefix = f"t{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    assert set(create_topics(bootstrap, prefix=prefix)) == set(topics.all())

    settings = collector_settings(env={**env, "INTENTFLOW_TOPIC_PREFIX": prefix}, rate_limit_per_s=0,
                                  mount_decision=False, produce_timeout_s=5)
    assert settings.kafka_security.sasl
    events = [{"event_id": str(uuid.uuid4()), "type": "click", "session_id": "sasl-1", "client_ts_ms": 1_764_000_000_000 + i,
               "props": {"element_id": f"e{i}", "element_role": "price"}} for i in range(3)]
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        resp = await client.post("/v1/events", json={"events": events + [{"type": "teleport", "session_id": "sasl-1"}]})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["accepted"] == 3
    finally:
        await client.close()

    refused = [sasl_broker.env(protocol, "wrong")]
    if protocol == "SASL_SSL":  # the broker's certificate is checked: the system's trust store lacks it
        refused.append({k: v for k, v in env.items() if k != "INTENTFLOW_KAFKA_SSL_CAFILE"})
    for refused_env in refused:
        wrong = collector_settings(env={**refused_env, "INTENTFLOW_TOPIC_PREFIX": prefix},
                                   rate_limit_per_s=0, mount_decision=False, produce_timeout_s=5)
        client = TestClient(TestServer(create_app(wrong)))
        await client.start_server()
        try:
            resp = await client.post("/v1/events", json={"events": events})
            assert resp.status == 503 and (await resp.json())["error"] == "kafka_unavailable"
        finally:
            await client.close()

    raw = _read_all(bootstrap, topics.raw, env)
    assert sorted(orjson.loads(v)["event_id"] for v in raw) == sorted(e["event_id"] for e in events)

    # the job (Java client) reads through SASL and writes back through SASL: a bounded run over the topic
    # plus one record it must put in the DLQ
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, **kafka_client_kwargs(env))
    producer.send(topics.raw, key=b"sasl-1", value=b"{not json")
    producer.flush(30)
    producer.close()
    dlq_before = len(_read_all(bootstrap, topics.dlq, env))
    job_env = {**env, "INTENTFLOW_TOPIC_PREFIX": prefix}
    res = subprocess.run([sys.executable, "-m", "jobs.personalization", "--bounded", "--start", "earliest",
                          "--group-id", f"sasl-{uuid.uuid4().hex[:6]}", "--redis-prefix", f"{prefix}:"],
                         env={**os.environ, **job_env}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    dlq = _read_all(bootstrap, topics.dlq, env)
    assert len(dlq) == dlq_before + 1 and orjson.loads(dlq[-1])["reason"] == "invalid_json"
