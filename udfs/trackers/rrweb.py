"""rrweb recordings -> raw SDK-shaped events (docs/contracts.md §6.3); one implementation for the live
endpoint (``POST /v1/rrweb``), PostHog ``$snapshot`` events (:mod:`udfs.trackers.posthog`) and the rrweb
data-set replay (:mod:`udfs.datasets.rrweb`).

rrweb event ``type`` (rrweb ``EventType``): 2 full snapshot, 3 incremental snapshot, 4 meta; incremental
``data.source`` (rrweb ``IncrementalSource``): 0 mutation, 1 mouse move (``positions`` with ``x``,
``y`` px and ``timeOffset`` ms, <= 0, relative to the event's ``timestamp``), 2 mouse interaction
(``data.type``: 2 click, 5 focus, 6 blur), 3 scroll (``x``/``y`` offsets px of node ``id``), 4 viewport
resize, 5 input.

Mapping (one :class:`RrwebMapper` per recorded session, fed in recording order):

- meta (4) -> ``page_view`` (``page.url = data.href``; viewport from ``width``/``height``); its title
  is the ``<title>`` of the full snapshot that follows; ``page.item_id`` from a
  ``<meta name="intentflow:item-id" content=...>`` in that snapshot when the page has one;
- full snapshot (2) and mutations (0): no event; they give the element of each node id (tag and
  attributes, parent) so that interactions name their element;
- mouse moves (3/1) -> samples, cut into stretches and summarised by the SDK's definition
  (:mod:`udfs.datasets.trajectory`) -> ``mouse_trajectory`` (a stretch also ends at the end of a batch);
- click (3/2, type 2) -> ``click`` with ``x_px``/``y_px``; the element is the nearest ancestor-or-self
  with a ``data-if-id`` / ``data-if-role`` attribute (our page markup), else the node's ``id``
  attribute, else ``"rrweb-node-{id}"``;
- focus / blur of an ``input``/``textarea``/``select`` (3/2, type 5/6) -> ``form`` ``focus``/``blur``;
  input (3/5) -> ``form`` ``change``; ``field_id`` as the click's element, ``form_id`` of the enclosing
  ``<form>``; the typed text is never read;
- scroll of the document (3/3) -> ``scroll`` when the document height is known (``document_height_px``
  option): ``scroll_depth_pct = (y + viewport height) / document height``. rrweb records offsets, not
  layout, so without it a document scroll is rejected (``scroll_depth_not_a_number``, detail names
  ``rrweb scroll``); scrolls of inner elements give no event (counted ``scroll_of_element``);
- viewport resize (3/4) -> no event: ``context.viewport_*_px`` of later events;
- other types and sources (style sheets, media, canvas, custom, plugin) -> no event, counted
  ``skipped_*``: they are not behavioral signals. An item that is not ``{type, data, timestamp}``
  -> rejected (``not_an_object``, ``missing_field``, ``bad_timestamp``, ``wrong_type``; the detail names
  the rrweb field).

Ids: rrweb events have none; ``event_id = uuid5("{id_prefix}:{key}")`` with ``key`` from the item's index
in its batch (the caller makes ``id_prefix`` unique per batch content, so a retried batch gets the same
ids).

Why this module is over 400 lines: a third of it is the mapping above, and the rest is one
:class:`RrwebMapper` whose state (node tree, pending trajectory, viewport, title) every rrweb event
kind reads and updates; split, each part would need the whole state.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from udfs.contract import derive_event_id
from udfs.datasets import count
from udfs.datasets.trajectory import TRAJECTORY_MIN_SAMPLES, split_stretches, summarize_trajectory
from udfs.trackers import Item, Mapped, Rejected, content_digest

#: rrweb ``EventType`` / ``IncrementalSource`` / ``MouseInteractions`` codes used here.
FULL_SNAPSHOT, INCREMENTAL, META = 2, 3, 4
SRC_MUTATION, SRC_MOUSE_MOVE, SRC_MOUSE_INTERACTION, SRC_SCROLL, SRC_VIEWPORT, SRC_INPUT = 0, 1, 2, 3, 4, 5
MI_CLICK, MI_FOCUS, MI_BLUR = 2, 5, 6
_FORM_TAGS = frozenset({"input", "textarea", "select"})
#: what :class:`DomState` keeps of each node: these tags (else None) and these attributes
_KEPT_TAGS = _FORM_TAGS | {"form", "meta", "title", "button", "a"}
_KEPT_ATTRIBUTES = frozenset({"data-if-id", "data-if-role", "id", "name"})
_NO_ATTRIBUTES: dict[str, str] = {}
#: ``<meta name=...>`` whose ``content`` is the product on the page (our page markup).
ITEM_META_NAME = "intentflow:item-id"


@dataclass
class DomState:
    """What a session's recording told so far about its page: url/item id, viewport, the elements of
    node ids (tag, attributes, parent id), ``<title>`` texts, the document's node id. Kept between the
    batches of a session by :class:`DomStates` (rrweb sends the snapshot once, interactions later)."""

    page: dict[str, Any] = field(default_factory=dict)
    viewport: dict[str, int] = field(default_factory=dict)
    nodes: dict[int, tuple[str | None, dict, int | None]] = field(default_factory=dict)
    titles: dict[int, str | None] = field(default_factory=dict)
    document_id: int | None = None


class DomStates:
    """Bounded LRU of :class:`DomState` per session id (``max_sessions``; the least recently used is
    forgotten, its later interactions then name elements ``rrweb-node-{id}``). A state keeps, per
    element (not text) node, its parent id and at most the tag and four short attributes that name
    elements: the demo page's 172 elements take ~27 KB (tracemalloc), so 2,000 such sessions ~55 MB.
    Not thread-safe: use it from one thread (the collector's event loop)."""

    def __init__(self, max_sessions: int = 2_000) -> None:
        self.max_sessions = max_sessions
        self._states: OrderedDict[str, DomState] = OrderedDict()

    def get(self, session_id: str) -> DomState:
        """The session's state (a new one if unknown), marked most recently used."""
        state = self._states.pop(session_id, None) or DomState()
        self._states[session_id] = state
        while len(self._states) > self.max_sessions:
            self._states.popitem(last=False)
        return state

    def peek(self, session_id: str) -> DomState | None:
        """The session's state if known, without creating one or changing the LRU order."""
        return self._states.get(session_id)

    def __len__(self) -> int:
        return len(self._states)


class RrwebMapper:
    """Maps one recorded session's rrweb events, in recording order, to :class:`Mapped` items.

    Args:
        session_id: our ``session_id`` for the recording.
        id_prefix: prefix of the derived event ids (see module docstring).
        source: ``rrweb`` or ``posthog``.
        anonymous_id, user_id: ids of the visitor when known (default: ``session_id`` / null).
        document_height_px: the page's document height, px, to turn scroll offsets into a depth.
        base_ts_ms: epoch ms for events without a ``timestamp`` (then ``base_ts_ms + index``); None
            makes a missing timestamp a rejection (``bad_timestamp``).
        sent_at_ms: when the batch was sent (client clock, epoch ms), for the skew correction.
        source_event_id: the tracker's id of the batch (PostHog's event ``uuid``), kept on each event.
        stats: optional dict receiving counts (``rrweb_events_read``, ``skipped_*``, ...).
        dom: what earlier batches of the session told (see :class:`DomState`); default a fresh one.
        emit_types: our event types to emit (None: all); the others are counted
            ``not_emitted_<type>`` (PostHog takes page views and clicks from its own events).
    """

    def __init__(self, *, session_id: str, id_prefix: str, source: str = "rrweb", anonymous_id: str | None = None,
                 user_id: str | None = None, document_height_px: float | None = None,
                 base_ts_ms: int | None = None, sent_at_ms: int | None = None,
                 source_event_id: str | None = None, stats: dict | None = None,
                 dom: DomState | None = None, emit_types: frozenset[str] | None = None) -> None:
        self.session_id = session_id
        self.id_prefix = id_prefix
        self.source = source
        self.anonymous_id = anonymous_id or session_id
        self.user_id = user_id
        self.document_height_px = document_height_px
        self.base_ts_ms = base_ts_ms
        self.sent_at_ms = sent_at_ms
        self.source_event_id = source_event_id
        self.stats = stats
        self.dom = dom if dom is not None else DomState()
        self.emit_types = emit_types
        self.samples: list[tuple[float, float, float]] = []
        self.pending_view: dict[str, Any] | None = None
        self.out: list[Item] = []

    # ---- output ------------------------------------------------------------------------------

    def _emit(self, etype: str, ts_ms: int, key: str, props: dict | None, payload: Any) -> None:
        if self.emit_types is not None and etype not in self.emit_types:
            count(self.stats, f"not_emitted_{etype}")
            return
        raw = {"type": etype, "event_id": derive_event_id(f"{self.id_prefix}:{key}"), "session_id": self.session_id,
               "anonymous_id": self.anonymous_id, "user_id": self.user_id, "client_ts_ms": ts_ms,
               "page": dict(self.dom.page), "context": dict(self.dom.viewport), "props": props or {}}
        self.out.append(Mapped(raw, self.source, self.source_event_id, self.sent_at_ms, payload))

    def _reject(self, reason: str, detail: str, payload: Any) -> None:
        count(self.stats, f"rejected_{reason}")
        self.out.append(Rejected(reason, detail, payload, self.source_event_id))

    def _flush_samples(self, payload: Any = None) -> None:
        for k, stretch in enumerate(split_stretches(self.samples)):
            if len(stretch) < TRAJECTORY_MIN_SAMPLES:
                count(self.stats, "short_stretches_dropped")
                continue
            t_end = int(round(stretch[-1][0]))
            self._emit("mouse_trajectory", t_end, f"traj:{t_end}:{k}", summarize_trajectory(stretch),
                       payload or {"rrweb": "mouse moves", "samples": len(stretch)})
        self.samples = []

    def _flush_view(self, title: str | None) -> None:
        view = self.pending_view
        self.pending_view = None
        self._emit("page_view", view["ts_ms"], view["key"], {"title": title}, view["payload"])

    # ---- the DOM -----------------------------------------------------------------------------

    def _index_nodes(self, node: Any, parent: int | None) -> None:
        stack = [(node, parent)]
        while stack:
            n, par = stack.pop()
            if not isinstance(n, dict):
                continue
            nid = n.get("id")
            if isinstance(nid, int) and n.get("type") in (0, 2):  # the document and elements, not text
                attrs = n.get("attributes") if isinstance(n.get("attributes"), dict) else {}
                tag = n.get("tagName")
                # kept small (a session's state lives between batches): only what names an element
                kept = {k: str(v)[:256] for k, v in attrs.items() if k in _KEPT_ATTRIBUTES} or _NO_ATTRIBUTES
                self.dom.nodes[nid] = (tag if tag in _KEPT_TAGS else None, kept, par)
                if n.get("type") == 0:
                    self.dom.document_id = nid
                if n.get("tagName") == "meta" and attrs.get("name") == ITEM_META_NAME and attrs.get("content"):
                    self.dom.page["item_id"] = str(attrs["content"])
            for child in n.get("childNodes") or []:
                stack.append((child, nid if isinstance(nid, int) else par))

    def _title(self) -> str | None:
        return next(iter(self.dom.titles.values()), None)

    def element(self, node_id: Any) -> dict[str, str | None]:
        """``{"element_id", "element_role", "form_id", "tag"}`` of a node id (see module docstring)."""
        own = self.dom.nodes.get(node_id) if isinstance(node_id, int) else None
        tag = own[0] if own else None
        element_id = element_role = form_id = None
        nid, depth = node_id, 0
        while isinstance(nid, int) and nid in self.dom.nodes and depth < 64:
            t, attrs, parent = self.dom.nodes[nid]
            if element_id is None and element_role is None and ("data-if-id" in attrs or "data-if-role" in attrs):
                element_id, element_role = attrs.get("data-if-id"), attrs.get("data-if-role")
            if t == "form" and form_id is None:
                form_id = attrs.get("data-if-id") or attrs.get("id") or attrs.get("name")
            nid, depth = parent, depth + 1
        if element_id is None and element_role is None and own:
            element_id = own[1].get("id") or own[1].get("name")
        if element_id is None:
            element_id = f"rrweb-node-{node_id}"
        return {"element_id": _s(element_id), "element_role": _s(element_role), "form_id": _s(form_id), "tag": tag}

    # ---- feeding -----------------------------------------------------------------------------

    def feed(self, idx: int, ev: Any) -> list[Item]:
        """Map one rrweb event (``idx``: its index in the batch, part of the derived ids); returns the
        items completed by it (a page view waits for its snapshot, mouse moves for the next non-move).
        Never raises: an event of a shape no rule expected is rejected (``wrong_type``)."""
        try:
            return self._feed(idx, ev)
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError) as exc:
            self._reject("wrong_type", f"{self.source} rrweb event #{idx}: {type(exc).__name__}: {exc}"[:300], ev)
            return self.out

    def _feed(self, idx: int, ev: Any) -> list[Item]:
        count(self.stats, "rrweb_events_read")
        self.out = []
        if not isinstance(ev, dict):
            self._reject("not_an_object", f"{self.source} rrweb event #{idx}: expected an object", ev)
            return self.out
        etype, data = ev.get("type"), ev.get("data")
        if not isinstance(etype, int):
            self._reject("missing_field", f"{self.source} rrweb event #{idx}: type", ev)
            return self.out
        if not isinstance(data, dict):
            self._reject("wrong_type", f"{self.source} rrweb event #{idx} data: expected an object", ev)
            return self.out
        ts = ev.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
            if self.base_ts_ms is None:
                self._reject("bad_timestamp", f"{self.source} rrweb event #{idx} timestamp={str(ts)[:40]!r}", ev)
                return self.out
            count(self.stats, "events_without_timestamp")
            ts = self.base_ts_ms + idx
        ts_ms = int(ts)
        if self.pending_view is not None and etype != FULL_SNAPSHOT:  # a meta without its snapshot: no title
            self._flush_view(None)
        if etype == META:
            self._flush_samples()
            href = data.get("href")
            self.dom.page = {"url": href if isinstance(href, str) else None, "item_id": None}
            if isinstance(data.get("width"), int) and isinstance(data.get("height"), int):
                self.dom.viewport = {"viewport_w_px": data["width"], "viewport_h_px": data["height"]}
            self.pending_view = {"ts_ms": ts_ms, "key": f"{idx}:page_view", "payload": ev}
        elif etype == FULL_SNAPSHOT:
            self.dom.nodes, self.dom.titles = {}, {}
            self._index_nodes(data.get("node"), None)
            self._collect_texts(data.get("node"))
            if self.pending_view is not None:
                self._flush_view(self._title())
            else:
                count(self.stats, "skipped_full_snapshot")
        elif etype == INCREMENTAL:
            self._incremental(idx, ts_ms, data, ev)
        else:
            count(self.stats, f"skipped_type_{etype}")
        return self.out

    def _collect_texts(self, node: Any) -> None:
        """Text of each ``<title>`` element (for the page view's title)."""
        stack = [node]
        while stack:
            n = stack.pop()
            if not isinstance(n, dict):
                continue
            if n.get("tagName") == "title" and isinstance(n.get("id"), int):
                texts = [c.get("textContent", "") for c in n.get("childNodes", []) if isinstance(c, dict)]
                self.dom.titles[n["id"]] = "".join(t for t in texts if isinstance(t, str)).strip() or None
            stack.extend(reversed(n.get("childNodes") or []))

    def _incremental(self, idx: int, ts_ms: int, data: dict, ev: dict) -> None:
        source = data.get("source")
        if source == SRC_MOUSE_MOVE:
            positions = data.get("positions")
            if not isinstance(positions, list):
                self._reject("wrong_type", f"{self.source} rrweb mouse move #{idx} data.positions: expected a list", ev)
                return
            for pos in positions:
                try:
                    self.samples.append((ts_ms + float(pos.get("timeOffset", 0)), float(pos["x"]), float(pos["y"])))
                except (AttributeError, KeyError, TypeError, ValueError):
                    self._reject("wrong_type", f"{self.source} rrweb mouse move #{idx} data.positions: "
                                               "expected {x, y, timeOffset} numbers", ev)
                    return
            return
        self._flush_samples()
        if source == SRC_MUTATION:
            for add in data.get("adds") or []:
                if isinstance(add, dict):
                    self._index_nodes(add.get("node"), add.get("parentId"))
            count(self.stats, "mutations_indexed")
        elif source == SRC_MOUSE_INTERACTION:
            kind = data.get("type")
            el = self.element(data.get("id"))
            if kind == MI_CLICK:
                props = {"element_id": el["element_id"], "element_role": el["element_role"],
                         "x_px": _num(data.get("x")), "y_px": _num(data.get("y"))}
                self._emit("click", ts_ms, f"{idx}:click", props, ev)
            elif kind in (MI_FOCUS, MI_BLUR) and el["tag"] in _FORM_TAGS:
                self._emit("form", ts_ms, f"{idx}:form", {"form_id": el["form_id"], "field_id": el["element_id"],
                                                          "action": "focus" if kind == MI_FOCUS else "blur"}, ev)
            else:
                count(self.stats, f"skipped_mouse_interaction_{kind}")
        elif source == SRC_SCROLL:
            if self.dom.document_id is not None and data.get("id") != self.dom.document_id:
                count(self.stats, "scroll_of_element")
                return
            y = _num(data.get("y"))
            if y is None:
                self._reject("wrong_type", f"{self.source} rrweb scroll #{idx} data.y: expected a number", ev)
            elif not self.document_height_px:
                count(self.stats, "scroll_no_document_height")
                self._reject("scroll_depth_not_a_number", f"{self.source} rrweb scroll #{idx}: rrweb records the "
                                                          "offset data.y, not the document height", ev)
            else:
                vh = self.dom.viewport.get("viewport_h_px", 0)
                depth = (y + vh) / self.document_height_px * 100
                self._emit("scroll", ts_ms, f"{idx}:scroll", {"scroll_depth_pct": min(100.0, max(0.0, depth)),
                                                              "scroll_depth_pct_raw": depth, "offset_px": y,
                                                              "document_height_px": float(self.document_height_px)}, ev)
        elif source == SRC_VIEWPORT:
            w, h = data.get("width"), data.get("height")
            if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w >= 0 and h >= 0:
                self.dom.viewport = {"viewport_w_px": int(w), "viewport_h_px": int(h)}
                count(self.stats, "viewport_resizes_applied")
            else:
                self._reject("wrong_type", f"{self.source} rrweb viewport resize #{idx} data.width/height", ev)
        elif source == SRC_INPUT:
            el = self.element(data.get("id"))
            self._emit("form", ts_ms, f"{idx}:form", {"form_id": el["form_id"], "field_id": el["element_id"],
                                                      "action": "change"}, ev)
        else:
            count(self.stats, f"skipped_incremental_source_{source}")

    def finish(self) -> list[Item]:
        """Items still pending at the end of the recording or batch (mouse moves, a page view)."""
        self.out = []
        self._flush_samples()
        if self.pending_view is not None:
            self._flush_view(None)
        return self.out


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def map_recording(events: list[Any], **mapper_kwargs: Any) -> list[Item]:
    """Map a whole list of rrweb events (one session) with a fresh :class:`RrwebMapper`."""
    mapper = RrwebMapper(**mapper_kwargs)
    items: list[Item] = []
    for idx, ev in enumerate(events):
        items.extend(mapper.feed(idx, ev))
    items.extend(mapper.finish())
    return items


