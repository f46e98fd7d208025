"""The camera trajectory of a clip and the pinhole camera it was measured with.

`Trajectory` holds one row per frame: time, position and orientation (camera-to-world,
OpenCV camera axes: x right, y down, z forward), whether the frame was tracked, its
segment and its inlier count. Each segment's world is its first frame's camera, turned so
that z points up where the floor was found (the first segment's: the clip's first tracked
frame); segments after a loss of tracking are not related to each other. Untracked frames have NaN poses: a pose is
never invented across a gap. `segments` describes each tracked stretch (first and last
frame, whether its scale is metric and the scale applied).

Files: `save_parquet` / `load_parquet` keep the whole table (segments and meta in the
Parquet schema metadata); `save_tum` / `load_tum` read and write the TUM format
(`timestamp tx ty tz qx qy qz qw`, tracked frames only) that `evo` and most SLAM tools
read. Writes are atomic (egoclean.core.atomic).

`PinholeCamera` is the camera matrix of a rectified clip, read from the JSON
`egoclean rectify` writes, from the minimal `{"model": "pinhole", ...}` form, or from
`fx,fy,cx,cy`; a fisheye calibration is refused (rectify the clip first).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from egoclean.core import atomic
from egoclean.core.errors import IntrinsicsError, InvalidInputError
from egoclean.media.intrinsics import number_field, read_json

# Parquet schema metadata key holding {"segments": [...], "meta": {...}} as JSON.
PARQUET_META_KEY = b"egoclean.trajectory"
# Parquet columns, in order.
COLUMNS = ("frame", "t", "x", "y", "z", "qx", "qy", "qz", "qw", "tracked", "segment", "inliers")
PINHOLE_FIELDS = ("image_width", "image_height", "fx", "fy", "cx", "cy")


class TrajectoryError(InvalidInputError):
    """A trajectory file is malformed or a Trajectory's arrays disagree."""


