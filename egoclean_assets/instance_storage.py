"""Dagster's instance storage, created by one process at a time, and EgoClean's instance class.

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

EgoCleanInstance, named by every EgoClean dagster.yaml (deploy/ too), also creates runs
without re-reading every clip. Creating a run over a partition range (a Ray-mode run of
K clips, from the backfill daemon or the backfill CLI) records the run's planned materializations and checks: for
each asset and each check of the run, Dagster resolves the range to its keys
(`DagsterRun.get_resolved_partitions_subset_for_events` -> `get_partition_keys_in_range`):
two `has_dynamic_partition` queries for the range's ends, then *every* key of the
dynamic partitions definition (`get_dynamic_partitions` of the instance, which
`create_run` names as the partitions store). At 192,903 clips that is ~11 reads of
192,903 keys per run: about a minute per run on a loaded 2-core host, nearly all of what
submitting a pass cost (docs/SCALE.md, "Submission in Ray mode").

While this instance creates a run, `get_dynamic_partitions` answers from the keys it read
last for that definition as long as the definition's rows are unchanged, and
`has_dynamic_partition` from the same keys. "Unchanged" is asked of the storage each time
a run is created (one small query: the number of the definition's rows, the largest row
id and that row's key; any clip added or deleted changes it), so a clip registered
between two runs is seen by the next one. Outside run creation every call goes to the
storage as Dagster's does; the events and the run are Dagster's own, unchanged.

Both storages below also write a planned check's rows at once: for each check of a range
run Dagster serializes the planned event once per partition of the run into a new
multi-row INSERT and looks the checks table up again; here the rows (the same columns and
values as Dagster's) take one serialization and one cached statement, and the table is
looked up once per process. On PostgreSQL (LockedPostgresStorage) creating a run also
opens few connections: Dagster's PostgreSQL storages open a new connection (a new server
process) for every group of statements, so that an idle instance holds none, ~145 for one
range run of 4 clips. While a thread creates a run through EgoCleanInstance, the run and
event storages take their connections from a pool of one (what Dagster's webserver does
for all of its calls, `optimize_for_webserver`); a process that has created a run (the
daemon, the backfill CLI) keeps one idle connection per storage until its instance is
disposed; every other call is Dagster's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Sequence

import sqlalchemy as sa
import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, DynamicPartitionsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (DagsterSqliteStorage, _event_logs_directory, _runs_directory,
                                                  _schedule_directory)
from dagster._serdes import ConfigurableClassData, serialize_value
from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage, PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_connection, create_pg_engine, get_token_provider_from_config, \
    pg_url_from_config

# pg_advisory_lock key of the instance's creation (any fixed 64-bit number; "egoclean" in ASCII).
_PG_LOCK_KEY = 0x65676F636C65616E
LOCK_FILE = ".egoclean-storage.lock"
# `.depth` > 0 while this thread creates a run through EgoCleanInstance (the PostgreSQL storages pool then)
_CREATING_RUN = threading.local()
_POOL_LOCK = threading.Lock()


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
    """DagsterSqliteStorage whose tables are created (or checked) by one process at a time; checks planned at once."""

    def __init__(self, base_dir: str, inst_data=None):
        with _file_lock(base_dir):
            # DagsterSqliteStorage.__init__ with the event storage below (_PlannedChecksAtOnce)
            self.base_dir = base_dir
            self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
            self._event_log_storage = PlannedChecksSqliteEventLogStorage(_event_logs_directory(base_dir))
            self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
            self._inst_data = inst_data
            super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)


class EgoCleanInstance(DagsterInstance):
    """A DagsterInstance: default storage LockedSqliteStorage; `create_run` reads the clips only when they changed."""

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

    @property
    def _creating(self) -> threading.local:
        """`.keys`: {definition name: (keys, set of keys)} while this thread creates a run on this instance."""
        return self.__dict__.setdefault("_egoclean_creating", threading.local())

    @property
    def _known(self) -> dict:
        """{definition name: (stamp, keys, set of keys)}: the keys read last, with the stamp of their rows."""
        return self.__dict__.setdefault("_egoclean_known", {})

    def create_run(self, **kwargs):
        creating = self._creating
        outer = getattr(creating, "keys", None)
        creating.keys = {} if outer is None else outer
        _CREATING_RUN.depth = getattr(_CREATING_RUN, "depth", 0) + 1
        try:
            return super().create_run(**kwargs)
        finally:
            creating.keys = outer
            _CREATING_RUN.depth -= 1

    def _stamp(self, name: str) -> tuple | None:
        """What changes whenever a key of definition `name` is added or deleted; None: no SQL storage to ask."""
        storage = self._event_storage
        if not isinstance(storage, SqlEventLogStorage):
            return None
        t = DynamicPartitionsTable
        with storage.index_connection() as conn:
            count, top = conn.execute(sa.select(sa.func.count(), sa.func.max(t.c.id))
                                      .where(t.c.partitions_def_name == name)).one()
            # SQLite may give a deleted last row's id to the next key: the key at that id tells them apart
            last = conn.execute(sa.select(t.c.partition).where(t.c.id == top)).scalar() if top is not None else None
        return count, top, last

    def _keys_for_run(self, name: str) -> tuple[Sequence[str], frozenset] | None:
        keys = getattr(self._creating, "keys", None)
        if keys is None:  # not creating a run
            return None
        if name not in keys:
            stamp = self._stamp(name)
            known = self._known.get(name)
            if stamp is None or known is None or known[0] != stamp:
                listed = super().get_dynamic_partitions(name)
                known = (stamp, listed, frozenset(listed))
                if stamp is not None:
                    self._known[name] = known
            keys[name] = known[1:]
        return keys[name]

    def get_dynamic_partitions(self, partitions_def_name: str) -> Sequence[str]:
        found = self._keys_for_run(partitions_def_name)
        return super().get_dynamic_partitions(partitions_def_name) if found is None else found[0]

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        found = self._keys_for_run(partitions_def_name)
        if found is None:
            return super().has_dynamic_partition(partitions_def_name, partition_key)
        return partition_key in found[1]


class _PooledWhileCreatingRuns:
    """A Dagster PostgreSQL storage whose connections come from a pool of one while this thread creates a run."""

    _pool = None  # the pooled engine, made on the first run created in this process

    def _pooled_engine(self):
        if self._pool is None:
            with _POOL_LOCK:
                if self._pool is None:
                    # the webserver's settings (optimize_for_webserver): one connection kept, recycled
                    # hourly; more threads creating runs at once each get their own, closed after use;
                    # pre_ping: a connection the server dropped while the process idled is replaced
                    self._pool = create_pg_engine(self.postgres_url, self._token_provider, isolation_level="AUTOCOMMIT",
                                                  pool_size=1, max_overflow=-1, pool_recycle=3600,
                                                  pool_pre_ping=True)
        return self._pool

    def _pooled_connection(self, dagsters):
        if getattr(_CREATING_RUN, "depth", 0):
            return create_pg_connection(self._pooled_engine())
        return dagsters()

    def dispose(self):
        # the kept connection closes with the instance (DagsterInstance.dispose, `with instance:`)
        with _POOL_LOCK:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.dispose()
        super().dispose()


class PooledPostgresRunStorage(_PooledWhileCreatingRuns, PostgresRunStorage):
    """PostgresRunStorage, pooled while a run is created."""

    def connect(self):
        return self._pooled_connection(super().connect)


class _PlannedChecksAtOnce:
    """A Dagster SQL event log storage that writes a planned check's rows at once and looks its table up once."""

    _has_checks = False

    @property
    def supports_asset_checks(self):
        # Dagster looks the table up (a new engine on SQLite, a catalog query on PostgreSQL) for
        # every check event; it exists from the first time it does (migrations add, never drop it)
        if not self._has_checks:
            self._has_checks = bool(super().supports_asset_checks)
        return self._has_checks

    def _store_asset_check_evaluation_planned(self, event, event_id):
        # Dagster's rows (one per partition of the check's planned subset), with the event
        # serialized once and one cached INSERT run for all rows, not a new statement of
        # K VALUES tuples each holding its own serialization
        planned = event.dagster_event.event_specific_data
        keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(asset_key=planned.asset_key.to_string(), check_name=planned.check_name, run_id=event.run_id,
                   execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                   evaluation_event=serialize_value(event),
                   evaluation_event_timestamp=self._event_insert_timestamp(event),
                   evaluation_event_storage_id=event_id)
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": key} for key in keys])


