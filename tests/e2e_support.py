"""``start_job`` for the browser end-to-end test: the personalization job, live, on the test's topics."""
from __future__ import annotations

import time
import uuid

from tests.job_support import LiveJob, produce, wait_for
from udfs.contract import make_event


def start_job(topics, redis_prefix: str, timeout_s: float = 120) -> LiveJob:
    """Start the job reading ``topics.raw`` from the earliest offset and writing under ``redis_prefix``;
    return once it has processed a warm-up event (session ``warmup-...``), so what the test measures
    next does not include the job's start-up. Use as a context manager.

    Raises:
        AssertionError: the job exited or did not process the warm-up event within ``timeout_s``.
    """
    import redis

    from udfs.config import stack_settings

    settings = stack_settings()
    job = LiveJob(topics, redis_prefix, "--window-ms", "20")
    session_id = f"warmup-{uuid.uuid4().hex[:8]}"
    produce(settings.kafka_bootstrap, topics.raw, [make_event(
        "page_view", session_id=session_id, client_ts_ms=int(time.time() * 1000), source_key=session_id,
        props={"title": "warm-up"})])
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        wait_for(lambda: client.exists(f"{redis_prefix}session:{session_id}"), timeout_s,
                 "the job to process its warm-up event", job)
    except BaseException:
        job.stop()
        raise
    finally:
        client.close()
    return job
