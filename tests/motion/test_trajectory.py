"""Trajectory table, its Parquet and TUM files, and the pinhole camera reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoclean.core.errors import IntrinsicsError
from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics
from egoclean.motion.trajectory import (
    PinholeCamera, Segment, Trajectory, TrajectoryError, matrix_to_quat, quat_to_matrix,
)


def _trajectory(n: int = 12) -> Trajectory:
    rng = np.random.default_rng(3)
    t = np.arange(n) / 30.0
    pos = np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0)
    quat = Rotation.from_rotvec(rng.normal(0, 0.2, (n, 3))).as_quat()
    tracked = np.ones(n, bool)
    tracked[5:7] = False  # a gap between two segments
    seg = np.where(np.arange(n) < 5, 0, 1).astype(np.int32)
    seg[~tracked] = -1
    pos[~tracked] = np.nan
    quat[~tracked] = np.nan
    segments = (Segment(0, 0, 4, True, 0.8), Segment(1, 7, n - 1, False, 1.0))
    return Trajectory(t, pos, quat, tracked, seg, np.arange(n, dtype=np.int32) * 10, segments,
                      {"camera_height_m": 1.6})


def test_parquet_round_trip_is_exact_and_deterministic(tmp_path):
    tr = _trajectory()
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    tr.save_parquet(a)
    tr.save_parquet(b)
    assert a.read_bytes() == b.read_bytes()
    back = Trajectory.load_parquet(a)
    assert back == tr
    assert back.segments[0].metric and not back.segments[1].metric
    assert np.isnan(back.position[5]).all() and back.segment[5] == -1
    assert back.meta == {"camera_height_m": 1.6}


def test_tum_holds_tracked_frames_only(tmp_path):
    tr = _trajectory()
    p = tr.save_tum(tmp_path / "t.txt")
    lines = p.read_text().splitlines()
    assert len(lines) == tr.tracked.sum() == 10
    assert len(lines[0].split()) == 8
    back = Trajectory.load_tum(p)
    np.testing.assert_allclose(back.t, tr.t[tr.tracked], atol=1e-6)
    np.testing.assert_allclose(back.position, tr.position[tr.tracked], atol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(back.quat * tr.quat[tr.tracked], 1)), 1.0, atol=1e-7)


@pytest.mark.parametrize("text, problem", [
    ("0 1 2 3 0 0 0\n", "line 1 is not 8"),
    ("0 1 2 3 0 0 0 1\n0 1 2 3 0 0 0 1\n", "timestamps must increase"),
    ("0 1 2 3 0 0 0 2\n", "not unit length"),
    ("0 1 2 nan 0 0 0 1\n", "line 1 is not 8 finite"),
])
def test_bad_tum_is_one_line_error(tmp_path, text, problem):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(TrajectoryError, match=problem) as e:
        Trajectory.load_tum(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_bad_parquet_is_one_line_error(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"not parquet")
    with pytest.raises(TrajectoryError, match="not a readable Parquet"):
        Trajectory.load_parquet(p)
    with pytest.raises(TrajectoryError, match="file not found"):
        Trajectory.load_parquet(tmp_path / "none.parquet")


def test_shapes_and_untracked_rules_are_checked():
    tr = _trajectory()
    with pytest.raises(TrajectoryError, match="shape"):
        Trajectory(tr.t, tr.position[:-1], tr.quat, tr.tracked, tr.segment, tr.inliers)
    pos = tr.position.copy()
    pos[0] = np.nan
    with pytest.raises(TrajectoryError, match="non-finite pose"):
        Trajectory(tr.t, pos, tr.quat, tr.tracked, tr.segment, tr.inliers)
    seg = tr.segment.copy()
    seg[5] = 0
    with pytest.raises(TrajectoryError, match="segment id"):
        Trajectory(tr.t, tr.position, tr.quat, tr.tracked, seg, tr.inliers)


def test_summary_and_path_length_skip_gaps():
    n = 6
    pos = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [np.nan] * 3, [10, 0, 0], [10, 1, 0]], float)
    quat = np.tile([0, 0, 0, 1.0], (n, 1))
    quat[3] = np.nan
    tracked = np.array([1, 1, 1, 0, 1, 1], bool)
    seg = np.array([0, 0, 0, -1, 1, 1], np.int32)
    tr = Trajectory(np.arange(n) / 10, pos, quat, tracked, seg, np.zeros(n, np.int32),
                    (Segment(0, 0, 2, True, 1.0), Segment(1, 4, 5, True, 1.0)))
    s = tr.summary()
    assert s["path_length"] == 3.0  # the jump across the gap is not a path
    assert s["tracked_fraction"] == pytest.approx(5 / 6, abs=1e-6) and s["segments"] == 2 and s["metric"]


def test_quaternion_helpers_agree_with_scipy():
    r = Rotation.from_rotvec(np.random.default_rng(0).normal(0, 1, (20, 3)))
    np.testing.assert_allclose(quat_to_matrix(r.as_quat()), r.as_matrix(), atol=1e-12)
    q = matrix_to_quat(r.as_matrix())
    assert np.all(q[:, 3] >= 0)
    np.testing.assert_allclose(np.abs(np.sum(q * r.as_quat(), 1)), 1.0, atol=1e-12)


# -- pinhole camera -------------------------------------------------------------------------

def test_reads_the_json_rectify_writes(tmp_path):
    fe = FisheyeIntrinsics(640, 480, 300.0, 300.0, 320.0, 240.0, 0.05, -0.01, 0.002, -0.0005)
    rect = rectified_intrinsics(fe)
    p = rect.save(tmp_path / "clip_intrinsics.json")
    cam = PinholeCamera.load(p)
    assert cam.size == (rect.out_width, rect.out_height)
    np.testing.assert_allclose(cam.K, rect.K_new)


def test_reads_the_minimal_form_and_camera_string(tmp_path):
    p = tmp_path / "cam.json"
    p.write_text(json.dumps({"model": "pinhole", "image_width": 320, "image_height": 240,
                             "fx": 200, "fy": 201, "cx": 160, "cy": 120}))
    cam = PinholeCamera.load(p)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (200, 201, 160, 120, 320, 240)
    assert PinholeCamera.parse("200,201,160,120", 320, 240) == cam
    with pytest.raises(IntrinsicsError, match="four numbers"):
        PinholeCamera.parse("200,201,160", 320, 240)


def test_fisheye_calibration_is_refused_in_one_line(tmp_path):
    p = tmp_path / "intrinsics.json"
    p.write_text(json.dumps(FisheyeIntrinsics(640, 480, 300, 300, 320, 240, 0.1, 0, 0, 0).to_dict()))
    with pytest.raises(IntrinsicsError, match="fisheye calibration") as e:
        PinholeCamera.load(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("d, problem", [
    ({"model": "pinhole", "image_width": 320, "image_height": 240, "fx": 200, "fy": 200, "cx": 160}, "'cy'"),
    ({"model": "pinhole", "image_width": 320, "image_height": 240, "fx": -1, "fy": 200, "cx": 160, "cy": 120},
     "must be positive"),
    ({"model": "pinhole", "image_width": 320, "image_height": 240, "fx": 200, "fy": 200, "cx": 900, "cy": 120},
     "outside"),
    ({"model": "pinhole", "image_width": 320.5, "image_height": 240, "fx": 200, "fy": 200, "cx": 160, "cy": 120},
     "integer"),
    ({"model": "pinhole", "image_width": 320, "image_height": 240, "fx": 200, "fy": 200, "cx": 160, "cy": 120,
      "distortion": [0.1, 0, 0, 0]}, "distortion"),
    ({"model": "kb"}, "expected 'pinhole'"),
])
def test_bad_pinhole_json_is_one_line_error(tmp_path, d, problem):
    p = tmp_path / "cam.json"
    p.write_text(json.dumps(d))
    with pytest.raises(IntrinsicsError, match=problem):
        PinholeCamera.load(p)


def test_size_mismatch_names_both_sizes():
    cam = PinholeCamera(200, 200, 160, 120, 320, 240, source="cam.json")
    cam.check_video(320, 240, "v.mp4")
    with pytest.raises(IntrinsicsError, match=r"320x240.*v\.mp4 is 640x480"):
        cam.check_video(640, 480, "v.mp4")


def test_scaled_keeps_pixel_centres():
    cam = PinholeCamera(400, 400, 319.5, 239.5, 640, 480)
    half = cam.scaled(0.5, 320, 240)
    assert (half.fx, half.cx, half.cy) == (200, 159.5, 119.5)
