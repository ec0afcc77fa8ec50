"""Runs the JavaScript tests of the SDK's edge path (tests/unit/test_edge_sdk.mjs) on node's test runner,
so ``pytest`` covers them too. Skips when node is not installed."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_edge_sdk_javascript_tests_pass():
    node = shutil.which("node")
    if node is None:
        from tests.conftest import skip_unless_ci
        skip_unless_ci("node not installed")
    proc = subprocess.run([node, "--test", str(ROOT / "tests" / "unit" / "test_edge_sdk.mjs")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 0" not in proc.stdout
