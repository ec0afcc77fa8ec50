"""Claim breakers: for every row of docs/claims.md, one deliberate break of the product code that makes
the claim false, and a runner that applies each break to a copy of the tree and runs the row's test.

A claim test that still passes (or skips) on its broken build is hollow: it could not fail if the claim
broke. ``python -m tests.claim_breakers --help`` runs them; :mod:`tests.claim_breakers.breakers` is the
manifest; ``tests/unit/test_claim_breakers.py`` keeps it in step with docs/claims.md and the code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLAIMS_TABLE = ROOT / "docs" / "claims.md"
RESULTS_JSON = ROOT / "docs" / "claims_breakers.json"

#: A row of the claim -> test tables: ``| claim | `tests/...py::test_name` |``.
_ROW = re.compile(r"^\| (?P<claim>.+?) \| `(?P<test>tests/[\w/]+\.py::\w+)` \|$")


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (must occur exactly once in ``file``, a path relative to the repository) by ``new``."""

    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Breaker:
    """One deliberate break for one row of docs/claims.md.

    Attributes:
        test: the row's test node id (``tests/...py::test_name``).
        claim: a prefix of the row's claim text that tells it from the other rows of the same test.
        edits: the changes to product code (never to the test) that make the claim false.
        why: one line: why the claim is false on this build.
    """

    test: str
    claim: str
    edits: tuple[Edit, ...]
    why: str

    @property
    def kind(self) -> str:
        """``unit``, ``integration`` or ``browser`` (the test's folder)."""
        return self.test.split("/")[1]

    @property
    def files(self) -> list[str]:
        return sorted({e.file for e in self.edits})


def claim_rows(text: str | None = None) -> list[tuple[str, str]]:
    """``(claim, test node id)`` of every row of docs/claims.md, in table order."""
    text = CLAIMS_TABLE.read_text(encoding="utf-8") if text is None else text
    return [(m["claim"], m["test"]) for m in map(_ROW.match, text.splitlines()) if m]


def row_of(breaker: Breaker, rows: list[tuple[str, str]]) -> list[int]:
    """Indices of the rows ``breaker`` stands for (exactly one when the manifest is in step)."""
    return [i for i, (claim, test) in enumerate(rows) if test == breaker.test and claim.startswith(breaker.claim)]
