"""The one feature definition of intentflow.

:data:`FEATURES` is the ordered list of session features. The Flink job, model training, the
evaluation and the benchmarks all use it through :class:`udfs.session.SessionState`, which computes
the values; a model's manifest names the subset (and order) it was trained on.

Every feature is a ``float32`` scalar. Values are "as of" the last *applied* event of the session
(see :mod:`udfs.session`): an event that the noise filter suppresses changes no feature.

Scopes used in the definitions:

* *session*: all applied events of the session so far.
* *page*: applied events since the latest ``page_view`` (a page view starts a new page; events
  before the first page view of a session belong to an implicit first page).
* *trailing 60 s*: applied events whose ``ts_ms`` lies in ``(t - 60000, t]`` where ``t`` is the
  ``ts_ms`` of the latest applied event.

Names carry their unit as suffix (``_s``, ``_ms``, ``_pct``, ``_px``, ``_px_s``, ``_per_min``,
``_count``, ``_flag`` for 0/1 values, ``_ratio`` for a unitless 0-1 value, ``_mbps``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from udfs.contract_models import PAGE_TYPES

#: dtype of every feature and of the feature vector (contract §2, model input contract §3).
FEATURE_DTYPE = np.float32


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its name (unit-suffixed), unit, and how it is computed from a session's events."""

    name: str
    unit: str
    definition: str
    dtype: str = "float32"


