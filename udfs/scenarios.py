"""Scripted sessions in the event contract, for tests, the demo and benchmarks.

:func:`article_session` is the source article's product-page scenario: a visitor views a laptop,
scrolls to the specs, hovers 3 s on "16GB RAM", then clicks "Compare" (seed article, "Dynamic
Product Page Personalization in E-Commerce").
"""
from __future__ import annotations

from typing import Any

from udfs.contract import make_event

LAPTOP_ITEM_ID = "laptop-pro-14"
LAPTOP_PAGE = {"url": "http://127.0.0.1:8088/demo/", "path": "/demo/", "item_id": LAPTOP_ITEM_ID,
               "content_ids": ["laptop-pro-14:specs", "laptop-pro-14:video-demo"]}
DESKTOP_CONTEXT = {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                 "Chrome/126.0 Safari/537.36",
                   "device_class": "desktop", "viewport_w_px": 1440, "viewport_h_px": 900}


def _session(session_id: str, t0_ms: int, key: str,
             timeline: list[tuple[str, int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Events of a scripted visitor on the laptop page from ``(type, ms after t0, props)`` steps;
    ``seq`` is the step's index and the event id is derived from ``key``, the session and ``seq``."""
    return [make_event(kind, session_id=session_id, client_ts_ms=t0_ms + dt_ms, seq=n,
                       source_key=f"{key}:{session_id}:{n}", page=dict(LAPTOP_PAGE),
                       context=dict(DESKTOP_CONTEXT), props=props)
            for n, (kind, dt_ms, props) in enumerate(timeline)]


def _scroll(depth_pct: float, offset_px: int) -> dict[str, Any]:
    return {"scroll_depth_pct": depth_pct, "scroll_depth_pct_raw": depth_pct, "offset_px": offset_px,
            "document_height_px": 3600}


def article_session(session_id: str, t0_ms: int, key: str = "article") -> list[dict[str, Any]]:
    """The article's visitor as contract events (event time from ``t0_ms``), in order.

    Timeline (ms after ``t0_ms``): page view 0; scroll 35 % at 2000, 75 % at 4000; hover 3000 ms on
    the "16GB RAM" spec ending at 7500; hover 2400 ms on the product card at 9000; compare click at 10000.
    """
    return _session(session_id, t0_ms, key, [
        ("page_view", 0, {"title": "Laptop Pro 14"}),
        ("scroll", 2000, _scroll(35.0, 900)),
        ("scroll", 4000, _scroll(75.0, 2100)),
        ("hover", 7500, {"element_id": "spec-ram-16gb", "element_role": "spec", "hover_ms": 3000}),
        ("hover", 9000, {"element_id": "product-card", "element_role": "product_card", "hover_ms": 2400}),
        ("click", 10000, {"element_id": "compare", "element_role": "compare_button", "x_px": 900, "y_px": 640}),
    ])


def shallow_session(session_id: str, t0_ms: int, key: str = "shallow") -> list[dict[str, Any]]:
    """A visitor who glances at the page: page view, a 10 % scroll, a short hover, 12 s later a scroll."""
    return _session(session_id, t0_ms, key, [
        ("page_view", 0, {"title": "Laptop Pro 14"}),
        ("scroll", 1500, _scroll(10.0, 300)),
        ("hover", 3000, {"element_id": "product-card", "element_role": "product_card", "hover_ms": 400}),
        ("scroll", 12000, _scroll(12.0, 360)),
    ])
