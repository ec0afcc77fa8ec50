"""What one micro-batch returns besides actions (udfs/decide.py ``BatchResult``): the job's ``stats``
counters, the ``agg`` sets, the latency-trace sample and the Kafka time carried into actions
(docs/contracts.md §5). Expectations are derived event by event in the comments, from the scenario's
timeline (udfs/scenarios.py) and the default rules."""
from __future__ import annotations

from dataclasses import replace

import pytest

from udfs.config import JobConfig
from udfs.contract import make_event
from udfs.decide import Decider
from udfs.rules import RuleEngine
from udfs.scenarios import LAPTOP_PAGE, article_session, shallow_session
from udfs.scoring import ReloadingScorer

pytestmark = pytest.mark.claim

T0 = 1_764_000_000_000  # a multiple of 20: window starts are T0 + k * 20


def _decider(**overrides) -> Decider:
    return Decider(replace(JobConfig(), **overrides), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)


def test_counters_aggregates_and_trace_of_a_batch():
    article = article_session("a", T0)       # page_view 0, scroll 2000, 4000, hover 7500, 9000, click 10000
    shallow = shallow_session("s", T0 + 5)   # page_view 5, scroll 1505, hover 3005, scroll 12005
    events = [*article, *shallow, article[1], shallow[0]]  # + a redelivered scroll and page view
    events[0] = {**events[0], "_kafka_ts_ms": T0 + 1}
    events[3] = {**events[3], "_kafka_ts_ms": T0 + 7501}  # the hover that fires the article's rule
    result = _decider(window_ms=20, trace_every_n=4).decide(events, lambda _sid: None)

    # 12 events: 10 applied, the redelivered scroll and page view deduplicated; two actions (article:
    # video demo at the 7.5 s hover; shallow: simplify at its 12 s scroll); the article's later hover
    # and click match again but are in cool-down
    assert dict(result.counters) == {"events": 12, "applied": 10, "deduplicated": 2, "actions": 2, "cooldown": 2}
    assert result.model_version == result.actions[0]["model_version"] and result.model_version.startswith("intent-lr/")
    assert all(0 < a["intent_score"] < 1 and a["intent_score"] == round(a["intent_score"], 6) for a in result.actions)
    assert [(a["session_id"], a["action"], a["event_ts_ms"]) for a in result.actions] == [
        ("a", "show_video_demo_and_price_comparison", T0 + 7500), ("s", "simplify_layout", T0 + 12005)]
    assert result.actions[0]["kafka_ts_ms"] == T0 + 7501 and "kafka_ts_ms" not in result.actions[1]
    assert result.actions[0]["client_ts_ms"] == article[3]["client_ts_ms"]

    # agg: every applied event adds its session to (content id, window start, type) for each content id
    specs, video = LAPTOP_PAGE["content_ids"]
    assert len(result.aggregates) == 2 * 9  # 9 distinct (window, type) pairs x 2 content ids
    assert result.aggregates[(specs, T0, "page_view")] == {"a", "s"}  # 0 and 5 ms: one 20 ms window
    assert result.aggregates[(video, T0, "page_view")] == {"a", "s"}
    assert result.aggregates[(specs, T0 + 1500, "scroll")] == {"s"}   # 1505 -> window 1500
    assert result.aggregates[(specs, T0 + 3000, "hover")] == {"s"}    # 3005 -> window 3000
    assert result.aggregates[(video, T0 + 7500, "hover")] == {"a"}
    assert result.aggregates[(specs, T0 + 12000, "scroll")] == {"s"}  # 12005 -> window 12000
    assert (specs, T0 + 2000, "scroll") in result.aggregates and result.aggregates[(specs, T0 + 2000, "scroll")] == {"a"}

    # trace: every 4th event of the batch (4th, 8th, 12th: duplicates too, the sample is taken on
    # arrival), with its Kafka time (0 when unknown)
    assert result.trace == [(events[3]["event_id"], T0 + 7501, events[3]["client_ts_ms"], T0 + 7500),
                            (events[7]["event_id"], 0, events[7]["client_ts_ms"], T0 + 1505),
                            (events[11]["event_id"], 0, events[11]["client_ts_ms"], T0 + 5)]
    assert _decider(trace_every_n=0).decide(events, lambda _sid: None).trace == []


