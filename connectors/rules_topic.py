"""The ``rules`` topic: publish a validated ruleset, read the newest one (kafka-python; no Flink, no CLI);
and the ``page-rates`` topic: publish a page-rates table (udfs/page_rates.py; read the newest with
:func:`latest_ruleset_record`, which returns the newest record of any topic).

The job reads the topic into broadcast state and swaps its engine when a valid ruleset arrives
(``udfs.rules.reload``); the collector serves the newest one to edge clients (``collector.edge``); the
CLI publishes and shows it (``intentflow.rules_cmd``). Records: key :data:`RULESET_KEY` (one key, so a
compacted topic keeps the latest), value = the validated ruleset as compact UTF-8 JSON, header
``rules_version``.
"""
from __future__ import annotations

import json
from typing import Any

#: Kafka record key of every ruleset record.
RULESET_KEY = b"ruleset"
#: Kafka record key of every page-rates table record (on the ``page-rates`` topic, udfs/page_rates.py).
PAGE_RATES_KEY = b"page_rates"


class MissingTopicError(LookupError):
    """The rules topic does not exist on the broker."""


def publish_ruleset(ruleset: dict[str, Any], bootstrap: str, topic: str, timeout_s: float = 10.0) -> tuple[int, int]:
    """Validate ``ruleset`` and produce it to ``topic`` (acks=all); return ``(partition, offset)``.

    Raises:
        udfs.rules.RulesetError: the ruleset is invalid (nothing is produced).
        kafka.errors.KafkaError: the broker did not take the record within ``timeout_s``.
    """
    from kafka import KafkaProducer  # noqa: PLC0415

    from udfs.config import kafka_client_kwargs  # noqa: PLC0415
    from udfs.rules import validate_ruleset  # noqa: PLC0415

    normalized = validate_ruleset(ruleset)
    value = json.dumps(normalized, separators=(",", ":"), sort_keys=False).encode("utf-8")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, max_block_ms=int(timeout_s * 1000),
                             bootstrap_timeout_ms=int(timeout_s * 1000), **kafka_client_kwargs())
    try:
        future = producer.send(topic, key=RULESET_KEY, value=value,
                               headers=[("rules_version", normalized["rules_version"].encode())])
        meta = future.get(timeout=timeout_s)
        producer.flush(timeout_s)
        return meta.partition, meta.offset
    finally:
        producer.close(timeout=timeout_s)


def publish_page_rates(table, bootstrap: str, topic: str, timeout_s: float = 10.0) -> tuple[int, int]:
    """Produce a validated :class:`udfs.page_rates.PageRatesTable` to ``topic`` (acks=all, key
    :data:`PAGE_RATES_KEY`, header ``page_rates_version``); return ``(partition, offset)``.

    Raises:
        kafka.errors.KafkaError: the broker did not take the record within ``timeout_s``.
    """
    from kafka import KafkaProducer  # noqa: PLC0415

    from udfs.config import kafka_client_kwargs  # noqa: PLC0415

    # tables can be MBs (MAX_PAGES): allow records up to the broker's default message.max.bytes plus headroom
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, compression_type="gzip",
                             max_request_size=16 * 2**20, max_block_ms=int(timeout_s * 1000),
                             bootstrap_timeout_ms=int(timeout_s * 1000), **kafka_client_kwargs())
    try:
        future = producer.send(topic, key=PAGE_RATES_KEY, value=table.to_json().encode("utf-8"),
                               headers=[("page_rates_version", table.version.encode())])
        meta = future.get(timeout=timeout_s)
        producer.flush(timeout_s)
        return meta.partition, meta.offset
    finally:
        producer.close(timeout=timeout_s)


def latest_ruleset_record(bootstrap: str, topic: str, timeout_s: float = 10.0) -> tuple[bytes, int, int] | None:
    """The value, partition and offset of the newest record (by record timestamp) on ``topic``, or None
    when the topic is empty. Reads only the last record of each partition.

    Raises:
        MissingTopicError: ``topic`` does not exist on the broker.
    """
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    from udfs.config import kafka_client_kwargs  # noqa: PLC0415

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000), bootstrap_timeout_ms=int(timeout_s * 1000),
                             **kafka_client_kwargs())
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise MissingTopicError(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        wanted = {tp for tp in tps if ends[tp] > 0}
        for tp in wanted:
            consumer.seek(tp, ends[tp] - 1)
        best = None
        for record in consumer:
            tp = TopicPartition(record.topic, record.partition)
            if tp in wanted and record.offset == ends[tp] - 1:
                if best is None or record.timestamp > best[0]:
                    best = (record.timestamp, record.value, record.partition, record.offset)
                wanted.discard(tp)
            if not wanted:
                break
        return None if best is None else best[1:]
    finally:
        consumer.close()
