"""udfs.eventlog: the reordering log's event bytes come back exactly, old plain pickles still read, and
the preset dictionary never changes under checkpointed logs."""
from __future__ import annotations

import hashlib
import pickle

import pytest

from udfs.eventlog import ZDICT_V1, decode_event, encode_event
from udfs.scenarios import article_session, shallow_session

T0 = 1_796_000_000_000


def _events():
    return article_session("s-log", T0) + shallow_session("s-log-2", T0 + 5)


def test_every_event_comes_back_exactly_and_smaller_than_its_pickle():
    events = _events()
    encoded = [encode_event(e) for e in events]
    assert [decode_event(b) for b in encoded] == events
    # exact types too: a float stays a float, a tuple a tuple (pickle, not JSON)
    odd = {"a": (1, 2.0), "b": [1.5, None, True], "ts_ms": T0}
    back = decode_event(encode_event(odd))
    assert back == odd and type(back["a"]) is tuple and type(back["a"][1]) is float
    plain = sum(len(pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL)) for e in events)
    assert sum(map(len, encoded)) * 3 < plain  # the dictionary folds the keys (measured ~7x)


def test_a_plain_pickle_of_an_older_version_still_decodes_and_an_unknown_version_is_refused():
    event = _events()[0]
    assert decode_event(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)) == event
    with pytest.raises(ValueError, match="unknown event log encoding version 2"):
        decode_event(b"\x02" + encode_event(event)[1:])


def test_the_version_1_dictionary_is_pinned():
    # Checkpointed logs are decoded with this dictionary: changing it must get a new version byte.
    assert hashlib.sha256(ZDICT_V1).hexdigest() == "b6a213dfacec904161448f828454c47286052a8e53c7801965304a6a4a085f20"
