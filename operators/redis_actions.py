"""Writes a micro-batch's results to Redis in ONE pipeline (no PyFlink import: the baseline uses it too).

Keys (docs/contracts.md §5, ``{p}`` = the job's ``redis_prefix``):

* ``{p}action:{session_id}`` hash: the latest action, written only when its ``event_ts_ms`` is not
  older than the stored one (write-if-newer, in a Lua script, so a replay after a restart cannot move
  a session back to an older action); TTL ``action_ttl_s``.
* ``{p}actions`` stream: every action once. A ``{p}seen:{event_id}`` marker (SET NX, same TTL) makes
  the append idempotent, so a replay from a checkpoint adds no duplicate entries.
* ``{p}session:{session_id}`` hash: the session's event counts (absolute values, idempotent) and its
  latest intent score; TTL ``session_ttl_s``.
* ``{p}agg:{content_id}:{window_start_ms}:{event_type}`` set of session ids (idempotent); TTL 600 s.
* ``{p}trace`` stream: sampled events with their Kafka append time (latency benchmark only).
* ``{p}stats`` hash: job counters (HINCRBY; counted again for events replayed after a restart).
* ``{p}exp:{experiment_id}`` hash: experiment counts, field ``{arm}|{metric}|{bucket_start_ms}`` = sessions
  (udfs/experiments.py). Each :class:`udfs.experiments.Fact` is added once: a marker
  ``{p}expfact:{experiment_id}:{metric}:{session_id}`` (SET NX, TTL :data:`FACT_MARKER_TTL_S`) guards the
  HINCRBY in one Lua script, so a batch decided again after a restore counts nothing twice.
  ``{p}experiments`` set: the experiment ids that have counts.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: First wait after a failed Redis write, s, doubled per failure up to RETRY_BACKOFF_MAX_S (our choice:
#: a dropped connection usually reconnects at once; an outage is then polled every 5 s at most).
RETRY_BACKOFF_S = 0.05
RETRY_BACKOFF_MAX_S = 5.0

#: TTL of cross-session aggregate sets, s: 10 min of 10-50 ms windows is plenty for a dashboard or a
#: rule that looks back; our choice.
AGG_TTL_S = 600

#: TTL of an experiment fact's marker, s: 7 days. It must outlive every replay of the fact (a restore
#: decides again what came after the last checkpoint, seconds to minutes) and a session's return after
#: its keyed state expired (30 min of inactivity); a week covers both with a wide margin. Our choice.
FACT_MARKER_TTL_S = 7 * 24 * 3600

# KEYS: marker, counts hash, experiment index set. ARGV: marker ttl_s, hash field, experiment id.
_ADD_FACT_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('SADD', KEYS[3], ARGV[3])
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


def _flat(action: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in action.items():
        if value is None:
            continue
        out.append(key)
        out.append(json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value))
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
        self.action_ttl_s = action_ttl_s
        self.session_ttl_s = session_ttl_s
        self.stream_maxlen = stream_maxlen
        self._script = self.client.register_script(_WRITE_ACTION_LUA)
        self._fact_script = self.client.register_script(_ADD_FACT_LUA)
        self.sleep = time.sleep

    def write(self, actions: Iterable[Mapping[str, Any]], sessions: Mapping[str, Mapping[str, Any]],
              aggregates: Mapping[tuple[str, int, str], set[str]], counters: Mapping[str, int],
              trace: Iterable[tuple[str, int, int, int]] = (), facts: Iterable[tuple] = ()) -> None:
        """Write actions, session summaries, aggregates, counters, latency traces and experiment facts
        (:class:`udfs.experiments.Fact`) in one pipeline.

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
                self._send(actions, sessions, aggregates, counters, trace, facts)
                if failures:
                    log.warning("redis reachable again after %d failed attempts", failures)
                return
            except redis.AuthenticationError:
                raise  # a wrong password or ACL user is a configuration error, not an outage: fail loudly
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning("redis write failed (%s); attempt %d, retrying in %.2f s", exc, failures, delay_s)
                self.sleep(delay_s)
                delay_s = min(delay_s * 2, RETRY_BACKOFF_MAX_S)

    def _send(self, actions, sessions, aggregates, counters, trace, facts=()) -> None:
        p = self.prefix
        pipe = self.client.pipeline(transaction=False)
        for action in actions:
            self._script(keys=[f"{p}action:{action['session_id']}", f"{p}actions", f"{p}seen:{action['event_id']}"],
                         args=[action["event_ts_ms"], self.action_ttl_s, self.stream_maxlen, *_flat(action)],
                         client=pipe)
        for session_id, fields in sessions.items():
            key = f"{p}session:{session_id}"
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.session_ttl_s)
        for (content_id, window_start_ms, event_type), members in aggregates.items():
            key = f"{p}agg:{content_id}:{window_start_ms}:{event_type}"
            pipe.sadd(key, *members)
            pipe.expire(key, AGG_TTL_S)
        if counters:
            for name, value in counters.items():
                if value:
                    pipe.hincrby(f"{p}stats", name, int(value))
        for event_id, kafka_ts_ms, client_ts_ms, ts_ms in trace:
            pipe.xadd(f"{p}trace", {"event_id": event_id, "kafka_ts_ms": kafka_ts_ms, "client_ts_ms": client_ts_ms,
                                    "ts_ms": ts_ms}, maxlen=1_000_000, approximate=True)
        for experiment_id, arm, metric, bucket_start_ms, session_id in facts:
            self._fact_script(keys=[f"{p}expfact:{experiment_id}:{metric}:{session_id}", f"{p}exp:{experiment_id}",
                                    f"{p}experiments"],
                              args=[FACT_MARKER_TTL_S, f"{arm}|{metric}|{bucket_start_ms}", experiment_id], client=pipe)
        pipe.execute()

    def close(self) -> None:
        self.client.close()
