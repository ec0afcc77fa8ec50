"""Sharing the strings of restored sessions (issue 19: the Python copy of a session).

A session restored from keyed state is unpickled, and pickle makes a new ``str`` object for every string
of every session: the same element ids, rule ids, device and country names are held once per session
(a 15-character ASCII ``str`` is 64 bytes in CPython 3.11, ``sys.getsizeof``). At 1,000 open sessions
and 2,000 events/s a session is decoded again after every state write (every 10 s), so this is the form
the job holds. ``sys.intern`` maps equal strings to one object; the restored session then refers to it
and its own copy is freed by reference counting. Values are unchanged (``==`` and ``hash`` of a string
do not depend on its identity), so decisions are too.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

_intern = sys.intern


def interned(value: Any) -> Any:
    """``value`` itself, or the interned equal string when it is exactly a ``str``."""
    return _intern(value) if value.__class__ is str else value


def interned_keys(mapping: Mapping) -> dict:
    """A new dict with ``mapping``'s items in the same order, its ``str`` keys interned (others kept)."""
    return {(_intern(k) if k.__class__ is str else k): v for k, v in mapping.items()}


def interned_items(values: tuple) -> tuple:
    """A tuple equal to ``values``, its ``str`` members interned."""
    return tuple(_intern(v) if v.__class__ is str else v for v in values)
