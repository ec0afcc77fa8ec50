"""Pure arithmetic of the benchmark (unit-tested in tests/unit/test_bench_pure.py): nearest-rank
percentiles, the lag trend of a level, ratios, and the shares of a py-spy profile per hop."""
from __future__ import annotations

import math

#: Lag is "growing" when its fitted slope exceeds this fraction of the offered (achieved) rate, i.e.
#: the target falls behind by more than 2 % of what arrives. Our choice.
LAG_GROWTH_FRACTION = 0.02


def percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99 and max of ``values`` (ms): pXX = the ceil(XX/100 * n)-th smallest."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "n": 0}
    s = sorted(values)
    n = len(s)

    def rank(p: float) -> float:
        return float(s[max(1, math.ceil(p / 100.0 * n)) - 1])

    return {"p50_ms": rank(50), "p95_ms": rank(95), "p99_ms": rank(99), "max_ms": float(s[-1]), "n": n}


def by_second(trace: list[tuple[int, int, int]], start_ms: int) -> list[dict]:
    """Append -> readable per second of the level, by the second the event was sent (client clock):
    ``[{"s": seconds since start_ms, "n", "p50_ms", "p99_ms", "max_ms"}]`` for the seconds with traced
    events, in order (shows when the slow events were: checkpoints, state writes, stalls)."""
    groups: dict[int, list[int]] = {}
    for readable, kafka, client in trace:
        groups.setdefault((client - start_ms) // 1000, []).append(readable - kafka)
    out = []
    for second in sorted(groups):
        p = percentiles(groups[second])
        out.append({"s": second, "n": p["n"], "p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"], "max_ms": p["max_ms"]})
    return out


def lag_trend(samples: list[tuple[float, int]], rate_eps: float) -> dict:
    """Least-squares slope of lag (events) over time (s) and whether it stays bounded.

    Args:
        samples: ``(seconds since level start, lag in events)``.
        rate_eps: the rate the target was offered, events/s.

    Returns:
        ``{"slope_eps", "max_lag", "end_lag", "bounded"}``; bounded when the slope is at most
        :data:`LAG_GROWTH_FRACTION` * ``rate_eps`` (or fewer than 3 samples: unknown -> True).
    """
    if not samples:
        return {"slope_eps": None, "max_lag": None, "end_lag": None, "bounded": True}
    n = len(samples)
    max_lag = max(lag for _, lag in samples)
    if n < 3:
        return {"slope_eps": None, "max_lag": max_lag, "end_lag": samples[-1][1], "bounded": True}
    mt = sum(t for t, _ in samples) / n
    ml = sum(lag for _, lag in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    slope = sum((t - mt) * (lag - ml) for t, lag in samples) / var if var else 0.0
    return {"slope_eps": round(slope, 1), "max_lag": max_lag, "end_lag": samples[-1][1],
            "bounded": slope <= LAG_GROWTH_FRACTION * max(rate_eps, 1.0)}


def ratio(ours: float | None, base: float | None) -> float | None:
    """``ours / base`` rounded to 2 places, None when either is missing or base is 0."""
    if ours is None or not base:
        return None
    return round(ours / base, 2)


#: Categories of a py-spy stack of the job's embedded Python, first match wins (see classify_stack).
PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("keyed_state_get_put_pickle", ("state_impl.py",)),
    ("onnx_scoring", ("udfs/scoring.py",)),
    ("redis_pipeline", ("redis_store.py",)),
    ("parse_validate", ("udfs/contract.py", "ParseEvent.")),
    ("decide_features_rules", ("udfs/decide.py", "udfs/session.py", "udfs/rules.py", "udfs/features.py",
                               "udfs/noise.py")),
    ("operator_and_pyflink_runtime", ("pyflink/", "operators/")),
)


def classify_stack(frames: list[str]) -> str | None:
    """Category of one sampled stack (frames root -> leaf); None for an empty (idle) stack."""
    frames = [f for f in frames if f]
    if not frames:
        return None
    for name, needles in PROFILE_CATEGORIES:
        if any(n in f for f in frames for n in needles):
            return name
    return "other"


