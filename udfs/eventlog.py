"""Compact bytes for the events a session keeps in its reordering log (``udfs.decide.SessionEntry.log``).

A session keeps every event of its last ``udfs.limits.ALLOWED_LATENESS_MS`` (5 minutes) so that an event
arriving out of order within that bound can be applied in its event-time place. A parsed event pickles to
~800 bytes, most of it the contract's key names and nested-dict structure, which every event repeats;
17 events on average made the log 3/4 of a session's Python copy (bench/results/session_size.json,
issue 19). Each event is therefore stored as raw DEFLATE (RFC 1951) of its pickle, primed with a preset
dictionary (:data:`ZDICT_V1`, zlib's ``zdict``): a pickle of a typical event in the contract's key
order, so the keys and the common values are back-references from the first byte on. Measured on the
benchmark's sessions (``python -m bench.session_size``): ~800 -> ~110 bytes per event, ~15 us to encode
and ~2 us to decode on this machine (the pickle itself takes ~24 us).

Format of one encoded event: one version byte, then the DEFLATE stream. Version 1 = :data:`ZDICT_V1`.
A value whose first byte is ``0x80`` (a pickle's PROTO opcode) is a plain pickle written before this
encoding existed: :func:`decode_event` reads both, so state from a checkpoint of an older version
restores. :data:`ZDICT_V1` must never change (the logs of checkpointed sessions are decoded with it);
a different dictionary gets a new version byte, and the test pins the dictionary's digest.
"""
from __future__ import annotations

import pickle
import zlib
from collections.abc import Mapping
from typing import Any

#: A typical parsed event (udfs.contract canonical form, docs/contracts.md): the dictionary's source.
#: Values are generic (not any data set's); what matters is the key order and the structure.
_TYPICAL_EVENT: dict[str, Any] = {
    "event_id": "00000000-0000-4000-8000-000000000000", "schema_version": 1, "session_id": "s",
    "anonymous_id": "a", "user_id": None, "seq": 1, "client_ts_ms": 1_700_000_000_000,
    "sent_at_ms": 1_700_000_000_000, "received_at_ms": 1_700_000_000_000, "ts_ms": 1_700_000_000_000,
    "page": {"url": "https://", "path": "/", "item_id": None, "type": "product", "content_ids": [],
             "referrer": None},
    "context": {"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                              "Chrome/126.0.0.0 Safari/537.36",
                "device_class": "desktop", "is_bot": False, "viewport_w_px": 1440, "viewport_h_px": 900,
                "screen_w_px": 1920, "screen_h_px": 1080,
                "network": {"effective_type": "4g", "rtt_ms": 50, "downlink_mbps": 10.0, "save_data": False},
                "timezone": "Europe/Berlin", "locale": "en-US", "geo": {"country": None, "region": None},
                "consent": {"analytics": True, "personalization": True}, "ip_prefix": None},
    "flags": [], "source": None, "source_event_id": None, "type": "click",
    "props": {"element_id": "", "element_role": "", "x_px": 0.0, "y_px": 0.0, "scroll_depth_pct": 0.0,
              "scroll_depth_pct_raw": 0.0, "offset_px": 0.0, "document_height_px": 0.0, "hover_ms": 0,
              "duration_ms": 0, "title": "", "sample_count": 0, "path_length_px": 0.0, "mean_speed_px_s": 0.0,
              "straightness": 0.0, "pause_count": 0, "jerk_px_s3": 0.0},
}

#: Preset dictionary of version 1 (1.2 KB): the pickle of :data:`_TYPICAL_EVENT`, protocol 5.
ZDICT_V1: bytes = pickle.dumps(_TYPICAL_EVENT, protocol=5)

_V1 = 1
#: DEFLATE window of the encoder, log2 bytes: 4 KB holds the dictionary and a typical event (larger
#: events still encode; their back-references reach 4 KB). Level 1: the fastest; level 6 saved 4 %.
_WBITS = 12
_LEVEL = 1
_MEM_LEVEL = 9


def encode_event(event: Mapping[str, Any]) -> bytes:
    """``event`` (a parsed event dict, any picklable values) as the log's bytes (see the module)."""
    raw = pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)
    comp = zlib.compressobj(_LEVEL, zlib.DEFLATED, -_WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, ZDICT_V1)
    return b"\x01" + comp.compress(raw) + comp.flush()


def decode_event(data: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_event`; a plain pickle (first byte ``0x80``) is read as it is.

    Raises:
        ValueError: an unknown version byte.
        zlib.error, pickle.UnpicklingError: corrupt bytes.
    """
    head = data[0]
    if head == 0x80:
        return pickle.loads(data)
    if head != _V1:
        raise ValueError(f"unknown event log encoding version {head}")
    return pickle.loads(zlib.decompressobj(-15, ZDICT_V1).decompress(data[1:]))
