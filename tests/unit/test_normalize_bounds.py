"""Boundaries and error details of ``normalize_event`` that nothing asserted (docs/mutation.md: the
survivors of mutmut over udfs/normalize.py). Every expectation is read off udfs/normalize.py's docstring
(unit cuts, the offline time window, ``EVENT_MAX_DEPTH``) or docs/contracts.md §1 (field-level rejections
carry their reason code and name the field), not computed by the code under test."""
from __future__ import annotations

import math

import pytest

from udfs.contract import ContractError
from udfs.limits import EVENT_MAX_DEPTH, json_depth
from udfs.normalize import MAX_PLAUSIBLE_TS_MS, MIN_PLAUSIBLE_TS_MS, normalize_event, to_epoch_ms

NOW_MS = 1_764_500_000_000
EVENT_ID = "6f1c1f4e-3c1b-4f7e-9a55-2b7c0d1e8a42"


def _raw(kind: str = "click", props: dict | None = None, **overrides) -> dict:
    raw = {"type": kind, "session_id": "s-1", "event_id": EVENT_ID, "client_ts_ms": NOW_MS - 1_000, "seq": 0,
           "page": {"path": "/p/7", "item_id": "7"},
           "context": {"viewport_w_px": 1280, "viewport_h_px": 720},
           "props": {"element_id": "compare", "x_px": 1, "y_px": 2} if props is None else props}
    raw.update(overrides)
    return raw


def _rejection(raw: dict, **kwargs) -> ContractError:
    with pytest.raises(ContractError) as info:
        normalize_event(raw, **kwargs)
    return info.value


# ---- timestamps ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (99_999_999_999, (99_999_999_999_000, "ts_unit_seconds")),  # |v| < 1e11: seconds
    (100_000_000_000, (100_000_000_000, None)),                  # 1e11 itself: ms
    (99_999_999_999_999, (99_999_999_999_999, None)),            # < 1e14: ms
    (100_000_000_000_000, (100_000_000_000, "ts_unit_micros")),  # 1e14 itself: µs
    (10**17, (100_000_000_000, "ts_unit_nanos")),                # 1e17 itself: ns
    (-99_999_999_999, (-99_999_999_999_000, "ts_unit_seconds")),  # the magnitude decides
])
def test_unit_cuts_are_half_open_at_1e11_1e14_1e17(value, expected):
    assert to_epoch_ms(value) == expected


def test_offline_time_window_is_2000_inclusive_to_2100_exclusive():
    for ts in (MIN_PLAUSIBLE_TS_MS, MAX_PLAUSIBLE_TS_MS - 1):
        assert normalize_event(_raw(client_ts_ms=ts))["ts_ms"] == ts
    for ts in (MIN_PLAUSIBLE_TS_MS - 1, MAX_PLAUSIBLE_TS_MS):
        error = _rejection(_raw(client_ts_ms=ts))
        assert (error.reason, error.detail) == ("ts_out_of_range", f"ts_ms={ts}")


# ---- nesting ---------------------------------------------------------------------------------------

def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_an_event_exactly_event_max_depth_deep_is_kept_and_one_deeper_is_wrong_type():
    # the event object is level 1 and props level 2: an unknown prop of EVENT_MAX_DEPTH - 2 nested lists
    at_limit = _raw(props={"element_id": "compare", "extra": _nested(EVENT_MAX_DEPTH - 2)})
    assert json_depth(at_limit, EVENT_MAX_DEPTH) == EVENT_MAX_DEPTH
    out = normalize_event(at_limit, received_at_ms=NOW_MS)
    assert out["props"]["element_id"] == "compare" and out["flags"] == ["props_unknown_dropped"]

    too_deep = _raw(props={"element_id": "compare", "extra": _nested(EVENT_MAX_DEPTH - 1)})
    error = _rejection(too_deep, received_at_ms=NOW_MS)
    assert error.reason == "wrong_type"
    assert error.detail == f"nested deeper than {EVENT_MAX_DEPTH} levels (udfs.limits.EVENT_MAX_DEPTH)"


# ---- ids and props ---------------------------------------------------------------------------------

