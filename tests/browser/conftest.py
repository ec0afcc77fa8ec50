"""Fixtures of the browser tests: skip cleanly when Chromium or playwright-core is missing (fail under CI)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import Browser, browser_missing_reason  # noqa: E402


@pytest.fixture
def browser():
    """A headless Debian Chromium (fresh profile) behind tests/browser/driver.mjs."""
    from tests.conftest import skip_unless_ci

    reason = browser_missing_reason()
    if reason:
        skip_unless_ci(reason)
    with Browser() as b:
        yield b
        errors = b.call("page_errors")
    assert not errors, f"errors in the page: {errors}"
