"""Noise filtering of one session's behavioral signals.

Three mechanisms, as the source article asks ("remove spurious events using moving averages and
threshold-based suppression (e.g. ignore single rapid clicks below 500ms)", ``shared/seed/``):

* **debounce**: a click on the same element less than ``click_debounce_ms`` after the previous click
  on that element is suppressed (classic debounce: the reference is the previous click whether it
  was applied or suppressed, so a burst of rapid clicks counts once);
* **threshold suppression** of tiny or accidental signals: hovers shorter than ``hover_min_ms``,
  mouse trajectories with fewer than ``trajectory_min_samples`` samples, scroll events that move less
  than ``scroll_min_delta_pct`` from the previous applied scroll on the page, events the collector marked as
  bot traffic;
* **moving-average smoothing**: :func:`ema` with ``ema_alpha``, used by :mod:`udfs.session` for the
  hover, scroll and trajectory features.

:class:`NoiseFilter` holds the little per-session state these need; :class:`udfs.session.SessionState`
owns one. Decisions depend only on the session's earlier events (event-time order).
"""
from __future__ import annotations

from dataclasses import dataclass

from udfs.interning import interned_keys

#: Suppression reasons (the ``reason`` of a suppressed :class:`udfs.session.Outcome`).
REASON_DEBOUNCED_CLICK = "debounced_click"
REASON_HOVER_TOO_SHORT = "hover_too_short"
REASON_TRAJECTORY_TOO_FEW_SAMPLES = "trajectory_too_few_samples"
REASON_SCROLL_TOO_SMALL = "scroll_delta_too_small"
REASON_BOT = "bot"


@dataclass(frozen=True)
class NoiseConfig:
    """Parameters of the noise filter, each with the source of its default.

    Attributes:
        click_debounce_ms: a click on the same element less than this many ms after the previous
            click on it is suppressed. Default 500 ms: the source article ("ignore single rapid
            clicks below 500ms", ``shared/seed/000_3c3ebd6b7dd12e7f.txt``).
        hover_min_ms: hovers with ``hover_ms`` below this are suppressed as the pointer passing
            through. Default 100 ms: the polling interval jQuery hoverIntent (B. Cherne) uses to tell
            a deliberate hover from a pass-over (its ``interval`` option, default 100).
        trajectory_min_samples: mouse_trajectory summaries built from fewer samples are suppressed.
            Default 4: ``jerk_px_s3`` is the third derivative of position, which needs at least four
            position samples to be defined (finite differences); fewer samples make the summary's
            straightness and speed unreliable too.
        scroll_min_delta_pct: a scroll event whose ``scroll_depth_pct`` differs from the previous
            *applied* scroll event on the same page by less than this is suppressed (so a slow,
            creeping scroll still registers once it has moved this far). Default 1.0 pct: our
            choice, the resolution of the depth thresholds the rules use (whole percents, e.g. 70).
            The first scroll event of a page is always applied.
        ema_alpha: weight of the newest value in the exponential moving averages (hover, scroll,
            trajectory). Default 1/3 = 2/(span+1) with a span of 5 events (pandas ``ewm(span=5)``
            convention): our choice, not measured; a span of 5 damps a single outlier to a third.
        drop_bot_events: suppress events whose ``context.is_bot`` is true. Default True: bot traffic
            (the collector's ``bot_user_agent`` flag) is not a shopper's signal.
        max_tracked_click_elements: bound on the per-session table of last-click times (elements
            clicked within the debounce window are all that matter; older entries are pruned when
            the table grows past this). Default 64: our choice, bounds the pickled state size.
    Raises:
        ValueError: (at construction) a parameter is out of range.
    """

    click_debounce_ms: int = 500
    hover_min_ms: int = 100
    trajectory_min_samples: int = 4
    scroll_min_delta_pct: float = 1.0
    ema_alpha: float = 1.0 / 3.0
    drop_bot_events: bool = True
    max_tracked_click_elements: int = 64

    def __post_init__(self) -> None:
        if self.click_debounce_ms < 0:
            raise ValueError("click_debounce_ms must be >= 0")
        if self.hover_min_ms < 0:
            raise ValueError("hover_min_ms must be >= 0")
        if self.trajectory_min_samples < 0:
            raise ValueError("trajectory_min_samples must be >= 0")
        if self.scroll_min_delta_pct < 0:
            raise ValueError("scroll_min_delta_pct must be >= 0")
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ValueError("ema_alpha must be in (0, 1]")
        if self.max_tracked_click_elements < 1:
            raise ValueError("max_tracked_click_elements must be >= 1")


