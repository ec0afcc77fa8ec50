"""rrweb recordings (a JSON array of rrweb events) -> contract events, best effort.

rrweb event types (rrweb ``EventType``): 2 full snapshot, 3 incremental snapshot, 4 meta. Incremental
``data.source`` (rrweb ``IncrementalSource``): 1 mouse move (``positions`` with ``x``, ``y``,
``timeOffset`` ms, <= 0, relative to the event's timestamp), 2 mouse interaction (``data.type`` 2 =
click), 3 scroll (``x``/``y`` pixel offsets), 4 viewport resize, 5 input.

Mapping:

- meta (4) -> ``page_view`` (``page.url = data.href``; viewport from ``width``/``height``); the page
  title is taken from the next full snapshot's ``<title>`` when there is one;
- mouse move (3/1) -> samples; cut into stretches and summarised like the SDK
  (:mod:`udfs.datasets.trajectory`) -> ``mouse_trajectory``;
- mouse interaction click (3/2, type 2) -> ``click`` (``element_id = "rrweb-node-{id}"``, ``x_px``, ``y_px``);
- scroll (3/3) -> ``scroll`` only when the document height is known (option ``document_height_px``):
  rrweb records offsets without the document height, so otherwise it is counted
  (``scroll_no_document_height``) and skipped;
- viewport resize (3/4) -> no event of its own: updates ``context.viewport_*_px`` of later events;
- input (3/5) -> ``form`` with ``action = "change"`` and ``field_id = "rrweb-node-{id}"`` (the typed
  text is never kept).

Times: ``timestamp`` (epoch ms) when present; the published test fixture has them stripped, so
events without one get ``base_ts_ms + index`` (1 ms apart, in recording order; ``BASE_TS_MS`` =
2023-11-14T22:13:20Z, arbitrary and fixed so ids are deterministic). One recording = one session,
``session_id = "rrweb-{file stem}"``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from udfs.contract import make_event
from udfs.datasets import count
from udfs.datasets.trajectory import TRAJECTORY_MIN_SAMPLES, split_stretches, summarize_trajectory

BASE_TS_MS = 1_700_000_000_000


def _title(node: Any) -> str | None:
    """Text of the first ``<title>`` element in an rrweb serialized node tree."""
    stack = [node]
    while stack:
        n = stack.pop()
        if not isinstance(n, dict):
            continue
        if n.get("tagName") == "title":
            texts = [c.get("textContent", "") for c in n.get("childNodes", []) if isinstance(c, dict)]
            return "".join(texts).strip() or None
        stack.extend(reversed(n.get("childNodes", []) or []))
    return None


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
    session_id = f"rrweb-{file.stem}"
    page: dict[str, Any] = {}
    viewport: dict[str, int] = {}
    samples: list[tuple[float, float, float]] = []
    pending_view: dict[str, Any] | None = None
    seq = 0
    out: list[dict[str, Any]] = []

    def emit(etype: str, ts_ms: int, key: str, props: dict | None = None) -> None:
        nonlocal seq
        out.append(make_event(etype, session_id=session_id, client_ts_ms=ts_ms, seq=seq,
                              source_key=f"rrweb:{file.stem}:{key}", page=dict(page),
                              context=dict(viewport), props=props))
        seq += 1

    def flush_samples() -> None:
        nonlocal samples
        for k, stretch in enumerate(split_stretches(samples)):
            if len(stretch) < TRAJECTORY_MIN_SAMPLES:
                count(stats, "short_stretches_dropped")
                continue
            emit("mouse_trajectory", int(round(stretch[-1][0])), f"traj:{int(stretch[-1][0])}:{k}",
                 summarize_trajectory(stretch))
        samples = []

    for idx, ev in enumerate(recording):
        count(stats, "rrweb_events_read")
        if not isinstance(ev, dict):
            count(stats, "skipped_malformed")
            continue
        ts = ev.get("timestamp")
        if not isinstance(ts, (int, float)):
            count(stats, "events_without_timestamp")
            ts = base_ts_ms + idx
        ts_ms = int(ts)
        etype, data = ev.get("type"), ev.get("data") or {}
        if pending_view is not None and etype != 2:  # a meta not followed by its snapshot: no title
            emit("page_view", pending_view["ts_ms"], pending_view["key"], {"title": None})
            pending_view = None
        if etype == 4:
            flush_samples()
            page = {"url": data.get("href"), "path": None}
            if isinstance(data.get("width"), int) and isinstance(data.get("height"), int):
                viewport = {"viewport_w_px": data["width"], "viewport_h_px": data["height"]}
            pending_view = {"ts_ms": ts_ms, "key": f"{idx}:page_view"}
        elif etype == 2:
            if pending_view is not None:
                emit("page_view", pending_view["ts_ms"], pending_view["key"], {"title": _title(data.get("node"))})
                pending_view = None
            else:
                count(stats, "skipped_full_snapshot")
        elif etype == 3:
            source = data.get("source")
            if source == 1:
                for pos in data.get("positions", []):
                    samples.append((ts_ms + float(pos.get("timeOffset", 0)), float(pos["x"]), float(pos["y"])))
                continue
            flush_samples()
            if source == 2 and data.get("type") == 2:
                emit("click", ts_ms, f"{idx}:click", {"element_id": f"rrweb-node-{data.get('id')}",
                                                      "x_px": data.get("x"), "y_px": data.get("y")})
            elif source == 3:
                if doc_h:
                    vh = viewport.get("viewport_h_px", 0)
                    depth = (float(data.get("y", 0)) + vh) / doc_h * 100
                    emit("scroll", ts_ms, f"{idx}:scroll", {"scroll_depth_pct": min(100.0, max(0.0, depth)),
                                                            "scroll_depth_pct_raw": depth,
                                                            "offset_px": data.get("y"), "document_height_px": doc_h})
                else:
                    count(stats, "scroll_no_document_height")
            elif source == 4:
                viewport = {"viewport_w_px": int(data.get("width", 0)), "viewport_h_px": int(data.get("height", 0))}
                count(stats, "viewport_resizes_applied")
            elif source == 5:
                emit("form", ts_ms, f"{idx}:form", {"field_id": f"rrweb-node-{data.get('id')}", "action": "change"})
            else:
                count(stats, f"skipped_incremental_source_{source}")
        else:
            count(stats, f"skipped_type_{etype}")
        yield from out
        out.clear()
    flush_samples()
    if pending_view is not None:
        emit("page_view", pending_view["ts_ms"], pending_view["key"], {"title": None})
    yield from out
