"""Smoke job: read JSON records from a Kafka topic through the Flink Kafka connector and write a
per-key count into Redis (keyed state in a Python operator, thread mode).

Proves the stack's wiring: connector jar, thread-mode Python, keyed state, Redis from an operator.
Runs on the local mini-cluster (``python -m jobs.smoke``) or a standalone cluster
(``flink run -py jobs/smoke.py``). Reads the topic from earliest to the offsets at start (bounded).

Usage: python -m jobs.smoke --topic T --redis-prefix P [--bootstrap host:port] [--redis-url URL]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from operators.flink_env import create_env  # noqa: E402
from udfs.config import stack_settings  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    settings = stack_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--redis-prefix", required=True)
    parser.add_argument("--bootstrap", default=settings.kafka_bootstrap)
    parser.add_argument("--redis-url", default=settings.redis_url)
    args = parser.parse_args(argv)

    env = create_env(parallelism=1)
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource

    from operators.smoke import CountToRedis

    source = (KafkaSource.builder().set_bootstrap_servers(args.bootstrap).set_topics(args.topic)
              .set_group_id(f"smoke-{args.redis_prefix}")
              .set_starting_offsets(KafkaOffsetsInitializer.earliest())
              .set_bounded(KafkaOffsetsInitializer.latest())
              .set_value_only_deserializer(SimpleStringSchema()).build())
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "signals")
    (stream.key_by(CountToRedis.key_of, key_type=Types.STRING())
     .process(CountToRedis(args.redis_url, args.redis_prefix), output_type=Types.STRING()))
    env.execute("intentflow-smoke")


if __name__ == "__main__":
    main()
