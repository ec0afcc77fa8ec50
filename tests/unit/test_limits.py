"""udfs.limits: the nesting-depth measure the normalizer and the collector rely on."""
from __future__ import annotations

import pytest

from udfs.contract import ContractError
from udfs.limits import EVENT_MAX_DEPTH, json_depth
from udfs.normalize import normalize_event


@pytest.mark.parametrize("value, depth", [
    (1, 0), ("x", 0), (None, 0), ({}, 1), ([], 1), ({"a": 1}, 1), ({"a": [1]}, 2), ([[], [[{}]]], 4),
    ({"a": {"b": 1}, "c": [[[[1]]]]}, 5),
])
def test_json_depth(value, depth):
    assert json_depth(value, max_depth=100) == depth


def test_json_depth_stops_past_the_limit_without_recursion():
    deep: object = 1
    for _ in range(100_000):  # far beyond Python's recursion limit
        deep = [deep]
    assert json_depth(deep, max_depth=16) == 17


def test_an_event_nested_past_the_limit_is_wrong_type():
    event = {"type": "click", "session_id": "s", "client_ts_ms": 1_764_669_600_000, "props": {}}
    nested: object = 1
    for _ in range(EVENT_MAX_DEPTH - 1):  # the event object itself is one more level
        nested = {"n": nested}
    at_limit, past_limit = {**event, "context": nested}, {**event, "context": {"n": nested}}
    assert (json_depth(at_limit, 100), json_depth(past_limit, 100)) == (EVENT_MAX_DEPTH, EVENT_MAX_DEPTH + 1)
    assert normalize_event(at_limit)["type"] == "click"  # unknown context keys are not kept; not an error
    with pytest.raises(ContractError) as err:
        normalize_event(past_limit)
    assert err.value.reason == "wrong_type" and "nested deeper" in err.value.detail


def test_integers_beyond_64_bits_are_refused_or_dropped_never_a_crash():
    event = {"type": "click", "session_id": "s", "client_ts_ms": 1_764_669_600_000}  # no event_id: derived
    kept = normalize_event({**event, "unknown": 2**70}, received_at_ms=1_764_669_600_000)
    assert "event_id_derived" in kept["flags"] and "unknown" not in kept
    assert normalize_event({**event, "unknown": 2**70})["event_id"] != normalize_event(event)["event_id"]
    for field, value in (("seq", 2**63), ("client_ts_ms", 10**30)):
        with pytest.raises(ContractError) as err:
            normalize_event({**event, field: value}, received_at_ms=1_764_669_600_000)
        assert err.value.reason == "wrong_type" and field in err.value.detail
