"""The page-rates table: per-page bounce and exit rates as a versioned, published input of the job.

Why a table and not counts in the job: the rates are cross-session aggregates, so computing them in the
job while it decides (``udfs.page_stats.PageStats``, the job's ``--page-rates``) makes a decision depend on
the other sessions the job happened to see before it, in the order it saw them; that breaks the
guarantees the job is tested for (``window_ms`` 10 = 50, replay = live, restore = failure-free run).
A table computed over a closed event-time window and published like a ruleset keeps every decision a
function of the events, the ruleset, the model and the *table version*:

* ``intentflow page-rates build`` counts a window of the product's own events with
  :class:`udfs.page_stats.PageStats` (the same definitions and smoothing) and writes a table document;
* ``intentflow page-rates publish`` validates it and produces it to the ``page-rates`` topic; the job
  reads that topic into broadcast state (with the rulesets) and annotates every page view with the rates
  of the table in force (:meth:`PageRatesTable.annotate`); ``--page-rates-table FILE`` gives the table used
  until one arrives.

Document (JSON, docs/contracts.md)::

    {"page_rates_version": "2026-12-04.1",             # non-empty string, names the table
     "window": {"from_ms": 1700000000000, "to_ms": 1700086400000},   # event time counted, ms
     "prior_weight": 20.0, "bounce_prior": 0.0222, "exit_prior": 0.0430,
     "pages": {"/p/123": [0.41, 0.22], ...}}           # page key -> [bounce rate, exit rate], each in [0, 1]

A page not in the table gets the table's smoothed value for a page with no views: the priors.

The window's edges: a session still going at the window's end counts as a bounce / exit of its latest page
(as in ``udfs.page_stats``), so a short window overstates the rates of pages visited near its end (measured:
``/demo/`` of the test history bounces 0.006 over the whole history, 0.41 over its first 30 s). Build over a
day or more, so the sessions cut by the edges are a small share.

Pure Python; no Flink, no Kafka.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from udfs.page_stats import DEFAULT_BUCKET_MS, PageStats, page_key
from udfs.session import PAGE_BOUNCE_RATE_FIELD, PAGE_EXIT_RATE_FIELD, event_order_key

#: Top-level field that marks a page-rates document (and names its version).
VERSION_FIELD = "page_rates_version"

#: Pages a table may hold: 500,000 (our choice: ~40 MB of Python objects in the job at most; a shop with
#: more distinct page keys should key pages by template, e.g. ``/p/{id}``, not by URL).
MAX_PAGES = 500_000


class PageRatesError(ValueError):
    """A page-rates document that is not valid; the message says which field and why."""


def _rate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise PageRatesError(f"{where}: a rate must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PageRatesTable:
    """A published table of per-page ``(bounce_rate, exit_rate)``.

    Attributes:
        version: ``page_rates_version`` of the document.
        from_ms, to_ms: the event-time window the counts came from, ms (``from_ms <= to_ms``).
        prior_weight, bounce_prior, exit_prior: the smoothing of ``udfs.page_stats`` the rates were
            computed with; a page not in the table gets ``(bounce_prior, exit_prior)``.
        pages: ``{page key: (bounce_rate, exit_rate)}``, page keys as :func:`udfs.page_stats.page_key`.
    """

    version: str
    from_ms: int
    to_ms: int
    prior_weight: float
    bounce_prior: float
    exit_prior: float
    pages: dict[str, tuple[float, float]] = field(default_factory=dict)

    # -- use ------------------------------------------------------------------------------------------

    def rates(self, page: str) -> tuple[float, float]:
        """``(bounce_rate, exit_rate)`` of ``page``: the table's, else the priors."""
        return self.pages.get(page, (self.bounce_prior, self.exit_prior))

    def annotate(self, events: Iterable[dict[str, Any]]) -> int:
        """Write the table's rates into every page_view among ``events`` that has a page key (fields
        :data:`udfs.session.PAGE_BOUNCE_RATE_FIELD` / ``PAGE_EXIT_RATE_FIELD``, in place).

        A pure function of the event and the table: the result does not depend on batching, arrival
        order or other sessions. Returns the number of page views annotated.
        """
        n = 0
        for event in events:
            if event.get("type") != "page_view":
                continue
            page = page_key(event)
            if page is None:
                continue
            event[PAGE_BOUNCE_RATE_FIELD], event[PAGE_EXIT_RATE_FIELD] = self.rates(page)
            n += 1
        return n

    # -- documents --------------------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The JSON document of the module docstring (pages sorted by key, so equal tables are equal text)."""
        return {VERSION_FIELD: self.version, "window": {"from_ms": self.from_ms, "to_ms": self.to_ms},
                "prior_weight": self.prior_weight, "bounce_prior": self.bounce_prior, "exit_prior": self.exit_prior,
                "pages": {p: [b, e] for p, (b, e) in sorted(self.pages.items())}}

    def to_json(self) -> str:
        """Compact UTF-8 JSON of :meth:`to_document`."""
        return json.dumps(self.to_document(), separators=(",", ":"))

    @classmethod
    def from_document(cls, doc: Any) -> "PageRatesTable":
        """Validate a parsed document.

        Raises:
            PageRatesError: not an object, a missing or empty version, a bad window, priors or weight
                out of range, or a page entry that is not ``[bounce, exit]`` in [0, 1]; at most
                :data:`MAX_PAGES` pages.
        """
        if not isinstance(doc, dict):
            raise PageRatesError(f"a page-rates document is a JSON object, got {type(doc).__name__}")
        version = doc.get(VERSION_FIELD)
        if not isinstance(version, str) or not version.strip():
            raise PageRatesError(f"{VERSION_FIELD} must be a non-empty string, got {version!r}")
        window = doc.get("window")
        if not isinstance(window, dict) or not all(isinstance(window.get(k), int) and not isinstance(window.get(k), bool)
                                                   for k in ("from_ms", "to_ms")):
            raise PageRatesError(f"window must be {{'from_ms': int, 'to_ms': int}}, got {window!r}")
        if window["from_ms"] > window["to_ms"]:
            raise PageRatesError(f"window.from_ms {window['from_ms']} is after window.to_ms {window['to_ms']}")
        weight = doc.get("prior_weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise PageRatesError(f"prior_weight must be a number >= 0, got {weight!r}")
        bounce_prior = _rate(doc.get("bounce_prior"), "bounce_prior")
        exit_prior = _rate(doc.get("exit_prior"), "exit_prior")
        pages = doc.get("pages")
        if not isinstance(pages, dict):
            raise PageRatesError(f"pages must be an object {{page: [bounce, exit]}}, got {type(pages).__name__}")
        if len(pages) > MAX_PAGES:
            raise PageRatesError(f"{len(pages)} pages, more than the {MAX_PAGES} a table may hold")
        parsed: dict[str, tuple[float, float]] = {}
        for page, pair in pages.items():
            if not page:
                raise PageRatesError("pages: an empty page key")
            if not isinstance(pair, list) or len(pair) != 2:
                raise PageRatesError(f"pages[{page!r}]: must be [bounce_rate, exit_rate], got {pair!r}")
            parsed[page] = (_rate(pair[0], f"pages[{page!r}][0]"), _rate(pair[1], f"pages[{page!r}][1]"))
        return cls(version.strip(), window["from_ms"], window["to_ms"], float(weight), bounce_prior, exit_prior,
                   parsed)

    @classmethod
    def from_json(cls, text: str | bytes) -> "PageRatesTable":
        """Parse and validate a document.

        Raises:
            PageRatesError: not JSON, or :meth:`from_document` rejects it.
        """
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise PageRatesError(f"not JSON: {exc}") from exc
        return cls.from_document(doc)


def build_table(events: Iterable[dict[str, Any]], version: str, from_ms: int | None = None,
                to_ms: int | None = None, stats: PageStats | None = None) -> PageRatesTable:
    """Count the page views of ``events`` with ``start <= ts_ms < end`` and return the table of every page seen.

    The events are counted in event-time order (:func:`udfs.session.event_order_key`), so the table does
    not depend on their order in the input. ``stats`` gives the window and smoothing (default
    :class:`udfs.page_stats.PageStats` with 1-h buckets covering the whole range, 20 pseudo-counts, the UCI
    priors).

    Args:
        events: contract events (``type``, ``ts_ms``, ``session_id``, ``page``).
        version: the table's ``page_rates_version``.
        from_ms, to_ms: the event-time range counted (default: all events); recorded as the window.

    Raises:
        PageRatesError: an empty ``version``, or no page view in the range (a table of nothing but priors
            is almost certainly the wrong window).
    """
    if not version or not version.strip():
        raise PageRatesError("the table needs a non-empty version")
    chosen = sorted((e for e in events if e.get("type") == "page_view"
                     and (from_ms is None or e["ts_ms"] >= from_ms) and (to_ms is None or e["ts_ms"] < to_ms)),
                    key=event_order_key)
    if not chosen:
        raise PageRatesError(f"no page view with an event time in [{from_ms}, {to_ms})")
    if stats is None:  # one window over the whole range: every page view of it counts
        span_ms = chosen[-1]["ts_ms"] - chosen[0]["ts_ms"]
        stats = PageStats(n_buckets=span_ms // DEFAULT_BUCKET_MS + 2)
    for event in chosen:
        stats.observe(event)
    pages = {page: stats.rates(page) for page in stats.pages()}
    doc = {VERSION_FIELD: version, "window": {"from_ms": from_ms if from_ms is not None else chosen[0]["ts_ms"],
                                               "to_ms": to_ms if to_ms is not None else chosen[-1]["ts_ms"] + 1},
           "prior_weight": stats.prior_weight, "bounce_prior": stats.bounce_prior, "exit_prior": stats.exit_prior,
           "pages": {p: list(r) for p, r in pages.items()}}
    return PageRatesTable.from_document(doc)


def is_page_rates_document(text: str) -> bool:
    """Whether a record of the broadcast stream is a page-rates document (else: a ruleset): it names the
    field :data:`VERSION_FIELD`, which no ruleset has (schemas/rules.v1.json allows no extra fields)."""
    return f'"{VERSION_FIELD}"' in text
