"""Snowplow tracker protocol -> raw SDK-shaped events (docs/contracts.md §6.1).

Input: one ``payload_data`` event, a dict of **strings** (Snowplow ``payload_data`` schema 1-0-4): the
items of a ``POST /com.snowplowanalytics.snowplow/tp2`` body
``{"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": [...]}``
or the query string of a ``GET /i`` pixel request.

Envelope (every event):

==================  =================================================================================
Snowplow            ours
==================  =================================================================================
``eid``             ``event_id`` (a UUID) and ``source_event_id``; missing -> ``missing_field``
``sid``             ``session_id`` (the tracker's session cookie); missing -> ``missing_field``
``duid``            ``anonymous_id`` (domain user id); missing -> ``session_id``
``uid``             ``user_id``
``ttm`` / ``dtm``   ``client_ts_ms`` (true timestamp if set, else device-created time; epoch ms strings)
``stm``             ``sent_at_ms`` (device-sent time): the collector's clock-skew correction uses it
``url``/``refr``    ``page.url`` / ``page.referrer`` (``page.path`` from the url)
``vp`` / ``res``    ``context.viewport_w_px``/``_h_px`` / ``context.screen_w_px``/``_h_px`` (``"WxH"``)
``ds``              document size ``"WxH"``: the height is ``props.document_height_px`` of a scroll
``ua``              ``context.user_agent`` (else the request's User-Agent)
``lang`` / ``tz``   ``context.locale`` / ``context.timezone``
``co`` / ``cx``     contexts (JSON / base64url JSON); the ecommerce ``product`` entity's ``id`` is
                    ``page.item_id``; ``dev.intentflow/page`` gives ``item_id``, ``content_ids`` and
                    ``page.type`` (its ``type`` or ``category`` through ``udfs.contract.page_type_of``)
==================  =================================================================================

Event types (``e``):

- ``pv`` -> ``page_view`` (``page`` -> ``props.title``);
- ``pp`` (page ping of activity tracking) -> ``scroll``: ``offset_px = pp_may`` (the deepest vertical
  offset in the ping's interval; absent = 0, the tracker leaves zeros out),
  ``scroll_depth_pct = (pp_may + viewport height) / document height``; without ``vp`` or ``ds`` ->
  ``scroll_depth_not_a_number``;
- ``se`` (structured event) -> by ``se_ac`` (case-insensitive): ``click`` -> ``click``, ``hover`` ->
  ``hover``, ``add_to_cart`` / ``add-to-basket`` -> ``add_to_cart``; ``se_la`` is the element id (the
  item id for a cart add), ``se_pr`` the element role (the quantity for a cart add), ``se_va`` the
  hover duration in ms (the price for a cart add); other actions -> ``unmappable``;
- ``ue`` (self-describing event, ``ue_pr`` JSON or ``ue_px`` base64url) -> by the inner schema's
  vendor/name (any version): ``com.snowplowanalytics.snowplow/link_click`` and ``button_click`` ->
  ``click``; ``focus_form`` / ``change_form`` / ``submit_form`` -> ``form`` (``focus``/``change``/
  ``submit``; the typed ``value`` is never kept); ``add_to_cart`` -> ``add_to_cart``;
  ``com.snowplowanalytics.snowplow.ecommerce/snowplow_ecommerce_action`` of type ``add_to_cart`` /
  ``transaction`` -> ``add_to_cart`` / ``purchase``; ``dev.intentflow/<type>`` -> our ``<type>`` with the
  data as props (how a Snowplow page sends what Snowplow does not capture: hover, mouse trajectories);
  any other schema -> ``unmappable``;
- ``tr`` (legacy transaction) -> ``purchase`` (``tr_id``, ``tr_tt``, ``tr_cu``); ``ti``, ``ad``, ... ->
  ``unmappable`` (the detail names ``e``).

Sources: Snowplow's "Snowplow Tracker Protocol" reference and the Iglu schemas named above.
"""
from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import orjson

from udfs.contract_models import page_type_of
from udfs.trackers import Item, Mapped, Rejected, event_id_for

