"""Every field of a full SDK event through ``normalize_event`` (docs/contracts.md §1), and the reason codes
of field-level rejections. The expected event is written out by hand from the input and the rules in
udfs/normalize.py's docstring (ids as strings, integer pixels, IP cut to its /24, unknown props dropped
with a flag)."""
from __future__ import annotations

import math

import pytest

from udfs.contract import ContractError
from udfs.normalize import normalize_event

pytestmark = pytest.mark.claim

NOW_MS = 1_764_500_000_000
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/126.0 Safari/537.36")
EVENT_ID = "6f1c1f4e-3c1b-4f7e-9a55-2b7c0d1e8a42"


def _raw(**overrides) -> dict:
    raw = {"type": "click", "session_id": "s-9", "anonymous_id": "anon-9", "user_id": 42, "event_id": EVENT_ID,
           "client_ts_ms": NOW_MS - 2_000, "seq": 3,
           "page": {"url": "https://shop.example/p/42?x=1", "item_id": 7, "content_ids": ["a:specs", "a:video"],
                    "referrer": "https://search.example/"},
           "context": {"user_agent": UA, "viewport_w_px": 1280.0, "viewport_h_px": 720, "screen_w_px": 1920,
                       "screen_h_px": 1080,
                       "network": {"effective_type": "4g", "rtt_ms": 50, "downlink_mbps": 10.5, "save_data": False},
                       "timezone": "Europe/Berlin", "locale": "de-DE", "geo": {"country": "DE", "region": "BE"},
                       "consent": {"analytics": True, "personalization": False}},
           "props": {"element_id": "compare", "element_role": "compare_button", "x_px": 10.5, "y_px": 20,
                     "extra": "x"}}
    raw.update(overrides)
    return raw


def test_every_field_of_a_full_event():
    out = normalize_event(_raw(), received_at_ms=NOW_MS, sent_at_ms=NOW_MS - 1_000, client_ip="203.0.113.77")
    assert out == {
        "event_id": EVENT_ID, "schema_version": 1, "type": "click",
        "session_id": "s-9", "anonymous_id": "anon-9", "user_id": "42", "seq": 3,
        "client_ts_ms": NOW_MS - 2_000, "sent_at_ms": NOW_MS - 1_000, "received_at_ms": NOW_MS,
        "ts_ms": NOW_MS - 2_000,  # 1 s between sent and received is transit, not skew
        "page": {"url": "https://shop.example/p/42?x=1", "path": "/p/42", "item_id": "7",
                 "content_ids": ["a:specs", "a:video"], "referrer": "https://search.example/", "type": None},
        "context": {"user_agent": UA, "device_class": "desktop", "is_bot": False,
                    "viewport_w_px": 1280, "viewport_h_px": 720, "screen_w_px": 1920, "screen_h_px": 1080,
                    "network": {"effective_type": "4g", "rtt_ms": 50.0, "downlink_mbps": 10.5, "save_data": False},
                    "timezone": "Europe/Berlin", "locale": "de-DE", "geo": {"country": "DE", "region": "BE"},
                    "consent": {"analytics": True, "personalization": False}, "ip_prefix": "203.0.113.0/24"},
        "flags": ["props_unknown_dropped"],
        "source": "sdk", "source_event_id": None,
        "props": {"element_id": "compare", "element_role": "compare_button", "x_px": 10.5, "y_px": 20.0},
    }


def test_the_edges_geo_and_the_events_own_sent_time_win():
    # this event's client clock is an hour behind: it happened 1 s before it was sent
    raw = _raw(client_ts_ms=NOW_MS - 3_600_000 - 2_000, sent_at_ms=NOW_MS - 3_600_000 - 1_000)
    raw.pop("anonymous_id")
    out = normalize_event(raw, received_at_ms=NOW_MS, sent_at_ms=NOW_MS - 1_000, geo={"country": "FR", "region": "IDF"})
    assert out["context"]["geo"] == {"country": "FR", "region": "IDF"}
    assert out["sent_at_ms"] == NOW_MS - 3_601_000
    assert out["ts_ms"] == NOW_MS - 1_000  # client time + skew (received - sent = 3,601,000 ms)
    assert "clock_skew_corrected" in out["flags"]
    assert out["anonymous_id"] == "s-9"  # no anonymous id: the session id stands in
    no_url = normalize_event(_raw(page={"path": "/only-path"}), received_at_ms=NOW_MS)
    assert no_url["page"]["path"] == "/only-path" and no_url["page"]["url"] is None


