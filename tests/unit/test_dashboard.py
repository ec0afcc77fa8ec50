"""The Grafana dashboard (docker/grafana/dashboards/intentflow.json) is well-formed and queries only
metrics we export: the collector's (prometheus_client registry of collector/metrics.py), the job's own
(udfs/opmetrics.py) and the Flink built-ins listed in FLINK_BUILTIN, which
tests/integration/test_job_metrics.py finds in a real scrape of the job's reporter."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

from udfs.opmetrics import HISTOGRAMS, METRICS, prometheus_name

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "intentflow.json"

#: Flink's own metrics the dashboard shows (Flink 2.2 metrics docs: checkpointing, Kafka source).
FLINK_BUILTIN = {
    "flink_jobmanager_job_lastCheckpointDuration",
    "flink_taskmanager_job_task_operator_KafkaSourceReader_KafkaConsumer_records_lag_max",
    "flink_taskmanager_job_task_operator_KafkaSourceReader_topic_partition_currentOffset",
    "flink_taskmanager_job_task_operator_KafkaSourceReader_topic_partition_committedOffset",
}

#: What Grafana needs of a dashboard to load it, and of each time-series panel to draw it (the parts of
#: Grafana's dashboard JSON model this dashboard uses; grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "time"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "time": {"type": "object", "required": ["from", "to"]},
        "panels": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["id", "type", "title", "gridPos", "targets", "datasource"],
            "properties": {
                "id": {"type": "integer"},
                "type": {"enum": ["timeseries", "stat", "table", "gauge"]},
                "gridPos": {"type": "object", "required": ["h", "w", "x", "y"],
                            "properties": {"w": {"type": "integer", "minimum": 1, "maximum": 24},
                                           "x": {"type": "integer", "minimum": 0, "maximum": 23}}},
                "targets": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["refId", "expr"],
                    "properties": {"expr": {"type": "string", "minLength": 1}}}},
            }}},
    },
}

_PROMQL_WORDS = {"sum", "max", "min", "avg", "rate", "irate", "increase", "by", "without", "histogram_quantile",
                 "le", "on", "ignoring", "and", "or", "unless", "count", "topk", "bottomk", "quantile"}


def queried_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers that are not functions, keywords or labels)."""
    no_strings = re.sub(r'"[^"]*"', '""', expr)
    no_labels = re.sub(r"\{[^}]*\}", "", no_strings)
    no_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", no_labels)
    no_ranges = re.sub(r"\[[^\]]*\]", "", no_groupings)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", no_ranges))
    return {n for n in names if n not in _PROMQL_WORDS and not re.fullmatch(r"\d+e\d+|e\d+", n)}


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {m for p in dashboard["panels"] for t in p["targets"] for m in queried_metrics(t["expr"])}


def exported_metrics() -> set[str]:
    from collector.metrics import ServiceMetrics

    # a labelled metric has no sample before its first use: its series names follow from its type
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    collector = {family.name + suffix for family in ServiceMetrics().registry.collect()
                 for suffix in suffixes[family.type]}
    ours = {prometheus_name(m) for m in METRICS} | {prometheus_name(h) + "_count" for h in HISTOGRAMS}
    return collector | ours | FLINK_BUILTIN


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dashboard, SCHEMA)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_queried_metric_is_exported_and_the_issue_s_panels_are_there():
    used = dashboard_metrics()
    assert used, "the dashboard queries no metric"
    assert used <= exported_metrics(), f"not exported: {sorted(used - exported_metrics())}"
    titles = " ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for words in ("events/s in", "events/s out", "dlq", "batch size", "latency", "lag", "actions", "checkpoint"):
        assert words in titles, words


def test_the_metric_name_parser_sees_names_not_functions_or_labels():
    expr = 'histogram_quantile(0.99, sum by (le, route) (rate(a_b_bucket{route="/v1/x"}[5m]))) / 1e6 - c:d'
    assert queried_metrics(expr) == {"a_b_bucket", "c:d"}
