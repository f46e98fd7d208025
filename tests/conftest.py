"""Shared fixtures: the ../shared reference data (skipped with a message when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.hubstub import hub  # noqa: F401  (the stand-in Hugging Face hub fixture)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (../shared is optional)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the session (tests/support/servers.py)."""
    from tests.support.servers import PostgresServer

    with PostgresServer() as pg:
        yield pg


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 API server on 127.0.0.1 for the session (tests/support/servers.py)."""
    from tests.support.servers import S3Server

    with S3Server() as s3:
        yield s3


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """The AWS_* environment pointing s3fs and DuckDB at the session's S3 server."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    return s3_server.env()
