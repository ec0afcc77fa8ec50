"""Latency of the decision API, ``GET /v1/decision?session_id=...`` (collector/decision.py), on loopback.

The server runs in its own process (a bare aiohttp application with ``collector.decision.register``,
one event loop, as the collector runs it) against the real Redis of the local stack; the client is one
aiohttp session with keep-alive sending requests one after the other, so each figure is one full HTTP
round trip: client -> server -> Redis HGETALL -> JSON answer. Cases:

* ``redis``: the session has an action in Redis (hash written as the job writes it, contracts §5);
* ``none``: no action for the session (the default answer);
* ``redis_unavailable``: the server's Redis URL points at a closed port (connection refused).

Target (issue 6): p99 < 5 ms on this machine for ``redis`` and ``none``.

Run: ``.venv/bin/python bench/decision_bench.py [--requests 3000] [--warmup 300]``; prints a table and
writes ``bench/results/decision_bench.json``. Needs Redis (``intentflow stack up``).
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.redis_store import RedisKeys  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "decision_bench.json"
TARGET_P99_MS = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, redis_url: str, prefix: str) -> None:
    """Server process: the decision API alone on 127.0.0.1:port."""
    from aiohttp import web

    from collector.decision import DecisionSettings, register

    app = web.Application()
    register(app, DecisionSettings(redis_url=redis_url, redis_prefix=prefix))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True)


def _wait_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"decision server did not listen on {port}")


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of ``values_ms`` (ms, nearest-rank percentiles)."""
    ordered = sorted(values_ms)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]

    return {"n": len(ordered), "p50_ms": round(rank(50), 3), "p95_ms": round(rank(95), 3),
            "p99_ms": round(rank(99), 3), "max_ms": round(ordered[-1], 3),
            "mean_ms": round(statistics.fmean(ordered), 3)}


async def _measure(port: int, session_id: str, n: int, warmup: int, expect_source: str) -> dict:
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/decision"
    client_ms: list[float] = []
    lookup_ms: list[float] = []
    async with aiohttp.ClientSession() as http:
        for i in range(warmup + n):
            t0 = time.perf_counter_ns()
            async with http.get(url, params={"session_id": session_id}) as resp:
                body = await resp.json()
            dt_ms = (time.perf_counter_ns() - t0) / 1e6
            if body.get("source") != expect_source:
                raise RuntimeError(f"expected source {expect_source}, got {body}")
            if i >= warmup:
                client_ms.append(dt_ms)
                lookup_ms.append(body["lookup_ms"])
    return {"round_trip": percentiles(client_ms), "server_redis_lookup": percentiles(lookup_ms)}


def _run_case(redis_url: str, prefix: str, session_id: str, n: int, warmup: int, expect: str) -> dict:
    port = _free_port()
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_serve, args=(port, redis_url, prefix), daemon=True)
    proc.start()
    try:
        _wait_port(port)
        return asyncio.run(_measure(port, session_id, n, warmup, expect))
    finally:
        proc.terminate()
        proc.join(10)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        return None


@click.command()
@click.option("--requests", "n", default=3000, show_default=True, help="timed requests per case")
@click.option("--warmup", default=300, show_default=True, help="untimed requests first (connection, caches)")
def main(n: int, warmup: int) -> None:
    """Measure the decision API's round-trip latency and write bench/results/decision_bench.json."""
    import redis

    from udfs.config import stack_settings

    redis_url = stack_settings().redis_url
    prefix = f"bench-{uuid.uuid4().hex[:8]}:if:"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    sid = str(uuid.uuid4())
    key = RedisKeys(prefix).action(sid)
    now_ms = int(time.time() * 1000)
    client.hset(key, mapping={
        "session_id": sid, "action": "show_video_demo_and_price_comparison", "params": "{}",
        "rule_id": "deep_engagement_product", "rule_version": 1, "rules_version": "2026-11-30.1",
        "model_version": "intent-lr/1", "intent_score": 0.73, "event_id": str(uuid.uuid4()),
        "event_ts_ms": now_ms, "decided_at_ms": now_ms + 3})
    client.expire(key, 600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    try:
        cases = {
            "redis": _run_case(redis_url, prefix, sid, n, warmup, "redis"),
            "none": _run_case(redis_url, prefix, str(uuid.uuid4()), n, warmup, "none"),
            "redis_unavailable": _run_case(f"redis://127.0.0.1:{closed_port}/0", prefix, sid,
                                           max(100, n // 6), max(20, warmup // 6), "redis_unavailable"),
        }
    finally:
        client.delete(key)
        client.close()
    result = {
        "benchmark": "decision_api_round_trip",
        "what": "sequential GET /v1/decision over one keep-alive connection on loopback; server in its own "
                "process with the real Redis of the local stack",
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": all(cases[c]["round_trip"]["p99_ms"] < TARGET_P99_MS for c in ("redis", "none")),
        "requests_per_case": n, "warmup": warmup, "cases": cases,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_1m": os.getloadavg()[0]},
        "commit": _commit(), "measured_at_ms": int(time.time() * 1000),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"{'case':<20}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  {'redis p99 ms':>12}")
    for name, c in cases.items():
        rt, lk = c["round_trip"], c["server_redis_lookup"]
        click.echo(f"{name:<20}{rt['p50_ms']:>9.3f}{rt['p95_ms']:>9.3f}{rt['p99_ms']:>9.3f}{rt['max_ms']:>9.3f}"
                   f"  {lk['p99_ms']:>12.3f}")
    click.echo(f"target p99 < {TARGET_P99_MS} ms (redis, none): {'met' if result['meets_target'] else 'NOT met'}"
               f"; wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