def test_a_tracker_events_source_event_id_is_kept():
    out = normalize_event(_raw(), received_at_ms=NOW_MS, source="snowplow", source_event_id="sp-e-42")
    assert (out["source"], out["source_event_id"]) == ("snowplow", "sp-e-42")


def test_numeric_ids_in_props_become_their_decimal_strings():
    click = normalize_event(_raw(props={"element_id": 123, "element_role": "spec"}), received_at_ms=NOW_MS)
    assert click["props"]["element_id"] == "123"
    exposure = normalize_event(_raw("exposure", {"experiment_id": 5, "variant": "b", "content_id": 9}),
                               received_at_ms=NOW_MS)
    assert (exposure["props"]["experiment_id"], exposure["props"]["content_id"]) == ("5", "9")


def test_an_add_to_cart_keeps_its_own_item_and_takes_the_pages_only_when_it_names_none():
    own = normalize_event(_raw("add_to_cart", {"item_id": "mouse-1", "quantity": 1}), received_at_ms=NOW_MS)
    assert own["props"]["item_id"] == "mouse-1"
    none = normalize_event(_raw("add_to_cart", {"quantity": 1}), received_at_ms=NOW_MS)
    assert none["props"]["item_id"] == "7"


@pytest.mark.parametrize("raw,reason,detail", [
    (_raw(anonymous_id=["a"]), "wrong_type", "anonymous_id: expected string, got list"),
    (_raw(props={"element_id": ["compare"]}), "wrong_type", "props.element_id: expected string, got list"),
    (_raw("hover", {"element_id": "c", "hover_ms": "long"}), "wrong_type",
     "props.hover_ms: expected a finite number, got 'long'"),
    (_raw("hover", {"element_id": "c", "hover_ms": -5}), "negative_duration", "props.hover_ms=-5"),
    (_raw("scroll", {"scroll_depth_pct": 10.0, "document_height_px": "tall"}), "wrong_type",
     "props.document_height_px: expected a finite number, got 'tall'"),
    (_raw("scroll", {"scroll_depth_pct": "deep"}), "wrong_type", "props.scroll_depth_pct: expected number, got 'deep'"),
    (_raw("scroll", {"scroll_depth_pct": None}), "scroll_depth_not_a_number",
     "scroll_depth_pct=None, not recomputable"),
    (_raw("mouse_trajectory", {"path_length_px": math.nan, "straightness": 0.5, "mean_speed_px_s": 80.0,
                               "jerk_px_s3": 1.0, "pause_count": 0, "sample_count": 3, "duration_ms": 100}),
     "wrong_type", "props.path_length_px: NaN/inf"),
], ids=["anonymous_id", "element_id", "hover_ms_type", "hover_ms_negative", "document_height", "scroll_depth_type",
        "scroll_depth_missing", "path_length_nan"])
def test_field_rejections_give_the_reason_and_a_detail_naming_the_field_and_value(raw, reason, detail):
    error = _rejection(raw, received_at_ms=NOW_MS)
    assert (error.reason, error.detail) == (reason, detail)


# ---- plausibility (udfs/plausibility.py) -----------------------------------------------------------

def _trajectory(speed_px_s: float, viewport: tuple[int, int]) -> dict:
    return _raw("mouse_trajectory", {"path_length_px": 100.0, "straightness": 0.9, "mean_speed_px_s": speed_px_s,
                                     "jerk_px_s3": 0.0, "pause_count": 0, "sample_count": 30, "duration_ms": 200},
                context={"viewport_w_px": viewport[0], "viewport_h_px": viewport[1]})


def test_trajectory_speed_is_judged_against_the_events_own_viewport():
    # a phone's 390 x 844 viewport: diagonal 929.7 px, 24 diagonals/s = 22,313 px/s; the 7,680 x 4,320
    # fallback viewport (used when a side is unknown) would allow 211,470 px/s
    phone, desktop = (390, 844), (1920, 1080)
    assert "trajectory_implausible" in normalize_event(_trajectory(30_000.0, phone), received_at_ms=NOW_MS)["flags"]
    assert "trajectory_implausible" not in normalize_event(_trajectory(20_000.0, phone), received_at_ms=NOW_MS)["flags"]
    # 1920 x 1080: diagonal 2,202.9 px, 52,869 px/s
    assert "trajectory_implausible" not in normalize_event(_trajectory(30_000.0, desktop),
                                                           received_at_ms=NOW_MS)["flags"]


