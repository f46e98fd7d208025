"""Tests for egoclean.store.ducklake and the shared (DuckLake) mode of egoclean.store.

A real PostgreSQL cluster holds the catalog and a real S3 API server (moto) the Parquet
files; writers are separate processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from egoclean.store import ducklake
from egoclean.cli import main
from egoclean.core.errors import InvalidInputError
from egoclean.store import QueryError, Store
from egoclean.temporal.evaluation import GroundTruthSpan as Truth
from tests.store.test_store import clip_info, make_det

ROOT = Path(__file__).resolve().parents[2]
CLIPS = [f"factory001_worker{w:03d}_{c:05d}" for w in (1, 2) for c in range(1, 4)]


@pytest.fixture
def lake(postgres, s3_env):
    """A fresh DuckLake: catalog in its own PostgreSQL database, data in a fresh S3 bucket."""
    from tests.support.servers import S3Server  # noqa: F401  (the session server is s3_env's)

    name = "lake_" + uuid.uuid4().hex[:8]
    postgres.createdb(name)
    bucket = name.replace("_", "-")
    import boto3

    boto3.client("s3").create_bucket(Bucket=bucket)
    return {"url": f"ducklake:postgres:{postgres.dsn(name)}", "data_path": f"s3://{bucket}/tables/", "bucket": bucket}


def store_of(lake) -> Store:
    return Store(lake["url"], data_path=lake["data_path"])


def counts(store: Store, clip: str) -> tuple[int, int, int]:
    _, rows = store.query(
        "SELECT (SELECT count(*) FROM clips WHERE clip_id = $c), (SELECT count(*) FROM segments WHERE clip_id = $c),"
        " (SELECT count(*) FROM window_scores WHERE clip_id = $c)", {"c": clip})
    return rows[0]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {here!r})  # test_store, beside this file
    from egoclean.store import Store
    from test_store import clip_info, make_det
    url, data_path, n, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    st = Store(url, data_path=data_path, timeout_sec=120)
    for rep in range(reps):
        for clip in sys.argv[5:]:
            st.replace_clip(clip_info(clip, n), make_det(n, seed=rep), "writer")
    print("done", flush=True)
""").format(root=str(ROOT), here=str(Path(__file__).resolve().parent))


def writer(lake, clips, n=60, reps=1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, lake["url"], lake["data_path"], str(n), str(reps), *clips],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_redact_url_hides_passwords():
    assert ducklake.redact_url("ducklake:postgres:dbname=x password=s3cr3t host=h") == \
        "ducklake:postgres:dbname=x password=*** host=h"
    assert "s3cr3t" not in ducklake.redact_url("postgresql+psycopg2://u:s3cr3t@h/db")


def test_only_postgres_catalogs_are_accepted():
    with pytest.raises(InvalidInputError, match="only DuckLake catalogs in PostgreSQL"):
        ducklake.postgres_dsn("ducklake:sqlite:/tmp/x.db")


def test_s3_secret_from_environment():
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "it's", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    sql = ducklake.s3_secret_sql(env)
    assert "ENDPOINT '127.0.0.1:9'" in sql and "USE_SSL false" in sql and "'it''s'" in sql
    assert ducklake.s3_secret_sql({}) is None


def test_extensions_load_from_the_wheels_without_network():
    base = ducklake.extension_dir()
    names = {p.name for p in base.glob("v*/*/*.duckdb_extension")}
    assert {"ducklake.duckdb_extension", "postgres_scanner.duckdb_extension", "httpfs.duckdb_extension"} <= names


def test_shared_store_round_trip_and_replace(lake):
    st = store_of(lake)
    st.replace_clip(clip_info(CLIPS[0]), make_det(60), "m1")
    st.replace_clip(clip_info(CLIPS[0]), make_det(40, spans=((5.0, 9.0), (20.0, 30.0))), "m2")
    assert counts(st, CLIPS[0]) == (1, 3, 40)  # replaced, not added: 2 anomaly + 1 work span
    assert st.clip(CLIPS[0])["model"] == "m2"
    assert st.clip(CLIPS[0])["paths"]["rectified"].endswith(".mp4")
    st.replace_ground_truth([Truth(CLIPS[0], 60.0, 5.0, 9.0, "gt")], "seed")
    ev = st.detection_eval(CLIPS[0])
    assert [r["status"] for r in ev] == ["matched", "false positive"]
    # the Parquet files are in the object store
    import s3fs

    files = s3fs.S3FileSystem().find(f"{lake['bucket']}/tables/")
    assert any(f.endswith(".parquet") for f in files), files
    st.delete_clip(CLIPS[0])
    assert counts(st, CLIPS[0]) == (0, 0, 0)


