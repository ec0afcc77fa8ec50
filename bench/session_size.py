"""Where the bytes of a session go: the pickle in Flink state and the Python copy in the operator (issue 19).

Offline, no Flink: N sessions of the benchmark's load (bench/loadgen.py templates: real OTTO/YOOCHOOSE
sessions with the mix rule, and the scripted scenarios; synthetic timing: one event every
``--gap-ms`` per session, 5 s = 2,000 events/s over 10,000 open sessions) are decided in full through
``udfs.decide.Decider`` (the job's decision core: dedup, lateness log, noise filter, features, ONNX,
rules), as the job keeps them until their TTL ends. Then, per session:

* **Flink state** = ``len(udfs.microbatch.encode_stored(entry))`` (zstd of the pickle), what the operator
  puts into its (the uncompressed ``len(pickle.dumps(entry, HIGHEST_PROTOCOL))`` is recorded too, and the
  parts below are uncompressed pickles)
  ``MapState`` (``Types.PICKLED_BYTE_ARRAY``; PyFlink pickles the value again with its own protocol: the
  job's figure is the checkpoint's ``state_size`` / sessions, ``intentflow bench --sessions``);
* **Python copy** = bytes allocated (``tracemalloc``) by unpickling the N entries into a list, plus the
  per-session bookkeeping of ``udfs.microbatch.ShardSessions`` (``entries``, ``touched_ms``, ``dirty``,
  ``summary_dirty``), measured the same way;
* **by part**: the same two measures for each field of ``SessionEntry`` and, inside ``state``/``lag``,
  each slot of ``SessionState``;
* **held as stored bytes**: a session written to keyed state stays in the copy as the bytes written
  (``udfs.microbatch.ShardSessions.take_dirty_stored``) until its next event; only the sessions changed
  since the last state write are objects. The copy per session at 1k/10k/100k open sessions is modelled
  from both figures (:func:`hot_fraction`; the job's own figure is its RSS per session in
  ``intentflow bench --sessions``);
* **the cyclic GC**: one full ``gc.collect()`` timed with 10,000 and 100,000 session copies alive (CPython
  scans every tracked container of the copy; the operator's interpreter runs such collections by itself).

Run: ``.venv/bin/python -m bench.session_size [--sessions 10000]``; writes
``bench/results/session_size.json`` and prints the breakdown.
"""
from __future__ import annotations

import gc
import json
import pickle
import sys
import time
import tracemalloc
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The job's default state write interval (udfs.config.JobConfig.state_write_interval_ms), s, and the
#: benchmark's event rate: the copy model's inputs.
COPY_MODEL_WRITE_INTERVAL_S = 10.0
COPY_MODEL_RATE_EPS = 2000.0


def hot_fraction(gap_s: float, write_interval_s: float) -> float:
    """Share of a shard's sessions held as objects (changed since the last state write), time-averaged.

    A session's events arrive as a Poisson process, one per ``gap_s`` on average (open sessions / event
    rate); it is an object from its first event after a write until the next write, ``write_interval_s``
    later. At ``t`` after a write it is an object with probability ``1 - exp(-t / gap_s)``; the mean over
    ``t`` in ``[0, W]`` is ``1 - (gap_s / W) (1 - exp(-W / gap_s))``.
    """
    import math

    if gap_s <= 0 or write_interval_s <= 0:
        raise ValueError("gap_s and write_interval_s must be > 0")
    r = gap_s / write_interval_s
    return 1.0 - r * (1.0 - math.exp(-1.0 / r))


#: Issue 19 targets, bytes per session.
TARGET_FLINK_STATE_BYTES = 4096
TARGET_PYTHON_COPY_BYTES = 8192


