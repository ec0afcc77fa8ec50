"""The Redis store: its key schema (:class:`RedisKeys`), the encoding and decoding of actions, the TTLs,
and the writer of a micro-batch's results in ONE pipeline (:class:`RedisActionWriter`). Used by the job's
operator, the decision API, the baseline and Quix targets, the experiment report and the CLI; no PyFlink
import.

Keys (docs/contracts.md §5, ``{p}`` = the job's ``redis_prefix``, default :data:`DEFAULT_REDIS_PREFIX`):

* ``{p}action:{session_id}`` hash: the latest action, written only when its ``event_ts_ms`` is not
  older than the stored one (write-if-newer, in a Lua script, so a replay after a restart cannot move
  a session back to an older action); TTL ``action_ttl_s``.
* ``{p}actions`` stream: every action once. A ``{p}seen:{event_id}`` marker (SET NX, same TTL) makes
  the append idempotent, so a replay from a checkpoint adds no duplicate entries.
* ``{p}session:{session_id}`` hash: the session's event counts (absolute values, idempotent) and its
  latest intent score; TTL ``session_ttl_s``.
* ``{p}agg:{content_id}:{window_start_ms}:{event_type}`` set of session ids (idempotent); TTL 600 s.
* ``{p}trace`` stream: traced events with their Kafka append time (latency benchmark only): ONE entry per
  pipeline, its id's time = when the pipeline's writes became readable, field ``events`` = the traced
  events of that pipeline packed by :func:`encode_trace` (one command per flush, not one per event: the
  instrument must not weigh on what it measures).
* ``{p}stats`` hash: job counters (HINCRBY; counted again for events replayed after a restart).
* ``{p}epoch`` string, no TTL: set (NX) by every pipeline of the writer; when a pipeline finds it missing
  after the writer has written before, Redis lost its data (a restart without persistence, a FLUSHALL) and
  :meth:`RedisActionWriter.write` says so, so the job can write what it holds again (issue 14).
* ``{p}exp:{experiment_id}`` hash: experiment counts, field ``{arm}|{metric}|{bucket_start_ms}`` = sessions
  (udfs/experiments.py). Each :class:`udfs.experiments.Fact` is added once: a marker field
  ``fact:{experiment_id}:{metric}`` in the session's own ``{p}session:{session_id}`` hash (HSETNX) guards
  the HINCRBY in one Lua script, so a batch decided again after a restore counts nothing twice. The
  marker lives and expires with the session hash (``session_ttl_s`` after the session's last write), so
  experiment counting holds no Redis memory beyond the open sessions' (issue 19: one key per marker
  with a 7-day TTL grew Redis by ~2.6 MB/min at 2,000 events/s for a week).
  ``{p}experiments`` set: the experiment ids that have counts.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from udfs.settings import DEFAULT_REDIS_PREFIX as SETTINGS_REDIS_PREFIX

log = logging.getLogger(__name__)

#: Default key prefix of docs/contracts.md §5 (``if:action:{session_id}``).
DEFAULT_REDIS_PREFIX = SETTINGS_REDIS_PREFIX  # one definition: udfs.settings

#: Fields of an action (docs/contracts.md §4) that are integers or floats in JSON.
_INT_FIELDS = ("rule_version", "event_ts_ms", "decided_at_ms")
_FLOAT_FIELDS = ("intent_score", "propensity")


@dataclass(frozen=True)
class RedisKeys:
    """Every key the job writes and the services read, under one ``prefix`` (the module docstring)."""

    prefix: str = DEFAULT_REDIS_PREFIX

    def action(self, session_id: str) -> str:
        """Hash of the latest action of a session."""
        return f"{self.prefix}action:{session_id}"

    @property
    def actions(self) -> str:
        """Stream of every action, once."""
        return f"{self.prefix}actions"

    def seen(self, event_id: str) -> str:
        """Marker that the action of ``event_id`` is in the stream."""
        return f"{self.prefix}seen:{event_id}"

    @property
    def epoch(self) -> str:
        """Marker of the data this Redis holds for the prefix (``SET NX`` by every pipeline)."""
        return f"{self.prefix}epoch"

    def session(self, session_id: str) -> str:
        """Hash of a session's summary (counts, score, versions, features)."""
        return f"{self.prefix}session:{session_id}"

    def agg(self, content_id: str, window_start_ms: int, event_type: str) -> str:
        """Set of the sessions that had ``event_type`` on ``content_id`` in the window."""
        return f"{self.prefix}agg:{content_id}:{window_start_ms}:{event_type}"

    @property
    def stats(self) -> str:
        """Hash of the job's counters."""
        return f"{self.prefix}stats"

    @property
    def trace(self) -> str:
        """Stream of traced events (latency benchmark)."""
        return f"{self.prefix}trace"

    def experiment(self, experiment_id: str) -> str:
        """Hash of an experiment's counts, field ``{arm}|{metric}|{bucket_start_ms}``."""
        return f"{self.prefix}exp:{experiment_id}"

    @property
    def experiments(self) -> str:
        """Set of the experiment ids that have counts."""
        return f"{self.prefix}experiments"

    @staticmethod
    def experiment_fact_field(experiment_id: str, metric: str) -> str:
        """Field of the session hash (:meth:`session`) that marks the session counted once in a metric."""
        return f"fact:{experiment_id}:{metric}"

