"""Per-page bounce and exit rates as cross-session aggregates: the first features that depend on OTHER sessions.

:class:`PageStats` counts, per page key (``page.path``, else ``page.url``), over a trailing event-time
window of ``n_buckets`` buckets of ``bucket_ms``:

* ``views``: page views of the page;
* ``continued``: views of the page that the same session followed by another page view (not an exit);
* ``entrances``: sessions whose first page view was on the page;
* ``entered_continued``: of those, sessions that viewed a second page (not a bounce).

and gives, smoothed towards a prior with weight ``prior_weight`` (additive smoothing, i.e. the posterior
mean of a Beta prior with mean ``prior`` and ``prior_weight`` pseudo-counts; Gelman et al., *Bayesian Data
Analysis*, 3rd ed., §2.4)::

    exit_rate(p)   = (views(p) - continued(p) + w * exit_prior) / (views(p) + w)
    bounce_rate(p) = (entrances(p) - entered_continued(p) + w * bounce_prior) / (entrances(p) + w)

:meth:`PageStats.annotate` writes these (as of before the event) into every page_view of a micro-batch as
``_page_bounce_rate`` / ``_page_exit_rate`` (:data:`udfs.session.PAGE_BOUNCE_RATE_FIELD`), then counts the
event; :class:`udfs.session.SessionState` averages them into ``page_bounce_rate_mean_ratio`` /
``page_exit_rate_mean_ratio``. The session feature code never sees this class: a replay of annotated events
gives the stream's features bit for bit.

How this differs from Google Analytics (the source of UCI Online Shoppers' ``BounceRates``/``ExitRates``,
docs/uci-mapping.md): GA computes after the session ended, and a GA bounce is a single-*hit* session (a
session with an interaction event is not a bounce); ours is a session with a single *page view*, and a
session still in progress counts as a bounce / exit of its latest page until its next page view (no
session-end detection is needed, at the cost of an upward bias for pages viewed in the last minutes).

Each job subtask keeps its own :class:`PageStats` over the sessions of its shards (a random sample of the
traffic, as sessions are hashed to shards), in memory: a restart starts the window empty and the rates
fall back to the priors until the pages are seen again.

Pure Python, picklable; not thread-safe.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from udfs.session import (DEFAULT_PAGE_BOUNCE_RATE, DEFAULT_PAGE_EXIT_RATE, PAGE_BOUNCE_RATE_FIELD,
                           PAGE_EXIT_RATE_FIELD, event_order_key)

#: Bucket length of the trailing window, ms: 1 h. Our choice: with 24 buckets the window is a day
#: (a page's rate follows the day's traffic mix; a restart is forgotten within a day).
DEFAULT_BUCKET_MS = 3_600_000
DEFAULT_N_BUCKETS = 24

#: Pseudo-counts of the prior: 20. Our choice: a page needs about 20 views before its own rate
#: outweighs the prior.
DEFAULT_PRIOR_WEIGHT = 20.0

#: Priors: :data:`udfs.session.DEFAULT_PAGE_BOUNCE_RATE` / ``DEFAULT_PAGE_EXIT_RATE`` (the UCI means).
UCI_BOUNCE_PRIOR = DEFAULT_PAGE_BOUNCE_RATE
UCI_EXIT_PRIOR = DEFAULT_PAGE_EXIT_RATE

#: Sessions whose latest page the stats remember (to count a continuation): bounded, oldest dropped.
#: 100,000: our choice, ~10 MB of Python objects per subtask.
DEFAULT_MAX_SESSIONS = 100_000

#: Distinct page keys counted per bucket; further new keys in a full bucket are not counted (bounded memory).
MAX_PAGES_PER_BUCKET = 50_000


def page_key(event: dict[str, Any]) -> str | None:
    """The page a page_view is counted under: ``page.path``, else ``page.url``, else None (not counted)."""
    page = event.get("page") or {}
    return page.get("path") or page.get("url") or None


class PageStats:
    """Windowed per-page counts and the smoothed bounce / exit rates of the module docstring.

    Args:
        bucket_ms, n_buckets: the trailing window (event time): the bucket of ``ts_ms`` is
            ``ts_ms // bucket_ms``; buckets older than ``n_buckets - 1`` before the newest are dropped.
        prior_weight: ``w`` of the formulas, pseudo-counts, >= 0.
        bounce_prior, exit_prior: prior rates in [0, 1].
        max_sessions: bound on the sessions remembered.

    Raises:
        ValueError: a non-positive ``bucket_ms``/``n_buckets``/``max_sessions``, a negative weight, or a
            prior outside [0, 1].
    """

    def __init__(self, bucket_ms: int = DEFAULT_BUCKET_MS, n_buckets: int = DEFAULT_N_BUCKETS,
                 prior_weight: float = DEFAULT_PRIOR_WEIGHT, bounce_prior: float = UCI_BOUNCE_PRIOR,
                 exit_prior: float = UCI_EXIT_PRIOR, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        if bucket_ms <= 0 or n_buckets <= 0 or max_sessions <= 0:
            raise ValueError(f"bucket_ms, n_buckets and max_sessions must be > 0, got {bucket_ms}, {n_buckets}, "
                             f"{max_sessions}")
        if prior_weight < 0 or not (0.0 <= bounce_prior <= 1.0 and 0.0 <= exit_prior <= 1.0):
            raise ValueError(f"prior_weight must be >= 0 and priors in [0, 1], got {prior_weight}, "
                             f"{bounce_prior}, {exit_prior}")
        self.bucket_ms = bucket_ms
        self.n_buckets = n_buckets
        self.prior_weight = float(prior_weight)
        self.bounce_prior = float(bounce_prior)
        self.exit_prior = float(exit_prior)
        self.max_sessions = max_sessions
        #: {bucket: {page: [views, continued, entrances, entered_continued]}}
        self._buckets: dict[int, dict[str, list[int]]] = {}
        #: {page: [views, continued, entrances, entered_continued]} summed over the window
        self._totals: dict[str, list[int]] = {}
        #: {session_id: (order key of its latest counted page view, its page, its page count)}
        self._sessions: OrderedDict[str, tuple[tuple, str, int]] = OrderedDict()
        self._newest_bucket: int | None = None

    # -- counts ------------------------------------------------------------------------------------

    def _add(self, ts_ms: int, page: str, slot: int) -> None:
        bucket = ts_ms // self.bucket_ms
        newest = self._newest_bucket
        if newest is not None and bucket <= newest - self.n_buckets:
            return  # older than the window
        if newest is None or bucket > newest:
            self._newest_bucket = bucket
            for old in [b for b in self._buckets if b <= bucket - self.n_buckets]:
                for p, counts in self._buckets.pop(old).items():
                    total = self._totals[p]
                    for i in range(4):
                        total[i] -= counts[i]
                    if total[0] <= 0 and total[2] <= 0:
                        del self._totals[p]
        pages = self._buckets.setdefault(bucket, {})
        counts = pages.get(page)
        if counts is None:
            if len(pages) >= MAX_PAGES_PER_BUCKET:
                return
            counts = pages[page] = [0, 0, 0, 0]
        counts[slot] += 1
        total = self._totals.get(page)
        if total is None:
            total = self._totals[page] = [0, 0, 0, 0]
        total[slot] += 1

    def observe(self, event: dict[str, Any]) -> None:
        """Count one page_view (other types, untyped pages without a key, duplicates and events not after
        the session's latest counted page view are ignored)."""
        if event.get("type") != "page_view":
            return
        page = page_key(event)
        session_id = event.get("session_id")
        if page is None or session_id is None:
            return
        key = event_order_key(event)
        ts = event["ts_ms"]
        previous = self._sessions.get(session_id)
        if previous is not None and key <= previous[0]:
            return  # a duplicate or an out-of-order page view
        self._add(ts, page, 0)
        if previous is None:
            self._add(ts, page, 2)
            n_pages = 1
        else:
            _, prev_page, n_pages = previous
            self._add(ts, prev_page, 1)
            if n_pages == 1:
                self._add(ts, prev_page, 3)
            n_pages += 1
            self._sessions.move_to_end(session_id)
        self._sessions[session_id] = (key, page, n_pages)
        if len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    # -- rates ---------------------------------------------------------------------------------------

    def pages(self) -> list[str]:
        """The page keys with counts in the window."""
        return list(self._totals)

    def counts(self, page: str) -> tuple[int, int, int, int]:
        """``(views, continued, entrances, entered_continued)`` of ``page`` in the window."""
        total = self._totals.get(page)
        return tuple(total) if total is not None else (0, 0, 0, 0)  # type: ignore[return-value]

    def rates(self, page: str) -> tuple[float, float]:
        """``(bounce_rate, exit_rate)`` of ``page``, smoothed (module docstring), each in [0, 1]."""
        views, continued, entrances, entered_continued = self.counts(page)
        w = self.prior_weight
        exit_rate = (views - continued + w * self.exit_prior) / (views + w) if views + w > 0 else self.exit_prior
        bounce = ((entrances - entered_continued + w * self.bounce_prior) / (entrances + w)
                  if entrances + w > 0 else self.bounce_prior)
        return bounce, exit_rate

    def annotate(self, events: Iterable[dict[str, Any]]) -> int:
        """Give every page_view among ``events`` its page's rates as of before it, then count it.

        Page views are taken in event-time order (:func:`udfs.session.event_order_key`), so the result
        does not depend on arrival order within a batch. A page view without a page key gets no rates.

        Returns:
            the number of page views annotated. The events are changed in place (fields
            :data:`udfs.session.PAGE_BOUNCE_RATE_FIELD` and :data:`udfs.session.PAGE_EXIT_RATE_FIELD`).
        """
        views = sorted((e for e in events if e.get("type") == "page_view"), key=event_order_key)
        n = 0
        for event in views:
            page = page_key(event)
            if page is None:
                continue
            event[PAGE_BOUNCE_RATE_FIELD], event[PAGE_EXIT_RATE_FIELD] = self.rates(page)
            self.observe(event)
            n += 1
        return n
