"""Tracker payloads -> our events (udfs/trackers): the fixtures recorded from the official trackers in
Chromium (tests/fixtures/trackers, tests/browser/record_tracker_fixtures.py) and malformed variants."""
from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest

from udfs.contract import derive_event_id, dumps_event, parse_event
from udfs.datasets.trajectory import summarize_trajectory
from udfs.trackers import Mapped, Rejected, map_offline, posthog, rrweb, segment, snowplow, to_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trackers"
#: the rules' thresholds the article visitor must cross (rules/default.v1.json, deep_engagement_product)
DEEP_SCROLL_PCT, DEEP_HOVER_MS = 70, 2000


def fixture_requests(name: str) -> list[dict]:
    return [r for r in json.loads((FIXTURES / f"{name}.json").read_text())["requests"]
            if not r["path"].startswith(("/flags", "/decide"))]


def body_of(req: dict) -> bytes:
    return base64.b64decode(req["body_b64"])


def valid(events: list[dict]) -> list[dict]:
    """Each event through the Flink job's own parser (contract check), returned as parsed."""
    return [parse_event(dumps_event(e)) for e in events]


def signals(events: list[dict]) -> dict:
    """What the deep-engagement rule reads, from a session's events."""
    return {
        "max_scroll_pct": max((e["props"]["scroll_depth_pct"] for e in events if e["type"] == "scroll"), default=0),
        "spec_hover_ms": max((e["props"]["hover_ms"] for e in events
                              if e["type"] == "hover" and e["props"]["element_role"] == "spec"), default=0),
        "compare_clicks": sum(1 for e in events if e["type"] == "click" and e["props"]["element_role"] == "compare_button"),
    }


# ---- Snowplow ----------------------------------------------------------------------------------------

def snowplow_fixture_events(name: str) -> tuple[list[dict], list[dict], list[Rejected]]:
    raw, items = [], []
    for req in fixture_requests(name):
        if req["method"] == "GET":
            payloads = [dict(parse_qsl(req["query"], keep_blank_values=True))]
        else:
            payloads = snowplow.split_post_body(orjson.loads(body_of(req)))
        raw += payloads
        items += snowplow.map_payload(payloads)
    events, rejected = map_offline(items)
    return raw, valid(events), rejected


@pytest.mark.parametrize("name", ["snowplow", "snowplow_get"])
def test_snowplow_recorded_article_visitor(name):
    raw, events, rejected = snowplow_fixture_events(name)
    assert rejected == [] and len(events) == len(raw)
    by_eid = {p["eid"]: p for p in raw}
    for e in events:
        p = by_eid[e["source_event_id"]]
        assert e["source"] == "snowplow" and e["event_id"] == p["eid"]
        assert e["session_id"] == p["sid"] and e["anonymous_id"] == p["duid"]
        assert e["client_ts_ms"] == int(p["dtm"]) and e["sent_at_ms"] == int(p["stm"])
        assert (e["context"]["viewport_w_px"], e["context"]["viewport_h_px"]) == tuple(map(int, p["vp"].split("x")))
        assert e["page"]["item_id"] == "laptop-aurora-14"  # the ecommerce product context entity
    assert Counter(e["type"] for e in events)["page_view"] == 1
    s = signals(events)
    assert s["max_scroll_pct"] > DEEP_SCROLL_PCT and s["spec_hover_ms"] > DEEP_HOVER_MS and s["compare_clicks"] == 1
    ping = next(p for p in raw if p["e"] == "pp")
    scroll = next(e for e in events if e["source_event_id"] == ping["eid"])
    expected = (int(ping["pp_may"]) + int(ping["vp"].split("x")[1])) / int(ping["ds"].split("x")[1]) * 100
    assert scroll["props"]["scroll_depth_pct"] == pytest.approx(min(100.0, expected))


BASE_SP = {"e": "pv", "eid": "4e69aff3-85ed-40b0-9f20-b67a12ba7b10", "sid": "s-1", "duid": "d-1",
           "dtm": "1796211097858", "stm": "1796211097864", "url": "https://shop.example/p/1", "vp": "1280x800",
           "ds": "1280x3200", "res": "1920x1080", "page": "Laptop"}


