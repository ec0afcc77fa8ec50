"""The job's own metrics reach Flink's Prometheus reporter: a live job on the mini-cluster decides real
scenario sessions, a late event and malformed records; a scrape of the reporter then has every metric of
``udfs.opmetrics.METRICS`` with a non-zero value."""
from __future__ import annotations

import re
import socket

import requests
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.job_support import LiveJob, produce, session_counts, wait_for
from tests.unit.test_dashboard import FLINK_BUILTIN
from udfs.config import JobConfig
from udfs.contract import make_event
from udfs.decide import COUNT_FIELDS
from udfs.opmetrics import HISTOGRAMS, METRICS, prometheus_name
from udfs.scenarios import article_session, shallow_session

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_764_400_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, list[tuple[dict, float]]]:
    """``{sample name: [(labels, value)]}`` of the reporter's /metrics (empty while it is not up)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return {}
    out: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _non_zero(samples, metric: str) -> list[tuple[dict, float]]:
    base = prometheus_name(metric)
    names = [base, base + "_count"] if metric in HISTOGRAMS else [base]
    return [(labels, v) for name in names for labels, v in samples.get(name, []) if v > 0]


def test_every_job_metric_is_scraped_with_a_non_zero_value(stack, topics, redis_client):
    client, prefix = redis_client
    rp = prefix + "if:"
    events = article_session("metrics-a", T0) + shallow_session("metrics-b", T0 + 7)
    # older than the allowed lateness behind its session's newest event: a late_event
    late_ts_ms = T0 - JobConfig().allowed_lateness_ms - 60_000
    late = make_event("scroll", session_id="metrics-a", client_ts_ms=late_ts_ms, source_key="late-m",
                      props={"scroll_depth_pct": 50.0, "scroll_depth_pct_raw": 50.0, "offset_px": 1,
                             "document_height_px": 2})
    malformed = [b"{not json", orjson.dumps({"event_id": "x", "type": "teleport"})]
    port = _free_port()
    with LiveJob(topics, rp, "--prometheus-port", str(port), "--rates-every-s", "2") as job:
        produce(stack.kafka_bootstrap, topics.raw, [*sorted(events, key=lambda e: e["ts_ms"]), late, *malformed])
        wait_for(lambda: sum(c[f] for c in session_counts(client, rp).values() for f in COUNT_FIELDS)
                 >= len(events) + 1, 180, "every event processed", job=job)

        def all_there():
            samples = _scrape(port)
            ok = all(_non_zero(samples, m) for m in METRICS) and FLINK_BUILTIN <= set(samples)
            return samples if ok else None

        try:
            samples = wait_for(all_there, 30, "every job metric non-zero in the reporter's scrape", job=job)
        except AssertionError:
            samples = _scrape(port)
            missing = [m for m in METRICS if not _non_zero(samples, m)] + sorted(FLINK_BUILTIN - set(samples))
            ours = sorted(n for n in samples if "intentflow" in n)
            raise AssertionError(f"missing or zero: {missing}; our series: {ours}") from None
        wait_for(lambda: re.search(rf"totals {len(events) + 1} events", job.log_path.read_text()), 30,
                 "a rate line with every event counted", job=job)
        log = job.log_path.read_text()

    by_label = {m: {labels.get(METRICS[m]) for labels, _ in _non_zero(samples, m)} for m in METRICS if METRICS[m]}
    types = {e["type"] for e in events}
    assert types <= by_label["events_in"]
    assert {"late_event"} < by_label["dlq_records"]  # and the malformed records' reasons
    assert {"deep_engagement_product", "shallow_engagement"} <= by_label["actions"]
    assert [v for _, v in _non_zero(samples, "late_events")] == [1.0]
    assert sum(v for _, v in _non_zero(samples, "model_in_force")) == 1.0
    assert len(by_label["ruleset_in_force"]) == 1
    # the status line the job printed at start (issue 15 item 7)
    (status,) = [line for line in log.splitlines() if line.startswith("intentflow job: topic")]
    assert f"topic {topics.raw}" in status and "from earliest" in status and "parallelism 1" in status
    assert "model intent-lr/" in status and "web UI http://127.0.0.1:" in status
