"""The motion steps of one clip: the camera's path (`track`), its picture (`draw_clip_path`), and the
facts its checks judge (`pose_problems`, `motion_rates`).

Like the other stages' steps (egoclean.ingest.steps has the pattern): each returns a typed
result with every fact the orchestration records, and the Dagster asset
(egoclean_assets.assets.motion) and any other executor call the same functions.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from egoclean.core import defaults


@dataclass(frozen=True)
class Tracked:
    """The clip's camera trajectory saved as Parquet (`parquet`), with its summary and speed."""

    clip_id: str
    parquet: str
    summary: dict  # Trajectory.summary(): frames, tracked_frames, tracked_fraction, segments, metric, path_length
    fps: float  # the video's frame rate
    seconds: float  # wall time of the tracking
    # the per-frame table saved at `parquet` (Trajectory.to_table(), pyarrow), for the store's `poses`;
    # carried along (a Ray task returns it to the driver) so no executor reads the file back
    poses: Any = field(default=None, repr=False, compare=False)

    @property
    def files(self) -> dict[str, str]:
        return {"parquet": self.parquet}

    @property
    def frames_per_sec(self) -> float:
        return self.summary["frames"] / self.seconds if self.seconds > 0 else 0.0

    def info(self) -> dict:
        return {**self.summary, "fps": self.fps}

    def row(self) -> dict:
        """The clip's row of the store's `trajectories` table (egoclean.store)."""
        s = self.summary
        return {"clip_id": self.clip_id, "frames": int(s["frames"]), "tracked_frames": int(s["tracked_frames"]),
                "tracked_fraction": float(s["tracked_fraction"]), "segments": int(s["segments"]),
                "metric": bool(s["metric"]), "path_length": float(s["path_length"]), "fps": float(self.fps),
                "path": self.parquet}

    def moved(self, files: dict[str, str]) -> "Tracked":
        return replace(self, parquet=files["parquet"])


def track(clip_id: str, rectified_mp4: str | os.PathLike, camera_json: str | os.PathLike,
          out: str | os.PathLike, config=None) -> Tracked:
    """Visual odometry of the rectified clip `rectified_mp4` seen by the pinhole camera saved at
    `camera_json` (what `egoclean rectify` writes), saved as Parquet at `out`."""
    from egoclean.motion.odometry import VOConfig, track_video  # at use: OpenCV, PyAV, scipy
    from egoclean.motion.trajectory import PinholeCamera

    camera = PinholeCamera.load(camera_json)
    t0 = time.perf_counter()
    traj = track_video(rectified_mp4, camera, config or VOConfig())
    seconds = time.perf_counter() - t0
    traj.save_parquet(out)
    fps = float(1.0 / np.median(np.diff(traj.t))) if len(traj) > 1 else 0.0
    return Tracked(clip_id=clip_id, parquet=str(out), summary=traj.summary(), fps=round(fps, 6), seconds=seconds,
                   poses=traj.to_table())


@dataclass(frozen=True)
class PathDrawn:
    """The clip's trajectory picture (`png`) and how many anomalous spans it marks."""

    clip_id: str
    png: str
    spans: int

    @property
    def files(self) -> dict[str, str]:
        return {"png": self.png}

    def info(self) -> dict:
        return {"anomalous_spans": self.spans}

    def moved(self, files: dict[str, str]) -> "PathDrawn":
        return replace(self, png=files["png"])


def draw_clip_path(clip_id: str, parquet: str | os.PathLike, out: str | os.PathLike,
                   spans: Sequence[dict] = ()) -> PathDrawn:
    """The picture of clip `clip_id`'s saved trajectory at `out`, its anomalous `spans` marked (the span
    dicts of egoclean.temporal.steps.Segmented, as anomaly_segments records them: start_sec, end_sec)."""
    marked = [(float(s["start_sec"]), float(s["end_sec"])) for s in spans]
    return PathDrawn(clip_id, draw_path(parquet, out, f"{clip_id} - camera path", marked), len(marked))


def draw_path(parquet: str | os.PathLike, out: str | os.PathLike, title: str,
              spans: Sequence[tuple[float, float]] = ()) -> str:
    """The trajectory picture (egoclean.motion.plots) of the saved trajectory, anomalous `spans` marked."""
    from egoclean.motion.plots import plot_trajectory
    from egoclean.motion.trajectory import Trajectory

    return str(plot_trajectory(Trajectory.load_parquet(parquet), out, title, spans))


def pose_problems(traj) -> list[str]:
    """What is wrong with the tracked poses: non-finite values, rotations that are not
    orthonormal (|R^T R - I| > 1e-6 or det != 1). Empty when all is well."""
    tr = traj.tracked
    out = []
    bad = tr & ~(np.all(np.isfinite(traj.position), axis=1) & np.all(np.isfinite(traj.quat), axis=1))
    if bad.any():
        out.append(f"{int(bad.sum())} tracked frame(s) with non-finite poses (first: frame {int(np.argmax(bad))})")
    ok = tr & ~bad
    if ok.any():
        R = traj.rotations()[ok]
        err = np.abs(np.einsum("nji,njk->nik", R, R) - np.eye(3)).max(axis=(1, 2))
        det = np.linalg.det(R)
        worst = np.maximum(err, np.abs(det - 1))
        if worst.max() > 1e-6:
            out.append(f"{int((worst > 1e-6).sum())} rotation(s) not orthonormal (worst deviation {worst.max():.2e})")
    untracked_with_pose = ~tr & np.any(np.isfinite(traj.position), axis=1)
    if untracked_with_pose.any():
        out.append(f"{int(untracked_with_pose.sum())} untracked frame(s) carry a pose (a gap must stay empty)")
    return out


@dataclass(frozen=True)
class MotionRates:
    """The fastest frame-to-frame motion of a trajectory within its segments."""

    max_speed: float | None  # metres per second over metric segments; None when none is metric
    max_angular_rate_deg: float  # degrees per second
    too_fast: int  # frame steps over the speed bound (metric segments only)
    too_fast_turns: int  # frame steps over the angular-rate bound


def motion_rates(traj, max_speed: float = defaults.HEAD_MAX_SPEED_M_S,
                 max_rate_deg: float = defaults.HEAD_MAX_ANGULAR_RATE_DEG_S) -> MotionRates:
    """Speeds and turn rates between consecutive tracked frames of one segment."""
    n = len(traj)
    if n < 2:
        return MotionRates(None, 0.0, 0, 0)
    same = (traj.segment[1:] == traj.segment[:-1]) & traj.tracked[1:] & traj.tracked[:-1]
    dt = np.diff(traj.t)
    same &= dt > 0
    if not same.any():
        return MotionRates(None, 0.0, 0, 0)
    R = traj.rotations()
    rel = np.einsum("nji,njk->nik", R[:-1][same], R[1:][same])
    ang = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0))) / dt[same]
    metric_ids = [s.id for s in traj.segments if s.metric]
    metric = same & np.isin(traj.segment[:-1], metric_ids)
    speed = None
    too_fast = 0
    if metric.any():
        v = np.linalg.norm(np.diff(traj.position, axis=0)[metric], axis=1) / dt[metric]
        speed = float(v.max())
        too_fast = int((v > max_speed).sum())
    return MotionRates(speed, float(ang.max()), too_fast, int((ang > max_rate_deg).sum()))
