"""Physically plausible ranges of every numeric property of an event (issue 14).

Two layers: the trajectory bounds below (path geometry and speed against the viewport), and
:data:`RANGES`, one documented range per numeric field of ``context`` and of every event type's ``props``
(``tests/unit/test_plausibility_ranges.py`` enumerates the contract's numeric fields and fails when one has
none). An event with a value outside its range is kept exactly as sent (the raw value preserved), flagged
:data:`FLAG_VALUE_IMPLAUSIBLE` by the normalizer, and kept out of the features like an implausible
trajectory (:data:`IMPLAUSIBLE_FLAGS`).

A ``mouse_trajectory`` summary (docs/contracts.md §1) is *implausible* when it could not have been
produced by a person moving a pointer inside the page's viewport. Such an event is kept (the props are
stored exactly as sent: the raw values are preserved), flagged :data:`FLAG_TRAJECTORY_IMPLAUSIBLE` by
the normalizer (:func:`udfs.normalize.normalize_event`), and kept out of the features: the session
state suppresses flagged events with reason :data:`REASON_IMPLAUSIBLE` (``udfs.session``).

The bounds, for a viewport of ``w x h`` px with diagonal ``d = sqrt(w^2 + h^2)``:

* **path geometry**: ``path_length_px <= (sample_count - 1) * d``. Positions are ``clientX/clientY``
  inside the viewport (SDK: ``pointermove`` on the window), so no step between two consecutive samples
  can be longer than the viewport's diagonal. The overflow samples ``(65535, 65535)`` that real
  recorders emit (e.g. the Balabit mouse-dynamics data, docs/data.md) break it at once.
* **speed**: ``mean_speed_px_s <= MAX_VIEWPORT_CROSSINGS_PER_S * d``. A hand cannot oscillate faster
  than :data:`MAX_HAND_OSCILLATION_HZ`, and each oscillation crosses the viewport at most twice, so
  a stretch cannot average more than 2 x 12 = 24 diagonals per second (36,200 px/s on a 1280x800
  viewport; measured SDK stretches average a few hundred to a few thousand px/s).

Without a known viewport the largest common display (:data:`FALLBACK_VIEWPORT_PX`) stands in for it,
so the bound is looser but still excludes the overflow trajectories (1.4 million px/s in issue 14).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Flag added to an event whose trajectory summary is outside the bounds above (normalizer).
FLAG_TRAJECTORY_IMPLAUSIBLE = "trajectory_implausible"

#: Flag added to an event with a numeric property outside its range in :data:`RANGES` (normalizer).
FLAG_VALUE_IMPLAUSIBLE = "value_implausible"

#: Flags that keep an event out of the features (session state suppresses it, reason below).
IMPLAUSIBLE_FLAGS = (FLAG_TRAJECTORY_IMPLAUSIBLE, FLAG_VALUE_IMPLAUSIBLE)

#: Suppression reason of a flagged event (``udfs.session.Outcome.reason``).
REASON_IMPLAUSIBLE = "implausible_value"

#: Fastest oscillation of a hand, Hz: physiological tremor lies at 8-12 Hz and is the fastest
#: rhythmic hand movement there is; voluntary alternating movements are slower (maximal finger
#: tapping ~5-7 Hz). Source: R.J. Elble, "Characteristics of physiologic tremor in young and elderly
#: adults", Clin. Neurophysiol. 2003 (8-12 Hz band). We take the top of the band.
MAX_HAND_OSCILLATION_HZ = 12.0

#: Viewport diagonals a pointer can cross per second at most: two per oscillation.
MAX_VIEWPORT_CROSSINGS_PER_S = 2.0 * MAX_HAND_OSCILLATION_HZ

#: Viewport used when an event carries none, px: 8K UHD (7680x4320), the largest display resolution
#: sold to consumers (ITU-R BT.2020's largest format).
FALLBACK_VIEWPORT_PX = (7680, 4320)


def viewport_diagonal_px(viewport_w_px: Any, viewport_h_px: Any) -> float:
    """Diagonal of the viewport, px; :data:`FALLBACK_VIEWPORT_PX` when either side is unknown or 0."""
    if (not isinstance(viewport_w_px, (int, float)) or not isinstance(viewport_h_px, (int, float))
            or viewport_w_px <= 0 or viewport_h_px <= 0):
        viewport_w_px, viewport_h_px = FALLBACK_VIEWPORT_PX
    return math.hypot(float(viewport_w_px), float(viewport_h_px))


def max_speed_px_s(viewport_w_px: Any, viewport_h_px: Any) -> float:
    """Highest plausible mean pointer speed of a stretch, px/s (module docstring, "speed")."""
    return MAX_VIEWPORT_CROSSINGS_PER_S * viewport_diagonal_px(viewport_w_px, viewport_h_px)


def trajectory_violation(props: Mapping[str, Any], viewport_w_px: Any = None,
                         viewport_h_px: Any = None) -> str | None:
    """Why a ``mouse_trajectory`` summary is physically impossible, or None when it is plausible.

    Args:
        props: the event's props (``path_length_px``, ``mean_speed_px_s``, ``sample_count``; missing or
            non-numeric values are not judged here, the contract checks types).
        viewport_w_px, viewport_h_px: the page's viewport, px (``context``), None when unknown.

    Returns:
        A short human-readable detail naming the bound that was broken, or None.
    """
    diagonal = viewport_diagonal_px(viewport_w_px, viewport_h_px)
    speed = props.get("mean_speed_px_s")
    limit = MAX_VIEWPORT_CROSSINGS_PER_S * diagonal
    if _number(speed) and speed > limit:
        return f"mean_speed_px_s {speed:g} > {limit:.0f} ({MAX_VIEWPORT_CROSSINGS_PER_S:g} viewport diagonals/s)"
    path = props.get("path_length_px")
    samples = props.get("sample_count")
    if _number(path) and _number(samples) and samples >= 1 and path > (samples - 1) * diagonal:
        return (f"path_length_px {path:g} > (sample_count - 1) x viewport diagonal "
                f"= {(samples - 1) * diagonal:.0f}")
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------------ ranges of every numeric field

#: Largest CSS-pixel length a layout can have in Chromium: ``LayoutUnit`` is an int32 with 6 fractional
#: bits, so it saturates at 2**31 / 64 = 33,554,432 px (Chromium, third_party/blink/.../layout_unit.h).
MAX_LAYOUT_PX = 33_554_432

#: Largest viewport or screen side, CSS px: an 8K display (7,680 x 4,320) at 50 % zoom is 15,360 px wide;
#: 16,384 (2**14) leaves room above it. Our choice, from :data:`FALLBACK_VIEWPORT_PX`.
MAX_SCREEN_PX = 16_384

#: Network Information API: Chrome never reports a downlink above 10 Mbps (an anti-fingerprinting cap, MDN
#: browser-compat-data "Downlink") nor an RTT above 3,000 ms, and adds up to 10 % noise before rounding to
#: 25 ms / 25 kbps buckets (WICG/netinfo issue 64): bounds with the noise and one bucket on top.
MAX_DOWNLINK_MBPS = 10.0 * 1.1 + 0.025
MAX_RTT_MS = 3_000 * 1.1 + 25

#: Longest plausible duration of one hover, visible stretch or pointer stretch, ms: a session ends after
#: 30 minutes without an event (``JobConfig.session_ttl_s``, Google Analytics' default), so nothing the
#: SDK measures inside one page view can last longer without the session having ended. Visible time is
#: the exception (a page can stay open and visible while the visitor reads): 24 h, our choice.
MAX_INTERACTION_MS = 1_800_000
MAX_VISIBLE_MS = 86_400_000

#: Highest pointer sampling rate there is, Hz: 8,000 Hz USB polling of gaming mice; a stretch of
#: ``duration_ms`` cannot hold more than ``duration_ms * 8 + 1`` samples.
MAX_POINTER_SAMPLE_HZ = 8_000

#: Largest cart quantity and money amount of one visitor's click, our choice (far above any consumer order;
#: a B2B shop with larger orders raises them).
MAX_QUANTITY = 10_000
MAX_AMOUNT = 1e9

#: ``(scope, field)`` -> ``(low, high, why)``. ``scope`` is ``"context"`` (``context`` and its
#: ``network``) or an event type (its ``props``). A bound is a number, or the name of a relation evaluated
#: per event by :func:`value_violations`: ``"viewport_w"``/``"viewport_h"`` (the event's viewport, else
#: :data:`FALLBACK_VIEWPORT_PX`), ``"document_end"`` (``document_height_px``, else :data:`MAX_LAYOUT_PX`),
#: ``"minus_viewport_h"``, ``"samples_for_duration"``, ``"sample_count"``, ``"jerk"`` (+- the jerk of a
#: sinusoid at :data:`MAX_HAND_OSCILLATION_HZ` with the largest plausible speed: speed x (2 pi f)^2).
RANGES: dict[tuple[str, str], tuple[Any, Any, str]] = {
    ("context", "viewport_w_px"): (0, MAX_SCREEN_PX, "8K at 50 % zoom"),
    ("context", "viewport_h_px"): (0, MAX_SCREEN_PX, "8K at 50 % zoom"),
    ("context", "screen_w_px"): (0, MAX_SCREEN_PX, "8K at 50 % zoom"),
    ("context", "screen_h_px"): (0, MAX_SCREEN_PX, "8K at 50 % zoom"),
    ("context", "rtt_ms"): (0, MAX_RTT_MS, "Chrome's 3,000 ms cap + noise"),
    ("context", "downlink_mbps"): (0, MAX_DOWNLINK_MBPS, "Chrome's 10 Mbps cap + noise"),
    ("click", "x_px"): (0, "viewport_w", "clientX lies inside the viewport"),
    ("click", "y_px"): (0, "viewport_h", "clientY lies inside the viewport"),
    ("scroll", "scroll_depth_pct"): (0, 100, "clamped by the normalizer"),
    ("scroll", "scroll_depth_pct_raw"): (-100, 200, "one viewport of overscroll either way, our choice"),
    ("scroll", "offset_px"): ("minus_viewport_h", "document_end", "scrollY within the document, +- overscroll"),
    ("scroll", "document_height_px"): (0, MAX_LAYOUT_PX, "Chromium LayoutUnit"),
    ("hover", "hover_ms"): (0, MAX_INTERACTION_MS, "30-min session rule"),
    ("visibility", "visible_ms"): (0, MAX_VISIBLE_MS, "24 h, our choice"),
    ("mouse_trajectory", "path_length_px"): (0, None, "bounded against the viewport by trajectory_violation"),
    ("mouse_trajectory", "straightness"): (0, 1, "a ratio of distances"),
    ("mouse_trajectory", "mean_speed_px_s"): (0, None, "bounded against the viewport by trajectory_violation"),
    ("mouse_trajectory", "jerk_px_s3"): ("minus_jerk", "jerk", "sinusoid at the tremor frequency"),
    ("mouse_trajectory", "pause_count"): (0, "sample_count", "a pause is between samples"),
    ("mouse_trajectory", "sample_count"): (1, "samples_for_duration", "8 kHz pointer polling"),
    ("mouse_trajectory", "duration_ms"): (0, MAX_INTERACTION_MS, "30-min session rule"),
    ("add_to_cart", "quantity"): (1, MAX_QUANTITY, "our choice"),
    ("add_to_cart", "price"): (0, MAX_AMOUNT, "our choice"),
    ("purchase", "value"): (0, MAX_AMOUNT, "our choice"),
    ("intent", "intent_score"): (0, 1, "a probability"),
    ("intent", "edge_latency_ms"): (0, MAX_INTERACTION_MS, "30-min session rule"),
}


def _relation(name: Any, props: Mapping[str, Any], context: Mapping[str, Any]) -> float | None:
    if name is None or isinstance(name, (int, float)):
        return name
    vw, vh = context.get("viewport_w_px"), context.get("viewport_h_px")
    vw = vw if _number(vw) and vw > 0 else FALLBACK_VIEWPORT_PX[0]  # each side falls back on its own
    vh = vh if _number(vh) and vh > 0 else FALLBACK_VIEWPORT_PX[1]
    if name == "viewport_w":
        return float(vw)
    if name == "viewport_h":
        return float(vh)
    if name == "minus_viewport_h":
        return -float(vh)
    if name == "document_end":
        doc = props.get("document_height_px")
        return float(doc) + vh if _number(doc) else float(MAX_LAYOUT_PX)
    if name == "sample_count":
        n = props.get("sample_count")
        return float(n) if _number(n) else None
    if name == "samples_for_duration":
        d = props.get("duration_ms")
        return d * MAX_POINTER_SAMPLE_HZ / 1000.0 + 1 if _number(d) else None
    if name in ("jerk", "minus_jerk"):
        bound = max_speed_px_s(vw, vh) * (2 * math.pi * MAX_HAND_OSCILLATION_HZ) ** 2
        return bound if name == "jerk" else -bound
    raise KeyError(f"unknown relation {name!r}")


def value_violations(event_type: str, props: Mapping[str, Any], context: Mapping[str, Any]) -> list[str]:
    """``"scope.field=value"`` for every numeric value of the event outside its :data:`RANGES` entry.

    Args:
        event_type: the event's ``type``; props: its props; context: its context (``network`` nested or
            flat: both are read).
    """
    network = context.get("network") or {}
    out = []
    for (scope, field), (low, high, _why) in RANGES.items():
        if scope == "context":
            value = context.get(field, network.get(field) if isinstance(network, Mapping) else None)
            source = props
        elif scope == event_type:
            value = props.get(field)
            source = props
        else:
            continue
        if not _number(value):
            continue
        lo, hi = _relation(low, source, context), _relation(high, source, context)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            out.append(f"{scope}.{field}={value:g}")
    return out


def ranges_table() -> str:
    """:data:`RANGES` as the markdown table of docs/contracts.md (section "Plausible ranges")."""
    def show(b: Any) -> str:
        return "–" if b is None else (f"{b:,.3g}" if isinstance(b, float) else f"{b:,}" if isinstance(b, int) else f"`{b}`")

    rows = ["| scope | field | low | high | why |", "|---|---|---|---|---|"]
    rows += [f"| {scope} | `{field}` | {show(lo)} | {show(hi)} | {why} |" for (scope, field), (lo, hi, why) in RANGES.items()]
    return "\n".join(rows)
