"""Shared pytest helpers: real-binary requirements and a real browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest


def require_real(binary: str) -> str:
    """Return the path of ``binary`` (a name on PATH or an absolute path), or stop the test.

    A missing binary skips the test with the reason; under ``RUNBOOK_REQUIRE_REAL=1`` (CI, where
    the binaries are installed) it fails it instead, so a real-parts test cannot silently vanish.
    """
    path = shutil.which(binary)
    if path is None:
        reason = f"{binary} not found (neither on PATH nor as a path); install it to run this test"
        if os.environ.get("RUNBOOK_REQUIRE_REAL") == "1":
            pytest.fail(f"{reason} (RUNBOOK_REQUIRE_REAL=1)", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture
def browser_page() -> Callable:
    """``open_in_chromium`` from ``tests.browser``, once Chromium and playwright are present."""
    from tests.browser import CHROMIUM

    require_real(CHROMIUM)
    if os.environ.get("RUNBOOK_REQUIRE_REAL") == "1":
        import playwright  # noqa: F401  (an ImportError fails the test in CI)
    else:
        pytest.importorskip("playwright", reason="playwright is not installed")
    from tests.browser import open_in_chromium

    return open_in_chromium
