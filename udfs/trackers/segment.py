"""Segment HTTP tracking API (and RudderStack's variant) -> raw SDK-shaped events (docs/contracts.md §6.2).

Input: one message (dict) of ``POST /v1/track``, ``/v1/page``, ``/v1/identify`` (or the one-letter
paths ``/v1/t``, ``/v1/p``, ``/v1/i`` that analytics.js uses) or an item of ``POST /v1/batch``
``{"batch": [...], "sentAt": ...}``. RudderStack's JavaScript SDK sends the same messages (its
``context.library.name`` contains ``Rudder``; source ``rudderstack``, and its ``context.sessionId``).

Envelope:

=========================================  ========================================================
Segment                                    ours
=========================================  ========================================================
``messageId``                              ``source_event_id``; ``event_id`` = it if a UUID, else uuid5 over it
``anonymousId`` / ``userId``               ``anonymous_id`` / ``user_id`` (one of them is required)
``context.sessionId`` (RudderStack),       ``session_id``; without any, ``anonymousId`` (or ``userId``)
``integrations["Actions Amplitude"]        with flag ``session_from_anonymous_id``: Segment has no
.session_id``, ``properties.session_id``   session of its own
``originalTimestamp`` / ``timestamp``      ``client_ts_ms`` (ISO 8601 or epoch ms)
``sentAt`` (message or batch)              ``sent_at_ms`` (the skew correction)
``context.page.url/referrer/title``        ``page.url`` / ``page.referrer`` / page-view ``title``
``context.userAgent``                      ``context.user_agent`` (else the request's User-Agent)
``context.locale`` / ``context.timezone``  ``context.locale`` / ``context.timezone``
``context.screen.width/height``            ``context.screen_w_px`` / ``_h_px``;
``context.screen.innerWidth/innerHeight``  ``context.viewport_w_px`` / ``_h_px``
=========================================  ========================================================

Types: ``page`` -> ``page_view`` (``properties.title``, else ``context.page.title``, else ``name``;
``properties.url`` wins over the context's; the call's ``category``, else ``properties.category``, gives
``page.type`` through ``udfs.contract.PAGE_CATEGORY_TO_TYPE``). ``track`` by ``event`` name (Segment's e-commerce spec v2 and A/B testing spec):

- ``Product Viewed`` -> ``page_view`` with ``page.item_id = product_id``, ``page.type = product_related``;
- ``Product Clicked`` -> ``click`` (``element_id = product_id``, role ``product_card``);
- ``Product Added`` -> ``add_to_cart`` (``product_id`` or ``sku``, ``quantity``, ``price``);
- ``Order Completed`` -> ``purchase`` (``order_id``, ``total`` or ``revenue``, ``currency``, the
  ``products[].product_id``);
- ``Experiment Viewed`` -> ``exposure`` (``experiment_id``, ``variation_id`` or ``variation_name``);
- our names for what Segment's specs have no event for (a page that uses Segment sends these as
  ``track`` calls with our props, units in the names): ``Element Clicked`` -> ``click``,
  ``Element Hovered`` -> ``hover``, ``Page Scrolled`` -> ``scroll``, ``Page Visibility Changed`` ->
  ``visibility``, ``Form Interacted`` -> ``form``, ``Mouse Trajectory`` -> ``mouse_trajectory``.

Any other ``event``, and ``identify``, ``screen``, ``group``, ``alias`` -> ``unmappable`` (the detail
names ``type`` or ``event``). ``properties.product_id`` (product events) gives ``page.item_id``.

Sources: Segment's "HTTP Tracking API", "Spec: Common Fields", "Spec: V2 Ecommerce Events",
"Spec: A/B Testing"; RudderStack's "HTTP API" (same fields).
"""
from __future__ import annotations

from typing import Any

from udfs.contract import ContractError
from udfs.contract_models import page_type_of
from udfs.normalize import to_epoch_ms
from udfs.trackers import Item, Mapped, Rejected, event_id_for