@dataclass(frozen=True)
class Segment:
    """One tracked stretch: frames `first`..`last` (inclusive) share one world and one scale.

    `metric`: the scale comes from the floor and the camera height (metres); otherwise
    positions are in the segment's own unit (the first baseline). `scale`: the factor
    applied to the tracker's unit (1.0 when not metric)."""

    id: int
    first: int
    last: int
    metric: bool
    scale: float

    def as_dict(self) -> dict:
        return {"id": int(self.id), "first": int(self.first), "last": int(self.last),
                "metric": bool(self.metric), "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Segment":
        return cls(int(d["id"]), int(d["first"]), int(d["last"]), bool(d["metric"]), float(d["scale"]))


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Per-frame camera poses of one clip (camera-to-world, OpenCV camera axes).

    Arrays: `t` (N,) seconds, `position` (N, 3), `quat` (N, 4) as x, y, z, w, `tracked`
    (N,) bool, `segment` (N,) int32 (-1 where untracked), `inliers` (N,) int32. Untracked
    frames have NaN position and quaternion."""

    t: np.ndarray
    position: np.ndarray
    quat: np.ndarray
    tracked: np.ndarray
    segment: np.ndarray
    inliers: np.ndarray
    segments: tuple[Segment, ...] = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.t)
        want = {"t": (n,), "position": (n, 3), "quat": (n, 4), "tracked": (n,), "segment": (n,), "inliers": (n,)}
        for name, shape in want.items():
            a = getattr(self, name)
            if np.shape(a) != shape:
                raise TrajectoryError(f"trajectory: {name} has shape {np.shape(a)}, expected {shape}")
        object.__setattr__(self, "t", np.asarray(self.t, dtype=np.float64))
        object.__setattr__(self, "position", np.asarray(self.position, dtype=np.float64))
        object.__setattr__(self, "quat", np.asarray(self.quat, dtype=np.float64))
        object.__setattr__(self, "tracked", np.asarray(self.tracked, dtype=bool))
        object.__setattr__(self, "segment", np.asarray(self.segment, dtype=np.int32))
        object.__setattr__(self, "inliers", np.asarray(self.inliers, dtype=np.int32))
        object.__setattr__(self, "segments", tuple(self.segments))
        tr = self.tracked
        if not (np.all(np.isfinite(self.position[tr])) and np.all(np.isfinite(self.quat[tr]))):
            raise TrajectoryError("trajectory: a tracked frame has a non-finite pose")
        if np.any(self.segment[tr] < 0) or np.any(self.segment[~tr] != -1):
            raise TrajectoryError("trajectory: tracked frames need a segment id >= 0, untracked frames -1")

    def __len__(self) -> int:
        return len(self.t)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trajectory):
            return NotImplemented
        return (all(np.array_equal(getattr(self, k), getattr(other, k), equal_nan=k in ("t", "position", "quat"))
                    for k in ("t", "position", "quat", "tracked", "segment", "inliers"))
                and self.segments == other.segments and self.meta == other.meta)

    @classmethod
    def from_frames(cls, t: np.ndarray, position: np.ndarray, quat: np.ndarray, **kw: Any) -> "Trajectory":
        """A trajectory with every frame tracked in segment 0 (e.g. ground truth)."""
        n = len(t)
        seg = (Segment(0, 0, n - 1, bool(kw.pop("metric", False)), 1.0),) if n else ()
        return cls(t, position, quat, np.ones(n, bool), np.zeros(n, np.int32),
                   kw.pop("inliers", np.zeros(n, np.int32)), kw.pop("segments", seg), kw.pop("meta", {}))

    # -- derived --------------------------------------------------------------------------

    @property
    def tracked_fraction(self) -> float:
        return float(self.tracked.mean()) if len(self) else 0.0

    def rotations(self) -> np.ndarray:
        """(N, 3, 3) camera-to-world rotation matrices (NaN where untracked)."""
        return quat_to_matrix(self.quat)

    def path_length(self) -> float:
        """Sum of the distances between consecutive tracked frames of the same segment."""
        p, s = self.position, self.segment
        same = (s[1:] == s[:-1]) & self.tracked[1:] & self.tracked[:-1]
        return float(np.linalg.norm(np.diff(p, axis=0)[same], axis=1).sum()) if len(self) > 1 else 0.0

    def summary(self) -> dict:
        """Path length, tracked fraction, segments, metric or not: what the store keeps per clip."""
        return {
            "frames": len(self),
            "tracked_frames": int(self.tracked.sum()),
            "tracked_fraction": round(self.tracked_fraction, 6),
            "segments": len(self.segments),
            "metric": bool(self.segments) and all(s.metric for s in self.segments),
            "path_length": round(self.path_length(), 6),
        }

    # -- Parquet ----------------------------------------------------------------------------

    def to_table(self):
        """A pyarrow Table (COLUMNS) with segments and meta in the schema metadata."""
        import pyarrow as pa

        cols = {
            "frame": pa.array(np.arange(len(self), dtype=np.int64)),
            "t": pa.array(self.t),
            **{k: pa.array(self.position[:, i]) for i, k in enumerate("xyz")},
            **{k: pa.array(self.quat[:, i]) for i, k in enumerate(("qx", "qy", "qz", "qw"))},
            "tracked": pa.array(self.tracked),
            "segment": pa.array(self.segment),
            "inliers": pa.array(self.inliers),
        }
        info = {"segments": [s.as_dict() for s in self.segments], "meta": self.meta}
        schema_meta = {PARQUET_META_KEY: json.dumps(info, sort_keys=True, allow_nan=False).encode()}
        return pa.table(cols).replace_schema_metadata(schema_meta)

    def save_parquet(self, path: str | os.PathLike) -> Path:
        """Write the whole table atomically (same trajectory -> same bytes)."""
        import pyarrow.parquet as pq

        with atomic.atomic_path(path) as tmp:
            pq.write_table(self.to_table(), tmp, compression="zstd")
        return Path(path)

    @classmethod
    def load_parquet(cls, path: str | os.PathLike) -> "Trajectory":
        """Read what `save_parquet` wrote; TrajectoryError (one line) on anything else."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            raise TrajectoryError(f"trajectory {path}: file not found") from None
        except (OSError, pa.ArrowException) as e:
            raise TrajectoryError(f"trajectory {path}: not a readable Parquet file ({e})") from None
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise TrajectoryError(f"trajectory {path}: column(s) {', '.join(missing)} missing")
        raw = (table.schema.metadata or {}).get(PARQUET_META_KEY)
        try:
            info = json.loads(raw) if raw else {"segments": [], "meta": {}}
            segments = tuple(Segment.from_dict(s) for s in info["segments"])
        except (ValueError, KeyError, TypeError) as e:
            raise TrajectoryError(f"trajectory {path}: bad segment metadata ({e})") from None
        c = {k: table.column(k).to_numpy(zero_copy_only=False) for k in COLUMNS}
        try:
            return cls(c["t"], np.stack([c["x"], c["y"], c["z"]], 1), np.stack([c["qx"], c["qy"], c["qz"], c["qw"]], 1),
                       c["tracked"], c["segment"], c["inliers"], segments, info.get("meta", {}))
        except TrajectoryError as e:
            raise TrajectoryError(f"trajectory {path}: {str(e).removeprefix('trajectory: ')}") from None

    # -- TUM ---------------------------------------------------------------------------------

    def tum_lines(self) -> list[str]:
        """One `timestamp tx ty tz qx qy qz qw` line per tracked frame."""
        out = []
        for i in np.flatnonzero(self.tracked):
            p, q = self.position[i], self.quat[i]
            out.append(f"{self.t[i]:.6f} " + " ".join(f"{v:.9f}" for v in (*p, *q)))
        return out

    def save_tum(self, path: str | os.PathLike) -> Path:
        """Write the tracked frames in TUM format, atomically."""
        return atomic.write_bytes(path, ("\n".join(self.tum_lines()) + "\n").encode() if len(self) else b"")

    @classmethod
    def load_tum(cls, path: str | os.PathLike) -> "Trajectory":
        """Read a TUM file (comments `#` and blank lines skipped) as one tracked segment."""
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise TrajectoryError(f"trajectory {p}: file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise TrajectoryError(f"trajectory {p}: cannot be read ({e})") from None
        rows = []
        for no, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.replace(",", " ").split()
            try:
                vals = [float(v) for v in parts]
            except ValueError:
                vals = []
            if len(vals) != 8 or not all(math.isfinite(v) for v in vals):
                raise TrajectoryError(
                    f"trajectory {p}: line {no} is not 8 finite numbers (timestamp tx ty tz qx qy qz qw)")
            rows.append(vals)
        a = np.array(rows, dtype=np.float64).reshape(-1, 8)
        if len(a) > 1 and np.any(np.diff(a[:, 0]) <= 0):
            raise TrajectoryError(f"trajectory {p}: timestamps must increase")
        norms = np.linalg.norm(a[:, 4:], axis=1)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            raise TrajectoryError(f"trajectory {p}: line(s) with a quaternion that is not unit length")
        return cls.from_frames(a[:, 0], a[:, 1:4], a[:, 4:] / norms[:, None])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions x, y, z, w -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions x, y, z, w with w >= 0."""
    from scipy.spatial.transform import Rotation

    r = np.asarray(r, dtype=np.float64)
    q = Rotation.from_matrix(r.reshape(-1, 3, 3)).as_quat()
    q = np.where(q[:, 3:4] < 0, -q, q)  # one sign for the same rotation: files compare byte for byte
    return q.reshape(*r.shape[:-2], 4)


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera (no distortion): focal lengths and principal point in pixels of a
    `width` x `height` frame."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: str = field(default="<camera>", compare=False)

    def __post_init__(self) -> None:
        src = self.source
        if self.width <= 0 or self.height <= 0:
            raise IntrinsicsError(f"intrinsics {src}: image size {self.width}x{self.height} must be positive")
        for key in ("fx", "fy", "cx", "cy"):
            if not math.isfinite(getattr(self, key)):
                raise IntrinsicsError(f"intrinsics {src}: {key} must be finite")
        if not (self.fx > 0 and self.fy > 0):
            raise IntrinsicsError(f"intrinsics {src}: focal lengths fx={self.fx}, fy={self.fy} must be positive")
        if not (0 <= self.cx <= self.width and 0 <= self.cy <= self.height):
            raise IntrinsicsError(
                f"intrinsics {src}: principal point ({self.cx}, {self.cy}) lies outside the "
                f"{self.width}x{self.height} image")

    @property
    def K(self) -> np.ndarray:
        """3x3 camera matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def scaled(self, factor: float, width: int, height: int) -> "PinholeCamera":
        """The same camera on frames resized by `factor` to `width` x `height` (pixel centres
        kept: c' = (c + 0.5) * factor - 0.5)."""
        return PinholeCamera(self.fx * factor, self.fy * factor, (self.cx + 0.5) * factor - 0.5,
                             (self.cy + 0.5) * factor - 0.5, int(width), int(height),
                             source=f"{self.source} scaled by {factor:.4g}")

    def check_video(self, width: int, height: int, video: str) -> None:
        """IntrinsicsError unless the camera describes frames of `width` x `height`."""
        if (int(width), int(height)) != self.size:
            raise IntrinsicsError(
                f"intrinsics {self.source}: calibrated for {self.width}x{self.height} frames, but video {video} is "
                f"{width}x{height}; use the intrinsics the rectification of this clip wrote")

    def to_dict(self) -> dict:
        """The minimal pinhole JSON form."""
        return {"model": "pinhole", "image_width": self.width, "image_height": self.height,
                "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> "PinholeCamera":
        """The pinhole camera of a rectify JSON or of the minimal form; a fisheye is refused."""
        if not isinstance(d, Mapping):
            raise IntrinsicsError(f"intrinsics {source}: expected a JSON object, got {type(d).__name__}")
        model = d.get("model")
        if model == "fisheye":
            raise IntrinsicsError(
                f"intrinsics {source}: a fisheye calibration; visual odometry needs the rectified clip and the "
                "pinhole JSON `egoclean rectify` writes beside it")
        if model != "pinhole":
            raise IntrinsicsError(f"intrinsics {source}: field 'model' is {model!r}; expected 'pinhole'")
        dist = d.get("distortion")
        if dist is not None and (not isinstance(dist, list) or any(v != 0 for v in dist)):
            raise IntrinsicsError(f"intrinsics {source}: distortion {str(dist)[:60]} is not supported "
                                  "(rectify the clip first: a pinhole camera has none)")
        v = {k: number_field(d, k, source) for k in PINHOLE_FIELDS}
        for key in ("image_width", "image_height"):
            if not v[key].is_integer():
                raise IntrinsicsError(f"intrinsics {source}: field {key!r} must be an integer, got {d[key]!r}")
        return cls(v["fx"], v["fy"], v["cx"], v["cy"], int(v["image_width"]), int(v["image_height"]),
                   source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PinholeCamera":
        """Read a pinhole JSON file (what `egoclean rectify` writes, or the minimal form)."""
        p = Path(path)
        return cls.from_dict(read_json(p, "intrinsics", finite=False), source=str(p))

    @classmethod
    def parse(cls, text: str, width: int, height: int) -> "PinholeCamera":
        """`fx,fy,cx,cy` (the CLI's --camera) for frames of `width` x `height`."""
        parts = text.split(",")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            vals = []
        if len(vals) != 4:
            raise IntrinsicsError(f"--camera {text!r}: expected four numbers fx,fy,cx,cy")
        return cls(*vals, int(width), int(height), source=f"--camera {text}")