def test_egoclean_sql_on_the_shared_store_is_read_only(lake, capsys):
    st = store_of(lake)
    st.replace_clip(clip_info(CLIPS[1]), make_det(60), "m")
    assert main(["sql", "--db", lake["url"], "SELECT clip_id, count(*) AS n FROM window_scores GROUP BY 1"]) == 0
    out = capsys.readouterr().out
    assert CLIPS[1] in out and "60" in out
    with pytest.raises(QueryError, match="read-only"):
        st.query("DELETE FROM clips")
    assert counts(st, CLIPS[1]) == (1, 2, 60)


def test_unreachable_catalog_is_one_clear_error(postgres):
    st = Store(f"ducklake:postgres:dbname=nope host=127.0.0.1 port={postgres.port} user=postgres password=pw")
    with pytest.raises(InvalidInputError, match="cannot (attach|lock)") as e:
        st.replace_clip(clip_info(CLIPS[0]), make_det(10), "m")
    assert "pw" not in str(e.value).replace("password=***", "")


def test_four_writers_at_once_every_row_exactly_once(lake):
    st = store_of(lake)
    st.init()
    groups = [CLIPS[i::4] for i in range(4)]  # 4 processes, different clips, 3 rounds each
    procs = [writer(lake, g, n=50, reps=3) for g in groups]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    _, rows = st.query("SELECT clip_id, count(*) FROM window_scores GROUP BY 1 ORDER BY 1")
    assert rows == [(c, 50) for c in sorted(CLIPS)]
    _, rows = st.query("SELECT count(*), count(DISTINCT clip_id) FROM clips")
    assert rows == [(len(CLIPS), len(CLIPS))]
    _, dup = st.query("SELECT clip_id, kind, start_sec, count(*) FROM segments GROUP BY ALL HAVING count(*) > 1")
    assert dup == []


def test_same_clip_from_two_processes_leaves_one_set_of_rows(lake):
    st = store_of(lake)
    st.init()
    procs = [writer(lake, [CLIPS[2]], n=80, reps=4) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert counts(st, CLIPS[2]) == (1, 2, 80)


def test_writer_killed_mid_commit_leaves_no_partial_rows(lake):
    st = store_of(lake)
    st.replace_clip(clip_info(CLIPS[3], 30), make_det(30), "old")
    seen = set()
    for delay in (0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.2):
        p = writer(lake, [CLIPS[3]], n=200_000)
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        c = counts(st, CLIPS[3])
        assert c in ((1, 2, 30), (1, 2, 200_000)), c  # the old clip or the new one, never a mix
        seen.add(c)
    # the killed writers' locks died with them: a new writer gets through at once
    st.replace_clip(clip_info(CLIPS[3], 30), make_det(30), "after")
    assert counts(st, CLIPS[3]) == (1, 2, 30) and st.clip(CLIPS[3])["model"] == "after"


def test_unchanged_ground_truth_makes_no_new_snapshot(lake):
    st = store_of(lake)
    spans = [Truth(CLIPS[4], 60.0, 5.0, 9.0, "gt"), Truth(CLIPS[5], 60.0, 1.0, 2.0, None)]
    assert st.replace_ground_truth(spans, "seed") == 2

    def snapshots():
        return st.query("SELECT count(*) FROM ducklake_snapshots('lake')")[1][0][0]

    before = snapshots()
    assert st.replace_ground_truth(list(reversed(spans)), "seed") == 2  # same rows, other order
    assert snapshots() == before
    assert st.replace_ground_truth(spans[:1], "seed") == 1  # a real change is written
    assert snapshots() == before + 1
    assert st.query("SELECT count(*) FROM ground_truth")[1] == [(1,)]
