"""Monocular visual odometry of a rectified clip: per-frame camera poses from a pinhole video.

The pipeline (OpenCV for the geometry, scipy for the bundle adjustment):

- Frames are streamed (`egoclean.media.video.iter_frames`), turned grey and resized so
  that the long side is `VO_LONG_SIDE` (640) pixels; memory does not grow with the clip
  (the images of two frames, the tracks alive now and the keyframes of one window).
- Features: Shi-Tomasi corners with an absolute corner-strength floor (a blank wall
  yields none instead of noise), tracked frame to frame by pyramidal Lucas-Kanade with a
  forward-backward check.
- Initialisation (and re-initialisation): tracks from a reference frame; a rotation-only
  model (homography RANSAC on bearings, then Kabsch) is tried first: when it explains
  the tracks (median residual below a quarter of `min_parallax_deg`), the camera only
  turned (or did not move) and the frame gets that rotation with the position unchanged:
  the essential matrix is degenerate there. Otherwise the essential matrix (OpenCV's
  USAC_ACCURATE: RANSAC with local optimisation and a final fit on all inliers; a plain
  RANSAC's 5-point sample left the first pair's translation ~20 degrees off at the bench)
  and `recoverPose` give the relative pose. Once the inliers' parallax (rotation taken out)
  reaches `min_parallax_deg` (1.5 degrees: the first map's scale and shape are carried by
  every later pose; at 1 degree they were the largest error at the bench, at 2 the floor
  had left the view of a short walk before the map began, and no metric scale was found)
  they are triangulated
  (unit baseline); until then each frame keeps the position and takes the rotation, and
  its pose is measured again by PnP once the map exists.
- Tracking: the pose of each frame from its 2D-3D matches (`solvePnPRansac`, refined by
  Levenberg-Marquardt on the inliers). Tracks that keep failing RANSAC (hands, parts
  moving in the view) are dropped. A keyframe is taken when the map thins out or the view
  has moved; new landmarks are triangulated between keyframes (at least
  `min_triangulation_deg` of parallax, in front of both, reprojection checks), and a
  windowed bundle adjustment (scipy `least_squares`, sparse Jacobian, Huber loss) refines
  the last `ba_window` keyframes and their points, the two oldest held fixed (gauge and
  scale). It moves the keyframes by millimetres only: the points were just triangulated
  from the same poses; a wider window (10) or more iterations (15-30) did not lower the
  error on the rendered clips (measured in docs/PERFORMANCE.md's development notes).
- When PnP fails the rotation-only model keeps the orientation (e.g. a fast head turn to
  a wall not yet mapped) and a new map is built from there; when that fails too, the
  tracking is lost: the frame is untracked, and the next segment begins where a new
  reference frame initialises. A black or frozen (identical to the previous) frame is a
  gap: untracked, never a guessed pose.
- Scale: each segment's landmarks (a bounded sample) and keyframe centres are searched
  for horizontal planes below the camera; the lowest well-supported one is the floor, its
  normal is up (gravity) and the camera's height above it (`camera_height_m`) sets the
  metric scale. The plane is claimed only when the keyframe centres travelled along it
  (within `floor_max_path_slope_deg`, over `floor_min_travel` x the height): a head walks
  parallel to the floor, while a bench top seen from the bench (the camera hardly moves)
  or a plane cutting through the map at an angle gave scales 0.7-5.7x off on the rendered
  clips. Without a checked floor the segment keeps its own unit (the first baseline) and
  is not metric.

Every segment's world is its first frame's camera, turned so that z is up when the floor
was found (x then follows the first camera's x on the floor plane).

Why scipy for the bundle adjustment: it installs everywhere from pip, is deterministic,
and a window of ~5 keyframes and a few hundred points is small enough that a sparse
trust-region solve takes milliseconds; pycolmap (Ceres) also installs, but its bundle
adjuster works on a reconstruction object that would have to be rebuilt for every window
(it serves as the accuracy anchor in benchmarks/bench_trajectory.py instead); gtsam has
no wheel for every platform the project supports.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix
from scipy.spatial.transform import Rotation

from egoclean.core import defaults
from egoclean.core.errors import InvalidInputError, VideoError
from egoclean.motion.trajectory import PinholeCamera, Segment, Trajectory, matrix_to_quat


@dataclass(frozen=True)
class VOConfig:
    """Tracker settings; pixel values are at the working resolution."""

    long_side: int = defaults.VO_LONG_SIDE
    camera_height_m: float = defaults.CAMERA_HEIGHT_M
    max_features: int = 400
    min_distance_px: float = 12.0
    # absolute Shi-Tomasi floor (cv2.cornerMinEigenVal, 3x3 blocks, grey levels scaled to 0..1):
    # sensor noise on a blank wall stays far below it, textured surfaces far above
    min_corner_strength: float = 5e-4
    klt_window: int = 15
    klt_levels: int = 3
    fb_max_px: float = 1.0
    ransac_px: float = 1.5
    min_parallax_deg: float = 1.5
    min_init_points: int = 40
    min_pnp_inliers: int = 20
    min_rotation_tracks: int = 20
    keyframe_track_ratio: float = 0.7
    keyframe_max_frames: int = 12
    ba_window: int = 6
    ba_iterations: int = 8
    min_triangulation_deg: float = 0.5
    # rotation-only frames before an initialisation whose poses are measured again from the new map
    max_pending: int = 150
    max_outlier_strikes: int = 2
    floor_sample: int = 4000
    # the floor check (a plane is claimed as the floor, and the scale metric, only when it passes):
    # the keyframe centres' main direction of travel within `floor_max_path_slope_deg` of the
    # plane (a head walks parallel to the floor; a bench top or a plane cutting through the map
    # at an angle was 9-28 degrees off on the rendered clips, the true floor 1.4-5), measured over
    # a travel of at least `floor_min_travel` times the camera's height above the plane
    floor_max_path_slope_deg: float = 8.0
    floor_min_travel: float = 0.1
    black_level: float = 12.0
    seed: int = 0

    def __post_init__(self) -> None:
        """InvalidInputError naming the first setting outside its allowed range."""
        for name, (kind, lo, lo_open, hi) in _VO_RANGES.items():
            v = getattr(self, name)
            number = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
            ok = isinstance(v, number) and not isinstance(v, bool) and (kind is int or math.isfinite(v))
            ok = ok and (v > lo if lo_open else v >= lo) and (hi is None or v <= hi)
            if not ok:
                what = "an integer" if kind is int else "a finite number"
                rng = f"{'>' if lo_open else '>='} {lo}" + ("" if hi is None else f" and <= {hi}")
                raise InvalidInputError(f"VOConfig.{name}={v!r}: must be {what} {rng}")
        need = max(self.min_init_points, self.min_pnp_inliers, self.min_rotation_tracks)
        if self.max_features < need:
            raise InvalidInputError(f"VOConfig.max_features={self.max_features}: must be >= min_init_points, "
                                    f"min_pnp_inliers and min_rotation_tracks ({need})")


# allowed ranges of the VOConfig settings: (type, lower bound, lower bound excluded, upper bound or None)
_VO_RANGES: dict[str, tuple[type, float, bool, float | None]] = {
    "long_side": (int, 32, False, None),
    "camera_height_m": (float, 0.0, True, None),
    "max_features": (int, 10, False, None),
    "min_distance_px": (float, 0.0, True, None),
    "min_corner_strength": (float, 0.0, False, None),
    "klt_window": (int, 3, False, None),
    "klt_levels": (int, 0, False, 8),
    "fb_max_px": (float, 0.0, True, None),
    "ransac_px": (float, 0.0, True, None),
    "min_parallax_deg": (float, 0.0, True, 30.0),
    "min_init_points": (int, 8, False, None),  # the essential matrix needs 5, its RANSAC check more
    "min_pnp_inliers": (int, 6, False, None),
    "min_rotation_tracks": (int, 4, False, None),  # a homography needs 4
    "keyframe_track_ratio": (float, 0.0, True, 1.0),
    "keyframe_max_frames": (int, 1, False, None),
    "ba_window": (int, 2, False, None),  # 2: no bundle adjustment (the two oldest keyframes are fixed)
    "ba_iterations": (int, 1, False, None),
    "min_triangulation_deg": (float, 0.0, True, 30.0),
    "max_pending": (int, 0, False, None),
    "max_outlier_strikes": (int, 0, False, None),
    "floor_sample": (int, 60, False, None),  # fit_floor needs 60 points
    "floor_max_path_slope_deg": (float, 0.0, True, 90.0),
    "floor_min_travel": (float, 0.0, False, None),
    "black_level": (float, 0.0, False, 255.0),
    "seed": (int, 0, False, None),
}


@dataclass
class _Keyframe:
    frame: int
    R: np.ndarray  # world-to-camera rotation
    t: np.ndarray  # world-to-camera translation
    ids: np.ndarray
    pts: np.ndarray  # (n, 2) working-resolution pixels
    n_landmarks: int = -1  # landmarks seen right after it (set by the next tracked frame)


@dataclass
class _Segment:
    id: int
    first: int
    last: int
    floor_pts: list = field(default_factory=list)
    centres: list = field(default_factory=list)
    ups: list = field(default_factory=list)  # each keyframe's camera "up" (-y) in the world
    n_floor_seen: int = 0


def working_camera(camera: PinholeCamera, long_side: int) -> tuple[PinholeCamera, float]:
    """The camera at the working resolution (never upscaled) and the resize factor."""
    f = min(1.0, long_side / max(camera.width, camera.height))
    w, h = max(1, round(camera.width * f)), max(1, round(camera.height * f))
    return (camera if f == 1.0 else camera.scaled(f, w, h)), f


def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))[0]


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices."""
    z = np.zeros(v.shape[:-1])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([z, -w, y], -1), np.stack([w, z, -x], -1), np.stack([-y, x, z], -1)], -2)


