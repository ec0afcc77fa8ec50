"""Operator of the smoke job (jobs/smoke.py): per-key count in keyed state, written to Redis."""
from __future__ import annotations

import json

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor


class CountToRedis(KeyedProcessFunction):
    """Counts records per ``session_id`` and sets ``{prefix}count:{session_id}`` in Redis.

    Also records the command line of the process it runs in (``{prefix}worker_cmdline``), so a test
    can tell thread mode (the operator runs inside the JVM) from process mode (a Python worker).
    """

    def __init__(self, redis_url: str, prefix: str):
        self.redis_url = redis_url
        self.prefix = prefix

    @staticmethod
    def key_of(raw: str) -> str:
        return json.loads(raw)["session_id"]

    def open(self, runtime_context: RuntimeContext) -> None:
        import os

        import redis

        self.redis = redis.Redis.from_url(self.redis_url)
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        self.redis.set(self.prefix + "worker_cmdline", cmdline, ex=600)

    def process_element(self, value: str, ctx: KeyedProcessFunction.Context):
        count = (self.count.value() or 0) + 1
        self.count.update(count)
        self.redis.set(f"{self.prefix}count:{ctx.get_current_key()}", count, ex=600)
        yield value

    def close(self) -> None:
        self.redis.close()
