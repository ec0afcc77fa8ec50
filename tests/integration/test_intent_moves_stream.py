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
from tests.unit.test_intent_moves import T0, engaged_visitor, quick_leaver, site_history, view
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


def test_a_page_rates_table_gives_the_ranking_in_the_stream_and_a_published_one_takes_over(stack, topics,
                                                                                           redis_client, tmp_path):
    """The deterministic path (udfs/page_rates.py): no live counting; the job starts with a table built from the
    site's history (``--page-rates-table``), scores the two visitors with it, then follows a newer table
    published on the page-rates topic (hot, through broadcast state), visible as each session's
    ``page_rates_version``."""
    from connectors.rules_topic import publish_page_rates
    from udfs.page_rates import build_table

    client, prefix = redis_client
    rp = prefix + "if:"
    table = build_table(site_history(), "history.1")
    path = tmp_path / "page-rates.json"
    path.write_text(table.to_json())
    visitors = sorted(engaged_visitor() + quick_leaver(), key=event_order_key)
    produce(stack.kafka_bootstrap, topics.raw, visitors)
    with LiveJob(topics, rp, "--model-version", "2", "--page-rates-table", str(path)) as job:
        wait_for(lambda: _all_decided(client, rp, visitors), 120, "both visitors to be decided", job)
        engaged = float(client.hget(f"{rp}session:engaged", "intent_score"))
        leaver = float(client.hget(f"{rp}session:leaver", "intent_score"))
        assert engaged >= 5 * leaver and engaged - leaver >= 0.03, (engaged, leaver)
        assert client.hget(f"{rp}session:engaged", "page_rates_version") == "history.1"
        newer = build_table(site_history()[:60], "history.2")  # only the /deals leavers
        publish_page_rates(newer, stack.kafka_bootstrap, topics.page_rates)
        probes: list[dict] = []

        def probe_sees_newer() -> bool:
            probe = view(f"probe-{len(probes)}", T0 + 10_000_000 + len(probes), "/deals", 0)
            probes.append(probe)
            produce(stack.kafka_bootstrap, topics.raw, [probe])
            return any(client.hget(f"{rp}session:{p['session_id']}", "page_rates_version") == "history.2"
                       for p in probes)

        wait_for(probe_sees_newer, 120, "a session decided with the published table", job, poll_s=2.0)
