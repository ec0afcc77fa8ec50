"""PyFlink operators of the personalization job. Thin adapters: the logic is in ``udfs/``.

* :class:`ParseEvent` (after the source): bytes -> validated event (``udfs.contract.parse_event``),
  routed to its shard key; anything malformed goes to the DLQ side output with its reason. One bad
  record never fails the job.
* :class:`DecideMicroBatch` (keyed by shard, connected to the broadcast ruleset): buffers events of
  its subtask across sessions and flushes every ``window_ms`` (processing-time timer) or at
  ``max_batch_size``: one :class:`udfs.decide.Decider` call (one ONNX call) and one Redis pipeline
  per flush. Sessions live in map state under the shard key, so a flush can update all of them; the
  decisions read a Python copy, and changed sessions are written to map state every
  ``state_write_interval_ms``.

Checkpoint safety: every event is appended to list state on arrival and stays there until the
sessions it changed have been written to map state, so a checkpoint always holds either an event's
effect or the event itself; after a restore the first callback re-reads those events and decides them
again (Redis writes are idempotent). A bounded run (replay, tests) ends with the
MAX watermark, which fires an event-time timer registered at the first event: that flushes the last
batch, because a pending processing-time timer never fires at end of input and ``close()`` may be cut
short.
"""
from __future__ import annotations

import logging
import time

import orjson
from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, ProcessFunction, RuntimeContext
from pyflink.datastream.state import (ListStateDescriptor, MapStateDescriptor, StateTtlConfig)

from udfs.config import JobConfig
from udfs.contract import ContractError, parse_event
from udfs.decide import Decider, SessionEntry, session_summaries
from udfs.dlq import dlq_record
from udfs.partitioning import shard_keys, shard_of

log = logging.getLogger(__name__)

#: Side output of malformed and late events (JSON DLQ records, docs/contracts.md §1).
DLQ_TAG = OutputTag("dlq", Types.STRING())

#: Broadcast state holding the ruleset in force (JSON text under key "ruleset").
RULES_STATE = MapStateDescriptor("rules", Types.STRING(), Types.STRING())

_END_OF_INPUT_TIMER_MS = (1 << 63) - 2


class ParseEvent(ProcessFunction):
    """Kafka value -> ``(shard key, event JSON)``; malformed input -> DLQ side output.

    Adds ``_kafka_ts_ms`` (the record's Kafka timestamp, from the source's timestamp) to the event,
    for latency measurement.
    """

    def __init__(self, parallelism: int):
        self.parallelism = parallelism

    def open(self, runtime_context: RuntimeContext) -> None:
        self.keys = shard_keys(self.parallelism)

    def process_element(self, value, ctx: ProcessFunction.Context):
        try:
            event = parse_event(value)
        except ContractError as exc:
            yield DLQ_TAG, orjson.dumps(dlq_record(exc.reason, "parse", value, detail=exc.detail)).decode()
            return
        except Exception as exc:  # noqa: BLE001 - nothing malformed may fail the job
            yield DLQ_TAG, orjson.dumps(dlq_record("parse_error", "parse", value, detail=repr(exc))).decode()
            return
        ts = ctx.timestamp()
        if ts is not None and ts > 0:
            event["_kafka_ts_ms"] = ts
        yield shard_of(event["session_id"], self.keys), orjson.dumps(event).decode()


#: First character of each output of :class:`DecideMicroBatch`: an action or a DLQ record.
ACTION_MARK, DLQ_MARK = "A", "D"