def sp(**kw) -> dict:
    p = dict(BASE_SP)
    p.update(kw)
    return {k: v for k, v in p.items() if v is not None}


def ue(schema: str, data: dict, encoded: bool = False) -> dict:
    body = json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                       "data": {"schema": schema, "data": data}})
    if encoded:
        return {"e": "ue", "ue_px": base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")}
    return {"e": "ue", "ue_pr": body}


@pytest.mark.parametrize("payload,reason,field", [
    (sp(eid=None), "missing_field", "eid"),
    (sp(sid=None), "missing_field", "sid"),
    (sp(dtm="yesterday"), "bad_timestamp", "dtm"),
    (sp(vp="wide"), "wrong_type", "vp"),
    (sp(e="ad"), "unmappable", "e="),
    (sp(e="pp", pp_may="900", ds=None), "scroll_depth_not_a_number", "ds"),
    (sp(e="se", se_ac="zoom"), "unmappable", "se_ac"),
    (sp(e="se", se_ac="hover", se_la="spec-ram"), "missing_field", "se_va"),
    (sp(e="ue", ue_px="%%%not-base64"), "wrong_type", "ue_px"),
    (sp(**ue("iglu:com.acme/video_play/jsonschema/1-0-0", {"t": 1})), "unmappable", "com.acme/video_play"),
    (sp(co="{not json"), "wrong_type", "co"),
    ({**sp(), "vid": 1}, "wrong_type", "vid"),
])
def test_snowplow_malformed_is_rejected_naming_the_field(payload, reason, field):
    item = snowplow.map_event(payload)
    assert isinstance(item, Rejected)
    assert item.reason == reason and field in item.detail and item.detail.startswith("snowplow")
    assert item.payload is payload


def test_snowplow_self_describing_and_structured_events():
    cases = [
        (sp(e="pp", pp_miy="0"), "scroll", {"offset_px": 0.0, "scroll_depth_pct": 800 / 3200 * 100}),
        (sp(**ue("iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
                 {"targetUrl": "https://x", "elementId": "buy"})), "click", {"element_id": "buy"}),
        (sp(**ue("iglu:com.snowplowanalytics.snowplow/change_form/jsonschema/1-0-0",
                 {"formId": "f", "elementId": "email", "nodeName": "INPUT", "value": "me@example.com"}, True)),
         "form", {"form_id": "f", "field_id": "email", "action": "change"}),
        (sp(**ue("iglu:dev.intentflow/hover/jsonschema/1-0-0",
                 {"element_id": "spec-ram", "element_role": "spec", "hover_ms": 2500})), "hover", {"hover_ms": 2500}),
        (sp(e="se", se_ca="shop", se_ac="add-to-basket", se_la="sku-9", se_pr="2", se_va="19.5"),
         "add_to_cart", {"item_id": "sku-9", "quantity": 2, "price": 19.5}),
        (sp(e="tr", tr_id="o-1", tr_tt="99.5", tr_cu="EUR"), "purchase", {"order_id": "o-1", "value": 99.5, "currency": "EUR"}),
    ]
    for payload, etype, props in cases:
        item = snowplow.map_event(payload)
        assert isinstance(item, Mapped), item
        event = to_event(item, received_at_ms=None)
        assert event["type"] == etype and event["source"] == "snowplow"
        assert {k: event["props"][k] for k in props} == props
        assert "me@example.com" not in json.dumps(event)


def test_snowplow_post_body_schema_is_checked():
    with pytest.raises(ValueError, match="payload_data"):
        snowplow.split_post_body({"schema": "iglu:com.acme/other/jsonschema/1-0-0", "data": []})
    with pytest.raises(ValueError, match="data"):
        snowplow.split_post_body({"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"})


def test_snowplow_sent_time_corrects_a_skewed_clock_and_payload_ua_wins():
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
    item = snowplow.map_event(sp(ua=ua, dtm="1000000000000", stm="1000000001000"))
    event = to_event(item, received_at_ms=1_700_000_001_000, user_agent="curl/8.0")
    assert event["ts_ms"] == 1_700_000_000_000 and "clock_skew_corrected" in event["flags"]
    assert event["context"]["user_agent"] == ua and event["context"]["device_class"] == "mobile"
    without_ua = to_event(snowplow.map_event(sp()), received_at_ms=None, user_agent="curl/8.0")
    assert without_ua["context"]["is_bot"] is True  # the request's UA when the tracker sent none


# ---- Segment / RudderStack ---------------------------------------------------------------------------

def test_segment_recorded_article_visitor():
    messages, items = [], []
    for req in fixture_requests("segment"):
        msgs, _sent, key = segment.split_body(orjson.loads(body_of(req)))
        assert key == "demo-write-key"
        messages += msgs
        items += segment.map_body(orjson.loads(body_of(req)))[0]
    events, rejected = map_offline(items)
    events = valid(events)
    assert rejected == [] and len(events) == len(messages)
    for e, m in zip(events, messages):
        assert e["source"] == "segment" and e["source_event_id"] == m["messageId"]
        assert e["event_id"] == derive_event_id(f"segment:{m['messageId']}")  # ajs-next-... is not a UUID
        assert e["session_id"] == m["anonymousId"] and "session_from_anonymous_id" in e["flags"]
        assert e["page"]["url"] == m["context"]["page"]["url"]
    viewed = next(e for e, m in zip(events, messages) if m.get("event") == "Product Viewed")
    assert viewed["type"] == "page_view" and viewed["page"]["item_id"] == "laptop-aurora-14"
    s = signals(events)
    assert s["max_scroll_pct"] > DEEP_SCROLL_PCT and s["spec_hover_ms"] > DEEP_HOVER_MS and s["compare_clicks"] == 1


SEG = {"type": "track", "event": "Product Added", "messageId": "m-1", "anonymousId": "a-1",
       "timestamp": "2026-12-02T11:00:00.000Z", "properties": {"product_id": "p-7", "quantity": 2, "price": 9.5},
       "context": {"page": {"url": "https://shop.example/p/7"}, "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}}


def seg(**kw) -> dict:
    m = json.loads(json.dumps(SEG))
    m.update(kw)
    return {k: v for k, v in m.items() if v is not None}


def test_segment_ecommerce_and_experiment_spec_events():
    cases = [
        (seg(), "add_to_cart", {"item_id": "p-7", "quantity": 2, "price": 9.5}),
        (seg(event="Order Completed", properties={"order_id": "o-1", "total": 27.5, "currency": "USD",
                                                  "products": [{"product_id": "p-7"}, {"sku": "s-2"}]}),
         "purchase", {"order_id": "o-1", "value": 27.5, "currency": "USD", "item_ids": ["p-7", "s-2"]}),
        (seg(event="Product Clicked", properties={"product_id": "p-7"}), "click",
         {"element_id": "p-7", "element_role": "product_card"}),
        (seg(event="Experiment Viewed", properties={"experiment_id": "e-1", "variation_name": "B"}),
         "exposure", {"experiment_id": "e-1", "variant": "B"}),
        (seg(type="page", event=None, name="Home", properties={"title": "Shop", "url": "https://shop.example/"}),
         "page_view", {"title": "Shop"}),
    ]
    for msg, etype, props in cases:
        event = to_event(segment.map_message(msg), received_at_ms=None)
        assert event["type"] == etype and {k: event["props"][k] for k in props} == props


@pytest.mark.parametrize("msg,reason,field", [
    (seg(type="identify", event=None, traits={"email": "x@example.com"}), "unmappable", "type='identify'"),
    (seg(event="Coupon Applied"), "unmappable", "event='Coupon Applied'"),
    (seg(messageId=None), "missing_field", "messageId"),
    (seg(anonymousId=None), "missing_field", "anonymousId"),
    (seg(timestamp="last tuesday"), "bad_timestamp", "timestamp"),
    (seg(properties={"quantity": 1}), "missing_field", "product_id"),
    (seg(context="web"), "wrong_type", "context"),
    (seg(event=None), "missing_field", "event"),
])
def test_segment_malformed_is_rejected_naming_the_field(msg, reason, field):
    item = segment.map_message(msg)
    assert isinstance(item, Rejected) and item.reason == reason and field in item.detail


def test_rudderstack_variant_keeps_its_session_and_uuid_message_id():
    msg = seg(messageId="2a0e6c3e-5bd5-4f4b-a0d8-1d3e6f7d9a11", timestamp=None,
              originalTimestamp="2026-12-02T11:00:00.000Z", sentAt="2026-12-02T11:00:05.000Z", channel="web",
              rudderId="r-1", context={"library": {"name": "RudderLabs JavaScript SDK", "version": "3.11.0"},
                                       "sessionId": 1796200000000, "userAgent": SEG["context"]["userAgent"],
                                       "screen": {"width": 1920, "height": 1080, "innerWidth": 1280, "innerHeight": 800}})
    event = to_event(segment.map_message(msg), received_at_ms=None)
    assert event["source"] == "rudderstack" and event["event_id"] == msg["messageId"]
    assert event["session_id"] == "1796200000000" and "session_from_anonymous_id" not in event["flags"]
    assert event["sent_at_ms"] - event["client_ts_ms"] == 5000
    assert (event["context"]["viewport_w_px"], event["context"]["screen_w_px"]) == (1280, 1920)


def test_segment_single_message_path_names_the_type():
    untyped = {k: v for k, v in SEG.items() if k != "type"}
    (item,), _ = segment.map_body(untyped, path="/v1/track")
    assert to_event(item, received_at_ms=None)["type"] == "add_to_cart"
    (item,), _ = segment.map_body(untyped, path="/v1/identify")
    assert isinstance(item, Rejected) and item.reason == "unmappable" and "type='identify'" in item.detail
    (item,), _ = segment.map_body(untyped, path="/v1/batch")
    assert isinstance(item, Rejected) and item.reason == "missing_field" and "type" in item.detail


def test_segment_body_shapes():
    items, key = segment.map_body({"batch": [SEG, seg(messageId="m-2")], "sentAt": "2026-12-02T11:00:01Z",
                                   "writeKey": "k"})
    assert key == "k" and [i.sent_at_ms for i in items] == [1796209201000] * 2
    with pytest.raises(ValueError, match="batch"):
        segment.map_body({"batch": "nope"})
    with pytest.raises(ValueError, match="expected a message object"):
        segment.map_body([SEG])


# ---- rrweb --------------------------------------------------------------------------------------------

def test_rrweb_recorded_article_visitor_across_batches():
    states = rrweb.DomStates()
    items = []
    for req in fixture_requests("rrweb"):
        items += rrweb.map_batch(orjson.loads(body_of(req)), dom_states=states)
    events, rejected = map_offline(items)
    events = valid(events)
    assert rejected == []
    kinds = Counter(e["type"] for e in events)
    assert kinds["page_view"] == 1 and kinds["click"] >= 1 and kinds["mouse_trajectory"] >= 1 and kinds["hover"] == 0
    view = next(e for e in events if e["type"] == "page_view")
    assert view["props"]["title"].startswith("Aurora 14 Pro") and view["page"]["item_id"] == "laptop-aurora-14"
    s = signals(events)
    assert s["max_scroll_pct"] > DEEP_SCROLL_PCT and s["compare_clicks"] == 1  # the role from the recorded DOM
    assert {e["source"] for e in events} == {"rrweb"} and len({e["event_id"] for e in events}) == len(events)


def test_rrweb_trajectory_is_the_sdk_summary_of_the_same_samples():
    t0 = 1_796_000_000_000
    positions = [{"x": 10 * i, "y": 5 * i * i % 37, "id": 1, "timeOffset": -40 * (7 - i)} for i in range(8)]
    items = rrweb.map_recording([{"type": 3, "timestamp": t0, "data": {"source": 1, "positions": positions}}],
                                session_id="s", id_prefix="t")
    (event,), _ = map_offline(items)
    samples = [(t0 + p["timeOffset"], float(p["x"]), float(p["y"])) for p in positions]
    assert event["type"] == "mouse_trajectory" and event["props"] == summarize_trajectory(samples)


@pytest.mark.parametrize("item,reason,field", [
    ("not-an-event", "not_an_object", "#0"),
    ({"data": {}, "timestamp": 1}, "missing_field", "type"),
    ({"type": 3, "data": {"source": 1, "positions": "x"}, "timestamp": 1_796_000_000_000}, "wrong_type", "positions"),
    ({"type": 3, "data": {"source": 1, "positions": [{"x": "a"}]}, "timestamp": 1_796_000_000_000}, "wrong_type",
     "positions"),
    ({"type": 3, "data": {"source": 2, "type": 2, "id": 9}}, "bad_timestamp", "timestamp"),
    ({"type": 3, "data": {"source": 3, "id": 1, "y": 900}, "timestamp": 1_796_000_000_000},
     "scroll_depth_not_a_number", "data.y"),
    ({"type": 3, "data": "zzz", "timestamp": 1}, "wrong_type", "data"),
])
def test_rrweb_malformed_items_are_rejected_naming_the_field(item, reason, field):
    (rej,) = rrweb.map_batch({"session_id": "s", "events": [item]})
    assert isinstance(rej, Rejected) and rej.reason == reason and field in rej.detail and rej.payload == item


@pytest.mark.parametrize("body,match", [
    ({"events": []}, "session_id"), ({"session_id": "s", "events": {}}, "events"),
    ({"session_id": "s", "events": [], "document_height_px": -3}, "document_height_px"), ([], "session_id"),
])
def test_rrweb_batch_shape(body, match):
    with pytest.raises(ValueError, match=match):
        rrweb.map_batch(body)


def test_rrweb_retried_batch_gets_the_same_ids_and_inputs_never_keep_text():
    body = {"session_id": "s", "events": [
        {"type": 2, "timestamp": 1_796_000_000_000, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "tagName": "form", "id": 2, "attributes": {"id": "alert"}, "childNodes": [
                {"type": 2, "tagName": "input", "id": 3, "attributes": {"data-if-id": "alert-email"}}]}]}}},
        {"type": 3, "timestamp": 1_796_000_000_100, "data": {"source": 5, "id": 3, "text": "me@example.com"}},
        {"type": 3, "timestamp": 1_796_000_000_200, "data": {"source": 2, "type": 6, "id": 3}}]}
    first, _ = map_offline(rrweb.map_batch(body))
    again, _ = map_offline(rrweb.map_batch(json.loads(json.dumps(body))))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again] and len(first) == 2
    assert [(e["props"]["action"], e["props"]["field_id"], e["props"]["form_id"]) for e in first] == [
        ("change", "alert-email", "alert"), ("blur", "alert-email", "alert")]
    assert "me@example.com" not in json.dumps(first)


