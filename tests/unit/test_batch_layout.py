"""udfs.batch_layout: the bytes of a micro-batch as the Java micro-batcher emits them (issue 10)."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.batch_layout import (NO_TIMESTAMP, batch_values, decode_batch, encode_batch, last_of_flush)
from udfs.scenarios import article_session

#: The same batch as SessionShardMicroBatcherTest.layoutIsTheOnePythonReads builds on the Java side: two
#: values ``{"a":1}`` (Kafka timestamp 5) and ``xy`` (no timestamp), last of its flush. Both tests pin it.
GOLDEN_HEX = "01000000020000000000000005800000000000000000000007000000027b2261223a317d7879"


def test_layout_is_the_one_the_java_batcher_emits():
    assert encode_batch([b'{"a":1}', b"xy"], [5, None], last=True).hex() == GOLDEN_HEX
    values, stamps = batch_values(bytes.fromhex(GOLDEN_HEX))
    assert values == [b'{"a":1}', b"xy"] and stamps == [5, None]
    assert last_of_flush(bytes.fromhex(GOLDEN_HEX))


def test_decode_keeps_order_and_timestamps_and_dead_letters_bad_bytes():
    events = article_session("s-bytes", 1_764_000_000_000)[:3]
    values = [orjson.dumps(events[0]), b"{not json", orjson.dumps(events[1]), b"",
              orjson.dumps({"type": "click"}), orjson.dumps(events[2])]
    decoded, dlq = decode_batch(encode_batch(values, [11, 12, 13, None, 0, 15]))
    assert [e["event_id"] for e in decoded] == [e["event_id"] for e in events]
    assert [e.get("_kafka_ts_ms") for e in decoded] == [11, 13, 15]
    assert [d["reason"] for d in dlq] == ["invalid_json", "invalid_json", "missing_field"]
    assert all(d["stage"] == "parse" for d in dlq)


def test_a_value_that_is_not_utf8_is_cleaned_not_lost():
    event = article_session("s-utf8", 1_764_000_000_000)[0]
    raw = orjson.dumps({**event, "props": {"title": "caf\u00e9"}}).replace(b"caf\xc3\xa9", b"caf\xe9")
    assert b"caf\xe9" in raw  # Latin-1, not UTF-8
    decoded, dlq = decode_batch(encode_batch([raw], [7]))
    assert not dlq and decoded[0]["event_id"] == event["event_id"]
    assert "text_cleaned" in decoded[0]["flags"]


def test_flags_and_an_empty_batch():
    assert not last_of_flush(encode_batch([b"x"])) and last_of_flush(encode_batch([b"x"], last=True))
    assert not last_of_flush(b"")
    assert decode_batch(encode_batch([])) == ([], [])


@pytest.mark.parametrize("bad, match", [
    (b"\x01\x00", "header"),
    (bytes.fromhex(GOLDEN_HEX)[:20], "header bytes"),
    (bytes.fromhex(GOLDEN_HEX)[:-1], "has 8"),
    (bytes.fromhex(GOLDEN_HEX) + b"z", "has 10"),
])
def test_bytes_that_are_not_a_batch_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        batch_values(bad)


@given(st.lists(st.tuples(st.binary(max_size=64), st.one_of(st.none(), st.integers(NO_TIMESTAMP + 1, 2**63 - 1))),
                max_size=20), st.booleans())
def test_any_values_and_timestamps_come_back(items, last):
    values = [v for v, _ in items]
    stamps = [t for _, t in items]
    batch = encode_batch(values, stamps, last=last)
    assert batch_values(batch) == (values, stamps)
    assert last_of_flush(batch) == last