SOURCE = "snowplow"
#: Iglu schema of the tp2 POST body.
PAYLOAD_DATA_SCHEMA_PREFIX = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-"
#: Our own Iglu vendor for signals Snowplow does not capture (docs/contracts.md §6.1).
INTENTFLOW_VENDOR = "dev.intentflow"

_FORM_ACTIONS = {"focus_form": "focus", "change_form": "change", "submit_form": "submit"}
_SE_CART_ACTIONS = {"add_to_cart", "add-to-cart", "add-to-basket", "add_to_basket"}


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def split_post_body(body: Any) -> list[Any]:
    """The ``data`` list of a tp2 POST body.

    Raises:
        ValueError: the body is not ``{"schema": "iglu:...payload_data/jsonschema/1-*", "data": [..]}``.
    """
    if not isinstance(body, dict):
        raise ValueError("expected a payload_data object {schema, data}")
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.startswith(PAYLOAD_DATA_SCHEMA_PREFIX):
        raise ValueError(f"schema must be {PAYLOAD_DATA_SCHEMA_PREFIX}*, got {str(schema)[:120]!r}")
    data = body.get("data")
    if not isinstance(data, list):
        raise ValueError("`data` must be a list of events")
    return data


def _int(p: dict, key: str, reason: str = "wrong_type") -> int | None:
    v = p.get(key)
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise _Reject(reason, f"snowplow {key}={str(v)[:60]!r}: not a number") from None
    if not math.isfinite(f):
        raise _Reject(reason, f"snowplow {key}={str(v)[:60]!r}: not finite")
    return int(round(f))


def _float(v: Any, field: str) -> float | None:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise _Reject("wrong_type", f"snowplow {field}={str(v)[:60]!r}: not a number") from None
    if not math.isfinite(f):
        raise _Reject("wrong_type", f"snowplow {field}={str(v)[:60]!r}: not finite")
    return f


def _size(p: dict, key: str) -> tuple[int, int] | None:
    """``"1280x800"`` -> (1280, 800); missing -> None; anything else -> wrong_type."""
    v = p.get(key)
    if v is None or v == "":
        return None
    parts = str(v).lower().split("x")
    try:
        w, h = int(parts[0]), int(parts[1])
        if len(parts) != 2 or w < 0 or h < 0:
            raise ValueError
    except (ValueError, IndexError):
        raise _Reject("wrong_type", f"snowplow {key}={str(v)[:60]!r}: expected 'WIDTHxHEIGHT' in px") from None
    return w, h


def _json_field(p: dict, plain: str, encoded: str) -> Any:
    """The JSON of ``p[plain]`` or base64url ``p[encoded]`` (padding optional); None when neither is set."""
    if p.get(plain):
        try:
            return orjson.loads(p[plain])
        except (orjson.JSONDecodeError, TypeError):
            raise _Reject("wrong_type", f"snowplow {plain}: not JSON") from None
    if p.get(encoded):
        text = str(p[encoded])
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            return orjson.loads(raw)
        except (binascii.Error, ValueError):
            raise _Reject("wrong_type", f"snowplow {encoded}: not base64url-encoded JSON") from None
    return None


def _schema_name(schema: Any, field: str) -> tuple[str, str]:
    """``iglu:vendor/name/jsonschema/1-0-0`` -> ``(vendor, name)``."""
    if not isinstance(schema, str) or not schema.startswith("iglu:") or schema.count("/") < 3:
        raise _Reject("wrong_type", f"snowplow {field}.schema={str(schema)[:120]!r}: not an iglu URI")
    vendor, name = schema[5:].split("/")[:2]
    return vendor, name


def _contexts(p: dict) -> list[tuple[str, str, dict]]:
    """Context entities ``[(vendor, name, data)]`` from ``co`` / ``cx``."""
    obj = _json_field(p, "co", "cx")
    if obj is None:
        return []
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list):
        raise _Reject("wrong_type", "snowplow co/cx: expected {schema, data: [entities]}")
    out = []
    for ent in data:
        if not isinstance(ent, dict) or not isinstance(ent.get("data"), dict):
            raise _Reject("wrong_type", "snowplow co/cx: an entity is not {schema, data: {...}}")
        vendor, name = _schema_name(ent.get("schema"), "co/cx entity")
        out.append((vendor, name, ent["data"]))
    return out


