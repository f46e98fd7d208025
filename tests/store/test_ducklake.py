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
    st = Store(f"ducklake:postgres:dbname=nope host=127.0.0.1 port={postgres.port} user=postgres")
    with pytest.raises(InvalidInputError, match="cannot (attach|lock)"):
        st.replace_clip(clip_info(CLIPS[0]), make_det(10), "m")


@pytest.mark.parametrize("dsn, secret", [
    ("dbname=lake host=127.0.0.1 user=postgres password=s3cr3tpw", "s3cr3tpw"),
    ("dbname=lake host=127.0.0.1 user=postgres password='a b c'", "a b c"),
    ("postgresql://:hunter2pw@127.0.0.1/lake", "hunter2pw"),
    ("postgresql://egoclean:hunter3pw@127.0.0.1:5432/lake", "hunter3pw"),
    ("dbname=lake host=127.0.0.1 passwd=hunter4pw", "hunter4pw"),
])
def test_a_password_in_the_store_url_is_refused_without_showing_it(dsn, secret, capsys):
    """Passwords go to libpq as PGPASSWORD or ~/.pgpass: a URL holding one is refused before anything runs."""
    url = f"ducklake:postgres:{dsn}"
    with pytest.raises(InvalidInputError) as e:
        Store(url).query("SELECT 1")
    msg = str(e.value)
    assert secret not in msg and ("PGPASSWORD" in msg or "not a libpq connection string" in msg), msg
    assert main(["sql", "--db", url, "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert secret not in err and len(err.strip().splitlines()) == 1, err


def test_a_quoted_value_in_the_store_url_stays_inside_the_attach(lake):
    """libpq's quoted values ('lake name') are escaped into ATTACH: they neither break it nor add SQL."""
    quoted = lake["url"].replace("dbname=", "application_name='egoclean x\\' y' dbname=")
    st = Store(quoted, data_path=lake["data_path"])
    st.replace_clip(clip_info(CLIPS[0]), make_det(20), "m")
    assert counts(st, CLIPS[0]) == (1, 2, 20)


LAKE_ESCAPES = [
    "ATTACH '{url}' AS rw; DELETE FROM rw.clips",
    "ATTACH '{pg}' AS pg (TYPE postgres); CREATE TABLE pg.public.x AS SELECT 42",
    "ATTACH 'postgres:{pg}' AS pg",
    "DELETE FROM clips",
    "CREATE TABLE x AS SELECT 42",
    "SELECT * FROM postgres_query('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT * FROM postgres_scan('{pg}', 'public', 'ducklake_table')",
    "CALL postgres_execute('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT * FROM __ducklake_metadata_lake.public.ducklake_table",
    'select * from "__ducklake_metadata_lake"."public"."ducklake_table"',
    "COPY (SELECT 'x') TO 's3://{bucket}/evil.csv'",
    "COPY (SELECT 'x') TO 's3://{bucket}/tables/evil.csv'",
    "EXPORT DATABASE '{tmp}/exported'",
    "INSTALL httpfs",
    "FORCE INSTALL httpfs FROM 'http://127.0.0.1:9'",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA database_list",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM '/etc/hostname'",
    "SELECT * FROM read_parquet('s3://{bucket}/tables/**/*.parquet')",
    "WITH x AS (SELECT * FROM glob('/tmp/*')) SELECT * FROM x",
    "SELECT current_setting('s3_secret_access_key')",
    "SELECT path FROM duckdb_databases()",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM system.main.duckdb_settings()",
    "SELECT * FROM query('SELECT 1')",
    "SELECT (SELECT count(*) FROM postgres_query('__ducklake_metadata_lake', 'SELECT 1')) FROM clips",
    "DESCRIBE SELECT * FROM postgres_query('__ducklake_metadata_lake', 'SELECT 1')",
]


def test_egoclean_sql_on_the_shared_store_reaches_nothing_but_its_tables(lake, tmp_path, capsys):
    """Whatever it spells, a query on the shared store reads the lake's tables only, read-only: not the
    catalog database, not the bucket, not the machine, not the S3 key. The lake's tables still read."""
    import boto3

    st = store_of(lake)
    st.replace_clip(clip_info(CLIPS[1]), make_det(3000), "m")  # enough rows for Parquet files in the bucket
    pg = lake["url"][len("ducklake:postgres:"):]
    key = os.environ["AWS_SECRET_ACCESS_KEY"]
    for spelled in LAKE_ESCAPES:
        q = spelled.format(url=lake["url"], pg=pg, bucket=lake["bucket"], tmp=tmp_path)
        assert main(["sql", "--db", lake["url"], q]) == 2, q
        err = capsys.readouterr().err
        assert err.startswith("egoclean sql: error: query refused on ") and len(err.strip().splitlines()) == 1, err
        assert key not in err
    assert counts(st, CLIPS[1]) == (1, 2, 3000)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=lake["bucket"]).get("Contents", [])]
    assert not [k for k in keys if "evil" in k] and not (tmp_path / "exported").exists()
    import psycopg2

    with psycopg2.connect(pg) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'x'")
        assert cur.fetchone()[0] == 0
    for ok in ["SELECT clip_id, count(*) AS n FROM window_scores GROUP BY 1", "FROM clips",
               "WITH w AS (SELECT * FROM lake.main.window_scores) SELECT count(*) FROM w",
               "SELECT count(*) FROM range(3)", "SELECT * FROM detection_eval", "select COUNT(*) from \"Segments\""]:
        assert main(["sql", "--db", lake["url"], ok]) == 0, (ok, capsys.readouterr().err)
    assert "3000" in capsys.readouterr().out


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


def test_sql_on_the_shared_store_has_the_memory_limit_and_no_spill(lake):
    """The shared store's sandbox gets EGOCLEAN_SQL_MEMORY and no temporary folder too (set on its
    connection before the configuration is locked)."""
    st = Store(lake["url"], data_path=lake["data_path"], sql_memory="32MiB")
    st.replace_clip(clip_info(CLIPS[2]), make_det(60), "m")
    assert st.query_head("SELECT count(*) FROM window_scores", sandbox=True)[1] == [(60,)]
    big = ("SELECT count(DISTINCT (range * 7919)::VARCHAR || '-padding-padding') AS n FROM range(1000000)")
    with pytest.raises(QueryError, match="needs more memory than its limit of 32MiB .EGOCLEAN_SQL_MEMORY"):
        st.query_head(big, sandbox=True)
