"""Dagster's instance storage, created by one process at a time.

Dagster creates an instance's tables and stamps their schema version (alembic) the first
time a process opens it, without a lock between processes: `dagster dev` and the backfill
CLI (or several machines) started at once on a fresh instance could both stamp, leaving
two versions recorded ("more than one head present") and the instance unopenable. These
subclasses take a lock around that open: a PostgreSQL advisory lock on the instance
database (deploy/dagster.cluster.yaml names LockedPostgresStorage under `storage:`), or a
file lock in the SQLite folder (LockedSqliteStorage). The single-machine yaml
(dagster_home/dagster.yaml) names no storage and so no folder: the instance folder is only
known when Dagster reads the yaml (DAGSTER_HOME, or the folder given to
`DagsterInstance.from_config`), so it names EgoCleanInstance as its `instance_class`, whose
default storage is LockedSqliteStorage in that folder: the same files Dagster's own default
(DagsterSqliteStorage in the instance folder) uses, so an existing instance keeps its runs.
The tables are Dagster's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import sqlalchemy as sa
import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
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


class EgoCleanInstance(DagsterInstance):
    """A DagsterInstance whose default storage (no `storage:` in the yaml) is LockedSqliteStorage."""

    @classmethod
    def config_schema(cls):
        # no settings of its own; Dagster merges this into the yaml's schema
        return {}

    @staticmethod
    def config_defaults(base_dir):
        defaults = dict(InstanceRef.config_defaults(base_dir))
        # Dagster's default is DagsterSqliteStorage with base_dir = the instance folder: the same
        # folder, behind the lock
        defaults["storage"] = ConfigurableClassData(
            __name__, LockedSqliteStorage.__name__, yaml.dump({"base_dir": base_dir}, default_flow_style=False))
        return defaults


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
