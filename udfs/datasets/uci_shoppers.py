"""UCI "Online Shoppers Purchasing Intention" (Sakar et al. 2019) rows -> contract events.

One CSV row is one whole session, aggregated by Google Analytics. :func:`row_events` turns it into the
contract events whose replay through :class:`udfs.session.SessionState` gives the UCI quantities in the
job's own features (the column <-> feature mapping is docs/uci-mapping.md), so a model trained on these
rows reads exactly the features the job computes:

- ``Administrative`` / ``Informational`` / ``ProductRelated`` page counts -> that many ``page_view``
  events with ``page.type`` ``administrative`` / ``informational`` / ``product_related`` (in this order;
  the file does not record the order), path ``/<type>/<k>``;
- ``*_Duration`` (seconds) -> time between the page views: the type's duration is split over its pages
  (integer ms, cumulative rounding so the pages sum to ``round(duration * 1000)`` ms); the last page's
  share ends with a ``visibility`` (hidden) event, the only way our definition gives a last page time;
- ``BounceRates`` / ``ExitRates`` -> every page view carries them as ``_page_bounce_rate`` /
  ``_page_exit_rate`` (what :class:`udfs.page_stats.PageStats` writes in the job), so the session's
  mean equals the row's value (GA's "average of the pages visited");
- ``Weekend`` -> the event time: noon UTC of the first Saturday (weekend) or first Wednesday (weekday)
  of the row's ``Month`` in 2017 (the file has no year or day; 2017: our choice, any year works);
- ``VisitorType`` -> ``visit_count`` 2 for ``Returning_Visitor``, else 1 (``New_Visitor``, ``Other``);
- ``Revenue`` -> the label; ``PageValues`` (a leak), ``SpecialDay``, ``Month`` itself, ``OperatingSystems``,
  ``Browser``, ``Region`` and ``TrafficType`` (anonymized integer codes) are not turned into events.

Rows with any of the first 8 columns blank are skipped (14 rows; all ``Revenue = FALSE``); ``-1``
durations (33 rows, GA's "not measured") count as 0 s; a row with no page of the three types (5 rows) gets
one untyped page view (``/``), which still carries the rates. These are the rules of
``models/evaluate.py``'s ``load_online_shoppers``.

Ids: ``session_id = anonymous_id = "uci-<row>"`` (0-based data row); ``event_id`` uuid5 over
``uci:<row>:<k>``.
"""
from __future__ import annotations

import calendar
import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udfs.contract import make_event
from udfs.session import PAGE_BOUNCE_RATE_FIELD, PAGE_EXIT_RATE_FIELD

#: (count column, duration column, page.type), in the order the page views are emitted.
PAGE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Administrative", "Administrative_Duration", "administrative"),
    ("Informational", "Informational_Duration", "informational"),
    ("ProductRelated", "ProductRelated_Duration", "product_related"),
)
REQUIRED = [c for cols in PAGE_COLUMNS for c in cols[:2]] + ["BounceRates", "ExitRates"]
MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name} | {"June": 6}
#: Year of the synthetic event times (the file has none).
YEAR = 2017


@dataclass(frozen=True)
class UciSession:
    """One kept row: ``row`` (0-based data row), ``events`` (contract events, in order), ``visit_count``,
    ``revenue`` (the label, 0/1) and ``raw`` (the CSV row as read)."""

    row: int
    events: list[dict[str, Any]]
    visit_count: int
    revenue: int
    raw: dict[str, str]


def session_start_ms(month: str, weekend: bool) -> int:
    """Epoch ms of noon UTC on the first Saturday (``weekend``) or first Wednesday of ``month`` in :data:`YEAR`.

    Raises:
        KeyError: unknown month name.
    """
    m = MONTHS[month]
    target = 5 if weekend else 2  # Monday = 0
    day = 1 + (target - dt.date(YEAR, m, 1).weekday()) % 7
    return int(dt.datetime(YEAR, m, day, 12, tzinfo=dt.timezone.utc).timestamp() * 1000)


def _split_ms(total_s: float, n: int) -> list[int]:
    """``n`` integer ms parts of ``total_s`` seconds summing to ``round(total_s * 1000)`` (cumulative rounding)."""
    total_ms = max(0.0, total_s) * 1000.0
    bounds = [round(total_ms * k / n) for k in range(n + 1)]
    return [bounds[k + 1] - bounds[k] for k in range(n)]


def row_events(row: int, r: dict[str, str]) -> UciSession | None:
    """The events of one CSV row (module docstring), or None when the row is skipped (blank columns)."""
    if any(r.get(c) in (None, "") for c in REQUIRED):
        return None
    sid = f"uci-{row}"
    weekend = r["Weekend"].strip().upper() == "TRUE"
    t = session_start_ms(r["Month"].strip(), weekend)
    bounce, exit_rate = float(r["BounceRates"]), float(r["ExitRates"])
    pages: list[tuple[str | None, int]] = []  # (page type, ms until the next event)
    for count_col, duration_col, page_type in PAGE_COLUMNS:
        n = int(float(r[count_col]))
        if n > 0:
            pages.extend((page_type, ms) for ms in _split_ms(float(r[duration_col]), n))
    if not pages:
        pages = [(None, 0)]
    events: list[dict[str, Any]] = []
    for k, (page_type, ms) in enumerate(pages):
        page = {"path": f"/{page_type}/{k}" if page_type else "/", "type": page_type}
        event = make_event("page_view", session_id=sid, anonymous_id=sid, client_ts_ms=t, seq=len(events),
                           source_key=f"uci:{row}:{len(events)}", page=page, props={"title": page_type or "home"})
        event[PAGE_BOUNCE_RATE_FIELD], event[PAGE_EXIT_RATE_FIELD] = bounce, exit_rate
        events.append(event)
        t += ms
    last_ms = pages[-1][1]
    if last_ms > 0:
        events.append(make_event("visibility", session_id=sid, anonymous_id=sid, client_ts_ms=t, seq=len(events),
                                 source_key=f"uci:{row}:{len(events)}", page=dict(events[-1]["page"]),
                                 props={"state": "hidden", "visible_ms": last_ms}))
    visit_count = 2 if r["VisitorType"].strip() == "Returning_Visitor" else 1
    revenue = 1 if r["Revenue"].strip().upper() == "TRUE" else 0
    return UciSession(row, events, visit_count, revenue, r)


def iter_sessions(path: str | Path, stats: dict[str, int] | None = None) -> Iterator[UciSession]:
    """The kept rows of the CSV at ``path`` as :class:`UciSession` (skipped rows counted in
    ``stats["rows_skipped_blank"]``, all rows in ``stats["rows_read"]``).

    Raises:
        FileNotFoundError: no file at ``path``.
        KeyError: a required column is missing.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        for row, r in enumerate(csv.DictReader(fh)):
            if stats is not None:
                stats["rows_read"] = stats.get("rows_read", 0) + 1
            session = row_events(row, r)
            if session is None:
                if stats is not None:
                    stats["rows_skipped_blank"] = stats.get("rows_skipped_blank", 0) + 1
                continue
            yield session
