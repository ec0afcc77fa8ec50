"""udfs.event_log: a session's lateness log as one buffer behaves as the sorted list of pairs it replaces."""
from __future__ import annotations

import bisect
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udfs.event_log import EventLog

KEYS = st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(0, 1), st.integers(-(2**63), 2**63 - 1),
                 st.text(max_size=40))
OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), KEYS, st.binary(max_size=40)),
    st.tuples(st.just("pop"), st.integers(0, 5), st.just(b"")),
    st.tuples(st.just("lead"), st.integers(-(2**63), 2**63 - 1), st.integers(0, 6)),
), max_size=40)


@given(OPS)
def test_it_behaves_as_the_sorted_list_of_pairs(ops):
    log, model = EventLog(), []
    for op, a, b in ops:
        if op == "add":
            if not model or a >= model[-1][0]:
                log.append(a, b)
                model.append((a, b))
            else:
                at = log.insert(a, b)
                assert at == bisect.bisect_right([k for k, _ in model], a)
                model.insert(at, (a, b))
        elif op == "pop":
            n = min(a, len(model))
            assert log.pop_front(n) == [r for _, r in model[:n]]
            del model[:n]
        else:
            n = 0
            while n < len(model) and (model[n][0][0] < a or len(model) - n > b):
                n += 1
            assert log.leading(a, b) == n
        assert log.entries() == model and len(log) == len(model)
        assert log.first_key() == (model[0][0] if model else None)
        assert log.last_key() == (model[-1][0] if model else None)
        assert log.first_ts_ms() == (model[0][0][0] if model else None)
    back = pickle.loads(pickle.dumps(log, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == log and back.entries() == model and back.last_key() == log.last_key()


def test_it_holds_far_fewer_python_bytes_than_the_pairs():
    import sys

    pairs = [((1_764_000_000_000 + i, 0, 1000 + i, f"00000000-0000-4000-8000-{i:012d}"), bytes([i]) * 150)
             for i in range(20)]
    log = EventLog(pairs)

    def deep(obj):
        if isinstance(obj, tuple):
            return sys.getsizeof(obj) + sum(deep(x) for x in obj)
        return sys.getsizeof(obj)

    as_pairs = sys.getsizeof(pairs) + sum(deep(p) for p in pairs)
    assert sys.getsizeof(log._buf) + sys.getsizeof(log) < 0.6 * as_pairs
    assert log != EventLog(pairs[:-1]) and log == EventLog(pairs) and log.entries() == pairs


def test_out_of_range_keys_raise():
    import struct

    with pytest.raises(struct.error):
        EventLog().append((2**63, 0, 0, "x"), b"")
