"""Shared mode end to end: a PostgreSQL Dagster instance (deploy/dagster.cluster.yaml), an
`s3://` data root on moto's S3 server and the DuckLake segment store, with the whole
graph run on two synthetic clips from two processes at once."""

import os
import textwrap
import uuid

import boto3
import pytest
import s3fs
from dagster import AssetKey, DagsterInstance
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from egoclean.cli import main
from tests.support.dagster_helpers import run_scripts
from egoclean.store import Store
from egoclean_assets.partitions import add_clip_partitions
from tests.orchestration.test_assets_graph import ROOT, dataset  # noqa: F401  (the synthetic clips and tiny model fixture)

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {repo!r} + "/tests/orchestration")  # test_assets_graph, beside this file
    from dagster import DagsterInstance
    from test_assets_graph import resources, run_pipeline
    from egoclean_assets.resources import StoreResource
    dataset = {dataset!r}
    dataset["base"] = Path(dataset["base"])
    res = resources(dataset, {root!r}, None)
    res["store"] = StoreResource(path={db!r}, data_path={data_path!r})
    with DagsterInstance.get() as instance:
        r = run_pipeline(res, instance, sys.argv[1], raise_on_error=False)
        assert r.success, [e.message for e in r.all_events if e.is_step_failure]
        assert all(c.passed for c in r.get_asset_check_evaluations())
    print("ok", sys.argv[1])
""")


@pytest.fixture
def cluster(postgres, s3_env, tmp_path):
    """DAGSTER_HOME with the shipped cluster yaml, its Postgres database, a bucket and a lake."""
    tag = uuid.uuid4().hex[:8]
    dagster_db, lake_db, bucket = postgres.createdb(f"dagster_{tag}"), postgres.createdb(f"lake_{tag}"), f"c-{tag}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.cluster.yaml").read_text())
    env = {"DAGSTER_HOME": str(home), "EGOCLEAN_PG_URL": postgres.url(dagster_db)}
    return {"home": home, "env": env, "bucket": bucket, "root": f"s3://{bucket}/data",
            "db": f"ducklake:postgres:{postgres.dsn(lake_db)}", "data_path": f"s3://{bucket}/tables/"}


def test_cluster_yaml_makes_a_postgres_instance(cluster, monkeypatch):
    for k, v in cluster["env"].items():
        monkeypatch.setenv(k, v)
    with DagsterInstance.from_config(str(cluster["home"])) as inst:
        # Dagster's PostgreSQL storages (LockedPostgresStorage's, pooled while a run is created)
        assert isinstance(inst.run_storage, PostgresRunStorage)
        assert isinstance(inst.event_log_storage, PostgresEventLogStorage)
        assert inst.run_monitoring_enabled  # a dead run's slots are freed (docs/RELIABILITY.md)
        assert add_clip_partitions(inst, ["factory001_worker001_00001"]) == ["factory001_worker001_00001"]
    with DagsterInstance.from_config(str(cluster["home"])) as again:  # another process's view
        assert again.get_dynamic_partitions("clips") == ["factory001_worker001_00001"]


def test_two_processes_run_the_graph_on_shared_storage(dataset, cluster):  # noqa: F811
    keys = dataset["keys"]
    with _instance(cluster) as inst:
        add_clip_partitions(inst, keys)
    ds = {"base": str(dataset["base"]), "summary": dataset["summary"], "model": dataset["model"]}
    script = cluster["home"].parent / "worker.py"
    script.write_text(WORKER.format(repo=str(ROOT), dataset=ds, root=cluster["root"], db=cluster["db"],
                                    data_path=cluster["data_path"]))
    env = {**os.environ, **cluster["env"], "PYTHONPATH": str(ROOT)}
    outs = run_scripts(script, keys, env, timeout=600)
    for rc, out in outs:
        assert rc == 0, out[-3000:]
    # the instance in PostgreSQL saw both runs
    with _instance(cluster) as inst:
        done = set(inst.get_materialized_partitions(AssetKey("diagnostics_plot")))
        assert done == set(keys)
    # every final artifact is in the bucket; the raw clips (intermediates) are gone
    fs = s3fs.S3FileSystem()
    for key in keys:
        cid = key.split("_")
        base = f"{cluster['bucket']}/data/factory_{cid[0][-3:]}/worker_{cid[1][-3:]}/{key}"
        names = {p.rsplit("/", 1)[1] for p in fs.find(base)}
        assert {f"{key}_rectified.mp4", f"{key}_segments.json", f"{key}_detection.png"} <= names, names
        assert not any(p.split("/")[-2] == "raw" for p in fs.find(base))
    # the segment rows are in the lake, once per clip, queryable with DuckDB SQL
    st = Store(cluster["db"])
    _, rows = st.query("SELECT clip_id, count(*) FROM clips GROUP BY 1 ORDER BY 1")
    assert rows == [(k, 1) for k in sorted(keys)]
    _, rows = st.query("SELECT DISTINCT clip_id FROM detection_eval WHERE status = 'matched' ORDER BY 1")
    assert [r[0] for r in rows] == sorted(keys)
    assert any(p.endswith(".parquet") for p in fs.find(f"{cluster['bucket']}/tables/"))
    # every frame's camera pose too (an s3:// data root): the README's pose queries run on the lake
    # through `egoclean sql`, the sandbox that lets a query name only the lake's tables
    _, rows = st.query("SELECT p.clip_id, count(*), max(p.frame), any_value(t.frames) FROM poses p "
                       "JOIN trajectories t USING (clip_id) GROUP BY 1 ORDER BY 1")
    assert [(r[0], r[1], r[2] + 1) for r in rows] == [(k, r[3], r[3]) for k, r in zip(sorted(keys), rows)]
    assert all(st.trajectory(k)["path"].startswith(f"s3://{cluster['bucket']}/data/") for k in keys)
    from tests.store.test_poses import readme_statements

    statements = [sql.replace("factory001_worker001_00000", keys[0]) for sql in readme_statements()]
    for sql in statements:
        assert main(["sql", "--db", cluster["db"], sql]) == 0, sql
    assert len(st.query(statements[0])[1]) == st.trajectory(keys[0])["tracked_frames"] > 0


def _instance(cluster):
    os.environ.update(cluster["env"])
    return DagsterInstance.from_config(str(cluster["home"]))
