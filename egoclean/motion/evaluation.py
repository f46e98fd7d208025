"""Trajectory accuracy against ground truth: ATE after a Sim(3) alignment, and RPE.

- `align_sim3` is Umeyama's closed form (the same as evo's `align(correct_scale=True)`).
- `ate`: the estimate's positions are aligned to the ground truth by Sim(3) (monocular
  odometry knows neither the world nor, without a floor, the scale), then the RMSE of the
  position errors; also as a percentage of the ground truth's path length. Each segment of
  the estimate has its own world and scale, so each is aligned on its own (`per_segment`)
  and the errors are pooled; untracked frames are not evaluated (the tracked fraction says
  how many there were).
- `rpe`: over a fixed frame gap `delta`, the relative motion of the estimate against that
  of the ground truth (after the same alignment): rotation angle (degrees) and
  translation (ground-truth units) of the error pose `inv(gt_i^-1 gt_j) (est_i^-1 est_j)`,
  pairs within one segment only. `all_pairs=False` takes pairs (0, d), (d, 2d), ... like
  evo's default; True takes every i.

Frames are matched by timestamp (`associate`). tests/motion/test_evaluation.py checks the
figures against the `evo` package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from egoclean.motion.trajectory import Trajectory, TrajectoryError, quat_to_matrix


@dataclass(frozen=True)
class AteResult:
    """Absolute trajectory error after Sim(3) alignment."""

    rmse: float
    mean: float
    median: float
    max: float
    path_length: float
    frames: int
    tracked_fraction: float

    @property
    def percent(self) -> float:
        """RMSE as a percentage of the ground truth's path length over the evaluated frames."""
        return 100.0 * self.rmse / self.path_length if self.path_length > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"ate_rmse": self.rmse, "ate_mean": self.mean, "ate_median": self.median, "ate_max": self.max,
                "ate_percent": self.percent, "path_length": self.path_length, "frames": self.frames,
                "tracked_fraction": self.tracked_fraction}


@dataclass(frozen=True)
class RpeResult:
    """Relative pose error over `delta` frames: translation (ground-truth units) and rotation (degrees)."""

    delta: int
    trans_rmse: float
    trans_mean: float
    rot_rmse_deg: float
    rot_mean_deg: float
    pairs: int

    def as_dict(self) -> dict:
        return {"rpe_delta": self.delta, "rpe_trans_rmse": self.trans_rmse, "rpe_trans_mean": self.trans_mean,
                "rpe_rot_rmse_deg": self.rot_rmse_deg, "rpe_rot_mean_deg": self.rot_mean_deg, "pairs": self.pairs}


