"""Load generator of the end-to-end benchmark: a realistic event mix, pre-serialized, paced into Kafka.

**Sessions** (templates, built once per run by :func:`build_templates`, seeded):

* every OTTO session of ``otto/test_resources_train.jsonl`` and ``otto/src_out_train_sessions.jsonl``
  (page views + clicks, add-to-carts, purchases; a session id seen in an earlier file is skipped);
* the YOOCHOOSE sessions of the first :data:`YOOCHOOSE_EVENTS` converted events of
  ``yoochoose_rsc15`` (page views + clicks; median session 3 clicks, docs of the data set);
* every :data:`SCENARIO_EVERY`-th template is a scripted :mod:`udfs.scenarios` session (alternately
  :func:`~udfs.scenarios.article_session` and :func:`~udfs.scenarios.shallow_session`), which carries
  the product-page hovers and scrolls the default rules fire on.

**The mix rule** (:func:`augment_session`): the real click streams carry no scroll, hover or pointer
signals, so after every ``page_view`` of an OTTO/YOOCHOOSE session the generator inserts, in this order
and before the page's click:

1. one ``scroll`` with ``scroll_depth_pct = 100 * Beta(2, 3)`` (mean 40 %, mode 33 %; our choice: most
   visitors do not reach the bottom of a product page), ``document_height_px`` = 3600 (the demo page's);
2. one ``hover`` on the product card with ``hover_ms`` = lognormal(median 800 ms, sigma 0.8),
   rounded, at least 1 (our choice: ~0.3 % fall below the 100 ms noise threshold of udfs/noise.py and are
   suppressed, as a pass-over would be);
3. with probability :data:`TRAJECTORY_PROB` (0.5, our choice) one ``mouse_trajectory`` whose summary
   (``props``) is drawn uniformly from real Balabit stretches (``udfs.datasets.balabit``).

So a page view brings 2 or 3 extra events (2.5 on average). All draws come from one
``random.Random(seed)``.

**The stream** (:class:`EventStream`): :data:`CONCURRENT_SESSIONS` sessions are open at once; each next
event comes from a uniformly drawn open session (its next event, so per-session order is kept); a
finished session is replaced by the next template (templates are cycled in a seeded shuffled order).
Every produced event gets a fresh ``event_id`` (a UUID made of the run id and a counter) and its session
a fresh id per pass over the templates (``{template session id}~{run tag}.{pass}``), so the job's dedup
never eats a re-used template event.

**Timestamps**: ``client_ts_ms`` and ``ts_ms`` are the send time (epoch ms), written into the pre-serialized
JSON bytes just before ``producer.send`` (:func:`fill`), so the job's event-time logic sees a live stream.

**Pacing** (:func:`events_due`): event ``i`` (0-based) of a level at ``rate_eps`` is due at
``i / rate_eps`` s after the level start; the sender sends every due event, then sleeps until the next one
is due (at most :data:`MAX_SLEEP_S`).
"""
from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

#: Open sessions at once (our choice: ~3.5k concurrent visitors is what 500-5000 events/s of ~10-event
#: sessions spread over minutes look like; 500 keeps every session's events a few hundred ms apart at 2k/s).
CONCURRENT_SESSIONS = 500
#: YOOCHOOSE events converted into templates (build time ~2 s; ~3.8k sessions).
YOOCHOOSE_EVENTS = 30_000
#: Balabit trajectory summaries in the pool the mix rule draws from.
BALABIT_TRAJECTORIES = 3_000
#: One template in this many is a scripted scenario session.
SCENARIO_EVERY = 20
#: Probability that a page view gets a mouse_trajectory event.
TRAJECTORY_PROB = 0.5
#: Beta(a, b) of the scroll depth (fraction of the page).
SCROLL_BETA = (2.0, 3.0)
#: Lognormal of hover_ms: median (ms) and sigma.
HOVER_MEDIAN_MS = 800.0
HOVER_SIGMA = 0.8
#: Height of the product page, px (the demo page's document height in udfs.scenarios).
DOCUMENT_HEIGHT_PX = 3600
#: Producer linger, ms: the collector's default (collector/app.py ``linger_ms = 2``), so the Kafka hop is
#: what a collector-fed stream sees.
LINGER_MS = 2
#: Longest sleep of the pacing loop, s (keeps the loop responsive to the clock).
MAX_SLEEP_S = 0.002