def test_dom_states_are_bounded():
    states = rrweb.DomStates(max_sessions=2)
    states.get("a").page["url"] = "u"
    states.get("b"), states.get("c")
    assert len(states) == 2 and states.get("a").page == {}


# ---- PostHog ------------------------------------------------------------------------------------------

def posthog_items(states=None):
    items = []
    for req in fixture_requests("posthog"):
        query = dict(parse_qsl(req["query"]))
        obj = posthog.decode_body(body_of(req), query.get("compression"), req["content_type"].split(";")[0])
        items += posthog.map_events(posthog.split_events(obj), dom_states=states)
    return items


def test_posthog_recorded_article_visitor():
    events, rejected = map_offline(posthog_items(rrweb.DomStates()))
    events = valid(events)
    kinds = Counter(e["type"] for e in events)
    # page view and click from PostHog's own events, trajectories from the recording; no hover
    assert kinds["page_view"] == 1 and kinds["click"] == 1 and kinds["mouse_trajectory"] >= 1 and kinds["hover"] == 0
    assert {e["source"] for e in events} == {"posthog"} and all(e["source_event_id"] for e in events)
    assert signals(events)["compare_clicks"] == 1  # the element role from $elements_chain
    click = next(e for e in events if e["type"] == "click")
    assert click["page"]["item_id"] == "laptop-aurora-14"  # sent after the recording's snapshot: its product
    assert rejected and {r.reason for r in rejected} == {"scroll_depth_not_a_number"}
    assert all("rrweb scroll" in r.detail for r in rejected)


