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
from pathlib import Path

from udfs.decide import session_summaries
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
    for sid, entry in entries.items():  # every field: the pickles are equal
        assert pickle.dumps(again[sid], protocol=5) == pickle.dumps(entry, protocol=5)
