"""Physically plausible ranges of pointer measurements (issue 14: impossible trajectories).

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

#: Flags that keep an event out of the features (session state suppresses it, reason below).
IMPLAUSIBLE_FLAGS = (FLAG_TRAJECTORY_IMPLAUSIBLE,)

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
