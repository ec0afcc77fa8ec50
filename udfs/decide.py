"""The decision core of the personalization job: one micro-batch of events in, actions out.

Pure Python/numpy, shared by the Flink operator (operators/personalization.py), the plain-Python
baseline of the benchmark and the tests. For each micro-batch, in arrival order:

1. **dedup** by ``event_id`` (remembered per session for ``dedup_ttl_ms`` of event time);
2. **session update** with :class:`udfs.session.SessionState` (noise filter, enrichment, features);
   an event older than its session's newest event by more than ``allowed_lateness_ms`` is *late*:
   counted and returned as a DLQ record (reason ``late_event``), never silently dropped;
3. **intent score**: the feature vectors of all applied events of the batch in ONE model call;
4. **rules**: :class:`udfs.rules.RuleEngine` per applied event with that event's features and score
   and the session's cool-down table, in arrival order;
5. **aggregates**: the sessions seen per content id and event type in ``window_ms`` event-time
   windows (sets, so replays are idempotent).

Each event's decision depends only on its session's events up to it, the ruleset and the model, not
on where a batch boundary fell: the features are captured per event and the cool-down table is
updated in event order. So deciding a stream batch by batch equals deciding it all at once
(``tests/unit/test_decide.py``).

Why this module is over 400 lines: the decision core and :class:`SessionEntry`, the one value a
session keeps in keyed state, belong together: the entry's layout (lateness log, dedup, cool-downs,
experiment arms) is changed only by ``Decider.decide``.
"""
from __future__ import annotations

import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from udfs.config import JobConfig
from udfs.dedup import SeenEventIds
from udfs.dlq import dlq_record
from udfs.event_log import EventLog
from udfs.experiments import ExperimentSession, Fact, annotate_action, observe_event
from udfs.features import FEATURE_DTYPE, N_FEATURES
from udfs.interning import interned_keys
from udfs.limits import REORDER_LOG_MAX_EVENTS
from udfs.rules import RuleEngine
from udfs.session import (LATE, STATUS_APPLIED, STATUS_IGNORED, STATUS_LATE, Outcome, SessionState, event_order_key,
                           feature_rows, replay_event, replay_record)

#: Applied events per edge-scoring session whose server result is kept to check the browser's ``intent``
#: events against (an intent event follows its trigger within one SDK flush; our choice, bounded state).
EDGE_RECENT_EVENTS = 16

#: Per-session counters kept in keyed state: every event of a session ends in exactly one of them.
COUNT_FIELDS = ("applied", "suppressed", "ignored", "deduplicated", "late")
_APPLIED, _SUPPRESSED, _IGNORED, _DEDUP, _LATE = range(len(COUNT_FIELDS))


class Scorer(Protocol):
    """What the decider needs of a model (udfs.scoring.ReloadingScorer / IntentScorer)."""

    def score_with_version(self, batch: np.ndarray) -> tuple[np.ndarray, str]: ...


def log_entry(event: Mapping[str, Any], key: tuple | None = None) -> tuple[tuple, bytes]:
    """One entry of :attr:`SessionEntry.log`: ``(event_order_key(event), pickle of
    udfs.session.replay_record(event))``: only what ``SessionState.apply`` reads of the event (issue 19:
    ~150 instead of ~790 bytes per event of the benchmark's load), applied again through
    ``udfs.session.replay_event``. Pickle, not JSON: the values come back exactly (ints, floats), so a
    state rebuilt from the log equals in-order arrival bit for bit. Not compressed per event: DEFLATE with
    a preset dictionary made a whole event's entry ~7x smaller but cost ~13 us to write and ~29 us to read
    per event (1.6-1.8x the CPU per event of the whole decision, measured offline); a session's
    keyed-state value is compressed whole (``udfs.microbatch.encode_stored``), and a session not changed
    since the last state write is held as those bytes, which bounds the memory at scale."""
    return ((event_order_key(event) if key is None else key),
            pickle.dumps(replay_record(event), protocol=pickle.HIGHEST_PROTOCOL))


