"""The job's metric aggregation (udfs/opmetrics.py): deltas per micro-batch, versions in force, names."""
from __future__ import annotations

import pytest

from udfs.opmetrics import HISTOGRAMS, METRICS, JobMetrics, prometheus_name


def test_a_batch_counts_events_per_type_dlq_per_reason_actions_per_rule_and_its_size():
    m = JobMetrics()
    events = [{"type": "click"}, {"type": "click"}, {"type": "scroll"}]
    dlq = [{"reason": "invalid_json"}, {"reason": "late_event"}]
    m.add_batch(events, dlq, [{"rule_id": "r1"}, {"rule_id": "r1"}, {"rule_id": "r2"}], late=1, n_values=4)
    m.observe("decide_time_us", 123.4)
    d = m.take()
    assert d.counters == {("events_in", "click"): 2, ("events_in", "scroll"): 1, ("dlq_records", "invalid_json"): 1,
                          ("dlq_records", "late_event"): 1, ("actions", "r1"): 2, ("actions", "r2"): 1,
                          ("late_events", ""): 1}
    assert d.histograms == [("batch_events", 4), ("decide_time_us", 123)]
    empty = m.take()
    assert empty.counters == {} and empty.histograms == []


def test_sessions_and_versions_are_levels_taken_as_deltas():
    m = JobMetrics()
    m.set_sessions(5)
    m.set_versions("intent-lr/1", "2026-11-30.1")
    assert m.take().counters == {("sessions_cached", ""): 5, ("model_in_force", "intent-lr/1"): 1,
                                 ("ruleset_in_force", "2026-11-30.1"): 1}
    m.set_sessions(3)
    m.set_versions("intent-lr/1", "2026-12-01.1")  # a new ruleset: the 1 moves to its label
    assert m.take().counters == {("sessions_cached", ""): -2, ("ruleset_in_force", "2026-11-30.1"): -1,
                                 ("ruleset_in_force", "2026-12-01.1"): 1}
    m.set_sessions(3)
    m.set_versions("intent-lr/1", "2026-12-01.1")
    assert m.take().counters == {}


def test_only_known_histograms_and_prometheus_names():
    m = JobMetrics()
    with pytest.raises(KeyError):
        m.observe("no_such_histogram", 1)
    assert set(HISTOGRAMS) <= set(METRICS)
    assert prometheus_name("events_in") == "flink_taskmanager_job_task_operator_intentflow_event_type_events_in"
    assert prometheus_name("late_events") == "flink_taskmanager_job_task_operator_intentflow_late_events"
    with pytest.raises(KeyError):
        prometheus_name("nope")