#: Placeholders written into templates before serialization, replaced per produced event.
_SENT_EVENT_ID = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
_SENT_SESSION = "@@session@@"
_SENT_TS = 1_999_999_999_999


def events_due(elapsed_s: float, rate_eps: float | None, total: int) -> int:
    """How many events of a paced level must have been sent ``elapsed_s`` after its start.

    Event ``i`` is due at ``i / rate_eps`` s, so ``floor(elapsed_s * rate_eps) + 1`` are due (capped at
    ``total``); ``rate_eps=None`` (flat out) means all of them. Before the start (negative) none.
    """
    if rate_eps is None:
        return total
    if elapsed_s < 0:
        return 0
    return min(total, math.floor(elapsed_s * rate_eps) + 1)


def next_due_s(i: int, rate_eps: float) -> float:
    """Seconds after the level start at which event ``i`` (0-based) is due."""
    return i / rate_eps


def augment_session(events: list[dict[str, Any]], rng: random.Random,
                    trajectories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply the mix rule (module docstring) to one real session; returns a new list of event dicts.

    Inserted events copy the page view's ``session_id``, ``anonymous_id``, ``page`` and time; their
    ``event_id`` s are placeholders (the stream assigns real ones). ``trajectories`` is a pool of
    ``mouse_trajectory`` ``props`` (empty: no trajectory events).
    """
    out: list[dict[str, Any]] = []
    for event in events:
        out.append(event)
        if event["type"] != "page_view":
            continue
        base = {k: v for k, v in event.items() if k not in ("type", "props")}
        depth = round(100.0 * rng.betavariate(*SCROLL_BETA), 1)
        out.append({**base, "type": "scroll",
                    "props": {"scroll_depth_pct": depth, "scroll_depth_pct_raw": depth,
                              "offset_px": int(DOCUMENT_HEIGHT_PX * depth / 100.0),
                              "document_height_px": DOCUMENT_HEIGHT_PX}})
        hover_ms = max(1, int(round(rng.lognormvariate(math.log(HOVER_MEDIAN_MS), HOVER_SIGMA))))
        item = (event.get("page") or {}).get("item_id") or "card"
        out.append({**base, "type": "hover",
                    "props": {"element_id": f"product-{item}", "element_role": "product_card",
                              "hover_ms": hover_ms}})
        if trajectories and rng.random() < TRAJECTORY_PROB:
            out.append({**base, "type": "mouse_trajectory", "props": dict(rng.choice(trajectories))})
    return out


@dataclass
class Template:
    """One session's events serialized with placeholders: ``parts`` around ``slots`` (in order)."""

    session_id: str
    events: list[tuple[list[bytes], list[str]]]


def compile_event(event: dict[str, Any]) -> tuple[list[bytes], list[str]]:
    """Serialize ``event`` with placeholders; return the byte parts and the slot names between them.

    Slots are ``event_id``, ``session_id`` and ``ts`` (twice: ``client_ts_ms`` and ``ts_ms``).

    Raises:
        ValueError: a placeholder is missing or appears elsewhere in the event.
    """
    e = dict(event)
    e["event_id"] = _SENT_EVENT_ID
    e["session_id"] = _SENT_SESSION
    e["client_ts_ms"] = e["ts_ms"] = _SENT_TS
    raw = orjson.dumps(e)
    pattern = re.compile(b"(" + b"|".join(re.escape(s) for s in
                                          (_SENT_EVENT_ID.encode(), _SENT_SESSION.encode(), str(_SENT_TS).encode()))
                         + b")")
    pieces = pattern.split(raw)
    parts = pieces[0::2]
    names = {_SENT_EVENT_ID.encode(): "event_id", _SENT_SESSION.encode(): "session_id", str(_SENT_TS).encode(): "ts"}
    slots = [names[p] for p in pieces[1::2]]
    if sorted(slots) != ["event_id", "session_id", "ts", "ts"]:
        raise ValueError(f"placeholders of event {event.get('event_id')} found as {slots}")
    return parts, slots


def fill(head: bytes, mid: bytes, tail: bytes, ts_ms: int) -> bytes:
    """Final Kafka value: the pre-filled pieces around the two timestamps (client_ts_ms, ts_ms)."""
    ts = str(ts_ms).encode()
    return head + ts + mid + ts + tail


def _prefill(parts: list[bytes], slots: list[str], event_id: str, session_id: str) -> tuple[bytes, bytes, bytes]:
    """Fill the id slots; return ``(head, mid, tail)`` around the two ``ts`` slots."""
    out: list[bytes] = [parts[0]]
    for slot, part in zip(slots, parts[1:]):
        if slot == "ts":
            out.append(b"\0TS\0")
        else:
            out.append((event_id if slot == "event_id" else session_id).encode())
        out.append(part)
    head, mid, tail = b"".join(out).split(b"\0TS\0")
    return head, mid, tail


def build_templates(data_root: Path, seed: int = 7, yoochoose_events: int = YOOCHOOSE_EVENTS) -> tuple[list[Template], dict]:
    """Real sessions + scenarios with the mix rule applied, compiled. Returns ``(templates, facts)``.

    Raises:
        FileNotFoundError: the data folder (``../shared/data``) is missing.
    """
    from udfs.datasets import balabit, otto, yoochoose
    from udfs.scenarios import article_session, shallow_session

    rng = random.Random(seed)
    trajectories = [e["props"] for e in balabit.iter_events(data_root / "balabit_mouse", limit=BALABIT_TRAJECTORIES)]
    sessions: dict[str, list[dict[str, Any]]] = {}
    for path in (data_root / "otto" / "test_resources_train.jsonl", data_root / "otto" / "src_out_train_sessions.jsonl"):
        for s in otto.iter_sessions(otto.iter_events(path)):
            sessions.setdefault(s[0]["session_id"], s)
    for s in otto.iter_sessions(yoochoose.iter_events(data_root / "yoochoose_rsc15", limit=yoochoose_events)):
        sessions.setdefault(s[0]["session_id"], s)
    real = list(sessions.values())
    rng.shuffle(real)
    templates: list[Template] = []
    type_counts: Counter = Counter()
    for i, s in enumerate(real):
        if i % SCENARIO_EVERY == 0:
            k = i // SCENARIO_EVERY
            scripted = (article_session if k % 2 == 0 else shallow_session)(f"scenario-{k}", 0)
            templates.append(_template(scripted, type_counts))
        templates.append(_template(augment_session(s, rng, trajectories), type_counts))
    total = sum(type_counts.values())
    facts = {"templates": len(templates), "template_events": total,
             "type_mix": {t: round(n / total, 4) for t, n in type_counts.most_common()},
             "trajectory_pool": len(trajectories), "seed": seed, "concurrent_sessions": CONCURRENT_SESSIONS}
    return templates, facts


def _template(events: list[dict[str, Any]], type_counts: Counter) -> Template:
    type_counts.update(e["type"] for e in events)
    return Template(events[0]["session_id"], [compile_event(e) for e in events])


@dataclass
class EventStream:
    """The interleaved stream of produced events (module docstring). Deterministic for a seed.

    ``take(n)`` returns ``n`` items ``(key bytes, head, mid, tail)``; :func:`fill` makes the value.
    """

    templates: list[Template]
    run_id: int
    seed: int = 7
    concurrent: int = CONCURRENT_SESSIONS
    counter: int = 0
    _rng: random.Random = field(init=False)
    _order: Iterator = field(init=False)
    _open: list = field(init=False)
    _pass: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._order = self._templates()
        self._open = [self._next_session() for _ in range(self.concurrent)]

    def _templates(self) -> Iterator[tuple[int, Template]]:
        while True:
            order = list(range(len(self.templates)))
            self._rng.shuffle(order)
            for i in order:
                yield self._pass, self.templates[i]
            self._pass += 1

    def _next_session(self) -> list:
        n, tpl = next(self._order)
        return [f"{tpl.session_id}~{self.run_id:x}.{n}", tpl, 0]

    def open_each(self) -> list[tuple[bytes, bytes, bytes, bytes]]:
        """The next event of every open session, slot by slot (one item per session: ``concurrent`` items).

        Sent before a measurement, it makes every one of the ``concurrent`` sessions known to the target
        (``intentflow bench --sessions``); afterwards :meth:`take` goes on as usual.
        """
        return self.take(self.concurrent, slots=range(self.concurrent))

    def take(self, n: int, slots=None) -> list[tuple[bytes, bytes, bytes, bytes]]:
        out = []
        rng = self._rng
        run_bits = (self.run_id & 0xFFFFFFFFFFFFFFFF) << 64
        slot_iter = iter(slots) if slots is not None else None
        for _ in range(n):
            slot = next(slot_iter) if slot_iter is not None else rng.randrange(self.concurrent)
            cur = self._open[slot]
            session_id, tpl, pos = cur
            parts, slots = tpl.events[pos]
            event_id = str(uuid.UUID(int=run_bits | self.counter))
            self.counter += 1
            head, mid, tail = _prefill(parts, slots, event_id, session_id)
            out.append((session_id.encode(), head, mid, tail))
            if pos + 1 >= len(tpl.events):
                self._open[slot] = self._next_session()
            else:
                cur[2] = pos + 1
        return out


@dataclass
class LevelProduced:
    """What the sender did in one level."""

    sent: int
    duration_s: float
    flush_s: float
    errors: int
    start_ms: int
    end_ms: int

    @property
    def achieved_eps(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0


def make_producer(bootstrap: str):
    """kafka-python producer: acks=1, linger :data:`LINGER_MS`, no compression."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=LINGER_MS, retries=3,
                         max_in_flight_requests_per_connection=5, client_id="intentflow-bench")


def produce_level(producer, topic: str, items: list[tuple[bytes, bytes, bytes, bytes]], rate_eps: float | None,
                  duration_s: float, progress: list[int] | None = None) -> LevelProduced:
    """Send ``items`` paced at ``rate_eps`` (None: flat out) for at most ``duration_s``; then flush.

    ``progress[0]`` (when given) is increased by the number sent after each burst (read by a sampler).
    """
    progress = [0] if progress is None else progress
    errors = [0]

    def on_error(_exc) -> None:
        errors[0] += 1

    total = len(items)
    send = producer.send
    perf = time.perf_counter
    clock_ns = time.time_ns
    start_ms = clock_ns() // 1_000_000
    t0 = perf()
    i = 0
    deadline = t0 + duration_s
    while i < total:
        now = perf()
        if now >= deadline:
            break
        due = events_due(now - t0, rate_eps, total) if rate_eps is not None else min(total, i + 256)
        if due <= i:
            time.sleep(min(MAX_SLEEP_S, max(0.0, t0 + next_due_s(i, rate_eps) - now)))
            continue
        ts = str(clock_ns() // 1_000_000).encode()
        for key, head, mid, tail in items[i:due]:
            send(topic, value=head + ts + mid + ts + tail, key=key).add_errback(on_error)
        progress[0] += due - i
        i = due
    t_end = perf()
    end_ms = clock_ns() // 1_000_000
    producer.flush()
    return LevelProduced(sent=i, duration_s=t_end - t0, flush_s=perf() - t_end, errors=errors[0],
                         start_ms=start_ms, end_ms=end_ms)
