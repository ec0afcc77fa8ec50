"""Keyed-state values and Redis session summaries stay what earlier code wrote (issue 19: the per-session
cost of a state write, a state read and a summary at 100,000 open sessions was cut without changing either).

``tests/fixtures/session_state/stored_values.json`` holds values and summaries written by commit ab257fb's
code (``make_stored_values.py`` there): they must decode, and to sessions whose summaries are byte for byte
the ones written then.
"""
from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.scale_cost import old_summaries as reference_summaries  # ab257fb's, verbatim
from udfs.decide import session_summaries
from udfs.features import N_FEATURES
from udfs.microbatch import decode_stored, encode_stored

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "session_state" / "stored_values.json"


def _fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def test_values_written_by_earlier_code_decode_to_the_summaries_it_wrote():
    doc = _fixture()
    entries = {sid: decode_stored(base64.b64decode(value)) for sid, value in doc["values"].items()}
    assert set(entries) == {"fx-article", "fx-shallow", "fx-long"}
    assert entries["fx-long"].lag is not None  # the fixture covers a lagging state
    assert session_summaries(entries, *doc["summaries_args"]) == doc["summaries"]
    # ... and the field values byte for byte as Redis receives them (str, UTF-8)
    for sid, fields in session_summaries(entries, *doc["summaries_args"]).items():
        assert list(fields) == list(doc["summaries"][sid])
        assert [str(v).encode() for v in fields.values()] == [str(v).encode() for v in doc["summaries"][sid].values()]


def test_a_value_read_and_written_again_reads_back_the_same_session():
    doc = _fixture()
    entries = {sid: decode_stored(base64.b64decode(value)) for sid, value in doc["values"].items()}
    again = {sid: decode_stored(encode_stored(entry)) for sid, entry in entries.items()}
    assert session_summaries(again, *doc["summaries_args"]) == doc["summaries"]
    # every field: the pickle equals that of the session read back from the encoding of ab257fb (zstd level 1)
    # and the one before it (zlib); not the pickle of ``entry`` itself: a set read back may iterate in another
    # order than the set it was pickled from
    for sid, entry in entries.items():
        raw = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        for earlier in (zstandard.ZstdCompressor(level=1).compress(raw), zlib.compress(raw, 1)):
            assert pickle.dumps(again[sid], protocol=5) == pickle.dumps(decode_stored(earlier), protocol=5)


def _same_bytes(a: dict, b: dict) -> bool:
    """Equal as Redis receives them: the same sessions, fields in the same order, each value's type and text."""
    return list(a) == list(b) and all(
        list(a[sid]) == list(b[sid]) and [(type(v), str(v)) for v in a[sid].values()]
        == [(type(v), str(v)) for v in b[sid].values()] for sid in a)


def test_summaries_of_decided_sessions_equal_the_reference():
    from udfs.config import JobConfig
    from udfs.decide import Decider
    from udfs.rules import RuleEngine
    from udfs.scenarios import article_session, shallow_session
    from udfs.scoring import ReloadingScorer

    decider = Decider(JobConfig(), ReloadingScorer(), RuleEngine.default(), clock_ms=lambda: 0)
    store: dict = {}
    for k in range(60):  # sessions at every stage: decided a batch of three events at a time
        events = (article_session if k % 2 else shallow_session)(f"s{k}", 1_796_000_000_000 + 7 * k)
        for i in range(0, len(events), 3):
            store.update(decider.decide(events[i:i + 3], store.get).touched)
            for args in (("m", "r"), ("m", "r", "p")):
                assert _same_bytes(session_summaries(store, *args), reference_summaries(store, *args))
    assert session_summaries({}, "m", "r") == {}


_F64 = st.floats(width=64)  # NaN, +-inf, -0.0, subnormals, beyond float32's range


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(_F64, min_size=N_FEATURES, max_size=N_FEATURES),
                          st.lists(st.integers(0, 2**62), min_size=5, max_size=5), _F64), max_size=8),
       st.none() | st.text(max_size=5))
def test_summaries_equal_the_reference_for_any_vector_counts_and_score(sessions, rates_version):
    import warnings
    from array import array

    from udfs.decide import SessionEntry

    entries = {}
    for i, (vector, counts, score) in enumerate(sessions):
        entry = SessionEntry()
        entry.state._v = array("d", vector)
        entry.counts, entry.last_intent_score = counts, score
        entries[f"s{i}"] = entry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float64 -> float32 overflow: inf in both
        assert _same_bytes(session_summaries(entries, "m", "r", rates_version),
                           reference_summaries(entries, "m", "r", rates_version))


def test_a_state_read_back_sets_every_slot_from_its_place_in_the_pickled_tuple():
    import pytest

    from udfs.scenarios import article_session
    from udfs.session import SessionState

    state = SessionState()
    for event in article_session("s-slots", 1_796_000_000_000):
        state.apply(event)
    pickled = state.__getstate__()
    back = SessionState.__new__(SessionState)
    back.__setstate__(pickled)
    for name in SessionState.__slots__:
        want, got = getattr(state, name), getattr(back, name)
        assert got == want or (name == "_noise" and got.__getstate__() == want.__getstate__()), name
    # every slot distinct: a setter that puts one slot's value into another fails here
    marked = pickled[:1] + tuple(("slot", i) for i in range(1, len(pickled)))
    odd = SessionState.__new__(SessionState)
    try:
        odd.__setstate__(marked)
    except (TypeError, ValueError):  # _v / _click_ts are converted after the slots are set
        pass
    assert [getattr(odd, name) for name in SessionState.__slots__ if name not in ("_v", "_click_ts")] == [
        ("slot", i + 1) for i, name in enumerate(SessionState.__slots__) if name not in ("_v", "_click_ts")]
    with pytest.raises(ValueError, match="layout"):
        odd.__setstate__(pickled[:-1])
