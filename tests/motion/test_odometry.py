"""Visual odometry on rendered clips with known motion: the hard cases of head-mounted video.

Frames come from tests/support/room.py (a ray-cast textured room, tiny sizes: CPU is scarce);
accuracy bounds here are loose sanity bounds at these sizes, the figures at the working
resolution are in benchmarks/bench_trajectory.py and docs/PERFORMANCE.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from egoclean.motion.evaluation import align_sim3, ate, rpe
from egoclean.motion.odometry import Odometry, VOConfig, fit_floor, track_frames
from egoclean.motion.trajectory import Trajectory, quat_to_matrix
from tests.support.room import scenario, with_hands


def _tilt_error_deg(tr: Trajectory, gt: Trajectory, seg: int = 0) -> float:
    """Median angle between the estimated and the true world up, seen from the camera."""
    m = tr.segment == seg
    ze = np.einsum("nji,j->ni", quat_to_matrix(tr.quat[m]), [0, 0, 1.0])
    zg = np.einsum("nji,j->ni", quat_to_matrix(gt.quat[m]), [0, 0, 1.0])
    return float(np.degrees(np.median(np.arccos(np.clip((ze * zg).sum(1), -1, 1)))))


def _check_poses(tr: Trajectory) -> None:
    """Tracked poses finite with unit quaternions; untracked frames carry no pose at all."""
    t = tr.tracked
    assert np.isfinite(tr.position[t]).all() and np.allclose(np.linalg.norm(tr.quat[t], axis=1), 1.0)
    assert np.isnan(tr.position[~t]).all() and (tr.segment[~t] == -1).all()
    for s in tr.segments:
        assert (tr.segment[s.first:s.last + 1][tr.tracked[s.first:s.last + 1]] == s.id).all()


def test_walk_with_depth_is_tracked_accurately_and_metric():
    frames, gt, cam = scenario("walk", 60, 320)
    tr = track_frames(frames, cam, 30.0)
    _check_poses(tr)
    assert tr.tracked_fraction >= 0.95 and len(tr.segments) == 1
    a = ate(tr, gt)
    assert a.percent < 3.0, a
    assert rpe(tr, gt, delta=10).rot_rmse_deg < 1.0
    # scale from the floor and the camera height: metric within 15 %, z up within 8 degrees (5.4 measured)
    assert tr.segments[0].metric
    s, _, _ = align_sim3(tr.position[tr.tracked], gt.position[tr.tracked])
    assert abs(s - 1.0) < 0.15, s
    assert _tilt_error_deg(tr, gt) < 8.0
    # the world is the first frame: it sits at the origin
    assert np.allclose(tr.position[0], 0.0)


def test_pure_rotation_keeps_the_position_and_measures_the_rotation():
    frames, gt, cam = scenario("turn", 45, 240)
    tr = track_frames(frames, cam, 30.0)
    _check_poses(tr)
    assert tr.tracked.all() and len(tr.segments) == 1
    # no parallax, no translation: the position never moves (the essential matrix would invent one)
    assert np.abs(tr.position).max() == 0.0
    assert tr.meta["statuses"].get("rotation", 0) >= 40
    r = rpe(tr, gt, delta=10)
    assert r.rot_rmse_deg < 0.5, r
    # the head turned by tens of degrees: the measured rotation follows it
    total = np.degrees(np.arccos(np.clip(2 * np.sum(tr.quat[0] * tr.quat[-1]) ** 2 - 1, -1, 1)))
    true = np.degrees(np.arccos(np.clip(2 * np.sum(gt.quat[0] * gt.quat[-1]) ** 2 - 1, -1, 1)))
    assert true > 20 and abs(total - true) < 1.0


def test_static_camera_does_not_drift():
    frames, _, cam = scenario("static", 30, 240)
    tr = track_frames(frames, cam, 30.0)
    assert tr.tracked.all()
    assert tr.path_length() == 0.0
    angles = np.degrees(2 * np.arccos(np.clip(np.abs(tr.quat[:, 3]), 0, 1)))
    assert angles.max() < 0.1


def test_hands_moving_in_the_lower_middle_are_rejected():
    frames, gt, cam = scenario("walk", 60, 320)
    tr = track_frames(with_hands(frames), cam, 30.0)
    _check_poses(tr)
    assert tr.tracked_fraction >= 0.95
    assert ate(tr, gt).percent < 4.0


def test_fast_motion_with_blur():
    frames, gt, cam = scenario("fast", 40, 240, blur=5.0)
    tr = track_frames(frames, cam, 30.0)
    _check_poses(tr)
    assert tr.tracked_fraction >= 0.9
    assert ate(tr, gt).percent < 5.0


def test_low_texture_gives_no_pose():
    frames, _, cam = scenario("walk", 8, 240, flat=True)
    tr = track_frames(frames, cam, 30.0)
    assert not tr.tracked.any() and tr.segments == ()
    assert tr.meta["statuses"] == {"untextured": 8}


def test_black_and_frozen_stretches_are_gaps():
    frames, gt, cam = scenario("walk", 60, 320)
    clip = list(frames)
    black = np.zeros_like(clip[0])
    for j in range(20, 24):
        clip[j] = black
    for j in range(40, 43):
        clip[j] = clip[39]  # a decoder repeating the last picture
    tr = track_frames(clip, cam, 30.0)
    _check_poses(tr)
    gaps = list(range(20, 24)) + list(range(40, 43))
    assert not tr.tracked[gaps].any()
    assert tr.tracked[[j for j in range(60) if j not in gaps]].mean() >= 0.95
    assert tr.meta["statuses"]["black"] == 4 and tr.meta["statuses"]["frozen"] == 3
    assert ate(tr, gt).percent < 4.0


def test_lost_tracking_starts_a_new_segment_and_never_bridges_the_cut():
    walk, _, cam = scenario("walk", 60, 320)
    turn, _, _ = scenario("turn", 45, 320)
    # a cut to another view (the turn clip upside down: the camera rolled over): nothing to track across
    clip = list(walk[:30]) + [np.ascontiguousarray(f[::-1, ::-1]) for f in turn[:30]]
    tr = track_frames(clip, cam, 30.0)
    _check_poses(tr)
    assert len(tr.segments) >= 2
    assert all(not (s.first < 30 <= s.last) for s in tr.segments), tr.segments
    assert tr.tracked[:30].mean() >= 0.95 and tr.tracked[31:].mean() >= 0.9
    # each segment's world is its own first frame
    for s in tr.segments:
        assert np.allclose(tr.position[s.first], 0.0)


def test_same_frames_same_bytes(tmp_path):
    frames, _, cam = scenario("walk", 60, 320)
    a = track_frames(frames[:30], cam, 30.0)
    b = track_frames(iter(frames[:30]), cam, 30.0)
    a.save_parquet(tmp_path / "a.parquet")
    b.save_parquet(tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_state_stays_bounded_while_streaming():
    frames, _, cam = scenario("walk", 60, 320)
    cfg = VOConfig()
    vo = Odometry(cam, 30.0, cfg)
    for f in frames:
        vo.step(f)
        assert len(vo.keyframes) <= cfg.ba_window
        assert len(vo.landmarks) <= len(vo.ids) <= cfg.max_features
        assert all(len(s.floor_pts) <= cfg.floor_sample for s in vo.segments)


def test_floor_fit_prefers_the_floor_to_a_bench_top():
    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(-3, 3, (300, 2)), np.zeros(300)]
    bench = np.c_[rng.uniform(-1, 1, (400, 2)), np.full(400, 0.9)]  # more points, but higher
    wall = np.c_[rng.uniform(-3, 3, 200), np.full(200, 3.0), rng.uniform(0, 3, 200)]
    centres = np.c_[rng.uniform(-0.5, 0.5, (10, 2)), np.full(10, 1.6)]
    ups = np.tile([0.1, 0.0, 1.0], (10, 1))
    n, h = fit_floor(np.r_[floor, bench, wall], centres, ups)
    assert n[2] > 0.999 and h == pytest.approx(1.6, abs=0.02)
    # only the bench seen: it is taken for the floor (documented), never a wall
    n, h = fit_floor(np.r_[bench, wall], centres, ups)
    assert n[2] > 0.999 and h == pytest.approx(0.7, abs=0.02)
    assert fit_floor(wall, centres, ups) is None


def test_floor_check_needs_a_path_along_the_plane():
    rng = np.random.default_rng(0)
    bench = np.c_[rng.uniform(-1, 1, (400, 2)), np.full(400, 0.9)]
    wall = np.c_[rng.uniform(-3, 3, 200), np.full(200, 3.0), rng.uniform(0, 3, 200)]
    ups = np.tile([0.1, 0.0, 1.0], (10, 1))
    check = {"max_path_slope_deg": 8.0, "min_travel": 0.1}
    walked = np.c_[np.zeros(10), np.linspace(-0.5, 0.5, 10), np.full(10, 1.6)]
    n, h = fit_floor(np.r_[bench, wall], walked, ups, **check)
    assert n[2] > 0.999 and h == pytest.approx(0.7, abs=0.02)
    # the head stood still (2 cm of sway, less than 0.1 x 0.7 m): nothing shows the plane is the floor
    still = np.c_[np.zeros(10), np.linspace(-0.01, 0.01, 10), np.full(10, 1.6)]
    assert fit_floor(np.r_[bench, wall], still, ups, **check) is None
    # a path climbing 15 degrees against the plane: the plane is not the one walked on
    climb = np.c_[np.zeros(10), np.linspace(-0.5, 0.5, 10), 1.6 + np.linspace(-0.5, 0.5, 10) * np.tan(np.radians(15))]
    assert fit_floor(np.r_[bench, wall], climb, ups, **check) is None
    assert fit_floor(np.r_[bench, wall], climb, ups) is not None  # the check is off by default


def test_a_bench_only_view_is_not_claimed_metric():
    # at the bench only the bench top is seen: taken for the floor it gave a scale 3.4x the true
    # one (path length ratio, before the floor check); now the segment keeps its own unit
    frames, gt, cam = scenario("work", 60, 320)
    tr = track_frames(frames, cam, 30.0)
    assert tr.tracked_fraction >= 0.95 and len(tr.segments) == 1
    seg = tr.segments[0]
    if seg.metric:
        assert abs(tr.path_length() / gt.path_length() - 1.0) < 0.15
    else:
        assert seg.scale == 1.0


@pytest.mark.parametrize("field, value, says", [
    ("ba_window", 1, "must be an integer >= 2"),
    ("ba_iterations", 0, "must be an integer >= 1"),
    ("camera_height_m", 0.0, "must be a finite number > 0.0"),
    ("camera_height_m", float("nan"), "must be a finite number > 0.0"),
    ("keyframe_track_ratio", 1.5, "must be a finite number > 0.0 and <= 1.0"),
    ("min_parallax_deg", -1.0, "must be a finite number > 0.0 and <= 30.0"),
    ("min_triangulation_deg", 45.0, "must be a finite number > 0.0 and <= 30.0"),
    ("klt_levels", 2.5, "must be an integer >= 0 and <= 8"),
    ("max_features", True, "must be an integer >= 10"),
    ("long_side", "640", "must be an integer >= 32"),
    ("black_level", 300.0, "must be a finite number >= 0.0 and <= 255.0"),
    ("floor_max_path_slope_deg", 0.0, "must be a finite number > 0.0 and <= 90.0"),
    ("floor_min_travel", -0.1, "must be a finite number >= 0.0"),
])
def test_a_bad_vo_setting_is_a_one_line_error_naming_it_and_its_range(field, value, says):
    from egoclean.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as e:
        VOConfig(**{field: value})
    msg = str(e.value)
    assert msg.startswith(f"VOConfig.{field}=") and says in msg and "\n" not in msg, msg


def test_every_vo_setting_has_a_range_and_the_defaults_are_in_it():
    import dataclasses

    from egoclean.core.errors import InvalidInputError
    from egoclean.motion.odometry import _VO_RANGES

    assert set(_VO_RANGES) == {f.name for f in dataclasses.fields(VOConfig)}
    VOConfig()  # the defaults pass
    # settings that only make sense together: the feature budget must cover every minimum count
    with pytest.raises(InvalidInputError, match=r"^VOConfig.max_features=30: must be >= .*\(40\)$"):
        VOConfig(max_features=30)
