"""Normalization and context stamping of raw client events, in one place (docs/contracts.md §1).

Why this module is over 400 lines: it normalizes every field group of an event in the order of
docs/contracts.md §1 (one function per group), and the contract's reason codes for refused fields are
defined next to the checks that raise them.

The collector calls :func:`normalize_event` on every event of a batch; converters of recorded data
build events with :func:`udfs.contract.make_event` directly. Every rule below either fixes the value
and adds a flag to ``event["flags"]`` (the event is kept) or raises :class:`udfs.contract.ContractError`
with a reason code (the event goes to the DLQ). Rules and where their constants come from:

Timestamps (:func:`to_epoch_ms`)
    A number is read by magnitude: ``|v| < 1e11`` -> seconds (flag ``ts_unit_seconds``),
    ``< 1e14`` -> ms, ``< 1e17`` -> µs (``ts_unit_micros``), else ns (``ts_unit_nanos``). The 1e11 cut
    is unambiguous for real dates: 1e11 ms is 1973-03-03 and 1e11 s is the year 5138. Numeric strings
    are read as numbers; other strings as ISO 8601 (``datetime.fromisoformat``; ``Z`` accepted; no
    offset -> UTC, flag ``ts_naive_utc``), flag ``ts_unit_iso``. NaN, inf, bools and junk ->
    ``bad_timestamp``.

Clock skew
    ``skew_ms = received_at_ms - sent_at_ms`` (both of one batch). When ``|skew_ms| > SKEW_TOLERANCE_MS``
    the event time is ``ts_ms = client_ts_ms + skew_ms`` (flag ``clock_skew_corrected``); smaller
    offsets are left alone because they are indistinguishable from network transit and batching delay
    (our own choice: beacon round trips are 50-500 ms; NTP-synced clocks agree within tens of ms), so
    events of one session keep the client's own order.

Far-future / 1970 rule
    With a collector clock (``received_at_ms`` known) the corrected event time must lie in
    ``[received_at_ms - MAX_PAST_MS, received_at_ms + MAX_FUTURE_MS]`` (7 days back: the longest an SDK
    keeps an unsent batch in storage; 5 min ahead: clock jitter). Outside it (a 1970 clock of a device
    whose RTC was reset, a clock years ahead, no ``sent_at_ms`` to correct with) the event is **kept**
    with ``ts_ms = received_at_ms`` and flag ``ts_replaced_by_received``; ``client_ts_ms`` keeps the
    sent value. Without a collector clock (offline normalization) an event time outside
    ``[2000-01-01, 2100-01-01)`` has no reference to correct against: ``ts_out_of_range``.

Scroll depth
    ``scroll_depth_pct`` is clamped to 0-100 (flag ``scroll_clamped``); the value as sent is kept in
    ``scroll_depth_pct_raw``. NaN/null/missing depth is recomputed from
    ``(offset_px + viewport_h_px) / document_height_px`` when both are known (flag
    ``scroll_recomputed``; pages shorter than the viewport give 100), else ``scroll_depth_not_a_number``.

Durations (``hover_ms``, ``visible_ms``, ``duration_ms``)
    Negative -> ``negative_duration``. Longer than ``MAX_DURATION_MS`` (30 min, the session inactivity
    timeout of docs/contracts.md §1: a longer stretch cannot belong to one active session; a background
    tab produces them) -> capped to it, flag ``duration_capped``.

Text
    Invalid UTF-8 bytes and lone surrogates are replaced by U+FFFD *per string field*
    (flag ``text_cleaned``), so one bad field never loses the event (:func:`udfs.jsontext.loads_lenient`,
    :func:`udfs.jsontext.clean_strings`).

User agent and IP: :mod:`udfs.enrich` (``classify_user_agent``, ``ip_prefix``).

Pointer physics (:mod:`udfs.plausibility`)
    A ``mouse_trajectory`` faster than 24 viewport diagonals per second, or with a path longer than
    ``(sample_count - 1)`` diagonals (the 65535,65535 overflow samples of real recorders), is kept as
    sent (raw values preserved) with flag ``trajectory_implausible``; the session state keeps it out of
    the features (suppression reason ``implausible_value``).

Strings longer than ``MAX_STRING_CHARS`` (2048) are cut (flag ``text_truncated``). An event nested deeper
than ``udfs.limits.EVENT_MAX_DEPTH`` levels is ``wrong_type`` (no contract field is deeper than 3).

Form events never keep a typed value: a ``value`` prop is dropped (flag ``form_value_dropped``).
Unknown props are dropped (flag ``props_unknown_dropped``).
"""
from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson

