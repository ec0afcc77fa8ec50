"""Flink metrics of the Python operator: the deltas of ``udfs.opmetrics.JobMetrics`` pushed into the
operator's metric group once per micro-batch (one Java call per changed metric, none per event).

Under the operator's metric group: group ``intentflow``, then a key/value group per label
(``intentflow.event_type.click.events_in``), which Flink's Prometheus reporter exports as
``flink_taskmanager_job_task_operator_intentflow_event_type_events_in{event_type="click", ...}``.

Only counters and histograms are registered, never a Python gauge: a PyFlink gauge is a Java object
that calls back into Python whenever a reporter reads it, from the reporter's thread, outside the task
thread that owns the embedded interpreter. Level values (sessions cached, version in force) are
up/down counters instead.

Histograms are Flink's ``DescriptiveStatisticsHistogram`` over the last :data:`HISTOGRAM_WINDOW`
values (PyFlink's metric group offers no histogram, so it is made through PEMJA on the Java group);
the Prometheus reporter exports them as summaries (quantiles 0.5 ... 0.999, ``_count``).
"""
from __future__ import annotations

import time

from udfs.opmetrics import COUNTERS, HISTOGRAMS, Deltas

#: Values a histogram's quantiles are computed over (Flink's own default for its latency histograms
#: is 128; 500 covers a few seconds of micro-batches at the 10-50 ms windows).
HISTOGRAM_WINDOW = 500

GROUP = "intentflow"


class FlinkJobMetrics:
    """Registers our metrics lazily (a counter per label value on first use) and applies deltas.

    Args:
        metric_group: ``RuntimeContext.get_metrics_group()`` of the operator (thread mode).
    """

    def __init__(self, metric_group) -> None:
        from pemja import findClass

        self._group = metric_group.add_group(GROUP)
        self._counters: dict[tuple[str, str], object] = {}
        histogram_class = findClass("org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram")
        j_group = self._group._metrics  # the Java MetricGroup behind PyFlink's MetricGroupImpl
        self._histograms = {name: j_group.histogram(name, histogram_class(HISTOGRAM_WINDOW)) for name in HISTOGRAMS}

    def _counter(self, metric: str, label: str):
        key = (metric, label)
        counter = self._counters.get(key)
        if counter is None:
            label_key = COUNTERS[metric]
            group = self._group.add_group(label_key, label) if label_key else self._group
            counter = self._counters[key] = group.counter(metric)
        return counter

    def apply(self, deltas: Deltas) -> None:
        """One ``inc`` per changed counter and one ``update`` per histogram value."""
        for (metric, label), n in deltas.counters.items():
            self._counter(metric, label).inc(n)
        histograms = self._histograms
        for name, value in deltas.histograms:
            histograms[name].update(value)


class TimedScorer:
    """A scorer (``score_with_version``) that adds the time of each call to a :class:`JobMetrics`
    histogram ``onnx_time_us`` (one call per micro-batch: the Decider scores a batch at once).

    Args:
        scorer: e.g. ``udfs.scoring.ReloadingScorer``.
        metrics: ``udfs.opmetrics.JobMetrics`` of the operator.
    """

    def __init__(self, scorer, metrics) -> None:
        self.scorer = scorer
        self.metrics = metrics

    def __getattr__(self, name: str):
        # everything else of the wrapped scorer (take_shadow_counters, its current IntentScorer, ...)
        return getattr(self.scorer, name)

    @property
    def model_version(self) -> str:
        return self.scorer.model_version

    def score_with_version(self, batch):
        t0 = time.perf_counter_ns()
        try:
            return self.scorer.score_with_version(batch)
        finally:
            self.metrics.observe("onnx_time_us", (time.perf_counter_ns() - t0) / 1000)