def align_sim3(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising sum |dst - (s R src + t)|^2 (Umeyama 1991); points as rows."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    if len(src) < 3:
        raise TrajectoryError(f"alignment needs at least 3 matched positions, got {len(src)}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        S[2, 2] = -1
    R = u @ S @ vt
    var = (xs ** 2).sum() / len(src)
    s = float(np.trace(np.diag(d) @ S) / var) if with_scale and var > 0 else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def associate(est: Trajectory, gt: Trajectory, max_dt: float = 0.5 / 30) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i_est, i_gt) of tracked estimate frames and ground-truth frames with the
    nearest timestamp within `max_dt` seconds."""
    gi = np.flatnonzero(gt.tracked)
    ei = np.flatnonzero(est.tracked)
    if not len(gi) or not len(ei):
        return np.zeros(0, int), np.zeros(0, int)
    gts = gt.t[gi]
    j = np.clip(np.searchsorted(gts, est.t[ei]), 1, len(gts) - 1) if len(gts) > 1 else np.zeros(len(ei), int)
    if len(gts) > 1:
        left = np.abs(est.t[ei] - gts[j - 1]) <= np.abs(est.t[ei] - gts[j])
        j = np.where(left, j - 1, j)
    ok = np.abs(est.t[ei] - gts[j]) <= max_dt
    return ei[ok], gi[j[ok]]


def _aligned(est: Trajectory, gt: Trajectory, per_segment: bool, max_dt: float):
    """Matched indices and the estimate's positions and rotations after Sim(3) alignment."""
    ie, ig = associate(est, gt, max_dt)
    pos = np.full((len(ie), 3), np.nan)
    rot = np.full((len(ie), 3, 3), np.nan)
    groups = est.segment[ie] if per_segment else np.zeros(len(ie), int)
    R_est = quat_to_matrix(est.quat[ie])
    for g in np.unique(groups):
        m = groups == g
        if m.sum() < 3:
            continue  # too short to align: left out (NaN), counted as not evaluated
        s, R, t = align_sim3(est.position[ie[m]], gt.position[ig[m]])
        pos[m] = s * est.position[ie[m]] @ R.T + t
        rot[m] = R @ R_est[m]
    keep = np.isfinite(pos).all(1)
    return ie[keep], ig[keep], pos[keep], rot[keep], groups[keep]


def ate(est: Trajectory, gt: Trajectory, per_segment: bool = True, max_dt: float = 0.5 / 30) -> AteResult:
    """Absolute trajectory error of `est` against `gt` after Sim(3) alignment."""
    ie, ig, pos, _, groups = _aligned(est, gt, per_segment, max_dt)
    if not len(ie):
        raise TrajectoryError("ATE: no tracked frame of the estimate matches the ground truth in time")
    err = np.linalg.norm(pos - gt.position[ig], axis=1)
    # path length of the ground truth over the evaluated frames, not across segment breaks
    g = gt.position[ig]
    same = groups[1:] == groups[:-1]
    length = float(np.linalg.norm(np.diff(g, axis=0), axis=1)[same].sum())
    matched_gt = len(associate(Trajectory.from_frames(gt.t, gt.position, gt.quat), gt, max_dt)[0])
    return AteResult(float(np.sqrt(np.mean(err ** 2))), float(err.mean()), float(np.median(err)), float(err.max()),
                     length, len(ie), len(ie) / max(matched_gt, 1))


def rpe(est: Trajectory, gt: Trajectory, delta: int = 10, all_pairs: bool = True, per_segment: bool = True,
        max_dt: float = 0.5 / 30) -> RpeResult:
    """Relative pose error over `delta` matched frames (after Sim(3) alignment)."""
    ie, ig, pos, rot, groups = _aligned(est, gt, per_segment, max_dt)
    starts = np.arange(0, len(ie) - delta) if all_pairs else np.arange(0, len(ie) - delta, delta)
    starts = starts[groups[starts] == groups[starts + delta]] if len(starts) else starts
    if not len(starts):
        raise TrajectoryError(f"RPE: no pair of matched frames {delta} apart within one segment")
    Rg = quat_to_matrix(gt.quat[ig])
    Pg = gt.position[ig]
    te, re = [], []
    for i in starts:
        j = i + delta
        # relative motions (camera i -> camera j) of ground truth and estimate
        Rg_rel, tg_rel = Rg[i].T @ Rg[j], Rg[i].T @ (Pg[j] - Pg[i])
        Re_rel, te_rel = rot[i].T @ rot[j], rot[i].T @ (pos[j] - pos[i])
        # error pose E = inv(G_rel) @ E_rel
        R_err = Rg_rel.T @ Re_rel
        t_err = Rg_rel.T @ (te_rel - tg_rel)
        te.append(np.linalg.norm(t_err))
        re.append(np.degrees(np.arccos(np.clip((np.trace(R_err) - 1) / 2, -1.0, 1.0))))
    te, re = np.array(te), np.array(re)
    return RpeResult(delta, float(np.sqrt(np.mean(te ** 2))), float(te.mean()), float(np.sqrt(np.mean(re ** 2))),
                     float(re.mean()), len(starts))
