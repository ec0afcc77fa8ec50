"""OTTO RecSys sessions (JSONL) -> contract events.

Source format (otto-de/recsys-dataset, see docs/data.md): one line per *user history*
``{"session": int, "events": [{"aid": int, "ts": epoch-ms int, "type": "clicks"|"carts"|"orders"}]}``.
An OTTO "session" spans up to 28 days, so it is re-split into browser sessions at every gap longer than
``session_gap_ms`` (default 30 min, the session timeout of docs/contracts.md §1 and of Google
Analytics' default session definition).

Mapping (one source row -> events, all with ``page.item_id = str(aid)``, ``page.path = /product/{aid}``):

- ``clicks`` -> ``page_view`` of the item's product page, then ``click`` on the item
  (``element_role = "product_card"``, ``element_id = "product-{aid}"``, x/y unknown), same ms;
- ``carts``  -> ``add_to_cart`` (``item_id``, ``quantity`` 1, price unknown);
- ``orders`` -> ``purchase`` with ``item_ids = [aid]``; rows of one user sharing one ms get the same
  ``order_id = "otto-{user}-{ts}"`` (OTTO writes one row per ordered item).

Ids: ``session_id = "otto-{user}-{k}"`` (k = 0-based index of the re-split session),
``anonymous_id = "otto-{user}"``; ``event_id`` = uuid5 over ``otto:{user}:{row index}[:part]`` so the
same row in ``train.jsonl`` and in a truncated copy gives the same id. ``seq`` numbers events inside
each re-split session. Rows are stably sorted by ``ts`` so events sharing one ms keep file order.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from udfs.contract import make_event
from udfs.datasets import count

#: Inactivity gap that ends a session, ms (30 min; docs/contracts.md §1).
SESSION_GAP_MS = 30 * 60 * 1000

_TYPES = ("clicks", "carts", "orders")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob("*.jsonl") if "labels" not in p.name)
    return [path]


def _user_events(
    user: int, rows: list[dict[str, Any]], session_gap_ms: int, stats: dict | None
) -> Iterator[dict[str, Any]]:
    indexed = sorted(enumerate(rows), key=lambda ir: ir[1]["ts"])  # stable: ties keep file order
    k = -1
    seq = 0
    last_ts: int | None = None
    anonymous_id = f"otto-{user}"
    for idx, row in indexed:
        ts_ms = row["ts"]
        kind = row["type"]
        aid = str(row["aid"])
        if kind not in _TYPES or not isinstance(ts_ms, int):
            count(stats, "rows_rejected_unknown_type" if kind not in _TYPES else "rows_rejected_bad_ts")
            continue
        if last_ts is None or ts_ms - last_ts > session_gap_ms:
            k += 1
            seq = 0
            count(stats, "sessions")
        last_ts = ts_ms
        session_id = f"otto-{user}-{k}"
        page = {"path": f"/product/{aid}", "item_id": aid, "content_ids": [aid]}
        base_key = f"otto:{user}:{idx}"
        common = dict(session_id=session_id, anonymous_id=anonymous_id, client_ts_ms=ts_ms, page=page)
        count(stats, "rows_read")
        if kind == "clicks":
            yield make_event("page_view", source_key=base_key + ":page_view", seq=seq, **common)
            seq += 1
            yield make_event(
                "click",
                source_key=base_key + ":click",
                seq=seq,
                props={"element_id": f"product-{aid}", "element_role": "product_card"},
                **common,
            )
        elif kind == "carts":
            yield make_event(
                "add_to_cart", source_key=base_key, seq=seq, props={"item_id": aid, "quantity": 1}, **common
            )
        else:
            yield make_event(
                "purchase",
                source_key=base_key,
                seq=seq,
                props={"order_id": f"otto-{user}-{ts_ms}", "item_ids": [aid]},
                **common,
            )
        seq += 1


def iter_events(
    path: str | Path,
    *,
    limit: int | None = None,
    stats: dict | None = None,
    session_gap_ms: int = SESSION_GAP_MS,
) -> Iterator[dict[str, Any]]:
    """Yield contract events from an OTTO JSONL file (or every ``*.jsonl`` but labels in a folder).

    Events come grouped by re-split session, in time order inside each session (per-session
    ``seq`` 0, 1, ...). Lines without ``events`` (e.g. label files) are skipped and counted.

    Args:
        path: a ``.jsonl`` file or a folder of them.
        limit: stop after this many events (None = all).
        stats: optional dict receiving counts ``users``, ``sessions``, ``rows_read``,
            ``lines_skipped_no_events``, ``rows_rejected_*``.
        session_gap_ms: inactivity gap that starts a new session, ms.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        orjson.JSONDecodeError: a line is not JSON.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    n = 0
    for file in _files(path):
        with file.open("rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                obj = orjson.loads(line)
                rows = obj.get("events") if isinstance(obj, dict) else None
                if not isinstance(rows, list):
                    count(stats, "lines_skipped_no_events")
                    continue
                count(stats, "users")
                for event in _user_events(obj["session"], rows, session_gap_ms, stats):
                    yield event
                    n += 1
                    if limit is not None and n >= limit:
                        return


def iter_sessions(events: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Group a per-session-ordered event stream (as :func:`iter_events` yields) into lists per session."""
    current: list[dict[str, Any]] = []
    for event in events:
        if current and event["session_id"] != current[0]["session_id"]:
            yield current
            current = []
        current.append(event)
    if current:
        yield current
