"""The event contract (docs/contracts.md §1): one pydantic v2 model, a builder and the hot-path parser.

A normalized event is a JSON object on Kafka topic ``signals.raw`` keyed by ``session_id``. The model
here is the single definition; ``schemas/event.v1.json`` is generated from it by
``python -m udfs.contract > schemas/event.v1.json`` and ``tests/unit/test_contract.py`` proves that
the file and the model agree.

Public API:
    EVENT_TYPES                     tuple of the eleven event type names
    Event                           pydantic discriminated union (by ``type``) of the eleven event models
    EVENT_ADAPTER                   ``pydantic.TypeAdapter(Event)``
    ContractError                   ``ValueError`` subclass with a ``reason`` code (see ``REASONS``)
    make_event(...)                 build + validate one event (every converter and the collector use it)
    validate_event(obj)             validate a dict, return the canonical dict (all fields present)
    parse_event(raw)                bytes/str of one event -> canonical dict; the Flink job's fast path
    event_json_schema()             the JSON Schema (dict) generated from the model

The models are in ``udfs/contract_models.py`` (re-exported here); this module builds, validates and
parses events.

``udfs`` never imports pyflink.
"""
from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from udfs.contract_models import (  # noqa: F401 - re-exported: the contract's public API
    AddToCartEvent,
    AddToCartProps,
    ClickEvent,
    ClickProps,
    Consent,
    Context,
    EVENT_ADAPTER,
    EVENT_SOURCES,
    Event,
    EventBase,
    ExposureEvent,
    ExposureProps,
    FormEvent,
    FormProps,
    Geo,
    HoverEvent,
    HoverProps,
    IntentEvent,
    IntentProps,
    MouseTrajectoryEvent,
    MouseTrajectoryProps,
    Network,
    PAGE_CATEGORY_TO_TYPE,
    PAGE_TYPES,
    PROPS_MODELS,
    Page,
    PageViewEvent,
    PageViewProps,
    PurchaseEvent,
    PurchaseProps,
    ScrollEvent,
    ScrollProps,
    VisibilityEvent,
    VisibilityProps,
    event_json_schema,
    page_type_of,
)
from udfs.contract_fast import decode_canonical
from udfs.errors import ContractError
from udfs.jsontext import clean_strings, loads_lenient
from udfs.limits import EVENT_MAX_BYTES

SCHEMA_VERSION = 1

#: The eleven event types of docs/contracts.md §1.
EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "click",
    "scroll",
    "hover",
    "visibility",
    "form",
    "mouse_trajectory",
    "add_to_cart",
    "purchase",
    "exposure",
    "intent",
)

DEVICE_CLASSES: tuple[str, ...] = ("desktop", "mobile", "tablet", "bot", "unknown")

#: Namespace of the deterministic ``event_id`` (uuid5 over a source key). A fixed random UUID chosen
#: once for intentflow; changing it changes every derived id, so never change it.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1f4e-3c1b-4f7e-9a55-2b7c0d1e8a42")

#: Reason codes of :class:`ContractError` and of DLQ records (docs/contracts.md §1). Stable strings:
#: metrics and dashboards count by them.
REASONS: dict[str, str] = {
    "invalid_json": "the body or event is not parseable JSON",
    "not_an_object": "an event is not a JSON object",
    "missing_field": "a required field is missing",
    "wrong_type": "a field has the wrong type or an invalid value",
    "unknown_type": "`type` is not one of EVENT_TYPES",
    "bad_timestamp": "a timestamp is not a number, ms, s or ISO string, or NaN/inf",
    "ts_out_of_range": "event time outside the plausible range (see udfs.normalize)",
    "scroll_depth_not_a_number": "scroll depth NaN/missing and not recomputable from offset/height",
    "negative_duration": "a duration (hover_ms, visible_ms, duration_ms) is negative",
    "event_too_large": f"one event above the collector's per-event limit ({EVENT_MAX_BYTES // 1024} KiB)",
    "schema_violation": "the normalized event fails the contract model",
    "rate_limited": "the client exceeded its rate limit",
    "unmappable": "a tracker's event (Snowplow, Segment, rrweb, PostHog) has no counterpart in EVENT_TYPES; "
    "the detail names the tracker's field and value (udfs/trackers)",
}


def _error_from_validation(exc: ValidationError) -> ContractError:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    etype = err["type"]
    if etype == "missing":
        reason = "missing_field"
    elif etype in ("union_tag_invalid",):
        reason = "unknown_type"
    elif etype in ("union_tag_not_found",):
        reason = "missing_field"
        loc = "type"
    else:
        reason = "wrong_type"
    return ContractError(reason, f"{loc}: {err['msg']}"[:300])


def validate_event(obj: Any) -> dict[str, Any]:
    """Validate one event (a dict) against the contract; return the canonical dict.

    The canonical dict has every field of the model (defaults filled), in model order.

    Raises:
        ContractError: ``not_an_object``, ``missing_field``, ``wrong_type`` or ``unknown_type``.
    """
    if not isinstance(obj, dict):
        raise ContractError("not_an_object", type(obj).__name__)
    try:
        model = EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise _error_from_validation(exc) from None
    return model.model_dump()