def traced_bytes(make) -> tuple[int, object]:
    """Bytes still allocated (tracemalloc) after ``make()`` returns, and what it returned."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    obj = make()
    size = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return size, obj


def decided_sessions(n_sessions: int, gap_ms: int, seed: int = 7) -> list:
    """``n_sessions`` complete sessions of the benchmark's load, decided; returns their SessionEntry."""
    from bench.loadgen import build_templates, fill
    from udfs.config import JobConfig
    from udfs.contract import parse_event
    from udfs.datasets import data_dir
    from udfs.decide import Decider
    from udfs.rules import RuleEngine
    from udfs.scoring import ReloadingScorer

    templates, _ = build_templates(data_dir(), seed=seed)
    cfg = JobConfig()
    decider = Decider(cfg, ReloadingScorer(cfg.model_name, version=cfg.model_version), RuleEngine.default())
    store: dict = {}
    t0 = 1_796_000_000_000
    counter = 0
    for k in range(n_sessions):
        tpl = templates[k % len(templates)]
        session_id = f"{tpl.session_id}~size.{k // len(templates)}"
        events = []
        for j, (parts, slots) in enumerate(tpl.events):
            counter += 1
            out = [parts[0]]
            for slot, part in zip(slots, parts[1:]):
                if slot == "ts":
                    out.append(b"\0TS\0")
                else:
                    out.append((f"00000000-0000-4000-8000-{counter:012x}" if slot == "event_id" else session_id).encode())
                out.append(part)
            head, mid, tail = b"".join(out).split(b"\0TS\0")
            events.append(parse_event(fill(head, mid, tail, t0 + j * gap_ms)))
        for i in range(0, len(events), 5):  # ~5 events per micro-batch, as at 2,000/s (bench/README.md)
            result = decider.decide(events[i:i + 5], store.get)
            store.update(result.touched)
    return list(store.values())


def breakdown(entries: list) -> dict:
    """Pickle bytes and Python bytes per session, per field of SessionEntry and slot of SessionState."""
    from udfs.decide import SessionEntry
    from udfs.session import SessionState

    n = len(entries)
    out: dict = {}
    for name in SessionEntry.__slots__:
        values = [getattr(e, name) for e in entries]
        if name in ("state", "lag"):
            for slot in SessionState.__slots__:
                parts = [getattr(v, slot) for v in values if v is not None]
                blobs = [pickle.dumps(p, pickle.HIGHEST_PROTOCOL) for p in parts]
                py, _ = traced_bytes(lambda b=blobs: [pickle.loads(x) for x in b])
                out[f"{name}.{slot}"] = {"pickle_bytes": round(sum(map(len, blobs)) / n, 1),
                                         "python_bytes": round(py / n, 1)}
            continue
        blobs = [pickle.dumps(v, pickle.HIGHEST_PROTOCOL) for v in values]
        py, _ = traced_bytes(lambda b=blobs: [pickle.loads(x) for x in b])
        out[name] = {"pickle_bytes": round(sum(map(len, blobs)) / n, 1), "python_bytes": round(py / n, 1)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["python_bytes"]))


@click.command()
@click.option("--sessions", "n_sessions", default=10_000, show_default=True)
@click.option("--gap-ms", default=5000, show_default=True, help="Time between two events of a session, ms.")
@click.option("--gc-sessions", default="10000,100000", show_default=True,
              help="Also time one full cyclic collection (gc.collect()) with this many session copies alive.")