def test_suppressed_ignored_and_late_are_counted_by_reason():
    article = article_session("a", T0)
    click = article[5]
    double_click = make_event("click", session_id="a", client_ts_ms=T0 + 10_100, source_key="double",
                              page=click["page"], context=click["context"], props=dict(click["props"]))
    triple_click = make_event("click", session_id="a", client_ts_ms=T0 + 10_200, source_key="triple",
                              page=click["page"], context=click["context"], props=dict(click["props"]))
    exposures = [make_event("exposure", session_id="a", client_ts_ms=T0 + 10_300 + i, source_key=f"exposure-{i}",
                            props={"experiment_id": "e", "variant": "v", "content_id": "c"}) for i in range(2)]
    # the 2 s scroll arrives after the 4 s one: within the default 2 s lateness bound
    late_scroll = {**article[1], "_kafka_ts_ms": T0 + 4_001}
    events = [article[0], article[2], late_scroll, *article[3:], double_click, triple_click, *exposures]
    within = _decider().decide(events, lambda _sid: None)
    # 10 events: 6 applied; the clicks on Compare 100 and 200 ms after the first are debounced (noise
    # filter); the exposures are ignored; the rule fires once (7.5 s hover), the 9 s hover and the
    # click are in cool-down
    assert dict(within.counters) == {"events": 10, "applied": 6, "suppressed": 2, "suppressed:debounced_click": 2,
                                     "ignored": 2, "actions": 1, "cooldown": 2}
    assert within.touched["a"].count_dict() == {"applied": 6, "suppressed": 2, "ignored": 2, "deduplicated": 0,
                                                "late": 0}
    # without a lateness bound the same out-of-order scroll is late: counted, dead-lettered, not applied
    strict = _decider(allowed_lateness_ms=0).decide(events, lambda _sid: None)
    assert strict.counters["late"] == 1 and strict.counters["applied"] == 5
    assert [(r["reason"], r["event_id"]) for r in strict.dlq] == [("late_event", article[1]["event_id"])]
    # the DLQ record has the event as received (without the job's Kafka-time key) and says by how much
    assert "_kafka_ts_ms" not in strict.dlq[0]["payload"] and article[1]["event_id"] in strict.dlq[0]["payload"]
    assert "is 2000 ms older than the session's newest event" in strict.dlq[0]["detail"]
    assert strict.touched["a"].lag is None  # no lagging state is kept without a bound


def test_session_summaries_are_the_entries_counts_score_versions_and_features():
    import json

    from udfs.decide import session_summaries

    article = article_session("a", T0)
    result = _decider().decide([*article, article[0]], lambda _sid: None)
    entry = result.touched["a"]
    out = session_summaries(result.touched, "intent-lr/7", "2026-12-01.3")
    assert set(out) == {"a"}
    fields = out["a"]
    # 6 events applied, the redelivered page view deduplicated
    assert {k: fields[k] for k in ("applied", "suppressed", "ignored", "deduplicated", "late")} == {
        "applied": 6, "suppressed": 0, "ignored": 0, "deduplicated": 1, "late": 0}
    assert fields["intent_score"] == round(entry.last_intent_score, 6) and 0 < fields["intent_score"] < 1
    assert (fields["model_version"], fields["rules_version"]) == ("intent-lr/7", "2026-12-01.3")
    assert json.loads(fields["features"]) == entry.state.features().tolist()


def test_a_session_entry_restored_from_a_checkpoint_decides_as_if_never_stopped():
    """Keyed state is pickled at a checkpoint: deciding the rest of a session from the restored entry
    gives what one uninterrupted run gives (actions, counts, features, dedup memory, cool-downs)."""
    import pickle

    import numpy as np

    article = article_session("a", T0)
    whole = _decider().decide([*article, article[1]], lambda _sid: None)
    first = _decider().decide(article[:4], lambda _sid: None)
    restored = pickle.loads(pickle.dumps(first.touched["a"]))
    rest = _decider().decide([*article[4:], article[1]], lambda _sid: restored)
    key = [(a["event_id"], a["action"], a["rule_id"]) for a in first.actions + rest.actions]
    assert key == [(a["event_id"], a["action"], a["rule_id"]) for a in whole.actions]
    assert rest.touched["a"].count_dict() == whole.touched["a"].count_dict()
    assert rest.counters["deduplicated"] == 1 and rest.counters["cooldown"] == whole.counters["cooldown"] == 2
    np.testing.assert_array_equal(rest.touched["a"].state.features(), whole.touched["a"].state.features())
    assert rest.touched["a"].last_fired == whole.touched["a"].last_fired
