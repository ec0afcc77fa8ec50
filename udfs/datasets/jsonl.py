"""Our own JSONL of events (one JSON object per line) -> contract events.

A line that already is a canonical contract event is validated (:func:`udfs.contract.parse_event`)
and yielded as is. Otherwise it is treated as a raw client event (what the SDK sends) and normalized
offline (:func:`udfs.normalize.normalize_event` without a collector clock, so the far-future/1970 rule
rejects instead of correcting). Lines that fail both are counted in ``stats`` as
``rejected_{reason}`` and handed to ``on_reject(reason, detail, line_bytes)`` when given (the replay
command sends them to ``signals.dlq``), so nothing is dropped silently. Order: file order.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from udfs.contract import ContractError, parse_event
from udfs.datasets import count
from udfs.jsontext import loads_fast
from udfs.normalize import normalize_event

RejectFn = Callable[[str, str, bytes], None]


def iter_events(
    path: str | Path,
    *,
    limit: int | None = None,
    stats: dict | None = None,
    on_reject: RejectFn | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield contract events from a ``.jsonl`` file (or every ``*.jsonl`` in a folder, sorted).

    Args:
        path: file or folder.
        limit: stop after this many events.
        stats: optional dict receiving ``lines_read``, ``normalized`` (raw client events fixed up) and
            ``rejected_{reason}`` counts.
        on_reject: called with ``(reason, detail, line)`` for every rejected line.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    n = 0
    for file in files:
        with file.open("rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                count(stats, "lines_read")
                try:
                    try:
                        event = parse_event(line)  # canonical event (invalid text cleaned)
                    except ContractError as first:
                        if first.reason == "invalid_json":
                            raise
                        event = normalize_event(loads_fast(line))  # a raw client event
                        count(stats, "normalized")
                except ContractError as exc:
                    count(stats, f"rejected_{exc.reason}")
                    if on_reject is not None:
                        on_reject(exc.reason, exc.detail, line.rstrip(b"\n"))
                    continue
                yield event
                n += 1
                if limit is not None and n >= limit:
                    return