@click.option("--out", default=str(ROOT / "bench" / "results" / "session_size.json"), show_default=True)
def main(n_sessions: int, gap_ms: int, gc_sessions: str, out: str) -> None:
    """Bytes per session in Flink state (pickle) and in the operator's Python copy."""
    from udfs.microbatch import ShardSessions, encode_stored

    from bench.procs import load_avg_1m

    gc_list = [int(x) for x in gc_sessions.split(",") if x.strip()]
    t0 = time.monotonic()
    load_start = load_avg_1m()
    entries = decided_sessions(n_sessions, gap_ms)
    ids = [e.state.session_id for e in entries]
    blobs = [pickle.dumps(e, pickle.HIGHEST_PROTOCOL) for e in entries]
    sizes = sorted(map(len, blobs))
    stored = sorted(len(encode_stored(e)) for e in entries)
    n = len(entries)
    py_bytes, copies = traced_bytes(lambda: [pickle.loads(b) for b in blobs])

    def shard():
        s = ShardSessions(1_800_000, 10_000)
        s.update(dict(zip(ids, copies)), 1_796_000_000_000)
        return s

    book_bytes, _ = traced_bytes(shard)
    # a session written to keyed state is held as those bytes until its next event (ShardSessions)
    written_bytes, _ = traced_bytes(lambda: [encode_stored(e) for e in entries])
    obj_b, held_b = (py_bytes + book_bytes) / n, (written_bytes + book_bytes) / n
    copy_at = {}
    for n_open in (1_000, 10_000, 100_000):
        hot = hot_fraction(n_open / COPY_MODEL_RATE_EPS, COPY_MODEL_WRITE_INTERVAL_S)
        copy_at[str(n_open)] = {"objects_fraction": round(hot, 3), "bytes_per_session": round(hot * obj_b + (1 - hot) * held_b, 1)}
    events = [sum(e.counts) for e in entries]
    pauses = {}
    copies = None  # noqa: F841 - free the copies before the GC measurement
    for n_gc in gc_list:
        held = [pickle.loads(blobs[i % n]) for i in range(n_gc)]
        gc.collect()
        tracked = len(gc.get_objects())
        t_gc = time.perf_counter()
        gc.collect()
        pauses[str(n_gc)] = {"gc_tracked_objects": tracked, "full_collection_ms": round((time.perf_counter() - t_gc) * 1000, 1)}
        del held
        # as the job holds them between a state write and their next event: bytes, which the GC skips
        held = [encode_stored(entries[i % n]) for i in range(n_gc)]
        gc.collect()
        t_gc = time.perf_counter()
        gc.collect()
        pauses[str(n_gc)]["full_collection_ms_held_as_stored"] = round((time.perf_counter() - t_gc) * 1000, 1)
        del held
    res = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv), "sessions": n,
           "gap_ms": gap_ms, "load": "synthetic timing over real sessions (bench/loadgen.py templates, full sessions)",
           "python": sys.version.split()[0], "load_avg_1m_at_start": load_start, "load_avg_1m_at_end": load_avg_1m(),
           "events_per_session_mean": round(sum(events) / n, 1), "events_per_session_max": max(events),
           "pickle_bytes_per_session": {"mean": round(sum(sizes) / n, 1), "p50": sizes[n // 2],
                                        "p99": sizes[min(n - 1, int(0.99 * n))], "max": sizes[-1]},
           "stored_bytes_per_session": {"mean": round(sum(stored) / n, 1), "p50": stored[n // 2],
                                        "p99": stored[min(n - 1, int(0.99 * n))], "max": stored[-1]},
           "python_copy_bytes_per_session": round((py_bytes + book_bytes) / n, 1),
           "python_entries_bytes_per_session": round(py_bytes / n, 1),
           "python_bookkeeping_bytes_per_session": round(book_bytes / n, 1),
           "python_held_as_stored_bytes_per_session": round(held_b, 1),
           "python_copy_model": {"rate_eps": COPY_MODEL_RATE_EPS, "state_write_interval_s": COPY_MODEL_WRITE_INTERVAL_S,
                                 "by_open_sessions": copy_at,
                                 "formula": "objects_fraction * python_copy + (1 - objects_fraction) * held_as_stored; "
                                            "objects_fraction = 1 - (g/W)(1 - exp(-W/g)), g = open/rate"},
           "targets": {"flink_state_bytes": TARGET_FLINK_STATE_BYTES, "python_copy_bytes": TARGET_PYTHON_COPY_BYTES},
           "by_part": breakdown(entries),
           "gc_full_collection": pauses,
           "seconds": round(time.monotonic() - t0, 1)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=2) + "\n")
    click.echo(f"{n} sessions, {res['events_per_session_mean']} events each on average: stored (zstd) "
               f"{res['stored_bytes_per_session']} B, pickle {res['pickle_bytes_per_session']} B, Python copy {res['python_copy_bytes_per_session']} B "
               f"(entries {res['python_entries_bytes_per_session']} + bookkeeping "
               f"{res['python_bookkeeping_bytes_per_session']})")
    click.echo(f"held as its stored bytes after a state write: {res['python_held_as_stored_bytes_per_session']} B; "
               "modelled copy per session at " + ", ".join(
                   f"{int(k):,} open: {v['bytes_per_session']:,.0f} B ({v['objects_fraction']:.0%} objects)"
                   for k, v in copy_at.items()))
    for n_gc, fig in pauses.items():
        click.echo(f"full cyclic collection with {int(n_gc):,} sessions alive: {fig['full_collection_ms']:,.0f} ms "
                   f"({fig['gc_tracked_objects']:,} tracked objects); held as stored bytes: "
                   f"{fig['full_collection_ms_held_as_stored']:,.0f} ms")
    click.echo("part                          pickle B   python B  (per session)")
    for part, fig in res["by_part"].items():
        click.echo(f"{part:<28} {fig['pickle_bytes']:>9} {fig['python_bytes']:>10}")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
