"""Normalization rules of udfs.normalize, one test per kind of bad input of issue 3."""
from __future__ import annotations

import math

import pytest

from udfs.contract import ContractError
from udfs.enrich import classify_user_agent, ip_prefix
from udfs.jsontext import loads_lenient
from udfs.normalize import MAX_DURATION_MS, normalize_event, sort_events, to_epoch_ms

NOW_MS = 1_764_500_000_000  # 2025-11-30T10:53:20Z
UUID = "1b4e28ba-2ca1-41d4-8b8e-0b1c2d3e4f5a"
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/120.0.0.0 Safari/537.36")
DESKTOP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Safari/537.36")


def raw_event(etype="page_view", props=None, **kw):
    ev = {"event_id": UUID, "type": etype, "session_id": "s1", "anonymous_id": "a1",
          "client_ts_ms": NOW_MS - 2_000, "seq": 0, "page": {"url": "https://shop.example/p/42"},
          "context": {"viewport_w_px": 1280, "viewport_h_px": 800}, "props": props or {}}
    ev.update(kw)
    return ev


def norm(ev, **kw):
    kw.setdefault("received_at_ms", NOW_MS)
    kw.setdefault("sent_at_ms", NOW_MS - 100)
    return normalize_event(ev, **kw)


# ---- scroll depth ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw_pct,expected_pct,flag", [
    (-12.5, 0.0, True), (130.0, 100.0, True), (55.5, 55.5, False), (0, 0.0, False), (100, 100.0, False)])
def test_scroll_depth_clamped_raw_kept(raw_pct, expected_pct, flag):
    ev = norm(raw_event("scroll", {"scroll_depth_pct": raw_pct, "offset_px": 10, "document_height_px": 2000}))
    assert ev["props"]["scroll_depth_pct"] == expected_pct
    assert ev["props"]["scroll_depth_pct_raw"] == raw_pct
    assert ("scroll_clamped" in ev["flags"]) is flag


def test_scroll_depth_nan_recomputed_from_offset_and_height():
    # (offset 1200 + viewport 800) / 4000 = 50 %
    ev = norm(raw_event("scroll", {"scroll_depth_pct": float("nan"), "offset_px": 1200, "document_height_px": 4000}))
    assert ev["props"]["scroll_depth_pct"] == 50.0
    assert ev["props"]["scroll_depth_pct_raw"] is None
    assert "scroll_recomputed" in ev["flags"]


def test_scroll_page_shorter_than_viewport_is_100_pct():
    # a 500 px page in an 800 px viewport: (0 + 800) / 500 = 160 % -> clamped to 100
    ev = norm(raw_event("scroll", {"scroll_depth_pct": None, "offset_px": 0, "document_height_px": 500}))
    assert ev["props"]["scroll_depth_pct"] == 100.0
    assert {"scroll_recomputed", "scroll_clamped"} <= set(ev["flags"])


def test_scroll_nan_not_recomputable_is_rejected():
    with pytest.raises(ContractError) as info:
        norm(raw_event("scroll", {"scroll_depth_pct": float("nan")}))
    assert info.value.reason == "scroll_depth_not_a_number"


def test_scroll_nan_through_lenient_json():
    obj = loads_lenient(b'{"scroll_depth_pct": NaN}')
    assert math.isnan(obj["scroll_depth_pct"])


# ---- durations -------------------------------------------------------------------------------------

@pytest.mark.parametrize("etype,name,extra", [("hover", "hover_ms", {}), ("visibility", "visible_ms", {"state": "visible"})])
def test_negative_duration_rejected(etype, name, extra):
    with pytest.raises(ContractError) as info:
        norm(raw_event(etype, {name: -5, **extra}))
    assert info.value.reason == "negative_duration"


