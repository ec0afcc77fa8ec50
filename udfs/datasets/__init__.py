"""Converters from the real data sets (``../shared/data``, see docs/data.md) to contract events.

Each module has ``iter_events(path, *, limit=None, stats=None, ...) -> Iterator[dict]`` yielding
canonical contract events (built by :func:`udfs.contract.make_event`) with deterministic ``event_id`` s
derived from the source rows, grouped per session and in time order inside each session. When a
``stats`` dict is passed, the converter adds its counts (rows read, rows dropped and why) to it.

Modules: ``otto``, ``yoochoose``, ``balabit``, ``rrweb``, ``jsonl``.
"""
from __future__ import annotations

from pathlib import Path

#: ``--source`` name -> module under ``udfs.datasets``.
SOURCES: tuple[str, ...] = ("otto", "yoochoose", "balabit", "rrweb", "jsonl")


def data_dir() -> Path:
    """Folder of the real data sets: ``$INTENTFLOW_DATA_DIR`` or ``../shared/data`` beside the checkout
    (``udfs.settings.PathSettings.data_dir``, read at the call)."""
    from udfs.settings import path_settings

    return path_settings().data_dir.resolve()


def count(stats: dict | None, key: str, n: int = 1) -> None:
    """Add ``n`` to ``stats[key]`` when ``stats`` is a dict (converters' optional counters)."""
    if stats is not None:
        stats[key] = stats.get(key, 0) + n
