"""The sizing table (issue 19): the machine a user needs for N events/s and M sessions, generated from the
committed results files, never copied by hand.

Inputs (bench/results/): ``latest.json`` (``intentflow bench``: paced levels and the drain run: events/s
one interpreter sustains and its CPU per 1,000 events), ``sessions.json`` (``intentflow bench --sessions``:
bytes per additional session in Flink state, JVM heap and RSS, Redis; checkpoint write rate; recovery),
``session_size.json`` (``bench/session_size.py``: the Python copy per session, offline) and ``soak.json``
(``intentflow bench --soak-min``: the rate-bound Redis aggregates, slopes).

The cost model (:func:`size`), per workload of ``eps`` events/s and ``sessions`` sessions in state (the
sessions with an event in the last ``session_ttl_s`` = 30 min, not only those open at this second):

* **interpreters** (TaskManagers; one embedded CPython each, one GIL): the fewest K with
  ``eps / K <= HEADROOM x capacity(sessions / K)``: capacity is the highest paced level of ``latest.json``
  whose lag stayed bounded (500 open sessions), lowered where ``sessions.json`` measured that more open
  sessions held the job back (:func:`capacity_points`, :func:`capacity_at`: the per-second session
  summaries and the state writes grow with the distinct sessions per interval);
* **cores**: the larger of ``eps / 1000 * core_ms_per_1k / 1000`` (drain run, parallelism 1) and the
  interpreters' busy time ``eps / capacity``, x :data:`CORES_OVERHEAD` for the broker, Redis and the OS;
* **memory per TaskManager**: the base RSS of the job's JVM (smallest session count) + the marginal RSS per
  session x sessions per TaskManager (RSS holds the Java heap with the pickled state *and* the Python copy);
* **Redis**: per-session keys (marginal bytes x sessions) + the aggregates (bytes per event/s at steady
  state x eps) + the capped actions stream;
* **checkpoint**: Flink state bytes x sessions; its duration at the write rate measured at the largest count;
* **Kafka partitions** of ``signals.raw`` >= interpreters; the job's max parallelism (session shards, 8 by
  default, fixed for the life of its state) >= interpreters.

Run: ``.venv/bin/python -m bench.sizing`` rewrites the marked blocks of bench/README.md and README.md.

Why this module is over 400 lines: it derives the cost model (per event and per session) from four
results files and renders it into two generated README blocks; every figure it prints names the
results file it comes from.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

#: Fraction of the highest sustained paced level one plans to load an interpreter with (our choice: 70 %,
#: room for bursts and for checkpoints / state writes, which pause the interpreter).
HEADROOM = 0.7
#: Cores for the broker, Redis, the OS and the JVM's own threads, as a factor on the job's own CPU (our
#: choice: 2x; the drain runs measured the job alone, bench/README.md).
CORES_OVERHEAD = 2.0
#: Heap one TaskManager is given before the next limit is "heap" (the mini-cluster's default here is 1/4
#: of RAM: 6 GiB on the 24 GiB machine; our choice for a TaskManager: 4 GiB), bytes.
HEAP_BUDGET_BYTES = 4 * 1024 ** 3
#: Redis memory of one instance before the next limit is "Redis" (our choice: 25 GiB, a common single
#: instance size; beyond it Redis Cluster by session key), bytes.
REDIS_BUDGET_BYTES = 25 * 1024 ** 3
#: Issue 19's checkpoint target, s.
CHECKPOINT_TARGET_S = 5.0
#: Default partitions of ``signals.raw`` (udfs/config.py TOPIC_PARTITIONS) and max parallelism (JobConfig).
DEFAULT_PARTITIONS = 4
DEFAULT_MAX_PARALLELISM = 8
#: TTL of the ``agg`` keys in Redis, s (operators/redis_actions.py ``AGG_TTL_S``).
AGG_TTL_S = 600
#: Workloads of the table: (events/s, sessions in state).
WORKLOADS = ((500, 10_000), (2_000, 100_000), (2_000, 1_000_000), (5_000, 300_000), (20_000, 1_000_000),
             (50_000, 5_000_000))
GIB = 1024 ** 3
MIB = 1024 ** 2


#: A sessions-run level "kept up" when it was drained within this many seconds after its last event.
KEPT_UP_DRAIN_S = 2.0


def capacity_points(counts: list[dict], sustained_eps: float | None) -> list[tuple[float, float]]:
    """``(sessions in state, events/s one interpreter handles)`` per session count of a sessions run.

    A level that kept up (drained within :data:`KEPT_UP_DRAIN_S`) is taken at ``sustained_eps`` (the paced
    benchmark's figure: the open sessions did not hold it back at this rate); one that fell behind at its
    measured rate ``sent / (send_s + drain_s)`` (a lower bound: events processed from the level's start to
    the end of its backlog).
    """
    pts = []
    for c in counts:
        lv = c.get("level") or {}
        if not c.get("sessions_in_state") or not lv.get("sent"):
            continue
        send_s = lv["sent"] / lv["achieved_eps"] if lv.get("achieved_eps") else None
        if lv.get("drained") and (lv.get("drain_s") or 0.0) <= KEPT_UP_DRAIN_S and sustained_eps:
            cap = max(sustained_eps, lv.get("achieved_eps") or 0.0)
        elif send_s:
            cap = lv["sent"] / (send_s + (lv.get("drain_s") or 0.0))
        else:
            continue
        pts.append((float(c["sessions_in_state"]), cap))
    return sorted(pts)


def capacity_at(points: list[tuple[float, float]], sessions: float) -> float | None:
    """Events/s of one interpreter holding ``sessions``: linear in log(sessions) between the measured
    points; below the smallest, its value; above the largest, its value x largest/sessions (the per-session
    work dominates there: assumed to grow in proportion, a conservative extrapolation)."""
    if not points:
        return None
    if sessions <= points[0][0]:
        return points[0][1]
    for (s0, c0), (s1, c1) in zip(points, points[1:]):
        if sessions <= s1:
            f = (math.log(sessions) - math.log(s0)) / (math.log(s1) - math.log(s0))
            return c0 + f * (c1 - c0)
    s_max, c_max = points[-1]
    return c_max * s_max / sessions


def model_inputs(latest: dict, sessions: dict, session_size: dict | None, soak: dict | None) -> dict:
    """The per-unit costs the model uses, each with the file it comes from."""
    levels = latest.get("levels", [])
    sustained = [lv for lv in levels if lv.get("rate_eps") and lv.get("lag", {}).get("bounded")
                 and (lv.get("processed_eps") or 0) >= 0.95 * lv["rate_eps"]]
    best = max(sustained, key=lambda lv: lv["rate_eps"]) if sustained else None
    drain = latest.get("drain", {}).get("job", {})
    marg = sessions.get("marginal", {})
    counts = [c for c in sessions.get("counts", []) if c.get("level")]
    smallest = min(counts, key=lambda c: c["sessions_in_state"]) if counts else {}
    largest = max(counts, key=lambda c: c["sessions_in_state"]) if counts else {}
    cp = largest.get("checkpoint") or {}
    write_bps = (cp["state_size"] / (cp["end_to_end_duration"] / 1000.0)
                 if cp.get("state_size") and cp.get("end_to_end_duration") else None)
    # aggregates at steady state: bytes per event (all of a sessions run's events are within their TTL) x TTL
    per_event = [c["redis_agg_bytes_per_event"] for c in counts if c.get("redis_agg_bytes_per_event")]
    agg_per_eps = sum(per_event) / len(per_event) * AGG_TTL_S if per_event else None
    actions = (largest.get("redis") or {}).get("actions") or {}
    return {
        "sustained_eps": best and best["rate_eps"], "sustained_p99_ms": best and best.get("p99_ms"),
        "core_ms_per_1k_events": drain.get("core_ms_per_1k_events"),
        "flink_state_bytes_per_session": (marg.get("flink_state") or {}).get("slope"),
        "rss_bytes_per_session": (marg.get("jvm_rss") or {}).get("slope"),
        "heap_bytes_per_session": (marg.get("heap_used_min") or {}).get("slope"),
        "redis_bytes_per_session": (marg.get("redis_session_keys") or {}).get("slope"),
        "python_copy_bytes_per_session": (session_size or {}).get("python_copy_bytes_per_session"),
        "base_rss_bytes": ((smallest.get("level") or {}).get("rss_bytes") or {}).get("last"),
        "checkpoint_write_bytes_per_s": write_bps,
        "redis_agg_bytes_per_eps": agg_per_eps,
        "redis_actions_stream_bytes": actions.get("mean_bytes") and actions["mean_bytes"],
        "recovery_s_at_largest": (largest.get("recovery") or {}).get("first_readable_s"),
        "largest_sessions_measured": largest.get("sessions_in_state"),
        "capacity_points": capacity_points(counts, best and best["rate_eps"]),
    }


def size(eps: float, sessions: int, m: dict, partitions: int = DEFAULT_PARTITIONS,
         max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> dict:
    """Resources for ``eps`` events/s and ``sessions`` sessions in state, from the inputs ``m``
    (:func:`model_inputs`); see the module docstring. Missing inputs give None figures.

    Returns:
        ``interpreters``, ``cores``, ``rss_per_tm_bytes``, ``heap_per_tm_bytes``, ``redis_bytes``,
        ``checkpoint_bytes``, ``checkpoint_s``, ``partitions_needed``, ``limits`` (what binds, in order)
        and ``next_limit``.
    """
    planning = HEADROOM * m["sustained_eps"] if m.get("sustained_eps") else None
    interp = max(1, math.ceil(eps / planning)) if planning else None
    points = m.get("capacity_points") or []
    if interp and points:
        # more interpreters until each one's share of events fits what it handles with its share of sessions
        while interp < 10_000 and eps / interp > HEADROOM * capacity_at(points, sessions / interp):
            interp += 1
        planning = HEADROOM * capacity_at(points, sessions / interp)
    # the job's CPU: per event (drain run), but at least the interpreters' busy time at this load
    busy = eps / (planning / HEADROOM) if planning else 0.0
    cores = (max(eps / 1000.0 * m["core_ms_per_1k_events"] / 1000.0, busy) * CORES_OVERHEAD
             if m.get("core_ms_per_1k_events") else None)
    per_tm_sessions = sessions / interp if interp else sessions

    def mul(key, n):
        return m[key] * n if m.get(key) is not None else None

    rss = (m["base_rss_bytes"] + m["rss_bytes_per_session"] * per_tm_sessions
           if m.get("base_rss_bytes") is not None and m.get("rss_bytes_per_session") is not None else None)
    heap = mul("flink_state_bytes_per_session", per_tm_sessions)
    heap_meas = mul("heap_bytes_per_session", per_tm_sessions)
    if heap is not None and heap_meas is not None:
        heap = max(heap, heap_meas)
    redis_b = None
    if m.get("redis_bytes_per_session") is not None:
        redis_b = m["redis_bytes_per_session"] * sessions
        redis_b += (m.get("redis_agg_bytes_per_eps") or 0.0) * eps
        redis_b += (m.get("redis_actions_stream_bytes") or 0.0)
    cp_bytes = mul("flink_state_bytes_per_session", sessions)
    cp_s = (cp_bytes / m["checkpoint_write_bytes_per_s"] / (interp or 1)
            if cp_bytes is not None and m.get("checkpoint_write_bytes_per_s") else None)
    limits = []
    if interp and interp > 1:
        limits.append(f"GIL: {interp} interpreters (TaskManagers)")
    if interp and interp > partitions:
        limits.append(f"Kafka: {interp} partitions of signals.raw (default {partitions})")
    if interp and interp > max_parallelism:
        limits.append(f"max parallelism {max_parallelism}: start with a larger --max-parallelism (new state)")
    if heap is not None and heap > HEAP_BUDGET_BYTES:
        limits.append(f"heap: {heap / GIB:.1f} GiB of state per TaskManager")
    if redis_b is not None and redis_b > REDIS_BUDGET_BYTES:
        limits.append(f"Redis: {redis_b / GIB:.0f} GiB (Redis Cluster)")
    if cp_s is not None and cp_s > CHECKPOINT_TARGET_S:
        limits.append(f"checkpoint {cp_s:.0f} s full snapshot (RocksDB, incremental)")
    # The next ceiling as the load grows (events/s and sessions together, a TaskManager added whenever the
    # GIL needs one, so state and checkpoint per TaskManager stay about constant): the factor k of this load
    # at which each hard ceiling binds; the smallest comes first.
    ceilings = {}
    if planning:
        ceilings[f"Kafka partitions ({partitions})"] = partitions * planning / eps
        ceilings[f"max parallelism ({max_parallelism} shards)"] = max_parallelism * planning / eps
    if redis_b:
        ceilings[f"one Redis ({REDIS_BUDGET_BYTES / GIB:.0f} GiB)"] = REDIS_BUDGET_BYTES / redis_b
    ceilings = {k: v for k, v in ceilings.items() if v > 1.0}  # those at or below 1 are reached (limits)
    next_limit = min(ceilings, key=ceilings.get) if ceilings else None
    return {"eps": eps, "sessions": sessions, "interpreters": interp, "cores": cores,
            "rss_per_tm_bytes": rss, "heap_per_tm_bytes": heap, "redis_bytes": redis_b,
            "checkpoint_bytes": cp_bytes, "checkpoint_s": cp_s, "partitions_needed": interp,
            "limits": limits, "next_limit": next_limit,
            "extrapolated": bool(m.get("largest_sessions_measured") and interp
                                 and sessions / interp > m["largest_sessions_measured"]),
            "next_limit_at_x_load": round(ceilings[next_limit], 1) if next_limit else None}


def _f(x, scale=1.0, fmt="{:,.1f}") -> str:
    return "–" if x is None else fmt.format(x / scale)


def table(m: dict, workloads=WORKLOADS, short: bool = False) -> str:
    """Markdown sizing table for ``workloads``."""
    rows = [size(eps, n, m) for eps, n in workloads]
    if short:
        out = ["| events/s | sessions (30 min) | TaskManagers (interpreters) | cores | RAM per TM | Redis | binds first |",
               "|---|---|---|---|---|---|---|"]
        for r in rows:
            out.append(f"| {r['eps']:,} | {r['sessions']:,}{' *' if r['extrapolated'] else ''} | "
                       f"{_f(r['interpreters'], fmt='{:,.0f}')} | {_f(r['cores'])} | {_f(r['rss_per_tm_bytes'], GIB)} GiB | {_f(r['redis_bytes'], GIB)} GiB | "
                       f"{'; '.join(r['limits']) or 'nothing: one TaskManager'} |")
        return "\n".join(out)
    out = ["| events/s | sessions in state (30 min) | TaskManagers = interpreters = partitions | cores (job x 2) | "
           "RSS per TM | state (heap) per TM | Redis | checkpoint size / est. duration | limits reached | "
           "next ceiling (at x this load) |", "|" + "|".join(["---"] * 10) + "|"]
    for r in rows:
        out.append(f"| {r['eps']:,} | {r['sessions']:,}{' *' if r['extrapolated'] else ''} | "
                   f"{_f(r['interpreters'], fmt='{:,.0f}')} | {_f(r['cores'])} | "
                   f"{_f(r['rss_per_tm_bytes'], GIB)} GiB | {_f(r['heap_per_tm_bytes'], GIB, '{:,.2f}')} GiB | "
                   f"{_f(r['redis_bytes'], GIB, '{:,.2f}')} GiB | {_f(r['checkpoint_bytes'], MIB, '{:,.0f}')} MiB / "
                   f"{_f(r['checkpoint_s'])} s | {'; '.join(r['limits']) or '–'} | {r['next_limit']} "
                   f"(x{r['next_limit_at_x_load']}) |")
    out.append("\n\\* more sessions per TaskManager than the largest count measured: the capacity is extrapolated "
               "(falling in proportion to the sessions held, a conservative assumption).")
    return "\n".join(out)


def inputs_table(m: dict, sources: dict) -> str:
    rows = ["| input | value | from |", "|---|---|---|"]
    labels = {"sustained_eps": ("events/s one interpreter sustained (lag bounded)", "{:,.0f}", "latest.json"),
              "sustained_p99_ms": ("p99 at that rate, ms", "{:,.0f}", "latest.json"),
              "core_ms_per_1k_events": ("job core-ms per 1,000 events (drain)", "{:,.0f}", "latest.json"),
              "flink_state_bytes_per_session": ("Flink state per session, B (marginal)", "{:,.0f}", "sessions.json"),
              "heap_bytes_per_session": ("heap floor per session, B (marginal)", "{:,.0f}", "sessions.json"),
              "rss_bytes_per_session": ("JVM RSS per session, B (marginal)", "{:,.0f}", "sessions.json"),
              "python_copy_bytes_per_session": ("Python copy per session, B (offline)", "{:,.0f}", "session_size.json"),
              "redis_bytes_per_session": ("Redis per session, B (marginal)", "{:,.0f}", "sessions.json"),
              "redis_agg_bytes_per_eps": ("Redis aggregates per event/s, B (bytes per event x 600 s TTL)", "{:,.0f}",
                                          "sessions.json"),
              "base_rss_bytes": ("JVM RSS base, MiB", "{:,.0f}", "sessions.json"),
              "checkpoint_write_bytes_per_s": ("checkpoint write rate, MiB/s", "{:,.0f}", "sessions.json"),
              "recovery_s_at_largest": ("recovery to first action at the largest count, s", "{:,.1f}", "sessions.json")}
    for key, (label, fmt, src) in labels.items():
        v = m.get(key)
        if v is not None and key in ("base_rss_bytes", "checkpoint_write_bytes_per_s"):
            v = v / MIB
        rows.append(f"| {label} | {'–' if v is None else fmt.format(v)} | {sources.get(src, src)} |")
    return "\n".join(rows)


def _load(name: str) -> dict | None:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def replace_block(text: str, marker: str, body: str) -> str:
    """Replace the text between ``<!-- marker:begin -->`` and ``<!-- marker:end -->`` (kept) with ``body``.

    Raises:
        ValueError: the markers are missing.
    """
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"markers {begin} ... {end} not found")
    return text[:i + len(begin)] + "\n" + body.strip() + "\n" + text[j:]


@click.command()
@click.option("--check", is_flag=True, help="Print the tables only; change no file.")
@click.option("--results", "results_dir", default=str(RESULTS), show_default=True,
              help="Folder of the results files (another one only with --check).")
def main(check: bool, results_dir: str) -> None:
    """Rewrite the sizing blocks of bench/README.md and README.md from bench/results/."""
    global RESULTS
    RESULTS = Path(results_dir)
    latest, sessions = _load("latest.json"), _load("sessions.json")
    if not latest or not sessions:
        raise click.ClickException("bench/results/latest.json and sessions.json are needed")
    session_size, soak = _load("session_size.json"), _load("soak.json")
    soaks = [(name, r) for name in SOAK_FILES if (r := _load(name))]
    m = model_inputs(latest, sessions, session_size, soak)
    sources = {"latest.json": f"results/latest.json ({latest.get('started_at', '?')[:16]})",
               "sessions.json": f"results/sessions.json ({sessions.get('started_at', '?')[:16]})",
               "session_size.json": "results/session_size.json" if session_size else "missing",
               "soak.json": f"results/soak.json ({soak.get('started_at', '?')[:16]})" if soak else "missing"}
    full = (f"Generated by `.venv/bin/python -m bench.sizing` from the results files (do not edit by hand). "
            f"Planning rate per interpreter: {HEADROOM:.0%} of the highest paced level with bounded lag.\n\n"
            + inputs_table(m, sources) + "\n\n" + table(m))
    short = table(m, short=True)
    blocks = [(ROOT / "bench" / "README.md", "sizing", full), (ROOT / "README.md", "sizing-short", short),
              (ROOT / "bench" / "README.md", "sessions-results", results_block(sessions, soaks, session_size))]
    for _, marker, body in blocks:
        click.echo(f"--- {marker}\n{body}\n")
    if check:
        return
    for path, marker, body in blocks:
        path.write_text(replace_block(path.read_text(), marker, body))
        click.echo(f"updated {path} ({marker})", err=True)


def size_breakdown_table(session_size: dict, top: int = 12) -> str:
    """The largest parts of a session (bench/session_size.py), bytes per session."""
    rows = ["| part of SessionEntry | pickle B | Python B |", "|---|---|---|"]
    for part, fig in list(session_size["by_part"].items())[:top]:
        rows.append(f"| `{part}` | {fig['pickle_bytes']:,.0f} | {fig['python_bytes']:,.0f} |")
    return "\n".join(rows)


#: The soaks' results files (bench/results/), each with a plot of the same stem: soak.json with the session TTL
#: lowered to 10 min (sessions turn over 5 times in the hour), soak_ttl1800.json with the job's 30-min default.
SOAK_FILES = ("soak.json", "soak_ttl1800.json")


def results_block(sessions: dict, soaks: list[tuple[str, dict]], session_size: dict | None) -> str:
    """The results of --sessions, --soak-min (``soaks``: (results file name, its results)) and
    session_size.py as markdown (generated)."""
    from bench.scale_report import sessions_table, soak_table

    cfg = sessions.get("config", {})
    out = [f"**Open sessions** (`{_cmd(sessions)}`, run {sessions.get('started_at')}, commit "
           f"{sessions.get('commit')}, {cfg.get('rate_eps', 0):,.0f} events/s for {cfg.get('duration_s')} s per "
           f"count, synthetic load from real sessions):", "", sessions_table(sessions), ""]
    marg = sessions.get("marginal") or {}
    if marg:
        parts = []
        for name, fit in marg.items():
            if fit.get("slope") is None:
                continue
            ci = (f" (95 % interval {fit['ci_low']:,.0f} .. {fit['ci_high']:,.0f})"
                  if fit.get("ci_low") is not None else "")
            parts.append(f"{name} {fit['slope']:,.0f} B{ci}")
        out += ["Marginal cost of one more session in state (slope over the counts): " + "; ".join(parts) + ".", ""]
    if session_size:
        pb = session_size.get("stored_bytes_per_session") or session_size["pickle_bytes_per_session"]
        raw = session_size["pickle_bytes_per_session"]
        out += [f"**Bytes of one session** (`{_cmd(session_size)}`, offline, {session_size['sessions']:,} full "
                f"sessions of the load, {session_size['events_per_session_mean']} events each on average): Flink "
                f"state value (zstd of the pickle) mean {pb['mean']:,.0f} B, p99 {pb['p99']:,.0f} B (target "
                f"{session_size['targets']['flink_state_bytes']:,}; the pickle uncompressed {raw['mean']:,.0f} B); Python copy "
                f"{session_size['python_copy_bytes_per_session']:,.0f} B (target "
                f"{session_size['targets']['python_copy_bytes']:,}), of which "
                f"{session_size['python_bookkeeping_bytes_per_session']:,.0f} B bookkeeping of ShardSessions, "
                f"while the session is a Python object (changed since the last state write)"
                + (f"; once written to state it is held as those bytes until its next event: "
                   f"{session_size['python_held_as_stored_bytes_per_session']:,.0f} B" if
                   session_size.get("python_held_as_stored_bytes_per_session") else "")
                + ". Largest parts:", "", size_breakdown_table(session_size), ""]
    counts = [c for c in sessions.get("counts", []) if c.get("sessions_in_state") and c.get("redis")]
    if counts and session_size:
        big = max(counts, key=lambda c: c["sessions_in_state"])
        seen = session_size["by_part"].get("seen", {})
        redis_seen = (big["redis"].get("seen") or {}).get("total_bytes", 0)
        out += [f"**Dedup** (event ids remembered per session, `dedup_max_ids` 512, 10 min): `seen` is "
                f"{seen.get('pickle_bytes', 0):,.0f} B of the pickle and {seen.get('python_bytes', 0):,.0f} B of the "
                f"Python copy per session (offline); in Redis the `seen:` markers of actions (TTL 30 min) are "
                f"{redis_seen / big['sessions_in_state']:,.0f} B per session in state at "
                f"{big['sessions_in_state']:,} sessions.", ""]
    for name, soak in soaks:
        n = len(soak.get("minutes", []))
        out += [f"**Soak** (`{_cmd(soak)}`, run {soak.get('started_at')}: **{n} minutes** at "
                f"{soak.get('rate_eps', 0):,.0f} events/s, {soak.get('concurrent_sessions', 0):,} open sessions, "
                f"session and action TTL {soak.get('session_ttl_s')} s, fit over the minutes after "
                f"{soak.get('warmup_min'):g}; load avg 1 min "
                f"{min(m['load_avg_1m'] for m in soak['minutes']) if n else '–'}-"
                f"{max(m['load_avg_1m'] for m in soak['minutes']) if n else '–'}):", "", soak_table(soak), "",
                f"![soak](results/{Path(name).with_suffix('.png')})", ""]
    out += ["![sessions](results/sessions.png)", "", targets_table(sessions, [r for _, r in soaks], session_size)]
    return "\n".join(out)


def stream_full_minute(minutes: list[dict], family: str = "actions", share: float = 0.98) -> int | None:
    """The first soak minute whose ``family`` bytes (``redis_families``) reached ``share`` of the family's
    largest minute: when a capped stream stopped filling (descriptive; the fits do not use it). None when
    the family was never measured."""
    sizes = [(m["minute"], ((m.get("redis_families") or {}).get(family) or {}).get("bytes")) for m in minutes]
    sizes = [(minute, b) for minute, b in sizes if b is not None]
    if not sizes:
        return None
    top = max(b for _, b in sizes)
    return next(minute for minute, b in sizes if b >= share * top)


def targets_table(sessions: dict, soaks: list[dict], session_size: dict | None) -> str:
    """Issue 19's targets against the results files (generated; one set of soak rows per soak)."""
    counts = sorted((c for c in sessions.get("counts", []) if c.get("level")), key=lambda c: c["sessions_open"])
    rows = ["| issue 19 target | measured | |", "|---|---|---|"]

    def row(target: str, value: str, ok) -> None:
        rows.append(f"| {target} | {value} | {'met' if ok else ('missed' if ok is not None else '–')} |")

    if len(counts) >= 2 and counts[0]["level"].get("p99_ms") and counts[-1]["level"].get("p99_ms"):
        r = counts[-1]["level"]["p99_ms"] / counts[0]["level"]["p99_ms"]
        row(f"p99 at {counts[-1]['sessions_open']:,} open <= 1.5 x p99 at {counts[0]['sessions_open']:,}",
            f"{counts[-1]['level']['p99_ms']:,.0f} / {counts[0]['level']['p99_ms']:,.0f} ms = {r:.2f} x", r <= 1.5)
    fs = (sessions.get("marginal") or {}).get("flink_state", {}).get("slope")
    if fs is not None:
        stored = (session_size or {}).get("stored_bytes_per_session") or (session_size or {}).get("pickle_bytes_per_session")
        row("Flink state <= 4 KB per session", f"{fs:,.0f} B (marginal, sessions run); offline state value of full "
            f"sessions {stored['mean']:,.0f} B mean" if stored else f"{fs:,.0f} B",
            fs <= 4096)
    if session_size:
        py = session_size["python_copy_bytes_per_session"]
        model = (session_size.get("python_copy_model") or {}).get("by_open_sessions") or {}
        if model:  # the copy holds objects only for sessions changed since the last state write
            for k, v in model.items():
                row(f"Python copy <= 8 KB per session, {int(k):,} open at 2,000 events/s",
                    f"{v['bytes_per_session']:,.0f} B (offline model: {v['objects_fraction']:.0%} objects of "
                    f"{py:,.0f} B, the rest as stored bytes)", v["bytes_per_session"] <= 8192)
        else:
            row("Python copy <= 8 KB per session", f"{py:,.0f} B (offline, full sessions)", py <= 8192)
    big = counts[-1] if counts else {}
    cp = big.get("checkpoint") or {}
    if cp.get("end_to_end_duration") is not None:
        row(f"checkpoint of {big['sessions_open']:,} sessions <= 5 s",
            f"{cp['end_to_end_duration'] / 1000:.2f} s ({cp['state_size'] / MIB:,.0f} MiB, full snapshot)",
            cp["end_to_end_duration"] <= 5000)
    rec = big.get("recovery") or {}
    if rec.get("first_readable_s") is not None:
        row(f"recovery <= 30 s ({big['sessions_open']:,} sessions)",
            f"first output {rec.get('first_output_after_kill_s')} s, first new event readable "
            f"{rec['first_readable_s']} s, caught up {rec.get('caught_up_s') or 'not within the window'}",
            rec["first_readable_s"] <= 30)
    for soak in soaks:
        if not soak.get("slopes"):
            continue
        sl = soak["slopes"]
        what = f"soak (TTL {soak.get('session_ttl_s', 0):,} s)"
        heap_key = "heap_live_bytes" if (sl.get("heap_live_bytes") or {}).get("slope") is not None else "heap_used_min_bytes"
        heap_label = "live heap (after a forced full GC)" if heap_key == "heap_live_bytes" else "heap floor"
        for key, label in ((heap_key, heap_label), ("redis_session_families_bytes", "Redis (session keys)")):
            fit = sl.get(key) or {}
            if fit.get("slope") is None:
                continue
            row(f"{what}: {label} slope indistinguishable from 0", f"{fit['slope'] / 1024:,.0f} KiB/min (95 %: "
                f"{fit['ci_low'] / 1024:,.0f} .. {fit['ci_high'] / 1024:,.0f}) over {fit['n']} points after the warm-up "
                f"of a {len(soak['minutes'])}-min soak", fit["flat"])
        fit = sl.get("redis_prefix_bytes_excl_trace_and_actions_stream") or {}
        if fit.get("slope") is not None:
            stream = (soak.get("redis_family_slopes") or {}).get("actions") or {}
            full = stream_full_minute(soak["minutes"])
            row(f"{what}: Redis (every key of the job but the capped actions stream) slope indistinguishable from 0",
                f"{fit['slope'] / 1024:,.0f} KiB/min (95 %: {fit['ci_low'] / 1024:,.0f} .. {fit['ci_high'] / 1024:,.0f}) "
                f"at {fit['mean'] / MIB:,.0f} MiB; the actions stream (approximate MAXLEN, bounded by construction) "
                f"filled until minute {full if full is not None else '?'}"
                + (f", {stream['mean'] / MIB:,.0f} MiB mean, {stream['slope'] / 1024:,.0f} KiB/min over the fit"
                   if stream.get("slope") is not None else ""), fit["flat"])
        per, count = sl.get("redis_session_bytes_per_session") or {}, sl.get("sessions_in_state") or {}
        if per.get("slope") is not None and count.get("slope") is not None:
            row(f"{what}: Redis (session keys) per session in state, slope indistinguishable from 0",
                f"{per['slope']:+.2f} B/session/min (95 %: {per['ci_low']:+.2f} .. {per['ci_high']:+.2f}) at "
                f"{per['mean']:,.0f} B per session; the sessions in state changed {count['slope']:+,.0f}/min "
                f"({count['slope'] / count['mean']:+.3%}/min: the load's arrivals against the "
                f"{soak.get('session_ttl_s', 0):,}-s TTL), which is most of the total's slope", per["flat"])
    return "\n".join(rows)


def _cmd(results: dict) -> str:
    cmd = results.get("command", "")
    for prefix in (str(ROOT) + "/", "/work/main/"):
        cmd = cmd.replace(prefix, "")
    # `python -m bench.run ARGS` is `intentflow bench ARGS` (intentflow/cli.py)
    return cmd.replace("bench/run.py", "intentflow bench", 1)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
