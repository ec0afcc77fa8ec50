"""Pointer samples -> ``mouse_trajectory`` summaries, the same definition as the capture SDK.

This mirrors ``summarizeTrajectory`` and the stretch rules of ``web/sdk/intentflow.js`` so recorded mouse
data (Balabit, rrweb) and live browser data give comparable props. The constants are the SDK's own
(there is no standard; see the SDK): a stretch ends after ``TRAJECTORY_IDLE_END_MS`` without a sample,
at ``TRAJECTORY_MAX_DURATION_MS`` or ``TRAJECTORY_MAX_SAMPLES``; stretches with fewer than
``TRAJECTORY_MIN_SAMPLES`` samples are not emitted; a pause is a maximal run of segments slower than
``PAUSE_SPEED_PX_S`` lasting at least ``PAUSE_MIN_MS``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

TRAJECTORY_IDLE_END_MS = 400
TRAJECTORY_MAX_DURATION_MS = 5000
TRAJECTORY_MAX_SAMPLES = 300
TRAJECTORY_MIN_SAMPLES = 4
PAUSE_SPEED_PX_S = 20.0
PAUSE_MIN_MS = 100.0

Sample = tuple[float, float, float]  # (t_ms, x_px, y_px)


def _r3(x: float) -> float:
    return math.floor(x * 1000 + 0.5) / 1000  # JS Math.round semantics (half up)


def summarize_trajectory(samples: Iterable[Sample]) -> dict[str, float | int]:
    """Summary props of one stretch: ``path_length_px``, ``straightness`` (0-1), ``mean_speed_px_s``,
    ``jerk_px_s3`` (mean |d³position/dt³|, finite differences), ``pause_count``, ``sample_count``,
    ``duration_ms``. Samples whose time does not increase are skipped (as in the SDK).
    """
    pts: list[Sample] = []
    for t, x, y in samples:
        if not (math.isfinite(t) and math.isfinite(x) and math.isfinite(y)):
            continue
        if pts and t <= pts[-1][0]:
            continue
        pts.append((t, x, y))
    n = len(pts)
    out: dict[str, float | int] = {"path_length_px": 0.0, "straightness": 0.0, "mean_speed_px_s": 0.0,
                                   "jerk_px_s3": 0.0, "pause_count": 0, "sample_count": n, "duration_ms": 0}
    if n < 2:
        return out
    vel: list[tuple[float, float, float]] = []  # (vx, vy, t_mid_s)
    path = 0.0
    pause_run_ms = 0.0
    pauses = 0
    for i in range(1, n):
        t0, x0, y0 = pts[i - 1]
        t1, x1, y1 = pts[i]
        dist = math.hypot(x1 - x0, y1 - y0)
        path += dist
        dt_s = (t1 - t0) / 1000
        vel.append(((x1 - x0) / dt_s, (y1 - y0) / dt_s, (t1 + t0) / 2000))
        if dist / dt_s < PAUSE_SPEED_PX_S:
            pause_run_ms += t1 - t0
        else:
            if pause_run_ms >= PAUSE_MIN_MS:
                pauses += 1
            pause_run_ms = 0.0
    if pause_run_ms >= PAUSE_MIN_MS:
        pauses += 1
    duration_ms = pts[-1][0] - pts[0][0]
    disp = math.hypot(pts[-1][1] - pts[0][1], pts[-1][2] - pts[0][2])

    def diff(arr: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        res = []
        for i in range(1, len(arr)):
            dt = arr[i][2] - arr[i - 1][2]
            res.append(((arr[i][0] - arr[i - 1][0]) / dt, (arr[i][1] - arr[i - 1][1]) / dt,
                        (arr[i][2] + arr[i - 1][2]) / 2))
        return res

    jerk = diff(diff(vel))
    jerk_mean = sum(math.hypot(j[0], j[1]) for j in jerk) / len(jerk) if jerk else 0.0
    out["path_length_px"] = _r3(path)
    out["straightness"] = _r3(min(1.0, disp / path)) if path > 0 else 0.0
    out["mean_speed_px_s"] = _r3(path / (duration_ms / 1000)) if duration_ms > 0 else 0.0
    out["jerk_px_s3"] = _r3(jerk_mean)
    out["pause_count"] = pauses
    out["duration_ms"] = int(math.floor(duration_ms + 0.5))
    return out


def split_stretches(samples: Iterable[Sample]) -> Iterator[list[Sample]]:
    """Cut a time-ordered sample stream into stretches by the SDK's idle / duration / count rules.

    Yields every stretch, including those shorter than ``TRAJECTORY_MIN_SAMPLES`` (the caller counts
    and drops them).
    """
    cur: list[Sample] = []
    for s in samples:
        if cur and (
            s[0] - cur[-1][0] >= TRAJECTORY_IDLE_END_MS
            or s[0] - cur[0][0] >= TRAJECTORY_MAX_DURATION_MS
            or len(cur) >= TRAJECTORY_MAX_SAMPLES
        ):
            yield cur
            cur = []
        cur.append(s)
    if cur:
        yield cur
