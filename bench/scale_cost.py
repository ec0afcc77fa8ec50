"""Per-session cost of the operator's work that grows with open sessions (issue 19), old code against new.

Offline, no Flink: ``--sessions`` complete sessions of the benchmark's load decided in full
(``bench.session_size.decided_sessions``; one event every ``--gap-ms`` per session: 50 s = 100,000 open
sessions at 2,000 events/s), then, per session, in microseconds:

* **summaries**: ``udfs.decide.session_summaries`` (the Redis ``session:{id}`` hash of every changed
  session, every 1 s) against the code of commit ab257fb (:func:`old_summaries`, verbatim);
* **encode**: ``udfs.microbatch.encode_stored`` (a changed session into keyed state, every 10 s) against
  ab257fb's (:func:`old_encode`: zstd level 1 of the pickle);
* **decode**: ``udfs.microbatch.decode_stored`` of the values each writes (a session read back on its
  next event) against ab257fb's, whose ``SessionState.__setstate__`` set the slots in a ``setattr`` loop
  (:func:`old_state_setstate`, swapped in while the old decode is timed).

The machine is shared and noisy: old and new are timed alternately (the order flips every repetition),
``--repeat`` times each, with the cyclic GC off while timing (the same objects are allocated either way;
the job's GC policy is ``udfs.gcpolicy``), and the medians and their ratio are reported. The estimate of
interpreter time saved at 100,000 open sessions takes the number of sessions changed per summary interval
(1 s) and per state write interval (10 s) at 2,000 events/s with Poisson arrivals per session
(``open * (1 - exp(-interval * rate / open))``), and one decode per encode (each session written is read
back on its next event).

Run: ``.venv/bin/python -m bench.scale_cost [--sessions 2000 --gap-ms 50000 --repeat 15]``; prints a table
and writes ``bench/results/scale_cost.json``.
"""
from __future__ import annotations

import gc
import json
import math
import pickle
import statistics
import sys
import time
from array import array
from pathlib import Path

import click
import zstandard

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The load the estimate is for: issue 19's target level (2,000 events/s, 100,000 open sessions) and the
#: job's default intervals (``udfs.config.JobConfig.summary_interval_ms`` / ``state_write_interval_ms``), s.
ESTIMATE_RATE_EPS = 2000.0
ESTIMATE_OPEN_SESSIONS = 100_000
SUMMARY_INTERVAL_S = 1.0
STATE_WRITE_INTERVAL_S = 10.0

_OLD_ZSTD = zstandard.ZstdCompressor(level=1)  # ab257fb's STATE_ZSTD_LEVEL


def old_summaries(entries, model_version, rules_version, page_rates_version=None):
    """``udfs.decide.session_summaries`` as of commit ab257fb, verbatim."""
    import orjson

    versions = {"model_version": model_version, "rules_version": rules_version}
    if page_rates_version is not None:
        versions["page_rates_version"] = page_rates_version
    out = {}
    for session_id, entry in entries.items():
        out[session_id] = {**entry.count_dict(), "intent_score": round(entry.last_intent_score, 6), **versions,
                           "features": orjson.dumps(entry.state.features().tolist()).decode()}
    return out


def old_encode(entry) -> bytes:
    """``udfs.microbatch.encode_stored`` as of commit ab257fb."""
    return bytes(memoryview(_OLD_ZSTD.compress(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))))


def old_state_setstate(self, state) -> None:
    """``udfs.session.SessionState.__setstate__`` as of commit ab257fb, verbatim."""
    from udfs.session import STATE_VERSION

    if not state or state[0] != STATE_VERSION or len(state) != len(self.__slots__) + 1:
        raise ValueError(f"SessionState pickled with layout {state[0] if state else None!r}, this code reads "
                         f"{STATE_VERSION}: restart without state or migrate the savepoint")
    for name, value in zip(self.__slots__, state[1:]):
        setattr(self, name, value)
    v = self._v
    if v.__class__ is bytes:
        self._v = array("d")
        self._v.frombytes(v)
    elif not isinstance(v, array):
        self._v = array("d", v)
    if not isinstance(self._click_ts, list):
        self._click_ts = list(self._click_ts)


def changed_per_interval(open_sessions: float, rate_eps: float, interval_s: float) -> float:
    """Sessions with at least one event in an interval, each session's events a Poisson process of rate
    ``rate_eps / open_sessions``."""
    return open_sessions * (1.0 - math.exp(-interval_s * rate_eps / open_sessions))


def _time_us(fn, n: int) -> float:
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        gc.enable()


