"""The benchmark's own arithmetic on traces (bench/run.py): per-level figures from ``(readable_ms,
kafka_ts_ms, client_ts_ms)`` triples and the per-hop breakdown. Expectations are worked out by hand."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.levels import _level_figures
from bench.report import breakdown

pytestmark = pytest.mark.claim

#: (readable_ms, kafka_ts_ms, client_ts_ms): append->readable 10, 30, 20, 40; client->readable 15, 36, 23, 47;
#: produce->append (Kafka hop) 5, 6, 3, 7
TRACE = [(1010, 1000, 995), (2030, 2000, 1994), (3020, 3000, 2997), (4040, 4000, 3993)]


def _figures(sent: int):
    res = SimpleNamespace(achieved_eps=99.94, duration_s=4.0, sent=sent, errors=0, start_ms=990)
    sampler = SimpleNamespace(lag=[(1.0, 5), (2.0, 5), (3.0, 5), (9.0, 999)])  # the last is after the level
    return _level_figures(100, res, TRACE, sampler, {"cpu_pct": 50.0, "peak_rss_mb": 300.0}, 0.5, True, 1.5,
                          base_processed=1000, end_processed=1400)


def test_level_figures_from_a_trace():
    fig = _figures(sent=4)
    # append -> readable: sorted 10, 20, 30, 40; nearest rank: p50 = 2nd, p95 = p99 = 4th
    assert (fig["p50_ms"], fig["p95_ms"], fig["p99_ms"], fig["max_ms"], fig["traced"]) == (20.0, 40.0, 40.0, 40.0, 4)
    # client -> readable: sorted 15, 23, 36, 47
    assert fig["client_to_readable"] == {"p50_ms": 23.0, "p95_ms": 47.0, "p99_ms": 47.0, "max_ms": 47.0}
    # produce -> append: sorted 3, 5, 6, 7
    assert fig["kafka_hop"] == {"p50_ms": 5.0, "p95_ms": 7.0, "p99_ms": 7.0, "max_ms": 7.0}
    assert fig["processed_eps"] == 100.0  # (1400 - 1000) / 4 s
    assert fig["achieved_eps"] == 99.9 and fig["level"] == "100"
    assert fig["lag"]["max_lag"] == 5 and fig["lag"]["slope_eps"] == 0.0  # the sample after 4 s is left out
    assert fig["untraced"] == 0 and fig["percentiles_are_lower_bounds"] is False
    # one entry per second of the level (start 990 ms), by the second the event was sent
    assert [(b["s"], b["n"], b["p50_ms"]) for b in fig["by_second"]] == [(0, 1, 10.0), (1, 1, 30.0), (2, 1, 20.0), (3, 1, 40.0)]


def test_untraced_events_make_the_percentiles_lower_bounds():
    fig = _figures(sent=6)
    assert fig["untraced"] == 2 and fig["percentiles_are_lower_bounds"] is True


def test_breakdown_residual_is_job_p50_minus_the_estimated_hops():
    job = {"level": "1000", "p50_ms": 40.0, "p95_ms": 60.0, "p99_ms": 80.0, "max_ms": 90.0,
           "lag": {"bounded": True}, "percentiles_are_lower_bounds": False, "kafka_hop": {"p50_ms": 2.0}}
    base = {"p50_ms": 30.0, "p95_ms": 45.0, "p99_ms": 50.0, "max_ms": 70.0,
            "hops": {"decide_ms": {"mean": 1.5}, "onnx_ms": {"mean": 0.25}, "redis_ms": {"mean": 0.75},
                     "wait_ms": {"p50": 9.0}}}
    out = breakdown(job, base, window_ms=20)
    est = out["job_estimated_ms"]
    assert (est["batch_wait_ms"], est["decide_ms"], est["onnx_ms"], est["redis_ms"]) == (10.0, 1.5, 0.25, 0.75)
    assert est["kafka_fetch_flink_network_java_python_ms (residual of job p50)"] == 27.5  # 40 - (10 + 1.5 + .25 + .75)
    assert out["job_keeps_up"] is True
    assert breakdown(job | {"percentiles_are_lower_bounds": True}, base, 20)["job_keeps_up"] is False
    assert breakdown(job | {"p50_ms": None}, base, 20)["job_estimated_ms"][
        "kafka_fetch_flink_network_java_python_ms (residual of job p50)"] is None
