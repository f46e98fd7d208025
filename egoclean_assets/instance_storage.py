"""Dagster's instance storage, created by one process at a time.

Dagster creates an instance's tables and stamps their schema version (alembic) the first
time a process opens it, without a lock between processes: `dagster dev` and the backfill
CLI (or several machines) started at once on a fresh instance could both stamp, leaving
two versions recorded ("more than one head present") and the instance unopenable. These
subclasses take a lock around that open: a PostgreSQL advisory lock on the instance
database (deploy/dagster.cluster.yaml names LockedPostgresStorage under `storage:`), or a
file lock in the SQLite folder (LockedSqliteStorage; it needs the folder spelled out as
`base_dir`, so the single-machine yaml, which leaves the folder to Dagster, does not use
it: see docs/RELIABILITY.md, Known gaps). The tables are Dagster's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import sqlalchemy as sa
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

# pg_advisory_lock key of the instance's creation (any fixed 64-bit number; "egoclean" in ASCII).
_PG_LOCK_KEY = 0x65676F636C65616E
LOCK_FILE = ".egoclean-storage.lock"


@contextlib.contextmanager
def _file_lock(folder: str):
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(os.path.join(folder, LOCK_FILE), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _pg_lock(url: str):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
    finally:
        engine.dispose()


class LockedSqliteStorage(DagsterSqliteStorage):
    """DagsterSqliteStorage whose tables are created (or checked) by one process at a time."""

    def __init__(self, base_dir: str, inst_data=None):
        with _file_lock(base_dir):
            super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)


class LockedPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose tables are created (or checked) by one process at a time."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None,
                 token_provider=None):
        with _pg_lock(postgres_url):
            super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data,
                             token_provider=token_provider)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(postgres_url=pg_url_from_config(config_value), inst_data=inst_data,
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   token_provider=get_token_provider_from_config(config_value))
