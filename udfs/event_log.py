"""A session's lateness log held as one ``bytearray`` (issue 19: the Python copy and the cost of a state
read at 100,000 open sessions).

The log (``udfs.decide.SessionEntry``) keeps each event of the session's last minutes as its event-time
order key and its replay record. Held as a list of ``(key tuple, record bytes)`` pairs it was ~430 bytes of
Python objects per event (a pair, a 4-tuple, two ints, the event id's str, the bytes) and the largest part of
unpickling a session: at 100,000 open sessions almost every event reads its session back from its stored
bytes, and ``decode_stored`` / ``encode_stored`` were 25 % of the job's Python samples (py-spy, 2026-12-04,
bench/README.md). One buffer pickles and unpickles as one copy and holds ~60 bytes per event besides the
record.

**Entry layout** (big-endian): ``ts_ms`` int64, ``seq`` missing flag uint8 (0: present), ``seq`` int64,
event-id length uint16, record length uint32, the event id (UTF-8), the record bytes. The key an entry
stands for is ``(ts_ms, flag, seq, event_id)``, :func:`udfs.session.event_order_key`'s tuple, so order and
comparisons are exactly those of the tuples.
"""
from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Iterator

_HEAD = struct.Struct(">qBqHI")
_HEAD_SIZE = _HEAD.size


class EventLog:
    """Entries ``(key, record)`` in key order, appended at the end, dropped from the front.

    Attributes are private; the pickle is ``(bytes of the buffer, number of entries, offset of the last)``.

    Raises (any method taking a key):
        struct.error: a ``ts_ms`` or ``seq`` outside int64, or an event id over 65,535 UTF-8 bytes (the
            contract bounds all three: ``udfs.contract_models``).
    """

    __slots__ = ("_buf", "_n", "_last")

    def __init__(self, entries: Iterable[tuple[tuple, bytes]] = ()) -> None:
        self._buf = bytearray()
        self._n = 0
        self._last = 0
        for key, record in entries:
            self.append(key, record)

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventLog) and self._n == other._n and self._buf == other._buf

    def __repr__(self) -> str:
        return f"EventLog({self.entries()!r})"

    def __getstate__(self):
        return bytes(self._buf), self._n, self._last

    def __setstate__(self, st) -> None:
        buf, self._n, self._last = st
        self._buf = bytearray(buf)

    def append(self, key: tuple, record: bytes) -> None:
        """Add an entry at the end (its key >= every key in the log: the caller's order)."""
        ts_ms, flag, seq, event_id = key
        eid = event_id.encode()
        self._last = len(self._buf)
        self._buf += _HEAD.pack(ts_ms, flag, seq, len(eid), len(record))
        self._buf += eid
        self._buf += record
        self._n += 1

    def _key_at(self, offset: int) -> tuple[tuple, int, int]:
        """``(key, start of the record, end of the entry)`` of the entry at ``offset``."""
        ts_ms, flag, seq, eid_len, rec_len = _HEAD.unpack_from(self._buf, offset)
        start = offset + _HEAD_SIZE + eid_len
        return (ts_ms, flag, seq, self._buf[offset + _HEAD_SIZE:start].decode()), start, start + rec_len

    def first_key(self) -> tuple | None:
        """The smallest key, or None when empty."""
        return self._key_at(0)[0] if self._n else None

    def last_key(self) -> tuple | None:
        """The largest key, or None when empty."""
        return self._key_at(self._last)[0] if self._n else None

    def first_ts_ms(self) -> int | None:
        """``ts_ms`` of the first entry, or None when empty."""
        return _HEAD.unpack_from(self._buf, 0)[0] if self._n else None

    def __iter__(self) -> Iterator[tuple[tuple, bytes]]:
        offset = 0
        for _ in range(self._n):
            key, start, end = self._key_at(offset)
            yield key, bytes(self._buf[start:end])
            offset = end

    def entries(self) -> list[tuple[tuple, bytes]]:
        """Every ``(key, record)`` in order."""
        return list(self)

    def leading(self, horizon_ts_ms: int, keep_at_most: int) -> int:
        """How many entries from the front have ``ts_ms < horizon_ts_ms`` or leave more than
        ``keep_at_most`` behind them (the entries to fold into the lagging state)."""
        buf, total = self._buf, self._n
        offset = n = 0
        while n < total:
            ts_ms, _, _, eid_len, rec_len = _HEAD.unpack_from(buf, offset)
            if ts_ms >= horizon_ts_ms and total - n <= keep_at_most:
                break
            offset += _HEAD_SIZE + eid_len + rec_len
            n += 1
        return n

    def pop_front(self, n: int) -> list[bytes]:
        """Remove the first ``n`` entries (``n <= len(self)``) and return their records in order."""
        records = []
        offset = 0
        for _ in range(n):
            _, start, end = self._key_at(offset)
            records.append(bytes(self._buf[start:end]))
            offset = end
        del self._buf[:offset]
        self._n -= n
        self._last = self._last - offset if self._n else 0
        return records

    def insert(self, key: tuple, record: bytes) -> int:
        """Insert an entry after every entry with a key <= ``key``; returns its index."""
        entries = self.entries()
        at = bisect.bisect_right([k for k, _ in entries], key)
        entries.insert(at, (key, record))
        self.__init__(entries)
        return at
