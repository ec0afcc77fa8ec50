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
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONVERSION_PROBABILITY",
    "DEFAULT_LAYOUT",
    "VisitorPlan",
    "conversion_probability",
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


def visitor_plan(seed: int, index: int, run_id: str = "sim") -> VisitorPlan:
    """The ``index``-th visitor of a seeded run: the same ``(seed, index, run_id)`` gives the same visitor.
    Ids: ``"{run_id}-{seed}-{index}"`` prefixed ``a-`` (anonymous id) and ``s-`` (session id)."""
    rng = random.Random(f"{run_id}:{seed}:{index}")
    kind = "deep" if rng.random() < DEEP_SHARE else "shallow"
    base = f"{run_id}-{seed}-{index}"
    timeline = [(t, ms, dict(props)) for t, ms, props in (_DEEP if kind == "deep" else _SHALLOW)]
    return VisitorPlan(index, f"a-{base}", f"s-{base}", kind, timeline, rng.random())