from udfs.contract import EVENT_TYPES, PROPS_MODELS, ContractError, derive_event_id, make_event
from udfs.enrich import classify_user_agent, ip_prefix
from udfs.jsontext import clean_strings, truncate_strings
from udfs.limits import EVENT_MAX_DEPTH, USER_AGENT_MAX_CHARS, json_depth
from udfs.plausibility import FLAG_TRAJECTORY_IMPLAUSIBLE, FLAG_VALUE_IMPLAUSIBLE, trajectory_violation, value_violations

#: Clock offsets up to this are treated as transit delay, not skew (ms). See module docstring.
SKEW_TOLERANCE_MS = 1_000
#: Oldest accepted event time relative to the collector clock (ms): 7 days.
MAX_PAST_MS = 7 * 24 * 3600 * 1000
#: Newest accepted event time relative to the collector clock (ms): 5 minutes.
MAX_FUTURE_MS = 5 * 60 * 1000
#: Plausible event times without a collector clock: [2000-01-01, 2100-01-01) epoch ms.
MIN_PLAUSIBLE_TS_MS = 946_684_800_000
MAX_PLAUSIBLE_TS_MS = 4_102_444_800_000
#: Cap of any duration prop (ms): 30 min, the session inactivity timeout.
MAX_DURATION_MS = 30 * 60 * 1000
_DURATION_PROPS = {"hover": "hover_ms", "visibility": "visible_ms", "mouse_trajectory": "duration_ms"}


# ---- timestamps ------------------------------------------------------------------------------------