DEFAULT_NOISE_CONFIG = NoiseConfig()


def ema(previous: float | None, value: float, alpha: float) -> float:
    """Exponential moving average step: ``alpha * value + (1 - alpha) * previous``.

    ``previous=None`` (no value yet) returns ``value`` itself, so the first sample is taken as is.
    """
    if previous is None:
        return value
    return alpha * value + (1.0 - alpha) * previous


def click_element_key(props: dict) -> str:
    """The identity of a clicked element for debouncing: ``element_id``, else the click position."""
    element_id = props.get("element_id")
    if element_id:
        return element_id
    return f"@{props.get('x_px')},{props.get('y_px')}"


class NoiseFilter:
    """Per-session state of the noise filter; :meth:`check` decides one event.

    Call :meth:`check` for each event of the session in event-time order, and :meth:`new_page` when a
    page view is applied. Picklable, small (bounded by ``max_tracked_click_elements``).
    """

    __slots__ = ("config", "_last_click_ts_ms", "_last_scroll_pct")

    def __init__(self, config: NoiseConfig = DEFAULT_NOISE_CONFIG) -> None:
        self.config = config
        self._last_click_ts_ms: dict[str, int] = {}
        self._last_scroll_pct: float | None = None

    def __getstate__(self):
        cfg = self.config
        cfg = None if cfg is DEFAULT_NOISE_CONFIG or cfg == DEFAULT_NOISE_CONFIG else cfg
        return (cfg, self._last_click_ts_ms, self._last_scroll_pct)

    def __setstate__(self, state) -> None:
        cfg, clicks, self._last_scroll_pct = state
        # element ids shared with every other restored session (udfs/interning.py)
        self._last_click_ts_ms = interned_keys(clicks) if clicks else {}
        self.config = DEFAULT_NOISE_CONFIG if cfg is None else cfg

    def new_page(self) -> None:
        """Start a new page (scroll deltas are measured within a page)."""
        self._last_scroll_pct = None

    def check(self, event_type: str, ts_ms: int, props: dict, context: dict | None) -> str | None:
        """Decide one event: ``None`` to apply it, else the suppression reason (``REASON_*``).

        Updates the filter's own state (last click per element, last scroll depth), so call it once
        per event, in event-time order.
        """
        cfg = self.config
        if cfg.drop_bot_events and context and context.get("is_bot"):
            return REASON_BOT
        if event_type == "click":
            key = click_element_key(props)
            table = self._last_click_ts_ms
            previous = table.get(key)
            table[key] = ts_ms
            if len(table) > cfg.max_tracked_click_elements:
                horizon = ts_ms - cfg.click_debounce_ms
                for k in [k for k, t in table.items() if t <= horizon]:
                    del table[k]
            if previous is not None and ts_ms - previous < cfg.click_debounce_ms:
                return REASON_DEBOUNCED_CLICK
            return None
        if event_type == "hover":
            if (props.get("hover_ms") or 0) < cfg.hover_min_ms:
                return REASON_HOVER_TOO_SHORT
            return None
        if event_type == "mouse_trajectory":
            if (props.get("sample_count") or 0) < cfg.trajectory_min_samples:
                return REASON_TRAJECTORY_TOO_FEW_SAMPLES
            return None
        if event_type == "scroll":
            depth = float(props.get("scroll_depth_pct") or 0.0)
            last = self._last_scroll_pct
            if last is not None and abs(depth - last) < cfg.scroll_min_delta_pct:
                return REASON_SCROLL_TOO_SMALL
            self._last_scroll_pct = depth
            return None
        return None