def test_hours_long_duration_capped_and_flagged():
    three_hours_ms = 3 * 3600 * 1000
    ev = norm(raw_event("visibility", {"state": "hidden", "visible_ms": three_hours_ms}))
    assert ev["props"]["visible_ms"] == MAX_DURATION_MS == 1_800_000
    assert "duration_capped" in ev["flags"]
    ev = norm(raw_event("hover", {"hover_ms": 1500.4}))
    assert ev["props"]["hover_ms"] == 1500 and "duration_capped" not in ev["flags"]


# ---- timestamps and clocks -------------------------------------------------------------------------

def test_device_clock_a_day_behind_corrected_by_skew():
    day_ms = 86_400_000
    client_now = NOW_MS - day_ms  # the device clock is one day behind
    ev = normalize_event(raw_event(client_ts_ms=client_now - 5_000), received_at_ms=NOW_MS + 80,
                         sent_at_ms=client_now)
    assert ev["ts_ms"] == NOW_MS - 5_000 + 80  # client time + (received - sent)
    assert ev["client_ts_ms"] == client_now - 5_000
    assert "clock_skew_corrected" in ev["flags"]


def test_small_offset_is_transit_not_skew():
    ev = normalize_event(raw_event(client_ts_ms=NOW_MS - 5_000), received_at_ms=NOW_MS, sent_at_ms=NOW_MS - 300)
    assert ev["ts_ms"] == NOW_MS - 5_000 and "clock_skew_corrected" not in ev["flags"]


def test_device_clock_a_day_ahead_without_sent_at_replaced_by_received():
    ev = normalize_event(raw_event(client_ts_ms=NOW_MS + 86_400_000), received_at_ms=NOW_MS, sent_at_ms=None)
    assert ev["ts_ms"] == NOW_MS and "ts_replaced_by_received" in ev["flags"]
    assert ev["client_ts_ms"] == NOW_MS + 86_400_000


def test_1970_timestamp_replaced_by_received_time():
    ev = normalize_event(raw_event(client_ts_ms=5_000), received_at_ms=NOW_MS)
    assert ev["ts_ms"] == NOW_MS and "ts_replaced_by_received" in ev["flags"]


def test_out_of_range_without_collector_clock_is_rejected():
    with pytest.raises(ContractError) as info:
        normalize_event(raw_event(client_ts_ms=5_000))
    assert info.value.reason == "ts_out_of_range"


@pytest.mark.parametrize("value,expected_ms,flag", [
    (1_764_500_000, 1_764_500_000_000, "ts_unit_seconds"),            # seconds where ms are expected
    (1_764_500_000.123, 1_764_500_000_123, "ts_unit_seconds"),        # float seconds (YOOCHOOSE style)
    (1_764_500_000_123, 1_764_500_000_123, None),                     # ms
    ("1764500000123", 1_764_500_000_123, None),                       # ms as a string
    (1_764_500_000_123_456, 1_764_500_000_123, "ts_unit_micros"),     # µs
    (1_764_500_000_123_456_789, 1_764_500_000_123, "ts_unit_nanos"),  # ns
    ("2025-11-30T10:53:20.123Z", 1_764_500_000_123, "ts_unit_iso"),
    ("2025-11-30T11:53:20.123+01:00", 1_764_500_000_123, "ts_unit_iso"),
    ("2025-11-30T10:53:20", 1_764_500_000_000, "ts_naive_utc"),
])
def test_timestamp_units(value, expected_ms, flag):
    assert to_epoch_ms(value) == (expected_ms, flag)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, None, "yesterday", [1]])
def test_bad_timestamps(value):
    with pytest.raises(ContractError) as info:
        to_epoch_ms(value)
    assert info.value.reason == "bad_timestamp"


def test_seconds_in_event_and_sent_at():
    ev = normalize_event(raw_event(client_ts_ms=(NOW_MS - 3_000) / 1000), received_at_ms=NOW_MS,
                         sent_at_ms=(NOW_MS - 50) / 1000)
    assert ev["client_ts_ms"] == NOW_MS - 3_000 and ev["sent_at_ms"] == NOW_MS - 50
    assert ev["ts_ms"] == NOW_MS - 3_000 and "ts_unit_seconds" in ev["flags"]


