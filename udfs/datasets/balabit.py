"""Balabit Mouse Dynamics Challenge sessions -> ``mouse_trajectory`` events.

Source (balabit/Mouse-Dynamics-Challenge, see docs/data.md): ``training_files/user<N>/session_<id>``,
CSV ``record timestamp,client timestamp,button,state,x,y``; both timestamps are float seconds since the
session start (the recording host's and the client's clocks, up to 1.4 s apart: the *client* clock is
used, as the capture SDK stamps with the client clock).

Cleaning, each counted in ``stats``:

- ``overflow_rows_dropped``: rows with ``x == 65535 and y == 65535`` (a 16-bit overflow of the
  recorder, documented quirk of the data set);
- ``duplicate_rows_dropped``: a row exactly equal to the previous row;
- ``gaps_over_60s``: places where the client clock jumps by more than ``GAP_SPLIT_S`` (60 s); the
  sample stream is split there (a stretch never spans one);
- ``non_move_rows``: rows other than ``Move``/``Drag`` (button presses, scroll wheel) are not pointer
  samples of a trajectory;
- ``short_stretches_dropped``: stretches with fewer than ``TRAJECTORY_MIN_SAMPLES`` samples.

Pointer samples are cut into stretches and summarised exactly as the SDK does
(:mod:`udfs.datasets.trajectory`). One event per stretch, stamped at its last sample:
``session_id = "balabit-{user}-{session}"``, ``client_ts_ms = base_ts_ms + t_s * 1000``
(the data carry no wall-clock date; ``BASE_TS_MS`` = 2016-01-01T00:00:00Z, the challenge's year),
``event_id`` = uuid5 over ``balabit:{user}:{session}:{stretch index}``.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from udfs.contract import make_event
from udfs.datasets import count
from udfs.datasets.trajectory import TRAJECTORY_MIN_SAMPLES, split_stretches, summarize_trajectory

#: Overflow coordinate of the recorder (both x and y), px.
OVERFLOW_PX = 65535
#: Gap that splits a sample stream, s (issue 3 / MANIFEST.md quirk "gaps over 60 s").
GAP_SPLIT_S = 60.0
#: Epoch ms the session-relative times are placed at: 2016-01-01T00:00:00Z.
BASE_TS_MS = 1_451_606_400_000

_MOVE_STATES = ("Move", "Drag")


def _session_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("session_*") if p.is_file())


def clean_samples(rows: Iterator[list[str]], stats: dict | None) -> Iterator[list[tuple[float, float, float]]]:
    """CSV rows (without header) -> lists of pointer samples ``(t_ms, x_px, y_px)``, split at > 60 s gaps."""
    prev_row: list[str] | None = None
    prev_t_s: float | None = None
    part: list[tuple[float, float, float]] = []
    for row in rows:
        if len(row) < 6:
            count(stats, "malformed_rows_dropped")
            continue
        count(stats, "rows_read")
        if row == prev_row:
            count(stats, "duplicate_rows_dropped")
            continue
        prev_row = row
        try:
            t_s = float(row[1])
            x, y = int(float(row[4])), int(float(row[5]))
        except ValueError:
            count(stats, "malformed_rows_dropped")
            continue
        if x == OVERFLOW_PX and y == OVERFLOW_PX:
            count(stats, "overflow_rows_dropped")
            continue
        if prev_t_s is not None and t_s - prev_t_s > GAP_SPLIT_S:
            count(stats, "gaps_over_60s")
            if part:
                yield part
            part = []
        prev_t_s = t_s
        if row[3] not in _MOVE_STATES:
            count(stats, "non_move_rows")
            continue
        part.append((t_s * 1000.0, float(x), float(y)))
    if part:
        yield part


def iter_events(
    path: str | Path,
    *,
    limit: int | None = None,
    stats: dict | None = None,
    base_ts_ms: int = BASE_TS_MS,
) -> Iterator[dict[str, Any]]:
    """Yield ``mouse_trajectory`` events from Balabit session files, one session after another.

    Args:
        path: the ``balabit_mouse`` folder, ``training_files``, a user folder or one session file.
        limit: stop after this many events.
        stats: optional dict receiving the counts listed in the module docstring plus ``sessions``.
        base_ts_ms: epoch ms of ``t = 0`` of every session.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    n = 0
    for file in _session_files(path):
        user = file.parent.name
        session = file.name.removeprefix("session_")
        session_id = f"balabit-{user}-{session}"
        count(stats, "sessions")
        k = 0
        with file.open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)  # header
            for part in clean_samples(reader, stats):
                for stretch in split_stretches(part):
                    if len(stretch) < TRAJECTORY_MIN_SAMPLES:
                        count(stats, "short_stretches_dropped")
                        continue
                    props = summarize_trajectory(stretch)
                    if props["sample_count"] < TRAJECTORY_MIN_SAMPLES:  # equal-time samples removed
                        count(stats, "short_stretches_dropped")
                        continue
                    ts_ms = base_ts_ms + int(round(stretch[-1][0]))
                    yield make_event(
                        "mouse_trajectory",
                        session_id=session_id,
                        anonymous_id=f"balabit-{user}",
                        client_ts_ms=ts_ms,
                        seq=k,
                        source_key=f"balabit:{user}:{session}:{k}",
                        props=props,
                    )
                    k += 1
                    n += 1
                    if limit is not None and n >= limit:
                        return