def _left_jacobian(w: np.ndarray) -> np.ndarray:
    """The left Jacobian of SO(3) at rotation vector w: d exp(w) = [J_l(w) dw]x exp(w)."""
    phi = float(np.linalg.norm(w))
    W = _skew(w)
    if phi < 1e-8:
        return np.eye(3) + 0.5 * W
    return np.eye(3) + (1 - math.cos(phi)) / phi ** 2 * W + (phi - math.sin(phi)) / phi ** 3 * (W @ W)


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation R minimising |R a_i - b_i| over unit vectors (rows)."""
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles (radians) between corresponding unit vectors."""
    return np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0))


class Odometry:
    """Streaming monocular VO: feed frames with `step`, then `result()` gives the Trajectory."""

    def __init__(self, camera: PinholeCamera, fps: float, config: VOConfig = VOConfig()):
        self.cfg = config
        self.full_camera = camera
        self.cam, self.factor = working_camera(camera, config.long_side)
        self.K = self.cam.K
        self.Kinv = np.linalg.inv(self.K)
        self.fps = float(fps)
        self.f = 0.5 * (self.cam.fx + self.cam.fy)
        # per-frame output: a few hundred bytes a frame (20 min at 30 fps: ~10 MB), never images
        self._R: list[np.ndarray | None] = []
        self._C: list[np.ndarray | None] = []
        self._seg: list[int] = []
        self._inl: list[int] = []
        self._status: list[str] = []
        self.segments: list[_Segment] = []
        self._rng = np.random.default_rng(config.seed)
        self._next_id = 0
        self.prev_gray: np.ndarray | None = None
        self._prev_track_pts: dict[int, np.ndarray] = {}
        self.ids = np.zeros(0, np.int64)
        self.pts = np.zeros((0, 2), np.float32)
        self._reset_tracking()

    # -- state ---------------------------------------------------------------------------

    def _reset_tracking(self) -> None:
        self.mode = "lost"  # "lost" (no reference), "init" (reference, no map), "track" (map)
        self.landmarks: dict[int, np.ndarray] = {}
        self.strikes: dict[int, int] = {}
        # track id -> (the keyframe it was first seen on, its pixel there): triangulated against it
        self.birth: dict[int, tuple[_Keyframe, np.ndarray]] = {}
        self.keyframes: list[_Keyframe] = []
        self.ref: tuple[int, np.ndarray, np.ndarray, dict[int, np.ndarray]] | None = None
        self.pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.cur_seg: _Segment | None = None
        self.R_cw = np.eye(3)
        self.t_cw = np.zeros(3)

    # -- frame input -----------------------------------------------------------------------

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The grey working-resolution image of a decoded frame."""
        if frame_bgr.ndim == 3:
            gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        else:
            gray = frame_bgr
        if self.factor != 1.0:
            gray = cv2.resize(gray, self.cam.size, interpolation=cv2.INTER_AREA)
        return gray

    def step(self, frame_bgr: np.ndarray) -> None:
        """Track one frame (in clip order)."""
        i = len(self._R)
        gray = self._gray_now = self.prepare(frame_bgr)
        bad = None
        if float(gray.mean()) < self.cfg.black_level and float(gray.std()) < self.cfg.black_level:
            bad = "black"
        elif self.prev_gray is not None and np.array_equal(gray, self.prev_gray):
            bad = "frozen"
        if bad:
            # a gap: no pose; the tracks wait on the last good image
            self._emit(i, None, None, -1, 0, bad)
            return
        if self.mode == "lost":
            self.ids, self.pts = np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
            self._add_features(gray)
            if len(self.ids) < self.cfg.min_rotation_tracks:
                # too little texture to start from: no pose rather than a guess
                self._emit(i, None, None, -1, 0, "untextured")
            else:
                self._start_reference(i, gray, self.R_cw, self.t_cw, new_segment=True)
                self._emit_pose(i, len(self.ids), "reference")
        else:
            self._track_klt(gray)
            if self.mode == "init":
                self._step_init(i)
            else:
                self._step_track(i)
        self.prev_gray = gray
        # where the live tracks are in this frame: the reference if the next frame's PnP fails
        self._prev_track_pts = dict(zip(self.ids.tolist(), self.pts))

    # -- output ----------------------------------------------------------------------------

    def _emit(self, i: int, R: np.ndarray | None, C: np.ndarray | None, seg: int, inl: int, status: str) -> None:
        if i == len(self._R):
            self._R.append(R)
            self._C.append(C)
            self._seg.append(seg)
            self._inl.append(inl)
            self._status.append(status)
        else:
            self._R[i], self._C[i], self._seg[i], self._inl[i], self._status[i] = R, C, seg, inl, status

    def _emit_pose(self, i: int, inliers: int, status: str) -> None:
        seg = self.cur_seg
        seg.last = i
        self._emit(i, self.R_cw.T.copy(), -self.R_cw.T @ self.t_cw, seg.id, inliers, status)

    # -- features ------------------------------------------------------------------------

    def _detect(self, gray: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """New corners away from the points in `keep`."""
        want = self.cfg.max_features - len(keep)
        if want < 10:
            return np.zeros((0, 2), np.float32)
        mask = np.full(gray.shape, 255, np.uint8)
        r = int(self.cfg.min_distance_px)
        for x, y in keep.astype(int):
            cv2.circle(mask, (int(x), int(y)), r, 0, -1)
        pts = cv2.goodFeaturesToTrack(gray, want, 0.01, self.cfg.min_distance_px, mask=mask, blockSize=3)
        if pts is None:
            return np.zeros((0, 2), np.float32)
        pts = pts.reshape(-1, 2)
        eig = cv2.cornerMinEigenVal(gray, 3)
        strong = eig[pts[:, 1].astype(int), pts[:, 0].astype(int)] >= self.cfg.min_corner_strength
        return pts[strong].astype(np.float32)

    def _add_features(self, gray: np.ndarray) -> None:
        new = self._detect(gray, self.pts)
        ids = np.arange(self._next_id, self._next_id + len(new), dtype=np.int64)
        self._next_id += len(new)
        self.ids = np.concatenate([self.ids, ids])
        self.pts = np.concatenate([self.pts, new]).astype(np.float32)

    def _track_klt(self, gray: np.ndarray) -> None:
        if not len(self.pts):
            return
        lk = dict(winSize=(self.cfg.klt_window, self.cfg.klt_window), maxLevel=self.cfg.klt_levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        p0 = self.pts.reshape(-1, 1, 2)
        p1, st, _ = cv2.calcOpticalFlowPyrLK(self.prev_gray, gray, p0, None, **lk)
        p0r, st2, _ = cv2.calcOpticalFlowPyrLK(gray, self.prev_gray, p1, None, **lk)
        fb = np.linalg.norm((p0 - p0r).reshape(-1, 2), axis=1)
        p1 = p1.reshape(-1, 2)
        h, w = gray.shape
        ok = ((st.ravel() == 1) & (st2.ravel() == 1) & (fb < self.cfg.fb_max_px)
              & (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1))
        self.ids, self.pts = self.ids[ok], p1[ok].astype(np.float32)

    def _bearings(self, pts: np.ndarray) -> np.ndarray:
        b = np.c_[pts, np.ones(len(pts))] @ self.Kinv.T
        return b / np.linalg.norm(b, axis=1, keepdims=True)

    # -- initialisation --------------------------------------------------------------------

    def _start_reference(self, i: int, gray: np.ndarray, R_cw: np.ndarray, t_cw: np.ndarray,
                         new_segment: bool) -> None:
        """Make frame `i` the reference of a (re-)initialisation with pose (R_cw, t_cw)."""
        if new_segment:
            self.cur_seg = _Segment(len(self.segments), i, i)
            self.segments.append(self.cur_seg)
            R_cw, t_cw = np.eye(3), np.zeros(3)
        self.mode = "init"
        self.R_cw, self.t_cw = R_cw.copy(), t_cw.copy()
        if gray is not None and len(self.pts) < self.cfg.max_features * 0.8:
            self._add_features(gray)
        self.ref = (i, R_cw.copy(), t_cw.copy(), {int(k): p.copy() for k, p in zip(self.ids, self.pts)})
        self.pending = []

    def _rotation_only(self, b0: np.ndarray, b1: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(R, inlier mask, median residual deg) of a pure rotation b1 ~ R b0, or None."""
        if len(b0) < self.cfg.min_rotation_tracks:
            return None
        p0 = b0[:, :2] / b0[:, 2:]
        p1 = b1[:, :2] / b1[:, 2:]
        H, mask = cv2.findHomography(p0, p1, cv2.RANSAC, self.cfg.ransac_px / self.f, maxIters=500,
                                     confidence=0.999)
        if H is None:
            return None
        inl = mask.ravel().astype(bool)
        if inl.sum() < self.cfg.min_rotation_tracks:
            return None
        R = _kabsch(b0[inl], b1[inl])
        res = np.degrees(_angles(b0 @ R.T, b1))
        inl = res < math.degrees(2 * self.cfg.ransac_px / self.f)
        if inl.sum() < self.cfg.min_rotation_tracks:
            return None
        R = _kabsch(b0[inl], b1[inl])
        res = np.degrees(_angles(b0 @ R.T, b1))
        return R, inl, float(np.median(res))

    def _step_init(self, i: int) -> None:
        ref_i, R0, t0, ref_pts = self.ref
        common = np.array([k in ref_pts for k in self.ids], bool)
        ids = self.ids[common]
        if len(ids) < self.cfg.min_rotation_tracks:
            self._lose(i)
            return
        pa = np.array([ref_pts[int(k)] for k in ids], np.float32)
        pb = self.pts[common]
        ba, bb = self._bearings(pa), self._bearings(pb)
        rot = self._rotation_only(ba, bb)
        # parallax needed: min_parallax_deg, and at least 2 pixels at small working sizes
        need = max(self.cfg.min_parallax_deg, math.degrees(2.0 / self.f))
        if rot is not None and rot[2] < 0.25 * need:
            self._rotation_frame(i, rot)  # turned or stood still: the cheap path, no essential matrix
            return
        E, mask = cv2.findEssentialMat(pa, pb, self.K, cv2.USAC_ACCURATE, 0.999, self.cfg.ransac_px)
        if E is None or E.shape != (3, 3):
            self._rotation_frame(i, rot)
            return
        n, R, t, mask2 = cv2.recoverPose(E, pa, pb, self.K, mask=mask.copy())
        inl = mask2.ravel().astype(bool)
        # parallax of the inliers once the rotation is taken out: with too little the
        # essential matrix is degenerate (pure rotation) and a translation would be noise
        if n < self.cfg.min_init_points:
            self._rotation_frame(i, rot)
            return
        parallax = float(np.degrees(np.median(_angles(ba[inl] @ R.T, bb[inl]))))
        if parallax < need:
            # the camera moved, but not yet enough for a well-conditioned first map: the frame keeps
            # the position and takes the rotation (the essential matrix's when the tracks already
            # show too much parallax for a pure rotation); its pose is measured again from the map
            self._rotation_frame(i, rot if rot is not None else (R, inl, parallax))
            return
        R_cw1 = R @ R0
        t_cw1 = R @ t0 + t.ravel()  # unit baseline in the segment's unit
        X, good = self._triangulate(R0, t0, R_cw1, t_cw1, pa[inl], pb[inl])
        if good.sum() < self.cfg.min_init_points:
            self._rotation_frame(i, rot)
            return
        if self.cur_seg.first != ref_i:
            # a map rebuilt within a segment (after rotation-only frames): its baseline is a new unit,
            # so a new segment starts at the reference frame (its world: that frame)
            self._split_segment_at(ref_i, R0, t0)
            R0, t0 = np.eye(3), np.zeros(3)  # the new segment's world is the reference camera
            R_cw1, t_cw1 = R, t.ravel().copy()
            X, good = self._triangulate(R0, t0, R_cw1, t_cw1, pa[inl], pb[inl])
        ids_in = ids[inl][good]
        self.landmarks = {int(k): x for k, x in zip(ids_in, X[good])}
        self.strikes = {}
        self.R_cw, self.t_cw = R_cw1, t_cw1
        # keyframes: the reference and this frame; a track is triangulated later against the
        # keyframe it was first seen on
        kf0 = _Keyframe(ref_i, R0.copy(), t0.copy(), ids.copy(), pa.copy())
        kf1 = _Keyframe(i, R_cw1.copy(), t_cw1.copy(), self.ids.copy(), self.pts.copy())
        self.keyframes = [kf0, kf1]
        self.birth = {int(k): (kf1, p.copy()) for k, p in zip(self.ids, self.pts)}
        for k, p in zip(ids, pa):
            self.birth[int(k)] = (kf0, p.copy())
        self.mode = "track"
        self._record_keyframe_geometry()
        self._emit_pose(i, len(ids_in), "init")
        self._refine_pending()
        self._add_features(self._gray_now)
        for k, p in zip(self.ids, self.pts):
            self.birth.setdefault(int(k), (kf1, p.copy()))
        kf1.ids, kf1.pts = self.ids.copy(), self.pts.copy()

    def _remember_pending(self, i: int) -> None:
        """Keep the tracks of a rotation-only frame: once a map exists, its pose is measured again."""
        if len(self.pending) < self.cfg.max_pending:
            self.pending.append((i, self.ids.copy(), self.pts.copy()))

    def _refine_pending(self) -> None:
        """Poses of the frames between the reference and the initialisation from the new map (PnP):
        they were given the rotation only while the parallax was too small to measure a translation."""
        for j, ids, pts in self.pending:
            if self._seg[j] != self.cur_seg.id:
                continue
            has = np.array([int(k) in self.landmarks for k in ids], bool)
            if has.sum() < self.cfg.min_pnp_inliers:
                continue
            X = np.array([self.landmarks[int(k)] for k in ids[has]])
            x = pts[has].astype(np.float64)
            R_wc = self._R[j]
            R_cw = R_wc.T
            rvec0, t0 = cv2.Rodrigues(R_cw)[0], (-R_cw @ self._C[j]).reshape(3, 1)
            ok, rvec, tvec, inl = cv2.solvePnPRansac(
                X, x, self.K, None, rvec0, t0, useExtrinsicGuess=True, iterationsCount=100,
                reprojectionError=2.0 * self.cfg.ransac_px, confidence=0.999, flags=cv2.SOLVEPNP_ITERATIVE)
            if not ok or inl is None or len(inl) < self.cfg.min_pnp_inliers:
                continue
            inl = inl.ravel()
            rvec, tvec = cv2.solvePnPRefineLM(X[inl], x[inl], self.K, None, rvec, tvec)
            R = _rodrigues(rvec)
            self._emit(j, R.T, -R.T @ tvec.ravel(), self._seg[j], len(inl), "init")
        self.pending = []

    def _split_segment_at(self, ref_i: int, R0: np.ndarray, t0: np.ndarray) -> None:
        """Frames ref_i.. move to a new segment whose world is frame ref_i's camera."""
        old = self.cur_seg
        old.last = ref_i - 1
        seg = _Segment(len(self.segments), ref_i, ref_i)
        self.segments.append(seg)
        self.cur_seg = seg
        # re-express the frames emitted since ref_i relative to the reference camera
        for j in range(ref_i, len(self._R)):
            if self._R[j] is None:
                continue
            R_wc, C = self._R[j], self._C[j]
            R_rel = R0 @ R_wc  # reference-camera-from-camera j
            C_rel = R0 @ C + t0
            self._emit(j, R_rel, C_rel, seg.id, self._inl[j], self._status[j])
        seg.last = len(self._R) - 1
        if old.last < old.first:
            old.last = old.first  # never empty: the reference frame stayed before this one

    def _rotation_frame(self, i: int, rot) -> None:
        """Frame i without a measurable translation: the rotation from the reference, position kept
        (measured again once a map exists); lost when even the rotation does not fit."""
        if rot is None:
            self._lose(i)
            return
        ref_i, R0, t0, _ = self.ref
        R_rel = rot[0]
        self.R_cw, self.t_cw = R_rel @ R0, R_rel @ t0
        self._emit_pose(i, int(rot[1].sum()), "rotation")
        self._remember_pending(i)
        if len(rot[1]) < 0.5 * len(self.ref[3]):
            # the view moved on (half the reference's tracks gone): this frame is the new reference
            self._start_reference(i, self._gray_now, self.R_cw, self.t_cw, new_segment=False)

    def _lose(self, i: int) -> None:
        """Tracking lost at frame i: untracked; a new reference (and segment) starts at the next frame."""
        self._emit(i, None, None, -1, 0, "lost")
        self._close_segment()
        self._reset_tracking()
        self.ids = np.zeros(0, np.int64)
        self.pts = np.zeros((0, 2), np.float32)

    # -- tracking ---------------------------------------------------------------------------

    def _step_track(self, i: int) -> None:
        has = np.array([int(k) in self.landmarks for k in self.ids], bool)
        ids = self.ids[has]
        if len(ids) < self.cfg.min_pnp_inliers:
            self._to_rotation_mode(i)
            return
        X = np.array([self.landmarks[int(k)] for k in ids])
        x = self.pts[has].astype(np.float64)
        rvec0 = cv2.Rodrigues(self.R_cw)[0]
        ok, rvec, tvec, inl = cv2.solvePnPRansac(
            X, x, self.K, None, rvec0.copy(), self.t_cw.reshape(3, 1).copy(), useExtrinsicGuess=True,
            iterationsCount=100, reprojectionError=2.0 * self.cfg.ransac_px, confidence=0.999,
            flags=cv2.SOLVEPNP_ITERATIVE)
        n_in = 0 if (not ok or inl is None) else len(inl)
        if n_in < self.cfg.min_pnp_inliers:
            self._to_rotation_mode(i)
            return
        inl = inl.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(X[inl], x[inl], self.K, None, rvec, tvec)
        R, t = _rodrigues(rvec), tvec.ravel()
        # strikes for landmarks RANSAC rejected: hands and parts moving in the view
        is_in = np.zeros(len(ids), bool)
        is_in[inl] = True
        for k, good in zip(ids, is_in):
            k = int(k)
            if good:
                self.strikes.pop(k, None)
            else:
                self.strikes[k] = self.strikes.get(k, 0) + 1
        drop = {k for k, s in self.strikes.items() if s > self.cfg.max_outlier_strikes}
        if drop:
            keep = np.array([int(k) not in drop for k in self.ids], bool)
            self.ids, self.pts = self.ids[keep], self.pts[keep]
            for k in drop:
                self._retire(k)
                self.strikes.pop(k, None)
        self.R_cw, self.t_cw = R, t
        if self._need_keyframe(i, n_in):
            n_in = self._make_keyframe(i, n_in)
        self._emit_pose(i, n_in, "tracked")
        self._forget_dead()

    def _to_rotation_mode(self, i: int) -> None:
        """PnP failed: orientation from the previous frame's tracks, then a new map from there."""
        last = len(self._R) - 1
        while last >= 0 and self._R[last] is None:
            last -= 1
        self._close_map()
        # the previous good frame becomes the reference of a re-initialisation (same segment for now)
        prev_pts = self._prev_track_pts
        self.mode = "init"
        self.ref = (last, self.R_cw.copy(), self.t_cw.copy(), prev_pts)
        self.pending = []
        self._step_init(i)

    def _need_keyframe(self, i: int, n_in: int) -> bool:
        kf = self.keyframes[-1]
        if kf.n_landmarks < 0:
            kf.n_landmarks = n_in  # the first frame tracked after the keyframe counts for it
        # the map thins out, the view moved on, or it is a while since the last keyframe
        if n_in < self.cfg.keyframe_track_ratio * kf.n_landmarks:
            return True
        if i - kf.frame >= self.cfg.keyframe_max_frames:
            return True
        return len(self.ids) < self.cfg.keyframe_track_ratio * len(kf.ids)

    def _make_keyframe(self, i: int, n_in: int) -> int:
        new_kf = _Keyframe(i, self.R_cw.copy(), self.t_cw.copy(), self.ids.copy(), self.pts.copy())
        # triangulate tracks without landmarks against the keyframe where they were born
        by_kf: dict[int, list[int]] = {}
        born: dict[int, _Keyframe] = {}
        for j, k in enumerate(self.ids):
            k = int(k)
            if k in self.landmarks or k not in self.birth:
                continue
            kf = self.birth[k][0]
            born[id(kf)] = kf
            by_kf.setdefault(id(kf), []).append(j)
        for b, js in by_kf.items():
            old = born[b]
            js = np.array(js)
            pa = np.array([self.birth[int(self.ids[j])][1] for j in js], np.float32)
            X, good = self._triangulate(old.R, old.t, self.R_cw, self.t_cw, pa, self.pts[js])
            for j, x, g in zip(js, X, good):
                if g:
                    self.landmarks[int(self.ids[j])] = x
        self.keyframes.append(new_kf)
        if len(self.keyframes) > self.cfg.ba_window:
            self.keyframes.pop(0)
        self._bundle_adjust()
        self._record_keyframe_geometry()
        # new features on the keyframe
        self._add_features(self._gray_now)
        for k, p in zip(self.ids, self.pts):
            self.birth.setdefault(int(k), (new_kf, p.copy()))
        new_kf.ids, new_kf.pts = self.ids.copy(), self.pts.copy()
        return n_in

    def _triangulate(self, R0, t0, R1, t1, pa, pb) -> tuple[np.ndarray, np.ndarray]:
        """3D points from two views and a mask of the trustworthy ones (in front of both,
        small reprojection error, enough parallax)."""
        if not len(pa):
            return np.zeros((0, 3)), np.zeros(0, bool)
        P0 = self.K @ np.c_[R0, t0]
        P1 = self.K @ np.c_[R1, t1]
        Xh = cv2.triangulatePoints(P0, P1, pa.T.astype(np.float64), pb.T.astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            X = (Xh[:3] / Xh[3]).T
        good = np.all(np.isfinite(X), axis=1)
        X[~good] = 0
        z0 = X @ R0[2] + t0[2]
        z1 = X @ R1[2] + t1[2]
        good &= (z0 > 0) & (z1 > 0)
        for R, t, p in ((R0, t0, pa), (R1, t1, pb)):
            xc = X @ R.T + t
            with np.errstate(divide="ignore", invalid="ignore"):
                proj = xc[:, :2] / xc[:, 2:] * [self.K[0, 0], self.K[1, 1]] + self.K[:2, 2]
            err = np.linalg.norm(proj - p, axis=1)
            good &= err < 2.0 * self.cfg.ransac_px
        c0, c1 = -R0.T @ t0, -R1.T @ t1
        r0, r1 = X - c0, X - c1
        cosang = np.sum(r0 * r1, 1) / (np.linalg.norm(r0, axis=1) * np.linalg.norm(r1, axis=1) + 1e-12)
        good &= cosang < math.cos(math.radians(self.cfg.min_triangulation_deg))
        return X, good

    def _bundle_adjust(self) -> None:
        """Windowed BA: keyframe poses (all but the two oldest) and their shared points."""
        kfs = self.keyframes
        if len(kfs) < 3:
            return
        obs_kf, obs_pt, obs_uv = [], [], []
        point_ids: dict[int, int] = {}
        for n, kf in enumerate(kfs):
            for k, p in zip(kf.ids, kf.pts):
                k = int(k)
                if k in self.landmarks:
                    obs_kf.append(n)
                    obs_pt.append(point_ids.setdefault(k, len(point_ids)))
                    obs_uv.append(p)
        if not point_ids:
            return
        obs_kf, obs_pt = np.array(obs_kf), np.array(obs_pt)
        obs_uv = np.array(obs_uv, np.float64)
        counts = np.bincount(obs_pt, minlength=len(point_ids))
        use = counts[obs_pt] >= 2
        if use.sum() < 30:
            return
        n_fixed = 2
        n_free = len(kfs) - n_fixed
        pids = list(point_ids)
        X0 = np.array([self.landmarks[k] for k in pids])
        poses0 = np.array([np.r_[cv2.Rodrigues(kf.R)[0].ravel(), kf.t] for kf in kfs])
        ok_, ok_pt, ok_uv = obs_kf[use], obs_pt[use], obs_uv[use]
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]

        def unpack(v):
            poses = poses0.copy()
            poses[n_fixed:] = v[:6 * n_free].reshape(-1, 6)
            return poses, v[6 * n_free:].reshape(-1, 3)

        def residuals(v):
            poses, X = unpack(v)
            rot = Rotation.from_rotvec(poses[ok_, :3])
            xc = rot.apply(X[ok_pt]) + poses[ok_, 3:]
            z = np.maximum(xc[:, 2], 1e-6)
            u = fx * xc[:, 0] / z + cx
            w = fy * xc[:, 1] / z + cy
            return np.r_[u - ok_uv[:, 0], w - ok_uv[:, 1]]

        def jacobian(v):
            # exact derivatives: d(R(w) X)/dw = -[R X]x J_l(w) (left Jacobian of SO(3)),
            # d/dt = I, d/dX = R; then the pinhole projection's 2x3 derivative
            poses, X = unpack(v)
            Rk = Rotation.from_rotvec(poses[:, :3]).as_matrix()
            Jl = np.stack([_left_jacobian(w) for w in poses[:, :3]])
            RX = np.einsum("nij,nj->ni", Rk[ok_], X[ok_pt])
            xc = RX + poses[ok_, 3:]
            z = np.maximum(xc[:, 2], 1e-6)
            zero = np.zeros(m)
            du = np.stack([fx / z, zero, -fx * xc[:, 0] / z ** 2], 1)
            dv = np.stack([zero, fy / z, -fy * xc[:, 1] / z ** 2], 1)
            d_rot = -np.einsum("nij,njk->nik", _skew(RX), Jl[ok_])  # (m, 3, 3) d xc / d w
            vals = []
            for dp in (du, dv):
                d_w = np.einsum("ni,nij->nj", dp, d_rot)
                pose_d = np.c_[d_w, dp]  # (m, 6): rotation, translation
                for c in range(6):
                    vals.append(pose_d[free, c])
                d_x = np.einsum("ni,nij->nj", dp, Rk[ok_])
                for c in range(3):
                    vals.append(d_x[:, c])
            return csr_matrix((np.concatenate(vals), (rows, cols)), shape=shape)

        m = len(ok_)
        # sparsity: residual rows u (0..m-1) and v (m..2m-1) of an observation depend on its
        # keyframe's 6 pose parameters (when free) and its point's 3 coordinates
        rows, cols = [], []
        free = ok_ >= n_fixed
        obs = np.arange(m)
        for off in (0, m):
            for c in range(6):
                rows.append(obs[free] + off)
                cols.append(6 * (ok_[free] - n_fixed) + c)
            for c in range(3):
                rows.append(obs + off)
                cols.append(6 * n_free + 3 * ok_pt + c)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        shape = (2 * m, 6 * n_free + 3 * len(pids))
        v0 = np.r_[poses0[n_fixed:].ravel(), X0.ravel()]
        sol = least_squares(residuals, v0, jac=jacobian, loss="huber", f_scale=self.cfg.ransac_px,
                            x_scale="jac", method="trf", max_nfev=self.cfg.ba_iterations, tr_solver="lsmr",
                            tr_options={"maxiter": 40})
        poses, X = unpack(sol.x)
        if not np.all(np.isfinite(sol.x)):
            return
        for n in range(n_fixed, len(kfs)):
            kfs[n].R = _rodrigues(poses[n, :3])
            kfs[n].t = poses[n, 3:].copy()
        res = np.abs(sol.fun[:m]) + np.abs(sol.fun[m:])
        bad_pts = set(ok_pt[res > 4 * self.cfg.ransac_px].tolist())
        for j, k in enumerate(pids):
            if j in bad_pts:
                self._retire(k, record=False)
            else:
                self.landmarks[k] = X[j]
        self.R_cw, self.t_cw = kfs[-1].R.copy(), kfs[-1].t.copy()

    # -- map bookkeeping -----------------------------------------------------------------

    def _retire(self, k: int, record: bool = True) -> None:
        x = self.landmarks.pop(k, None)
        if record and x is not None:
            self._floor_sample(x)

    def _floor_sample(self, x: np.ndarray) -> None:
        """Keep a bounded uniform sample (reservoir) of the segment's landmarks for the floor fit."""
        seg = self.cur_seg
        seg.n_floor_seen += 1
        if len(seg.floor_pts) < self.cfg.floor_sample:
            seg.floor_pts.append(x.copy())
        else:
            j = int(self._rng.integers(0, seg.n_floor_seen))
            if j < self.cfg.floor_sample:
                seg.floor_pts[j] = x.copy()

    def _forget_dead(self) -> None:
        alive = set(self.ids.tolist())
        for k in [k for k in self.landmarks if k not in alive]:
            self._retire(k)
        for k in [k for k in self.birth if k not in alive]:
            del self.birth[k]

    def _record_keyframe_geometry(self) -> None:
        seg = self.cur_seg
        kf = self.keyframes[-1]
        c = -kf.R.T @ kf.t
        if len(seg.centres) < self.cfg.floor_sample:
            seg.centres.append(c)
            seg.ups.append(-kf.R[1])  # the camera's -y axis in the world

    def _close_map(self) -> None:
        for k in list(self.landmarks):
            self._retire(k)
        self.keyframes = []

    def _close_segment(self) -> None:
        if self.cur_seg is not None:
            self._close_map()
        self.cur_seg = None

    # -- result ------------------------------------------------------------------------------

    def result(self, meta: dict | None = None) -> Trajectory:
        """The Trajectory of the frames seen so far (floor scale and z-up applied per segment)."""
        if self.cur_seg is not None:
            for k in list(self.landmarks):
                self._retire(k)
        n = len(self._R)
        pos = np.full((n, 3), np.nan)
        rot = np.full((n, 3, 3), np.nan)
        seg = np.array(self._seg, np.int32).reshape(n)
        segments = []
        # drop segments that ended with no frame (split before their first)
        next_id = 0
        for s in self.segments:
            frames = np.flatnonzero(seg == s.id)
            if not len(frames):
                continue
            Rs = np.stack([self._R[j] for j in frames])
            Cs = np.stack([self._C[j] for j in frames])
            floor = fit_floor(np.array(s.floor_pts).reshape(-1, 3), np.array(s.centres).reshape(-1, 3),
                              np.array(s.ups).reshape(-1, 3), max_path_slope_deg=self.cfg.floor_max_path_slope_deg,
                              min_travel=self.cfg.floor_min_travel)
            R_first, C_first = Rs[0], Cs[0]
            metric, scale, A = False, 1.0, np.eye(3)
            if floor is not None:
                normal, height = floor
                metric, scale = True, self.cfg.camera_height_m / height
                A = world_from_floor(R_first.T @ normal, np.array([1.0, 0.0, 0.0]))
            # world = the segment's first frame (origin and, without a floor, orientation)
            rot[frames] = A @ R_first.T @ Rs
            pos[frames] = scale * ((Cs - C_first) @ R_first) @ A.T
            seg[frames] = next_id
            segments.append(Segment(next_id, int(frames[0]), int(frames[-1]), metric, float(scale)))
            next_id += 1
        tracked = seg >= 0
        quat = np.full((n, 4), np.nan)
        if tracked.any():
            quat[tracked] = matrix_to_quat(rot[tracked])
        t = np.arange(n) / self.fps
        info = {"camera_height_m": self.cfg.camera_height_m, "working_size": list(self.cam.size),
                "statuses": {k: self._status.count(k) for k in sorted(set(self._status))}}
        info.update(meta or {})
        return Trajectory(t, pos, quat, tracked, seg, np.array(self._inl, np.int32).reshape(n), tuple(segments), info)

    def feed(self, frames: Iterable[np.ndarray], progress: Callable[[int], None] | None = None) -> "Odometry":
        """Track every frame of an iterable (streamed); `progress(i)` after each."""
        for i, frame in enumerate(frames):
            self.step(frame)
            if progress:
                progress(i)
        return self


