"""The job's operational metrics, aggregated in Python and handed to Flink's metric system as deltas.

Pure (no PyFlink): the operator (``operators/job_metrics.py``) calls :meth:`JobMetrics.add_batch` for
every decided micro-batch and :meth:`JobMetrics.take` once per micro-batch, then makes ONE Flink call per
changed metric (``Counter.inc(n)``, ``Histogram.update(v)``), never one per event: every metric update is
a Java<->Python crossing in thread mode.

Metric names and labels (``METRICS``) are the contract with the Grafana dashboard
(``docker/grafana/dashboards/intentflow.json``, checked by ``tests/unit/test_dashboard.py``). Flink's
Prometheus reporter exports a metric ``NAME`` registered under the operator's group ``intentflow`` with
label group ``LABEL`` as ``flink_taskmanager_job_task_operator_intentflow_<LABEL>_<NAME>{<LABEL>="..."}``
(``prometheus_name``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Prefix of every Flink operator metric as the Prometheus reporter names it (flink-metrics-prometheus:
#: scope ``taskmanager.job.task.operator`` joined with ``_``, prefixed ``flink_``), plus our group.
PROMETHEUS_PREFIX = "flink_taskmanager_job_task_operator_intentflow_"

#: ``{metric name: label key or None}``: counters (Flink ``Counter``; the reporter exports them as gauges).
COUNTERS: dict[str, str | None] = {
    "events_in": "event_type",           # events parsed, per event type
    "dlq_records": "reason",            # DLQ records (bad values at parse, late events), per reason
    "late_events": None,                 # events later than allowed_lateness_ms (also in dlq_records)
    "actions": "rule_id",                # actions decided, per rule
    "sessions_cached": None,             # sessions in the operator's Python copy (an up/down counter)
    "model_in_force": "model_version",   # 1 for the model version scoring now, 0 for earlier ones
    "ruleset_in_force": "rules_version",  # 1 for the ruleset deciding now, 0 for earlier ones
}
#: ``{histogram name: unit}``: one value per micro-batch (Flink ``DescriptiveStatisticsHistogram``,
#: exported as a Prometheus summary with quantiles).
HISTOGRAMS: dict[str, str] = {
    "batch_events": "events per micro-batch",
    "decide_time_us": "decide (dedup, order, noise, features, ONNX, rules) per micro-batch, microseconds",
    "onnx_time_us": "the one ONNX call per micro-batch, microseconds",
    "redis_time_us": "one Redis pipeline (a flush of the batcher), microseconds",
}
METRICS = {**COUNTERS, **{name: None for name in HISTOGRAMS}}


def prometheus_name(metric: str) -> str:
    """The Prometheus series name of one of :data:`METRICS` (histograms: the summary's base name).

    Raises:
        KeyError: ``metric`` is not one of ours.
    """
    label = METRICS[metric]
    return PROMETHEUS_PREFIX + (f"{label}_{metric}" if label else metric)


@dataclass
class Deltas:
    """What changed since the last :meth:`JobMetrics.take`.

    Attributes:
        counters: ``{(metric, label value or ""): increment}`` (may be negative for ``*_in_force`` and
            ``sessions_cached``); only non-zero entries.
        histograms: ``[(histogram name, value)]`` in the order observed.
    """

    counters: dict[tuple[str, str], int]
    histograms: list[tuple[str, int]]


class JobMetrics:
    """Aggregates one operator instance's metrics between two :meth:`take` calls."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()
        self._hist: list[tuple[str, int]] = []
        self._sessions = 0
        self._model = ""
        self._rules = ""

    def add_batch(self, events: Iterable[Mapping[str, Any]], dlq: Iterable[Mapping[str, Any]],
                  actions: Iterable[Mapping[str, Any]], late: int, n_values: int) -> None:
        """Count one decided micro-batch.

        Args:
            events: the parsed events (``udfs.microbatch.decode_batch``), each with ``type``.
            dlq: every DLQ record the batch produced (parse and late), each with ``reason``.
            actions: the batch's actions, each with ``rule_id``.
            late: the batch's late events (``BatchResult.counters["late"]``).
            n_values: raw values in the batch (events + parse DLQ records).
        """
        counts = self._counts
        for event in events:
            counts[("events_in", str(event.get("type", "")))] += 1
        for record in dlq:
            counts[("dlq_records", str(record.get("reason", "")))] += 1
        for action in actions:
            counts[("actions", str(action.get("rule_id", "")))] += 1
        if late:
            counts[("late_events", "")] += late
        self._hist.append(("batch_events", n_values))

    def observe(self, histogram: str, value: float) -> None:
        """One value of a histogram of :data:`HISTOGRAMS` (rounded to an int).

        Raises:
            KeyError: not one of :data:`HISTOGRAMS`.
        """
        HISTOGRAMS[histogram]
        self._hist.append((histogram, int(round(value))))

    def set_sessions(self, n: int) -> None:
        """Sessions in the Python copy now (an absolute value; the delta is taken)."""
        self._counts[("sessions_cached", "")] += n - self._sessions
        self._sessions = n

    def set_versions(self, model_version: str, rules_version: str) -> None:
        """The model and ruleset in force now; a change moves the 1 from the old label to the new."""
        for metric, attr, version in (("model_in_force", "_model", model_version),
                                      ("ruleset_in_force", "_rules", rules_version)):
            old = getattr(self, attr)
            if version != old:
                if old:
                    self._counts[(metric, old)] -= 1
                self._counts[(metric, version)] += 1
                setattr(self, attr, version)

    def take(self) -> Deltas:
        """The changes since the last call (and forget them)."""
        counters = {k: v for k, v in self._counts.items() if v}
        hist = self._hist
        self._counts = Counter()
        self._hist = []
        return Deltas(counters, hist)
