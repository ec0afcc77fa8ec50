"""YOOCHOOSE (RecSys Challenge 2015) clicks -> contract events.

Source (rn5l/session-rec prepared files, see docs/data.md): tab-separated ``SessionId ItemId Time`` with a
header line; ``Time`` is float epoch **seconds** (e.g. ``1396860669.277``), converted to integer epoch ms
by rounding ``Time * 1000`` (the files carry ms precision). Sessions are already browser sessions.

Each row is a click on an item, mapped like an OTTO click (:mod:`udfs.datasets.otto`): a ``page_view``
of the item's product page followed by a ``click`` on it (``element_role = "product_card"``), same ms.
Rows are grouped per session (file order of first appearance) and stably sorted by time inside a
session, so ties keep file order. ``session_id = "yc-{SessionId}"``; ``event_id`` = uuid5 over
``yoochoose:{SessionId}:{row index in the session}:{part}``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from udfs.contract import make_event
from udfs.datasets import count


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.txt"))
    return [path]


def seconds_to_ms(text: str) -> int:
    """``"1396860669.277"`` (float epoch seconds) -> ``1396860669277`` (int epoch ms).

    Raises ``ValueError`` for text that is not a finite number.
    """
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"not finite: {text!r}")
    return int(round(value * 1000))


def _read_sessions(file: Path, stats: dict | None) -> dict[str, list[tuple[int, str]]]:
    sessions: dict[str, list[tuple[int, str]]] = {}
    with file.open() as fh:
        header = fh.readline()
        if not header.startswith("SessionId"):
            raise ValueError(f"{file}: expected a 'SessionId\\tItemId\\tTime' header, got {header[:60]!r}")
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                count(stats, "malformed_rows_dropped")
                continue
            try:
                ts_ms = seconds_to_ms(parts[2])
            except ValueError:
                count(stats, "malformed_rows_dropped")
                continue
            count(stats, "rows_read")
            sessions.setdefault(parts[0], []).append((ts_ms, parts[1]))
    return sessions


def iter_events(path: str | Path, *, limit: int | None = None, stats: dict | None = None) -> Iterator[dict[str, Any]]:
    """Yield contract events from a YOOCHOOSE clicks file (or every ``*.txt`` in a folder).

    Args:
        path: a ``.txt`` file or a folder of them.
        limit: stop after this many events.
        stats: optional dict receiving ``rows_read``, ``sessions``, ``malformed_rows_dropped``.

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: a file without the expected header.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    n = 0
    for file in _files(path):
        for sid, rows in _read_sessions(file, stats).items():
            count(stats, "sessions")
            rows = sorted(rows, key=lambda r: r[0])  # stable: ties keep file order
            session_id = f"yc-{sid}"
            seq = 0
            for idx, (ts_ms, item) in enumerate(rows):
                page = {"path": f"/product/{item}", "item_id": item, "content_ids": [item]}
                common = dict(session_id=session_id, client_ts_ms=ts_ms, page=page)
                pair = (
                    make_event("page_view", source_key=f"yoochoose:{sid}:{idx}:page_view", seq=seq, **common),
                    make_event("click", source_key=f"yoochoose:{sid}:{idx}:click", seq=seq + 1,
                               props={"element_id": f"product-{item}", "element_role": "product_card"}, **common),
                )
                seq += 2
                for event in pair:
                    yield event
                    n += 1
                    if limit is not None and n >= limit:
                        return