def test_posthog_compressed_rrweb_parts_and_body_encodings():
    snapshot = {"node": {"type": 0, "id": 1, "childNodes": [
        {"type": 2, "tagName": "button", "id": 5, "attributes": {"data-if-id": "cmp", "data-if-role": "compare_button"}}]},
        "initialOffset": {"top": 0, "left": 0}}
    packed = gzip.compress(json.dumps(snapshot).encode()).decode("latin-1")
    rr = {"type": 2, "timestamp": 1_796_000_000_000, "cv": posthog.COMPRESSION_VERSION, "data": packed}
    assert posthog.decompress_rrweb_event(rr)["data"] == snapshot
    ev = {"event": "$snapshot", "uuid": "0190a1b2-0000-7000-8000-000000000001",
          "properties": {"$session_id": "ps-1", "distinct_id": "d-1", "$snapshot_data": [rr]}}
    raw = json.dumps([ev]).encode()
    for body, compression, ctype in [(gzip.compress(raw), "gzip-js", "text/plain"),
                                     (urlencode({"data": base64.b64encode(raw).decode()}).encode(), "base64",
                                      "application/x-www-form-urlencoded"), (raw, None, "application/json")]:
        assert posthog.split_events(posthog.decode_body(body, compression, ctype)) == [ev]
    with pytest.raises(Exception, match="cannot decompress"):
        posthog.decode_body(b"\x1f\x8bnot gzip", "gzip-js")


