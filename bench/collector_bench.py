"""Collector throughput and request latency against the real local broker.

Usage: ``.venv/bin/python bench/collector_bench.py [--events 20000] [--batch 25] [--concurrency 4]``.
Starts the collector in-process (aiohttp test server on a free port, so the load generator shares the
2 cores), posts ``--events`` valid events in batches of ``--batch`` (the SDK's default batch is 25)
from ``--concurrency`` concurrent clients, each answered only after the broker acknowledged, into a
fresh topic set (unique prefix, deleted afterwards). Prints events/s and request latency p50/p95/p99 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import orjson
from aiohttp.test_utils import TestClient, TestServer


async def run(n_events: int, batch: int, concurrency: int, bootstrap: str, prefix: str) -> None:
    from collector.app import collector_settings, create_app

    settings = collector_settings(kafka_bootstrap=bootstrap, topic_raw=prefix + "signals.raw",
                                  topic_dlq=prefix + "signals.dlq", rate_limit_per_s=0, mount_decision=False)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    now_ms = int(time.time() * 1000)
    bodies = []
    for b in range(0, n_events, batch):
        events = [{"event_id": str(uuid.uuid4()), "type": "click", "session_id": f"s{i % 200}", "seq": i,
                   "client_ts_ms": now_ms + i, "page": {"url": "https://shop.example/p/1", "item_id": "1"},
                   "context": {"viewport_w_px": 1280, "viewport_h_px": 800},
                   "props": {"element_id": "b", "element_role": "product_card", "x_px": 1, "y_px": 2}}
                  for i in range(b, min(b + batch, n_events))]
        bodies.append(orjson.dumps({"sent_at_ms": now_ms, "events": events}))
    await client.post("/v1/events", data=bodies[0])  # connect the producer before timing
    queue = list(reversed(bodies[1:]))
    latencies_ms: list[float] = []
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        while queue:
            body = queue.pop()
            t = time.perf_counter()
            resp = await client.post("/v1/events", data=body, headers={"Content-Type": "text/plain"})
            out = await resp.json()
            latencies_ms.append((time.perf_counter() - t) * 1000)
            assert resp.status == 200, out
            accepted += out["accepted"]

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await client.close()
    q = statistics.quantiles(latencies_ms, n=100)
    print(f"{accepted} events in {len(latencies_ms)} requests of {batch}, concurrency {concurrency}: "
          f"{accepted / elapsed:,.0f} events/s; request latency p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, "
          f"p99 {q[98]:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    from kafka.admin import KafkaAdminClient

    from intentflow.stack import create_topics
    from udfs.config import Topics, stack_settings

    bootstrap = stack_settings().kafka_bootstrap
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    create_topics(bootstrap, prefix=prefix)
    try:
        asyncio.run(run(args.events, args.batch, args.concurrency, bootstrap, prefix))
    finally:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.delete_topics(list(Topics.with_prefix(prefix).all()))
        admin.close()


if __name__ == "__main__":
    main()
