"""Variants of the job's decide operator, for measuring proposals only (``intentflow bench --job-variant``).

Never used by the job itself. The benchmark's launcher (``bench.run.job_with_conf``) swaps
``operators.personalization.DecideMicroBatch`` for one of these before the job's own ``build_pipeline``
runs; everything else of the job is unchanged.

* ``cached_reads`` (:class:`CachedReadsDecideMicroBatch`): a py-spy profile at 2,000 events/s showed most of
  the embedded Python's time in keyed ``MapState.get``/``put`` (a Java<->Python crossing plus a pickle of
  the whole ``SessionEntry`` per session per batch). This variant keeps every session it has read or
  written in a Python dict of its subtask and reads from it first; writes still go to MapState (so
  checkpoints hold every session as before). Not production-ready: the dict is unbounded (no TTL) in
  this experiment.
"""
from __future__ import annotations

from operators.personalization import DecideMicroBatch


class _CachedMapState:
    """Read-through cache in front of a PyFlink MapState (``get``/``put`` only: what ``_flush`` calls)."""

    def __init__(self, state) -> None:
        self.state = state
        self.cache: dict = {}

    def get(self, key):
        value = self.cache.get(key)
        if value is None:
            value = self.state.get(key)
            if value is not None:
                self.cache[key] = value
        return value

    def put(self, key, value) -> None:
        self.cache[key] = value
        self.state.put(key, value)


class CachedReadsDecideMicroBatch(DecideMicroBatch):
    """The job's operator with session reads served from a Python dict (see the module docstring)."""

    def open(self, runtime_context) -> None:
        super().open(runtime_context)
        self.sessions = _CachedMapState(self.sessions)


VARIANTS = {"cached_reads": CachedReadsDecideMicroBatch}
