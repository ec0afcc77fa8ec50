"""Issue 17 in the stream: the job (Flink mini-cluster, ``--page-rates``: the operator's PageStats ->
Decider path) scores the engaged visitor measurably above the quick leaver with intent-lr/2 and the default
rules, once the site's history has been seen.

The history is decided before the two visitors arrive (a live job, fed in two steps): page rates are
cross-session, so what they are at a visitor's page view depends on which other sessions the job has
processed by then (the reason they are opt-in: JobConfig.page_rates).
"""
from __future__ import annotations

from collections import Counter

import pytest

from tests.job_support import LiveJob, produce, session_counts, wait_for
from tests.unit.test_intent_moves import engaged_visitor, quick_leaver, site_history
from udfs.decide import COUNT_FIELDS
from udfs.session import event_order_key

pytestmark = [pytest.mark.integration, pytest.mark.flink]


def _all_decided(client, rp: str, events: list[dict]) -> bool:
    want = Counter(e["session_id"] for e in events)
    counts = session_counts(client, rp)
    return all(sum(counts.get(sid, {}).get(f, 0) for f in COUNT_FIELDS) == n for sid, n in want.items())


def test_engaged_visitor_scores_above_the_quick_leaver_in_the_stream(stack, topics, redis_client):
    client, prefix = redis_client
    rp = prefix + "if:"
    history = sorted(site_history(), key=event_order_key)
    visitors = sorted(engaged_visitor() + quick_leaver(), key=event_order_key)
    produce(stack.kafka_bootstrap, topics.raw, history)
    with LiveJob(topics, rp, "--page-rates", "--model-version", "2") as job:
        wait_for(lambda: _all_decided(client, rp, history), 180, "the site history to be decided", job)
        produce(stack.kafka_bootstrap, topics.raw, visitors)
        wait_for(lambda: _all_decided(client, rp, visitors), 120, "both visitors to be decided", job)
    engaged = float(client.hget(f"{rp}session:engaged", "intent_score"))
    leaver = float(client.hget(f"{rp}session:leaver", "intent_score"))
    assert engaged >= 5 * leaver and engaged - leaver >= 0.03, (engaged, leaver)
    assert client.hget(f"{rp}session:engaged", "model_version") == "intent-lr/2"
