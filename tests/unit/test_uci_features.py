"""UCI Online Shoppers through the job's features (issue 17): the converter reproduces the UCI columns, and
the training code's features equal the stream's (the job's pure decide path) bit for bit."""
from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest

from udfs.config import JobConfig
from udfs.datasets.uci_shoppers import iter_sessions, row_events, session_start_ms
from udfs.decide import Decider, decide_all
from udfs.features import FEATURE_INDEX, N_FEATURES
from udfs.page_stats import PageStats
from udfs.rules import RuleEngine
from udfs.scoring import ReloadingScorer
from udfs.session import replay_features, replay_session, weekend_flag

HEADER = ("Administrative,Administrative_Duration,Informational,Informational_Duration,ProductRelated,"
          "ProductRelated_Duration,BounceRates,ExitRates,PageValues,SpecialDay,Month,OperatingSystems,Browser,"
          "Region,TrafficType,VisitorType,Weekend,Revenue").split(",")
ROWS = [  # real rows' shapes: a bounce, a -1 duration, a long returning session, zero pages, a blank row
    "0,0,0,0,1,0,0.2,0.2,0,0,Feb,1,1,1,1,Returning_Visitor,FALSE,FALSE",
    "0,-1,0,-1,1,-1,0.2,0.2,0,0,Mar,2,2,1,2,New_Visitor,TRUE,FALSE",
    "3,142.5,1,12.333,25,1021.7,0.0041666667,0.0183333333,12.3,0,Nov,2,2,3,2,Returning_Visitor,TRUE,TRUE",
    "0,0,0,0,0,0,0,0.1,0,0.8,May,3,2,4,3,Other,FALSE,FALSE",
    ",,,,,,,,0,0,Mar,1,1,1,1,Returning_Visitor,FALSE,FALSE",
]


def _rows():
    return [dict(zip(HEADER, line.split(","))) for line in ROWS]


def test_rows_become_events_whose_features_are_the_uci_columns():
    rows = _rows()
    assert row_events(4, rows[4]) is None  # blank first columns: skipped
    long = row_events(2, rows[2])
    _, feats, outcomes = replay_session(long.events, visit_count=long.visit_count)
    assert all(o.applied for o in outcomes)
    f = feats[-1]
    assert f[FEATURE_INDEX["administrative_page_view_count"]] == 3
    assert f[FEATURE_INDEX["informational_page_view_count"]] == 1
    assert f[FEATURE_INDEX["product_related_page_view_count"]] == 25
    assert f[FEATURE_INDEX["administrative_page_time_s"]] == pytest.approx(142.5, abs=1e-3)
    assert f[FEATURE_INDEX["informational_page_time_s"]] == pytest.approx(12.333, abs=1e-3)
    assert f[FEATURE_INDEX["product_related_page_time_s"]] == pytest.approx(1021.7, abs=1e-3)
    assert f[FEATURE_INDEX["page_bounce_rate_mean_ratio"]] == pytest.approx(0.0041666667, rel=1e-6)
    assert f[FEATURE_INDEX["page_exit_rate_mean_ratio"]] == pytest.approx(0.0183333333, rel=1e-6)
    assert f[FEATURE_INDEX["weekend_flag"]] == 1.0 and f[FEATURE_INDEX["returning_visitor_flag"]] == 1.0
    assert long.revenue == 1
    minus_one = row_events(1, rows[1])  # -1 durations: 0 s; weekend; new visitor
    _, feats, _ = replay_session(minus_one.events, visit_count=minus_one.visit_count)
    assert feats[-1][FEATURE_INDEX["product_related_page_time_s"]] == 0.0
    assert feats[-1][FEATURE_INDEX["returning_visitor_flag"]] == 0.0 and feats[-1][FEATURE_INDEX["weekend_flag"]] == 1.0
    no_pages = row_events(3, rows[3])  # one untyped page, which still carries the rates
    _, feats, _ = replay_session(no_pages.events)
    assert feats[-1][FEATURE_INDEX["page_view_count"]] == 1 and feats[-1][FEATURE_INDEX["page_exit_rate_mean_ratio"]] == np.float32(0.1)
    assert weekend_flag(session_start_ms("Nov", True)) == 1.0 and weekend_flag(session_start_ms("June", False)) == 0.0


def _stream_features(events, batch_size: int, visit_counts: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Final features per session as the job's pure path computes them (Decider, batch by batch)."""
    decider = Decider(replace(JobConfig()), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)
    _, dlq, store = decide_all(decider, events, batch_size)
    assert dlq == []
    return {sid: entry.state.features() for sid, entry in store.items()}


def test_training_features_equal_the_streams_bit_for_bit(tmp_path):
    """models/train_uci.py's matrix (replay_session per row) equals the job's decide path on the same events."""
    from models.train_uci import build_uci_dataset

    path = tmp_path / "uci.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for line in ROWS:
            writer.writerow(line.split(","))
    X, y, stats, _ = build_uci_dataset(path)
    assert stats == {"rows_read": 5, "rows_skipped_blank": 1, "rows_kept": 4} and y.tolist() == [0, 0, 1, 0]
    sessions = list(iter_sessions(path))
    events = sorted((e for s in sessions for e in s.events), key=lambda e: (e["ts_ms"], e["seq"]))
    # the job does not know visit numbers (SessionState visit_count 1): compare the columns it computes
    stream = _stream_features(events, batch_size=3)
    visit = FEATURE_INDEX["visit_count"], FEATURE_INDEX["returning_visitor_flag"]
    for row, s in zip(X, sessions):
        got = stream[s.events[0]["session_id"]]
        mask = np.ones(N_FEATURES, bool)
        mask[list(visit)] = False
        assert np.array_equal(got[mask].view(np.uint32), row[mask].view(np.uint32))  # bit for bit
        assert got[FEATURE_INDEX["returning_visitor_flag"]] == 0.0  # why the shipped model does not use it


def test_page_stats_annotated_stream_equals_the_batch_replay_bit_for_bit():
    """With rates from other sessions (PageStats, as the operator annotates each micro-batch), the job's
    features equal replay_features over the annotated events, whatever the batch size."""
    from udfs.scenarios import article_session, shallow_session

    t0 = 1_764_000_000_000
    events = []
    for i in range(12):
        events += (article_session if i % 3 else shallow_session)(f"s{i}", t0 + 1500 * i)
    stats = PageStats(prior_weight=2.0)
    batches = [events[i:i + 5] for i in range(0, len(events), 5)]
    for batch in batches:
        stats.annotate(batch)
    rates = {e["event_id"]: e.get("_page_bounce_rate") for e in events if e["type"] == "page_view"}
    assert len(set(rates.values())) > 1  # later sessions see the earlier ones
    reference = replay_features(events)
    last = {e["session_id"]: i for i, e in enumerate(events)}
    for batch_size in (1, 5, 64):
        stream = _stream_features(events, batch_size)
        for sid, i in last.items():
            assert np.array_equal(stream[sid].view(np.uint32), reference[i].view(np.uint32))
