"""Redis AUTH and Kafka SASL/TLS settings reach every client (issue 14 item 6), without services.

The end-to-end half (a password-protected redis-server read and written by the job, the writer and the
decision API) is tests/integration/test_redis_faults.py.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from collector.settings import collector_settings
from collector.decision import decision_settings
from udfs.config import FLINK_KAFKA_SHADED_PREFIX, KafkaSecurity, kafka_security, redact_url, redis_url_with_auth, stack_settings

ROOT = Path(__file__).resolve().parents[2]
SASL_ENV = {"INTENTFLOW_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "INTENTFLOW_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "INTENTFLOW_KAFKA_SASL_USERNAME": "collector", "INTENTFLOW_KAFKA_SASL_PASSWORD": 'se"cr\\et',
            "INTENTFLOW_KAFKA_SSL_CAFILE": "/etc/intentflow/ca.pem"}


def test_kafka_security_from_the_environment_for_both_clients():
    sec = kafka_security(SASL_ENV)
    assert sec.python_kwargs() == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                   "sasl_plain_username": "collector", "sasl_plain_password": 'se"cr\\et',
                                   "ssl_cafile": "/etc/intentflow/ca.pem"}
    java = sec.java_properties()
    assert java["security.protocol"] == "SASL_SSL" and java["sasl.mechanism"] == "SCRAM-SHA-512"
    assert java["sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                        'username="collector" password="se\\"cr\\\\et";')
    assert (java["ssl.truststore.type"], java["ssl.truststore.location"]) == ("PEM", "/etc/intentflow/ca.pem")
    shaded = sec.java_properties(FLINK_KAFKA_SHADED_PREFIX)["sasl.jaas.config"]  # the job's relocated client
    assert shaded.startswith("org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule ")
    assert 'se"cr' not in repr(sec) and "sasl_password" not in repr(sec)  # no password in logs
    assert collector_settings(env=SASL_ENV).kafka_security == sec
    assert stack_settings(SASL_ENV).kafka_security == sec
    assert KafkaSecurity().python_kwargs() == {} and KafkaSecurity().java_properties() == {}


@pytest.mark.parametrize("env,match", [
    ({"INTENTFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, "security protocol"),
    ({"INTENTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "INTENTFLOW_KAFKA_SASL_MECHANISM": "GSSAPI",
      "INTENTFLOW_KAFKA_SASL_USERNAME": "u", "INTENTFLOW_KAFKA_SASL_PASSWORD": "p"}, "mechanism"),
    ({"INTENTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "INTENTFLOW_KAFKA_SASL_MECHANISM": "PLAIN"},
     "user name and password"),
])
def test_inconsistent_kafka_security_is_a_clear_error(env, match):
    with pytest.raises(ValueError, match=match):
        kafka_security(env)


def test_redis_credentials_from_the_environment_reach_the_url_of_every_redis_client():
    env = {"INTENTFLOW_REDIS_URL": "redis://10.0.0.5:6380/2", "INTENTFLOW_REDIS_USERNAME": "job",
           "INTENTFLOW_REDIS_PASSWORD": "p@ss:w/rd"}
    url = "redis://job:p%40ss%3Aw%2Frd@10.0.0.5:6380/2"
    assert stack_settings(env).redis_url == url  # the job's writer and the CLI read this
    assert decision_settings(env).redis_url == url  # the decision API
    assert redis_url_with_auth("rediss://h:6379/0", None, "x") == "rediss://:x@h:6379/0"
    assert redis_url_with_auth("redis://a:b@h:6379/0", "c", "d") == "redis://a:b@h:6379/0"  # URL wins
    assert redact_url(url) == "redis://job:***@10.0.0.5:6380/2"
    import redis

    kwargs = redis.connection.parse_url(url)
    assert (kwargs["username"], kwargs["password"]) == ("job", "p@ss:w/rd")


_KAFKA_CLIENTS = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}
_LOCAL_STACK_PROBE = 'f"127.0.0.1:{KAFKA_PORT}"'  # intentflow.services.kafka_broker's health probe of its own plaintext broker
#: Modules whose clients only talk to a broker they start themselves (plaintext, loopback).
_OWN_BROKER_ONLY = {"intentflow/chaos_services.py", "intentflow/services/own_broker.py"}


def test_every_kafka_client_of_the_services_and_cli_takes_the_security_settings():
    missing, seen = [], 0
    for folder in ("collector", "intentflow", "jobs", "operators", "udfs"):
        for path in (ROOT / folder).rglob("*.py"):
            if str(path.relative_to(ROOT)) in _OWN_BROKER_ONLY:
                continue
            text = path.read_text()
            for node in ast.walk(ast.parse(text)):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in _KAFKA_CLIENTS):
                    continue
                seen += 1
                if ast.get_source_segment(text, node).count(_LOCAL_STACK_PROBE):
                    continue
                if not any(kw.arg is None for kw in node.keywords):  # a **kwargs of the security settings
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert seen >= 7 and missing == []
    job = (ROOT / "jobs" / "personalization.py").read_text()
    builders = job.count("KafkaSource.builder()") + job.count("KafkaSink.builder()")
    # every Kafka source and sink builder applies the properties it is handed, and build_pipeline hands the
    # pipeline's to each of the three seams (events, rules, sinks)
    assert builders == job.count("(kafka_properties or {}).items()") == 3
    assert job.count("pipeline.kafka_properties)") == 3
