"""The event contract's pydantic v2 models (docs/contracts.md §1): the envelope (:class:`EventBase`), its
page and context, the props of each of the eleven event types, the discriminated union :data:`Event`
and the JSON Schema generated from it. Building, validating and parsing events: ``udfs/contract.py``
(which re-exports these names)."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from udfs.limits import ID_MAX_CHARS, INT_MAX, INT_MIN, STRING_MAX_CHARS, USER_AGENT_MAX_CHARS

#: Where an event came from (``source`` of the envelope): our capture SDK or a tracker whose payload
#: the collector maps (udfs/trackers, docs/contracts.md §6). Null: a replayed data set.
EVENT_SOURCES: tuple[str, ...] = ("sdk", "snowplow", "segment", "rudderstack", "rrweb", "posthog")


_STRICT = ConfigDict(extra="forbid", strict=True)

NonNegInt = Annotated[int, Field(ge=0, le=INT_MAX)]
Int64 = Annotated[int, Field(ge=INT_MIN, le=INT_MAX)]
NonNegFloat = Annotated[float, Field(ge=0)]
ShortStr = Annotated[str, Field(max_length=STRING_MAX_CHARS)]


#: Page types (``page.type``): the three page categories of the UCI Online Shoppers data set (Sakar et
#: al. 2019, "administrative", "informational" and "product related" pages), which the session features
#: ``<type>_page_view_count`` / ``<type>_page_time_s`` count (udfs/features.py).
PAGE_TYPES: tuple[str, ...] = ("administrative", "informational", "product_related")

#: Page categories of other trackers (Segment ``page`` call ``category``, Snowplow ``dev.intentflow/page``
#: ``category``, the SDK's ``pageCategory``) -> ``page.type``. Lower-cased lookup; a category not listed
#: gives no type (null). Our mapping of common e-commerce page kinds onto the UCI categories: account,
#: login, cart and checkout pages are "administrative" (account management in Sakar et al.); about, help,
#: contact, shipping and blog pages "informational"; product, category, listing and search pages
#: "product_related".
PAGE_CATEGORY_TO_TYPE: dict[str, str] = {
    **{k: "administrative" for k in ("administrative", "account", "login", "signin", "sign-in", "register",
                                     "cart", "basket", "checkout", "order", "orders", "profile", "settings")},
    **{k: "informational" for k in ("informational", "about", "help", "faq", "contact", "shipping",
                                    "returns", "blog", "article", "legal", "privacy", "terms", "store-locator")},
    **{k: "product_related" for k in ("product_related", "product", "products", "pdp", "category", "plp",
                                      "listing", "collection", "search", "brand", "deals", "compare")},
}


def page_type_of(category: Any) -> str | None:
    """``page.type`` for a tracker's page category (:data:`PAGE_CATEGORY_TO_TYPE`), None when unknown."""
    if not isinstance(category, str):
        return None
    return PAGE_CATEGORY_TO_TYPE.get(category.strip().lower())


class Page(BaseModel):
    """The page an event happened on. ``item_id``: the product shown, or null. ``type``: one of
    :data:`PAGE_TYPES` or null (unknown; a page with ``item_id`` then counts as product related)."""

    model_config = _STRICT
    url: ShortStr | None = None
    path: ShortStr | None = None
    item_id: ShortStr | None = None
    type: Literal["administrative", "informational", "product_related"] | None = None
    content_ids: list[ShortStr] = Field(default_factory=list)
    referrer: ShortStr | None = None


class Network(BaseModel):
    """Network Information API values: ``effective_type`` (e.g. ``4g``), RTT ms, downlink Mbit/s."""

    model_config = _STRICT
    effective_type: ShortStr | None = None
    rtt_ms: NonNegFloat | None = None
    downlink_mbps: NonNegFloat | None = None
    save_data: bool | None = None


class Geo(BaseModel):
    """Coarse geo only: ISO country and region codes."""

    model_config = _STRICT
    country: ShortStr | None = None
    region: ShortStr | None = None