def profile_shares(raw_text: str) -> dict:
    """py-spy ``--format raw`` text -> share of busy samples per category (0-1) and the sample counts."""
    counts: dict[str, int] = {}
    idle = 0
    for line in raw_text.splitlines():
        if not line.strip():
            continue
        stack, _, n = line.rpartition(" ")
        category = classify_stack(stack.split(";"))
        if category is None:
            idle += int(n)
        else:
            counts[category] = counts.get(category, 0) + int(n)
    busy = sum(counts.values())
    return {"busy_samples": busy, "idle_samples": idle,
            "share_of_busy": {k: round(v / busy, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
            if busy else {}}


#: Two-sided confidence of the slope intervals of the soak (our choice: the usual 95 %).
SLOPE_CONFIDENCE = 0.95


def slope_ci(xs: list[float], ys: list[float], confidence: float = SLOPE_CONFIDENCE) -> dict:
    """Least-squares line of ``ys`` over ``xs`` (``scipy.stats.linregress``) with the slope's two-sided
    ``confidence`` interval: ``slope ± t(1 - (1 - confidence)/2, n - 2) * stderr`` (Student's t).

    Returns:
        ``{"slope", "intercept", "stderr", "ci_low", "ci_high", "n", "r2", "flat"}`` in the units of
        ys per unit of xs; ``flat``: the interval contains 0 (the slope is indistinguishable from zero).
        Fewer than 3 points (or xs all equal): every figure None, ``flat`` None. ys all equal: slope 0,
        interval [0, 0], flat.
    """
    n = len(xs)
    if n != len(ys):
        raise ValueError(f"{n} xs but {len(ys)} ys")
    if n < 3 or len(set(xs)) < 2:
        return {"slope": None, "intercept": None, "stderr": None, "ci_low": None, "ci_high": None, "n": n,
                "r2": None, "flat": None}
    if len(set(ys)) == 1:  # a constant series (e.g. a fixed heap): slope exactly 0, no spread
        return {"slope": 0.0, "intercept": float(ys[0]), "stderr": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": n,
                "r2": None, "flat": True}
    from scipy import stats as sst

    fit = sst.linregress(xs, ys)
    t = float(sst.t.ppf(1.0 - (1.0 - confidence) / 2.0, n - 2))
    half = t * float(fit.stderr)
    slope = float(fit.slope)
    return {"slope": slope, "intercept": float(fit.intercept), "stderr": float(fit.stderr),
            "ci_low": slope - half, "ci_high": slope + half, "n": n, "r2": float(fit.rvalue) ** 2,
            "flat": bool(slope - half <= 0.0 <= slope + half)}


def per_unit(total: float | None, count: int | None) -> float | None:
    """``total / count`` rounded to 1 place (e.g. bytes per session); None when either is missing or count is 0."""
    if total is None or not count:
        return None
    return round(total / count, 1)


def recovery_figures(trace: list[tuple[int, int, int]], kill_ms: int, caught_up_ms: float = 1000.0) -> dict:
    """Recovery after a kill, from the trace of the events sent after it.

    Args:
        trace: ``(readable_ms, kafka_ts_ms, client_ts_ms)`` of traced events (bench.levels.read_trace).
        kill_ms: epoch ms of the SIGKILL; only events with ``client_ts_ms >= kill_ms`` count.
        caught_up_ms: the target has caught up when an event is readable within this many ms of its append.

    Returns:
        ``first_readable_s``: kill -> the first post-kill event readable (the first new action);
        ``caught_up_s``: kill -> the first post-kill event readable within ``caught_up_ms`` of its append
        (the backlog of the downtime is worked off); None when it did not happen in the trace.
    """
    after = sorted(t for t in trace if t[2] >= kill_ms)
    if not after:
        return {"first_readable_s": None, "caught_up_s": None, "events_after_kill": 0}
    first = after[0][0]
    caught = next((readable for readable, kafka, _ in after if readable - kafka <= caught_up_ms), None)
    return {"first_readable_s": round((first - kill_ms) / 1000.0, 2),
            "caught_up_s": round((caught - kill_ms) / 1000.0, 2) if caught is not None else None,
            "events_after_kill": len(after)}


def redis_memory_estimate(samples: dict[str, tuple[int, list[int]]]) -> dict:
    """Redis memory of a key family, from ``MEMORY USAGE`` of a sample of its keys.

    Args:
        samples: ``{family: (number of keys, [MEMORY USAGE bytes of the sampled keys])}``.

    Returns:
        ``{family: {"keys", "sampled", "mean_bytes", "total_bytes"}}`` (total = mean x keys) and
        ``"total_bytes"`` over the families.
    """
    out: dict = {}
    total = 0
    for family, (count, sizes) in samples.items():
        mean = sum(sizes) / len(sizes) if sizes else 0.0
        est = int(round(mean * count))
        out[family] = {"keys": count, "sampled": len(sizes), "mean_bytes": round(mean, 1), "total_bytes": est}
        total += est
    out["total_bytes"] = total
    return out
