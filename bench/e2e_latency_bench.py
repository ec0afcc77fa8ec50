"""Real-browser end-to-end latency: the visitor's last signal (the Compare click, page clock) to the page
updated (page clock), through collector, Kafka, the personalization job, Redis and the decision API.

The same path as ``tests/browser/test_e2e_personalization.py`` (which checks *that* it happens, not how
fast): one job and one collector, then ``--visits`` fresh browser profiles (new sessions), each scrolls past
75 %, hovers 3 s on the product card and clicks Compare. Appends one run (every visit's figure, min,
median, max) to ``bench/results/e2e_latency.json``. Needs the local stack (``intentflow stack up``),
Chromium and ``web/node_modules`` (``npm ci`` in web/).

    .venv/bin/python -m bench.e2e_latency_bench --visits 5
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "e2e_latency.json"
sys.path.insert(0, str(ROOT / "tests" / "browser"))

#: desktop Chrome UA without "HeadlessChrome": an automated-looking visitor is never personalized
VISITOR_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")
SHOWN = ("!document.getElementById('video-demo').hidden && !document.getElementById('price-comparison').hidden")


def summarize(signal_to_page_ms: list[float]) -> dict:
    """min / median / max of the visits' figures (ms), rounded to 0.1 ms."""
    return {"n": len(signal_to_page_ms), "min_ms": round(min(signal_to_page_ms), 1),
            "median_ms": round(statistics.median(signal_to_page_ms), 1), "max_ms": round(max(signal_to_page_ms), 1)}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        return None


@click.command()
@click.option("--visits", default=5, show_default=True, help="visitors (fresh browser profiles), one after the other")
def main(visits: int) -> None:
    """Measure signal -> page update in a real browser; append the run to bench/results/e2e_latency.json."""
    from aiohttp import web
    from kafka.admin import KafkaAdminClient

    from collector import app as collector_app
    from collector.decision import DecisionSettings, register
    from intentflow.stack import create_topics
    from support import Browser, ServerThread
    from tests.e2e_support import start_job
    from udfs.config import Topics, stack_settings

    stack = stack_settings()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    redis_prefix = f"bench-{uuid.uuid4().hex[:8]}:if:"
    create_topics(stack.kafka_bootstrap, prefix=prefix)
    topics = Topics.with_prefix(prefix)
    settings = collector_app.collector_settings(
        kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
        mount_decision=False, cors_origins=("*",))

    def make() -> web.Application:
        app = collector_app.create_app(settings)
        register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=redis_prefix))
        return app

    figures: list[float] = []
    try:
        with start_job(topics, redis_prefix), ServerThread(make) as srv:
            for _ in range(visits):
                with Browser(user_agent=VISITOR_UA, as_visitor=True) as browser:
                    browser.call("goto", url=srv.base_url + "/demo/?poll_ms=50")
                    browser.call("wheel_to_pct", pct=75)
                    browser.call("hover", selector="#product-card")
                    browser.call("sleep", ms=3000)
                    browser.call("click", selector="#compare")
                    last_signal_ms = browser.eval("window.intentflowDemo.tracker.lastCapturedTsMs")
                    browser.call("wait_for", timeout_ms=30000, expr=SHOWN)
                    applied = browser.eval("window.intentflowDemo.applied")
                    browser.call("goto", url="about:blank")
                shown = next(a for a in applied if a["action"] == "show_video_demo_and_price_comparison")
                figures.append(shown["applied_at_ms"] - last_signal_ms)
                click.echo(f"visit {len(figures)}: {figures[-1]:.1f} ms")
    finally:
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        try:
            admin.delete_topics(list(topics.all()))
        finally:
            admin.close()
        import redis
        client = redis.Redis.from_url(stack.redis_url)
        for key in client.scan_iter(match=redis_prefix + "*", count=1000):
            client.delete(key)
        client.close()

    run = {"signal_to_page_ms": figures, **summarize(figures), "window_ms": 20, "poll_ms": 50,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_1m": os.getloadavg()[0]},
           "commit": _commit(), "measured_at_ms": int(time.time() * 1000)}
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {
        "benchmark": "e2e_signal_to_page",
        "what": "real browser: last signal (Compare click) to page updated, page clock, through collector, "
                "Kafka, the job (--window-ms 20), Redis and the decision API (page polls every 50 ms)",
        "runs": []}
    doc["runs"].append(run)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    click.echo(f"signal -> page: min {run['min_ms']} ms, median {run['median_ms']} ms, max {run['max_ms']} ms"
               f" over {run['n']} visits; appended to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