class Consent(BaseModel):
    """Consent flags as given by the page's consent manager (null = unknown)."""

    model_config = _STRICT
    analytics: bool | None = None
    personalization: bool | None = None


class Context(BaseModel):
    """Context stamped on every event. ``ip_prefix`` is a /24 (IPv4) or /48 (IPv6) network, never the IP."""

    model_config = _STRICT
    user_agent: Annotated[str, Field(max_length=USER_AGENT_MAX_CHARS)] | None = None
    device_class: Literal["desktop", "mobile", "tablet", "bot", "unknown"] = "unknown"
    is_bot: bool = False
    viewport_w_px: NonNegInt | None = None
    viewport_h_px: NonNegInt | None = None
    screen_w_px: NonNegInt | None = None
    screen_h_px: NonNegInt | None = None
    network: Network = Field(default_factory=Network)
    timezone: ShortStr | None = None
    locale: ShortStr | None = None
    geo: Geo = Field(default_factory=Geo)
    consent: Consent = Field(default_factory=Consent)
    ip_prefix: ShortStr | None = None


# ---- props per type -------------------------------------------------------------------------------


class _Props(BaseModel):
    model_config = _STRICT


class PageViewProps(_Props):
    title: ShortStr | None = None


class ClickProps(_Props):
    element_id: ShortStr | None = None
    element_role: ShortStr | None = None
    x_px: float | None = None
    y_px: float | None = None


class ScrollProps(_Props):
    """``scroll_depth_pct`` clamped to 0-100; ``scroll_depth_pct_raw`` as sent (null if it was NaN)."""

    scroll_depth_pct: Annotated[float, Field(ge=0, le=100)]
    scroll_depth_pct_raw: float | None = None
    offset_px: float | None = None
    document_height_px: NonNegFloat | None = None


class HoverProps(_Props):
    element_id: ShortStr | None = None
    element_role: ShortStr | None = None
    hover_ms: NonNegInt


class VisibilityProps(_Props):
    state: Literal["visible", "hidden"]
    visible_ms: NonNegInt | None = None


class FormProps(_Props):
    """Form micro-interaction; never the typed value (the model has no field for it)."""

    form_id: ShortStr | None = None
    field_id: ShortStr | None = None
    action: Literal["focus", "blur", "change", "submit", "abandon"]


class MouseTrajectoryProps(_Props):
    """Summary of a stretch of pointer samples (units in names; jerk in px/s^3)."""

    path_length_px: NonNegFloat
    straightness: Annotated[float, Field(ge=0, le=1)]
    mean_speed_px_s: NonNegFloat
    jerk_px_s3: float
    pause_count: NonNegInt
    sample_count: Annotated[int, Field(ge=1, le=INT_MAX)]
    duration_ms: NonNegInt


class AddToCartProps(_Props):
    item_id: ShortStr
    quantity: Annotated[int, Field(ge=1, le=INT_MAX)] = 1
    price: float | None = None


class PurchaseProps(_Props):
    order_id: ShortStr | None = None
    value: float | None = None
    currency: ShortStr | None = None
    item_ids: list[ShortStr] = Field(default_factory=list)


class ExposureProps(_Props):
    experiment_id: ShortStr
    variant: ShortStr
    content_id: ShortStr | None = None


class IntentProps(_Props):
    """The browser's own (edge) result after one of its signals (SDK option ``edge: true``, docs/edge.md).

    Advisory only: the job never uses it to decide (``udfs.session`` ignores the type), so a forged
    score changes no server action; it is there to compare with the server's computation.
    ``intent_score`` 0-1 from ``model_version``; ``feature_hash`` = ``udfs.edge.feature_hash`` of the
    browser's feature vector; ``trigger_event_id`` the signal it was computed after; ``action`` /
    ``rule_id`` the provisional action (null when none); ``edge_latency_ms`` signal -> decision, ms.
    """

    intent_score: Annotated[float, Field(ge=0, le=1)]
    model_version: ShortStr
    rules_version: ShortStr | None = None
    feature_hash: ShortStr | None = None
    trigger_event_id: ShortStr | None = None
    action: ShortStr | None = None
    rule_id: ShortStr | None = None
    edge_latency_ms: NonNegFloat | None = None