@pytest.mark.parametrize("ev,reason,field", [
    ({"event": "$rageclick", "properties": {"$session_id": "s"}, "timestamp": "2026-12-02T11:00:00Z"},
     "unmappable", "$rageclick"),
    ({"event": "$pageview", "properties": {}, "timestamp": "2026-12-02T11:00:00Z"}, "missing_field", "$session_id"),
    ({"event": "$pageview", "properties": {"$session_id": "s"}, "timestamp": "soon"}, "bad_timestamp", "timestamp"),
    ({"event": "$snapshot", "properties": {"$session_id": "s", "$snapshot_data": "x"}}, "wrong_type", "$snapshot_data"),
    ({"event": "$snapshot", "properties": {"$session_id": "s", "$snapshot_data": [
        {"type": 2, "cv": "2024-10", "data": "not gzip", "timestamp": 1}]}}, "wrong_type", "$snapshot_data[0]"),
    ({"event": "$pageview"}, "missing_field", "properties"),
])
def test_posthog_malformed_is_rejected_naming_the_field(ev, reason, field):
    (item,) = posthog.map_events([ev])
    assert isinstance(item, Rejected) and item.reason == reason and field in item.detail


def test_posthog_autocapture_element_from_chain():
    props = {"$elements_chain": 'button.btn:attr__class="btn"attr__id="compare"nth-child="2";'
                                'section.card:attr__data-if-id="card-1"attr__data-if-role="product_card"'}
    assert posthog.element_from_chain(props) == {"element_id": "card-1", "element_role": "product_card"}
    assert posthog.element_from_chain({"$elements_chain": 'a:attr__id="home"'}) == {"element_id": "home",
                                                                                     "element_role": None}


