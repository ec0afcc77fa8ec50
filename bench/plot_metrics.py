"""Plot the job's metrics from repeated scrapes of a Flink Prometheus reporter (where Grafana cannot run).

    .venv/bin/python bench/plot_metrics.py --port 9250 --duration-s 90 --out docs/img/metrics.png

Scrapes ``http://127.0.0.1:PORT/metrics`` every ``--interval-s`` for ``--duration-s`` and draws what the
Grafana dashboard (docker/grafana/dashboards/intentflow.json) shows for the job: events/s in by type,
actions/s by rule and DLQ records/s by reason (rates of the counters between scrapes), micro-batch size
(p50, p99 over the last 500 batches) and decide / ONNX / Redis time per batch (p99). The scraped series
go to ``OUT`` with ``.json`` instead of ``.png``.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import click
import requests
from prometheus_client.parser import text_string_to_metric_families

from udfs.opmetrics import prometheus_name


def scrape(url: str) -> dict[tuple[str, str], float]:
    """``{(series name, label value that matters): value}`` summed over subtasks."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    text = requests.get(url, timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "_intentflow_" not in s.name:
                continue
            label = (s.labels.get("event_type") or s.labels.get("rule_id") or s.labels.get("reason")
                     or s.labels.get("quantile") or "")
            if "quantile" in s.labels:
                out[(s.name, label)] = max(out[(s.name, label)], s.value)
            else:
                out[(s.name, label)] += s.value
    return out


@click.command()
@click.option("--port", type=int, required=True, help="Port of the Flink Prometheus reporter (9250-9260).")
@click.option("--duration-s", type=float, default=90.0, show_default=True, help="How long to scrape, s.")
@click.option("--interval-s", type=float, default=5.0, show_default=True, help="Seconds between two scrapes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/img/metrics.png"),
              show_default=True, help="PNG to write (the scraped series: the same name with .json).")
def main(port: int, duration_s: float, interval_s: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    url = f"http://127.0.0.1:{port}/metrics"
    series: list[tuple[float, dict]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 <= duration_s:
        series.append((time.monotonic() - t0, scrape(url)))
        time.sleep(interval_s)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        [{"t_s": round(t, 2), "values": {f"{n}|{label}": v for (n, label), v in vals.items()}} for t, vals in series],
        indent=1))

    def rates(metric: str) -> dict[str, tuple[list[float], list[float]]]:
        name = prometheus_name(metric)
        labels = sorted({label for _, vals in series for (n, label) in vals if n == name})
        res = {}
        for label in labels:
            xs, ys = [], []
            for (ta, a), (tb, b) in zip(series, series[1:]):
                xs.append(tb)
                ys.append((b.get((name, label), 0.0) - a.get((name, label), 0.0)) / (tb - ta))
            res[label] = (xs, ys)
        return res

    def level(metric: str, quantile: str) -> tuple[list[float], list[float]]:
        name = prometheus_name(metric)
        return [t for t, _ in series], [vals.get((name, quantile), float("nan")) for _, vals in series]

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    for (title, metric), ax in zip((("events/s in, by type", "events_in"), ("actions/s, by rule", "actions"),
                                    ("DLQ records/s, by reason", "dlq_records")), axes.flat):
        for label, (xs, ys) in rates(metric).items():
            ax.plot(xs, ys, label=label)
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "none in this run", ha="center", transform=ax.transAxes)
    ax = axes.flat[3]
    for metric, q, label in (("decide_time_us", "0.99", "decide p99"), ("onnx_time_us", "0.99", "ONNX p99"),
                             ("redis_time_us", "0.99", "Redis pipeline p99"), ("batch_events", "0.99", "batch size p99 (events)")):
        xs, ys = level(metric, q)
        ax.plot(xs, ys, label=label)
    ax.set_yscale("log")
    ax.set_title("per micro-batch: time (µs) and size (events)")
    ax.legend(fontsize=7)
    for ax in axes.flat:
        ax.set_xlabel("s since the first scrape")
    fig.suptitle(f"intentflow job metrics scraped from {url}, every {interval_s:g} s")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    click.echo(f"wrote {out} and {out.with_suffix('.json')} ({len(series)} scrapes)")


if __name__ == "__main__":
    main()