def test_an_out_of_range_context_value_of_a_click_is_kept_and_flagged():
    raw = _raw(context={"viewport_w_px": 1280, "viewport_h_px": 720, "screen_w_px": 100_000})  # > 16,384 px
    out = normalize_event(raw, received_at_ms=NOW_MS)
    assert out["context"]["screen_w_px"] == 100_000
    assert out["flags"] == ["value_implausible"]


# ---- every rejection's detail names its field (full mutmut run over normalize.py, 2026-12-03) --------

def _set(path: str, value):
    """A mutation of ``_raw()``: set the dotted ``path`` (``context.network.rtt_ms``) to ``value``."""
    def mutate(raw: dict) -> dict:
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
        return raw
    return mutate


def _drop(key: str):
    def mutate(raw: dict) -> dict:
        raw.pop(key)
        return raw
    return mutate


@pytest.mark.parametrize("mutate,reason,detail", [
    (_set("context.user_agent", ["x"]), "wrong_type", "context.user_agent: expected string, got list"),
    (_set("context.viewport_h_px", "tall"), "wrong_type", "context.viewport_h_px: expected a finite number, got 'tall'"),
    (_set("context.network.effective_type", ["4g"]), "wrong_type",
     "context.network.effective_type: expected string, got list"),
    (_set("context.network.rtt_ms", "fast"), "wrong_type", "context.network.rtt_ms: expected a finite number, got 'fast'"),
    (_set("context.network.save_data", "yes"), "wrong_type", "context.network.save_data: expected boolean, got str"),
    (_set("context.timezone", ["UTC"]), "wrong_type", "context.timezone: expected string, got list"),
    (_set("context.geo.country", ["DE"]), "wrong_type", "geo.country: expected string, got list"),
    (_set("context.geo.region", ["BE"]), "wrong_type", "geo.region: expected string, got list"),
    (_set("context.consent.analytics", "yes"), "wrong_type", "context.consent.analytics: expected boolean, got str"),
    (_set("context", "desktop"), "wrong_type", "context: expected object, got str"),
    (_set("page.url", ["u"]), "wrong_type", "page.url: expected string, got list"),
    (_set("page.content_ids", "a:specs"), "wrong_type", "page.content_ids: expected list"),
    (_set("page.item_id", ["7"]), "wrong_type", "page.item_id: expected string, got list"),
    (_set("page.referrer", ["r"]), "wrong_type", "page.referrer: expected string, got list"),
    (_set("user_id", ["u"]), "wrong_type", "user_id: expected string, got list"),
    (_set("session_id", ["s"]), "wrong_type", "session_id: expected string, got list"),
    (_set("seq", -1), "wrong_type", "seq: expected a non-negative integer, got -1"),
    (_drop("type"), "missing_field", "type"),
    (_drop("session_id"), "missing_field", "session_id"),
    (_drop("client_ts_ms"), "missing_field", "client_ts_ms"),
    (lambda r: dict(r, type="hover", props={"element_id": "c"}), "missing_field", "props.hover_ms"),
    (lambda r: dict(r, type="scroll", props={"scroll_depth_pct": 5.0, "offset_px": "far"}), "wrong_type",
     "props.offset_px: expected a finite number, got 'far'"),
], ids=["user_agent", "viewport_h", "effective_type", "rtt", "save_data", "timezone", "geo_country", "geo_region",
        "consent", "context_object", "url", "content_ids", "page_item", "referrer", "user_id", "session_id", "seq",
        "no_type", "no_session", "no_client_ts", "no_hover_ms", "offset_px"])
def test_every_rejection_detail_names_the_field_with_its_path(mutate, reason, detail):
    error = _rejection(mutate(_raw()), received_at_ms=NOW_MS)
    assert (error.reason, error.detail) == (reason, detail)


@pytest.mark.parametrize("raw,detail", [
    ([1], "list"),
    ("text", "str"),
], ids=["list", "str"])
def test_a_non_object_event_is_rejected_naming_what_it_was(raw, detail):
    error = _rejection(raw, received_at_ms=NOW_MS)
    assert (error.reason, error.detail) == ("not_an_object", detail)


