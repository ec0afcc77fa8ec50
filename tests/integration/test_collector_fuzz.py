"""Fuzzing the live collector and decision API (issue 14 item 4, collector part).

1. schemathesis reads ``/openapi.json`` from a live collector (real broker, real Redis) and sends
   what it generates from it, valid and invalid, to every operation: no 5xx, and every answer matches
   the document (status codes, content types, response schemas).
2. hypothesis builds malformed events (a valid event with one or more fields broken in the ways real
   clients and attackers break them) and posts them in batches: every event is answered 4xx with its
   batch, or rejected with a reason code and then found in the DLQ with that reason, or accepted and
   then taken by the job's parse path (``udfs.contract.parse_event``) from the raw topic.

Example counts are bounded (``max_examples``) so each test stays well under a minute on 2 cores.
"""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.app import create_app
from collector.settings import collector_settings
from collector.decision import DecisionSettings, register
from collector.openapi import openapi_document
from tests.job_support import read_records
from tests.live_collector import LiveCollector
from udfs.contract import EVENT_TYPES, REASONS, parse_event
from udfs.limits import ID_MAX_CHARS, STRING_MAX_CHARS

pytestmark = pytest.mark.integration


@pytest.fixture
def live(stack, topics, redis_client):
    _redis, prefix = redis_client
    settings = collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
                                  rate_limit_per_s=0, mount_decision=False)
    app = create_app(settings)
    register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=prefix + "if:"))
    with LiveCollector(app) as server:
        yield server


#: The document as the app builds it (loaded eagerly: schemathesis' lazy fixture loader does not run on
#: pytest 9); the live server serves the same one (checked in the test).
schema = schemathesis.openapi.from_dict(openapi_document(include_decision=True))


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_schemathesis_finds_no_server_error_and_no_deviation_from_the_document(case, live):
    served = requests.get(live.url + "/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(openapi_document(include_decision=True)))
    # A batch with invalid events is answered 200 with each event's status (rejected ones are in the
    # DLQ with a reason, checked below): by design not the 4xx schemathesis expects for invalid data.
    excluded = [schemathesis.checks.negative_data_rejection] if case.operation.path == "/v1/events" else []
    case.call_and_validate(base_url=live.url, excluded_checks=excluded)


# ---- hypothesis: malformed events through the collector -----------------------------------------------

_JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
_LONG_TEXT = st.integers(min_value=STRING_MAX_CHARS - 2, max_value=STRING_MAX_CHARS + 50).map(lambda n: "x" * n)
_LONG_ID = st.integers(min_value=ID_MAX_CHARS - 1, max_value=ID_MAX_CHARS + 2).map(lambda n: "i" * n)
_TIMESTAMPS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["2026-12-02T10:00:00Z", "yesterday", "", "1e400", "NaN", "1764669600", "-1"]),
)
_PROPS = {
    "scroll": st.fixed_dictionaries({"scroll_depth_pct": st.one_of(st.floats(allow_nan=True), _JUNK)}),
    "hover": st.fixed_dictionaries({"hover_ms": st.one_of(st.integers(-10**6, 10**9), st.floats(allow_nan=True), _JUNK)}),
    "mouse_trajectory": st.fixed_dictionaries({
        "path_length_px": st.floats(allow_nan=True), "straightness": st.floats(-1, 2), "mean_speed_px_s": _JUNK,
        "jerk_px_s3": st.floats(allow_nan=True), "pause_count": st.integers(-3, 3), "sample_count": st.integers(-1, 3),
        "duration_ms": st.integers(-10, 10**8)}),
    "form": st.fixed_dictionaries({"action": st.sampled_from(["focus", "type", "", "submit"]), "value": st.text(max_size=5)}),
    "visibility": st.fixed_dictionaries({"state": st.sampled_from(["visible", "hidden", "prerender"]),
                                         "visible_ms": _JUNK}),
    "add_to_cart": st.fixed_dictionaries({"item_id": _JUNK, "quantity": st.integers(-2, 3)}),
    "exposure": st.fixed_dictionaries({"experiment_id": _JUNK, "variant": _LONG_TEXT}),
}


def _valid_event(session_id: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": "click", "session_id": session_id, "anonymous_id": "a1",
            "seq": 1, "client_ts_ms": int(time.time() * 1000), "page": {"url": "https://shop.example/p/1"},
            "context": {"viewport_w_px": 1280, "viewport_h_px": 800},
            "props": {"element_id": "e1", "element_role": "price"}}