class DecideMicroBatch(KeyedBroadcastProcessFunction):
    """Micro-batched decisions per subtask; see the module docstring.

    Emits ``"A" + action JSON`` and ``"D" + DLQ record JSON`` (late events) on its one output;
    :class:`RouteOutput` splits them. (A side output yielded from ``on_timer`` of a keyed broadcast
    function in thread mode reached the main output as an ``Object[]`` and failed the sink with a
    ClassCastException, seen with PyFlink 2.2.1.)
    """

    def __init__(self, config: JobConfig, redis_url: str, rules_json: str, models_root: str | None = None):
        self.config = config
        self.redis_url = redis_url
        self.rules_json = rules_json
        self.models_root = models_root

    def open(self, runtime_context: RuntimeContext) -> None:
        from operators.redis_actions import RedisActionWriter
        from udfs.rules import RuleEngine
        from udfs.scoring import ModelRegistry, ReloadingScorer

        cfg = self.config
        # Background cleanup is disabled and incremental cleanup set explicitly: PyFlink's default
        # background strategies build a RocksDB filter setting through a Py4J gateway, which a
        # TaskManager of a standalone cluster does not have (FileNotFoundError launching one).
        ttl = (StateTtlConfig.new_builder(Time.seconds(cfg.session_ttl_s))
               .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
               .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
               .disable_cleanup_in_background()
               .cleanup_incrementally(10, False)
               .cleanup_full_snapshot()
               .build())
        sessions = MapStateDescriptor("sessions", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        sessions.enable_time_to_live(ttl)
        self.sessions = runtime_context.get_map_state(sessions)
        self.pending = runtime_context.get_list_state(ListStateDescriptor("pending", Types.STRING()))
        registry = ModelRegistry(self.models_root) if self.models_root else None
        self.scorer = ReloadingScorer(cfg.model_name, registry=registry, version=cfg.model_version)
        self.decider = Decider(cfg, self.scorer, RuleEngine.from_json(self.rules_json))
        self.rules_version_seen: str | None = None
        self.writer = RedisActionWriter(self.redis_url, cfg.redis_prefix, cfg.action_ttl_s, cfg.session_ttl_s,
                                        cfg.actions_stream_maxlen)
        self.buffer: list[dict] = []
        self.restored = False
        self.end_timer_registered = False
        # This subtask's sessions as Python objects: the copy decisions read. Map state is written
        # from it every state_write_interval_ms (see _flush), so reads never cross into Java.
        self.cache: dict[str, SessionEntry] = {}
        self.touched_ms: dict[str, int] = {}
        self.dirty: set[str] = set()
        self.last_state_write_ms = 0
        self.last_sweep_ms = 0
        self.state_timer_ms: int | None = None

    # -- rules (broadcast) ----------------------------------------------------------------------

    def _use_rules(self, text: str) -> None:
        from udfs.rules import reload

        engine, reason = reload(self.decider.engine, text)
        if reason:
            log.warning("ruleset rejected, keeping %s: %s", self.decider.engine.rules_version, reason)
        else:
            self.decider.set_rules(engine)
        self.rules_version_seen = text

    def process_broadcast_element(self, value, ctx: KeyedBroadcastProcessFunction.Context):
        self._use_rules(value)
        ctx.get_broadcast_state(RULES_STATE).put("ruleset", value)
        return iter(())

    # -- events ---------------------------------------------------------------------------------

    def _restore(self, ctx) -> None:
        """First callback after open(): pick up the ruleset, and the events received since the last
        state write (they are in list state), which are decided again."""
        self.restored = True
        stored = ctx.get_broadcast_state(RULES_STATE).get("ruleset")
        if stored is not None and stored != self.rules_version_seen:
            self._use_rules(stored)
        carried = list(self.pending.get() or [])
        if carried:
            self.buffer.extend(orjson.loads(x) for x in carried)

    def process_element(self, value, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext):
        if not self.restored:
            self._restore(ctx)
        _, event_json = value
        self.buffer.append(orjson.loads(event_json))
        self.pending.add(event_json)
        timers = ctx.timer_service()
        if not self.end_timer_registered:
            timers.register_event_time_timer(_END_OF_INPUT_TIMER_MS)
            self.end_timer_registered = True
        if len(self.buffer) == 1:
            timers.register_processing_time_timer(timers.current_processing_time() + self.config.window_ms)
        if len(self.buffer) >= self.config.max_batch_size:
            yield from self._flush(timers)

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext):
        if not self.restored:
            self._restore(ctx)
        end_of_input = timestamp == _END_OF_INPUT_TIMER_MS
        if end_of_input:
            self.end_timer_registered = False
        elif timestamp == self.state_timer_ms:
            self.state_timer_ms = None
        yield from self._flush(ctx.timer_service(), end_of_input)

    def _load(self, session_id: str) -> SessionEntry | None:
        """The session's entry: from the cache, else from map state (after a restore), honouring the TTL."""
        entry = self.cache.get(session_id)
        if entry is not None:
            if self._now_ms - self.touched_ms[session_id] <= self.ttl_ms:
                return entry
            self._evict(session_id)
            return None
        return self.sessions.get(session_id)

    def _evict(self, session_id: str) -> None:
        self.cache.pop(session_id, None)
        self.touched_ms.pop(session_id, None)
        self.dirty.discard(session_id)
        self.sessions.remove(session_id)

    def _flush(self, timers, end_of_input: bool = False):
        """Decide the open micro-batch (if any), then write state and summaries when they are due."""
        cfg = self.config
        now_ms = self._now_ms = int(time.time() * 1000)
        self.ttl_ms = cfg.session_ttl_s * 1000
        if self.buffer:
            result = self.decider.decide(self.buffer, self._load)
            self.buffer = []
            for session_id, entry in result.touched.items():
                self.cache[session_id] = entry
                self.touched_ms[session_id] = now_ms
            self.dirty.update(result.touched)
        else:
            result = None
        # Checkpoint consistency: map state + the events in list state since the last write always
        # rebuild the cache exactly (events are applied again on restore, and Redis writes are
        # idempotent). Writing each dirty session once per interval instead of once per batch saves
        # the pickle and JNI round trip that dominated the job's profile (bench/README.md).
        summaries = {}
        if self.dirty and (end_of_input or now_ms - self.last_state_write_ms >= cfg.state_write_interval_ms):
            sessions = self.sessions
            for session_id in self.dirty:
                sessions.put(session_id, self.cache[session_id])
            # the per-session summaries in Redis follow the same rhythm
            summaries = session_summaries({sid: self.cache[sid] for sid in self.dirty},
                                          self.scorer.model_version, self.decider.engine.rules_version)
            self.dirty.clear()
            self.pending.clear()
            self.last_state_write_ms = now_ms
        elif self.dirty and self.state_timer_ms is None:
            # make sure the write happens when the stream goes quiet
            self.state_timer_ms = self.last_state_write_ms + cfg.state_write_interval_ms
            timers.register_processing_time_timer(self.state_timer_ms)
        if now_ms - self.last_sweep_ms >= min(60_000, self.ttl_ms):
            self.last_sweep_ms = now_ms
            horizon = now_ms - self.ttl_ms
            for session_id in [s for s, t in self.touched_ms.items() if t < horizon]:
                self._evict(session_id)
        if result is None and not summaries:
            return
        if result is None:
            self.writer.write((), summaries, {}, {}, ())
            return
        self.writer.write(result.actions, summaries, result.aggregates, result.counters, result.trace)
        for action in result.actions:
            yield ACTION_MARK + orjson.dumps(action).decode()
        for record in result.dlq:
            yield DLQ_MARK + orjson.dumps(record).decode()

    def close(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()




class RouteOutput(ProcessFunction):
    """Splits :class:`DecideMicroBatch` output: actions on the main output, DLQ records on :data:`DLQ_TAG`."""

    def process_element(self, value: str, ctx: ProcessFunction.Context):
        if value[0] == ACTION_MARK:
            yield value[1:]
        else:
            yield DLQ_TAG, value[1:]
