"""The local stack's real parts answer: Kafka produce/consume, Redis set/get, topics exist."""
from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def test_kafka_round_trip_through_the_broker(stack, topics):
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    sent = {f"session-{i}".encode(): uuid.uuid4().hex.encode() for i in range(20)}
    for key, value in sent.items():
        producer.send(topics.raw, key=key, value=value)
    producer.flush(10)
    producer.close()

    consumer = KafkaConsumer(topics.raw, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, enable_auto_commit=False)
    got = {}
    for record in consumer:
        got[record.key] = record.value
        if len(got) == len(sent):
            break
    consumer.close()
    assert got == sent


def test_topics_have_the_configured_partitions(stack, topics):
    from kafka import KafkaConsumer

    from udfs.config import TOPIC_PARTITIONS

    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    try:
        assert len(consumer.partitions_for_topic(topics.raw)) == TOPIC_PARTITIONS["signals.raw"]
        assert len(consumer.partitions_for_topic(topics.dlq)) == TOPIC_PARTITIONS["signals.dlq"]
    finally:
        consumer.close()


def test_redis_set_get(redis_client):
    client, prefix = redis_client
    client.set(prefix + "k", "v", ex=60)
    assert client.get(prefix + "k") == "v"
    assert 0 < client.ttl(prefix + "k") <= 60


def test_stack_up_twice_is_harmless(stack):
    from intentflow import stack as local_stack

    before = local_stack.status()
    local_stack.up()
    assert local_stack.status() == before
