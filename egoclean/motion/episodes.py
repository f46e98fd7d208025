"""The camera motion of a training episode: its state and action per frame, and where tracking allows one.

For frames a..b-1 of one tracked segment (`tracked_runs` finds them):

- `observation.state` (7): the camera pose relative to the episode's first frame,
  T_0^-1 T_i: position (x, y, z) in the first frame's camera axes and orientation as a
  unit quaternion (qx, qy, qz, qw, w >= 0). The first frame is (0, 0, 0, 0, 0, 0, 1).
- `action` (6): the motion from frame i to frame i+1 in frame i's camera axes,
  T_i^-1 T_{i+1}: translation (dx, dy, dz) and rotation vector (rx, ry, rz, radians).
  The last frame's action is the step to the frame after the episode when that one is
  tracked in the same segment, else zero (the camera is taken to stop).

OpenCV camera axes (x right, y down, z forward). Units: metres when the segment's scale
is metric (floor found), else the segment's own unit (`metric` says which).
"""

from __future__ import annotations

import numpy as np

STATE_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw"]
ACTION_NAMES = ["dx", "dy", "dz", "rx", "ry", "rz"]
STATE_UNITS = ["length"] * 3 + ["quaternion"] * 4
ACTION_UNITS = ["length"] * 3 + ["rad"] * 3


def tracked_runs(traj, a: int, b: int, min_frames: int = 2) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Split frames [a, b) at tracking gaps and segment changes: (runs kept, runs dropped),
    each (first, end) with end exclusive; runs shorter than `min_frames` are dropped."""
    b = min(b, len(traj))
    keep, drop = [], []
    i = a
    while i < b:
        if not traj.tracked[i]:
            j = i
            while j < b and not traj.tracked[j]:
                j += 1
            drop.append((i, j))
            i = j
            continue
        j = i
        while j < b and traj.tracked[j] and traj.segment[j] == traj.segment[i]:
            j += 1
        (keep if j - i >= min_frames else drop).append((i, j))
        i = j
    return keep, drop


def state_action(traj, a: int, b: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(state (n, 7) float32, action (n, 6) float32, metric) of frames [a, b), all tracked in one segment."""
    from scipy.spatial.transform import Rotation

    from egoclean.motion.trajectory import matrix_to_quat

    seg = traj.segment[a]
    if not (traj.tracked[a:b].all() and (traj.segment[a:b] == seg).all()):
        raise ValueError(f"frames {a}..{b - 1}: not one tracked segment")
    R = traj.rotations()
    p = traj.position
    R0t = R[a].T
    state = np.empty((b - a, 7))
    state[:, :3] = (p[a:b] - p[a]) @ R0t.T
    state[:, 3:] = matrix_to_quat(np.einsum("ij,njk->nik", R0t, R[a:b]))
    nxt = b < len(traj) and traj.tracked[b] and traj.segment[b] == seg
    end = b + 1 if nxt else b
    Rt = np.transpose(R[a:end - 1], (0, 2, 1))
    action = np.zeros((b - a, 6))
    steps = end - 1 - a
    if steps > 0:
        action[:steps, :3] = np.einsum("nij,nj->ni", Rt, p[a + 1:end] - p[a:end - 1])
        action[:steps, 3:] = Rotation.from_matrix(np.einsum("nij,njk->nik", Rt, R[a + 1:end])).as_rotvec()
    metric = any(s.metric for s in traj.segments if s.id == seg)
    return state.astype(np.float32), action.astype(np.float32), bool(metric)
