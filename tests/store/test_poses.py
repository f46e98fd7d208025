"""The store's `poses` table: every frame's camera pose beside the clip's `trajectories` row, the
same in the embedded DuckDB file and the shared DuckLake (real PostgreSQL catalog, real S3 API
server), queried through `egoclean sql` without file access; and an older store whose `poses` was
a view over the trajectory files, upgraded in place."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pytest

from egoclean.cli import main
from egoclean.core.errors import InvalidInputError
from egoclean.motion.steps import Tracked
from egoclean.motion.trajectory import Segment, Trajectory
from egoclean.store import Store
from egoclean.store.schema import SCHEMA_TAG
from tests.store.test_ducklake import lake  # noqa: F401  (a fresh DuckLake: PostgreSQL catalog, S3 bucket)
from tests.store.test_store import clip_info, make_det

ROOT = Path(__file__).resolve().parents[2]
README_CLIP = "factory001_worker001_00000"  # the clip the README's first query names
OTHER = "factory002_worker003_00007"
FPS = 30.0


def walk(n: int, seed: int, gap: tuple[int, int] | None = None) -> Trajectory:
    """A head-height walk with small turns; frames in `gap` untracked (NaN pose, segment -1),
    the path after it a second segment that is not metric."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    pos = np.c_[np.cumsum(rng.normal(0.01, 0.002, n)), np.cumsum(rng.normal(0, 0.002, n)),
                1.6 + 0.02 * np.sin(t)]
    yaw = np.cumsum(rng.normal(0, 0.002, n))
    quat = np.c_[np.zeros(n), np.zeros(n), np.sin(yaw / 2), np.cos(yaw / 2)]
    tracked, seg = np.ones(n, bool), np.zeros(n, np.int32)
    segments = (Segment(0, 0, n - 1, True, 1.0),)
    if gap:
        a, b = gap
        tracked[a:b], seg[a:b], seg[b:] = False, -1, 1
        segments = (Segment(0, 0, a - 1, True, 1.0), Segment(1, b, n - 1, False, 1.0))
    pos = np.where(tracked[:, None], pos, np.nan)
    quat = np.where(tracked[:, None], quat, np.nan)
    return Trajectory(t, pos, quat, tracked, seg, rng.integers(50, 200, n).astype(np.int32), segments, {})


def row_of(clip: str, traj: Trajectory, root: str) -> dict:
    """The clip's trajectories row as camera_trajectory writes it (its Parquet under the data root `root`)."""
    f, w = clip.split("_")[:2]
    path = f"{root}/factory_{f[-3:]}/worker_{w[-3:]}/{clip}/{clip}_trajectory.parquet"
    return Tracked(clip, path, traj.summary(), FPS, 1.0).row()


def readme_statements() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Camera poses", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    return [s.strip() for s in block.split(";") if s.strip()]


def table_rows(printed: str) -> list[list[str]]:
    """The cells of each line of a table `egoclean sql` printed (header first)."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in printed.splitlines() if line.startswith("│")]


@pytest.fixture(params=["embedded", "shared"])
def where(request, tmp_path):
    """A store and the data root its clips' files are under: a DuckDB file with a local root, or the
    shared DuckLake with an s3:// root (the cluster's configuration)."""
    if request.param == "embedded":
        return {"db": str(tmp_path / "egoclean.duckdb"), "store": Store(tmp_path / "egoclean.duckdb"),
                "root": str(tmp_path / "data")}
    lk = request.getfixturevalue("lake")
    return {"db": lk["url"], "store": Store(lk["url"], data_path=lk["data_path"]),
            "root": f"s3://{lk['bucket']}/data"}