#: First wait after a failed Redis write, s, doubled per failure up to RETRY_BACKOFF_MAX_S (our choice:
#: a dropped connection usually reconnects at once; an outage is then polled every 5 s at most).
RETRY_BACKOFF_S = 0.05
RETRY_BACKOFF_MAX_S = 5.0

#: TTL of cross-session aggregate sets, s: 10 min of 10-50 ms windows is plenty for a dashboard or a
#: rule that looks back; our choice.
AGG_TTL_S = 600

# An experiment fact's marker is a field of the session hash, so it expires with the session: a replay
# after a restore (which decides again what came after the last state write: seconds to minutes) finds
# it; a session id that returns after its keyed state and its session hash expired (30 min idle, the
# Google Analytics session definition) is a new session and is counted again (docs/experiments.md).
# KEYS: session hash, counts hash, experiment index set.
# ARGV: marker field, session_ttl_s (for a session hash this script creates), counts field, experiment id.
_ADD_FACT_LUA = """
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 1 then
  if redis.call('TTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('SADD', KEYS[3], ARGV[4])
  return 1
end
return 0
"""

# KEYS: action hash, actions stream, seen marker. ARGV: event_ts_ms, ttl_s, stream maxlen, field/value...
_WRITE_ACTION_LUA = """
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
end
local current = redis.call('HGET', KEYS[1], 'event_ts_ms')
if (not current) or tonumber(current) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# The per-flush writes that are plain commands, in ONE script call instead of 2-3 commands per key: each
# redis-py command costs the job's Python tens of microseconds (packing, reply parsing), and a flush at
# 2,000 events/s carries thousands of them per second (bench/README.md, profile of issue 10).
# KEYS: stats hash, then the n_agg aggregate sets, then the n_sessions session hashes.
# ARGV: agg_ttl_s, session_ttl_s, n_agg, n_sessions, n_stats; per aggregate set: its member count, the
# members; per session hash: its field count * 2, field, value, ...; per stats counter: field, increment.
_WRITE_BULK_LUA = """
local agg_ttl, session_ttl = ARGV[1], ARGV[2]
local n_agg, n_sessions, n_stats = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local a = 6
for i = 1, n_agg do
  local n = tonumber(ARGV[a])
  redis.call('SADD', KEYS[1 + i], unpack(ARGV, a + 1, a + n))
  redis.call('EXPIRE', KEYS[1 + i], agg_ttl)
  a = a + n + 1
end
for i = 1, n_sessions do
  local n = tonumber(ARGV[a])
  local key = KEYS[1 + n_agg + i]
  redis.call('HSET', key, unpack(ARGV, a + 1, a + n))
  redis.call('EXPIRE', key, session_ttl)
  a = a + n + 1
end
for i = 1, n_stats do
  redis.call('HINCRBY', KEYS[1], ARGV[a], ARGV[a + 1])
  a = a + 2