def _product(entities: list[tuple[str, str, dict]]) -> dict | None:
    for vendor, name, data in entities:
        if vendor == "com.snowplowanalytics.snowplow.ecommerce" and name == "product":
            return data
    return None


def _str_or_none(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


def _props_self_describing(p: dict, entities: list[tuple[str, str, dict]]) -> tuple[str, dict]:
    """``(type, props)`` of a ``ue`` event."""
    outer = _json_field(p, "ue_pr", "ue_px")
    if outer is None:
        raise _Reject("missing_field", "snowplow ue_pr/ue_px: a self-describing event without its data")
    inner = outer.get("data") if isinstance(outer, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("data"), dict):
        raise _Reject("wrong_type", "snowplow ue_pr/ue_px: expected {schema, data: {schema, data: {...}}}")
    vendor, name = _schema_name(inner.get("schema"), "ue_pr.data")
    d = inner["data"]
    if vendor == INTENTFLOW_VENDOR:
        return name, dict(d)
    if vendor == "com.snowplowanalytics.snowplow":
        if name == "link_click":
            return "click", {"element_id": _str_or_none(d.get("elementId")), "element_role": "link"}
        if name == "button_click":
            return "click", {"element_id": _str_or_none(d.get("id") or d.get("name") or d.get("label")),
                             "element_role": "button"}
        if name in _FORM_ACTIONS:
            return "form", {"form_id": _str_or_none(d.get("formId")), "field_id": _str_or_none(d.get("elementId")),
                            "action": _FORM_ACTIONS[name]}
        if name == "add_to_cart":
            return "add_to_cart", {"item_id": _str_or_none(d.get("sku")), "quantity": d.get("quantity", 1),
                                   "price": d.get("unitPrice")}
    if vendor == "com.snowplowanalytics.snowplow.ecommerce" and name == "snowplow_ecommerce_action":
        kind = d.get("type")
        product = _product(entities) or {}
        if kind == "add_to_cart":
            return "add_to_cart", {"item_id": _str_or_none(product.get("id")), "quantity": product.get("quantity", 1),
                                   "price": product.get("price")}
        if kind == "transaction":
            tx = next((data for v, n, data in entities if n == "transaction"), {})
            items = [str(data["id"]) for v, n, data in entities if n == "product" and data.get("id") is not None]
            return "purchase", {"order_id": _str_or_none(tx.get("transaction_id")), "value": tx.get("revenue"),
                                "currency": tx.get("currency"), "item_ids": items}
        raise _Reject("unmappable", f"snowplow ue_pr.data snowplow_ecommerce_action type={str(kind)[:60]!r}: "
                                    "not an event type we map")
    raise _Reject("unmappable", f"snowplow ue_pr.data.schema={inner.get('schema')!s:.160}: not a schema we map")


def _props_structured(p: dict) -> tuple[str, dict]:
    action = str(p.get("se_ac") or "").strip().lower()
    if not action:
        raise _Reject("missing_field", "snowplow se_ac: a structured event without its action")
    if action == "click":
        return "click", {"element_id": p.get("se_la"), "element_role": p.get("se_pr")}
    if action == "hover":
        hover_ms = _float(p.get("se_va"), "se_va")
        if hover_ms is None:
            raise _Reject("missing_field", "snowplow se_va: a hover needs its duration in ms")
        return "hover", {"element_id": p.get("se_la"), "element_role": p.get("se_pr"), "hover_ms": hover_ms}
    if action in _SE_CART_ACTIONS:
        qty = _int(p, "se_pr")
        return "add_to_cart", {"item_id": p.get("se_la"), "quantity": qty if qty else 1,
                               "price": _float(p.get("se_va"), "se_va")}
    raise _Reject("unmappable", f"snowplow se_ac={str(p.get('se_ac'))[:80]!r}: not an action we map "
                                "(click, hover, add_to_cart)")


def map_event(p: Any) -> Item:
    """Map one ``payload_data`` event (dict of strings) to a :class:`Mapped` or :class:`Rejected` item."""
    if not isinstance(p, dict):
        return Rejected("not_an_object", f"snowplow event: expected an object, got {type(p).__name__}", p)
    eid = p.get("eid") if isinstance(p.get("eid"), str) and p.get("eid") else None
    try:
        return _map(p, eid)
    except _Reject as rej:
        return Rejected(rej.reason, rej.detail, p, eid)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:  # a shape no rule above expected
        return Rejected("wrong_type", f"snowplow event: {type(exc).__name__}: {exc}"[:300], p, eid)


def _map(p: dict, eid: str | None) -> Mapped:
    bad = [k for k, v in p.items() if not isinstance(v, str)]
    if bad:
        raise _Reject("wrong_type", f"snowplow {bad[0]}: payload_data values are strings, got "
                                    f"{type(p[bad[0]]).__name__}")
    if eid is None:
        raise _Reject("missing_field", "snowplow eid")
    e = p.get("e")
    if not e:
        raise _Reject("missing_field", "snowplow e")
    if not p.get("sid"):
        raise _Reject("missing_field", "snowplow sid (session id: enable the tracker's session cookie)")
    ts_key = "ttm" if p.get("ttm") else "dtm"
    if not p.get(ts_key):
        raise _Reject("missing_field", "snowplow dtm")
    client_ts_ms = _int(p, ts_key, "bad_timestamp")
    sent_at_ms = _int(p, "stm", "bad_timestamp")
    vp, res, ds = _size(p, "vp"), _size(p, "res"), _size(p, "ds")
    entities = _contexts(p)
    page: dict[str, Any] = {"url": p.get("url"), "referrer": p.get("refr")}
    product = _product(entities)
    if product is not None and product.get("id") is not None:
        page["item_id"] = str(product["id"])
    for vendor, name, data in entities:
        if vendor == INTENTFLOW_VENDOR and name == "page":
            if data.get("item_id") is not None:
                page["item_id"] = str(data["item_id"])
            if isinstance(data.get("content_ids"), list):
                page["content_ids"] = data["content_ids"]
            page_type = page_type_of(data.get("type")) or page_type_of(data.get("category"))
            if page_type:
                page["type"] = page_type
    context: dict[str, Any] = {"user_agent": p.get("ua"), "locale": p.get("lang"), "timezone": p.get("tz")}
    if vp:
        context["viewport_w_px"], context["viewport_h_px"] = vp
    if res:
        context["screen_w_px"], context["screen_h_px"] = res

    if e == "pv":
        etype, props = "page_view", {"title": p.get("page")}
    elif e == "pp":
        may = _int(p, "pp_may") or 0  # the tracker leaves zero offsets out of the payload
        if not vp or not ds:
            raise _Reject("scroll_depth_not_a_number", "snowplow pp: vp and ds are needed for the depth")
        depth = 100.0 if ds[1] <= 0 else (max(0, may) + vp[1]) / ds[1] * 100.0
        etype, props = "scroll", {"scroll_depth_pct": depth, "offset_px": float(may), "document_height_px": float(ds[1])}
    elif e == "se":
        etype, props = _props_structured(p)
    elif e == "ue":
        etype, props = _props_self_describing(p, entities)
    elif e == "tr":
        etype, props = "purchase", {"order_id": p.get("tr_id"), "value": _float(p.get("tr_tt"), "tr_tt"),
                                    "currency": p.get("tr_cu")}
    else:
        raise _Reject("unmappable", f"snowplow e={e[:20]!r}: not an event type we map (pv, pp, se, ue, tr)")
    raw = {"type": etype, "event_id": event_id_for(SOURCE, eid), "session_id": p["sid"],
           "anonymous_id": p.get("duid") or p["sid"], "user_id": p.get("uid") or None,
           "client_ts_ms": client_ts_ms, "page": page, "context": context, "props": props}
    return Mapped(raw, SOURCE, eid, sent_at_ms, p)


def map_payload(events: list[Any]) -> list[Item]:
    """Map the events of one tp2 body (or the one event of a ``/i`` request) in order."""
    return [map_event(p) for p in events]
