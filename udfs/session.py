"""Per-session state: noise filter -> enrichment -> feature update, one event at a time.

:class:`SessionState` is what the Flink job keeps per ``session_id`` in keyed state (pickled), what
training replays recorded sessions through, and what the benchmarks measure. It applies the events of
ONE session (contract dicts, docs/contracts.md §1) in event-time order (``ts_ms``):

1. **order**: an event older than the newest event already seen (``ts_ms`` smaller) is *late* and
   changes nothing (the job buffers a session's events and applies them sorted by
   :func:`event_order_key` within its lateness bound; what is still out of order is late);
2. **noise filter** (:class:`udfs.noise.NoiseFilter`): debounce, threshold suppression, bots; events
   the normalizer flagged physically implausible (:mod:`udfs.plausibility`) are suppressed too;
3. **enrichment**: device class, viewport, network class, coarse geo from the event's ``context``;
   session age, page count and visit count from the session itself;
4. **feature update** (:data:`udfs.features.FEATURES`).

Every decision depends only on the session's events up to the current one, so features computed
event by event in the stream equal :func:`replay_features` over the recorded events (the reference
for the batch-vs-stream test).

Why this module is over 400 lines: :class:`SessionState` updates the noise filter, the enrichment and
every feature in one ``apply()`` per event, and the browser's port (web/sdk/edge.js, checked by
``udfs.edge_spec``) follows it line by line; splitting the feature updates from the state they change
would make the bit-for-bit parity with training and the browser harder to check, not easier.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from udfs.contract import PAGE_TYPES
from udfs.features import FEATURE_DTYPE, FEATURE_INDEX, FEATURE_NAMES, N_FEATURES
from udfs.interning import interned, interned_items, interned_keys
from udfs.noise import DEFAULT_NOISE_CONFIG, NoiseConfig, NoiseFilter, ema
from udfs.plausibility import IMPLAUSIBLE_FLAGS, REASON_IMPLAUSIBLE

#: Normalizer flags that keep an event out of the features (udfs.plausibility).
_IMPLAUSIBLE_FLAGS = frozenset(IMPLAUSIBLE_FLAGS)

# -- outcome ------------------------------------------------------------------------------------------

STATUS_APPLIED = "applied"
STATUS_SUPPRESSED = "suppressed"
STATUS_LATE = "late"
STATUS_IGNORED = "ignored"

REASON_APPLIED = "applied"
REASON_OUT_OF_ORDER = "out_of_order"
REASON_NOT_BEHAVIORAL = "not_behavioral"
REASON_UNKNOWN_TYPE = "unknown_type"


class Outcome(NamedTuple):
    """What :meth:`SessionState.apply` did with one event.

    Attributes:
        status: ``applied`` (features updated), ``suppressed`` (noise filter; ``reason`` is one of
            ``udfs.noise.REASON_*``), ``late`` (older than an event already seen; reason
            ``out_of_order``) or ``ignored`` (not a behavioral signal, e.g. ``exposure``; reason
            ``not_behavioral`` or ``unknown_type``). Only ``applied`` changes the features.
        reason: machine-readable reason code (stable strings, counted by the job).
    """

    status: str
    reason: str

    @property
    def applied(self) -> bool:
        """True when the event updated the session's features."""
        return self.status == STATUS_APPLIED


APPLIED = Outcome(STATUS_APPLIED, REASON_APPLIED)
LATE = Outcome(STATUS_LATE, REASON_OUT_OF_ORDER)
IGNORED_NOT_BEHAVIORAL = Outcome(STATUS_IGNORED, REASON_NOT_BEHAVIORAL)
IGNORED_UNKNOWN_TYPE = Outcome(STATUS_IGNORED, REASON_UNKNOWN_TYPE)
_SUPPRESSED: dict[str, Outcome] = {}


def _suppressed(reason: str) -> Outcome:
    out = _SUPPRESSED.get(reason)
    if out is None:
        out = _SUPPRESSED[reason] = Outcome(STATUS_SUPPRESSED, reason)
    return out


# -- configuration --------------------------------------------------------------------------------

#: Length of the trailing window of ``click_velocity_per_min``, ms (one minute: the unit of the feature).
CLICK_VELOCITY_WINDOW_MS = 60_000

