"""Issue 17 in the stream: the job (Flink mini-cluster, the operator's PageStats -> Decider path) scores the
engaged visitor measurably above the quick leaver, with the shipped model and the default rules."""
from __future__ import annotations

import orjson
import pytest

from tests.job_support import run_bounded
from tests.unit.test_intent_moves import engaged_visitor, quick_leaver, site_history
from udfs.session import event_order_key

pytestmark = [pytest.mark.integration, pytest.mark.flink]


def test_engaged_visitor_scores_above_the_quick_leaver_in_the_stream(stack, topics, redis_client, tmp_path):
    client, prefix = redis_client
    rp = prefix + "if:"
    events = sorted(site_history() + engaged_visitor() + quick_leaver(), key=event_order_key)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    run_bounded(topics, rp, "--page-rates", "--model-version", "2", events_file=str(path))
    engaged = float(client.hget(f"{rp}session:engaged", "intent_score"))
    leaver = float(client.hget(f"{rp}session:leaver", "intent_score"))
    assert engaged >= 5 * leaver and engaged - leaver >= 0.03, (engaged, leaver)
    assert client.hget(f"{rp}session:engaged", "model_version").startswith("intent-lr/")
