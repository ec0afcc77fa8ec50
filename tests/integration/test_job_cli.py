"""What `intentflow job` says before it starts (real Kafka, no JVM): where it will read from, and that a
group without committed offsets reads the whole topic."""
from __future__ import annotations

import uuid

import pytest

from jobs.personalization import KafkaEvents, describe_start
from tests.job_support import produce
from udfs.scenarios import shallow_session

pytestmark = [pytest.mark.integration]


def test_start_committed_without_offsets_says_it_reads_the_whole_topic(stack, topics):
    events = shallow_session("cli-1", 1_764_600_000_000)
    produce(stack.kafka_bootstrap, topics.raw, events)
    group = f"cli-{uuid.uuid4().hex[:8]}"
    text = describe_start(KafkaEvents(stack.kafka_bootstrap, topics.raw, group_id=group, start="committed"))
    assert "NO committed offsets" in text and f"all {len(events)} events" in text and group in text
    latest = describe_start(KafkaEvents(stack.kafka_bootstrap, topics.raw, group_id=group, start="latest"))
    assert "from latest" in latest and "NO committed" not in latest


def test_start_committed_with_offsets_says_how_far_behind(stack, topics):
    from kafka import KafkaConsumer

    events = shallow_session("cli-2", 1_764_600_000_000)
    produce(stack.kafka_bootstrap, topics.raw, events)
    group = f"cli-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(topics.raw, bootstrap_servers=stack.kafka_bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2)
    polled = 0
    while polled == 0:
        polled = sum(len(b) for b in consumer.poll(timeout_ms=2000, max_records=2).values())
    consumer.commit()
    consumer.close()
    text = describe_start(KafkaEvents(stack.kafka_bootstrap, topics.raw, group_id=group, start="committed"))
    assert f"({len(events) - polled} events behind)" in text
