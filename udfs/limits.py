"""Field and size limits of the event contract, defined once (docs/contracts.md §1, "Limits").

Every part that checks a limit reads it from here: the event model (:mod:`udfs.contract`, so the
Flink job's ``parse_event`` and the generated ``schemas/event.v1.json``), the normalizer
(:mod:`udfs.normalize`), the collector (``collector/app.py``: request and event sizes), the decision
API (``collector/decision.py``: ``session_id``) and the OpenAPI document (``collector/openapi.py``).
``tests/integration/test_limits_agree.py`` proves that collector, job and decision API accept and
refuse the same values.

Lengths of strings are counted in Unicode code points (Python ``len``; pydantic's ``max_length``),
sizes in bytes of UTF-8 JSON.
"""
from __future__ import annotations

#: Longest ``session_id``, ``anonymous_id`` and ``user_id``, code points. The SDK's ids are
#: 36-character UUIDs; 256 leaves room for other trackers' ids (Snowplow domain_sessionid, Segment
#: anonymousId, hashed e-mail user ids) while keeping Redis keys such as ``if:action:{session_id}``
#: bounded.
ID_MAX_CHARS = 256

#: Longest value of any other string field, code points; longer values are cut by the normalizer (flag
#: ``text_truncated``). The SDK cuts at the same length (web/sdk ``MAX_STRING_CHARS``).
STRING_MAX_CHARS = 2048

#: Longest ``context.user_agent``, code points (real user agents stay below 512; some bots send more).
USER_AGENT_MAX_CHARS = 4096

#: Largest single event, bytes of its JSON (issue 3; the SDK's events are a few hundred bytes).
EVENT_MAX_BYTES = 32 * 1024

#: Deepest nesting of JSON objects/lists inside one event (the event object itself is depth 1). The
#: contract's deepest field is ``context.network.rtt_ms`` (depth 3); anything much deeper is not an
#: event, and serializers have recursion limits (orjson's is 254 levels).
EVENT_MAX_DEPTH = 16

#: Range of every integer field, a signed 64-bit integer: JSON allows larger ones, but the Kafka
#: serializer (orjson) and the JVM side (a Java ``long``) cannot hold them.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

#: Largest request body, bytes after decompression (issue 3).
BATCH_MAX_BYTES = 500 * 1024

#: Most events in one request (our choice: 500 KiB / ~250 B per small event, rounded).
BATCH_MAX_EVENTS = 2000

#: Largest ``payload`` kept in a DLQ record, bytes of UTF-8 (docs/contracts.md §1).
DLQ_PAYLOAD_MAX_BYTES = 8 * 1024


def json_depth(obj: object, max_depth: int) -> int:
    """Nesting depth of a parsed JSON value, counting stops once it exceeds ``max_depth``.

    A scalar has depth 0, ``{}``/``[]`` depth 1, ``{"a": [1]}`` depth 2. Iterative, so a value nested
    thousands of levels deep is measured without recursion. Returns at most ``max_depth + 1``.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > max_depth:
            return max_depth + 1
        stack.extend((child, depth + 1) for child in children)
    return deepest


# ---- lateness: how late an accepted event may reach the job and still count ------------------------
#
# An event is late by the time it spends between its capture and its session's newest event reaching
# the job: retries after a failed send, a beacon, an outage of the collector or the broker. The horizon
# below is computed from the SDK's retry schedule and the collector's answers, so it covers them by
# construction (tests/unit/test_lateness.py checks the SDK's and the collector's own constants).

#: The SDK's wait before its first retry after a failed send, ms; doubled per failure
#: (web/sdk/intentflow.js ``RETRY_FIRST_DELAY_MS``).
SDK_RETRY_FIRST_DELAY_MS = 500

#: The SDK's longest wait between two retries, ms; it retries while the page lives
#: (web/sdk/intentflow.js ``RETRY_MAX_DELAY_MS``).
SDK_RETRY_MAX_DELAY_MS = 30_000

#: The SDK's flush interval, ms (web/sdk/intentflow.js ``DEFAULT_FLUSH_INTERVAL_MS``).
SDK_FLUSH_INTERVAL_MS = 100

#: ``Retry-After`` of the collector's 503 (and the shortest of its 429s), s
#: (``collector.settings.CollectorSettings.retry_after_s``).
COLLECTOR_RETRY_AFTER_S = 5

#: The collector answers every ``POST /v1/events`` within this, s
#: (``collector.settings.CollectorSettings.produce_timeout_s``).
COLLECTOR_ANSWER_TIMEOUT_S = 10

#: Longest outage of the collector, the broker or the network that delayed events must survive, ms.
#: Our choice: 4 minutes, eight times the 30 s faults of the chaos suite (docs/reliability.md) and more
#: than a broker or collector restart takes here (10-60 s).
OUTAGE_RIDE_OUT_MS = 4 * 60_000


def lateness_needed_ms() -> int:
    """How late an event can be after an outage of :data:`OUTAGE_RIDE_OUT_MS`, ms.

    The outage itself, then the longest a client waits before its next try (the SDK's capped backoff,
    or the collector's ``Retry-After`` if a client honours that and it is longer), then the longest
    the collector takes to answer that try, then one SDK flush interval for events captured meanwhile.
    """
    return (OUTAGE_RIDE_OUT_MS + max(SDK_RETRY_MAX_DELAY_MS, COLLECTOR_RETRY_AFTER_S * 1000)
            + COLLECTOR_ANSWER_TIMEOUT_S * 1000 + SDK_FLUSH_INTERVAL_MS)


#: The job's allowed lateness, ms: :func:`lateness_needed_ms` rounded up to whole minutes (5 min).
#: An event older than its session's newest event by more than this goes to the DLQ as ``late_event``;
#: within it, it counts in the features (``udfs.decide.SessionEntry``).
ALLOWED_LATENESS_MS = -(-lateness_needed_ms() // 60_000) * 60_000

#: Most events a session keeps in its reordering log (``udfs.decide.SessionEntry.log``), our choice: a
#: person's session sends a few events per second at most (10 min at 3/s), so only a bot exceeds it;
#: past it the oldest are folded into the lagging state early and an event older than those is late.
#: Bounds the session's keyed state and the cost of inserting an out-of-order event.
REORDER_LOG_MAX_EVENTS = 2048