def map_batch(body: Any, *, dom_states: DomStates | None = None) -> list[Item]:
    """Map one ``POST /v1/rrweb`` body: ``{"session_id": str, "anonymous_id": str?, "user_id": str?,
    "sent_at_ms": int?, "document_height_px": number?, "events": [rrweb events]}`` (rrweb itself has no
    transport: a page posts what ``rrweb.record({emit})`` collected; ``document_height_px`` is what rrweb
    cannot record, optional).

    Event ids derive from the session, a hash of the batch's events and their index, so a retried batch
    gets the same ids.

    Raises:
        ValueError: the body is not that object (``session_id`` missing or ``events`` not a list).
    """
    if not isinstance(body, dict):
        raise ValueError("expected {session_id, events: [rrweb events], ...}")
    session_id = body.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("`session_id` (a non-empty string) is required: rrweb events carry no session")
    events = body.get("events")
    if not isinstance(events, list):
        raise ValueError("`events` must be a list of rrweb events")
    doc_h = body.get("document_height_px")
    if doc_h is not None and (isinstance(doc_h, bool) or not isinstance(doc_h, (int, float)) or doc_h <= 0):
        raise ValueError("`document_height_px` must be a positive number (px)")
    sent = body.get("sent_at_ms")
    sent_at_ms = int(sent) if isinstance(sent, (int, float)) and not isinstance(sent, bool) else None
    digest = content_digest(events)[:20]
    return map_recording(events, session_id=session_id, id_prefix=f"rrweb:{session_id}:{digest}", source="rrweb",
                         anonymous_id=body.get("anonymous_id") if isinstance(body.get("anonymous_id"), str) else None,
                         user_id=body.get("user_id") if isinstance(body.get("user_id"), str) else None,
                         document_height_px=doc_h, sent_at_ms=sent_at_ms,
                         dom=dom_states.get(session_id) if dom_states is not None else None)
