"""The msgspec decoder made from the contract (udfs/contract_fast.py) against the pydantic models it is made from.

What must hold: whatever the generated decoder accepts, pydantic accepts too, with an equal dict (key order and
value types included); the contract's valid events are accepted by it (else the fast path is
never taken). Proven field by field, on the contract tests' events, and by hypothesis on mutated events.
"""
from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from udfs import contract_fast
from udfs.contract import EVENT_ADAPTER, EVENT_TYPES, PROPS_MODELS, ContractError, make_event, parse_event
from udfs.contract_models import Consent, Context, EventBase, Geo, Network, Page
from udfs.contract_fast import decode_canonical, struct_for

from tests.unit.test_contract import PROPS

PAIRS = [(m, struct_for(m)) for m in (EventBase, Page, Context, Network, Geo, Consent)]
PROPS_PAIRS = [(PROPS_MODELS[t], struct_for(PROPS_MODELS[t])) for t in EVENT_TYPES]


def _pydantic(raw: bytes) -> dict | None:
    try:
        return EVENT_ADAPTER.validate_json(raw).model_dump()
    except ValidationError:
        return None


def _same(fast: dict, slow: dict) -> bool:
    """Equal, in the same key order, with the same value types (repr tells 1 from 1.0 and -0.0 from 0.0)."""
    return fast == slow and repr(fast) == repr(slow)


def _valid_events() -> list[dict]:
    out = []
    for i, etype in enumerate(EVENT_TYPES):
        out.append(make_event(etype, session_id=f"s{i}", client_ts_ms=1_764_000_000_000 + i, source_key=f"k{i}",
                              props=PROPS[etype]))
        out.append(make_event(etype, session_id=f"s{i}", client_ts_ms=1_764_000_000_000 + i, source_key=f"m{i}",
                              seq=i, user_id="u", sent_at_ms=1, received_at_ms=2, source="sdk", source_event_id="x",
                              page={"url": "https://shop.example/p/1", "item_id": "1", "type": "product_related",
                                    "content_ids": ["a", "b"]},
                              context={"device_class": "mobile", "viewport_w_px": 390, "is_bot": False,
                                       "network": {"effective_type": "4g", "rtt_ms": 50, "save_data": True},
                                       "geo": {"country": "DE"}, "consent": {"analytics": True}},
                              flags=["text_truncated"], props=PROPS[etype]))
    return out


VALID = _valid_events()


@pytest.mark.parametrize("pydantic_model,struct", PAIRS + PROPS_PAIRS,
                         ids=lambda m: getattr(m, "__name__", str(m)))
def test_generated_fields_match_the_pydantic_model(pydantic_model: type[BaseModel], struct) -> None:
    """Same field names in the same order, same required fields, same defaults."""
    assert list(struct.__struct_fields__) == list(pydantic_model.model_fields)
    for name, info in pydantic_model.model_fields.items():
        # msgspec keeps the defaults of the last len(__struct_defaults__) fields (NODEFAULT: required)
        first_default = len(struct.__struct_fields__) - len(struct.__struct_defaults__)
        i = struct.__struct_fields__.index(name)
        default = struct.__struct_defaults__[i - first_default] if i >= first_default else msgspec.NODEFAULT
        if info.is_required():
            assert default is msgspec.NODEFAULT, name
        elif info.default_factory is not None:
            made = info.default_factory()
            want = made.model_dump() if isinstance(made, BaseModel) else made
            assert msgspec.to_builtins(default.factory()) == want, name
        else:
            assert info.default is not PydanticUndefined and default == info.default, name


def test_every_event_type_has_its_struct() -> None:
    assert list(contract_fast.EVENT_STRUCTS) == list(EVENT_TYPES)
    for etype, cls in contract_fast.EVENT_STRUCTS.items():
        assert list(cls.__struct_fields__) == list(EventBase.model_fields) + ["props"], etype


@pytest.mark.parametrize("event", VALID, ids=lambda e: e["type"] + ("+" if e["seq"] is not None else ""))
def test_valid_events_take_the_fast_path_with_the_same_dict(event: dict) -> None:
    raw = json.dumps(event).encode()
    fast = decode_canonical(raw)
    assert fast is not None
    assert _same(fast, _pydantic(raw))
    assert _same(parse_event(raw), fast)
    assert _same(decode_canonical(raw.decode()), fast)  # str as well as bytes
    assert _same(decode_canonical(memoryview(raw)), fast)


def test_defaults_are_filled_like_pydantic() -> None:
    raw = b'{"event_id":"00000000-0000-4000-8000-000000000001","session_id":"s","anonymous_id":"s",' \
          b'"client_ts_ms":1,"ts_ms":1,"type":"purchase"}'
    fast = decode_canonical(raw)
    assert fast is not None and _same(fast, _pydantic(raw))
    assert fast["props"]["item_ids"] == [] and fast["context"]["network"]["rtt_ms"] is None


def _with(event: dict, path: tuple, value) -> bytes:
    out = json.loads(json.dumps(event))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(out, allow_nan=True).encode()


