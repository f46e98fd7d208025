"""egoclean.motion.steps: tracking a synthetic clip into Parquet, the store's trajectories row
and `poses` table of every clip's frames, the picture, and the facts the checks judge."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

from egoclean import synth
from egoclean.core import defaults
from egoclean.core.ids import ClipId
from egoclean.core.layout import ClipLayout, intrinsics_beside
from egoclean.motion import steps
from egoclean.motion.trajectory import Segment, Trajectory
from egoclean.cli import main
from egoclean.store import Store


def _traj(pos, quat=None, fps=30.0, metric=True, tracked=None):
    pos = np.asarray(pos, float)
    n = len(pos)
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)) if quat is None else np.asarray(quat, float)
    tr = np.ones(n, bool) if tracked is None else np.asarray(tracked)
    pos = np.where(tr[:, None], pos, np.nan)
    quat = np.where(tr[:, None], quat, np.nan)
    return Trajectory(np.arange(n) / fps, pos, quat, tr, np.where(tr, 0, -1).astype(np.int32),
                      np.zeros(n, np.int32), (Segment(0, 0, n - 1, metric, 1.0),), {})


def test_pose_problems_finds_non_finite_and_non_orthonormal_poses():
    good = _traj(np.cumsum(np.full((20, 3), 0.01), axis=0))
    assert steps.pose_problems(good) == []
    q = np.tile([0.0, 0.0, 0.0, 1.0], (20, 1))
    q[5] = [0.5, 0.0, 0.0, 1.0]  # not a unit quaternion: its matrix is not a rotation
    bad = _traj(np.zeros((20, 3)), q)
    assert any("not orthonormal" in p for p in steps.pose_problems(bad))
    nan = _traj(np.zeros((20, 3)))
    nan.position[3, 1] = np.inf
    assert any("non-finite" in p and "frame 3" in p for p in steps.pose_problems(nan))
    gap = _traj(np.zeros((20, 3)), tracked=np.arange(20) != 7)
    assert steps.pose_problems(gap) == []
    gap.position[7] = 0.0  # a pose invented inside the gap
    assert any("untracked" in p for p in steps.pose_problems(gap))


def test_motion_rates_bound_speed_on_metric_segments_and_turn_rate():
    fps = 30.0
    walk = _traj(np.c_[np.arange(60) * 1.2 / fps, np.zeros(60), np.full(60, 1.6)])  # 1.2 m/s
    r = steps.motion_rates(walk)
    assert r.max_speed == pytest.approx(1.2) and r.too_fast == 0 and r.too_fast_turns == 0
    jump = walk.position.copy()
    jump[30:] += [2.0, 0, 0]  # 2 m in one frame: 60 m/s
    r = steps.motion_rates(_traj(jump))
    assert r.too_fast == 1 and r.max_speed == pytest.approx(60 + 1.2)
    # not metric: the speed is in the clip's own unit, not judged
    r = steps.motion_rates(_traj(jump, metric=False))
    assert r.max_speed is None and r.too_fast == 0
    # a turn of 30 degrees in one frame: 900 deg/s
    ang = np.radians(np.r_[np.zeros(10), np.full(10, 30.0)])
    quat = np.c_[np.zeros(20), np.zeros(20), np.sin(ang / 2), np.cos(ang / 2)]
    r = steps.motion_rates(_traj(np.zeros((20, 3)), quat))
    assert r.too_fast_turns == 1 and r.max_angular_rate_deg == pytest.approx(900, rel=1e-6)
    assert defaults.HEAD_MAX_ANGULAR_RATE_DEG_S < 900


def test_plot_writes_a_png_with_its_title(tmp_path):
    from PIL import Image

    t = np.linspace(0, 2 * math.pi, 90)
    traj = _traj(np.c_[np.cos(t), np.sin(t), 1.6 + 0.02 * np.sin(5 * t)], tracked=np.arange(90) % 30 != 29)
    parquet = traj.save_parquet(tmp_path / "t.parquet")
    png = steps.draw_path(parquet, tmp_path / "t.png", "clip - camera path", spans=[(1.0, 2.0)])
    img = Image.open(png)
    assert img.format == "PNG" and img.info.get("Title") == "clip - camera path" and img.width > 800


@pytest.fixture(scope="module")
def tracked_clips(tmp_path_factory):
    """Two short synthetic clips (one walking down the aisle), rectified and tracked into a data root."""
    from egoclean.media.rectify import rectify_file

    base = tmp_path_factory.mktemp("motion")
    cfg = synth.SynthConfig(clips=2, duration_sec=20.0, width=320, height=180, fps=15.0, seed=3)
    summary = synth.write_dataset(base / "source", cfg)
    root = base / "data"
    intr = Path(summary["intrinsics"][0])
    out = {}
    for clip in summary["clips"]:
        key = clip["clip_id"]
        layout = ClipLayout.under(root, ClipId.parse(key))
        Path(layout.dir).mkdir(parents=True)
        raw = base / f"{key}.mp4"
        with tarfile.open(clip["shard"]) as tar:
            raw.write_bytes(tar.extractfile(f"{key}.mp4").read())
        rectify_file(raw, intr, layout.rectified, progress=False)
        camera = intrinsics_beside(layout.rectified)  # what rectify_file writes beside the video
        out[key] = (steps.track(key, layout.rectified, camera, layout.trajectory), clip)
    return {"root": root, "clips": out, "base": base}


def test_track_saves_the_poses_and_their_summary(tracked_clips):
    for key, (tr, clip) in tracked_clips["clips"].items():
        traj = Trajectory.load_parquet(tr.parquet)
        assert len(traj) == clip["n_frames"] == 300 and tr.fps == pytest.approx(15.0)
        assert tr.summary == traj.summary() and tr.summary["tracked_fraction"] > 0.5
        assert tr.row()["clip_id"] == key and tr.row()["path"] == tr.parquet
        assert steps.pose_problems(traj) == []
        assert tr.seconds > 0 and tr.frames_per_sec > 0


def test_store_row_and_one_sql_table_of_every_clips_poses(tracked_clips, tmp_path):
    db = Store(tmp_path / "db.duckdb")
    for tr, _ in tracked_clips["clips"].values():
        db.replace_trajectory(tr.row(), tr.poses)
        db.replace_trajectory(tr.row(), tr.poses)  # again: still one row, one set of poses
    keys = sorted(tracked_clips["clips"])
    cols, rows = db.query("SELECT clip_id, frames, tracked_fraction, segments, metric, path_length "
                          "FROM trajectories ORDER BY clip_id")
    assert [r[0] for r in rows] == keys
    for r in rows:
        s = tracked_clips["clips"][r[0]][0].summary
        assert r[1:] == (s["frames"], s["tracked_fraction"], s["segments"], s["metric"], s["path_length"])
    # the poses table holds every clip's frames, the same as its Parquet file
    _, rows = db.query("SELECT clip_id, count(*), count(*) FILTER (WHERE tracked), max(frame) FROM poses "
                       "GROUP BY clip_id ORDER BY clip_id")
    assert [r[0] for r in rows] == keys
    for key, n, tracked, last in rows:
        s = tracked_clips["clips"][key][0].summary
        assert (n, tracked, last) == (s["frames"], s["tracked_frames"], s["frames"] - 1)
    # a query joining the two: the height of the camera per clip
    _, rows = db.query("SELECT p.clip_id, avg(p.z) FROM poses p JOIN trajectories t USING (clip_id) "
                       "WHERE p.tracked GROUP BY p.clip_id")
    assert len(rows) == 2 and all(math.isfinite(r[1]) for r in rows)
    assert db.trajectory(keys[0])["frames"] == 300
    for key in keys:
        _, rows = db.query("SELECT x, y, z, qx, qy, qz, qw FROM poses WHERE clip_id = ? ORDER BY frame", [key])
        traj = Trajectory.load_parquet(tracked_clips["clips"][key][0].parquet)
        got = np.array(rows, dtype=float)  # NULL (untracked) -> NaN, as in the file
        assert np.array_equal(got, np.c_[traj.position, traj.quat], equal_nan=True)


def test_the_aisle_walk_is_tracked_against_the_true_path(tracked_clips):
    """On the clip whose planted span walks down the aisle, the tracked path aligns with the
    true one (per segment, Sim(3)) to within a few percent of its length."""
    from egoclean.motion.evaluation import ate

    for tr, clip in tracked_clips["clips"].values():
        if not any(s["kind"] == "aisle" for s in clip["planted"]):
            continue
        res = ate(Trajectory.load_parquet(tr.parquet), Trajectory.load_tum(clip["trajectory"]))
        assert res.path_length > 5.0  # metres walked in the true path
        assert res.rmse < 0.05 * res.path_length, json.dumps(res.__dict__, default=str)
        return
    pytest.fail("no clip with an aisle span")


def test_the_readme_pose_queries_run(tracked_clips, tmp_path):
    """Every statement of the README's camera-pose SQL block runs through `egoclean sql` (no
    --allow-files) on a store holding tracked clips."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("### Camera poses", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    statements = [s.strip() for s in block.split(";") if s.strip()]
    assert len(statements) == 3
    db = Store(tmp_path / "db.duckdb")
    for tr, _ in tracked_clips["clips"].values():
        db.replace_trajectory(tr.row(), tr.poses)
    key = sorted(tracked_clips["clips"])[0]
    cols, rows = db.query(statements[0].replace("factory001_worker001_00000", key))
    assert cols[:2] == ["frame", "t"] and len(rows) == tracked_clips["clips"][key][0].summary["tracked_frames"]
    for sql in statements:
        assert main(["sql", "--db", str(tmp_path / "db.duckdb"), sql]) == 0, sql