@pytest.mark.parametrize("value,detail", [
    ("yesterday", "'yesterday'"), (math.nan, "nan"), (math.inf, "inf"), (True, "True"), (None, "None"), ([1], "list"),
])
def test_a_bad_timestamp_is_rejected_with_the_value_as_sent(value, detail):
    with pytest.raises(ContractError) as info:
        to_epoch_ms(value)
    assert (info.value.reason, info.value.detail) == ("bad_timestamp", detail)


@pytest.mark.parametrize("kind,props,key", [
    ("add_to_cart", {"quantity": 1, "price": math.nan}, "price"),
    ("purchase", {"order_id": "o", "value": math.inf, "currency": "EUR"}, "value"),
    ("mouse_trajectory", {"path_length_px": 100.0, "straightness": 0.5, "mean_speed_px_s": math.nan, "jerk_px_s3": 1.0,
                          "pause_count": 0, "sample_count": 3, "duration_ms": 100}, "mean_speed_px_s"),
    ("mouse_trajectory", {"path_length_px": 100.0, "straightness": 0.5, "mean_speed_px_s": 80.0, "jerk_px_s3": -math.inf,
                          "pause_count": 0, "sample_count": 3, "duration_ms": 100}, "jerk_px_s3"),
])
def test_nan_or_inf_in_a_numeric_prop_is_wrong_type_naming_it(kind, props, key):
    error = _rejection(_raw(kind, props), received_at_ms=NOW_MS)
    assert (error.reason, error.detail) == ("wrong_type", f"props.{key}: NaN/inf")


# ---- values kept, converted or flagged -------------------------------------------------------------

def test_pixel_sizes_are_rounded_to_integers():
    out = normalize_event(_raw(context={"viewport_w_px": 1280, "viewport_h_px": 719.6, "screen_w_px": 1919.7,
                                        "screen_h_px": 1079.6}), received_at_ms=NOW_MS)
    sizes = {k: out["context"][k] for k in ("viewport_h_px", "screen_w_px", "screen_h_px")}
    assert sizes == {"viewport_h_px": 720, "screen_w_px": 1920, "screen_h_px": 1080}
    assert all(type(v) is int for v in sizes.values())


def test_an_overlong_user_agent_header_is_cut_to_its_limit_not_dropped():
    # the request's header (strings inside the event are cut earlier, at MAX_STRING_CHARS)
    from udfs.limits import USER_AGENT_MAX_CHARS

    ua = "Mozilla/5.0 (X11; Linux x86_64) " + "x" * USER_AGENT_MAX_CHARS
    out = normalize_event(_raw(), received_at_ms=NOW_MS, user_agent=ua)
    assert out["context"]["user_agent"] == ua[:USER_AGENT_MAX_CHARS] and len(ua) > USER_AGENT_MAX_CHARS


def test_the_pages_own_path_wins_over_the_urls_and_a_bare_host_is_root():
    both = normalize_event(_raw(page={"url": "https://shop.example/p/42", "path": "/custom"}), received_at_ms=NOW_MS)
    assert both["page"]["path"] == "/custom"
    bare = normalize_event(_raw(page={"url": "https://shop.example"}), received_at_ms=NOW_MS)
    assert bare["page"]["path"] == "/"


def test_more_numeric_prop_ids_become_strings_and_a_bool_id_is_refused():
    click = normalize_event(_raw(props={"element_id": "c", "element_role": 5}), received_at_ms=NOW_MS)
    cart = normalize_event(_raw("add_to_cart", {"item_id": 42, "quantity": 1}), received_at_ms=NOW_MS)
    exposure = normalize_event(_raw("exposure", {"experiment_id": "e", "variant": 2}), received_at_ms=NOW_MS)
    assert (click["props"]["element_role"], cart["props"]["item_id"], exposure["props"]["variant"]) == ("5", "42", "2")
    no_items = normalize_event(_raw("purchase", {"order_id": "o", "value": 1.0, "currency": "EUR"}), received_at_ms=NOW_MS)
    assert no_items["props"]["item_ids"] == []
    assert _rejection(_raw("purchase", {"order_id": "o", "value": 1.0, "currency": "EUR", "item_ids": [True]}),
                      received_at_ms=NOW_MS).reason == "wrong_type"


