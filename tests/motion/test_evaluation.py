"""ATE and RPE, checked against the evo package on the same TUM files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoclean.motion.evaluation import align_sim3, associate, ate, rpe
from egoclean.motion.trajectory import Segment, Trajectory, TrajectoryError


def _paths(n: int = 120, seed: int = 0) -> tuple[Trajectory, Trajectory]:
    """A smooth ground-truth head path and an estimate of it in another world, scale and
    with noise (what monocular odometry gives)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 30.0
    pos = np.c_[np.sin(t), 0.5 * t, 1.6 + 0.05 * np.sin(5 * t)]
    rot = Rotation.from_rotvec(np.c_[0.1 * np.sin(2 * t), 0.3 * t, 0.05 * np.cos(t)])
    gt = Trajectory.from_frames(t, pos, rot.as_quat())
    S, R, T = 0.37, Rotation.from_rotvec([0.3, -1.0, 0.5]).as_matrix(), np.array([2.0, -1.0, 0.5])
    noisy = pos + rng.normal(0, 0.01, pos.shape)
    est_pos = (S * noisy @ R.T + T)
    est_rot = Rotation.from_matrix(R) * rot * Rotation.from_rotvec(rng.normal(0, 0.01, (n, 3)))
    return Trajectory.from_frames(t, est_pos, est_rot.as_quat()), gt


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    R = Rotation.from_rotvec([0.2, 0.4, -0.1]).as_matrix()
    s, R2, t = align_sim3(src, 2.5 * src @ R.T + [1, 2, 3])
    assert s == pytest.approx(2.5) and np.allclose(R2, R) and np.allclose(t, [1, 2, 3])


def test_ate_and_rpe_match_evo(tmp_path):
    from evo.core import metrics
    from evo.tools import file_interface

    est, gt = _paths()
    est.save_tum(tmp_path / "est.txt")
    gt.save_tum(tmp_path / "gt.txt")
    # ours, from the files (what a user would compare)
    e, g = Trajectory.load_tum(tmp_path / "est.txt"), Trajectory.load_tum(tmp_path / "gt.txt")
    mine_ate = ate(e, g)
    mine_rpe = rpe(e, g, delta=10, all_pairs=True)
    mine_rpe_sparse = rpe(e, g, delta=10, all_pairs=False)

    ref = file_interface.read_tum_trajectory_file(str(tmp_path / "gt.txt"))
    traj = file_interface.read_tum_trajectory_file(str(tmp_path / "est.txt"))
    traj.align(ref, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, traj))
    assert mine_ate.rmse == pytest.approx(ape.get_statistic(metrics.StatisticsType.rmse), rel=1e-6)
    assert mine_ate.max == pytest.approx(ape.get_statistic(metrics.StatisticsType.max), rel=1e-6)
    assert mine_ate.rmse > 0.005  # the noise is there: the check can fail
    for relation, mine in ((metrics.PoseRelation.translation_part, mine_rpe.trans_rmse),
                           (metrics.PoseRelation.rotation_angle_deg, mine_rpe.rot_rmse_deg)):
        for all_pairs, value in ((True, mine), (False, None)):
            r = metrics.RPE(relation, delta=10, delta_unit=metrics.Unit.frames, all_pairs=all_pairs)
            r.process_data((ref, traj))
            if value is None:
                value = (mine_rpe_sparse.trans_rmse if relation == metrics.PoseRelation.translation_part
                         else mine_rpe_sparse.rot_rmse_deg)
            assert value == pytest.approx(r.get_statistic(metrics.StatisticsType.rmse), rel=1e-6)
    # the percentage is of the ground truth's own path length
    length = np.linalg.norm(np.diff(gt.position, axis=0), axis=1).sum()
    assert mine_ate.percent == pytest.approx(100 * mine_ate.rmse / length, rel=1e-4)


def test_segments_are_aligned_each_on_its_own():
    est, gt = _paths(seed=2)
    n = len(est)
    pos = est.position.copy()
    pos[60:] = pos[60:] * 3.0 + 7.0  # the second segment: another world and scale
    tracked = np.ones(n, bool)
    tracked[58:60] = False  # lost for two frames
    seg = np.where(np.arange(n) < 60, 0, 1).astype(np.int32)
    seg[~tracked] = -1
    pos[~tracked] = np.nan
    quat = est.quat.copy()
    quat[~tracked] = np.nan
    two = Trajectory(est.t, pos, quat, tracked, seg, np.zeros(n, np.int32),
                     (Segment(0, 0, 57, False, 1.0), Segment(1, 60, n - 1, False, 1.0)))
    per = ate(two, gt)
    assert per.frames == n - 2 and per.tracked_fraction == pytest.approx((n - 2) / n)
    assert per.rmse < 0.03
    assert ate(two, gt, per_segment=False).rmse > 10 * per.rmse
    r = rpe(two, gt, delta=5)
    assert r.pairs == (58 - 5) + (n - 60 - 5)  # never across the gap


def test_association_and_errors():
    est, gt = _paths(n=30)
    shifted = Trajectory.from_frames(est.t + 0.004, est.position, est.quat)
    ie, ig = associate(shifted, gt)
    assert (ie == ig).all() and len(ie) == 30
    far = Trajectory.from_frames(est.t + 10.0, est.position, est.quat)
    with pytest.raises(TrajectoryError, match="no tracked frame"):
        ate(far, gt)
    with pytest.raises(TrajectoryError, match="no pair"):
        rpe(est, gt, delta=40)