def fit_floor(points: np.ndarray, centres: np.ndarray, ups: np.ndarray, max_tilt_deg: float = 45.0,
              seed: int = 0, max_path_slope_deg: float = 90.0,
              min_travel: float = 0.0) -> tuple[np.ndarray, float] | None:
    """(unit normal pointing up, camera height) of the floor among `points`, or None.

    RANSAC finds up to three planes; a floor candidate is horizontal (its normal within
    `max_tilt_deg` of the cameras' mean up direction), has every keyframe centre above it
    and holds at least 8% of the points (30 at least). Among candidates parallel to the
    best-supported one and with half its support at least, the lowest is the floor (a
    bench top is also horizontal, but above it). Height: the median distance of the
    keyframe centres to the plane. A bench top seen without any floor is taken for the
    floor: the scale is then off by the ratio of the two heights.

    The check (off with the defaults; VOConfig's `floor_max_path_slope_deg` and
    `floor_min_travel` in the tracker): the plane is kept only when the keyframe centres'
    main direction of travel (their first principal axis) lies within `max_path_slope_deg`
    of it, over an extent of at least `min_travel` times the height; otherwise None (no
    floor: the caller keeps the segment's own unit). A camera that stood still cannot show
    that its plane is the floor."""
    if len(points) < 60 or len(centres) < 1:
        return None
    rng = np.random.default_rng(seed)
    up = ups.mean(axis=0)
    up /= np.linalg.norm(up)
    spread = np.median(np.linalg.norm(points - centres.mean(axis=0), axis=1))
    tol = 0.02 * spread
    min_support = max(30, int(0.08 * len(points)))
    remaining = points
    candidates = []
    for _ in range(3):
        if len(remaining) < min_support:
            break
        best, best_n = None, 0
        for _ in range(300):
            s = remaining[rng.choice(len(remaining), 3, replace=False)]
            n = np.cross(s[1] - s[0], s[2] - s[0])
            norm = np.linalg.norm(n)
            if norm < 1e-12:
                continue
            n /= norm
            if abs(n @ up) < math.cos(math.radians(max_tilt_deg)):
                continue  # only horizontal planes are searched
            d = np.abs((remaining - s[0]) @ n)
            cnt = int((d < tol).sum())
            if cnt > best_n:
                best, best_n = (n, s[0]), cnt
        if best is None or best_n < min_support:
            break
        n, p0 = best
        inl = np.abs((remaining - p0) @ n) < tol
        # refine by least squares on the inliers
        q = remaining[inl]
        centroid = q.mean(axis=0)
        n = np.linalg.svd(q - centroid)[2][2]
        for _ in range(2):  # re-select the points near the refined plane, tighter, and fit again
            near = np.abs((q - centroid) @ n) < 0.5 * tol
            if near.sum() < 3:
                break
            centroid = q[near].mean(axis=0)
            n = np.linalg.svd(q[near] - centroid)[2][2]
        if n @ up < 0:
            n = -n
        heights = (centres - centroid) @ n
        if np.all(heights > 0) and n @ up > math.cos(math.radians(max_tilt_deg)):
            candidates.append((float(np.median(heights)), n, int(inl.sum())))
        remaining = remaining[~inl]
    if not candidates:
        return None
    # the best-supported horizontal plane fixes "horizontal"; the floor is the lowest plane
    # parallel to it (within 10 degrees) with at least half its support (a plane cutting
    # through the floor at an angle is neither)
    ref_n, ref_support = candidates[0][1], candidates[0][2]
    ok = [c for c in candidates if c[1] @ ref_n > math.cos(math.radians(10.0)) and c[2] >= 0.5 * ref_support]
    height, n, _ = max(ok, key=lambda c: c[0])
    if not path_parallel(centres, n, height, max_path_slope_deg, min_travel):
        return None
    return n, height