FEATURES: tuple[FeatureSpec, ...] = (
    # -- time ------------------------------------------------------------------------------------
    FeatureSpec("session_age_s", "s",
                "ts_ms of the latest applied event minus ts_ms of the first applied event of the session, / 1000"),
    FeatureSpec("time_since_last_event_s", "s",
                "ts_ms of the latest applied event minus ts_ms of the applied event before it, / 1000 "
                "(0 for the first event)"),
    # -- counts ----------------------------------------------------------------------------------
    FeatureSpec("event_count", "count",
                "applied behavioral events in the session (all types except exposure)"),
    FeatureSpec("page_view_count", "count", "applied page_view events in the session"),
    FeatureSpec("product_view_count", "count",
                "applied page_view events whose page.item_id is set (product detail pages), session"),
    FeatureSpec("distinct_product_view_count", "count",
                "distinct page.item_id values among the session's product views (exact up to "
                "SessionConfig.max_tracked_items distinct items, then every further new item counts as new)"),
    FeatureSpec("current_item_view_count", "count",
                "product views in the session of the item on the current page (0 when the current page "
                "has no item_id)"),
    # -- scroll (page scope) ---------------------------------------------------------------------
    FeatureSpec("max_scroll_depth_pct", "pct",
                "max props.scroll_depth_pct (0-100, clamped by the collector) of applied scroll events, "
                "page scope"),
    FeatureSpec("scroll_depth_pct_ema", "pct",
                "exponential moving average of props.scroll_depth_pct over applied scroll events, page "
                "scope (alpha = NoiseConfig.ema_alpha; first value taken as is)"),
    # -- hover -----------------------------------------------------------------------------------
    FeatureSpec("hover_ms_total", "ms", "sum of props.hover_ms of applied hover events, session"),
    FeatureSpec("hover_ms_product_card", "ms",
                "sum of props.hover_ms of applied hover events with element_role product_card, session"),
    FeatureSpec("hover_ms_spec", "ms",
                "sum of props.hover_ms of applied hover events with element_role spec, session"),
    FeatureSpec("hover_ms_max_element", "ms",
                "largest per-element sum of props.hover_ms (dwell on one element_id), session"),
    FeatureSpec("hover_ms_ema", "ms",
                "exponential moving average of props.hover_ms over applied hover events, session"),
    # -- clicks ----------------------------------------------------------------------------------
    FeatureSpec("click_count", "count", "applied click events (after debounce), session"),
    FeatureSpec("click_velocity_per_min", "1/min",
                "applied click events in the trailing 60 s window (= clicks per minute)"),
    FeatureSpec("compare_click_count", "count",
                "applied click events with element_role compare_button, session"),
    # -- attention, forms ------------------------------------------------------------------------
    FeatureSpec("visible_time_on_page_s", "s",
                "largest props.visible_ms of applied visibility events, page scope, / 1000"),
    FeatureSpec("form_interaction_count", "count", "applied form events (any action), session"),
    # -- mouse trajectory ------------------------------------------------------------------------
    FeatureSpec("trajectory_straightness_ema", "ratio",
                "exponential moving average of props.straightness (0-1) of applied mouse_trajectory "
                "events, session"),
    FeatureSpec("trajectory_speed_px_s_ema", "px/s",
                "exponential moving average of props.mean_speed_px_s of applied mouse_trajectory events, "
                "session"),
    # -- conversions so far ----------------------------------------------------------------------
    FeatureSpec("add_to_cart_count", "count", "applied add_to_cart events, session"),
    FeatureSpec("purchase_count", "count", "applied purchase events, session"),
    # -- enrichment: device, viewport, network (from the latest applied event's context) ----------
    FeatureSpec("device_mobile_flag", "0/1", "1 if context.device_class is mobile"),
    FeatureSpec("device_tablet_flag", "0/1", "1 if context.device_class is tablet"),
    FeatureSpec("device_desktop_flag", "0/1", "1 if context.device_class is desktop"),
    FeatureSpec("viewport_w_px", "px", "context.viewport_w_px (0 when unknown)"),
    FeatureSpec("viewport_h_px", "px", "context.viewport_h_px (0 when unknown)"),
    FeatureSpec("network_slow_flag", "0/1",
                "1 if the network class is slow: context.network.effective_type in slow-2g/2g/3g or "
                "save_data is true (classes of the Network Information API, WICG)"),
    FeatureSpec("network_rtt_ms", "ms", "context.network.rtt_ms (0 when unknown)"),
    FeatureSpec("network_downlink_mbps", "Mbit/s", "context.network.downlink_mbps (0 when unknown)"),
    FeatureSpec("visit_count", "count",
                "the visitor's visit number, 1 for a first visit: given to SessionState by the caller "
                "(not derivable from one session's events), 1 when not given"),
    # -- page types (the UCI Online Shoppers page categories; docs/uci-mapping.md) ------------------
    # A page's type: page.type of its page_view; when null, product_related if page.item_id is set,
    # else the page has no type and counts in none of the three.
    *(spec for page_type in PAGE_TYPES for spec in (
        FeatureSpec(f"{page_type}_page_view_count", "count",
                    f"applied page_view events of pages of type {page_type}, session"),
        FeatureSpec(f"{page_type}_page_time_s", "s",
                    f"sum over the session's pages of type {page_type} of the time on the page: ts_ms of the "
                    "next applied page_view (or, for the current page, of the latest applied event) minus "
                    "ts_ms of the page's page_view, / 1000 (Google Analytics' time on page with every "
                    "applied event as a hit)"),
    )),
    # -- cross-session page aggregates (udfs/page_stats.py) ---------------------------------------
    FeatureSpec("page_bounce_rate_mean_ratio", "ratio",
                "mean over the session's applied page_views that carry one of the page's bounce rate "
                "(event field _page_bounce_rate, set by udfs.page_stats.PageStats from other sessions: "
                "sessions that entered on the page and viewed no second page / sessions that entered "
                "on it, trailing window); udfs.session.DEFAULT_PAGE_BOUNCE_RATE (the UCI mean, 0.0222) before any"),
    FeatureSpec("page_exit_rate_mean_ratio", "ratio",
                "mean over the session's applied page_views that carry one of the page's exit rate "
                "(event field _page_exit_rate, udfs.page_stats.PageStats: views of the page not followed "
                "by another page view of the session / views of the page, trailing window); "
                "udfs.session.DEFAULT_PAGE_EXIT_RATE (the UCI mean, 0.0430) before any"),
    # -- calendar, visitor -----------------------------------------------------------------------
    FeatureSpec("weekend_flag", "0/1",
                "1 if the latest applied event's ts_ms falls on a Saturday or Sunday, UTC"),
    FeatureSpec("returning_visitor_flag", "0/1", "1 if visit_count > 1"),
)

#: Feature names in vector order.
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

#: name -> position in the feature vector.
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}

#: Number of features (length of the vector :meth:`udfs.session.SessionState.features` returns).
N_FEATURES: int = len(FEATURES)


def feature_indices(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Positions of ``names`` in the full feature vector, as an ``int64`` array of shape ``(len(names),)``.

    Raises:
        KeyError: a name is not in :data:`FEATURES` (the message lists the unknown names).
    """
    unknown = [n for n in names if n not in FEATURE_INDEX]
    if unknown:
        raise KeyError(f"unknown feature names: {unknown}")
    return np.array([FEATURE_INDEX[n] for n in names], dtype=np.int64)


def as_dict(vector: np.ndarray) -> dict[str, float]:
    """``{name: value}`` for a feature vector of shape ``(N_FEATURES,)``.

    Raises:
        ValueError: the vector does not have shape ``(N_FEATURES,)``.
    """
    if vector.shape != (N_FEATURES,):
        raise ValueError(f"expected shape ({N_FEATURES},), got {vector.shape}")
    return {name: float(v) for name, v in zip(FEATURE_NAMES, vector.tolist())}
