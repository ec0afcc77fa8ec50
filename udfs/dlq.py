"""Dead-letter records for topic ``signals.dlq`` (docs/contracts.md §1).

A record is ``{"reason": str, "stage": "collector"|"parse"|"job", "detail": str, "payload": str,
"received_at_ms": int, "event_id": str|None}``. ``payload`` is the original input as text, truncated to
``MAX_PAYLOAD_BYTES`` (8 KiB, docs/contracts.md §1) of UTF-8 at a character boundary; ``detail`` to
``MAX_DETAIL_CHARS``. The collector, the Flink job's parse step and later job stages all build records
here so the DLQ has one shape.
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from udfs.limits import DLQ_PAYLOAD_MAX_BYTES, ID_MAX_CHARS

#: Payload bound in bytes of UTF-8 (docs/contracts.md §1: "original, truncated to 8 KiB").
MAX_PAYLOAD_BYTES = DLQ_PAYLOAD_MAX_BYTES
#: Bound of the human-readable ``detail`` (our choice: one log line).
MAX_DETAIL_CHARS = 500
STAGES = ("collector", "parse", "job")


def payload_text(payload: Any) -> str:
    """The original payload as text: bytes decoded (invalid UTF-8 -> U+FFFD), objects as JSON."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload).decode("utf-8", "replace")
    if isinstance(payload, str):
        # lone surrogates cannot be encoded to UTF-8 for Kafka: replace them
        return payload.encode("utf-8", "replace").decode("utf-8")
    try:
        return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(payload)


def truncate_utf8(text: str, max_bytes: int = MAX_PAYLOAD_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` bytes of UTF-8 without splitting a character."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text.encode("utf-8", "replace").decode("utf-8")
    return data[:max_bytes].decode("utf-8", "ignore")


def dlq_record(
    reason: str,
    stage: str,
    payload: Any,
    *,
    detail: str = "",
    received_at_ms: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Build one DLQ record.

    Args:
        reason: a reason code (``udfs.contract.REASONS`` or a job stage's own code).
        stage: ``collector``, ``parse`` or ``job``.
        payload: the original input (bytes, str or a JSON-able object).
        detail: free text (truncated to ``MAX_DETAIL_CHARS``).
        received_at_ms: collector clock of the input, epoch ms; default now.
        event_id: the event's id when known (kept as valid UTF-8 of at most ``ID_MAX_CHARS`` bytes).

    Raises:
        ValueError: unknown ``stage`` or empty ``reason``.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if not reason:
        raise ValueError("reason must be a non-empty code")
    return {
        "reason": reason,
        "stage": stage,
        "detail": truncate_utf8(str(detail), MAX_DETAIL_CHARS * 4)[:MAX_DETAIL_CHARS],
        "payload": truncate_utf8(payload_text(payload)),
        "received_at_ms": int(time.time() * 1000) if received_at_ms is None else int(received_at_ms),
        # as the client sent it: invalid UTF-8 / lone surrogates replaced, cut like an id (udfs.limits)
        "event_id": truncate_utf8(event_id, ID_MAX_CHARS) if isinstance(event_id, str) else None,
    }


def dumps_dlq(record: dict[str, Any]) -> bytes:
    """Serialize a DLQ record to UTF-8 JSON bytes (the Kafka message value)."""
    return orjson.dumps(record)
