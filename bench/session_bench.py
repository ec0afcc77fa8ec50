"""Micro-benchmark of the per-session operator's pure logic: ``SessionState.apply`` + ``features()``.

Two workloads, both contract events built before timing:

* ``synthetic``: browser sessions mixing every behavioral type (page views, clicks with rapid repeats,
  scroll, hover, visibility, form, mouse trajectories, add-to-cart), 200 events per session;
* ``otto``: the real OTTO sessions of ``$INTENTFLOW_DATA_DIR/otto/test_resources_train.jsonl``
  (page_view + click per OTTO click, carts, orders), when the data folder is present.

For each it measures the mean µs per event of (a) ``apply(event)`` + ``features()`` on a state kept in
memory, and (b) the same with the keyed-state round trip the Flink job pays per event
(``pickle.loads`` before, ``pickle.dumps`` after), plus the pickled state size.

Run: ``.venv/bin/python bench/session_bench.py [--repeat 5]``; prints a table and writes
``bench/results/session_bench.json``.
"""
from __future__ import annotations

import json
import os
import pickle
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from udfs.contract import make_event  # noqa: E402
from udfs.session import SessionState, event_order_key  # noqa: E402

CONTEXT = {"device_class": "desktop", "viewport_w_px": 1440, "viewport_h_px": 900,
           "network": {"effective_type": "4g", "rtt_ms": 50, "downlink_mbps": 10.0},
           "geo": {"country": "DE", "region": "BE"}, "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}


def synthetic_sessions(n_sessions: int, n_events: int, seed: int = 0) -> list[list[dict]]:
    """Browser-like sessions, each a list of contract events in event-time order."""
    rng = random.Random(seed)
    sessions = []
    for k in range(n_sessions):
        t = 1_764_500_000_000
        events = []
        item = "i0"
        for j in range(n_events):
            t += rng.choice([30, 120, 400, 900, 2_500])
            kind = rng.choices(
                ["page_view", "click", "scroll", "hover", "visibility", "form", "mouse_trajectory", "add_to_cart"],
                weights=[5, 20, 25, 20, 5, 5, 18, 2])[0]
            if kind == "page_view":
                item = f"i{rng.randint(0, 40)}"
            props = {
                "page_view": {"title": "Product"},
                "click": {"element_id": rng.choice(["compare", "buy", "img", "tab"]), "element_role": "compare_button",
                          "x_px": 10, "y_px": 20},
                "scroll": {"scroll_depth_pct": rng.uniform(0, 100), "offset_px": 100, "document_height_px": 4000},
                "hover": {"element_id": f"e{rng.randint(0, 15)}", "element_role": rng.choice(["product_card", "spec"]),
                          "hover_ms": rng.choice([60, 400, 1500, 3000])},
                "visibility": {"state": "visible", "visible_ms": rng.randint(0, 60_000)},
                "form": {"form_id": "search", "field_id": "q", "action": "change"},
                "mouse_trajectory": {"path_length_px": 300.0, "straightness": rng.random(), "mean_speed_px_s": 500.0,
                                     "jerk_px_s3": 1e5, "pause_count": 1, "sample_count": rng.randint(1, 40),
                                     "duration_ms": 600},
                "add_to_cart": {"item_id": item, "quantity": 1, "price": 999.0},
            }[kind]
            events.append(make_event(kind, session_id=f"bench-{k}", client_ts_ms=t, source_key=f"bench:{k}:{j}",
                                     seq=j, page={"path": f"/product/{item}", "item_id": item}, context=CONTEXT,
                                     props=props))
        sessions.append(events)
    return sessions


def otto_sessions() -> list[list[dict]] | None:
    from udfs.datasets import data_dir

    data = data_dir()
    path = data / "otto" / "test_resources_train.jsonl"
    if not path.exists():
        return None
    from udfs.datasets.otto import iter_events, iter_sessions

    return [sorted(s, key=event_order_key) for s in iter_sessions(iter_events(path))]


def time_in_memory(sessions: list[list[dict]]) -> float:
    """Seconds for apply+features over all events, one in-memory state per session."""
    t0 = time.perf_counter()
    for events in sessions:
        state = SessionState()
        apply, features = state.apply, state.features
        for event in events:
            apply(event)
            features()
    return time.perf_counter() - t0


def time_with_pickle(sessions: list[list[dict]]) -> tuple[float, int]:
    """Seconds for loads+apply+features+dumps per event; and the largest pickled state in bytes."""
    loads, dumps = pickle.loads, pickle.dumps
    largest = 0
    t0 = time.perf_counter()
    for events in sessions:
        raw = dumps(SessionState(), protocol=pickle.HIGHEST_PROTOCOL)
        for event in events:
            state = loads(raw)
            state.apply(event)
            state.features()
            raw = dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        largest = max(largest, len(raw))
    return time.perf_counter() - t0, largest


def measure(name: str, sessions: list[list[dict]], repeat: int) -> dict:
    n = sum(len(s) for s in sessions)
    mem = [time_in_memory(sessions) for _ in range(repeat)]
    pick = [time_with_pickle(sessions) for _ in range(repeat)]
    us_mem = min(mem) / n * 1e6
    us_pick = min(p[0] for p in pick) / n * 1e6
    return {
        "workload": name,
        "events": n,
        "sessions": len(sessions),
        "repeat": repeat,
        "us_per_event_apply_features_best": round(us_mem, 3),
        "us_per_event_apply_features_median": round(statistics.median(mem) / n * 1e6, 3),
        "us_per_event_with_pickle_roundtrip_best": round(us_pick, 3),
        "us_per_event_with_pickle_roundtrip_median": round(statistics.median(p[0] for p in pick) / n * 1e6, 3),
        "max_pickled_state_bytes": max(p[1] for p in pick),
        "events_per_s_one_core_with_pickle": int(1e6 / us_pick),
    }


@click.command()
@click.option("--repeat", default=5, show_default=True, help="timed passes per workload (best and median reported)")
@click.option("--sessions", "n_sessions", default=50, show_default=True, help="synthetic sessions")
@click.option("--events", "n_events", default=200, show_default=True, help="events per synthetic session")
@click.option("--out", default=str(ROOT / "bench" / "results" / "session_bench.json"), show_default=True)
def main(repeat: int, n_sessions: int, n_events: int, out: str) -> None:
    """Measure µs per SessionState.apply + features() and write the JSON result."""
    results = [measure("synthetic", synthetic_sessions(n_sessions, n_events), repeat)]
    otto = otto_sessions()
    if otto:
        results.append(measure("otto", otto, repeat))
    report = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                          "platform": platform.platform()}, "results": results}
    for r in results:
        click.echo(f"{r['workload']:>9}: {r['events']} events  apply+features {r['us_per_event_apply_features_best']:.2f} µs"
                   f" (median {r['us_per_event_apply_features_median']:.2f})  +pickle round trip "
                   f"{r['us_per_event_with_pickle_roundtrip_best']:.2f} µs  max state {r['max_pickled_state_bytes']} B")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
