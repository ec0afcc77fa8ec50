"""docs/claims.md names real tests, and a skipped claim test fails the run under CI."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

from tests.conftest import ROOT, claim_test_ids


def test_every_test_named_in_the_claims_table_exists():
    ids = claim_test_ids()
    assert len(ids) >= 80, len(ids)
    missing = []
    for node_id in sorted(ids):
        path, name = node_id.split("::")
        tree = ast.parse((ROOT / path).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if name not in names:
            missing.append(node_id)
    assert not missing, f"docs/claims.md names tests that do not exist: {missing}"


def _run_claim_probe(tmp_path, ci: bool) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\n@pytest.mark.claim\ndef test_probe():\n    pytest.skip('prerequisite missing')\n\n"
                     "def test_not_a_claim():\n    pytest.skip('fine')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "1"} if ci else {})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                           "-c", str(ROOT / "pyproject.toml"), "--confcutdir", str(ROOT / "tests"),
                           "-p", "tests.conftest", str(probe)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_skipped_claim_test_fails_under_ci_and_only_skips_elsewhere(tmp_path):
    under_ci = _run_claim_probe(tmp_path, ci=True)
    assert under_ci.returncode == 1, under_ci.stdout
    assert "1 failed, 1 skipped" in under_ci.stdout and "claim test skipped under CI" in under_ci.stdout
    local = _run_claim_probe(tmp_path, ci=False)
    assert local.returncode == 0, local.stdout
    assert "2 skipped" in local.stdout