def test_the_readme_pose_queries_run_through_egoclean_sql(where, capsys):
    """Each README statement runs through `egoclean sql` (sandboxed, no --allow-files) on either store,
    and says what the poses written say."""
    st = where["store"]
    trajs = {README_CLIP: walk(240, seed=1, gap=(100, 110)), OTHER: walk(150, seed=2)}
    for clip, traj in trajs.items():
        n = math.ceil(len(traj) / FPS)
        st.replace_clip(clip_info(clip, n), make_det(n, spans=((2.0, 3.0),), work=((0.0, 2.0), (3.0, 8.0))), "m")
        st.replace_trajectory(row_of(clip, traj, where["root"]), traj.to_table())
    one, per_worker, height = readme_statements()

    assert main(["sql", "--db", where["db"], "--max-rows", "1000", one]) == 0
    header, *body = table_rows(capsys.readouterr().out)
    traj = trajs[README_CLIP]
    assert header == ["frame", "t", "x", "y", "z", "qx", "qy", "qz", "qw"]
    assert [int(r[0]) for r in body] == list(np.flatnonzero(traj.tracked))  # the gap's frames are not there
    _, rows = st.query(one)
    got = np.array([r[2:] for r in rows])
    want = np.c_[traj.position, traj.quat][traj.tracked]
    assert np.array_equal(got, want)  # exact: the doubles went in from Arrow as they are

    assert main(["sql", "--db", where["db"], per_worker]) == 0
    # the clip with a gap is not metric after it: only the other clip's worker is listed
    assert table_rows(capsys.readouterr().out) == [
        ["factory", "worker", "metres", "tracked"],
        ["factory_002", "worker_003", str(round(trajs[OTHER].path_length(), 1)), "1"]]

    assert main(["sql", "--db", where["db"], height]) == 0
    out = capsys.readouterr().out
    _, rows = st.query(height)
    assert sorted(r[0] for r in rows) == sorted(trajs) and all(r[1] == pytest.approx(1.6, abs=0.03) for r in rows)
    assert README_CLIP in out and OTHER in out
    # untracked frames hold no pose at all (NULL, not NaN): aggregates over every row stay finite
    _, rows = st.query("SELECT count(*), count(x), avg(z) FROM poses WHERE clip_id = ?", [README_CLIP])
    assert rows[0][:2] == (240, 230) and math.isfinite(rows[0][2])


def test_rematerializing_a_clip_replaces_its_poses(where):
    """A clip written again (other length, other path) has exactly its new rows; the other clip is untouched."""
    st = where["store"]
    first, again, other = walk(200, seed=3), walk(120, seed=4, gap=(50, 60)), walk(90, seed=5)
    st.replace_trajectory(row_of(README_CLIP, first, where["root"]), first.to_table())
    st.replace_trajectory(row_of(OTHER, other, where["root"]), other.to_table())
    st.replace_trajectory(row_of(README_CLIP, first, where["root"]), first.to_table())  # the same run again
    st.replace_trajectory(row_of(README_CLIP, again, where["root"]), again.to_table())
    _, rows = st.query("SELECT clip_id, count(*), count(DISTINCT frame), max(frame), count(*) FILTER (WHERE tracked)"
                       " FROM poses GROUP BY 1 ORDER BY 1")
    assert rows == [(README_CLIP, 120, 120, 119, 110), (OTHER, 90, 90, 89, 90)]
    _, rows = st.query("SELECT frame, t, x, y, z, qx, qy, qz, qw, tracked, segment, inliers FROM poses "
                       "WHERE clip_id = ? ORDER BY frame", [README_CLIP])
    back = Trajectory(np.array([r[1] for r in rows]), np.array([r[2:5] for r in rows], float),
                      np.array([r[5:9] for r in rows], float), np.array([r[9] for r in rows]),
                      np.array([r[10] for r in rows]), np.array([r[11] for r in rows]), again.segments, {})
    assert back == again  # NULL poses read back as NaN: the very trajectory written
    assert st.trajectory(README_CLIP)["frames"] == 120
    st.delete_clip(README_CLIP)  # a deleted clip leaves no summary and no pose behind; the other clip keeps its own
    _, rows = st.query("SELECT clip_id, count(*) FROM poses GROUP BY 1")
    assert rows == [(OTHER, 90)] and st.trajectory(README_CLIP) is None and st.trajectory(OTHER)["frames"] == 90


def test_poses_that_disagree_with_the_summary_are_refused_and_nothing_changes(tmp_path):
    st = Store(tmp_path / "egoclean.duckdb")
    good = walk(60, seed=6)
    st.replace_trajectory(row_of(OTHER, good, str(tmp_path)), good.to_table())
    short = walk(59, seed=7)
    with pytest.raises(InvalidInputError, match=f"replace_trajectory {OTHER}: 59 pose rows for a summary of 60"):
        st.replace_trajectory(row_of(OTHER, good, str(tmp_path)), short.to_table())
    with pytest.raises(InvalidInputError, match="lack column.*qw"):
        st.replace_trajectory(row_of(OTHER, good, str(tmp_path)), good.to_table().drop(["qw"]))
    _, rows = st.query("SELECT count(*), sum(inliers) FROM poses")
    assert rows == [(60, int(good.inliers.sum()))]


