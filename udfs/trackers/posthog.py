"""PostHog capture payloads (``$snapshot`` recordings and a few web events) -> raw SDK-shaped events
(docs/contracts.md §6.4).

Input: the body posthog-js sends to ``/s/`` (recordings) or ``/e/`` (events): a JSON array of events (or
one event, or ``{"batch": [...]}``), possibly compressed: ``?compression=gzip-js`` (gzip bytes), or a
form body ``data=<base64 JSON>`` (``compression=base64``). :func:`decode_body` undoes that.

``$snapshot`` (``properties.$snapshot_data``: a list of rrweb events, or one) -> the rrweb mapping of
:class:`udfs.trackers.rrweb.RrwebMapper` with ``source = "posthog"``, emitting only what PostHog's own
events do not carry (:data:`SNAPSHOT_TYPES`: mouse trajectories, form interactions, scrolls): the
recording's page views and clicks are the ``$pageview`` and ``$autocapture`` events below, which
posthog-js sends as well (mapping both would count each click twice):

========================================  =====================================================
PostHog                                   ours
========================================  =====================================================
``properties.$session_id``                ``session_id`` (required)
``properties.distinct_id``                ``anonymous_id``
``uuid`` (of the ``$snapshot`` event)     ``source_event_id``; ids derived from it and the rrweb index
rrweb events with ``cv: "2024-10"``       their ``data`` (full snapshot) or ``adds``/``texts``/... (mutation)
                                          is a gzip string (latin-1) that posthog-js compressed: decompressed
========================================  =====================================================

Web events (same envelope: ``properties.$session_id``, ``properties.distinct_id``, ``uuid``,
``timestamp`` ISO 8601 or ``properties.$time`` s; ``page.item_id`` from the session's recording when the
collector has already seen its snapshot of the same url, see :class:`udfs.trackers.rrweb.DomStates`):

- ``$pageview`` -> ``page_view`` (``$current_url``, ``title``, ``$referrer``, ``$viewport_width``/
  ``_height``, ``$screen_width``/``_height``, ``$raw_user_agent``, ``$browser_language``, ``$timezone``);
- ``$autocapture`` with ``$event_type = click`` -> ``click``: the element from ``$elements_chain``
  (or ``$elements``): the first element with ``data-if-id`` / ``data-if-role`` (our page markup), else
  the first element's ``id`` attribute;
- ``$pageleave`` with ``$prev_pageview_max_scroll_percentage`` (0-1) -> ``scroll`` with that depth
  (``offset_px = $prev_pageview_max_scroll``); without it -> ``unmappable``;
- any other event (``$identify``, ``$web_vitals``, ``$rageclick``, custom events, ...) -> ``unmappable``
  (the detail names ``event``).

``?_=<epoch ms>`` of the request is ``sent_at_ms`` (the skew correction).

Sources: posthog-js (1.449) ``capture``/``$snapshot`` payloads as recorded in tests/fixtures/trackers.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from typing import Any
from urllib.parse import parse_qs

import orjson

from udfs.contract import ContractError
from udfs.jsontext import loads_fast
from udfs.normalize import to_epoch_ms
from udfs.trackers import Item, Mapped, Rejected, content_digest, event_id_for
from udfs.trackers.rrweb import DomStates, RrwebMapper

SOURCE = "posthog"
#: posthog-js marks rrweb events whose parts it gzip-compressed with ``cv`` = this value.
COMPRESSION_VERSION = "2024-10"
#: our event types taken from ``$snapshot`` recordings (see module docstring)
SNAPSHOT_TYPES = frozenset({"mouse_trajectory", "form", "scroll"})
_MUTATION_PARTS = ("adds", "texts", "attributes", "removes")
_CHAIN_ATTR = re.compile(r'attr__([\w-]+)="((?:[^"\\]|\\.)*)"')


def decode_body(body: bytes, compression: str | None = None, content_type: str | None = None) -> Any:
    """Parse a posthog-js request body into JSON.

    Args:
        body: the raw (HTTP-decompressed) body.
        compression: the ``compression`` query parameter (``gzip-js``, ``base64`` or None).
        content_type: the request's content type (``application/x-www-form-urlencoded`` for ``data=``).

    Raises:
        ContractError: ``invalid_json`` when the body cannot be decompressed or parsed.
    """
    try:
        if compression == "gzip-js" or body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        elif content_type == "application/x-www-form-urlencoded" or body[:5] == b"data=":
            data = (parse_qs(body.decode("utf-8", "replace")).get("data") or [""])[0]
            is_plain_json = compression != "base64" and data.lstrip().startswith(("[", "{"))
            body = data.encode() if is_plain_json else base64.b64decode(data + "=" * (-len(data) % 4))
    except (OSError, EOFError, zlib.error, binascii.Error, ValueError) as exc:
        detail = f"posthog body: cannot decompress ({compression or 'none'}): {exc}"
        raise ContractError("invalid_json", detail[:200]) from None
    return loads_fast(body)


def split_events(obj: Any) -> list[Any]:
    """The events of a parsed body: a list, ``{"batch": [...]}`` or one event.

    Raises:
        ValueError: anything else.
    """
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        if isinstance(obj.get("batch"), list):
            return obj["batch"]
        if "event" in obj:
            return [obj]
    raise ValueError("expected a list of events, {batch: [...]} or one event")


def _gunzip_latin1(text: str) -> Any:
    return orjson.loads(gzip.decompress(text.encode("latin-1")))


def decompress_rrweb_event(ev: Any) -> Any:
    """An rrweb event with posthog-js's ``cv`` compression undone (others unchanged).

    Raises:
        ValueError: a compressed part is not gzip of JSON.
    """
    if not isinstance(ev, dict) or ev.get("cv") != COMPRESSION_VERSION:
        return ev
    try:
        data = ev.get("data")
        if isinstance(data, str):
            data = _gunzip_latin1(data)
        elif isinstance(data, dict):
            data = dict(data)
            for part in _MUTATION_PARTS:
                if isinstance(data.get(part), str):
                    data[part] = _gunzip_latin1(data[part])
    except (OSError, EOFError, zlib.error, UnicodeEncodeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"cv {COMPRESSION_VERSION} part is not gzip JSON: {exc}"[:200]) from None
    return {k: v for k, v in ev.items() if k != "cv"} | {"data": data}


def _id(v: Any) -> str | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, str) else str(v)


def _ts_ms(ev: dict, props: dict) -> int:
    value = ev.get("timestamp")
    field = "timestamp"
    if value is None:
        value, field = props.get("$time"), "properties.$time"
    if value is None:
        raise _Reject("missing_field", "posthog timestamp (or properties.$time)")
    try:
        return to_epoch_ms(value)[0]
    except ContractError:
        raise _Reject("bad_timestamp", f"posthog {field}={str(value)[:60]!r}") from None


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def element_from_chain(props: dict) -> dict[str, str | None]:
    """``{"element_id", "element_role"}`` of an ``$autocapture`` event (see module docstring)."""
    elements: list[dict[str, str]] = []
    chain = props.get("$elements_chain")
    if isinstance(chain, str) and chain:
        for part in chain.split(";"):
            elements.append({k: v.replace('\\"', '"') for k, v in _CHAIN_ATTR.findall(part)})
    elif isinstance(props.get("$elements"), list):
        for el in props["$elements"]:
            if isinstance(el, dict):
                elements.append({k[6:]: str(v) for k, v in el.items() if k.startswith("attr__")})
    for attrs in elements:
        if "data-if-id" in attrs or "data-if-role" in attrs:
            return {"element_id": attrs.get("data-if-id"), "element_role": attrs.get("data-if-role")}
    first = elements[0] if elements else {}
    return {"element_id": first.get("id"), "element_role": None}


def _web_event(ev: dict, props: dict, uuid_: str, sent_at_ms: int | None, dom_states: DomStates | None) -> Mapped:
    name = ev.get("event")
    session_id = _id(props.get("$session_id"))
    if session_id is None:
        raise _Reject("missing_field", f"posthog properties.$session_id of {str(name)[:40]!r}")
    page = {"url": _id(props.get("$current_url")), "referrer": _id(props.get("$referrer"))}
    dom = dom_states.peek(session_id) if dom_states is not None else None
    if dom is not None and dom.page.get("item_id") and dom.page.get("url") == page["url"]:
        page["item_id"] = dom.page["item_id"]  # the product of the page, from the session's recording
    context = {"user_agent": _id(props.get("$raw_user_agent")), "locale": _id(props.get("$browser_language")),
               "timezone": _id(props.get("$timezone")), "viewport_w_px": props.get("$viewport_width"),
               "viewport_h_px": props.get("$viewport_height"), "screen_w_px": props.get("$screen_width"),
               "screen_h_px": props.get("$screen_height")}
    if name == "$pageview":
        etype, eprops = "page_view", {"title": _id(props.get("title"))}
    elif name == "$autocapture" and props.get("$event_type") == "click":
        etype, eprops = "click", element_from_chain(props)
    elif name == "$pageleave" and props.get("$prev_pageview_max_scroll_percentage") is not None:
        pct = props["$prev_pageview_max_scroll_percentage"]
        if isinstance(pct, bool) or not isinstance(pct, (int, float)):
            raise _Reject("wrong_type", f"posthog properties.$prev_pageview_max_scroll_percentage={str(pct)[:40]!r}")
        etype, eprops = "scroll", {"scroll_depth_pct": pct * 100.0, "offset_px": props.get("$prev_pageview_max_scroll")}
    else:
        detail = f"posthog event={str(name)[:80]!r}"
        if name == "$autocapture":
            detail += f" $event_type={str(props.get('$event_type'))[:20]!r}"
        raise _Reject("unmappable", detail + ": not an event we map ($snapshot, $pageview, $autocapture click, "
                                             "$pageleave with scroll)")
    raw = {"type": etype, "event_id": event_id_for(SOURCE, uuid_), "session_id": session_id,
           "anonymous_id": _id(props.get("distinct_id")) or session_id, "client_ts_ms": _ts_ms(ev, props),
           "page": page, "context": context, "props": eprops}
    return Mapped(raw, SOURCE, uuid_, sent_at_ms, ev)


def map_events(events: list[Any], *, sent_at_ms: int | None = None, dom_states: DomStates | None = None) -> list[Item]:
    """Map the events of one request body, in order.

    Args:
        events: the body's events (:func:`split_events`).
        sent_at_ms: the request's ``_`` parameter (client clock, epoch ms) or None.
        dom_states: per-session page/DOM state kept between requests (the collector's), or None.
    """
    items: list[Item] = []
    for ev in events:
        if not isinstance(ev, dict):
            items.append(Rejected("not_an_object", f"posthog event: expected an object, got {type(ev).__name__}", ev))
            continue
        props = ev.get("properties")
        if not isinstance(props, dict):
            items.append(Rejected("missing_field", "posthog properties", ev, _id(ev.get("uuid"))))
            continue
        try:
            # without a uuid (older clients), ids derive from the event's content: a retry gets the same
            uuid_ = _id(ev.get("uuid")) or content_digest(ev)
            if ev.get("event") == "$snapshot":
                items.extend(_snapshot(ev, props, uuid_, sent_at_ms, dom_states))
            else:
                items.append(_web_event(ev, props, uuid_, sent_at_ms, dom_states))
        except _Reject as rej:
            items.append(Rejected(rej.reason, rej.detail, ev, _id(ev.get("uuid"))))
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:  # a shape no rule above expected
            items.append(Rejected("wrong_type", f"posthog event: {type(exc).__name__}: {exc}"[:300], ev,
                                  _id(ev.get("uuid"))))
    return items


def _snapshot(ev: dict, props: dict, uuid_: str, sent_at_ms: int | None, dom_states: DomStates | None) -> list[Item]:
    session_id = _id(props.get("$session_id"))
    if session_id is None:
        raise _Reject("missing_field", "posthog properties.$session_id of a $snapshot")
    data = props.get("$snapshot_data")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise _Reject("missing_field" if data is None else "wrong_type",
                      "posthog properties.$snapshot_data: expected a list of rrweb events")
    mapper = RrwebMapper(session_id=session_id, id_prefix=f"posthog:{uuid_}", source=SOURCE,
                         anonymous_id=_id(props.get("distinct_id")), sent_at_ms=sent_at_ms,
                         source_event_id=_id(ev.get("uuid")),
                         dom=dom_states.get(session_id) if dom_states is not None else None,
                         emit_types=SNAPSHOT_TYPES)
    items: list[Item] = []
    for idx, rr in enumerate(data):
        try:
            rr = decompress_rrweb_event(rr)
        except ValueError as exc:
            items.append(Rejected("wrong_type", f"posthog $snapshot_data[{idx}]: {exc}", rr, _id(ev.get("uuid"))))
            continue
        items.extend(mapper.feed(idx, rr))
    items.extend(mapper.finish())
    return items