#: Effective connection types of the Network Information API (WICG) counted as a slow network.
SLOW_EFFECTIVE_TYPES = frozenset({"slow-2g", "2g", "3g"})

#: Bound on the per-session tables (item views, per-element hover dwell) so the pickled state stays
#: small: 512 distinct items / elements per session. Our choice: the longest re-split OTTO session in
#: ``shared/data`` has 111 events; past the bound, new keys are counted as new and not tracked.
MAX_TRACKED_KEYS = 512

#: Layout version of the pickled SessionState (bump when the slots change). 2: page types, page rates.
STATE_VERSION = 2

#: ms per day, and the weekday of the epoch's day 0 (1970-01-01 was a Thursday: 3 with Monday = 0).
MS_PER_DAY = 86_400_000
EPOCH_WEEKDAY = 3

#: Event fields a page_view may carry with the page's cross-session rates (set by
#: :class:`udfs.page_stats.PageStats` in the job, by the UCI converter in training; never by a client:
#: ``udfs.contract.parse_event`` drops unknown top-level fields).
PAGE_BOUNCE_RATE_FIELD = "_page_bounce_rate"
PAGE_EXIT_RATE_FIELD = "_page_exit_rate"

#: Values of ``page_bounce_rate_mean_ratio`` / ``page_exit_rate_mean_ratio`` before any page view carried a
#: rate (a session scored outside the job's PageStats, e.g. in the browser, or before its first page view),
#: and the priors of :class:`udfs.page_stats.PageStats`: the means of ``BounceRates`` (0.0222) and
#: ``ExitRates`` (0.0430) over the 12,316 kept rows of UCI Online Shoppers (models/evaluate.py
#: ``load_online_shoppers``), the data the shipped model learned from. Not 0: a model trained on UCI reads a
#: rate of 0 ("nobody leaves from here") as strong intent.
DEFAULT_PAGE_BOUNCE_RATE = 0.0222
DEFAULT_PAGE_EXIT_RATE = 0.0430

_BEHAVIORAL_TYPES = frozenset(
    {"page_view", "click", "scroll", "hover", "visibility", "form", "mouse_trajectory", "add_to_cart",
     "purchase"}
)

# feature positions (resolved once; FEATURES is the single source of the order)
_I_AGE = FEATURE_INDEX["session_age_s"]
_I_GAP = FEATURE_INDEX["time_since_last_event_s"]
_I_EVENTS = FEATURE_INDEX["event_count"]
_I_PAGES = FEATURE_INDEX["page_view_count"]
_I_PRODUCTS = FEATURE_INDEX["product_view_count"]
_I_DISTINCT = FEATURE_INDEX["distinct_product_view_count"]
_I_CUR_ITEM = FEATURE_INDEX["current_item_view_count"]
_I_SCROLL_MAX = FEATURE_INDEX["max_scroll_depth_pct"]
_I_SCROLL_EMA = FEATURE_INDEX["scroll_depth_pct_ema"]
_I_HOVER_TOTAL = FEATURE_INDEX["hover_ms_total"]
_I_HOVER_CARD = FEATURE_INDEX["hover_ms_product_card"]
_I_HOVER_SPEC = FEATURE_INDEX["hover_ms_spec"]
_I_HOVER_MAX = FEATURE_INDEX["hover_ms_max_element"]
_I_HOVER_EMA = FEATURE_INDEX["hover_ms_ema"]
_I_CLICKS = FEATURE_INDEX["click_count"]
_I_CLICK_VEL = FEATURE_INDEX["click_velocity_per_min"]
_I_COMPARE = FEATURE_INDEX["compare_click_count"]
_I_VISIBLE = FEATURE_INDEX["visible_time_on_page_s"]
_I_FORMS = FEATURE_INDEX["form_interaction_count"]
_I_STRAIGHT = FEATURE_INDEX["trajectory_straightness_ema"]
_I_SPEED = FEATURE_INDEX["trajectory_speed_px_s_ema"]
_I_CARTS = FEATURE_INDEX["add_to_cart_count"]
_I_PURCHASES = FEATURE_INDEX["purchase_count"]
_I_MOBILE = FEATURE_INDEX["device_mobile_flag"]
_I_TABLET = FEATURE_INDEX["device_tablet_flag"]
_I_DESKTOP = FEATURE_INDEX["device_desktop_flag"]
_I_VW = FEATURE_INDEX["viewport_w_px"]
_I_VH = FEATURE_INDEX["viewport_h_px"]
_I_SLOW = FEATURE_INDEX["network_slow_flag"]
_I_RTT = FEATURE_INDEX["network_rtt_ms"]
_I_DOWNLINK = FEATURE_INDEX["network_downlink_mbps"]
_I_VISITS = FEATURE_INDEX["visit_count"]
#: page type -> (index of its page view count, index of its page time)
_I_PAGE_TYPE = {t: (FEATURE_INDEX[f"{t}_page_view_count"], FEATURE_INDEX[f"{t}_page_time_s"]) for t in PAGE_TYPES}
_I_BOUNCE = FEATURE_INDEX["page_bounce_rate_mean_ratio"]
_I_EXIT = FEATURE_INDEX["page_exit_rate_mean_ratio"]
_I_WEEKEND = FEATURE_INDEX["weekend_flag"]
_I_RETURNING = FEATURE_INDEX["returning_visitor_flag"]


