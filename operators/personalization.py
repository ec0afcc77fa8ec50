"""The Python operator of the personalization job: called once per micro-batch. Logic is in ``udfs/``.

The stream it sees is made on the Java side (operators/java, see ``jobs/personalization.py``): the
``SessionShardMicroBatcher`` after the Kafka source buffers raw values (bytes) per session shard and emits one
``Row(shard_key, batch bytes)`` per micro-batch (layout: ``udfs/batch_layout.py``) (``window_ms`` or ``max_batch_size``, and before every
checkpoint barrier); PyFlink's own ``KeyByKeySelector`` keys it by shard without a Python key selector.

:class:`DecideMicroBatch` (keyed by shard, connected to the broadcast ruleset), per batch, in one
Java->Python crossing:

1. the batch is appended to keyed list state (one state call), so it is checkpointed until its effect is;
2. parse/validate (``udfs.microbatch.decode_batch``; bad values -> DLQ records with the reason);
3. page views get their page's bounce / exit rates from the page-rates table in force
   (``udfs.page_rates.PageRatesTable``: the ``--page-rates-table`` file, then the newest valid table on the
   broadcast stream; none: no rates), or, with ``JobConfig.page_rates`` (off by default), over other
   sessions (``udfs.page_stats.PageStats``, this subtask's sessions, in memory); decide (``udfs.decide.Decider``: dedup, event-time order, noise filter, session features, ONE
   ONNX call, rules) reading the shard's sessions from a Python copy (``udfs.microbatch.ShardSessions``);
4. ONE Redis pipeline per flush of the batcher (actions, aggregates, counters, due session summaries):
   the writes of a flush's shard batches are merged and sent at its last batch (``"L"`` mark);
5. every ``state_write_interval_ms`` (10 s): the changed sessions to map state (zstd of their pickle,
   ``udfs.microbatch.encode_stored``; those idle in the last seconds before it encoded a few per batch
   ahead of it, ``ShardSessions.pre_encode``) and the list state cleared; every ``summary_interval_ms``
   (1 s): their summaries to Redis (in that batch's pipeline);
6. ONE output element: a ``String[]`` of ``"A" + action JSON`` / ``"D" + DLQ JSON``, split on the Java
   side (``MarkedOutputSplitter``) into the actions topic and the DLQ topic.

No per-event state, timer or clock call crosses into Java. Timers: one event-time timer per shard at
the end of time (the final MAX watermark of a bounded run fires it: write everything; a pending
processing-time timer never fires at end of input and ``close()`` may be cut short), and one
processing-time timer per quiet shard with unwritten sessions.
"""
from __future__ import annotations

import logging
import time

import orjson
from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, StateTtlConfig

from udfs.config import JobConfig
from udfs.decide import Decider, session_summaries
from udfs.microbatch import (RELEASE_PER_BATCH, ShardSessions, WriteBuffer, decode_batch, decode_stored,
                             last_of_flush)

log = logging.getLogger(__name__)

#: Broadcast state holding the ruleset in force (JSON text under key "ruleset") and the page-rates table
#: in force (JSON text under key "page_rates", udfs/page_rates.py).
RULES_STATE = MapStateDescriptor("rules", Types.STRING(), Types.STRING())

#: Type of the batched stream: ``Row(shard key, batch bytes)`` (layout: udfs/batch_layout.py).
BATCH_TYPE = Types.PRIMITIVE_ARRAY(Types.BYTE())
#: Type of the operator's output: one ``String[]`` of marked records per batch.
OUTPUT_TYPE = Types.BASIC_ARRAY(Types.STRING())

#: First character of each entry of the output: an action or a DLQ record (MarkedOutputSplitter.java).
ACTION_MARK, DLQ_MARK = "A", "D"

_END_OF_INPUT_TIMER_MS = (1 << 63) - 2


