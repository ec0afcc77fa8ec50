"""Runs the SDK's JavaScript unit tests (tests/unit/test_sdk.mjs) on node's built-in test runner, so
``pytest`` (and ``make test``) covers them too. Skips when node is not installed."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_sdk_javascript_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        from tests.conftest import skip_unless_ci
        skip_unless_ci("node not installed")
    proc = subprocess.run([node, "--test", str(ROOT / "tests" / "unit" / "test_sdk.mjs")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout
