"""The hot path's decoder of one event: the contract's models (``udfs/contract_models.py``) mirrored as
msgspec Structs, which parse and validate a Kafka value in one C pass and give the canonical dict.

Why a second copy of the contract: ``EVENT_ADAPTER.validate_json(raw).model_dump()`` costs ~12 us per
event of the benchmark's load on this machine (7.5 us to validate, ~4.5 us to dump the model to dicts),
the largest single share of the job's per-event Python time after the decider (issue 10);
``msgspec.json.decode`` into these Structs and ``msgspec.to_builtins`` do the same in a few us
(``bench/parse_bench.py`` prints both paths side by side).

The pydantic models stay the contract's single definition (the JSON Schema, the collector, every error
reason). This mirror only ever *accepts*: :func:`decode_canonical` returns None for anything it refuses,
and ``udfs.contract.parse_event`` then takes the pydantic path, which accepts or refuses with the
contract's reason exactly as before. So a value refused here costs one failed attempt (~1 us), never a
different answer. What must hold, and what ``tests/unit/test_contract_fast.py`` proves (field by field
against the pydantic models, and by hypothesis on generated and mutated events): whatever this accepts,
pydantic accepts too, and the two dicts are equal, key order and value types included.

Where msgspec and pydantic's strict mode differ, this side is the stricter one:

* ``event_id``'s pattern ends in ``\\Z``: msgspec matches with Python's ``re.search``, where ``$`` also
  matches before a final newline (pydantic's Rust regex does not);
* an integer field refuses integers outside the signed 64-bit range (``udfs.limits``), as pydantic does;
* JSON that pydantic's parser reads and msgspec's does not (``NaN``, ``Infinity``, numbers beyond a
  double) is refused here and handled by the pydantic path.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, field

from udfs.contract_models import _UUID_PATTERN, EVENT_SOURCES
from udfs.limits import ID_MAX_CHARS, INT_MAX, INT_MIN, STRING_MAX_CHARS, USER_AGENT_MAX_CHARS

NonNegInt = Annotated[int, Meta(ge=0, le=INT_MAX)]
Int64 = Annotated[int, Meta(ge=INT_MIN, le=INT_MAX)]
NonNegFloat = Annotated[float, Meta(ge=0)]
ShortStr = Annotated[str, Meta(max_length=STRING_MAX_CHARS)]
IdStr = Annotated[str, Meta(min_length=1, max_length=ID_MAX_CHARS)]
#: ``^...$`` of the contract, with ``\Z`` for ``$`` (module docstring)
EventId = Annotated[str, Meta(pattern=_UUID_PATTERN[:-1] + r"\Z")]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields refused (pydantic ``extra="forbid"``, inherited). Every subclass is ``kw_only``
    (not inherited: msgspec applies it to a class's own fields), so that field order can follow the
    pydantic models exactly, defaults or not."""


class Page(_Strict, kw_only=True):
    url: ShortStr | None = None
    path: ShortStr | None = None
    item_id: ShortStr | None = None
    type: Literal["administrative", "informational", "product_related"] | None = None
    content_ids: list[ShortStr] = field(default_factory=list)
    referrer: ShortStr | None = None


class Network(_Strict, kw_only=True):
    effective_type: ShortStr | None = None
    rtt_ms: NonNegFloat | None = None
    downlink_mbps: NonNegFloat | None = None
    save_data: bool | None = None


class Geo(_Strict, kw_only=True):
    country: ShortStr | None = None
    region: ShortStr | None = None


class Consent(_Strict, kw_only=True):
    analytics: bool | None = None
    personalization: bool | None = None


class Context(_Strict, kw_only=True):
    user_agent: Annotated[str, Meta(max_length=USER_AGENT_MAX_CHARS)] | None = None
    device_class: Literal["desktop", "mobile", "tablet", "bot", "unknown"] = "unknown"
    is_bot: bool = False
    viewport_w_px: NonNegInt | None = None
    viewport_h_px: NonNegInt | None = None
    screen_w_px: NonNegInt | None = None
    screen_h_px: NonNegInt | None = None
    network: Network = field(default_factory=Network)
    timezone: ShortStr | None = None
    locale: ShortStr | None = None
    geo: Geo = field(default_factory=Geo)
    consent: Consent = field(default_factory=Consent)
    ip_prefix: ShortStr | None = None


class PageViewProps(_Strict, kw_only=True):
    title: ShortStr | None = None


class ClickProps(_Strict, kw_only=True):
    element_id: ShortStr | None = None
    element_role: ShortStr | None = None
    x_px: float | None = None
    y_px: float | None = None


class ScrollProps(_Strict, kw_only=True):
    scroll_depth_pct: Annotated[float, Meta(ge=0, le=100)]
    scroll_depth_pct_raw: float | None = None
    offset_px: float | None = None
    document_height_px: NonNegFloat | None = None


class HoverProps(_Strict, kw_only=True):
    element_id: ShortStr | None = None
    element_role: ShortStr | None = None
    hover_ms: NonNegInt