@pytest.mark.parametrize("mutate,reason,field", [
    (lambda r: r["context"].update(viewport_w_px=-1), "wrong_type", "context.viewport_w_px"),
    (lambda r: r["context"].update(screen_h_px=-5), "wrong_type", "context.screen_h_px"),
    (lambda r: r["context"]["network"].update(downlink_mbps=-0.5), "wrong_type", "context.network.downlink_mbps"),
    (lambda r: r["page"].update(content_ids="a:specs"), "wrong_type", "page.content_ids: expected list"),
    (lambda r: r["page"].update(content_ids=[{"id": 1}]), "wrong_type", "page.content_ids: expected strings"),
    (lambda r: r["props"].update(x_px=math.nan), "wrong_type", "props.x_px: NaN/inf"),
    (lambda r: r["props"].update(y_px=math.inf), "wrong_type", "props.y_px: NaN/inf"),
    (lambda r: r.update(type="teleport"), "unknown_type", "'teleport'"),
])
def test_field_rejections_name_their_reason_and_field(mutate, reason, field):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ContractError) as info:
        normalize_event(raw, received_at_ms=NOW_MS)
    assert info.value.reason == reason
    assert field in str(info.value)


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r["context"].update(locale=["de"]), "context.locale"),
    (lambda r: r["context"].update(screen_w_px="wide"), "context.screen_w_px"),
    (lambda r: r["context"]["consent"].update(personalization="yes"), "context.consent.personalization"),
    (lambda r: r["page"].update(path=["/p"]), "page.path"),
])
def test_a_wrong_type_names_the_field_with_its_path(mutate, field):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ContractError, match=field.replace(".", r"\.")) as info:
        normalize_event(raw, received_at_ms=NOW_MS)
    assert info.value.reason == "wrong_type"


def test_props_rules_per_type():
    from udfs.contract import derive_event_id

    purchase = normalize_event(_raw(type="purchase", props={"order_id": 17, "value": 99.5, "currency": "EUR",
                                                            "item_ids": [7, "x"]}), received_at_ms=NOW_MS)
    assert purchase["props"] == {"order_id": "17", "value": 99.5, "currency": "EUR", "item_ids": ["7", "x"]}
    cart = normalize_event(_raw(type="add_to_cart", props={"quantity": 1, "price": 10}), received_at_ms=NOW_MS)
    assert cart["props"]["item_id"] == "7"  # the page's item when the event names none
    derived = normalize_event(_raw(event_id="client-123"), received_at_ms=NOW_MS)
    assert derived["event_id"] == derive_event_id("client:client-123")  # contract: uuid5 of "client:<id>"


def test_event_time_bounds_are_inclusive():
    from udfs.normalize import MAX_FUTURE_MS, MAX_PAST_MS

    for ts in (NOW_MS + MAX_FUTURE_MS, NOW_MS - MAX_PAST_MS):
        out = normalize_event(_raw(client_ts_ms=ts), received_at_ms=NOW_MS)
        assert out["ts_ms"] == ts and "ts_replaced_by_received" not in out["flags"], ts
    out = normalize_event(_raw(client_ts_ms=NOW_MS + MAX_FUTURE_MS + 1), received_at_ms=NOW_MS)
    assert out["ts_ms"] == NOW_MS and "ts_replaced_by_received" in out["flags"]


def test_a_scroll_on_a_page_of_no_height_is_100_pct_recomputed_not_clamped():
    out = normalize_event(_raw(type="scroll", props={"scroll_depth_pct": None, "offset_px": 0,
                                                     "document_height_px": 0}), received_at_ms=NOW_MS)
    assert out["props"]["scroll_depth_pct"] == 100.0 and out["props"]["scroll_depth_pct_raw"] is None
    assert out["flags"] == ["scroll_recomputed"]
