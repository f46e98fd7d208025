"""EgoClean's instance class: a range run's creation reads the clips once at most and records what Dagster's does.

SQLite: two real instances (dagster_home/dagster.yaml, which names
`egoclean_assets.instance_storage.EgoCleanInstance`, and the same file without that line).
PostgreSQL: deploy/dagster.cluster.yaml (EgoCleanInstance, LockedPostgresStorage) against
Dagster's own `storage: postgres:` on the session's real server. The run is a Ray-mode
range run of the clip assets (K = 4) created from workspace.yaml's code location as the
backfill CLI creates it (`egoclean_assets.launch._create_run`), with Dagster's default
planned events and with the `subset` switch of deploy/ray.env.
"""

import contextlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable as CHECK_ROWS
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from egoclean_assets.instance_storage import EgoCleanInstance

ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"factory001_worker001_{i:05d}" for i in range(1, 41)]
RANGE = KEYS[8:12]


def _home(tmp_path: Path, name: str, own_class: bool) -> Path:
    home = tmp_path / name
    home.mkdir()
    text = (ROOT / "dagster_home" / "dagster.yaml").read_text()
    if not own_class:
        line = "instance_class:\n  module: egoclean_assets.instance_storage\n  class: EgoCleanInstance\n"
        text = text.replace(line, "")
        assert "instance_class" not in text
    (home / "dagster.yaml").write_text(text)
    return home


def _planned(instance, run_id: str) -> list[tuple]:
    """(event type, asset, check, partition keys) of the run's planned materializations and checks."""
    out = []
    for kind in (DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED):
        for rec in instance.get_event_records(EventRecordsFilter(kind), limit=10_000):
            if rec.run_id != run_id:
                continue
            data = rec.event_log_entry.dagster_event.event_specific_data
            subset = data.partitions_subset
            keys = sorted(subset.get_partition_keys()) if subset is not None else [getattr(data, "partition", None)]
            out.append((kind.value, data.asset_key.to_user_string(), getattr(data, "check_name", None), tuple(keys)))
    return sorted(out)


@contextlib.contextmanager
def _run_maker(instance):
    """create(first, last): a Ray-mode range run of the clip assets, made as the backfill CLI makes it."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from egoclean_assets.backfill import QUIET
    from egoclean_assets.cluster import CLIP_ASSETS
    from egoclean_assets.launch import LOCATION, REPOSITORY, WORKSPACE, _create_run

    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as process:
        location = process.create_request_context().get_code_location(LOCATION)
        repo = location.get_repository(REPOSITORY)
        job = location.get_job(JobSubsetSelector(
            location_name=LOCATION, repository_name=REPOSITORY, job_name="clip_pipeline",
            op_selection=None, asset_selection=[AssetKey(a) for a in CLIP_ASSETS]))
        yield lambda first, last: _create_run(
            instance, location, repo, job, QUIET,
            {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})


@pytest.mark.parametrize("subset", [False, True], ids=["per-partition", "subset"])
def test_a_range_run_reads_the_clips_once_and_plans_the_same_events(tmp_path, monkeypatch, subset):
    from egoclean_assets.cluster import CLIP_ASSETS
    from egoclean_assets.partitions import add_clip_partitions

    monkeypatch.setenv("EGOCLEAN_EXECUTION", "ray")
    monkeypatch.setenv("EGOCLEAN_CLIPS_PER_RUN", "4")
    if subset:
        monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    else:
        monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    reads = []
    original = SqlEventLogStorage.get_dynamic_partitions
    monkeypatch.setattr(SqlEventLogStorage, "get_dynamic_partitions",
                        lambda self, name: reads.append(name) or original(self, name))
    found = {}
    for name, own_class in (("egoclean", True), ("dagster", False)):
        with DagsterInstance.from_config(str(_home(tmp_path, name, own_class))) as instance:
            assert isinstance(instance, EgoCleanInstance) == own_class
            add_clip_partitions(instance, KEYS)
            with _run_maker(instance) as make:

                def create(first, last, make=make):
                    reads.clear()
                    run = make(first, last)
                    return len(reads), run

                count, run = create(RANGE[0], RANGE[-1])
                found[name] = (count, _planned(instance, run.run_id), _check_rows(instance, run.run_id))
                if own_class:
                    _assert_planned_check_rows_are_dagsters(instance.event_log_storage, SqliteEventLogStorage)
                if own_class:
                    # the next run reads nothing while the clips are unchanged; a clip added is read
                    assert create(KEYS[0], KEYS[3])[0] == 0
                    add_clip_partitions(instance, ["factory001_worker001_00041"])
                    count, run = create(KEYS[-1], "factory001_worker001_00041")
                    assert count == 1
                    assert {p[3] for p in _planned(instance, run.run_id)} >= {(KEYS[-1], "factory001_worker001_00041")}
            # outside a run's creation, the keys are read from the storage every time (a clip added is seen)
            reads.clear()
            instance.get_dynamic_partitions("clips")
            instance.get_dynamic_partitions("clips")
            assert len(reads) == 2
    (ours, planned, rows), (dagsters, dagster_planned, dagster_rows) = found["egoclean"], found["dagster"]
    assert ours == 1 and dagsters > 5, (ours, dagsters)  # Dagster's: once per asset and check of the run
    assert planned == dagster_planned and rows == dagster_rows and len(rows) == 7 * len(RANGE)
    assert {p[1] for p in planned} == set(CLIP_ASSETS)
    materializations = {p[3] for p in planned if p[0] == DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value}
    checks = {p[3] for p in planned if p[0] == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value}
    assert materializations == ({tuple(RANGE)} if subset else {(k,) for k in RANGE})
    assert checks == {tuple(RANGE)}  # a check's planned event carries the run's range either way


def _check_rows(instance, run_id: str) -> list[tuple]:
    """The run's rows in Dagster's asset check executions table, without the row and event ids and times."""
    with instance.event_log_storage.index_connection() as conn:
        c = CHECK_ROWS.c
        rows = conn.execute(sa.select(c.asset_key, c.check_name, c.partition, c.execution_status)
                            .where(c.run_id == run_id).order_by(c.id)).all()
    return [tuple(r) for r in rows]


def _assert_planned_check_rows_are_dagsters(storage, dagsters_class) -> None:
    """One planned check's rows, written by Dagster's own method and by `storage`'s, are equal column for column."""
    rec = storage.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED), limit=1)[0]
    entry = rec.event_log_entry._replace(run_id="rows-of-one-planned-check")  # (rows are unique per run)
    written = []
    for store in (dagsters_class._store_asset_check_evaluation_planned,
                  type(storage)._store_asset_check_evaluation_planned):
        store(storage, entry, rec.storage_id)
        with storage.index_connection() as conn:
            mine = CHECK_ROWS.c.run_id == entry.run_id
            rows = conn.execute(sa.select(CHECK_ROWS).where(mine).order_by(CHECK_ROWS.c.id)).mappings().all()
            conn.execute(sa.delete(CHECK_ROWS).where(mine))
        written.append([{k: v for k, v in r.items() if k not in ("id", "create_timestamp")} for r in rows])
    assert type(storage) is not dagsters_class
    assert len(written[0]) == len(RANGE) and written[0] == written[1]