class VisibilityProps(_Strict, kw_only=True):
    state: Literal["visible", "hidden"]
    visible_ms: NonNegInt | None = None


class FormProps(_Strict, kw_only=True):
    form_id: ShortStr | None = None
    field_id: ShortStr | None = None
    action: Literal["focus", "blur", "change", "submit", "abandon"]


class MouseTrajectoryProps(_Strict, kw_only=True):
    path_length_px: NonNegFloat
    straightness: Annotated[float, Meta(ge=0, le=1)]
    mean_speed_px_s: NonNegFloat
    jerk_px_s3: float
    pause_count: NonNegInt
    sample_count: Annotated[int, Meta(ge=1, le=INT_MAX)]
    duration_ms: NonNegInt


class AddToCartProps(_Strict, kw_only=True):
    item_id: ShortStr
    quantity: Annotated[int, Meta(ge=1, le=INT_MAX)] = 1
    price: float | None = None


class PurchaseProps(_Strict, kw_only=True):
    order_id: ShortStr | None = None
    value: float | None = None
    currency: ShortStr | None = None
    item_ids: list[ShortStr] = field(default_factory=list)


class ExposureProps(_Strict, kw_only=True):
    experiment_id: ShortStr
    variant: ShortStr
    content_id: ShortStr | None = None


class IntentProps(_Strict, kw_only=True):
    intent_score: Annotated[float, Meta(ge=0, le=1)]
    model_version: ShortStr
    rules_version: ShortStr | None = None
    feature_hash: ShortStr | None = None
    trigger_event_id: ShortStr | None = None
    action: ShortStr | None = None
    rule_id: ShortStr | None = None
    edge_latency_ms: NonNegFloat | None = None


class EventBase(_Strict, tag_field="type", kw_only=True):
    """The envelope; ``type`` is the tag of the union (each subclass's ``tag``)."""

    event_id: EventId
    schema_version: Literal[1] = 1
    session_id: IdStr
    anonymous_id: IdStr
    user_id: IdStr | None = None
    seq: NonNegInt | None = None
    client_ts_ms: Int64
    sent_at_ms: Int64 | None = None
    received_at_ms: Int64 | None = None
    ts_ms: Int64
    page: Page = field(default_factory=Page)
    context: Context = field(default_factory=Context)
    flags: list[str] = field(default_factory=list)
    source: Literal[EVENT_SOURCES] | None = None  # type: ignore[valid-type]
    source_event_id: ShortStr | None = None


class PageViewEvent(EventBase, tag="page_view", kw_only=True):
    props: PageViewProps = field(default_factory=PageViewProps)


class ClickEvent(EventBase, tag="click", kw_only=True):
    props: ClickProps = field(default_factory=ClickProps)


class ScrollEvent(EventBase, tag="scroll", kw_only=True):
    props: ScrollProps


class HoverEvent(EventBase, tag="hover", kw_only=True):
    props: HoverProps


class VisibilityEvent(EventBase, tag="visibility", kw_only=True):
    props: VisibilityProps


class FormEvent(EventBase, tag="form", kw_only=True):
    props: FormProps


class MouseTrajectoryEvent(EventBase, tag="mouse_trajectory", kw_only=True):
    props: MouseTrajectoryProps


class AddToCartEvent(EventBase, tag="add_to_cart", kw_only=True):
    props: AddToCartProps


class PurchaseEvent(EventBase, tag="purchase", kw_only=True):
    props: PurchaseProps = field(default_factory=PurchaseProps)


class ExposureEvent(EventBase, tag="exposure", kw_only=True):
    props: ExposureProps


class IntentEvent(EventBase, tag="intent", kw_only=True):
    props: IntentProps


#: type -> Struct, in the order of ``udfs.contract_models.PROPS_MODELS``
EVENT_STRUCTS: dict[str, type[EventBase]] = {
    cls.__struct_config__.tag: cls for cls in (
        PageViewEvent, ClickEvent, ScrollEvent, HoverEvent, VisibilityEvent, FormEvent, MouseTrajectoryEvent,
        AddToCartEvent, PurchaseEvent, ExposureEvent, IntentEvent)
}

_DECODER = msgspec.json.Decoder(Union[tuple(EVENT_STRUCTS.values())])  # type: ignore[misc]
_FIELDS = EventBase.__struct_fields__  # the envelope's fields in pydantic's order; then type, props


def decode_canonical(raw: bytes | bytearray | str) -> dict[str, Any] | None:
    """One Kafka value -> the canonical event dict (as ``EVENT_ADAPTER.validate_json(raw).model_dump()``:
    every field, defaults filled, in the models' order), or None when this decoder refuses it (the caller
    then asks pydantic, which gives the contract's reason).

    Never raises.
    """
    try:
        event = _DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeEncodeError):
        return None
    out = msgspec.to_builtins(event)
    # to_builtins puts the tag first; pydantic's order has it after the envelope, before props
    out["type"] = out.pop("type")
    out["props"] = out.pop("props")
    return out
