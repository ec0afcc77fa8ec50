"""The event contract: model <-> JSON Schema agreement, builder, hot-path parser, DLQ records."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from udfs import dlq
from udfs.contract import (
    EVENT_TYPES,
    ContractError,
    derive_event_id,
    dumps_event,
    event_json_schema,
    make_event,
    parse_event,
    validate_event,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "event.v1.json"

PROPS = {
    "page_view": {"title": "Kettle"},
    "click": {"element_id": "b1", "element_role": "compare_button", "x_px": 10, "y_px": 20.5},
    "scroll": {"scroll_depth_pct": 55.0, "scroll_depth_pct_raw": 55.0, "offset_px": 900, "document_height_px": 3000},
    "hover": {"element_id": "p", "element_role": "price", "hover_ms": 1200},
    "visibility": {"state": "hidden", "visible_ms": 30_000},
    "form": {"form_id": "checkout", "field_id": "email", "action": "blur"},
    "mouse_trajectory": {"path_length_px": 340.0, "straightness": 0.8, "mean_speed_px_s": 410.0,
                         "jerk_px_s3": 12.5, "pause_count": 1, "sample_count": 25, "duration_ms": 830},
    "add_to_cart": {"item_id": "42", "quantity": 2, "price": 19.99},
    "purchase": {"order_id": "o1", "value": 39.98, "currency": "EUR", "item_ids": ["42"]},
    "exposure": {"experiment_id": "exp1", "variant": "B", "content_id": "hero"},
    "intent": {"intent_score": 0.42, "model_version": "intent-lr/1", "rules_version": "2026-11-30.1",
               "feature_hash": "fnv1a32:0badf00d", "trigger_event_id": "e1", "action": None, "rule_id": None,
               "edge_latency_ms": 1.5},
}


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _event(etype: str, **kw) -> dict:
    return make_event(etype, session_id="s1", client_ts_ms=1_700_000_000_000, source_key=f"t:{etype}",
                      props=PROPS[etype], **kw)


def test_schema_file_is_the_generated_schema(schema):
    assert schema == json.loads(json.dumps(event_json_schema())), (
        "schemas/event.v1.json is stale: run `.venv/bin/python -m udfs.contract > schemas/event.v1.json`"
    )


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_every_type_valid_for_model_and_schema(etype, schema):
    event = _event(etype)
    jsonschema.validate(json.loads(dumps_event(event)), schema)
    assert parse_event(dumps_event(event)) == event
    assert event["type"] == etype and event["schema_version"] == 1


BAD = [
    ("missing session_id", lambda e: e.pop("session_id"), "missing_field"),
    ("missing type", lambda e: e.pop("type"), "missing_field"),
    ("unknown type", lambda e: e.update(type="tap"), "unknown_type"),
    ("ts as string", lambda e: e.update(ts_ms="1700000000000"), "wrong_type"),
    ("session_id int", lambda e: e.update(session_id=7), "wrong_type"),
    ("not a uuid", lambda e: e.update(event_id="abc"), "wrong_type"),
    ("scroll over 100", lambda e: e["props"].update(scroll_depth_pct=101.0), "wrong_type"),
    ("negative hover", lambda e: e.update(type="hover", props={"hover_ms": -1}), "wrong_type"),
    ("extra field", lambda e: e.update(password="x"), "wrong_type"),
    ("form value", lambda e: e.update(type="form", props={"action": "change", "value": "secret"}), "wrong_type"),
    ("bad device", lambda e: e["context"].update(device_class="fridge"), "wrong_type"),
    ("missing scroll props", lambda e: e.pop("props"), "missing_field"),
]


@pytest.mark.parametrize("name,mutate,reason", BAD, ids=[b[0] for b in BAD])
def test_model_and_schema_reject_the_same_bad_events(name, mutate, reason, schema):
    event = _event("scroll")
    mutate(event)
    with pytest.raises(ContractError) as info:
        validate_event(event)
    assert info.value.reason == reason
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)


def test_event_id_is_uuid5_of_source_key_and_deterministic():
    a = make_event("page_view", session_id="s", client_ts_ms=1, source_key="otto:1:2")
    b = make_event("page_view", session_id="s", client_ts_ms=1, source_key="otto:1:2")
    c = make_event("page_view", session_id="s", client_ts_ms=1, source_key="otto:1:3")
    assert a["event_id"] == b["event_id"] == derive_event_id("otto:1:2") != c["event_id"]
    import uuid

    assert uuid.UUID(a["event_id"]).version == 5
    assert a["anonymous_id"] == "s" and a["ts_ms"] == 1


def test_make_event_needs_exactly_one_id():
    with pytest.raises(ContractError, match="exactly one of source_key / event_id"):
        make_event("page_view", session_id="s", client_ts_ms=1)
    with pytest.raises(ContractError, match="exactly one of source_key / event_id"):
        make_event("page_view", session_id="s", client_ts_ms=1, source_key="k",
                   event_id="6f1c1f4e-3c1b-4f7e-9a55-2b7c0d1e8a42")


def test_parse_event_errors_have_reason_codes():
    with pytest.raises(ContractError) as info:
        parse_event(b"{not json")
    assert info.value.reason == "invalid_json"
    with pytest.raises(ContractError) as info:
        parse_event(b"[1, 2]")
    assert info.value.reason == "not_an_object"


def test_parse_event_cleans_invalid_utf8_in_one_field_and_keeps_the_event():
    event = _event("page_view")
    raw = dumps_event(event).replace(b'"Kettle"', b'"Ket\xfftle"')
    with pytest.raises(orjson.JSONDecodeError, match="not valid UTF-8"):
        orjson.loads(raw)
    parsed = parse_event(raw)
    assert parsed["props"]["title"] == "Ket\ufffdtle"
    assert parsed["flags"] == ["text_cleaned"]
    assert parsed["session_id"] == "s1"


def test_parse_event_cleans_lone_surrogate_escape():
    raw = dumps_event(_event("page_view")).replace(b'"Kettle"', b'"Kettle \\ud800"')
    parsed = parse_event(raw)
    assert parsed["props"]["title"] == "Kettle \ufffd" and "text_cleaned" in parsed["flags"]


def test_dlq_record_truncates_payload_to_8_kib_at_char_boundary():
    payload = "é" * 5000  # 10,000 bytes of UTF-8
    rec = dlq.dlq_record("wrong_type", "collector", payload, detail="x", received_at_ms=5, event_id=None)
    assert set(rec) == {"reason", "stage", "detail", "payload", "received_at_ms", "event_id"}
    assert len(rec["payload"].encode()) == 8192 and rec["payload"] == "é" * 4096
    assert rec["received_at_ms"] == 5 and rec["stage"] == "collector"
    rec = dlq.dlq_record("invalid_json", "parse", b"ab\xffc")
    assert rec["payload"] == "ab\ufffdc"
    orjson.loads(dlq.dumps_dlq(rec))
    with pytest.raises(ValueError, match="stage must be one of"):
        dlq.dlq_record("x", "browser", "p")


def test_page_type_field_and_tracker_categories():
    from udfs.contract import ContractError, page_type_of

    event = make_event("page_view", session_id="s", client_ts_ms=1, source_key="k",
                       page={"type": "informational"}, props={"title": "About"})
    assert event["page"]["type"] == "informational"
    assert make_event("page_view", session_id="s", client_ts_ms=1, source_key="k")["page"]["type"] is None
    with pytest.raises(ContractError):
        make_event("page_view", session_id="s", client_ts_ms=1, source_key="k", page={"type": "landing"})
    assert page_type_of(" Checkout ") == "administrative"
    assert page_type_of("PDP") == "product_related"
    assert page_type_of("landing") is None and page_type_of(3) is None