# ---- ids -------------------------------------------------------------------------------------------

def test_same_event_id_twice_stays_the_same_for_dedup():
    first = norm(raw_event(), sent_at_ms=NOW_MS - 100)
    retry = normalize_event(raw_event(), received_at_ms=NOW_MS + 30_000, sent_at_ms=NOW_MS + 29_900)  # re-sent later
    assert first["event_id"] == retry["event_id"] == UUID
    assert first["ts_ms"] == retry["ts_ms"]


def test_missing_event_id_derived_from_content_deterministically():
    ev = raw_event()
    del ev["event_id"]
    a = norm(dict(ev))
    b = normalize_event(dict(ev), received_at_ms=NOW_MS + 5_000, sent_at_ms=NOW_MS + 4_950)  # beacon vs fetch
    assert a["event_id"] == b["event_id"] and "event_id_derived" in a["flags"]
    other = dict(ev, seq=1)
    assert norm(other)["event_id"] != a["event_id"]


def test_non_uuid_event_id_mapped_to_uuid():
    ev = norm(raw_event(event_id="client-123"))
    assert ev["event_id"] == norm(raw_event(event_id="client-123"))["event_id"] != "client-123"
    assert "event_id_derived" in ev["flags"]


# ---- text ------------------------------------------------------------------------------------------

def test_invalid_utf8_and_lone_surrogate_cleaned_per_field():
    body = (b'{"event_id": "' + UUID.encode() + b'", "type": "page_view", "session_id": "s1", '
            b'"client_ts_ms": 1764499998000, "page": {"url": "https://shop.example/p/\xff42"}, '
            b'"props": {"title": "Tee \\ud83d shirt \xc3\xa9"}}')
    ev = norm(loads_lenient(body))
    assert ev["page"]["url"] == "https://shop.example/p/\ufffd42"
    assert ev["props"]["title"] == "Tee \ufffd shirt é"
    assert ev["session_id"] == "s1" and "text_cleaned" in ev["flags"]
    ev.__repr__().encode("utf-8")  # encodable: no surrogate left


def test_valid_surrogate_pair_kept():
    ev = norm(loads_lenient('{"type":"page_view","session_id":"s1","client_ts_ms":1764499998000,'
                            '"props":{"title":"\\ud83d\\ude00"}}'))
    assert ev["props"]["title"] == "😀" and "text_cleaned" not in ev["flags"]


# ---- user agents -----------------------------------------------------------------------------------

@pytest.mark.parametrize("ua,expected", [
    (HEADLESS, ("bot", True)),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", ("bot", True)),
    ("python-requests/2.31.0", ("bot", True)),
    (DESKTOP, ("desktop", False)),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.0 Mobile/15E148 Safari/604.1", ("mobile", False)),
    ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
     "Mobile Safari/537.36", ("mobile", False)),
    ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.0 Mobile/15E148 Safari/604.1", ("tablet", False)),
    ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
     "Safari/537.36", ("tablet", False)),
    ("", ("unknown", False)),
    (None, ("unknown", False)),
])
def test_device_class_from_user_agent(ua, expected):
    assert classify_user_agent(ua) == expected


def test_headless_user_agent_flagged_not_dropped():
    ev = norm(raw_event(), user_agent=HEADLESS)
    assert ev["context"]["is_bot"] is True and ev["context"]["device_class"] == "bot"
    assert "bot_user_agent" in ev["flags"] and ev["type"] == "page_view"


# ---- IP --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ip,expected", [
    ("203.0.113.77", "203.0.113.0/24"),
    ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
    ("::ffff:198.51.100.9", "198.51.100.0/24"),
    ("not-an-ip", None), (None, None)])