@st.composite
def malformed_events(draw) -> object:
    """A valid event with 1-3 fields broken, or something that is not an event at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_JUNK)
    event = _valid_event(draw(st.sampled_from(["s1", "s2", "s3"])))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "junk", "type", "ts", "long_id", "long_text", "props", "nest",
                                     "unknown_field", "event_id"]))
        field = draw(st.sampled_from(["event_id", "type", "session_id", "anonymous_id", "user_id", "seq",
                                      "client_ts_ms", "sent_at_ms", "page", "context", "props"]))
        if kind == "drop":
            event.pop(field, None)
        elif kind == "junk":
            event[field] = draw(_JUNK)
        elif kind == "type":
            event["type"] = draw(st.one_of(st.sampled_from(EVENT_TYPES), st.text(max_size=10), _JUNK))
            if isinstance(event["type"], str) and event["type"] in _PROPS:
                event["props"] = draw(_PROPS[event["type"]])
        elif kind == "ts":
            event[draw(st.sampled_from(["client_ts_ms", "sent_at_ms"]))] = draw(_TIMESTAMPS)
        elif kind == "long_id":
            event[draw(st.sampled_from(["session_id", "anonymous_id", "user_id"]))] = draw(_LONG_ID)
        elif kind == "long_text":
            event["props"] = {"element_id": draw(_LONG_TEXT)}
        elif kind == "props":
            event["type"] = draw(st.sampled_from(sorted(_PROPS)))
            event["props"] = draw(_PROPS[event["type"]])
        elif kind == "nest":
            depth = draw(st.integers(2, 40))
            value: object = 1
            for _ in range(depth):
                value = {"n": value}
            event[draw(st.sampled_from(["page", "context", "props"]))] = value
        elif kind == "unknown_field":
            event[draw(st.text(min_size=1, max_size=8))] = draw(_JUNK)
        else:
            event["event_id"] = draw(st.one_of(st.text(max_size=40), _JUNK))
    return event


def test_malformed_events_are_answered_4xx_or_end_in_the_dlq_with_a_reason(stack, topics, live):
    expected_rejected: Counter = Counter()
    accepted_ids: set[str] = set()
    statuses: Counter = Counter()
    session = requests.Session()

    @given(batch=st.lists(malformed_events(), min_size=1, max_size=25),
           sent_at_ms=st.one_of(st.none(), _TIMESTAMPS), wrap=st.booleans(),
           mangle=st.sampled_from(["none"] * 6 + ["truncate", "bad_utf8", "claims_gzip", "nul"]),
           cut=st.floats(0, 1))
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def post(batch, sent_at_ms, wrap, mangle, cut):
        body = {"sent_at_ms": sent_at_ms, "events": batch} if wrap else batch
        data = _client_json(body)
        headers = {"Content-Type": "application/json"}
        if mangle == "truncate":
            data = data[: int(len(data) * cut)]
        elif mangle == "bad_utf8":  # invalid bytes inside a string or between tokens
            at = int(len(data) * cut)
            data = data[:at] + b"\xff\xfe" + data[at:]
        elif mangle == "claims_gzip":
            headers["Content-Encoding"] = "gzip"
        elif mangle == "nul":
            data = data.replace(b'"', b'"\x00', 1)
        resp = session.post(live.url + "/v1/events", data=data, headers=headers, timeout=30)
        statuses[resp.status_code] += 1
        assert resp.status_code < 500, resp.text
        if resp.status_code != 200:
            assert 400 <= resp.status_code < 500 and "error" in resp.json()
            return
        out = resp.json()
        if mangle != "none":  # still parseable after mangling: the results speak for what was parsed
            return _count(out, expected_rejected, accepted_ids)
        assert len(out["results"]) == len(batch)
        _count(out, expected_rejected, accepted_ids)

    post()
    assert statuses[200] > 0 and sum(expected_rejected.values()) > 0
    print(f"requests by status {dict(statuses)}; events rejected {sum(expected_rejected.values())} "
          f"{dict(expected_rejected)}, accepted {len(accepted_ids)}")

    dlq = [orjson.loads(r.value) for r in read_records(stack.kafka_bootstrap, topics.dlq)]
    assert Counter(d["reason"] for d in dlq) == expected_rejected  # each rejection is in the DLQ, reason kept
    assert all(d["stage"] == "collector" and d["detail"] and d["payload"] for d in dlq)
    raw = read_records(stack.kafka_bootstrap, topics.raw)
    assert {orjson.loads(r.value)["event_id"] for r in raw} == accepted_ids
    for record in raw:  # what the collector accepted, the job parses
        parse_event(record.value)


def _count(out: dict, expected_rejected: Counter, accepted_ids: set[str]) -> None:
    """Tally a 200 answer: each rejection's reason (a known code), each accepted event id."""
    for result in out["results"]:
        if result["status"] == "rejected":
            assert result["reason"] in REASONS
            expected_rejected[result["reason"]] += 1
        elif result["status"] == "accepted":
            accepted_ids.add(result["event_id"])


def _client_json(body: object) -> bytes:
    """JSON as clients write it: stdlib ``json`` (NaN/Infinity literals, integers beyond 64 bits kept)."""
    return json.dumps(body).encode()