def test_a_store_whose_poses_was_the_view_gets_the_table_filled_from_its_files(tmp_path, caplog):
    """A store written before `poses` was a table (its view read_parquet over a local data root) is
    upgraded by the next write: the view becomes the table, filled from each clip's local file; a
    clip whose file is not local is named in a warning."""
    db = tmp_path / "egoclean.duckdb"
    st = Store(db)
    st.init()
    old = walk(80, seed=8, gap=(20, 25))
    local = old.save_parquet(tmp_path / "data" / f"{README_CLIP}_trajectory.parquet")
    remote = Tracked(OTHER, f"s3://b/data/{OTHER}_trajectory.parquet", walk(30, seed=9).summary(), FPS, 1.0)
    con = duckdb.connect(str(db))
    # what the previous version left: no poses table, the view over the files, its schema tag
    con.execute("DROP TABLE poses")
    con.execute(f"CREATE VIEW poses AS SELECT 'x' AS clip_id, * FROM read_parquet('{tmp_path}/data/*.parquet')")
    con.execute("COMMENT ON VIEW detection_eval IS 'egoclean schema 0123456789abcdef'")
    for r in (Tracked(README_CLIP, str(local), old.summary(), FPS, 1.0).row(), remote.row()):
        con.execute("INSERT INTO trajectories VALUES (?, 'factory_001', 'worker_001', ?, ?, ?, ?, ?, ?, ?, ?, now())",
                    [r["clip_id"], r["frames"], r["tracked_frames"], r["tracked_fraction"], r["segments"],
                     r["metric"], r["path_length"], r["fps"], r["path"]])
    con.close()
    with caplog.at_level("WARNING"):
        st.replace_clip(clip_info("factory003_worker001_00001"), make_det(), "m")  # any write upgrades it
    assert "1 clip(s) of trajectories have no local trajectory file" in caplog.text and OTHER in caplog.text
    con = duckdb.connect(str(db), read_only=True)
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'poses'").fetchone()
    tag = con.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'detection_eval'").fetchone()
    con.close()
    assert kind == ("BASE TABLE",) and tag == (SCHEMA_TAG,)
    _, rows = st.query("SELECT clip_id, count(*), count(x) FROM poses GROUP BY 1")
    assert rows == [(README_CLIP, 80, 75)]
    # and from now on a write replaces the clip's rows as in a new store
    st.replace_trajectory(row_of(README_CLIP, old, str(tmp_path)), old.to_table())
    assert st.query("SELECT count(*) FROM poses")[1] == [(80,)]


def scale_compaction_statements() -> list[str]:
    doc = (ROOT / "docs" / "SCALE.md").read_text()
    block = doc.split("### Camera poses at dataset scale", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    code = "\n".join(line for line in block.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


def test_the_lakes_one_file_per_clip_is_merged_by_the_documented_maintenance(lake):  # noqa: F811
    """On the shared store each clip's poses are one Parquet object; a re-materialized clip's old one
    leaves the live table. The maintenance docs/SCALE.md shows (run as it is there) merges the live
    files into one without changing a row; with no retention the replaced objects leave the bucket."""
    import boto3

    from egoclean.store import ducklake

    st = Store(lake["url"], data_path=lake["data_path"])
    trajs = {f"factory001_worker001_{i:05d}": walk(300, seed=20 + i) for i in range(5)}
    for clip, traj in trajs.items():
        st.replace_trajectory(row_of(clip, traj, f"s3://{lake['bucket']}/data"), traj.to_table())
    again = trajs["factory001_worker001_00001"] = walk(200, seed=30)  # one clip materialized again
    st.replace_trajectory(row_of("factory001_worker001_00001", again, f"s3://{lake['bucket']}/data"), again.to_table())

    def objects() -> list[str]:
        out = boto3.client("s3").list_objects_v2(Bucket=lake["bucket"], Prefix="tables/main/poses/")
        return [o["Key"] for o in out.get("Contents", [])]

    con = ducklake.connect(lake["url"])
    try:
        def live() -> int:
            return con.execute("SELECT count(*) FROM ducklake_list_files('lake', 'poses')").fetchone()[0]

        rows = con.execute("SELECT * FROM poses ORDER BY clip_id, frame").fetchall()
        assert (live(), len(objects())) == (5, 6)  # one object per write; the replaced one still stored
        statements = scale_compaction_statements()
        assert [s.split("(")[0] for s in statements] == ["CALL ducklake_merge_adjacent_files",
                                                         "CALL ducklake_expire_snapshots",
                                                         "CALL ducklake_cleanup_old_files"]
        for sql in statements:
            con.execute(sql)
        assert live() == 1 and con.execute("SELECT * FROM poses ORDER BY clip_id, frame").fetchall() == rows
        assert len(objects()) == 7  # within the retention nothing is deleted (readers may still use them)
        for sql in statements[1:]:
            con.execute(sql.replace("INTERVAL 7 DAY", "INTERVAL 0 DAY"))
        assert len(objects()) == 1
    finally:
        con.close()
    _, back = st.query("SELECT clip_id, count(*) FROM poses GROUP BY 1 ORDER BY 1")
    assert back == [(c, len(t)) for c, t in sorted(trajs.items())]
