"""SIMULATION: seeded visitors whose conversion depends on the layout they were served.

There is no public data set of visitors responding to layouts, so the closed loop (assignment ->
decision -> exposure -> conversion -> lift) is proven on simulated visitors. Everything here is made
up and labelled so: the response model below is the *only* place where the simulated effect of a layout
is written, and every report of a simulated run says SIMULATION (intentflow/experiments_cmd.py, for
experiment ids starting with ``simulation``).

A visitor (:func:`visitor_plan`) is one of two scripted kinds of udfs/scenarios.py — ``deep`` (the source
article's visitor: scroll 75 %, hover 3 s on a spec, compare; the rules serve the video demo or a re-rank)
or ``shallow`` (a glance: 10 % scroll, then idle for 12 s; the rules serve the simplified layout) — with
its own anonymous id and one session. After its events it asks the decision API, renders what it was
served (or the default layout in the holdout), logs that ``exposure``, and converts with the probability
of :data:`CONVERSION_PROBABILITY` for that layout, drawn from its own seeded uniform number.

A second, optional response model (:data:`THRESHOLD_RESPONSES`, chosen with ``intentflow simulate
--response``) lets the conversion of a visitor depend on the *adaptive threshold* it was judged by
instead: the threshold value of the variant its action names (``params.experiment_id`` and
``params.variant``, as the job records them, looked up in the ruleset that version came from). It is
what the closed loop of ``intentflow simulate --adapt-every-s`` is proven on: one model has a best
threshold value the adaptation must find, the other none (it must not move).
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ADAPTIVE_RULE_ID",
    "CONVERSION_PROBABILITY",
    "DEFAULT_LAYOUT",
    "LAYOUT_RESPONSE",
    "RESPONSES",
    "THRESHOLD_RESPONSES",
    "VisitorPlan",
    "best_threshold",
    "conversion_probability",
    "deep_share",
    "threshold_conversion_probability",
    "true_lift",
    "visitor_plan",
]

DEFAULT_LAYOUT = "default"

#: SIMULATION response model: P(purchase | layout served, after its exposure). Made-up numbers: 10 % on
#: the default layout, 16 % on any personalized one (a built-in absolute lift of +6 pp, relative +60 %).
CONVERSION_PROBABILITY: dict[str, float] = {
    DEFAULT_LAYOUT: 0.10,
    "show_video_demo_and_price_comparison": 0.16,
    "rerank_towards_item": 0.16,
    "simplify_layout": 0.16,
}

#: Share of ``deep`` visitors (the rest are ``shallow``). Our choice.
DEEP_SHARE = 0.5

#: The response model of :data:`CONVERSION_PROBABILITY` (by layout served), the default.
LAYOUT_RESPONSE = "layout"

#: The adaptive rule of rules/default.v1.json the threshold response models are about: it serves
#: ``simplify_layout`` when ``max_scroll_depth_pct < value`` (value 25, adaptive within 10..40 in steps of
#: 5, 20 % of visitors explore value - 5 or value + 5).
ADAPTIVE_RULE_ID = "shallow_engagement"

#: SIMULATION response models of the adaptive threshold: P(purchase | the ``shallow_engagement``
#: scroll-depth threshold, %, of the variant the visitor was judged by). Made-up numbers, chosen large so
#: that a move happens within a few thousand sessions (pure-code check: tests/unit/test_simulation_model.py):
#:
#: * ``threshold-peaked``: best value 35. 5 % at 25 (the default) and below, 25 % at 30 (+20 pp over 25),
#:   50 % at 35 (+25 pp over 30), 25 % at 40 (-25 pp under 35). From 25 the adaptation must move 25 -> 30
#:   -> 35 and stay (at 35 both neighbours are 25 pp worse).
#: * ``threshold-flat``: 25 % at every value: no best value, the threshold must stay where it is.
#:
#: The simulated shallow visitor scrolls at most 12 %, so every value from 15 up judges it shallow; at 10
#: the rule does not fire for it (no action, no exposure, no purchase), hence no entry for 10 (a run
#: whose threshold came down to 15 would leave its ``lower`` variant's visitors undecided).
#: Visitors whose action does not come from the adaptive rule (the holdout's default layout) convert by
#: :data:`CONVERSION_PROBABILITY`.
THRESHOLD_RESPONSES: dict[str, dict[float, float]] = {
    "threshold-peaked": {15.0: 0.05, 20.0: 0.05, 25.0: 0.05, 30.0: 0.25, 35.0: 0.50, 40.0: 0.25},
    "threshold-flat": {15.0: 0.25, 20.0: 0.25, 25.0: 0.25, 30.0: 0.25, 35.0: 0.25, 40.0: 0.25},
}

#: Every response model ``intentflow simulate --response`` accepts.
RESPONSES: tuple[str, ...] = (LAYOUT_RESPONSE, *THRESHOLD_RESPONSES)


def deep_share(response: str = LAYOUT_RESPONSE) -> float:
    """Share of ``deep`` visitors in a run with ``response``: :data:`DEEP_SHARE` for the layout model, 0
    for a threshold model (every visitor is one the adaptive rule judges: a deep visitor is decided by
    ``deep_engagement`` and would only dilute the comparison of the threshold's variants, which counts
    every session assigned to a variant). Raises KeyError for an unknown response model."""
    if response == LAYOUT_RESPONSE:
        return DEEP_SHARE
    THRESHOLD_RESPONSES[response]  # noqa: B018 - the KeyError for an unknown model
    return 0.0


def threshold_conversion_probability(response: str, threshold: float) -> float:
    """P(purchase) of a simulated visitor judged by the adaptive threshold value ``threshold`` (scroll
    depth, %) under the threshold model ``response``. Raises KeyError for an unknown model or a value the
    model does not know."""
    return THRESHOLD_RESPONSES[response][float(threshold)]


def best_threshold(response: str) -> float | None:
    """The threshold value with the highest conversion probability under ``response``, or None when no
    value is better than every other (the flat model). Raises KeyError for an unknown model."""
    model = THRESHOLD_RESPONSES[response]
    top = max(model.values())
    best = [value for value, p in model.items() if p == top]
    return best[0] if len(best) == 1 else None


def conversion_probability(layout: str) -> float:
    """P(purchase) of a simulated visitor served ``layout`` (an action name or ``"default"``).
    Raises KeyError for a layout the response model does not know."""
    return CONVERSION_PROBABILITY[layout]


def true_lift(model: Mapping[str, float] = CONVERSION_PROBABILITY) -> float:
    """The absolute lift built into the response model: mean P over the personalized layouts minus P of
    the default. Raises ValueError when the personalized layouts disagree (no single true lift)."""
    personalized = {p for layout, p in model.items() if layout != DEFAULT_LAYOUT}
    if len(personalized) != 1:
        raise ValueError(f"personalized layouts have different conversion probabilities: {sorted(personalized)}")
    return personalized.pop() - model[DEFAULT_LAYOUT]


@dataclass(frozen=True)
class VisitorPlan:
    """One simulated visitor: ids, kind, the behavioral timeline ``(type, ms after start, props)``, and
    its uniform number ``u`` in [0, 1) (converts when ``u < conversion_probability(layout)``)."""

    index: int
    anonymous_id: str
    session_id: str
    kind: str
    timeline: list[tuple[str, int, dict[str, Any]]]
    u: float

    @property
    def span_ms(self) -> int:
        """Event time from the first to the last behavioral event, ms."""
        return self.timeline[-1][1]


def _scroll(depth_pct: float, offset_px: int) -> dict[str, Any]:
    return {"scroll_depth_pct": depth_pct, "scroll_depth_pct_raw": depth_pct, "offset_px": offset_px,
            "document_height_px": 3600}


_DEEP = [
    ("page_view", 0, {"title": "Laptop Pro 14"}),
    ("scroll", 2000, _scroll(35.0, 900)),
    ("scroll", 4000, _scroll(75.0, 2100)),
    ("hover", 7500, {"element_id": "spec-ram-16gb", "element_role": "spec", "hover_ms": 3000}),
    ("hover", 9000, {"element_id": "product-card", "element_role": "product_card", "hover_ms": 2400}),
    ("click", 10000, {"element_id": "compare", "element_role": "compare_button", "x_px": 900, "y_px": 640}),
]
_SHALLOW = [
    ("page_view", 0, {"title": "Laptop Pro 14"}),
    ("scroll", 1500, _scroll(10.0, 300)),
    ("hover", 3000, {"element_id": "product-card", "element_role": "product_card", "hover_ms": 400}),
    ("scroll", 12000, _scroll(12.0, 360)),
]


def visitor_plan(seed: int, index: int, run_id: str = "sim", deep_share: float = DEEP_SHARE) -> VisitorPlan:
    """The ``index``-th visitor of a seeded run: the same ``(seed, index, run_id, deep_share)`` gives the same
    visitor; ``deep_share`` in [0, 1] is the probability of the ``deep`` kind (the draw ``u`` does not
    depend on it). Ids: ``"{run_id}-{seed}-{index}"`` prefixed ``a-`` (anonymous id) and ``s-`` (session id)."""
    rng = random.Random(f"{run_id}:{seed}:{index}")
    kind = "deep" if rng.random() < deep_share else "shallow"
    base = f"{run_id}-{seed}-{index}"
    timeline = [(t, ms, dict(props)) for t, ms, props in (_DEEP if kind == "deep" else _SHALLOW)]
    return VisitorPlan(index, f"a-{base}", f"s-{base}", kind, timeline, rng.random())