def to_epoch_ms(value: Any) -> tuple[int, str | None]:
    """Convert a client timestamp (s, ms, µs, ns number or string, or ISO 8601 string) to epoch ms.

    Returns ``(epoch_ms, flag)`` where ``flag`` names the detected unit when it was not ms
    (``ts_unit_seconds``, ``ts_unit_micros``, ``ts_unit_nanos``, ``ts_unit_iso``, ``ts_naive_utc``).

    Raises:
        ContractError: ``bad_timestamp`` for bools, NaN/inf, unparseable strings and other types.
    """
    if isinstance(value, bool) or value is None:
        raise ContractError("bad_timestamp", repr(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise ContractError("bad_timestamp", repr(text[:64])) from None
            flag = "ts_unit_iso"
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
                flag = "ts_naive_utc"
            return int(round(dt.timestamp() * 1000)), flag
    if not isinstance(value, (int, float)):
        raise ContractError("bad_timestamp", type(value).__name__)
    if isinstance(value, float) and not math.isfinite(value):
        raise ContractError("bad_timestamp", repr(value))
    mag = abs(value)
    if mag < 1e11:
        return int(round(value * 1000)), "ts_unit_seconds"
    if mag < 1e14:
        return int(round(value)), None
    if mag < 1e17:
        return int(round(value / 1000)), "ts_unit_micros"
    return int(round(value / 1_000_000)), "ts_unit_nanos"


def event_time_ms(
    client_ts_ms: int, *, sent_at_ms: int | None, received_at_ms: int | None, flags: list[str]
) -> int:
    """Event time from the client time, the batch's ``sent_at_ms`` and the collector's ``received_at_ms``.

    Applies the clock-skew correction and the far-future/1970 rule of the module docstring; appends
    flags to ``flags``. Raises ``ContractError("ts_out_of_range")`` only without a collector clock.
    """
    ts_ms = client_ts_ms
    if received_at_ms is not None and sent_at_ms is not None:
        skew_ms = received_at_ms - sent_at_ms
        if abs(skew_ms) > SKEW_TOLERANCE_MS:
            ts_ms = client_ts_ms + skew_ms
            flags.append("clock_skew_corrected")
    if received_at_ms is not None:
        if not (received_at_ms - MAX_PAST_MS <= ts_ms <= received_at_ms + MAX_FUTURE_MS):
            flags.append("ts_replaced_by_received")
            ts_ms = received_at_ms
    elif not (MIN_PLAUSIBLE_TS_MS <= ts_ms < MAX_PLAUSIBLE_TS_MS):
        raise ContractError("ts_out_of_range", f"ts_ms={ts_ms}")
    return ts_ms


# ---- context ---------------------------------------------------------------------------------------


# ---- field helpers ---------------------------------------------------------------------------------


def _opt_str(obj: dict, key: str, where: str) -> str | None:
    v = obj.get(key)
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)  # numeric ids are common (item ids): kept as their decimal string
    raise ContractError("wrong_type", f"{where}{key}: expected string, got {type(v).__name__}")


def _opt_num(obj: dict, key: str, where: str, *, as_int: bool = False, nonneg: bool = False) -> Any:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ContractError("wrong_type", f"{where}{key}: expected a finite number, got {v!r}"[:200])
    if nonneg and v < 0:
        raise ContractError("wrong_type", f"{where}{key}: must be >= 0, got {v!r}")
    return int(round(v)) if as_int else v


def _opt_bool(obj: dict, key: str, where: str) -> bool | None:
    v = obj.get(key)
    if v is None or isinstance(v, bool):
        return v
    raise ContractError("wrong_type", f"{where}{key}: expected boolean, got {type(v).__name__}")


def _sub(obj: dict, key: str) -> dict:
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ContractError("wrong_type", f"{key}: expected object, got {type(v).__name__}")
    return v


def _page(raw: dict) -> dict[str, Any]:
    p = _sub(raw, "page")
    url = _opt_str(p, "url", "page.")
    path = _opt_str(p, "path", "page.")
    if path is None and url:
        path = urlsplit(url).path or "/"
    content_ids = p.get("content_ids") or []
    if not isinstance(content_ids, list):
        raise ContractError("wrong_type", "page.content_ids: expected list")
    ids = []
    for c in content_ids:
        if isinstance(c, bool) or not isinstance(c, (str, int)):
            raise ContractError("wrong_type", f"page.content_ids: expected strings, got {c!r}"[:200])
        ids.append(str(c))
    return {
        "url": url,
        "path": path,
        "item_id": _opt_str(p, "item_id", "page."),
        "content_ids": ids,
        "referrer": _opt_str(p, "referrer", "page."),
    }


def _context(
    raw: dict, *, user_agent: str | None, client_ip: str | None, geo: dict | None, flags: list[str]
) -> dict[str, Any]:
    c = _sub(raw, "context")
    ua = user_agent or _opt_str(c, "user_agent", "context.")
    if ua is not None and len(ua) > USER_AGENT_MAX_CHARS:
        ua = ua[:USER_AGENT_MAX_CHARS]
    device_class, is_bot = classify_user_agent(ua)
    if is_bot:
        flags.append("bot_user_agent")
    elif c.get("is_bot") is True:  # the page's own signal (navigator.webdriver), never overruled to False
        device_class, is_bot = "bot", True
        flags.append("bot_client_hint")
    n = _sub(c, "network")
    g = geo if geo else _sub(c, "geo")
    cs = _sub(c, "consent")
    return {
        "user_agent": ua,
        "device_class": device_class,
        "is_bot": is_bot,
        "viewport_w_px": _opt_num(c, "viewport_w_px", "context.", as_int=True, nonneg=True),
        "viewport_h_px": _opt_num(c, "viewport_h_px", "context.", as_int=True, nonneg=True),
        "screen_w_px": _opt_num(c, "screen_w_px", "context.", as_int=True, nonneg=True),
        "screen_h_px": _opt_num(c, "screen_h_px", "context.", as_int=True, nonneg=True),
        "network": {
            "effective_type": _opt_str(n, "effective_type", "context.network."),
            "rtt_ms": _opt_num(n, "rtt_ms", "context.network.", nonneg=True),
            "downlink_mbps": _opt_num(n, "downlink_mbps", "context.network.", nonneg=True),
            "save_data": _opt_bool(n, "save_data", "context.network."),
        },
        "timezone": _opt_str(c, "timezone", "context."),
        "locale": _opt_str(c, "locale", "context."),
        "geo": {"country": _opt_str(g, "country", "geo."), "region": _opt_str(g, "region", "geo.")},
        "consent": {
            "analytics": _opt_bool(cs, "analytics", "context.consent."),
            "personalization": _opt_bool(cs, "personalization", "context.consent."),
        },
        "ip_prefix": ip_prefix(client_ip),
    }


def normalize_scroll(props: dict[str, Any], viewport_h_px: int | None, flags: list[str]) -> dict[str, Any]:
    """Scroll props -> contract props: clamp to 0-100 keeping the raw value, recompute NaN when possible.

    Raises ``ContractError("scroll_depth_not_a_number")`` when the depth is NaN/null/missing and
    cannot be recomputed from ``offset_px``, ``viewport_h_px`` and ``document_height_px``.
    """
    offset_px = _opt_num(props, "offset_px", "props.")
    doc_h = _opt_num(props, "document_height_px", "props.", nonneg=True)
    raw = props.get("scroll_depth_pct")
    if isinstance(raw, bool) or (raw is not None and not isinstance(raw, (int, float))):
        raise ContractError("wrong_type", f"props.scroll_depth_pct: expected number, got {raw!r}"[:200])
    if raw is None or not math.isfinite(raw):
        if offset_px is None or viewport_h_px is None or doc_h is None:
            raise ContractError("scroll_depth_not_a_number", f"scroll_depth_pct={raw!r}, not recomputable")
        raw_kept = None if raw is None or math.isnan(raw) else raw
        depth = 100.0 if doc_h <= 0 else (offset_px + viewport_h_px) / doc_h * 100.0
        flags.append("scroll_recomputed")
        raw = depth
    else:
        raw_kept = raw
    depth = min(100.0, max(0.0, float(raw)))
    if depth != raw:
        flags.append("scroll_clamped")
    return {
        "scroll_depth_pct": depth,
        "scroll_depth_pct_raw": float(raw_kept) if raw_kept is not None else None,
        "offset_px": offset_px,
        "document_height_px": doc_h,
    }


def normalize_duration_ms(value: Any, name: str, flags: list[str], *, required: bool) -> int | None:
    """A duration in ms: negative -> ``negative_duration``; above ``MAX_DURATION_MS`` -> capped + flagged."""
    if value is None:
        if required:
            raise ContractError("missing_field", f"props.{name}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ContractError("wrong_type", f"props.{name}: expected a finite number, got {value!r}"[:200])
    if value < 0:
        raise ContractError("negative_duration", f"props.{name}={value!r}")
    if value > MAX_DURATION_MS:
        flags.append("duration_capped")
        return MAX_DURATION_MS
    return int(round(value))


def _props(etype: str, raw: dict, page: dict, context: dict, flags: list[str]) -> dict[str, Any]:
    p = _sub(raw, "props")
    if etype == "form" and "value" in p:
        p = {k: v for k, v in p.items() if k != "value"}
        flags.append("form_value_dropped")
    allowed = PROPS_MODELS[etype].model_fields
    if any(k not in allowed for k in p):
        p = {k: v for k, v in p.items() if k in allowed}
        flags.append("props_unknown_dropped")
    else:
        p = dict(p)
    if etype == "scroll":
        p = normalize_scroll(p, context["viewport_h_px"], flags)
        if value_violations(etype, p, context):
            flags.append(FLAG_VALUE_IMPLAUSIBLE)  # kept as sent; udfs.session keeps it out of the features
        return p
    if etype in _DURATION_PROPS:
        name = _DURATION_PROPS[etype]
        p[name] = normalize_duration_ms(p.get(name), name, flags, required=etype != "visibility")
    for key in ("element_id", "element_role", "item_id", "order_id", "experiment_id", "variant", "content_id"):
        if key in p:
            p[key] = _opt_str(p, key, "props.")
    if etype == "add_to_cart" and p.get("item_id") is None and page["item_id"] is not None:
        p["item_id"] = page["item_id"]
    if etype == "purchase" and isinstance(p.get("item_ids"), list):
        p["item_ids"] = [str(i) if isinstance(i, int) and not isinstance(i, bool) else i for i in p["item_ids"]]
    for key in ("x_px", "y_px", "price", "value", "path_length_px", "mean_speed_px_s", "jerk_px_s3"):
        if key in p and isinstance(p[key], float) and not math.isfinite(p[key]):
            raise ContractError("wrong_type", f"props.{key}: NaN/inf")
    if etype == "mouse_trajectory" and trajectory_violation(p, context["viewport_w_px"], context["viewport_h_px"]):
        flags.append(FLAG_TRAJECTORY_IMPLAUSIBLE)  # kept as sent; udfs.session keeps it out of the features
    if value_violations(etype, p, context):  # udfs.plausibility.RANGES: kept as sent, out of the features
        flags.append(FLAG_VALUE_IMPLAUSIBLE)
    return p


def _event_id(raw: dict, flags: list[str]) -> str:
    v = raw.get("event_id")
    if isinstance(v, str):
        try:
            return str(uuid.UUID(v))
        except ValueError:
            flags.append("event_id_derived")
            return derive_event_id("client:" + v)
    # no usable id: derive from the event's own content so a retry of the same event gets the same id
    flags.append("event_id_derived")
    try:
        content = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits (the event is refused later): the stdlib writes it
        content = json.dumps(raw, sort_keys=True)
    return derive_event_id("content:" + content)


def normalize_event(
    raw: Any,
    *,
    received_at_ms: int | None = None,
    sent_at_ms: Any = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
    geo: dict[str, str | None] | None = None,
    source: str = "sdk",
    source_event_id: str | None = None,
) -> dict[str, Any]:
    """Turn one raw client event (parsed JSON) into a canonical contract event.

    Args:
        raw: the event object as sent by the SDK (``type``, ``session_id``, ``anonymous_id``,
            ``event_id``, ``client_ts_ms`` (s/ms/µs/ISO accepted), ``seq``, ``user_id``, ``page``,
            ``context``, ``props``; an event may carry its own ``sent_at_ms``).
        received_at_ms: collector clock, epoch ms (None when normalizing offline).
        sent_at_ms: the batch's ``sent_at_ms`` (client clock, any accepted unit), or None.
        client_ip: the peer address; only its /24 or /48 prefix is stored.
        user_agent: the request's User-Agent header; wins over ``context.user_agent``.
        geo: coarse geo from the edge (``{"country", "region"}``), wins over ``context.geo``.
        source: ``source`` of the event (:data:`udfs.contract.EVENT_SOURCES`): ``sdk`` for our SDK;
            the tracker mappings of :mod:`udfs.trackers` pass theirs with ``source_event_id``.

    Returns:
        The canonical event dict (see :func:`udfs.contract.validate_event`) with ``flags``.

    Raises:
        ContractError: with a reason of :data:`udfs.contract.REASONS`.
    """
    if not isinstance(raw, dict):
        raise ContractError("not_an_object", type(raw).__name__)
    if json_depth(raw, EVENT_MAX_DEPTH) > EVENT_MAX_DEPTH:
        raise ContractError("wrong_type", f"nested deeper than {EVENT_MAX_DEPTH} levels (udfs.limits.EVENT_MAX_DEPTH)")
    raw, changed = clean_strings(raw)
    flags: list[str] = ["text_cleaned"] if changed else []
    raw, cut = truncate_strings(raw)
    if cut:
        flags.append("text_truncated")
    etype = raw.get("type")
    if etype is None:
        raise ContractError("missing_field", "type")
    if etype not in EVENT_TYPES:
        raise ContractError("unknown_type", repr(etype)[:100])
    for key in ("session_id",):
        if raw.get(key) is None:
            raise ContractError("missing_field", key)
    session_id = _opt_str(raw, "session_id", "")
    anonymous_id = _opt_str(raw, "anonymous_id", "") or session_id
    if "client_ts_ms" not in raw:
        raise ContractError("missing_field", "client_ts_ms")
    client_ts_ms, unit_flag = to_epoch_ms(raw["client_ts_ms"])
    if unit_flag:
        flags.append(unit_flag)
    event_sent = raw.get("sent_at_ms")
    if event_sent is None:
        event_sent = sent_at_ms
    sent_ms = to_epoch_ms(event_sent)[0] if event_sent is not None else None
    ts_ms = event_time_ms(client_ts_ms, sent_at_ms=sent_ms, received_at_ms=received_at_ms, flags=flags)
    seq = raw.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        raise ContractError("wrong_type", f"seq: expected a non-negative integer, got {seq!r}"[:200])
    event_id = _event_id(raw, flags)
    page = _page(raw)
    context = _context(raw, user_agent=user_agent, client_ip=client_ip, geo=geo, flags=flags)
    props = _props(etype, raw, page, context, flags)
    return make_event(
        etype,
        event_id=event_id,
        session_id=session_id,  # type: ignore[arg-type]
        anonymous_id=anonymous_id,
        user_id=_opt_str(raw, "user_id", ""),
        seq=seq,
        client_ts_ms=client_ts_ms,
        sent_at_ms=sent_ms,
        received_at_ms=received_at_ms,
        ts_ms=ts_ms,
        page=page,
        context=context,
        flags=list(dict.fromkeys(flags)),
        props=props,
        source=source,
        source_event_id=source_event_id,
    )


def sort_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort of canonical events by ``(ts_ms, seq)`` (``seq`` null sorts first within one ms).

    The collector sorts each batch with it before producing, so events of a session that the client
    sent out of order reach ``signals.raw`` in event-time order (keyed by session, one partition).
    """
    return sorted(events, key=lambda e: (e["ts_ms"], -1 if e["seq"] is None else e["seq"]))
