"""The store's faults are classified the right way round, in Dagster too: an unreachable PostgreSQL
catalog (connection refused) is a transient StoreUnavailableError that the step's RetryPolicy
retries, and a store made by another schema version is a StoreSchemaError that is not retried
(before: the outage was called bad input and never retried, the old schema was retried for minutes).

Through a real Dagster run on a SQLite and on a PostgreSQL instance (deploy/dagster.cluster.yaml),
with a step written as the real ones are (`reports_failures`, a RetryPolicy)."""

import shutil
import uuid
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, RetryPolicy, asset, materialize

from egoclean.core.errors import StoreSchemaError, StoreUnavailableError
from egoclean.store import Store
from egoclean_assets.failures import reports_failures
from tests.store.test_store import clip_info, make_det
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]

CLIP = "factory001_worker001_00001"
TARGET = {}


@asset(retry_policy=RetryPolicy(max_retries=2, delay=0))
@reports_failures
def writes_segments() -> None:
    Store(TARGET["db"]).replace_clip(clip_info(CLIP), make_det(30), "m")


def _old_store(path: Path) -> Path:
    """A DuckDB file from an older EgoClean: a clips table without today's model and random_weights columns."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE clips (clip_id VARCHAR PRIMARY KEY, factory VARCHAR, worker VARCHAR, n_frames BIGINT)")
    con.close()
    return path


def test_old_schema_is_one_clear_error_and_changes_nothing(tmp_path):
    db = _old_store(tmp_path / "old.duckdb")
    before = db.read_bytes()
    with pytest.raises(StoreSchemaError) as e:
        Store(db).replace_clip(clip_info(CLIP), make_det(30), "m")
    msg = str(e.value)
    assert msg.startswith(f"database {db}: its tables were made by another EgoClean version (clips lacks ")
    assert "random_weights" in msg and "new store" in msg
    assert db.read_bytes() == before


def test_unreachable_catalog_is_transient():
    url = f"ducklake:postgres:dbname=lake host=127.0.0.1 port={free_port()} user=postgres"
    with pytest.raises(StoreUnavailableError, match=r"table store ducklake:postgres:.*cannot reach its catalog"):
        Store(url).replace_clip(clip_info(CLIP), make_det(30), "m")


def _instance(kind: str, tmp_path: Path, request, monkeypatch) -> DagsterInstance:
    home = tmp_path / f"home-{kind}"
    home.mkdir()
    if kind == "postgres":
        pg = request.getfixturevalue("postgres")
        shutil.copy(ROOT / "deploy" / "dagster.cluster.yaml", home / "dagster.yaml")
        monkeypatch.setenv("EGOCLEAN_PG_URL", pg.url(pg.createdb(f"faults_{uuid.uuid4().hex[:8]}")))
        return DagsterInstance.from_config(str(home))
    return DagsterInstance.local_temp(str(home))


def _attempts(instance, result) -> tuple[int, str]:
    retries = len(instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY))
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    err, parts = failure.event_specific_data.error, []
    while err is not None:  # "Exceeded max_retries", caused by the step's own error
        parts.append(err.message)
        err = err.cause
    return retries, "\n".join(parts)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_dagster_retries_an_outage_and_not_an_old_schema(kind, tmp_path, request, monkeypatch):
    with _instance(kind, tmp_path, request, monkeypatch) as instance:
        TARGET["db"] = f"ducklake:postgres:dbname=lake host=127.0.0.1 port={free_port()} user=postgres"
        res = materialize([writes_segments], instance=instance, raise_on_error=False)
        retries, msg = _attempts(instance, res)
        assert retries == 2 and "StoreUnavailableError" in msg and "cannot reach its catalog" in msg, (retries, msg)
        TARGET["db"] = str(_old_store(tmp_path / f"old-{kind}.duckdb"))
        res = materialize([writes_segments], instance=instance, raise_on_error=False)
        retries, msg = _attempts(instance, res)
        assert retries == 0 and "StoreSchemaError" in msg and "another EgoClean version" in msg, (retries, msg)