def test_ip_truncated(ip, expected):
    assert ip_prefix(ip) == expected


def test_raw_ip_never_stored():
    ev = norm(raw_event(), client_ip="203.0.113.77")
    assert ev["context"]["ip_prefix"] == "203.0.113.0/24"
    assert "203.0.113.77" not in repr(ev)


# ---- order, required fields, types -----------------------------------------------------------------

def test_out_of_order_events_of_a_session_sorted_by_event_time_then_seq():
    evs = [norm(raw_event(event_id=None, seq=s, client_ts_ms=NOW_MS - t)) for s, t in
           [(2, 1_000), (0, 3_000), (1, 3_000), (3, 500)]]
    assert [e["seq"] for e in sort_events(evs)] == [0, 1, 2, 3]
    assert [e["seq"] for e in evs] == [2, 0, 1, 3]  # normalization itself keeps what was sent


@pytest.mark.parametrize("mutate,reason", [
    (lambda e: e.pop("session_id"), "missing_field"),
    (lambda e: e.pop("type"), "missing_field"),
    (lambda e: e.pop("client_ts_ms"), "missing_field"),
    (lambda e: e.update(type="swipe"), "unknown_type"),
    (lambda e: e.update(session_id=["x"]), "wrong_type"),
    (lambda e: e.update(seq="3"), "wrong_type"),
    (lambda e: e.update(seq=-1), "wrong_type"),
    (lambda e: e.update(page="home"), "wrong_type"),
    (lambda e: e["context"].update(viewport_w_px="wide"), "wrong_type"),
    (lambda e: e.update(type="hover", props={"element_id": "x"}), "missing_field"),
    (lambda e: e.update(type="form", props={"action": "typed"}), "wrong_type"),
    (lambda e: e.update(client_ts_ms="soon"), "bad_timestamp"),
])
def test_required_fields_missing_or_wrong_type(mutate, reason):
    ev = raw_event()
    mutate(ev)
    with pytest.raises(ContractError) as info:
        norm(ev)
    assert info.value.reason == reason


def test_not_an_object():
    with pytest.raises(ContractError) as info:
        norm([1, 2])
    assert info.value.reason == "not_an_object"


def test_form_typed_value_never_kept():
    ev = norm(raw_event("form", {"form_id": "f", "field_id": "email", "action": "change", "value": "a@b.c"}))
    assert "a@b.c" not in repr(ev) and "form_value_dropped" in ev["flags"]


def test_numeric_ids_become_strings_and_path_from_url():
    ev = norm(raw_event("add_to_cart", {"quantity": 1}, page={"url": "https://s.example/p/9?ref=x", "item_id": 9}))
    assert ev["page"]["item_id"] == "9" and ev["props"]["item_id"] == "9" and ev["page"]["path"] == "/p/9"


def test_client_bot_hint_flags_but_false_never_overrules_ua():
    ev = norm(raw_event(context={"is_bot": True}), user_agent=DESKTOP)
    assert ev["context"]["is_bot"] is True and "bot_client_hint" in ev["flags"]
    ev = norm(raw_event(context={"is_bot": False}), user_agent=HEADLESS)
    assert ev["context"]["is_bot"] is True and ev["context"]["device_class"] == "bot"


def test_event_sent_at_null_falls_back_to_batch_sent_at():
    client_now = NOW_MS - 3_600_000  # clock an hour behind
    ev = normalize_event(raw_event(client_ts_ms=client_now - 1_000, sent_at_ms=None), received_at_ms=NOW_MS,
                         sent_at_ms=client_now)
    assert ev["ts_ms"] == NOW_MS - 1_000 and ev["sent_at_ms"] == client_now


def test_overlong_string_cut_not_rejected():
    ev = norm(raw_event(page={"url": "https://shop.example/p/1?" + "q" * 5000}))
    assert len(ev["page"]["url"]) == 2048 and "text_truncated" in ev["flags"]