def derive_event_id(source_key: str) -> str:
    """Deterministic event id: ``uuid5(EVENT_ID_NAMESPACE, source_key)`` as a string.

    The same source row (e.g. ``"otto:train.jsonl:12:3"``) always gives the same id, so a re-run of a
    replay is deduplicated downstream by ``event_id``.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, source_key))


def make_event(
    type: str,  # noqa: A002 - the contract's field name
    *,
    session_id: str,
    client_ts_ms: int,
    source_key: str | None = None,
    event_id: str | None = None,
    anonymous_id: str | None = None,
    user_id: str | None = None,
    seq: int | None = None,
    sent_at_ms: int | None = None,
    received_at_ms: int | None = None,
    ts_ms: int | None = None,
    page: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    flags: list[str] | tuple[str, ...] = (),
    props: dict[str, Any] | None = None,
    source: str | None = None,
    source_event_id: str | None = None,
) -> dict[str, Any]:
    """Build one contract event and validate it; every data-set converter and the normalizer use this.

    Args:
        type: one of :data:`EVENT_TYPES`.
        session_id: browser session id (str).
        client_ts_ms: epoch ms on the client clock (int).
        source_key: a string that identifies the source row; ``event_id`` = uuid5 over it.
            Exactly one of ``source_key`` / ``event_id`` must be given.
        event_id: an explicit UUID string (e.g. sent by the SDK).
        anonymous_id: defaults to ``session_id`` (recorded data sets have no browser id).
        ts_ms: event time, default ``client_ts_ms``.
        page, context, props: dicts of the sub-objects (missing keys get the model defaults).
        flags: normalization flags.
        source: one of :data:`EVENT_SOURCES` (null: a replayed data set); ``source_event_id``: the
            tracker's own id of the original event.

    Returns:
        The canonical event dict (all fields present).

    Raises:
        ContractError: when the fields do not satisfy the contract, or neither/both ids are given.
    """
    if (source_key is None) == (event_id is None):
        raise ContractError("missing_field", "exactly one of source_key / event_id must be given")
    obj = {
        "event_id": event_id if event_id is not None else derive_event_id(source_key),  # type: ignore[arg-type]
        "schema_version": SCHEMA_VERSION,
        "type": type,
        "session_id": session_id,
        "anonymous_id": anonymous_id if anonymous_id is not None else session_id,
        "user_id": user_id,
        "seq": seq,
        "client_ts_ms": client_ts_ms,
        "sent_at_ms": sent_at_ms,
        "received_at_ms": received_at_ms,
        "ts_ms": client_ts_ms if ts_ms is None else ts_ms,
        "page": page or {},
        "context": context or {},
        "flags": list(flags),
        "source": source,
        "source_event_id": source_event_id,
    }
    if props is not None:
        obj["props"] = props
    return validate_event(obj)


def dumps_event(event: dict[str, Any]) -> bytes:
    """Serialize an event to compact UTF-8 JSON bytes (orjson), the Kafka message value."""
    return orjson.dumps(event)


def parse_event(raw: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Hot path of the Flink job: one Kafka message value -> validated canonical event dict.

    Fast path: msgspec Structs generated from the contract's models (:func:`udfs.contract_fast.decode_canonical`)
    parse and validate the JSON in one C pass and give the canonical dict (~4.5 us against ~12 us for pydantic's
    ``validate_json`` + ``model_dump``; ``bench/parse_bench.py``). It only accepts what pydantic accepts,
    with the same dict (tests/unit/test_contract_fast.py); what it refuses goes to pydantic-core
    (``EVENT_ADAPTER.validate_json``), and what that refuses takes the slow path, which gives the exact error: a
    value that is not valid UTF-8 or carries lone surrogates goes through
    :func:`udfs.jsontext.loads_lenient`, which cleans the bad string fields (flag ``text_cleaned``) instead
    of losing the event; other values are validated as Python objects (:func:`validate_event`), so the
    reasons (``not_an_object``, ``missing_field``, ...) are those of every other caller.

    Raises:
        ContractError: ``invalid_json``, ``not_an_object``, ``missing_field``, ``wrong_type``,
            ``unknown_type``.
    """
    event = decode_canonical(raw)
    if event is not None:
        return event
    if not isinstance(raw, memoryview):
        try:
            return EVENT_ADAPTER.validate_json(raw).model_dump()
        except ValidationError:
            pass  # the slow path below says why, with the contract's reasons
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj, changed = clean_strings(loads_lenient(raw))
        if changed and isinstance(obj, dict) and isinstance(obj.get("flags"), list):
            if "text_cleaned" not in obj["flags"]:
                obj["flags"].append("text_cleaned")
    return validate_event(obj)


def main() -> None:
    """Print the generated JSON Schema (``python -m udfs.contract > schemas/event.v1.json``)."""
    sys.stdout.write(json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
