"""Session shards, and which parallel subtask a key lands on, computed the way Flink does it.

The decision operator is called once per micro-batch of one *session shard* (one ONNX call and one
Redis pipeline per batch), so its stream is keyed by an int shard key and the shard's sessions live in
map state under that key. There is one shard per Flink key group: ``max_parallelism`` shards; the key of shard ``g`` is the
smallest int whose stream key ``Row.of(int)`` is in key group ``g``, computed by Flink's own assignment
(``SessionShardMicroBatcher.shardKeysCsv`` in operators/java), and ``shard_of(session_id, keys)`` picks
the shard. The shard of a session
therefore never depends on the job's parallelism, and a rescale (which moves whole key groups between
subtasks) moves every session's state with its shard; Flink itself refuses to restore a savepoint with
another max parallelism. The Java micro-batcher (operators/java) routes with the same CRC-32 rule.

Flink assigns a key to a subtask through its key
group: ``key_group = murmur(key.hashCode()) % max_parallelism`` and
``subtask = key_group * parallelism // max_parallelism`` (Flink ``KeyGroupRangeAssignment`` and
``MathUtils.murmurHash``). For an ``Integer`` key, ``hashCode()`` is the value itself.
"""
from __future__ import annotations

import zlib

#: Flink's default max parallelism for jobs of parallelism <= 128 (``KeyGroupRangeAssignment``).
DEFAULT_MAX_PARALLELISM = 128

_MASK = 0xFFFFFFFF


def _to_int32(x: int) -> int:
    x &= _MASK
    return x - (1 << 32) if x & 0x80000000 else x


def _rotl(x: int, r: int) -> int:
    x &= _MASK
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur_hash(code: int) -> int:
    """Flink's ``MathUtils.murmurHash(int)``: a non-negative int from a 32-bit hash code."""
    h = (code * 0xCC9E2D51) & _MASK
    h = _rotl(h, 15)
    h = (h * 0x1B873593) & _MASK
    h = _rotl(h, 13)
    h = (h * 5 + 0xE6546B64) & _MASK
    h ^= 4
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    s = _to_int32(h)
    if s >= 0:
        return s
    return -s if s != -(1 << 31) else 0


def subtask_of_int_key(key: int, parallelism: int, max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> int:
    """Index of the subtask that owns an ``Integer`` key."""
    key_group = murmur_hash(_to_int32(key)) % max_parallelism
    return key_group * parallelism // max_parallelism


def shard_keys(parallelism: int, max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> list[int]:
    """One int key per subtask: ``keys[i]`` is the smallest non-negative int owned by subtask ``i``.

    Raises:
        ValueError: parallelism outside 1..max_parallelism.
    """
    if not 1 <= parallelism <= max_parallelism:
        raise ValueError(f"parallelism must be within 1..{max_parallelism}, got {parallelism}")
    keys: list[int | None] = [None] * parallelism
    candidate = 0
    while any(k is None for k in keys):
        idx = subtask_of_int_key(candidate, parallelism, max_parallelism)
        if keys[idx] is None:
            keys[idx] = candidate
        candidate += 1
    return [int(k) for k in keys]  # type: ignore[arg-type]


def shard_of(session_id: str, keys: list[int]) -> int:
    """The shard key of a session: stable across processes and runs (CRC-32 of the UTF-8 id)."""
    return keys[zlib.crc32(session_id.encode("utf-8", "surrogatepass")) % len(keys)]
