"""A session's dedup memory held as one ``bytearray`` of ids and one ``array`` of times (issue 19: the Python
copy).

The job drops an event whose ``event_id`` its session has seen recently (``udfs.decide.SessionEntry.remember``).
Held as a ``{event_id: ts_ms}`` dict, the memory was ~150 bytes of Python objects per id (a 36-character str
of 85 bytes, an int of 32, the dict's slot): 2,550 of the 11,536 bytes of a session's Python copy
(``bench/session_size.py --sessions 10000``, 2026-12-04). Here the ids are one buffer and their event times
one ``array('q')``, ~45 bytes per contract id (its 36 UTF-8 bytes, a separator, 8 bytes of time).

**Layout.** ``ids``: ``0xFF``, then each id's UTF-8 bytes (``surrogatepass``: every str has one encoding)
followed by ``0xFF``, in insertion order. UTF-8 never contains the byte ``0xFF`` (RFC 3629 §1: the octets
C0, C1 and F5-FF never appear), so ``0xFF <id> 0xFF`` occurs in the buffer exactly where that id is
remembered: a membership test is one ``bytearray.find``, exact (no hash, no false duplicates).
``ts_ms``: the event time of each id, same order, int64.

Why not a 64-bit hash of each id (16 bytes per id with its time, ~380 instead of ~900 bytes of Python
for the benchmark's 17 ids): the hashes are random bytes that zstd cannot compress, while the ids' text
compresses against the same ids in the lateness log; measured with bench/session_size.py (10,000
sessions, 2026-12-05) the keyed-state value grew 1,595 -> 1,734 B mean, 3,602 -> 4,124 B p99 (over the
4,096 B target). Text ids keep the value as it was.

The semantics are those of the dict it replaces: an id seen is a duplicate (its time is not renewed);
past ``max_ids`` the ids older than ``ts_ms - ttl_ms`` (``ts_ms`` of the event being remembered) are
forgotten, then the oldest inserted until ``max_ids`` remain (tests/unit/test_dedup.py checks every
decision against the dict by hypothesis).
"""
from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable

_SEP = b"\xff"  # never a byte of UTF-8 (RFC 3629)
_SEP_INT = 0xFF
_BIG_ENDIAN = sys.byteorder == "big"


def _encoded(event_id: str) -> bytes:
    return event_id.encode("utf-8", "surrogatepass")


class SeenEventIds:
    """The event ids a session remembered for dedup, in insertion order, with their event times (ms).

    Attributes are private; the pickle is ``(ids buffer, event times as little-endian int64 bytes)``.
    ``len`` is the number of ids remembered; ``event_id in seen`` tests one.

    Raises:
        OverflowError: (:meth:`remember`) a ``ts_ms`` outside int64 (the contract bounds it:
            ``udfs.contract_models``).
    """

    __slots__ = ("_ids", "_ts")

    def __init__(self, items: Iterable[tuple[str, int]] = ()) -> None:
        """``items``: ``(event_id, ts_ms)`` in insertion order (a restored ``{event_id: ts_ms}`` dict's
        ``items()``), taken as they are, without the bound."""
        self._ids = bytearray(_SEP)
        self._ts = array("q")
        for event_id, ts_ms in items:
            self._ids += _encoded(event_id) + _SEP
            self._ts.append(ts_ms)

    def __len__(self) -> int:
        return len(self._ts)

    def __contains__(self, event_id: str) -> bool:
        return self._ids.find(_SEP + _encoded(event_id) + _SEP) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeenEventIds) and self._ids == other._ids and self._ts == other._ts

    def __repr__(self) -> str:
        return f"SeenEventIds({list(zip(self.event_ids(), self._ts))!r})"

    def __getstate__(self):
        ts = self._ts
        if _BIG_ENDIAN:
            ts = array("q", ts)
            ts.byteswap()
        return bytes(self._ids), ts.tobytes()

    def __setstate__(self, st) -> None:
        ids, ts = st
        self._ids = bytearray(ids)
        self._ts = array("q")
        self._ts.frombytes(ts)
        if _BIG_ENDIAN:
            self._ts.byteswap()

    def event_ids(self) -> list[str]:
        """The remembered ids, in insertion order."""
        return [raw.decode("utf-8", "surrogatepass") for raw in self._ids[1:-1].split(_SEP)] if self._ts else []

    def ts_ms(self) -> list[int]:
        """The remembered ids' event times, in insertion order."""
        return self._ts.tolist()

    def remember(self, event_id: str, ts_ms: int, ttl_ms: int, max_ids: int) -> bool:
        """Record ``event_id`` seen at ``ts_ms``; False when it was remembered already (a duplicate).

        Past ``max_ids`` ids, those older than ``ts_ms - ttl_ms`` are forgotten, then the oldest
        inserted until ``max_ids`` remain.
        """
        raw = _encoded(event_id)
        ids, times = self._ids, self._ts
        if ids.find(_SEP + raw + _SEP) >= 0:
            return False
        times.append(ts_ms)
        ids += raw
        ids.append(_SEP_INT)
        if len(times) > max_ids:
            horizon = ts_ms - ttl_ms
            if min(times) < horizon:  # forget the ids past the TTL
                kept = [(raw, t) for raw, t in zip(ids[1:-1].split(_SEP), times) if t >= horizon]
                self._ids = ids = bytearray(_SEP + b"".join(raw + _SEP for raw, _ in kept))
                self._ts = times = array("q", [t for _, t in kept])
            excess = len(times) - max(max_ids, 0)
            if excess > 0:  # still too many: forget the oldest inserted
                at = 0
                for _ in range(excess):
                    at = ids.index(_SEP_INT, at + 1)
                del ids[:at]
                del times[:excess]
        return True