class SessionEntry:
    """Everything the job keeps per session (one keyed-state value, pickled).

    Events are applied in event-time order (:func:`udfs.session.event_order_key`) within
    ``allowed_lateness_ms``: besides the live :class:`SessionState`, the entry keeps a *lagging* state
    that has applied only the events older than ``newest - allowed_lateness_ms``, and the log of the
    newer events. An event that arrives out of order but within the bound is inserted into the log
    and the live state is rebuilt from the lagging one; an event older than the bound is late.
    In-order events (the common case) cost one extra ``apply`` on the lagging state once they slide
    out of the window. With ``allowed_lateness_ms == 0`` no log is kept. The log holds at most
    ``udfs.limits.REORDER_LOG_MAX_EVENTS`` events (only a bot's session reaches it): past it the oldest
    are folded early, and while it is full an event older than its first one is late too.

    How an out-of-order event enters order-sensitive features (gaps, EMAs, the trailing click window,
    debounce, scroll deltas): not at all directly; the live state is recomputed from the lagging state
    over the log in event-time order, so every feature is exactly what in-order arrival would have
    given, and replaying the same records (same per-partition order) gives the same states and
    decisions. Decisions already made are not revised: the inserted event is decided once, with the
    features as of its own place in event time; later events see it.

    Attributes:
        state: the session's live :class:`SessionState` (features as of the newest event).
        lag: state as of the events older than the lateness window; None while no event has left the
            window yet (a fresh state then: built on the first slide) and when the bound is 0.
        log: the events inside the lateness window, in event-time order, as ``(event_order_key, pickled
            replay record)`` entries (:func:`log_entry`) of one :class:`udfs.event_log.EventLog` buffer: only
            what ``SessionState.apply`` reads of each event (``udfs.session.replay_record``), as bytes the
            cyclic GC does not scan and a pickle copies whole. With the 5-minute
            lateness horizon the log holds every event of a session's last 5 minutes. Measured with
            bench/session_size.py (10,000 sessions of the benchmark's load, 17.3 events each): whole
            parsed events 47.9 KB of Python per session; pickled whole events 24.3 KB (pickle in Flink
            state 15.8 KB, 2.1 KB compressed); pickled replay records 13.8 KB (pickle 5.1 KB, 1.5 KB
            compressed; bench/results/session_size.json).
        seen: the event ids of recent events with their ``ts_ms``, for dedup (:class:`udfs.dedup.SeenEventIds`:
            the ids in one buffer, the times in one int64 array; bench/session_size.py, 10,000 sessions:
            1.0 KB of Python per session, 2.55 KB as the ``{event_id: ts_ms}`` dict it replaced).
        last_fired: ``{rule_id: ts_ms}`` of the event that last fired each rule (cool-down).
        counts: list of ints in :data:`COUNT_FIELDS` order.
        last_intent_score: score of the latest applied event (-1.0 before any).
        exp: the session's arms and what it was counted in (:class:`udfs.experiments.ExperimentSession`).
        last_action: the session's latest action by event time (the one its Redis ``action`` hash holds), so
            the job can write it again when Redis comes back empty (issue 14); None before any. Held as
            ``(event_ts_ms, pickle of the action)`` (~0.4 of ~1.6 KB as a dict; read only for a rebuild).
    """

    __slots__ = ("state", "lag", "log", "seen", "last_fired", "counts", "last_intent_score", "edge_recent", "exp",
                 "_last_action")

    def __init__(self) -> None:
        self.state = SessionState()
        self.lag: SessionState | None = None
        self.log = EventLog()
        self.seen = SeenEventIds()
        self.last_fired: dict[str, int] = {}
        self.counts = [0] * len(COUNT_FIELDS)
        self.last_intent_score = -1.0
        #: None until the session sends its first ``intent`` event (edge scoring); then the server's
        #: ``{event_id: (score, rule_id, features)}`` of its last :data:`EDGE_RECENT_EVENTS` applied events.
        self.edge_recent: dict[str, tuple[float, str | None, np.ndarray]] | None = None
        self.exp = ExperimentSession()
        self._last_action: tuple[int, bytes] | None = None

    @property
    def last_action(self) -> dict[str, Any] | None:
        """The latest action (a new dict per read), or None."""
        held = self._last_action
        return None if held is None else pickle.loads(held[1])

    @last_action.setter
    def last_action(self, action: dict[str, Any] | None) -> None:
        self._last_action = None if action is None else (
            action["event_ts_ms"], pickle.dumps(action, protocol=pickle.HIGHEST_PROTOCOL))

    def last_action_ts_ms(self) -> int | None:
        """``event_ts_ms`` of :attr:`last_action`, without decoding it."""
        return None if self._last_action is None else self._last_action[0]

    def __getstate__(self):
        return (self.state, self.lag, self.log, self.seen, self.last_fired, self.counts, self.last_intent_score,
                self.edge_recent, self.exp, self._last_action)

    def __setstate__(self, st) -> None:
        # 7 fields: before edge checks; 8: before experiments (a restored session counts from now on)
        st = (*st, None) if len(st) == 7 else st
        (self.state, self.lag, self.log, self.seen, self.last_fired, self.counts, self.last_intent_score,
         self.edge_recent) = st[:8]
        self.exp = st[8] if len(st) > 8 else ExperimentSession()
        held = st[9] if len(st) > 9 else None  # 9 fields: before Redis rebuilds
        # a dict: stored before the action was held as bytes
        self._last_action = None
        if isinstance(held, Mapping):
            self.last_action = held
        elif held is not None:
            self._last_action = held
        log = self.log
        if not isinstance(log, EventLog):  # a list: pickled before the log was one buffer
            if log and isinstance(log[0], Mapping):  # ... and before it held bytes (whole events)
                log = [log_entry(event) for event in log]
            self.log = EventLog(log)
        if isinstance(self.seen, dict):  # {event_id: ts_ms}: pickled before the ids were held in one buffer
            self.seen = SeenEventIds(self.seen.items())
        if self.last_fired:  # rule ids shared with the ruleset and every other restored session
            self.last_fired = interned_keys(self.last_fired)

    def remember(self, event_id: str, ts_ms: int, ttl_ms: int, max_ids: int) -> bool:
        """Record ``event_id``; False when it was seen already (a duplicate): :meth:`udfs.dedup.SeenEventIds.remember`."""
        return self.seen.remember(event_id, ts_ms, ttl_ms, max_ids)

    def apply(self, event: Mapping[str, Any], allowed_lateness_ms: int) -> tuple[Outcome, np.ndarray | None]:
        """Apply one event in event-time order within the bound.

        Returns:
            ``(outcome, features)``: the :class:`udfs.session.Outcome` and, when applied, the feature
            vector as of this event's place in event time (float32 ``(N_FEATURES,)``), else None.
            An event older than the newest one by more than ``allowed_lateness_ms`` gets status
            ``late`` and changes nothing.
        """
        state = self.state
        if allowed_lateness_ms <= 0:
            outcome = state.apply(dict(event))
            return outcome, (state.features() if outcome.status == STATUS_APPLIED else None)
        newest = state.last_event_ts_ms
        key = event_order_key(event)
        log = self.log
        if newest is None or (key >= log.last_key() if log else event["ts_ms"] >= newest):
            log.append(*log_entry(event, key))  # before apply, which may add to the event's nested dicts
            outcome = state.apply(dict(event))
            features = state.features() if outcome.status == STATUS_APPLIED else None
            self._slide(allowed_lateness_ms)
            return outcome, features
        if event["ts_ms"] < newest - allowed_lateness_ms or (
                len(log) >= REORDER_LOG_MAX_EVENTS and key < log.first_key()):
            return LATE, None
        # out of order within the bound: insert, rebuild the live state from the lagging one
        at = log.insert(*log_entry(event, key))
        # the lagging state is None until an event left the window: then it is a fresh state
        rebuilt = (pickle.loads(pickle.dumps(self.lag, protocol=pickle.HIGHEST_PROTOCOL)) if self.lag is not None
                   else SessionState())
        outcome, features = LATE, None
        session_id = state.session_id
        for i, (_key, raw) in enumerate(log):
            result = rebuilt.apply(dict(event) if i == at else replay_event(pickle.loads(raw), session_id))
            if i == at:
                outcome = result
                features = rebuilt.features() if result.status == STATUS_APPLIED else None
        self.state = rebuilt
        return outcome, features

    def _slide(self, allowed_lateness_ms: int) -> None:
        log = self.log
        n = log.leading(self.state.last_event_ts_ms - allowed_lateness_ms, REORDER_LOG_MAX_EVENTS)
        if n:
            if self.lag is None:  # built on the first event that leaves the window (issue 19: most
                self.lag = SessionState()  # sessions never have one, a state is ~3 KB in Python)
            session_id = self.state.session_id
            for raw in log.pop_front(n):
                self.lag.apply(replay_event(pickle.loads(raw), session_id))

    def count_dict(self) -> dict[str, int]:
        return dict(zip(COUNT_FIELDS, self.counts))