def test_durations_zero_is_kept_the_cap_itself_is_not_capped_and_visible_ms_is_optional():
    from udfs.normalize import MAX_DURATION_MS

    zero = normalize_event(_raw("hover", {"element_id": "c", "hover_ms": 0}), received_at_ms=NOW_MS)
    assert zero["props"]["hover_ms"] == 0 and zero["flags"] == []
    at_cap = normalize_event(_raw("hover", {"element_id": "c", "hover_ms": MAX_DURATION_MS}), received_at_ms=NOW_MS)
    assert at_cap["props"]["hover_ms"] == MAX_DURATION_MS and "duration_capped" not in at_cap["flags"]
    hidden = normalize_event(_raw("visibility", {"state": "hidden"}), received_at_ms=NOW_MS)
    assert hidden["props"]["visible_ms"] is None


def test_a_forms_value_is_dropped_with_its_own_flag_only():
    out = normalize_event(_raw("form", {"form_id": "f", "field_id": "q", "action": "change", "value": "secret"}),
                          received_at_ms=NOW_MS)
    assert "value" not in out["props"] and out["flags"] == ["form_value_dropped"]


def test_out_of_range_props_are_kept_and_flagged():
    # udfs.plausibility.RANGES: a cart quantity above 10,000; a scroll offset past the document's end
    cart = normalize_event(_raw("add_to_cart", {"quantity": 20_000}), received_at_ms=NOW_MS)
    assert cart["props"]["quantity"] == 20_000 and cart["flags"] == ["value_implausible"]
    scroll = normalize_event(_raw("scroll", {"scroll_depth_pct": 10.0, "offset_px": 5_000, "document_height_px": 3_000}),
                             received_at_ms=NOW_MS)
    assert scroll["props"]["offset_px"] == 5_000 and scroll["flags"] == ["value_implausible"]


def test_a_negative_scroll_offset_is_kept():
    # an elastic overscroll (iOS rubber band) reports a negative offset: a number, not an error
    out = normalize_event(_raw("scroll", {"scroll_depth_pct": 10.0, "offset_px": -10, "document_height_px": 3_000}),
                          received_at_ms=NOW_MS)
    assert out["props"]["offset_px"] == -10


@pytest.mark.parametrize("missing", ["offset_px", "document_height_px"])
def test_a_nan_depth_needs_offset_viewport_and_document_height_to_be_recomputed(missing):
    props = {"scroll_depth_pct": math.nan, "offset_px": 100, "document_height_px": 3_000}
    props.pop(missing)
    error = _rejection(_raw("scroll", props), received_at_ms=NOW_MS)
    assert (error.reason, error.detail) == ("scroll_depth_not_a_number", "scroll_depth_pct=nan, not recomputable")


def test_sort_events_puts_a_null_seq_first_within_one_ms_then_seq_order():
    from udfs.normalize import sort_events

    events = [{"ts_ms": 5, "seq": 2, "n": "a"}, {"ts_ms": 5, "seq": 0, "n": "b"}, {"ts_ms": 5, "seq": None, "n": "c"},
              {"ts_ms": 4, "seq": 9, "n": "d"}]
    assert [e["n"] for e in sort_events(events)] == ["d", "c", "b", "a"]


@pytest.mark.parametrize("big", [False, True], ids=["orjson", "beyond_64_bits"])
def test_a_derived_event_id_depends_on_the_content_not_on_key_order(big):
    # an integer beyond 64 bits (orjson cannot write it) takes the stdlib path: the same rules hold
    x_px = 2**70 if big else 10
    first = _raw(props={"element_id": "c", "x_px": x_px, "y_px": 2})
    del first["event_id"]
    reordered = {k: first[k] for k in reversed(list(first))}
    reordered["props"] = {k: first["props"][k] for k in reversed(list(first["props"]))}
    other = dict(first, props={"element_id": "c", "x_px": x_px, "y_px": 3})
    ids = [normalize_event(raw, received_at_ms=NOW_MS)["event_id"] for raw in (first, reordered, other)]
    assert ids[0] == ids[1] != ids[2]
