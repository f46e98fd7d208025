"""Shared fixtures: the ../shared reference data (skipped with a message when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubstub import hub  # noqa: F401  (the stand-in Hugging Face hub fixture)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (../shared is optional)")
    return SHARED_DATA