def test_rrweb_trajectories_equal_the_sdk_javascript_summary():
    """Parity with the capture SDK: the stretches of the recorded rrweb session, summarised by the SDK's
    own ``summarizeTrajectory`` (web/sdk/intentflow.js, on node) and by the shared Python code."""
    import shutil
    import subprocess

    from udfs.datasets.trajectory import split_stretches

    node = shutil.which("node")
    if node is None:
        from tests.conftest import skip_unless_ci
        skip_unless_ci("node not installed")
    samples = []
    for req in fixture_requests("rrweb"):
        for ev in orjson.loads(body_of(req))["events"]:
            if ev["type"] == 3 and ev["data"].get("source") == 1:
                samples += [(ev["timestamp"] + p["timeOffset"], float(p["x"]), float(p["y"])) for p in ev["data"]["positions"]]
    stretches = [s for s in split_stretches(samples) if len(s) >= 2]
    assert stretches
    root = Path(__file__).resolve().parents[2]
    script = ("import { summarizeTrajectory } from './web/sdk/intentflow.js';"
              "const stretches = JSON.parse(process.argv[1]);"
              "console.log(JSON.stringify(stretches.map((s) => summarizeTrajectory("
              "s.map(([t, x, y]) => ({ t_ms: t, x_px: x, y_px: y }))))));")
    out = subprocess.run([node, "--input-type=module", "-e", script, json.dumps(stretches)], cwd=root,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [summarize_trajectory(s) for s in stretches]


# ---- any shape: an item or a rejection, never an exception ---------------------------------------------

ODD_VALUES = [None, "", "x", -1, 0, 1e308, 2**70, True, [], {}, [1, "a"], {"a": {"b": []}}, "1e999", "nan"]


def _mutations(obj: dict):
    """``obj`` with each top-level field (and each of its dict fields' fields) set to each odd value, or removed."""
    for key in list(obj):
        for value in ODD_VALUES:
            yield {**obj, key: value}
        yield {k: v for k, v in obj.items() if k != key}
        if isinstance(obj[key], dict):
            for sub in list(obj[key]):
                for value in ODD_VALUES[:8]:
                    yield {**obj, key: {**obj[key], sub: value}}


def _mapped_or_rejected(items) -> None:
    for item in items:
        assert isinstance(item, (Mapped, Rejected))
        if isinstance(item, Mapped):
            try:
                to_event(item, received_at_ms=1_796_000_000_000)
            except ValueError as exc:  # ContractError: a reasoned rejection
                assert getattr(exc, "reason", None), exc


def test_odd_shapes_of_every_tracker_give_items_or_rejections_never_exceptions():
    sp_event = dict(BASE_SP, e="se", se_ac="hover", se_va="2500", se_la="spec", se_pr="spec",
                    co=json.dumps({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                                   "data": [{"schema": "iglu:com.snowplowanalytics.snowplow.ecommerce/product/jsonschema/1-0-0",
                                             "data": {"id": "p"}}]}))
    n = 0
    for variant in _mutations(sp_event):
        _mapped_or_rejected([snowplow.map_event(variant)])
        n += 1
    for variant in _mutations(json.loads(json.dumps(SEG))):
        _mapped_or_rejected([segment.map_message(variant)])
        n += 1
    pageview = {"event": "$pageview", "uuid": "0190a1b2-0000-7000-8000-000000000002", "timestamp": "2026-12-02T11:00:00Z",
                "properties": {"$session_id": "s", "distinct_id": "d", "$current_url": "https://x/", "title": "t",
                               "$viewport_width": 1280, "$prev_pageview_max_scroll_percentage": 0.5}}
    for variant in _mutations(pageview):
        _mapped_or_rejected(posthog.map_events([variant]))
        n += 1
    for rr in ({"type": 4, "timestamp": 1_796_000_000_000, "data": {"href": "https://x/", "width": 800, "height": 600}},
               {"type": 3, "timestamp": 1_796_000_000_100, "data": {"source": 2, "type": 2, "id": 5, "x": 1, "y": 2}},
               {"type": 3, "timestamp": 1_796_000_000_200, "data": {"source": 1, "positions": [{"x": 1, "y": 2, "timeOffset": 0}]}},
               {"type": 2, "timestamp": 1_796_000_000_300, "data": {"node": {"type": 0, "id": 1, "childNodes": []}}}):
        for variant in _mutations(rr):
            _mapped_or_rejected(rrweb.map_batch({"session_id": "s", "document_height_px": 3000, "events": [variant]}))
            n += 1
    assert n > 500
