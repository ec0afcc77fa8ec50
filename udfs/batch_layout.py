"""The micro-batch as the Java micro-batcher emits it and the job's Python operator receives it.

Pure Python (no PyFlink): the unit tests run it without a JVM.

**Layout** (made by ``io.intentflow.flink.SessionShardMicroBatcher``, operators/java; big-endian): a flags
byte (bit 0, :data:`LAST_OF_FLUSH`: the batch is the last of its flush for this subtask, :func:`last_of_flush`),
``n`` (uint32), ``n`` Kafka timestamps (int64 epoch ms, :data:`NO_TIMESTAMP` for a record without one), ``n``
value lengths (uint32) and the ``n`` raw Kafka values (bytes) in arrival order. All values of a batch belong
to one session shard (:func:`udfs.partitioning.shard_of`). The values cross from Java as bytes because making
a Java ``String`` of each (UTF-8 decode) and serializing the ``String[]`` to the Python operator char by char
(Flink's ``StringValue.writeString``) took half of the source thread's samples (JFR, 2026-12-04, 5,000
events/s; docs/microbatch.md).

Batches taken before the values crossed as bytes (a list of str: ``batch[0]`` the comma-joined timestamps,
prefixed with ``"L"`` when last of its flush, ``batch[1:]`` the values) may still be in a checkpoint's
pending list (``operators/personalization.py``) and are read too.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from udfs.contract import ContractError, parse_event
from udfs.dlq import dlq_record

#: Timestamp entry of a record without one (``SessionShardMicroBatcher.NO_TIMESTAMP``: Long.MIN_VALUE).
NO_TIMESTAMP = -(1 << 63)
#: Flags bit of the last batch of a flush (``SessionShardMicroBatcher.LAST_OF_FLUSH``).
LAST_OF_FLUSH = 1
_HEAD = struct.Struct(">BI")


def encode_batch(values: Sequence[bytes], timestamps: Sequence[int | None] | None = None,
                 last: bool = False) -> bytes:
    """A batch in the layout of ``SessionShardMicroBatcher`` (module docstring): for tests and tools.

    Args:
        values: raw Kafka values.
        timestamps: one per value, epoch ms or None (no timestamp); default none.
        last: set the last-of-flush flag.
    """
    n = len(values)
    stamps = [NO_TIMESTAMP if t is None else t for t in (timestamps or [None] * n)]
    return b"".join([_HEAD.pack(LAST_OF_FLUSH if last else 0, n), struct.pack(f">{n}q", *stamps),
                     struct.pack(f">{n}I", *(len(v) for v in values)), *values])


def batch_values(batch: bytes | Sequence[str]) -> tuple[list[bytes | str], list[int | None]]:
    """``(values, timestamps)`` of a batch: the raw values in arrival order and each one's Kafka timestamp
    (epoch ms, None when its record had none).

    Raises:
        ValueError: bytes that are not a batch (shorter than their header says), or an empty legacy batch:
            a bug of the producer of the batch.
    """
    if isinstance(batch, (bytes, bytearray)):
        if len(batch) < _HEAD.size:
            raise ValueError(f"a micro-batch has a {_HEAD.size}-byte header, got {len(batch)} bytes")
        _, n = _HEAD.unpack_from(batch, 0)
        off = _HEAD.size + 12 * n
        if len(batch) < off:
            raise ValueError(f"a micro-batch of {n} values needs {off} header bytes, got {len(batch)}")
        stamps = struct.unpack_from(f">{n}q", batch, _HEAD.size)
        lengths = struct.unpack_from(f">{n}I", batch, _HEAD.size + 8 * n)
        if len(batch) != off + sum(lengths):
            raise ValueError(f"a micro-batch of {n} values of {sum(lengths)} bytes has {len(batch) - off}")
        values: list[bytes | str] = []
        for length in lengths:
            values.append(batch[off:off + length])
            off += length
        return values, [None if t == NO_TIMESTAMP else t for t in stamps]
    if not batch:
        raise ValueError("a micro-batch has at least its timestamp entry")
    n = len(batch) - 1
    head = batch[0][1:] if batch[0].startswith("L") else batch[0]
    texts = head.split(",") if n else []
    if len(texts) != n:  # never from our batcher; keep every value, without timestamps
        texts = [""] * n
    return list(batch[1:]), [int(t) if t else None for t in texts]


def decode_batch(batch: bytes | Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parse and validate a micro-batch.

    Args:
        batch: the batch bytes (module docstring), or a batch of the earlier list-of-str layout.

    Returns:
        ``(events, dlq_records)``: the canonical event dicts (``udfs.contract.parse_event``) in arrival
        order, each with ``_kafka_ts_ms`` when its record had a positive timestamp; and a DLQ record
        (stage ``parse``, reason from :class:`udfs.contract.ContractError`, ``parse_error`` for
        anything else) for every value that is not a valid event. ``len(events) + len(dlq) == n``.

    Raises:
        ValueError: a batch that is not one (:func:`batch_values`), a bug of the producer of the batch.
    """
    values, stamps = batch_values(batch)
    events: list[dict[str, Any]] = []
    dlq: list[dict[str, Any]] = []
    for ts, value in zip(stamps, values):
        try:
            event = parse_event(value)
        except ContractError as exc:
            dlq.append(dlq_record(exc.reason, "parse", value, detail=exc.detail))
            continue
        except Exception as exc:  # noqa: BLE001 - nothing malformed may fail the job
            dlq.append(dlq_record("parse_error", "parse", value, detail=repr(exc)))
            continue
        if ts is not None and ts > 0:
            event["_kafka_ts_ms"] = ts
        events.append(event)
    return events, dlq


def last_of_flush(batch: bytes | Sequence[str]) -> bool:
    """True when ``batch`` is the last one of its batcher flush for this subtask (flags bit 0, or the
    ``"L"`` mark of the earlier layout): the moment to send the Redis writes of the whole flush in one
    pipeline."""
    if isinstance(batch, (bytes, bytearray)):
        return bool(batch) and bool(batch[0] & LAST_OF_FLUSH)
    return bool(batch) and batch[0].startswith("L")
