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
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from udfs.config import JobConfig
from udfs.dlq import dlq_record
from udfs.features import FEATURE_DTYPE, N_FEATURES
from udfs.rules import RuleEngine
from udfs.session import STATUS_APPLIED, STATUS_IGNORED, STATUS_LATE, SessionState

#: Per-session counters kept in keyed state: every event of a session ends in exactly one of them.
COUNT_FIELDS = ("applied", "suppressed", "ignored", "deduplicated", "late")
_APPLIED, _SUPPRESSED, _IGNORED, _DEDUP, _LATE = range(len(COUNT_FIELDS))


class Scorer(Protocol):
    """What the decider needs of a model (udfs.scoring.ReloadingScorer / IntentScorer)."""

    def score_with_version(self, batch: np.ndarray) -> tuple[np.ndarray, str]: ...


class SessionEntry:
    """Everything the job keeps per session (one keyed-state value, pickled).

    Attributes:
        state: the session's :class:`SessionState` (features).
        seen: ``{event_id: ts_ms}`` of recent events, for dedup.
        last_fired: ``{rule_id: ts_ms}`` of the event that last fired each rule (cool-down).
        counts: list of ints in :data:`COUNT_FIELDS` order.
        last_intent_score: score of the latest applied event (-1.0 before any).
    """

    __slots__ = ("state", "seen", "last_fired", "counts", "last_intent_score")

    def __init__(self) -> None:
        self.state = SessionState()
        self.seen: dict[str, int] = {}
        self.last_fired: dict[str, int] = {}
        self.counts = [0] * len(COUNT_FIELDS)
        self.last_intent_score = -1.0

    def __getstate__(self):
        return (self.state, self.seen, self.last_fired, self.counts, self.last_intent_score)

    def __setstate__(self, st) -> None:
        self.state, self.seen, self.last_fired, self.counts, self.last_intent_score = st

    def remember(self, event_id: str, ts_ms: int, ttl_ms: int, max_ids: int) -> bool:
        """Record ``event_id``; False when it was seen already (a duplicate)."""
        seen = self.seen
        if event_id in seen:
            return False
        seen[event_id] = ts_ms
        if len(seen) > max_ids:
            horizon = ts_ms - ttl_ms
            for key in [k for k, t in seen.items() if t < horizon]:
                del seen[key]
            while len(seen) > max_ids:  # still too many: forget the oldest inserted
                del seen[next(iter(seen))]
        return True

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
    """

    actions: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[str, SessionEntry] = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)
    aggregates: dict[tuple[str, int, str], set[str]] = field(default_factory=dict)
    model_version: str = ""
    trace: list[tuple[str, int, int, int]] = field(default_factory=list)


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
        window_ms = cfg.window_ms
        trace_n = cfg.trace_every_n
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
            if not entry.remember(event["event_id"], ts_ms, cfg.dedup_ttl_ms, cfg.dedup_max_ids):
                entry.counts[_DEDUP] += 1
                counters["deduplicated"] += 1
                continue
            newest = entry.state.last_event_ts_ms
            if newest is not None and ts_ms < newest - cfg.allowed_lateness_ms:
                entry.counts[_LATE] += 1
                counters["late"] += 1
                result.dlq.append(dlq_record("late_event", "job", dict(event), event_id=event["event_id"],
                                             detail=f"ts_ms {ts_ms} is {newest - ts_ms} ms older than the "
                                                    f"session's newest event (allowed {cfg.allowed_lateness_ms} ms)"))
                continue
            outcome = entry.state.apply(dict(event))
            status = outcome.status
            if status == STATUS_APPLIED:
                entry.counts[_APPLIED] += 1
                counters["applied"] += 1
                pending.append((entry, event, entry.state.features()))
                content_ids = (event.get("page") or {}).get("content_ids") or ()
                if content_ids:
                    window_start = ts_ms - ts_ms % window_ms
                    for content_id in content_ids:
                        result.aggregates.setdefault((content_id, window_start, event["type"]), set()).add(session_id)
            elif status == STATUS_IGNORED:
                entry.counts[_IGNORED] += 1
                counters["ignored"] += 1
            elif status == STATUS_LATE:  # within allowed lateness but older than the newest event
                entry.counts[_LATE] += 1
                counters["late"] += 1
                result.dlq.append(dlq_record("late_event", "job", dict(event), event_id=event["event_id"],
                                             detail="older than the session's newest event"))
            else:
                entry.counts[_SUPPRESSED] += 1
                counters["suppressed"] += 1
                counters["suppressed:" + outcome.reason] += 1
        if not pending:
            return result

        batch = np.empty((len(pending), N_FEATURES), dtype=FEATURE_DTYPE)
        for i, (_, _, vector) in enumerate(pending):
            batch[i] = vector
        scores, model_version = self.scorer.score_with_version(batch)
        result.model_version = model_version
        engine = self.engine
        decided_at_ms = self.clock_ms()
        for (entry, event, vector), score in zip(pending, scores.tolist()):
            entry.last_intent_score = score
            decision, reason = engine.evaluate_vector_with_reason(vector, score, event, entry.last_fired)
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
            result.actions.append(action)
            counters["actions"] += 1
        return result


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
