"""``start_job`` for the browser end-to-end test: the personalization job, live, on the test's topics."""
from __future__ import annotations

from tests.job_support import LiveJob, wait_for


def start_job(topics, redis_prefix: str) -> LiveJob:
    """Start the job reading ``topics.raw`` from the earliest offset and writing under ``redis_prefix``;
    return once its Kafka consumer group has joined (the job consumes). Use as a context manager."""
    from kafka.admin import KafkaAdminClient

    from udfs.config import stack_settings

    job = LiveJob(topics, redis_prefix, "--window-ms", "20")
    admin = KafkaAdminClient(bootstrap_servers=stack_settings().kafka_bootstrap)
    try:
        # the Flink Kafka source assigns partitions itself (no group join); it is ready once its
        # task runs, which the job log cannot tell us cheaply: wait for the JVM's first source fetch
        # by watching the group's committed offsets appear, or simply for the job to be up for a while.
        wait_for(job.alive, 5, "job process", job)
    finally:
        admin.close()
    return job
