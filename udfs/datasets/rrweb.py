"""rrweb recordings (a JSON array of rrweb events) -> contract events, best effort.

The mapping is :class:`udfs.trackers.rrweb.RrwebMapper`, the same code that maps rrweb batches posted
to the collector (``POST /v1/rrweb``) and PostHog ``$snapshot`` events; its docstring lists it field by
field (docs/contracts.md §6.3). Here: one recording = one session, ``session_id = "rrweb-{file stem}"``,
``source = "rrweb"``; items the mapper rejects are counted in ``stats`` (``rejected_<reason>``, and
``scroll_no_document_height`` for document scrolls without a known document height) instead of being
produced.

Times: ``timestamp`` (epoch ms) when present; the published test fixture has them stripped, so
events without one get ``base_ts_ms + index`` (1 ms apart, in recording order; ``BASE_TS_MS`` =
2023-11-14T22:13:20Z, arbitrary and fixed so ids are deterministic).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from udfs.contract import ContractError
from udfs.datasets import count
from udfs.trackers import Item, Mapped, to_event
from udfs.trackers.rrweb import RrwebMapper

BASE_TS_MS = 1_700_000_000_000


def iter_events(
    path: str | Path,
    *,
    limit: int | None = None,
    stats: dict | None = None,
    base_ts_ms: int = BASE_TS_MS,
    document_height_px: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield contract events from one rrweb recording (``.json`` array) or every ``*.json`` in a folder.

    Args:
        path: file or folder.
        limit: stop after this many events.
        stats: optional dict receiving ``rrweb_events_read``, ``events_without_timestamp`` and one
            ``skipped_*`` count per rrweb event kind that gives no contract event.
        base_ts_ms: epoch ms for recordings without timestamps.
        document_height_px: document height to turn scroll offsets into a depth, px (None = skip scrolls).

    Raises:
        FileNotFoundError; ValueError when a file is not a JSON array.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    n = 0
    for file in files:
        for event in _file_events(file, stats, base_ts_ms, document_height_px):
            yield event
            n += 1
            if limit is not None and n >= limit:
                return


def _file_events(file: Path, stats: dict | None, base_ts_ms: int, doc_h: float | None) -> Iterator[dict[str, Any]]:
    recording = orjson.loads(file.read_bytes())
    if not isinstance(recording, list):
        raise ValueError(f"{file}: expected a JSON array of rrweb events")
    mapper = RrwebMapper(session_id=f"rrweb-{file.stem}", id_prefix=f"rrweb:{file.stem}", source="rrweb",
                         document_height_px=doc_h, base_ts_ms=base_ts_ms, stats=stats)

    def batches() -> Iterator[list[Item]]:
        for idx, ev in enumerate(recording):
            yield mapper.feed(idx, ev)
        yield mapper.finish()

    seq = 0
    for items in batches():
        for item in items:
            if not isinstance(item, Mapped):
                continue  # counted by the mapper (rejected_<reason>)
            item.raw["seq"] = seq
            try:
                event = to_event(item, received_at_ms=None)
            except ContractError as exc:
                count(stats, f"rejected_{exc.reason}")
                continue
            seq += 1
            yield event
