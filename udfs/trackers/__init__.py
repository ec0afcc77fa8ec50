"""Payloads of trackers people already run -> our contract events (docs/contracts.md §6).

Each module maps one tracker's wire format, as the tracker sends it, into *raw events in our SDK's
shape* (the body items of ``POST /v1/events``: ``type``, ``session_id``, ``anonymous_id``,
``event_id``, ``client_ts_ms``, ``page``, ``context``, ``props``), which then go through the same
:func:`udfs.normalize.normalize_event` as our SDK's events (clock-skew correction, user-agent
classification, IP truncation, clamps, limits). So a mapped event is indistinguishable from an SDK event
except for ``source`` and ``source_event_id``.

Modules (pure: no aiohttp, Kafka, Redis or PyFlink import):

- :mod:`udfs.trackers.snowplow`: Snowplow tracker protocol (``tp2`` POST body, ``/i`` GET query)
- :mod:`udfs.trackers.segment`: Segment HTTP tracking API (and RudderStack's variant of it)
- :mod:`udfs.trackers.rrweb`: rrweb recordings (incremental snapshots), shared with the rrweb data set
- :mod:`udfs.trackers.posthog`: PostHog ``$snapshot`` events (rrweb inside)

Every mapper returns a list whose items are :class:`Mapped` (an event to normalize) or
:class:`Rejected` (goes to ``signals.dlq`` with its reason; the detail names the tracker's field).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from udfs.contract import ContractError, derive_event_id
from udfs.normalize import normalize_event


@dataclass(frozen=True)
class Mapped:
    """One tracker event mapped to a raw SDK-shaped event.

    Attributes:
        raw: the raw event (dict) for :func:`udfs.normalize.normalize_event`; ``event_id`` is set.
        source: one of :data:`udfs.contract.EVENT_SOURCES`.
        source_event_id: the tracker's own id of the event (str) or None when it has none.
        sent_at_ms: when the tracker sent it, epoch ms on the client clock (for the skew correction), or None.
        payload: the tracker's original event (for the DLQ when normalization rejects it).
        flags: what the mapping itself did, added to the event's ``flags`` (e.g.
            ``session_from_anonymous_id``, ``document_height_unknown``).
    """

    raw: dict[str, Any]
    source: str
    source_event_id: str | None
    sent_at_ms: int | None
    payload: Any
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejected:
    """One tracker event that cannot be mapped.

    Attributes:
        reason: a reason code of :data:`udfs.contract.REASONS` (``unmappable``, ``missing_field``,
            ``wrong_type``, ``bad_timestamp``, ``scroll_depth_not_a_number``, ...).
        detail: names the tracker's field and value, e.g. ``"snowplow e='ad': not an event type we map"``.
        payload: the tracker's original event.
        source_event_id: the tracker's own id when it could be read.
    """

    reason: str
    detail: str
    payload: Any
    source_event_id: str | None = None


Item = Mapped | Rejected


def event_id_for(source: str, original_id: str) -> str:
    """Our ``event_id`` for a tracker's event id: the id itself when it is a UUID (Snowplow ``eid``,
    RudderStack ``messageId``), else ``uuid5`` over ``"{source}:{original_id}"`` (Segment's
    ``ajs-next-...`` message ids), so a retry of the same event gets the same id."""
    try:
        return str(uuid.UUID(original_id))
    except ValueError:
        return derive_event_id(f"{source}:{original_id}")


def content_digest(obj: Any) -> str:
    """sha1 hex of a JSON value's canonical text (sorted keys); ids of events a tracker sends without one
    derive from it, so a retried batch gets the same ids. Any value (big ints, NaN) is accepted."""
    try:
        text = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # integers beyond 64 bits, which orjson refuses
        text = json.dumps(obj, sort_keys=True, default=str).encode("utf-8", "replace")
    return hashlib.sha1(text).hexdigest()


def to_event(item: Mapped, *, received_at_ms: int | None, client_ip: str | None = None,
             user_agent: str | None = None) -> dict[str, Any]:
    """Normalize a :class:`Mapped` item into a canonical contract event with ``source`` set.

    Args:
        item: the mapped item.
        received_at_ms: collector clock, epoch ms (None offline).
        client_ip: peer address (only its prefix is kept).
        user_agent: the request's User-Agent; used only when the tracker did not send its own
            (Snowplow ``ua``, Segment ``context.userAgent``): a server that forwards events has its own.

    Raises:
        ContractError: the reason codes of :func:`udfs.normalize.normalize_event`.
    """
    ctx = item.raw.get("context") or {}
    ua = ctx.get("user_agent") if isinstance(ctx, dict) else None
    event = normalize_event(item.raw, received_at_ms=received_at_ms, sent_at_ms=item.sent_at_ms,
                            client_ip=client_ip, user_agent=None if ua else user_agent,
                            source=item.source, source_event_id=item.source_event_id)
    if item.flags:
        event["flags"] = list(dict.fromkeys([*event["flags"], *item.flags]))
    return event


def map_offline(items: list[Item]) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """``(events, rejected)`` of mapped items normalized without a collector clock (tests, replays).

    Items that :func:`to_event` rejects become :class:`Rejected` with the normalizer's reason.
    """
    events, rejected = [], []
    for item in items:
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        try:
            events.append(to_event(item, received_at_ms=None))
        except ContractError as exc:
            rejected.append(Rejected(exc.reason, exc.detail, item.payload, item.source_event_id))
    return events, rejected
