"""Threshold-variant assignment of adaptive rules: who sees which threshold (no dependencies).

Shared by the rule engine (udfs/rules.py, which re-exports both names) and the experiment counting
(udfs/experiments.py), so neither imports the other.
"""
from __future__ import annotations

import zlib

__all__ = ["VARIANTS", "variant_for"]

#: Variant names of an adaptive threshold, in the index order the compiled code uses.
VARIANTS: tuple[str, str, str] = ("control", "lower", "higher")


def variant_for(rule_id: str, session_id: str | None, explore_pct: float) -> int:
    """Index into :data:`VARIANTS` of the threshold variant a session sees for an adaptive rule.

    Deterministic (CRC-32 of ``"<rule id>|<session id>"``), so the job, a replay and whoever counts
    exposures and conversions offline assign the same variant from the id alone. The engine passes the
    event's ``anonymous_id`` (the visitor: a returning visitor keeps its variant), else its ``session_id``.
    Bucket = crc32 % 10000 / 100 in [0, 100); < explore_pct/2 -> 1 (lower), < explore_pct -> 2 (higher),
    else 0 (control). A missing session id is control.
    """
    if not explore_pct or session_id is None:
        return 0
    bucket_pct = (zlib.crc32(f"{rule_id}|{session_id}".encode()) % 10000) / 100.0
    if bucket_pct < explore_pct / 2.0:
        return 1
    if bucket_pct < explore_pct:
        return 2
    return 0
