"""Keeping CPython's cyclic garbage collector off the session copy (issue 10: the job's latency tail).

The operator (and the plain-Python baseline) keep every session of the last 30 minutes as Python objects.
CPython's full (generation 2) collection scans every container object that is alive; with a few thousand
sessions that is a few hundred thousand objects and a pause of 170-240 ms (measured in the job at 1,000-2,000
events/s with a ``gc.callbacks`` probe, each pause in the same second as the slowest latencies of the run;
``bench/session_size.py`` times 0.38 s at 10,000 sessions and 1.3 s at 100,000). Those pauses were the job's
p99.

:class:`FrozenGenerations` moves every object alive into CPython's permanent generation (``gc.freeze()``,
Python 3.7+; the technique Instagram described in "Dismissing Python Garbage Collection at Instagram",
2017) after each state write, so later collections scan only what was allocated since. Objects are still
freed by reference counting when dropped; only reference *cycles* that became garbage before a freeze
would wait: the session entries hold none (measured: a collection after dropping 2,000 entries found
none), and every ``full_interval_ms`` the permanent generation is released and collected once (one
full pause per interval, an hour by default, instead of one every few tens of seconds).
"""
from __future__ import annotations

import gc
import time

#: Default interval between the full collections that release the permanent generation, ms: one
#: hour; our choice (one pause of a few hundred ms per hour is outside any latency percentile that
#: matters; a shorter interval bounds what cyclic garbage could wait longer).
FULL_COLLECTION_INTERVAL_MS = 3_600_000


class FrozenGenerations:
    """Freeze the objects alive after each state write; collect everything once per interval.

    Args:
        full_interval_ms: time between full collections, ms (> 0).
        now_ms: creation time, epoch ms.

    Raises:
        ValueError: a non-positive interval.

    Attributes:
        full_collections: full collections run so far; ``last_full_pause_ms``: the latest one's duration.
    """

    def __init__(self, full_interval_ms: int = FULL_COLLECTION_INTERVAL_MS, now_ms: int = 0) -> None:
        if full_interval_ms <= 0:
            raise ValueError(f"full_interval_ms must be > 0, got {full_interval_ms}")
        self.full_interval_ms = full_interval_ms
        self.last_full_ms = now_ms
        self.full_collections = 0
        self.last_full_pause_ms: float | None = None

    def after_state_write(self, now_ms: int) -> bool:
        """Call after the sessions were written to state; True when this call ran a full collection."""
        if now_ms - self.last_full_ms >= self.full_interval_ms:
            t0 = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            self.last_full_pause_ms = (time.perf_counter() - t0) * 1000.0
            self.last_full_ms = now_ms
            self.full_collections += 1
            gc.freeze()
            return True
        gc.freeze()
        return False