def test_a_range_run_on_postgresql_opens_few_connections_and_writes_dagsters_rows(tmp_path, monkeypatch, postgres):
    """LockedPostgresStorage: run creation pooled (one connection per storage, kept), Dagster's check rows."""
    from dagster_postgres import PostgresEventLogStorage

    from egoclean_assets.partitions import add_clip_partitions

    monkeypatch.setenv("EGOCLEAN_EXECUTION", "ray")
    monkeypatch.setenv("EGOCLEAN_CLIPS_PER_RUN", "4")
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    connects = []
    listener = lambda dbapi_conn, record: connects.append(1)  # noqa: E731  (every new server connection)
    sa.event.listen(sa.engine.Engine, "connect", listener)
    found = {}
    try:
        for name, ours in (("egoclean", True), ("dagster", False)):
            db = postgres.createdb(f"instance_{name}_{tmp_path.name[-8:].lower()}")
            url = postgres.url(db)

            def open_connections(db=db) -> int:
                """Connections the server holds to the instance's database."""
                with sa.create_engine(postgres.url(), poolclass=sa.pool.NullPool).connect() as conn:
                    return conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db"),
                                        {"db": db}).scalar()

            home = tmp_path / name
            home.mkdir()
            if ours:
                monkeypatch.setenv("EGOCLEAN_PG_URL", url)
                text = (ROOT / "deploy" / "dagster.cluster.yaml").read_text()
            else:
                text = f"storage:\n  postgres:\n    postgres_url: {url}\n"
            (home / "dagster.yaml").write_text(text)
            with DagsterInstance.from_config(str(home)) as instance:
                storage = instance.event_log_storage
                assert isinstance(storage, PostgresEventLogStorage)
                assert (type(storage) is PostgresEventLogStorage) != ours  # ours: LockedPostgresStorage's
                add_clip_partitions(instance, KEYS)
                with _run_maker(instance) as make:
                    counts, runs = [], []
                    for first, last in ((RANGE[0], RANGE[-1]), (KEYS[0], KEYS[3]), (KEYS[4], KEYS[7])):
                        connects.clear()
                        runs.append(make(first, last))
                        counts.append(len(connects))
                    connects.clear()
                    instance.get_runs()  # outside run creation: Dagster's own connection, opened and closed
                    outside = len(connects)
                first_run = runs[0].run_id
                found[name] = (counts, outside, _planned(instance, first_run), _check_rows(instance, first_run))
                assert open_connections() == (2 if ours else 0)  # ours: one kept per pooled storage
                if ours:
                    _assert_planned_check_rows_are_dagsters(storage, PostgresEventLogStorage)
            assert open_connections() == 0  # closed with the instance
    finally:
        sa.event.remove(sa.engine.Engine, "connect", listener)
    (ours, ours_outside, planned, rows), (dagsters, dagster_outside, dagster_planned, dagster_rows) = \
        found["egoclean"], found["dagster"]
    assert planned == dagster_planned and rows == dagster_rows
    assert len(rows) == 7 * len(RANGE) and {r[3] for r in rows} == {"PLANNED"}
    # ours: the pooled connections are opened by the first run and kept; Dagster's: a new one per statement group
    assert ours[1:] == [0, 0] and ours[0] <= 3, ours
    assert min(dagsters) > 20, dagsters
    assert ours_outside >= 1 and dagster_outside >= 1  # outside creation both open (and close) their own
