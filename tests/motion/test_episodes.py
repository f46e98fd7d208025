"""egoclean.motion.episodes: an episode's state (pose relative to its first frame) and action
(motion to the next frame in the current camera axes), and its split at tracking gaps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egoclean import synth
from egoclean.motion.episodes import state_action, tracked_runs
from egoclean.motion.trajectory import Segment, Trajectory


@pytest.fixture(scope="module")
def walk():
    """The true path of a synthetic head turning round and walking down the aisle (60 frames)."""
    r = synth.ClipRenderer(synth.synth_intrinsics(64, 48), 30.0, [synth.PlantedSpan(0, 10, "aisle")],
                           scene_seed=0, clip_seed=0)
    return r.trajectory(90)


def _pose(state_row):
    return Rotation.from_quat(state_row[3:]).as_matrix(), state_row[:3].astype(np.float64)


def test_state_is_the_pose_relative_to_the_first_frame(walk):
    a, b = 10, 80
    state, action, metric = state_action(walk, a, b)
    assert state.shape == (70, 7) and action.shape == (70, 6) and state.dtype == np.float32 and metric
    assert np.allclose(state[0], [0, 0, 0, 0, 0, 0, 1], atol=1e-6)
    R = walk.rotations()
    for i in (1, 35, 69):
        Rr, pr = _pose(state[i])
        # T_a * T_rel == T_i
        assert np.allclose(R[a] @ Rr, R[a + i], atol=1e-5)
        assert np.allclose(walk.position[a] + R[a] @ pr, walk.position[a + i], atol=1e-5)


def test_actions_compose_back_into_the_states(walk):
    a, b = 5, 85
    state, action, _ = state_action(walk, a, b)
    Rc, pc = np.eye(3), np.zeros(3)
    for i in range(b - a - 1):
        dR = Rotation.from_rotvec(action[i, 3:].astype(np.float64)).as_matrix()
        pc = pc + Rc @ action[i, :3]
        Rc = Rc @ dR
        Rs, ps = _pose(state[i + 1])
        assert np.allclose(Rc, Rs, atol=1e-4) and np.allclose(pc, ps, atol=1e-4)
    # the last action is the step to frame b (tracked, same segment)
    assert np.abs(action[-1]).max() > 0
    # ... and zero at the clip's last frame
    _, last, _ = state_action(walk, 80, 90)
    assert np.all(last[-1] == 0)


def test_episodes_are_never_cut_across_a_tracking_gap(walk):
    n = len(walk)
    tracked = np.ones(n, bool)
    tracked[[30, 31, 32, 61]] = False
    seg = np.where(np.arange(n) < 45, 0, 1).astype(np.int32)
    seg[~tracked] = -1
    pos = np.where(tracked[:, None], walk.position, np.nan)
    quat = np.where(tracked[:, None], walk.quat, np.nan)
    traj = Trajectory(walk.t, pos, quat, tracked, seg, np.zeros(n, np.int32),
                      (Segment(0, 0, 44, True, 1.0), Segment(1, 45, n - 1, False, 1.0)), {})
    keep, drop = tracked_runs(traj, 10, 70)
    assert keep == [(10, 30), (33, 45), (45, 61), (62, 70)]
    assert drop == [(30, 33), (61, 62)]
    assert tracked_runs(traj, 29, 34, min_frames=2) == ([], [(29, 30), (30, 33), (33, 34)])
    assert state_action(traj, 45, 61)[2] is False and state_action(traj, 33, 45)[2] is True
    with pytest.raises(ValueError, match="not one tracked segment"):
        state_action(traj, 25, 40)
    # the last frame before a gap does not step into it
    assert np.all(state_action(traj, 10, 30)[1][-1] == 0)