@click.command()
@click.option("--sessions", "n_sessions", default=2000, show_default=True)
@click.option("--gap-ms", default=50_000, show_default=True, help="Time between two events of a session, ms.")
@click.option("--repeat", default=15, show_default=True, help="Timed passes of each piece, old and new alternately.")
@click.option("--out", default=str(ROOT / "bench" / "results" / "scale_cost.json"), show_default=True)
def main(n_sessions: int, gap_ms: int, repeat: int, out: str) -> None:
    """Microseconds per session of summaries, encode and decode, old (ab257fb) against new."""
    from bench.procs import load_avg_1m
    from bench.session_size import decided_sessions
    from udfs.decide import session_summaries
    from udfs.microbatch import decode_stored, encode_stored
    from udfs.session import SessionState

    t_start = time.monotonic()
    load_start = load_avg_1m()
    entries = decided_sessions(n_sessions, gap_ms)
    n = len(entries)
    by_id = {e.state.session_id: e for e in entries}
    old_values, new_values = [old_encode(e) for e in entries], [encode_stored(e) for e in entries]
    new_setstate = SessionState.__setstate__

    def old_decode_all():
        SessionState.__setstate__ = old_state_setstate
        try:
            return [decode_stored(v) for v in old_values]
        finally:
            SessionState.__setstate__ = new_setstate

    # the same content: summaries equal, and old and new values, read by old and new code, give the same
    # sessions (compared as pickles of sessions read back: a set read back can iterate in another order
    # than the one it was pickled from, so each side is read back once)
    assert session_summaries(by_id, "m", "r", "p") == old_summaries(by_id, "m", "r", "p")
    want = [pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL) for e in old_decode_all()]
    assert [pickle.dumps(decode_stored(v), protocol=pickle.HIGHEST_PROTOCOL) for v in old_values] == want
    assert [pickle.dumps(decode_stored(v), protocol=pickle.HIGHEST_PROTOCOL) for v in new_values] == want

    pieces = {
        "summaries": (lambda: old_summaries(by_id, "m", "r"), lambda: session_summaries(by_id, "m", "r")),
        "encode": (lambda: [old_encode(e) for e in entries], lambda: [encode_stored(e) for e in entries]),
        "decode": (old_decode_all, lambda: [decode_stored(v) for v in new_values]),
    }
    samples = {name: {"old": [], "new": []} for name in pieces}
    for rep in range(repeat):
        for name, (old, new) in pieces.items():
            for which in (("old", "new") if rep % 2 == 0 else ("new", "old")):
                samples[name][which].append(_time_us(old if which == "old" else new, n))
    figures = {}
    for name, s in samples.items():
        old_us, new_us = statistics.median(s["old"]), statistics.median(s["new"])
        figures[name] = {"old_us": round(old_us, 2), "new_us": round(new_us, 2), "new_over_old": round(new_us / old_us, 3),
                         "old_us_all": [round(x, 2) for x in s["old"]], "new_us_all": [round(x, 2) for x in s["new"]]}
    per_s = {"summaries": changed_per_interval(ESTIMATE_OPEN_SESSIONS, ESTIMATE_RATE_EPS, SUMMARY_INTERVAL_S) / SUMMARY_INTERVAL_S}
    per_s["encode"] = per_s["decode"] = (changed_per_interval(ESTIMATE_OPEN_SESSIONS, ESTIMATE_RATE_EPS, STATE_WRITE_INTERVAL_S)
                                         / STATE_WRITE_INTERVAL_S)
    saved_ms = {k: round(per_s[k] * (figures[k]["old_us"] - figures[k]["new_us"]) / 1000, 2) for k in pieces}
    old_ms = {k: round(per_s[k] * figures[k]["old_us"] / 1000, 2) for k in pieces}
    old_sizes, new_sizes = sorted(map(len, old_values)), sorted(map(len, new_values))
    res = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv), "sessions": n,
           "gap_ms": gap_ms, "repeat": repeat, "python": sys.version.split()[0],
           "load_avg_1m_at_start": load_start, "load_avg_1m_at_end": load_avg_1m(),
           "us_per_session": figures,
           "stored_bytes_per_session": {
               "old": {"mean": round(sum(old_sizes) / n, 1), "p99": old_sizes[min(n - 1, int(0.99 * n))]},
               "new": {"mean": round(sum(new_sizes) / n, 1), "p99": new_sizes[min(n - 1, int(0.99 * n))]}},
           "estimate_100k_open": {"rate_eps": ESTIMATE_RATE_EPS, "open_sessions": ESTIMATE_OPEN_SESSIONS,
                                  "per_second": {k: round(v) for k, v in per_s.items()},
                                  "old_interpreter_ms_per_s": old_ms, "saved_interpreter_ms_per_s": saved_ms,
                                  "saved_total_ms_per_s": round(sum(saved_ms.values()), 2)},
           "seconds": round(time.monotonic() - t_start, 1)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=2) + "\n")
    click.echo(f"{n} sessions (gap {gap_ms} ms), {repeat} alternating passes, median us per session "
               f"(load average {load_start} -> {res['load_avg_1m_at_end']}):")
    click.echo(f"{'piece':<10} {'old':>8} {'new':>8} {'new/old':>8} {'per s @100k':>12} {'old ms/s':>9} {'saved ms/s':>11}")
    for k, fig in figures.items():
        click.echo(f"{k:<10} {fig['old_us']:>8.2f} {fig['new_us']:>8.2f} {fig['new_over_old']:>8.3f} "
                   f"{per_s[k]:>12,.0f} {old_ms[k]:>9.1f} {saved_ms[k]:>11.1f}")
    click.echo(f"stored bytes per session: old {res['stored_bytes_per_session']['old']}, new {res['stored_bytes_per_session']['new']}")
    click.echo(f"interpreter time saved at {ESTIMATE_OPEN_SESSIONS:,} open sessions, {ESTIMATE_RATE_EPS:,.0f} events/s: "
               f"~{res['estimate_100k_open']['saved_total_ms_per_s']} ms per second; wrote {out}")


if __name__ == "__main__":
    main()