#: track ``event`` -> our type for the names that carry our props unchanged (see module docstring).
OUR_TRACK_EVENTS: dict[str, str] = {
    "Element Clicked": "click",
    "Element Hovered": "hover",
    "Page Scrolled": "scroll",
    "Page Visibility Changed": "visibility",
    "Form Interacted": "form",
    "Mouse Trajectory": "mouse_trajectory",
}
#: track ``event`` names of Segment's specs that we map (see module docstring).
SPEC_TRACK_EVENTS = ("Product Viewed", "Product Clicked", "Product Added", "Order Completed", "Experiment Viewed")


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def split_body(body: Any) -> tuple[list[Any], Any, str | None]:
    """``(messages, batch sentAt, body writeKey)`` of a request body: ``{"batch": [...]}`` or one message.

    Raises:
        ValueError: neither a batch nor a message object.
    """
    if not isinstance(body, dict):
        raise ValueError("expected a message object or {batch: [...]}")
    key = body.get("writeKey") if isinstance(body.get("writeKey"), str) else None
    if "batch" in body:
        if not isinstance(body["batch"], list):
            raise ValueError("`batch` must be a list of messages")
        return body["batch"], body.get("sentAt"), key
    return [body], None, key


def source_of(msg: dict) -> str:
    """``rudderstack`` when ``context.library.name`` names RudderStack, else ``segment``."""
    ctx = msg.get("context")
    lib = ctx.get("library") if isinstance(ctx, dict) else None
    name = lib.get("name") if isinstance(lib, dict) else None
    return "rudderstack" if isinstance(name, str) and "rudder" in name.lower() else "segment"


def _ms(value: Any, field: str) -> int:
    try:
        return to_epoch_ms(value)[0]
    except ContractError:
        raise _Reject("bad_timestamp", f"{field}={str(value)[:60]!r}: not ISO 8601 or epoch ms") from None


def _obj(msg: dict, key: str, where: str = "") -> dict:
    v = msg.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _Reject("wrong_type", f"{where}{key}: expected an object, got {type(v).__name__}")
    return v


def _id(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, str) else str(v)


def _session(msg: dict, ctx: dict, props: dict) -> tuple[str | None, bool]:
    """``(session_id, taken_from_anonymous_id)``."""
    amplitude = _obj(msg, "integrations").get("Actions Amplitude")
    for v in (ctx.get("sessionId"), amplitude.get("session_id") if isinstance(amplitude, dict) else None,
              props.get("session_id")):
        if v is not None and v != "" and not isinstance(v, (dict, list, bool)):
            return str(v), False
    return _id(msg.get("anonymousId")) or _id(msg.get("userId")), True


def _track(name: str, props: dict, page: dict) -> tuple[str, dict]:
    if name in OUR_TRACK_EVENTS:
        return OUR_TRACK_EVENTS[name], dict(props)
    product_id = _id(props.get("product_id")) or _id(props.get("sku"))
    if name == "Product Viewed":
        if product_id:
            page["item_id"] = product_id
        page["type"] = "product_related"
        return "page_view", {"title": props.get("name")}
    if name == "Product Clicked":
        return "click", {"element_id": product_id, "element_role": "product_card"}
    if name == "Product Added":
        if not product_id:
            raise _Reject("missing_field", "segment properties.product_id (or sku) of 'Product Added'")
        return "add_to_cart", {"item_id": product_id, "quantity": props.get("quantity") or 1,
                               "price": props.get("price")}
    if name == "Order Completed":
        products = props.get("products") or []
        if not isinstance(products, list):
            raise _Reject("wrong_type", "segment properties.products: expected a list")
        items = [_id(p.get("product_id") or p.get("sku")) for p in products if isinstance(p, dict)]
        value = props.get("total") if props.get("total") is not None else props.get("revenue")
        return "purchase", {"order_id": _id(props.get("order_id")), "value": value,
                            "currency": props.get("currency"), "item_ids": [i for i in items if i]}
    if name == "Experiment Viewed":
        exp, variant = _id(props.get("experiment_id")), _id(props.get("variation_id") or props.get("variation_name"))
        if not exp or not variant:
            raise _Reject("missing_field", "segment properties.experiment_id / variation_id of 'Experiment Viewed'")
        return "exposure", {"experiment_id": exp, "variant": variant, "content_id": _id(props.get("content_id"))}
    raise _Reject("unmappable", f"segment event={name[:100]!r}: not an event we map "
                                f"({', '.join(SPEC_TRACK_EVENTS + tuple(OUR_TRACK_EVENTS))})")