end
return 1
"""


def bulk_script_args(keys: "RedisKeys", sessions: Mapping[str, Mapping[str, Any]],
                     aggregates: Mapping[tuple[str, int, str], set[str]], counters: Mapping[str, int],
                     session_ttl_s: int, agg_ttl_s: int = AGG_TTL_S) -> tuple[list[str], list[Any]] | None:
    """``(KEYS, ARGV)`` of :data:`_WRITE_BULK_LUA` for one flush, or None when there is nothing to write.

    Shapes as :meth:`RedisActionWriter.write`; counters equal to 0 are left out.
    """
    stats = [(name, int(value)) for name, value in counters.items() if value]
    if not (sessions or aggregates or stats):
        return None
    redis_keys = [keys.stats]
    argv: list[Any] = [agg_ttl_s, session_ttl_s, len(aggregates), len(sessions), len(stats)]
    for (content_id, window_start_ms, event_type), members in aggregates.items():
        redis_keys.append(keys.agg(content_id, window_start_ms, event_type))
        argv.append(len(members))
        argv.extend(members)
    for session_id, fields in sessions.items():
        redis_keys.append(keys.session(session_id))
        argv.append(2 * len(fields))
        for field, value in fields.items():
            argv.append(field)
            argv.append(value)
    for name, value in stats:
        argv.append(name)
        argv.append(value)
    return redis_keys, argv


def encode_action(action: Mapping[str, Any]) -> list[str]:
    """An action (docs/contracts.md §4) as the flat field/value list of its hash and stream entry: None
    values left out, dicts and lists as compact JSON, everything else as ``str``."""
    out: list[str] = []
    for key, value in action.items():
        if value is None:
            continue
        out.append(key)
        out.append(json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value))
    return out


def decode_action(fields: dict[str, str]) -> dict[str, Any]:
    """Turn the Redis hash of an action (all strings) into its JSON form (docs/contracts.md §4).

    Integers and floats become numbers, ``params`` is parsed from JSON (``{}`` when absent or
    invalid, with ``params_invalid: true``); unknown fields pass through as strings.
    """
    out: dict[str, Any] = dict(fields)
    for name in _INT_FIELDS:
        if name in out:
            try:
                out[name] = int(float(out[name]))
            except (TypeError, ValueError):
                out[name] = None
    for name in _FLOAT_FIELDS:
        if name in out:
            try:
                out[name] = float(out[name])
            except (TypeError, ValueError):
                out[name] = None
    raw = out.get("params")
    if raw is None or raw == "":
        out["params"] = {}
    else:
        try:
            parsed = json.loads(raw)
            out["params"] = parsed if isinstance(parsed, dict) else {"value": parsed}
        except (TypeError, ValueError):
            out["params"] = {}
            out["params_invalid"] = True
    return out


def encode_trace(trace: Iterable[tuple[str, int, int, int]]) -> str:
    """Pack ``(event_id, kafka_ts_ms, client_ts_ms, ts_ms)`` tuples into one stream field value:
    lines of four space-separated fields (event ids never contain whitespace: udfs/contract.py)."""
    return "\n".join(f"{eid} {kafka} {client} {ts}" for eid, kafka, client, ts in trace)


def decode_trace(value: bytes | str) -> list[tuple[str, int, int, int]]:
    """Inverse of :func:`encode_trace`.

    Raises:
        ValueError: a line without four fields or with a non-integer time.
    """
    text = value.decode() if isinstance(value, bytes) else value
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 4:
            raise ValueError(f"trace line {line!r} has {len(parts)} fields, expected 4")
        out.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
    return out


class RedisActionWriter:
    """One Redis client and the write script; :meth:`write` sends a batch in one round trip.

    Args:
        redis_url: e.g. ``redis://127.0.0.1:6379/0``, with credentials ``redis://user:password@host:port/0``
            (``udfs.config.stack_settings`` puts them in), ``rediss://`` for TLS.
        prefix: key prefix (``JobConfig.redis_prefix``).
        action_ttl_s, session_ttl_s, stream_maxlen: see :class:`udfs.config.JobConfig`.

    :meth:`write` never raises for an unreachable Redis: it retries (see there).
    """

    def __init__(self, redis_url: str, prefix: str, action_ttl_s: int, session_ttl_s: int,
                 stream_maxlen: int) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self.keys = RedisKeys(prefix)
        self.action_ttl_s = action_ttl_s
        self.session_ttl_s = session_ttl_s
        self.stream_maxlen = stream_maxlen
        #: {script text: SHA1}, loaded on the first write and again after an outage or a SCRIPT FLUSH:
        #: EVALSHA in the pipeline (redis-py's Script objects would ask SCRIPT EXISTS on every execute,
        #: one more round trip per flush)
        self._shas: dict[str, str] = {}
        self._has_written = False
        self._scripts_lost = False
        self.sleep = time.sleep

    def write(self, actions: Iterable[Mapping[str, Any]], sessions: Mapping[str, Mapping[str, Any]],
              aggregates: Mapping[tuple[str, int, str], set[str]], counters: Mapping[str, int],
              trace: Iterable[tuple[str, int, int, int]] = (), facts: Iterable[tuple] = ()) -> bool:
        """Write actions, session summaries, aggregates, counters, latency traces and experiment facts
        (:class:`udfs.experiments.Fact`) in one pipeline.

        Returns:
            True when Redis had lost this prefix's data since this writer's previous write (the ``epoch``
            marker was missing: a restart without persistence, a FLUSHALL); False on the first write and
            whenever the marker was there.

        A Redis outage is waited out: on a connection error or timeout the whole pipeline is sent
        again after a backoff of :data:`RETRY_BACKOFF_S` doubling up to :data:`RETRY_BACKOFF_MAX_S`,
        for as long as it takes (every write is idempotent except the ``stats`` counters). The caller
        blocks meanwhile, so a Flink job backpressures to its Kafka source instead of failing.

        Raises:
            redis.AuthenticationError: Redis refuses the credentials of ``redis_url`` (``requirepass`` or
                an ACL user; ``udfs.config``: ``INTENTFLOW_REDIS_USERNAME``/``PASSWORD``); not retried.
        """
        import redis

        actions = list(actions)
        trace = list(trace)
        facts = list(facts)
        delay_s = RETRY_BACKOFF_S
        failures = 0
        while True:
            try:
                marker_was_missing = self._send(actions, sessions, aggregates, counters, trace, facts)
                if failures:
                    log.warning("redis reachable again after %d failed attempts", failures)
                emptied = (marker_was_missing or self._scripts_lost) and self._has_written
                self._scripts_lost = False
                if emptied:
                    log.warning("redis lost this prefix's data (%s missing) since the previous write", self.keys.epoch)
                self._has_written = True
                return emptied
            except redis.AuthenticationError:
                raise  # a wrong password or ACL user is a configuration error, not an outage: fail loudly
            except redis.exceptions.NoScriptError:
                # the scripts were flushed (a restarted or emptied Redis): load them again and resend;
                # nothing of the failed pipeline that is not idempotent ran (the counters are in a script).
                # Its epoch SET NX did run, so the resend cannot tell an emptied Redis any more: say so.
                self._shas.clear()
                self._scripts_lost = True
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failures += 1
                self._shas.clear()  # the Redis that answers next may be a restarted one
                if failures == 1 or failures % 10 == 0:
                    log.warning("redis write failed (%s); attempt %d, retrying in %.2f s", exc, failures, delay_s)
                self.sleep(delay_s)
                delay_s = min(delay_s * 2, RETRY_BACKOFF_MAX_S)

    def _sha(self, script: str) -> str:
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = self.client.script_load(script)
        return sha

    def _send(self, actions, sessions, aggregates, counters, trace, facts=()) -> bool:
        k = self.keys
        write_action, add_fact = self._sha(_WRITE_ACTION_LUA), (self._sha(_ADD_FACT_LUA) if facts else "")
        pipe = self.client.pipeline(transaction=False)
        pipe.set(k.epoch, "1", nx=True)  # first: its reply says whether Redis still had this prefix's data
        for action in actions:
            pipe.evalsha(write_action, 3, k.action(action["session_id"]), k.actions, k.seen(action["event_id"]),
                         action["event_ts_ms"], self.action_ttl_s, self.stream_maxlen, *encode_action(action))
        bulk = bulk_script_args(k, sessions, aggregates, counters, self.session_ttl_s)
        if bulk is not None:
            redis_keys, argv = bulk
            pipe.evalsha(self._sha(_WRITE_BULK_LUA), len(redis_keys), *redis_keys, *argv)
        if trace:
            pipe.xadd(k.trace, {"events": encode_trace(trace)}, maxlen=100_000, approximate=True)
        for experiment_id, arm, metric, bucket_start_ms, session_id in facts:
            pipe.evalsha(add_fact, 3, k.session(session_id), k.experiment(experiment_id), k.experiments,
                         k.experiment_fact_field(experiment_id, metric), self.session_ttl_s,
                         f"{arm}|{metric}|{bucket_start_ms}", experiment_id)
        return bool(pipe.execute()[0])

    def close(self) -> None:
        self.client.close()