def page_type_of_event(event: dict[str, Any]) -> str | None:
    """The page type of a page_view: ``page.type``; when null, ``product_related`` if ``page.item_id`` is
    set, else None (an untyped page, counted in none of the page-type features)."""
    page = event.get("page") or {}
    page_type = page.get("type")
    if page_type in _I_PAGE_TYPE:
        return page_type
    return "product_related" if page.get("item_id") else None


def weekend_flag(ts_ms: int) -> float:
    """1.0 when epoch ms ``ts_ms`` falls on a Saturday or Sunday (UTC), else 0.0."""
    return 1.0 if (ts_ms // MS_PER_DAY + EPOCH_WEEKDAY) % 7 >= 5 else 0.0


def event_order_key(event: dict[str, Any]) -> tuple:
    """Sort key that defines the event-time order of a session's events.

    ``(ts_ms, seq, event_id)``: event time first; events sharing one ms are ordered by the SDK's
    per-session ``seq`` (missing ``seq`` after present ones), then by ``event_id`` so the order is total
    and the same in the stream and in a batch replay.
    """
    seq = event.get("seq")
    return (event["ts_ms"], 0 if seq is not None else 1, seq or 0, event.get("event_id") or "")


def replay_record(event: dict[str, Any]) -> tuple:
    """The part of an event that :meth:`SessionState.apply` reads, as a flat tuple (issue 19).

    What the job keeps of each event in a session's lateness log (``udfs.decide.SessionEntry.log``), to
    apply it again when an out-of-order event makes it rebuild the live state: ``ts_ms``, ``type``,
    ``props`` (whole: the noise filter and the features read several of its keys), ``flags``,
    ``page.type``, ``page.item_id``, the context values of the enrichment and the bot filter (or None when
    the event has no ``context``) and the page's rates (:data:`PAGE_BOUNCE_RATE_FIELD`,
    :data:`PAGE_EXIT_RATE_FIELD`). Ids, urls, user agent, consent and the other context fields are not
    read by ``apply``. Pickled, it is ~150 bytes against ~790 for the whole event (the benchmark's load,
    bench/session_size.py). :func:`replay_event` inverts it; ``apply(replay_event(replay_record(e), sid))``
    leaves a state exactly as ``apply(e)`` does (tests/unit/test_session_entry_layout.py, over real sessions).

    Shape: ``(ts_ms, type, props, flags, page_type, item_id, context, bounce_rate, exit_rate)`` with
    ``context`` None or ``(device_class, is_bot, viewport_w_px, viewport_h_px, effective_type, rtt_ms,
    downlink_mbps, save_data, country, region)``.
    """
    page = event.get("page") or {}
    context = event.get("context")
    ctx = None
    if context is not None:
        network = context.get("network") or {}
        geo = context.get("geo") or {}
        ctx = (context.get("device_class"), context.get("is_bot"), context.get("viewport_w_px"),
               context.get("viewport_h_px"), network.get("effective_type"), network.get("rtt_ms"),
               network.get("downlink_mbps"), network.get("save_data"), geo.get("country"), geo.get("region"))
    return (event["ts_ms"], event["type"], event.get("props"), event.get("flags"), page.get("type"),
            page.get("item_id"), ctx, event.get(PAGE_BOUNCE_RATE_FIELD), event.get(PAGE_EXIT_RATE_FIELD))


def replay_event(record: tuple | dict[str, Any], session_id: str | None) -> dict[str, Any]:
    """An event dict for :meth:`SessionState.apply` from :func:`replay_record` and the session's id; a dict
    (a whole event, as logs held before records) is returned as a copy."""
    if isinstance(record, dict):
        return dict(record)
    ts_ms, event_type, props, flags, page_type, item_id, ctx, bounce, exit_rate = record
    event: dict[str, Any] = {"ts_ms": ts_ms, "type": event_type, "session_id": session_id, "props": props,
                             "flags": flags, "page": {"type": page_type, "item_id": item_id}}
    if ctx is not None:
        device, is_bot, vw, vh, effective, rtt, downlink, save_data, country, region = ctx
        event["context"] = {"device_class": device, "is_bot": is_bot, "viewport_w_px": vw, "viewport_h_px": vh,
                            "network": {"effective_type": effective, "rtt_ms": rtt, "downlink_mbps": downlink,
                                        "save_data": save_data},
                            "geo": {"country": country, "region": region}}
    if bounce is not None:
        event[PAGE_BOUNCE_RATE_FIELD] = bounce
    if exit_rate is not None:
        event[PAGE_EXIT_RATE_FIELD] = exit_rate
    return event


def network_class(network: dict | None) -> str:
    """``slow``/``fast``/``unknown`` from ``context.network`` (Network Information API fields).

    ``slow``: ``save_data`` is true or ``effective_type`` is one of :data:`SLOW_EFFECTIVE_TYPES`;
    ``fast``: ``effective_type`` is ``4g``; otherwise ``unknown``.
    """
    if not network:
        return "unknown"
    if network.get("save_data"):
        return "slow"
    effective = network.get("effective_type")
    if effective in SLOW_EFFECTIVE_TYPES:
        return "slow"
    if effective == "4g":
        return "fast"
    return "unknown"


class SessionState:
    """One session's noise-filter state, enrichment and features.

    Args:
        noise_config: parameters of the noise filter (:class:`udfs.noise.NoiseConfig`).
        visit_count: the visitor's visit number (1 = first visit) when the caller knows it (e.g. from a
            store keyed by ``anonymous_id``); it cannot be derived from one session's events.

    Picklable (the Flink job keeps it in keyed state); the pickled size grows only with the bounded
    per-session tables. Not thread-safe (one instance per key, one thread).
    """

    __slots__ = (
        "session_id", "visit_count", "_noise", "_v", "_first_ts", "_last_applied_ts", "_last_seen_ts",
        "_item_views", "_current_item", "_hover_by_element", "_click_ts", "_scroll_ema",
        "_hover_ema", "_straight_ema", "_speed_ema", "_context", "_n_suppressed", "_n_late",
        "_page_time_idx", "_page_start_ts", "_page_time_closed", "_bounce_sum", "_exit_sum", "_n_rated",
    )

    def __init__(self, noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG, visit_count: int = 1) -> None:
        self.session_id: str | None = None
        self.visit_count = int(visit_count)
        self._noise = NoiseFilter(noise_config)
        # array('d'), not a list of floats: the same float64 values in ~30 % of the bytes (issue 19)
        self._v: array = array("d", bytes(8 * N_FEATURES))
        self._v[_I_VISITS] = float(self.visit_count)
        self._v[_I_RETURNING] = 1.0 if self.visit_count > 1 else 0.0
        self._v[_I_BOUNCE] = DEFAULT_PAGE_BOUNCE_RATE
        self._v[_I_EXIT] = DEFAULT_PAGE_EXIT_RATE
        self._first_ts: int | None = None
        self._last_applied_ts: int | None = None
        self._last_seen_ts: int | None = None
        self._item_views: dict[str, int] = {}
        self._current_item: str | None = None
        self._hover_by_element: dict[str, float] = {}
        self._click_ts: list[int] = []  # a list: an empty deque allocates a 64-slot block
        self._scroll_ema: float | None = None
        self._hover_ema: float | None = None
        self._straight_ema: float | None = None
        self._speed_ema: float | None = None
        self._context: tuple | None = None  # (device, vw, vh, network class, rtt, downlink, country, region)
        self._n_suppressed = 0
        self._n_late = 0
        self._page_time_idx: int | None = None  # page-time feature of the current page's type, None: untyped
        self._page_start_ts = 0  # ts_ms of the current page's page_view
        self._page_time_closed = 0.0  # page time of its type from the pages before the current one, s
        self._bounce_sum = 0.0
        self._exit_sum = 0.0
        self._n_rated = 0

    # pickling: a flat tuple of the slots (smaller and faster than the default slot-dict state),
    # led by STATE_VERSION so a savepoint written by another layout is refused, not misread
    # (``_v`` as its raw float64 bytes: an array's own pickling is ~3 us of the ~12 us a state takes)
    def __getstate__(self):
        state = _GET_SLOTS(self)
        return (STATE_VERSION,) + state[:_V_SLOT] + (self._v.tobytes(),) + state[_V_SLOT + 1:]

    def __setstate__(self, state) -> None:
        if not state or state[0] != STATE_VERSION or len(state) != len(self.__slots__) + 1:
            raise ValueError(f"SessionState pickled with layout {state[0] if state else None!r}, this code reads "
                             f"{STATE_VERSION}: restart without state or migrate the savepoint")
        _SET_SLOTS(self, state)  # every slot from state[1:] in one assignment, not a setattr loop
        v = self._v
        if v.__class__ is bytes:
            self._v = array("d")
            self._v.frombytes(v)
        # states pickled before _v was an array and _click_ts a list (same layout version, same values)
        elif not isinstance(v, array):
            self._v = array("d", v)
        if not isinstance(self._click_ts, list):
            self._click_ts = list(self._click_ts)
        # the element and item ids and the context's names, shared with every other restored session
        # (udfs/interning.py; values unchanged)
        if self._hover_by_element:
            self._hover_by_element = interned_keys(self._hover_by_element)
        if self._item_views:
            self._item_views = interned_keys(self._item_views)
        if self._current_item is not None:
            self._current_item = interned(self._current_item)
        if self._context is not None:
            self._context = interned_items(self._context)

    # -- public API ---------------------------------------------------------------------------------

    @property
    def noise_config(self) -> NoiseConfig:
        """The noise filter's configuration."""
        return self._noise.config

    @property
    def last_event_ts_ms(self) -> int | None:
        """``ts_ms`` of the newest event seen (applied, suppressed or ignored), None before any."""
        return self._last_seen_ts

    @property
    def suppressed_count(self) -> int:
        """Events of this session the noise filter suppressed so far."""
        return self._n_suppressed

    @property
    def late_count(self) -> int:
        """Events of this session that arrived out of event-time order (changed nothing)."""
        return self._n_late

    def apply(self, event: dict[str, Any]) -> Outcome:
        """Apply one event of this session (a contract dict); return what was done with it.

        The first event fixes :attr:`session_id`. Events must come in event-time order
        (:func:`event_order_key`); an event with ``ts_ms`` below the newest one seen is late.

        Raises:
            ValueError: the event belongs to another session.
            KeyError: the event lacks ``type`` or ``ts_ms``.
        """
        ts = event["ts_ms"]
        event_type = event["type"]
        session_id = event.get("session_id")
        if self.session_id is None:
            self.session_id = session_id
        elif session_id != self.session_id:
            raise ValueError(f"event of session {session_id!r} applied to session {self.session_id!r}")
        last_seen = self._last_seen_ts
        if last_seen is not None and ts < last_seen:
            self._n_late += 1
            return LATE
        self._last_seen_ts = ts
        if event_type not in _BEHAVIORAL_TYPES:
            return IGNORED_NOT_BEHAVIORAL if event_type == "exposure" else IGNORED_UNKNOWN_TYPE
        props = event.get("props") or {}
        context = event.get("context")
        flags = event.get("flags")
        if flags and any(f in _IMPLAUSIBLE_FLAGS for f in flags):  # udfs.plausibility: raw kept, not a feature
            self._n_suppressed += 1
            return _suppressed(REASON_IMPLAUSIBLE)
        reason = self._noise.check(event_type, ts, props, context)
        if reason is not None:
            self._n_suppressed += 1
            return _suppressed(reason)

        v = self._v
        # time, counts
        if self._first_ts is None:
            self._first_ts = ts
            v[_I_GAP] = 0.0
        else:
            v[_I_GAP] = (ts - self._last_applied_ts) / 1000.0
        self._last_applied_ts = ts
        v[_I_AGE] = (ts - self._first_ts) / 1000.0
        v[_I_EVENTS] += 1.0
        v[_I_WEEKEND] = 1.0 if (ts // MS_PER_DAY + EPOCH_WEEKDAY) % 7 >= 5 else 0.0
        if self._page_time_idx is not None:  # the current page lasts until this event
            v[self._page_time_idx] = self._page_time_closed + (ts - self._page_start_ts) / 1000.0
        # trailing click window moves with every event's time
        clicks = self._click_ts
        horizon = ts - CLICK_VELOCITY_WINDOW_MS
        if clicks and clicks[0] <= horizon:
            k = 1
            while k < len(clicks) and clicks[k] <= horizon:
                k += 1
            del clicks[:k]
        # enrichment from the event's context
        if context is not None:
            self._enrich(context)

        alpha = self._noise.config.ema_alpha
        if event_type == "page_view":
            self._page_view(event)
        elif event_type == "click":
            v[_I_CLICKS] += 1.0
            clicks.append(ts)
            if props.get("element_role") == "compare_button":
                v[_I_COMPARE] += 1.0
        elif event_type == "scroll":
            depth = float(props.get("scroll_depth_pct") or 0.0)
            depth = 0.0 if depth < 0.0 else (100.0 if depth > 100.0 else depth)
            if depth > v[_I_SCROLL_MAX]:
                v[_I_SCROLL_MAX] = depth
            self._scroll_ema = ema(self._scroll_ema, depth, alpha)
            v[_I_SCROLL_EMA] = self._scroll_ema
        elif event_type == "hover":
            hover_ms = float(props.get("hover_ms") or 0.0)
            v[_I_HOVER_TOTAL] += hover_ms
            role = props.get("element_role")
            if role == "product_card":
                v[_I_HOVER_CARD] += hover_ms
            elif role == "spec":
                v[_I_HOVER_SPEC] += hover_ms
            element = props.get("element_id") or role or ""
            table = self._hover_by_element
            dwell = table.get(element)
            if dwell is not None:
                dwell += hover_ms
                table[element] = dwell
            else:
                dwell = hover_ms
                if len(table) < MAX_TRACKED_KEYS:
                    table[element] = dwell
            if dwell > v[_I_HOVER_MAX]:
                v[_I_HOVER_MAX] = dwell
            self._hover_ema = ema(self._hover_ema, hover_ms, alpha)
            v[_I_HOVER_EMA] = self._hover_ema
        elif event_type == "visibility":
            visible_s = float(props.get("visible_ms") or 0.0) / 1000.0
            if visible_s > v[_I_VISIBLE]:
                v[_I_VISIBLE] = visible_s
        elif event_type == "form":
            v[_I_FORMS] += 1.0
        elif event_type == "mouse_trajectory":
            self._straight_ema = ema(self._straight_ema, float(props.get("straightness") or 0.0), alpha)
            self._speed_ema = ema(self._speed_ema, float(props.get("mean_speed_px_s") or 0.0), alpha)
            v[_I_STRAIGHT] = self._straight_ema
            v[_I_SPEED] = self._speed_ema
        elif event_type == "add_to_cart":
            v[_I_CARTS] += 1.0
        else:  # purchase
            v[_I_PURCHASES] += 1.0
        v[_I_CLICK_VEL] = float(len(clicks))
        return APPLIED

    def features(self) -> np.ndarray:
        """The feature vector as of the last applied event: shape ``(N_FEATURES,)``, float32, FEATURES order."""
        return np.array(self._v, dtype=FEATURE_DTYPE)

    def feature_dict(self) -> dict[str, float]:
        """``{feature name: value}`` as of the last applied event (values rounded to float32)."""
        return dict(zip(FEATURE_NAMES, self.features().tolist()))

    def enrichment(self) -> dict[str, Any]:
        """The session's context: ``device_class``, ``viewport_w_px``, ``viewport_h_px``,
        ``network_class`` (slow/fast/unknown), ``geo_country``, ``geo_region`` (coarse geo as the
        collector sent it), ``session_age_s``, ``page_view_count``, ``visit_count``."""
        device, vw, vh, net, _rtt, _downlink, country, region = (
            self._context or ("unknown", None, None, "unknown", None, None, None, None)
        )
        return {
            "device_class": device,
            "viewport_w_px": vw,
            "viewport_h_px": vh,
            "network_class": net,
            "geo_country": country,
            "geo_region": region,
            "session_age_s": self._v[_I_AGE],
            "page_view_count": int(self._v[_I_PAGES]),
            "visit_count": self.visit_count,
        }

    # -- internals ----------------------------------------------------------------------------------

    def _page_view(self, event: dict[str, Any]) -> None:
        v = self._v
        v[_I_PAGES] += 1.0
        # page type: the previous page's time was closed by apply() at this event's ts
        page_type = page_type_of_event(event)
        if page_type is None:
            self._page_time_idx = None
        else:
            i_count, i_time = _I_PAGE_TYPE[page_type]
            v[i_count] += 1.0
            self._page_time_idx = i_time
            self._page_time_closed = v[i_time]
            self._page_start_ts = event["ts_ms"]
        bounce = event.get(PAGE_BOUNCE_RATE_FIELD)
        exit_rate = event.get(PAGE_EXIT_RATE_FIELD)
        if bounce is not None and exit_rate is not None:
            self._bounce_sum += float(bounce)
            self._exit_sum += float(exit_rate)
            self._n_rated += 1
            v[_I_BOUNCE] = self._bounce_sum / self._n_rated
            v[_I_EXIT] = self._exit_sum / self._n_rated
        # a new page: page-scope features restart
        v[_I_SCROLL_MAX] = 0.0
        v[_I_SCROLL_EMA] = 0.0
        v[_I_VISIBLE] = 0.0
        self._scroll_ema = None
        self._noise.new_page()
        page = event.get("page") or {}
        item = page.get("item_id")
        if item:
            v[_I_PRODUCTS] += 1.0
            views = self._item_views
            n = views.get(item)
            if n is None:
                v[_I_DISTINCT] += 1.0
                n = 1
                if len(views) >= MAX_TRACKED_KEYS:
                    v[_I_CUR_ITEM] = 1.0
                    self._current_item = item
                    return
            else:
                n += 1
            views[item] = n
            v[_I_CUR_ITEM] = float(n)
            self._current_item = item
        else:
            v[_I_CUR_ITEM] = 0.0
            self._current_item = None

    def _enrich(self, context: dict[str, Any]) -> None:
        network = context.get("network") or {}
        geo = context.get("geo") or {}
        ctx = (
            context.get("device_class") or "unknown",
            context.get("viewport_w_px"),
            context.get("viewport_h_px"),
            network_class(network),
            network.get("rtt_ms"),
            network.get("downlink_mbps"),
            geo.get("country"),
            geo.get("region"),
        )
        if ctx == self._context:
            return
        self._context = ctx
        device, vw, vh, net, rtt, downlink = ctx[:6]
        v = self._v
        v[_I_MOBILE] = 1.0 if device == "mobile" else 0.0
        v[_I_TABLET] = 1.0 if device == "tablet" else 0.0
        v[_I_DESKTOP] = 1.0 if device == "desktop" else 0.0
        v[_I_VW] = float(vw or 0.0)
        v[_I_VH] = float(vh or 0.0)
        v[_I_SLOW] = 1.0 if net == "slow" else 0.0
        v[_I_RTT] = float(rtt or 0.0)
        v[_I_DOWNLINK] = float(downlink or 0.0)


#: The slots of a SessionState as one tuple (``operator.attrgetter``, in C), and where ``_v`` is in it.
_GET_SLOTS = attrgetter(*SessionState.__slots__)
_V_SLOT = SessionState.__slots__.index("_v")


def _slots_setter(slots: Sequence[str]) -> Any:
    """``f(obj, state)``: ``obj.<slot> = state[1 + i]`` for every slot, as ONE unpacking assignment of
    attributes compiled from ``slots`` (our own identifiers); the inverse of ``_GET_SLOTS``. A session read
    back from keyed state (its state and lagging state; most events at 100,000 open sessions) costs ~33 ->
    ~29 us with it instead of a ``setattr`` loop (``bench/scale_cost.py``, 2,000 sessions, medians).

    Raises (``f``): ValueError: ``state`` does not have ``len(slots) + 1`` items."""
    namespace: dict[str, Any] = {}
    exec(f"def set_slots(obj, state):\n    {', '.join('obj.' + name for name in slots)}, = state[1:]\n", namespace)
    return namespace["set_slots"]


_SET_SLOTS = _slots_setter(SessionState.__slots__)


def feature_rows(states: Sequence[SessionState]) -> list[list[float]]:
    """``[state.features().tolist() for state in states]`` (the same float32 values as Python floats, one
    list of ``N_FEATURES`` per state) in one numpy conversion instead of one per state: the Redis session
    summaries (``udfs.decide.session_summaries``: ~2,000 sessions a second at 100,000 open sessions;
    ~1.7 -> ~0.9 us per session offline with ``.tolist()``)."""
    if not states:
        return []
    joined = b"".join([state._v for state in states])  # each array's float64 buffer, no copy per state
    return np.frombuffer(joined, dtype=np.float64).astype(FEATURE_DTYPE).reshape(len(states), N_FEATURES).tolist()


def replay_session(
    events: Iterable[dict[str, Any]],
    noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG,
    visit_count: int = 1,
) -> tuple[list[dict[str, Any]], np.ndarray, list[Outcome]]:
    """Replay ONE session's events in event-time order.

    Returns:
        ``(ordered_events, features, outcomes)``: the events sorted by :func:`event_order_key`, a
        float32 array of shape ``(n_events, N_FEATURES)`` whose row ``i`` is the feature vector as of
        ``ordered_events[i]`` (after applying it; unchanged from the row before when it was not
        applied), and the :class:`Outcome` of each.

    Raises:
        ValueError: the events belong to more than one session.
    """
    ordered = sorted(events, key=event_order_key)
    state = SessionState(noise_config, visit_count=visit_count)
    out = np.empty((len(ordered), N_FEATURES), dtype=FEATURE_DTYPE)
    outcomes: list[Outcome] = []
    for i, event in enumerate(ordered):
        outcomes.append(state.apply(event))
        out[i] = state._v
    return ordered, out, outcomes


def replay_features(
    events: Sequence[dict[str, Any]],
    noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG,
    visit_counts: dict[str, int] | None = None,
) -> np.ndarray:
    """Reference batch computation of the features as of each event.

    The events may come from several sessions, in any order. Each session's events are applied to
    their own :class:`SessionState` in event-time order (:func:`event_order_key`), exactly as the
    stream does; row ``i`` of the result is the feature vector of ``events[i]``'s session right
    after ``events[i]`` (input order is kept).

    Args:
        events: contract event dicts.
        noise_config: noise filter parameters (the stream must use the same).
        visit_counts: optional ``{session_id: visit number}`` (see :class:`SessionState`).

    Returns:
        float32 array of shape ``(len(events), N_FEATURES)`` in FEATURES order.

    Raises:
        KeyError: an event lacks ``session_id``, ``type`` or ``ts_ms``.
    """
    by_session: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        by_session.setdefault(event["session_id"], []).append(i)
    out = np.empty((len(events), N_FEATURES), dtype=FEATURE_DTYPE)
    visit_counts = visit_counts or {}
    for session_id, indices in by_session.items():
        indices.sort(key=lambda i: event_order_key(events[i]))
        state = SessionState(noise_config, visit_count=visit_counts.get(session_id, 1))
        for i in indices:
            state.apply(events[i])
            out[i] = state._v
    return out
