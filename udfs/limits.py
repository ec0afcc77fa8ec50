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