def map_message(msg: Any, *, batch_sent_at: Any = None, default_type: str | None = None) -> Item:
    """Map one Segment/RudderStack message to a :class:`Mapped` or :class:`Rejected` item.

    ``default_type``: the type a single-message path names (``/v1/track`` -> ``track``) for a message
    without its own ``type``."""
    if not isinstance(msg, dict):
        return Rejected("not_an_object", f"segment message: expected an object, got {type(msg).__name__}", msg)
    mid = _id(msg.get("messageId"))
    try:
        return _map(msg, mid, batch_sent_at, default_type)
    except _Reject as rej:
        return Rejected(rej.reason, rej.detail, msg, mid)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:  # a shape no rule above expected
        return Rejected("wrong_type", f"{source_of(msg)} message: {type(exc).__name__}: {exc}"[:300], msg, mid)


def _map(msg: dict, mid: str | None, batch_sent_at: Any, default_type: str | None) -> Mapped:
    source = source_of(msg)
    if mid is None:
        raise _Reject("missing_field", f"{source} messageId")
    mtype = msg.get("type") or default_type
    if not isinstance(mtype, str):
        raise _Reject("missing_field", f"{source} type")
    if mtype not in ("page", "track"):
        raise _Reject("unmappable", f"{source} type={mtype[:40]!r}: no event in our contract (we map page and track)")
    ctx = _obj(msg, "context")
    props = _obj(msg, "properties")
    cpage = _obj(ctx, "page", "context.")
    session_id, from_anon = _session(msg, ctx, props)
    if session_id is None:
        raise _Reject("missing_field", f"{source} anonymousId or userId")
    ts_value = msg.get("originalTimestamp") or msg.get("timestamp")
    if ts_value is None:
        raise _Reject("missing_field", f"{source} timestamp (or originalTimestamp)")
    client_ts_ms = _ms(ts_value, f"{source} timestamp")
    sent = msg.get("sentAt") or batch_sent_at
    sent_at_ms = _ms(sent, f"{source} sentAt") if sent else None
    page: dict[str, Any] = {"url": _id(cpage.get("url")), "path": _id(cpage.get("path")),
                            "referrer": _id(cpage.get("referrer"))}
    if mtype == "page" and props.get("url"):  # the page call's own url wins; the path is recomputed from it
        page["url"], page["path"] = _id(props["url"]), None
    screen = _obj(ctx, "screen", "context.")
    context: dict[str, Any] = {"user_agent": _id(ctx.get("userAgent")), "locale": _id(ctx.get("locale")),
                               "timezone": _id(ctx.get("timezone")),
                               "screen_w_px": screen.get("width"), "screen_h_px": screen.get("height"),
                               "viewport_w_px": screen.get("innerWidth"), "viewport_h_px": screen.get("innerHeight")}
    if mtype == "page":
        title = _id(props.get("title")) or _id(cpage.get("title")) or _id(msg.get("name"))
        etype, eprops = "page_view", {"title": title}
        page_type = page_type_of(msg.get("category")) or page_type_of(props.get("category"))
        if page_type:  # the page call's category (Segment spec), mapped by udfs.contract.PAGE_CATEGORY_TO_TYPE
            page["type"] = page_type
    else:
        name = msg.get("event")
        if not isinstance(name, str) or not name:
            raise _Reject("missing_field", f"{source} event (name of a track call)")
        etype, eprops = _track(name, props, page)
    raw = {"type": etype, "event_id": event_id_for(source, mid), "session_id": session_id,
           "anonymous_id": _id(msg.get("anonymousId")) or session_id, "user_id": _id(msg.get("userId")),
           "client_ts_ms": client_ts_ms, "page": page, "context": context, "props": eprops}
    return Mapped(raw, source, mid, sent_at_ms, msg, ("session_from_anonymous_id",) if from_anon else ())


#: single-message paths -> the type they name (Segment's HTTP API and analytics.js's short paths)
PATH_TYPES = {"/v1/track": "track", "/v1/t": "track", "/v1/page": "page", "/v1/p": "page",
              "/v1/identify": "identify", "/v1/i": "identify"}


def map_body(body: Any, *, path: str | None = None) -> tuple[list[Item], str | None]:
    """``(items, body writeKey)`` of one request body (batch or single message); ``path`` (e.g.
    ``/v1/track``) gives the type of messages that do not name one (:data:`PATH_TYPES`).

    Raises:
        ValueError: the body is neither a message nor ``{batch: [...]}``.
    """
    messages, batch_sent_at, key = split_body(body)
    default_type = PATH_TYPES.get(path or "")
    return [map_message(m, batch_sent_at=batch_sent_at, default_type=default_type) for m in messages], key