class PlannedChecksSqliteEventLogStorage(_PlannedChecksAtOnce, SqliteEventLogStorage):
    """SqliteEventLogStorage writing a planned check's rows at once."""


class PooledPostgresEventLogStorage(_PlannedChecksAtOnce, _PooledWhileCreatingRuns, PostgresEventLogStorage):
    """PostgresEventLogStorage, pooled while a run is created, writing a planned check's rows at once."""

    def _connect(self):
        return self._pooled_connection(super()._connect)


class LockedPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose tables are created (or checked) by one process at a time; runs created pooled."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None,
                 token_provider=None):
        with _pg_lock(postgres_url):
            # DagsterPostgresStorage.__init__ with the run and event storages above
            self.postgres_url = postgres_url
            self.should_autocreate_tables = should_autocreate_tables
            self._inst_data = inst_data
            self._run_storage = PooledPostgresRunStorage(postgres_url, should_autocreate_tables,
                                                         token_provider=token_provider)
            self._event_log_storage = PooledPostgresEventLogStorage(postgres_url, should_autocreate_tables,
                                                                    token_provider=token_provider)
            self._schedule_storage = PostgresScheduleStorage(postgres_url, should_autocreate_tables,
                                                             token_provider=token_provider)
            super(DagsterPostgresStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(postgres_url=pg_url_from_config(config_value), inst_data=inst_data,
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   token_provider=get_token_provider_from_config(config_value))
