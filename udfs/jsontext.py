"""JSON text as clients send it: lenient parsing and per-string cleaning and truncation.

Invalid UTF-8 bytes and lone surrogates are replaced by U+FFFD *per string field* (flag
``text_cleaned`` in ``udfs.normalize``), so one bad field never loses the event; strings longer than
``udfs.limits.STRING_MAX_CHARS`` are cut. Pure Python on ``orjson`` and ``json``; imported by the
contract (``udfs.contract.parse_event``'s slow path), the normalizer, the collector and the trackers.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

from udfs.errors import ContractError
from udfs.limits import STRING_MAX_CHARS

#: Longest string kept in any field, characters (``udfs.limits.STRING_MAX_CHARS``, the contract's
#: ``max_length``; the SDK cuts at the same length, web/sdk ``MAX_STRING_CHARS``).
MAX_STRING_CHARS = STRING_MAX_CHARS


def clean_text(value: str) -> tuple[str, bool]:
    """Replace lone surrogates (incl. invalid UTF-8 bytes escaped by ``surrogateescape``) by U+FFFD.

    Returns ``(cleaned, changed)``. ASCII and valid strings are returned unchanged at near-zero cost.
    """
    if value.isascii():
        return value, False
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        # surrogatepass keeps valid pairs; decoding with "replace" turns lone halves into U+FFFD
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace"), True


def clean_strings(obj: Any) -> tuple[Any, bool]:
    """Apply :func:`clean_text` to every string (keys too) inside ``obj``; return ``(obj, changed)``."""
    if isinstance(obj, str):
        return clean_text(obj)
    if isinstance(obj, dict):
        changed = False
        out = {}
        for k, v in obj.items():
            k2, c1 = clean_text(k) if isinstance(k, str) else (k, False)
            v2, c2 = clean_strings(v)
            out[k2] = v2
            changed = changed or c1 or c2
        return out, changed
    if isinstance(obj, list):
        changed = False
        out_list = []
        for v in obj:
            v2, c = clean_strings(v)
            out_list.append(v2)
            changed = changed or c
        return out_list, changed
    return obj, False


def truncate_strings(obj: Any, max_chars: int = MAX_STRING_CHARS) -> tuple[Any, bool]:
    """Cut every string value inside ``obj`` to ``max_chars``; return ``(obj, changed)``."""
    if isinstance(obj, str):
        return (obj[:max_chars], True) if len(obj) > max_chars else (obj, False)
    if isinstance(obj, dict):
        changed = False
        for k, v in obj.items():
            v2, c = truncate_strings(v, max_chars)
            if c:
                obj[k] = v2
                changed = True
        return obj, changed
    if isinstance(obj, list):
        changed = False
        for i, v in enumerate(obj):
            v2, c = truncate_strings(v, max_chars)
            if c:
                obj[i] = v2
                changed = True
        return obj, changed
    return obj, False


def loads_lenient(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON that ``orjson`` refused: invalid UTF-8 bytes, lone ``\\ud800`` escapes, NaN.

    Bytes are decoded with ``surrogateescape`` (each invalid byte becomes a lone surrogate that
    :func:`clean_strings` later replaces by U+FFFD, only inside the string where it was). Strings are
    *not* cleaned here. Raises ``ContractError("invalid_json")`` when it is not JSON at all.
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        text = bytes(raw).decode("utf-8", "surrogateescape")
    else:
        text = raw
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ContractError("invalid_json", str(exc)[:200]) from None


def loads_fast(raw: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads``, falling back to :func:`loads_lenient` on invalid UTF-8/surrogates/NaN."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return loads_lenient(raw)
