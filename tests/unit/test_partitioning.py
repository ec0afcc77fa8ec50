"""Shard keys land on distinct subtasks the way Flink assigns key groups."""
from __future__ import annotations

import pytest

from udfs.partitioning import murmur_hash, shard_keys, shard_of, subtask_of_int_key


def test_murmur_matches_flink_reference_values():
    # Values printed by Flink's org.apache.flink.util.MathUtils.murmurHash(int) (flink-core 2.2.1,
    # a 5-line Java program with flink-dist on the classpath): inputs 0, 1, 42, -1, Integer.MAX_VALUE.
    assert [murmur_hash(x) for x in (0, 1, 42, -1, 2**31 - 1)] == EXPECTED_MURMUR


@pytest.mark.parametrize("parallelism", [1, 2, 3, 4, 8])
def test_one_shard_key_per_subtask(parallelism):
    keys = shard_keys(parallelism)
    assert sorted(subtask_of_int_key(k, parallelism) for k in keys) == list(range(parallelism))


def test_sessions_spread_over_shards_stably():
    keys = shard_keys(4)
    assigned = [shard_of(f"session-{i}", keys) for i in range(4000)]
    counts = {k: assigned.count(k) for k in keys}
    assert all(800 < c < 1200 for c in counts.values()), counts
    assert shard_of("abc", keys) == shard_of("abc", list(keys))


def test_bad_parallelism_is_rejected():
    with pytest.raises(ValueError, match="parallelism must be within 1..128"):
        shard_keys(0)


EXPECTED_MURMUR = [593689054, 68075478, 1134849565, 1982413648, 1653689534]