@dataclass
class BatchResult:
    """What one micro-batch produced.

    Attributes:
        actions: action dicts (docs/contracts.md §4), in event order, plus ``kafka_ts_ms`` when known.
        dlq: DLQ records of late events (stage ``job``, reason ``late_event``).
        touched: the sessions this batch changed ``{session_id: SessionEntry}`` (write them back).
        counters: batch totals of :data:`COUNT_FIELDS` plus ``actions``, ``events``,
            ``suppressed:<reason>``, ``cooldown``.
        aggregates: ``{(content_id, window_start_ms, event_type): {session ids}}``.
        model_version: the model version that scored this batch ("" when nothing was scored).
        trace: ``(event_id, kafka_ts_ms, client_ts_ms, ts_ms)`` of sampled events
            (``JobConfig.trace_every_n``), for the latency benchmark.
        facts: experiment counting facts (:class:`udfs.experiments.Fact`), each session counted at
            most once per experiment and metric.
    """

    actions: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[str, SessionEntry] = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)
    aggregates: dict[tuple[str, int, str], set[str]] = field(default_factory=dict)
    model_version: str = ""
    trace: list[tuple[str, int, int, int]] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)


class Decider:
    """Decides micro-batches. Holds the scorer and the current rule engine; keeps no session state.

    Args:
        config: job parameters (:class:`udfs.config.JobConfig`).
        scorer: the intent model (``score_with_version``).
        engine: the ruleset in force; replace with :meth:`set_rules` (hot reload).
        clock_ms: wall clock in epoch ms (``decided_at_ms``); injectable for tests.
    """

    def __init__(self, config: JobConfig, scorer: Scorer, engine: RuleEngine,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.config = config
        self.scorer = scorer
        self.engine = engine
        self.clock_ms = clock_ms

    def set_rules(self, engine: RuleEngine) -> None:
        """Use ``engine`` for every later event (hot reload of the ruleset)."""
        self.engine = engine

    def decide(self, events: Iterable[Mapping[str, Any]],
               load: Callable[[str], SessionEntry | None]) -> BatchResult:
        """Decide one micro-batch.

        Args:
            events: canonical event dicts (udfs.contract), in arrival order; an optional
                ``_kafka_ts_ms`` key carries the Kafka append time into the action.
            load: returns the stored entry of a session or None (keyed state, a dict, ...); called at
                most once per session per batch.

        Returns:
            :class:`BatchResult`; the caller writes ``touched`` back to its store.
        """
        cfg = self.config
        result = BatchResult()
        touched = result.touched
        counters = result.counters
        pending: list[tuple[SessionEntry, Mapping[str, Any], np.ndarray]] = []
        intents: list[tuple[SessionEntry, Mapping[str, Any]]] = []
        window_ms = cfg.window_ms
        trace_n = cfg.trace_every_n
        engine = self.engine
        experiment, adaptive, facts = engine.experiment, engine.adaptive_experiments, result.facts
        for event in events:
            counters["events"] += 1
            if trace_n and counters["events"] % trace_n == 0:
                result.trace.append((event["event_id"], event.get("_kafka_ts_ms") or 0,
                                     event.get("client_ts_ms") or 0, event["ts_ms"]))
            session_id = event["session_id"]
            entry = touched.get(session_id)
            if entry is None:
                entry = load(session_id) or SessionEntry()
                touched[session_id] = entry
            ts_ms = event["ts_ms"]
            if not entry.seen.remember(event["event_id"], ts_ms, cfg.dedup_ttl_ms, cfg.dedup_max_ids):
                entry.counts[_DEDUP] += 1
                counters["deduplicated"] += 1
                continue
            if event["type"] == "intent":  # the browser's advisory edge result: checked, never used
                if entry.edge_recent is None:
                    entry.edge_recent = {}
                intents.append((entry, event))
            outcome, features = entry.apply(event, cfg.allowed_lateness_ms)
            status = outcome.status
            if status != STATUS_LATE and (experiment is not None or adaptive):
                observe_event(entry.exp, event, experiment, adaptive, facts)
            if status == STATUS_APPLIED:
                entry.counts[_APPLIED] += 1
                counters["applied"] += 1
                pending.append((entry, event, features))
                content_ids = (event.get("page") or {}).get("content_ids") or ()
                if content_ids:
                    window_start = ts_ms - ts_ms % window_ms
                    for content_id in content_ids:
                        result.aggregates.setdefault((content_id, window_start, event["type"]), set()).add(session_id)
            elif status == STATUS_IGNORED:
                entry.counts[_IGNORED] += 1
                counters["ignored"] += 1
            elif status == STATUS_LATE:
                entry.counts[_LATE] += 1
                counters["late"] += 1
                newest = entry.state.last_event_ts_ms or ts_ms
                result.dlq.append(dlq_record(
                    "late_event", "job", {k: v for k, v in event.items() if k != "_kafka_ts_ms"},
                    event_id=event["event_id"],
                    detail=f"ts_ms {ts_ms} is {newest - ts_ms} ms older than the session's newest event "
                           f"(allowed lateness {cfg.allowed_lateness_ms} ms)"))
            else:
                entry.counts[_SUPPRESSED] += 1
                counters["suppressed"] += 1
                counters["suppressed:" + outcome.reason] += 1
        if not pending:
            self._check_intents(intents, counters)
            return result

        batch = np.empty((len(pending), N_FEATURES), dtype=FEATURE_DTYPE)
        for i, (_, _, vector) in enumerate(pending):
            batch[i] = vector
        scores, model_version = self.scorer.score_with_version(batch)
        result.model_version = model_version
        engine = self.engine
        take_shadow = getattr(self.scorer, "take_shadow_counters", None)  # a candidate scored in shadow (udfs/gate.py)
        if take_shadow is not None:
            counters.update(take_shadow())
        # quantile thresholds follow the model in force (issue 17): the IntentScorer inside the
        # ReloadingScorer, itself possibly inside the operator's TimedScorer
        current = getattr(self.scorer, "scorer", None)
        while current is not None and not hasattr(current, "manifest"):
            current = getattr(current, "scorer", None)
        if engine.quantile_model_version != model_version and current is not None:
            engine = self.engine = engine.for_model(current.manifest.raw)
        decided_at_ms = self.clock_ms()
        for (entry, event, vector), score in zip(pending, scores.tolist()):
            entry.last_intent_score = score
            decision, reason = engine.evaluate_vector_with_reason(vector, score, event, entry.last_fired)
            if entry.edge_recent is not None:
                recent = entry.edge_recent
                recent[event["event_id"]] = (score, decision.rule_id if decision else None, vector)
                while len(recent) > EDGE_RECENT_EVENTS:
                    del recent[next(iter(recent))]
            if decision is None:
                if reason.startswith("cooldown"):
                    counters["cooldown"] += 1
                continue
            entry.last_fired[decision.rule_id] = event["ts_ms"]
            action = decision.to_action(session_id=event["session_id"], model_version=model_version,
                                        intent_score=round(score, 6), event_id=event["event_id"],
                                        decided_at_ms=decided_at_ms)
            if "_kafka_ts_ms" in event:
                action["kafka_ts_ms"] = event["_kafka_ts_ms"]
            action["client_ts_ms"] = event.get("client_ts_ms")
            annotate_action(action, entry.exp, event, experiment, engine.explore_pcts.get(decision.rule_id, 0.0), facts)
            result.actions.append(action)
            latest_ts_ms = entry.last_action_ts_ms()
            if latest_ts_ms is None or action["event_ts_ms"] >= latest_ts_ms:
                entry.last_action = action  # what the write-if-newer action hash holds
            counters["actions"] += 1
        self._check_intents(intents, counters)
        return result

    @staticmethod
    def _check_intents(intents: list[tuple[SessionEntry, Mapping[str, Any]]], counters: Counter) -> None:
        """Count how each ``intent`` event's claims compare with the server's result for its trigger
        event (:func:`udfs.edge.check_intent`): ``edge_intent:<model version>``,
        ``edge_disagree:<model version>``, and ``edge_unchecked`` when the trigger is not among the
        session's recent applied events (sent before edge checks began for it, forged, or lost)."""
        if not intents:
            return
        from udfs.edge import check_intent

        for entry, event in intents:
            props = event.get("props") or {}
            known = (entry.edge_recent or {}).get(props.get("trigger_event_id") or "")
            if known is None:
                counters["edge_unchecked"] += 1
                continue
            check = check_intent(props, known[2], known[0], known[1])
            counters["edge_intent:" + check.model_version] += 1
            if check.disagrees:
                counters["edge_disagree:" + check.model_version] += 1


def session_summaries(entries: Mapping[str, SessionEntry], model_version: str,
                      rules_version: str, page_rates_version: str | None = None) -> dict[str, dict[str, Any]]:
    """``{session_id: fields}`` for the ``{prefix}session:{id}`` hashes: the event counts, the latest
    intent score, the versions (``page_rates_version`` only when a page-rates table is in force,
    udfs/page_rates.py), and the feature vector as a JSON list of the exact float32 values
    (``features``), for debugging and the batch-vs-stream feature test."""
    import orjson

    versions = {"model_version": model_version, "rules_version": rules_version}
    if page_rates_version is not None:
        versions["page_rates_version"] = page_rates_version
    # 7-30 % less per session offline (bench/scale_cost.py): the vectors in one conversion, one dict literal
    rows = feature_rows([entry.state for entry in entries.values()])
    applied, suppressed, ignored, deduplicated, late = COUNT_FIELDS
    dumps, out = orjson.dumps, {}
    for (session_id, entry), row in zip(entries.items(), rows):
        n = entry.counts
        out[session_id] = {applied: n[0], suppressed: n[1], ignored: n[2], deduplicated: n[3], late: n[4],
                           "intent_score": round(entry.last_intent_score, 6), **versions, "features": dumps(row).decode()}
    return out


def decide_all(decider: Decider, events: Iterable[Mapping[str, Any]], batch_size: int,
               store: dict[str, SessionEntry] | None = None) -> tuple[list[dict], list[dict], dict[str, SessionEntry]]:
    """Decide ``events`` in consecutive batches of ``batch_size`` with an in-memory session store.

    The reference for "batch by batch equals all at once" and the core of the plain-Python baseline.

    Returns:
        ``(actions, dlq records, store)``.
    """
    store = {} if store is None else store
    actions: list[dict] = []
    dlq: list[dict] = []
    batch: list[Mapping[str, Any]] = []

    def flush() -> None:
        result = decider.decide(batch, store.get)
        store.update(result.touched)
        actions.extend(result.actions)
        dlq.extend(result.dlq)
        batch.clear()

    for event in events:
        batch.append(event)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return actions, dlq, store
