"""The claim breakers (tests/claim_breakers) stay in step with docs/claims.md and the code they break."""
from __future__ import annotations

import json

from tests.claim_breakers import CLAIMS_TABLE, RESULTS_JSON, ROOT, claim_rows, row_of
from tests.claim_breakers.breakers import BREAKERS
from tests.claim_breakers.run import render_section, section_of


def test_every_claims_row_has_exactly_one_breaker_and_every_breaker_one_row():
    rows = claim_rows()
    assert len(rows) >= 80, len(rows)
    owners: dict[int, list[str]] = {i: [] for i in range(len(rows))}
    for breaker in BREAKERS:
        matched = row_of(breaker, rows)
        assert len(matched) == 1, (breaker.test, breaker.claim, matched)
        owners[matched[0]].append(breaker.claim)
    missing = [rows[i] for i, claims in owners.items() if not claims]
    doubled = [rows[i] for i, claims in owners.items() if len(claims) > 1]
    assert not missing, f"docs/claims.md rows without a breaker (tests/claim_breakers/breakers.py): {missing}"
    assert not doubled, f"rows with more than one breaker: {doubled}"


def test_every_breaker_edits_product_code_at_a_place_that_exists_once():
    for breaker in BREAKERS:
        assert breaker.why and breaker.edits, breaker.test
        for edit in breaker.edits:
            assert not edit.file.startswith("tests/"), f"{breaker.test}: a breaker edits product code, not tests"
            text = (ROOT / edit.file).read_text(encoding="utf-8")
            assert edit.new != edit.old, (breaker.test, edit.file)
            assert text.count(edit.old) == 1, (
                f"{breaker.test}: the old text of its break occurs {text.count(edit.old)} times in {edit.file} "
                f"(must be once; update tests/claim_breakers/breakers.py): {edit.old!r}")


def test_the_recorded_section_of_the_claims_table_is_generated_from_the_recorded_runs():
    if not RESULTS_JSON.exists():
        assert section_of(CLAIMS_TABLE.read_text(encoding="utf-8")) is None
        return
    results = json.loads(RESULTS_JSON.read_text(encoding="utf-8"))
    assert section_of(CLAIMS_TABLE.read_text(encoding="utf-8")) == render_section(results), (
        "docs/claims.md's broken-build section is stale: run `python -m tests.claim_breakers --render`")