@pytest.mark.parametrize("path,value", [
    (("event_id",), "00000000-0000-4000-8000-000000000001\n"),  # Python re's $ would match before the newline
    (("event_id",), "00000000-0000-4000-8000-00000000000A"),
    (("client_ts_ms",), 2**63),
    (("client_ts_ms",), -(2**63) - 1),
    (("client_ts_ms",), 1.0),
    (("client_ts_ms",), True),
    (("seq",), -1),
    (("session_id",), ""),
    (("session_id",), "x" * 257),
    (("schema_version",), 2),
    (("type",), "tap"),
    (("source",), "amplitude"),
    (("page", "type"), "checkout"),
    (("page", "unknown"), 1),
    (("context", "is_bot"), 1),
    (("context", "network", "rtt_ms"), -0.5),
    (("context", "user_agent"), "u" * 4097),
    (("props", "unknown"), 1),
    (("flags",), [1]),
    (("page", "url"), "é" * 2049),
])
def test_what_pydantic_refuses_the_decoder_refuses(path: tuple, value) -> None:
    event = next(e for e in VALID if e["type"] == "click")
    raw = _with(event, path, value)
    assert _pydantic(raw) is None
    assert decode_canonical(raw) is None
    with pytest.raises(ContractError):
        parse_event(raw)


@pytest.mark.parametrize("raw", [b"", b"[]", b"null", b"{", b'{"type":"click"}', b"\xff\xfe",
                                 b'{"event_id":"\\ud800"}', "\ud800".encode("utf-8", "surrogatepass"),
                                 '{"event_id":"\ud800"}'])  # a str with a lone surrogate
def test_garbage_is_refused_without_raising(raw: bytes | str) -> None:
    assert decode_canonical(raw) is None


def test_boundaries_pydantic_accepts_are_accepted_alike() -> None:
    event = next(e for e in VALID if e["type"] == "scroll")
    for path, value in [(("client_ts_ms",), 2**63 - 1), (("client_ts_ms",), -(2**63)),
                        (("props", "scroll_depth_pct"), 100), (("props", "scroll_depth_pct"), -0.0),
                        (("page", "url"), "\U0001f600" * 2048), (("context", "network", "rtt_ms"), 2**70),
                        (("props", "offset_px"), 9007199254740993),
                        (("schema_version",), True)]:  # pydantic: True == 1 for Literal[1]; msgspec refuses
        raw = _with(event, path, value)
        slow = _pydantic(raw)
        assert slow is not None, path
        fast = decode_canonical(raw)
        assert fast is None or _same(fast, slow), (path, value)


# -- hypothesis: mutated events ------------------------------------------------------------------------

def _paths(model: type[BaseModel], prefix: tuple = ()) -> list[tuple]:
    out = []
    for name, info in model.model_fields.items():
        out.append(prefix + (name,))
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(_paths(ann, prefix + (name,)))
    return out


_ENVELOPE_PATHS = _paths(EventBase) + [("type",), ("props",)]
_PROPS_PATHS = {t: [("props",) + p for p in _paths(PROPS_MODELS[t])] for t in EVENT_TYPES}

_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 100, 101, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, 100.0, 100.0001, 1e308]),
    st.text(max_size=12),
    st.sampled_from(EVENT_TYPES + ("visible", "hidden", "blur", "sdk", "mobile", "product_related", "",
                                   "00000000-0000-4000-8000-000000000001",
                                   "00000000-0000-4000-8000-000000000001\n", "x" * 2048, "x" * 2049)),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3), st.dictionaries(st.sampled_from(
    ["url", "item_id", "rtt_ms", "country", "analytics", "x", "title", "hover_ms"]), _scalars, max_size=3))


@st.composite
def _mutated(draw) -> bytes:
    event = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    etype = event["type"]  # the props paths of the event drawn, whatever a mutation does to "type"
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_ENVELOPE_PATHS + _PROPS_PATHS[etype]))
        node = event
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            how = draw(st.sampled_from(["set", "set", "delete", "extra"]))
            if how == "set":
                node[path[-1]] = draw(_values)
            elif how == "delete":
                node.pop(path[-1], None)
            else:
                node[draw(st.sampled_from(["extra", "Type", "props2"]))] = draw(_scalars)
    return json.dumps(event, allow_nan=True).encode()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_mutated())
def test_whatever_the_decoder_accepts_pydantic_accepts_alike(raw: bytes) -> None:
    fast = decode_canonical(raw)
    slow = _pydantic(raw)
    if fast is not None:
        assert slow is not None, raw
        assert _same(fast, slow), raw
    elif slow is not None:
        # refused here but valid: only JSON msgspec does not read, numbers it does not hold, or pydantic's
        # True for Literal[1]
        assert (b"NaN" in raw or b"Infinity" in raw or _has_huge_number(slow)
                or b'"schema_version": true' in raw), raw


def _has_huge_number(obj) -> bool:
    if isinstance(obj, dict):
        return any(_has_huge_number(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_huge_number(v) for v in obj)
    return isinstance(obj, float) and (math.isinf(obj) or abs(obj) >= 2**63)


def test_a_field_the_translation_does_not_know_is_an_error_at_import() -> None:
    """A new kind of field in the models fails loudly (the decoder is made at import), never decodes loosely."""
    from pydantic import ConfigDict

    class WithMapping(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        counts: dict[str, int] = {}

    with pytest.raises(TypeError, match="no msgspec equivalent"):
        struct_for(WithMapping)


@pytest.mark.parametrize("first,second", [("click", "page_view"), ("page_view", "click"), ("click", "click")])
def test_a_repeated_type_is_read_as_pydantic_reads_it_or_refused(first: str, second: str) -> None:
    """JSON with ``type`` twice: pydantic takes the last; the decoder must not decide by the first."""
    raw = ('{"type":"%s","event_id":"00000000-0000-4000-8000-000000000001","session_id":"s","anonymous_id":"s",'
           '"client_ts_ms":1,"ts_ms":1,"type":"%s"}' % (first, second)).encode()
    fast, slow = decode_canonical(raw), _pydantic(raw)
    assert slow is not None and slow["type"] == second
    assert fast is None or _same(fast, slow)
    assert _same(parse_event(raw), slow)