def path_parallel(centres: np.ndarray, normal: np.ndarray, height: float, max_slope_deg: float,
                  min_travel: float) -> bool:
    """Whether the keyframe centres travelled along the plane of unit `normal`: their first
    principal axis within `max_slope_deg` of the plane, over an extent >= `min_travel` x `height`."""
    if max_slope_deg >= 90.0 and min_travel <= 0.0:
        return True
    if len(centres) < 2:
        return False
    c = centres - centres.mean(axis=0)
    axis = np.linalg.svd(c, full_matrices=False)[2][0]
    extent = float(np.ptp(c @ axis))
    slope = math.degrees(math.asin(min(1.0, abs(float(axis @ normal)))))
    return extent >= min_travel * height and slope <= max_slope_deg


def world_from_floor(up: np.ndarray, cam_x: np.ndarray) -> np.ndarray:
    """Rotation taking first-camera coordinates to a world with z = `up` and x along the
    first camera's x projected onto the floor."""
    z = up / np.linalg.norm(up)
    x = cam_x - (cam_x @ z) * z
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0, 0]) - z[0] * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def track_frames(frames: Iterable[np.ndarray], camera: PinholeCamera, fps: float, config: VOConfig = VOConfig(),
                 progress: Callable[[int], None] | None = None, meta: dict | None = None) -> Trajectory:
    """The trajectory of a stream of BGR frames seen by `camera` at `fps`."""
    return Odometry(camera, fps, config).feed(frames, progress).result(meta)


def check_input(path: str | os.PathLike, camera: PinholeCamera):
    """The video's VideoInfo once it is known to suit the camera and to be long enough to
    initialise; a one-line error (VideoError, IntrinsicsError) otherwise."""
    from egoclean.media import video

    info = video.probe(path)
    camera.check_video(info.width, info.height, str(path))
    if info.n_frames < defaults.VO_MIN_FRAMES:
        raise VideoError(f"video {path}: {info.n_frames} frame(s); visual odometry needs at least "
                         f"{defaults.VO_MIN_FRAMES} to initialise")
    return info


def track_video(path: str | os.PathLike, camera: PinholeCamera, config: VOConfig = VOConfig(),
                progress: Callable[[int, int], None] | None = None) -> Trajectory:
    """The trajectory of a rectified video file (streamed); bad input is a one-line error."""
    from egoclean.media import video

    info = check_input(path, camera)
    frames = video.iter_frames(path)
    cb = (lambda i: progress(i + 1, info.n_frames)) if progress else None
    # the file name only: the same clip tracked in another folder (a Ray worker's) gives the same bytes
    return track_frames(frames, camera, info.fps, config, cb, meta={"video": Path(path).name})