PROPS_MODELS: dict[str, type[_Props]] = {
    "page_view": PageViewProps,
    "click": ClickProps,
    "scroll": ScrollProps,
    "hover": HoverProps,
    "visibility": VisibilityProps,
    "form": FormProps,
    "mouse_trajectory": MouseTrajectoryProps,
    "add_to_cart": AddToCartProps,
    "purchase": PurchaseProps,
    "exposure": ExposureProps,
    "intent": IntentProps,
}

_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
IdStr = Annotated[str, Field(min_length=1, max_length=ID_MAX_CHARS)]


class EventBase(BaseModel):
    """Envelope shared by every type (docs/contracts.md §1). Times are epoch milliseconds (int)."""

    model_config = _STRICT
    event_id: Annotated[str, Field(pattern=_UUID_PATTERN)]
    schema_version: Literal[1] = 1
    session_id: IdStr
    anonymous_id: IdStr
    user_id: IdStr | None = None
    seq: NonNegInt | None = None
    client_ts_ms: Int64
    sent_at_ms: Int64 | None = None
    received_at_ms: Int64 | None = None
    ts_ms: Int64
    page: Page = Field(default_factory=Page)
    context: Context = Field(default_factory=Context)
    flags: list[str] = Field(default_factory=list)
    #: one of EVENT_SOURCES, or null for a replayed data set
    source: Literal[EVENT_SOURCES] | None = None  # type: ignore[valid-type]
    #: the tracker's own id of the event it was mapped from (Snowplow ``eid``, Segment ``messageId``,
    #: PostHog ``uuid``), or null when the tracker has none
    source_event_id: ShortStr | None = None


class PageViewEvent(EventBase):
    type: Literal["page_view"]
    props: PageViewProps = Field(default_factory=PageViewProps)


class ClickEvent(EventBase):
    type: Literal["click"]
    props: ClickProps = Field(default_factory=ClickProps)


class ScrollEvent(EventBase):
    type: Literal["scroll"]
    props: ScrollProps


class HoverEvent(EventBase):
    type: Literal["hover"]
    props: HoverProps


class VisibilityEvent(EventBase):
    type: Literal["visibility"]
    props: VisibilityProps


class FormEvent(EventBase):
    type: Literal["form"]
    props: FormProps


class MouseTrajectoryEvent(EventBase):
    type: Literal["mouse_trajectory"]
    props: MouseTrajectoryProps


class AddToCartEvent(EventBase):
    type: Literal["add_to_cart"]
    props: AddToCartProps


class PurchaseEvent(EventBase):
    type: Literal["purchase"]
    props: PurchaseProps = Field(default_factory=PurchaseProps)


class ExposureEvent(EventBase):
    type: Literal["exposure"]
    props: ExposureProps


class IntentEvent(EventBase):
    type: Literal["intent"]
    props: IntentProps


Event = Annotated[
    Union[
        PageViewEvent,
        ClickEvent,
        ScrollEvent,
        HoverEvent,
        VisibilityEvent,
        FormEvent,
        MouseTrajectoryEvent,
        AddToCartEvent,
        PurchaseEvent,
        ExposureEvent,
        IntentEvent,
    ],
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter = TypeAdapter(Event)


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event, generated from :data:`Event`."""
    schema = EVENT_ADAPTER.json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://intentflow.dev/schemas/event.v1.json",
        "title": "intentflow event v1",
        "description": "A normalized event on Kafka topic signals.raw (docs/contracts.md §1). "
        "Generated by `python -m udfs.contract`; do not edit by hand.",
        **schema,
    }