class DecideMicroBatch(KeyedBroadcastProcessFunction):
    """Decides one session shard's micro-batch per call; see the module docstring.

    Args:
        config: job parameters.
        redis_url: where actions go (``connectors.redis_store.RedisActionWriter``).
        rules_json: the ruleset used until one arrives on the broadcast stream.
        models_root: folder of model versions (default: models/ of this checkout).
        page_rates_json: the page-rates table used until one arrives on the broadcast stream (None: none).
    """

    def __init__(self, config: JobConfig, redis_url: str, rules_json: str, models_root: str | None = None,
                 shard_keys: list[int] | None = None, page_rates_json: str | None = None):
        self.config = config
        self.redis_url = redis_url
        self.rules_json = rules_json
        self.page_rates_json = page_rates_json
        self.models_root = models_root
        self.shard_keys = list(shard_keys or [])

    def open(self, runtime_context: RuntimeContext) -> None:
        from operators.job_metrics import FlinkJobMetrics, TimedScorer
        from connectors.redis_store import RedisActionWriter
        from udfs.opmetrics import JobMetrics
        from udfs.rules import RuleEngine
        from udfs.scoring import ModelRegistry, ReloadingScorer

        cfg = self.config
        # Invariant of the shard-keyed state: one shard key per key group, chosen for this max
        # parallelism (SessionShardMicroBatcher.shardKeysCsv). With another one, several shards would share
        # a key group and the spread over subtasks would no longer be the one the keys were picked for.
        # (PyFlink 2.2.1's get_max_number_of_parallel_subtasks() calls a method Flink 2 removed from
        # RuntimeContext; the value is on its TaskInfo.)
        max_p = int(runtime_context._runtime_context.getTaskInfo().getMaxNumberOfParallelSubtasks())
        if self.shard_keys and max_p != len(self.shard_keys):
            raise ValueError(f"the job has {len(self.shard_keys)} session shards but runs with max parallelism "
                             f"{max_p}: start it with --max-parallelism {max_p} (the value its state was "
                             f"taken with) or from an empty state")
        # Expired sessions leave keyed state through ShardSessions.expire (one remove per session, once
        # a minute); the TTL only hides a value past it from reads and keeps it out of checkpoints.
        # No background cleanup: PyFlink's default strategies build a RocksDB filter setting through a
        # Py4J gateway, which a TaskManager of a standalone cluster does not have (FileNotFoundError
        # launching one). No incremental cleanup: on the heap backend it visits whole state-table
        # entries, here a shard's whole map, and Flink's TtlMapState.getUnexpiredOrNull copies every
        # unexpired value of it (TypeSerializer.copy) on each state access. With 44,000 sessions that
        # made each remove a copy of the whole state: the 12-minute soak (TTL 300 s) fell behind
        # from the first expiry on, MapStateImpl.remove 14 % of the job's Python samples (py-spy).
        ttl = (StateTtlConfig.new_builder(Time.seconds(cfg.session_ttl_s))
               .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
               .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
               .disable_cleanup_in_background()
               .cleanup_full_snapshot()
               .build())
        sessions = MapStateDescriptor("sessions", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        sessions.enable_time_to_live(ttl)
        self.sessions = runtime_context.get_map_state(sessions)
        self.pending = runtime_context.get_list_state(ListStateDescriptor("pending", Types.PICKLED_BYTE_ARRAY()))
        registry = ModelRegistry(self.models_root) if self.models_root else None
        self.scorer = ReloadingScorer(cfg.model_name, registry=registry, version=cfg.model_version)
        #: metrics aggregated in Python, pushed to Flink's metric system once per micro-batch
        self.metrics = JobMetrics()
        self.flink_metrics = FlinkJobMetrics(runtime_context.get_metrics_group())
        self.decider = Decider(cfg, TimedScorer(self.scorer, self.metrics), RuleEngine.from_json(self.rules_json))
        from udfs.page_rates import PageRatesTable
        from udfs.page_stats import PageStats

        #: per-page bounce / exit rates over this subtask's sessions (in memory; udfs/page_stats.py)
        self.page_stats = PageStats()
        #: the page-rates table in force (udfs/page_rates.py), or None
        self.page_rates = PageRatesTable.from_json(self.page_rates_json) if self.page_rates_json else None
        self.page_rates_seen: str | None = None
        self.page_rates_accepted = True
        self.rules_seen: str | None = None
        self.rules_accepted = True
        self.writer = RedisActionWriter(self.redis_url, cfg.redis_prefix, cfg.action_ttl_s, cfg.session_ttl_s,
                                        cfg.actions_stream_maxlen)
        #: {shard key: the Python copy of its sessions}
        self.shards: dict[int, ShardSessions] = {}
        keys = self.shard_keys
        #: {shard key: its index / number of shards}: spreads the shards' state writes over the interval
        self.shard_phase = {k: i / len(keys) for i, k in enumerate(keys)}
        #: Redis writes of the batches of the current flush, sent in one pipeline at its last batch
        self.writes = WriteBuffer()
        from udfs.gcpolicy import FrozenGenerations

        #: keeps the cyclic GC off the session copy (None: CPython's default collections)
        self.gc = FrozenGenerations(cfg.gc_full_interval_ms, int(time.time() * 1000)) if cfg.gc_freeze else None

    # -- rules (broadcast) ----------------------------------------------------------------------

    def _use_rules(self, text: str) -> None:
        from udfs.rules import reload

        engine, reason = reload(self.decider.engine, text)
        if reason:
            log.warning("ruleset rejected, keeping %s: %s", self.decider.engine.rules_version, reason)
        else:
            self.decider.set_rules(engine)
        self.rules_seen = text
        self.rules_accepted = not reason

    def _use_page_rates(self, text: str) -> None:
        from udfs.page_rates import PageRatesError, PageRatesTable

        self.page_rates_seen = text
        try:
            table = PageRatesTable.from_json(text)
        except PageRatesError as exc:
            log.warning("page-rates table rejected, keeping %s: %s",
                        self.page_rates.version if self.page_rates else "none", exc)
            self.page_rates_accepted = False
            return
        self.page_rates = table
        self.page_rates_accepted = True
        log.info("page-rates table %s in force (%d pages)", table.version, len(table.pages))

    def process_broadcast_element(self, value, ctx: KeyedBroadcastProcessFunction.Context):
        from udfs.page_rates import is_page_rates_document

        # only an accepted document goes to broadcast state: a restore must bring back the one in force,
        # not a rejected newer one
        if is_page_rates_document(value):
            self._use_page_rates(value)
            if self.page_rates_accepted:
                ctx.get_broadcast_state(RULES_STATE).put("page_rates", value)
        else:
            self._use_rules(value)
            if self.rules_accepted:
                ctx.get_broadcast_state(RULES_STATE).put("ruleset", value)
        return iter(())

    # -- micro-batches --------------------------------------------------------------------------

    def _shard(self, ctx) -> tuple[ShardSessions, list]:
        """The current shard's copy; on its first callback after open(), the ruleset in broadcast
        state and the batches in list state (received since the last state write; decided again)."""
        key = ctx.get_current_key()
        shard = self.shards.get(key)
        carried: list = []
        if shard is None:
            cfg = self.config
            shard = self.shards[key] = ShardSessions(
                cfg.session_ttl_s * 1000, cfg.state_write_interval_ms, cfg.summary_interval_ms,
                now_ms=int(time.time() * 1000), phase=self.shard_phase.get(key, 0.0),
                pre_encode_lead_ms=cfg.pre_encode_lead_ms, pre_encode_idle_ms=cfg.pre_encode_idle_ms)
        if not shard.restored:
            shard.restored = True
            stored = ctx.get_broadcast_state(RULES_STATE).get("ruleset")
            if stored is not None and stored != self.rules_seen:
                self._use_rules(stored)
            stored = ctx.get_broadcast_state(RULES_STATE).get("page_rates")
            if stored is not None and stored != self.page_rates_seen:
                self._use_page_rates(stored)
            carried = list(self.pending.get() or [])
            # sessions restored from a checkpoint; any other session is new (no state read for it)
            shard.restore(self.sessions.keys() if not self.sessions.is_empty() else (), int(time.time() * 1000))
        if not shard.end_timer_registered:
            ctx.timer_service().register_event_time_timer(_END_OF_INPUT_TIMER_MS)
            shard.end_timer_registered = True
        return shard, carried

    def process_element(self, batch, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext):
        shard, carried = self._shard(ctx)
        self.pending.add(batch)
        out: list[str] = []
        now_ms = int(time.time() * 1000)
        for earlier in carried:
            self.writes.add(now_ms, *self._decide(shard, earlier, out))
        self.writes.add(now_ms, *self._decide(shard, batch, out))
        self._after_batch(shard, ctx)
        # one pipeline and one metrics push per flush of the batcher (all shards of this subtask), not per
        # shard batch (each metric update is a Java call)
        since_ms = self.writes.since_ms
        if since_ms is not None and (last_of_flush(batch) or now_ms - since_ms >= self.config.window_ms):
            self._send_writes()
            self._push_metrics()
        if out:
            yield out

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext):
        shard, carried = self._shard(ctx)
        out: list[str] = []
        now_ms = int(time.time() * 1000)
        for earlier in carried:
            self.writes.add(now_ms, *self._decide(shard, earlier, out))
        end_of_input = timestamp == _END_OF_INPUT_TIMER_MS
        if end_of_input:
            shard.end_timer_registered = False
        elif timestamp == shard.write_timer_ms:
            shard.write_timer_ms = None
        self._after_batch(shard, ctx, force_write=end_of_input)
        self._send_writes()
        self._push_metrics()
        if out:
            yield out

    def _send_writes(self) -> None:
        """Send the queued Redis writes in one pipeline (RedisActionWriter retries through an outage);
        when Redis came back without its data, write what this subtask holds again."""
        queued = self.writes.take()
        if queued is not None:
            t0 = time.perf_counter_ns()
            emptied = self.writer.write(*queued)
            self.metrics.observe("redis_time_us", (time.perf_counter_ns() - t0) / 1000)
            if emptied:
                self._rewrite_redis()

    def _rewrite_redis(self) -> None:
        """Redis lost its data (restart without persistence, FLUSHALL): write the summary and the latest
        action of every session in the Python copy again (``udfs.microbatch.redis_rebuild``). Sessions
        restored from a checkpoint and not touched since are not in the copy; their keys come back with
        their next event. Experiment counts and ``stats`` counters are not rebuilt (docs/reliability.md)."""
        from udfs.microbatch import redis_rebuild

        actions, summaries = redis_rebuild(self.shards.values(), self.scorer.model_version,
                                           self.decider.engine.rules_version)
        self.writer.write(actions, summaries, {}, {})
        log.warning("redis came back without its data: wrote %d session summaries and %d latest actions again",
                    len(summaries), len(actions))

    def _push_metrics(self) -> None:
        """The metrics since the last push into Flink's metric group (one Java call per changed metric;
        called once per flush and per timer callback)."""
        metrics = self.metrics
        metrics.set_sessions(sum(len(s.entries) for s in self.shards.values()))
        metrics.set_versions(self.scorer.model_version, self.decider.engine.rules_version)
        self.flink_metrics.apply(metrics.take())

    def _decide(self, shard: ShardSessions, batch, out: list[str]):
        """Parse and decide one batch; marked outputs appended to ``out``.

        Returns:
            ``(actions, aggregates, counters, trace)`` for ``RedisActionWriter.write``.
        """
        now_ms = int(time.time() * 1000)
        events, dlq = decode_batch(batch)
        n_values = len(events) + len(dlq)
        if self.config.page_rates:
            self.page_stats.annotate(events)  # page views get their page's cross-session rates
        elif self.page_rates is not None:
            self.page_rates.annotate(events)  # ... from the published table in force
        t0 = time.perf_counter_ns()
        result = self.decider.decide(events, shard.loader(now_ms, lambda sid: decode_stored(self.sessions.get(sid))))
        self.metrics.observe("decide_time_us", (time.perf_counter_ns() - t0) / 1000)
        self.metrics.add_batch(events, dlq + result.dlq, result.actions, result.counters["late"], n_values)
        shard.update(result.touched, now_ms)
        self.writes.add(now_ms, facts=result.facts)  # experiment counts (udfs/experiments.py)
        counters = result.counters
        if dlq:
            counters["dlq_parse"] += len(dlq)
        for action in result.actions:
            out.append(ACTION_MARK + orjson.dumps(action).decode())
        for record in dlq:
            out.append(DLQ_MARK + orjson.dumps(record).decode())
        for record in result.dlq:
            out.append(DLQ_MARK + orjson.dumps(record).decode())
        return result.actions, result.aggregates, counters, result.trace

    def _after_batch(self, shard: ShardSessions, ctx, force_write: bool = False) -> None:
        """Queue the Redis summaries of the shard's changed sessions when due (always with a state
        write: ``ShardSessions.due``); write the changed sessions to map state when due (after sending
        every queued Redis write: once the list state is cleared, nothing would decide those batches
        again); make sure a timer does both if the shard goes quiet;
        expire idle sessions."""
        now_ms = int(time.time() * 1000)
        summaries_due, state_due = shard.due(now_ms, force_write)
        if summaries_due:
            table = self.page_rates if self.page_rates is not None and not self.config.page_rates else None
            self.writes.add(now_ms, summaries=session_summaries(
                shard.take_summary_dirty(now_ms), self.scorer.model_version, self.decider.engine.rules_version,
                table.version if table is not None else None))
        if state_due:
            self._send_writes()
            self.sessions.put_all(shard.take_dirty_stored(now_ms))
            self.pending.clear()
            if self.gc is not None and self.gc.after_state_write(now_ms):
                log.info("full GC collection (permanent generation released): %.0f ms", self.gc.last_full_pause_ms)
        else:
            shard.pre_encode(now_ms, self.config.pre_encode_per_batch)  # a shorter pause at the next write
            shard.release_retired(RELEASE_PER_BATCH)  # ... and none to free the last write's objects
        due_ms = shard.next_due_ms()
        if due_ms is not None and (shard.write_timer_ms is None or due_ms < shard.write_timer_ms):
            shard.write_timer_ms = max(due_ms, now_ms + 1)
            ctx.timer_service().register_processing_time_timer(shard.write_timer_ms)
        for session_id in shard.expire(now_ms):
            self.sessions.remove(session_id)

    def close(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            try:
                self._send_writes()  # best effort: a restore decides these batches again anyway
            finally:
                writer.close()
