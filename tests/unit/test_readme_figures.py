"""README.md's table of measured figures is what ``bench.readme_figures`` generates from the committed
results files (issue 15): a hand edit, or a results file committed without regenerating, fails here."""
from __future__ import annotations

import json

import pytest

from bench import readme_figures as rf
from bench.sizing import replace_block


def test_the_readme_block_is_generated_from_the_committed_results():
    text = (rf.ROOT / "README.md").read_text()
    assert replace_block(text, rf.MARKER, rf.figures_table()) == text, (
        "README.md's figures block differs from the results files: run .venv/bin/python -m bench.readme_figures")


def test_a_missing_results_file_gives_a_row_saying_so_not_a_number(tmp_path):
    table = rf.figures_table(tmp_path)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(rf.ROWS)
    assert all("no results file" in row for row in rows)


def test_each_row_carries_its_runs_date_and_load(tmp_path):
    latest = {"started_at": "2026-12-02T12:48:03+0000", "load_avg_1m_at_start": 0.96,
              "levels": [{"level": "2000", "p50_ms": 14.0, "p99_ms": 61.0, "lag": {"bounded": True},
                          "baseline": {"p50_ms": 12.0, "p99_ms": 55.0, "lag": {"bounded": False}}}],
              "drain": {"job": {"drain_eps": 12000.4, "core_ms_per_1k_events": 90.0}},
              "drain_ratios": {"baseline": {"drain_eps_ratio": 1.1}, "quix": {"drain_eps_ratio": 1.5}}}
    (tmp_path / "latest.json").write_text(json.dumps(latest))
    (tmp_path / "decision_bench.json").write_text(json.dumps(
        {"measured_at_ms": 1_796_031_835_436, "machine": {"loadavg_1m": 1.875}, "requests_per_case": 3000,
         "cases": {"redis": {"round_trip": {"p50_ms": 0.35, "p99_ms": 0.571}}}}))
    table = rf.figures_table(tmp_path)
    assert "| job, Kafka append -> action readable in Redis, paced (p50 / p99) | 2000/s: 14 / 61 ms | 2026-12-02 12:48 | 0.96 |" in table
    assert "| plain-Python baseline, paced (p50 / p99), same run | 2000/s: 12 / 55 ms, lag growing |" in table
    assert "job 12,000 (90); job ÷ baseline 1.10, ÷ Quix 1.50" in table
    # 1_796_031_835_436 ms = 2026-11-30 09:43:55 UTC
    assert "| p50 0.35 ms, p99 0.57 ms (3,000 requests) | 2026-11-30 09:43 | 1.88 |" in table


def test_run_date_and_load_say_not_recorded_when_the_file_has_no_load(tmp_path):
    date, load = rf.run_date_and_load({"started_at": "2026-01-02T03:04:05+0000"}, tmp_path / "x.json")
    assert (date, load) == ("2026-01-02 03:04", "not recorded")


@pytest.mark.parametrize("results", [{"levels": [{"level": "500"}]}, {"levels": []}])
def test_levels_without_figures_give_a_dash(tmp_path, results):
    (tmp_path / "latest.json").write_text(json.dumps({"started_at": "2026-01-02T03:04:05+0000", **results}))
    row = next(line for line in rf.figures_table(tmp_path).splitlines() if line.startswith("| job, Kafka append"))
    assert "| – |" in row


def test_the_soak_row_says_when_redis_memory_is_not_flat():
    fit = {"slope": 2.5 * 2**20, "ci_low": 2.0 * 2**20, "ci_high": 3.0 * 2**20, "flat": False}
    flat = {"slope": 0.1 * 2**20, "ci_low": -1.0 * 2**20, "ci_high": 1.2 * 2**20, "flat": True}
    soak = {"total_min": 60, "rate_eps": 2000, "concurrent_sessions": 10000, "session_ttl_s": 1800,
            "minutes": [{"sessions_in_state": 212000}],
            "slopes": {"heap_used_min_bytes": flat, "redis_used_memory_bytes": fit, "p99_ms": {"mean": 1261.0}}}
    text = rf._soak(soak)
    assert "212,000 in state at the end" in text
    assert "heap floor slope 0.1 MiB/min (95 % -1.0 .. 1.2: flat)" in text
    assert "Redis memory slope 2.5 MiB/min (95 % 2.0 .. 3.0: not flat)" in text
    assert "p99 mean 1,261 ms" in text


def test_the_soak_row_prefers_the_job_keys_without_the_capped_stream():
    grows = {"slope": 0.1 * 2**20, "ci_low": 0.05 * 2**20, "ci_high": 0.15 * 2**20, "flat": False}
    flat = {"slope": -0.005 * 2**20, "ci_low": -0.02 * 2**20, "ci_high": 0.01 * 2**20, "flat": True}
    soak = {"total_min": 60, "rate_eps": 2000, "concurrent_sessions": 10000, "session_ttl_s": 600,
            "minutes": [{"sessions_in_state": 77000}],
            "slopes": {"heap_live_bytes": flat, "redis_used_memory_bytes": grows,
                       "redis_prefix_bytes_excl_trace_and_actions_stream": flat}}
    text = rf._soak(soak)
    assert "Redis keys of the job (the capped actions stream apart) slope -0.0 MiB/min (95 % -0.0 .. 0.0: flat)" in text
    assert "Redis memory slope" not in text
