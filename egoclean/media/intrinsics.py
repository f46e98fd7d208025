"""Camera models for Phase 1: the source fisheye intrinsics and the rectified pinhole.

`FisheyeIntrinsics` parses and validates an Egocentric-10K `intrinsics.json` (OpenCV
fisheye / Kannala-Brandt, k1..k4). `rectified_intrinsics` picks the pinhole camera of
the rectified frames (OpenCV's `estimateNewCameraMatrixForUndistortRectify`) and
refuses degenerate results. `RectifiedIntrinsics.float_maps` gives, for every output
pixel, where it comes from in the fisheye frame and whether that source is valid: the
fisheye model can only be inverted up to the peak of its distortion curve
r_d(theta) = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8); beyond it
(and beyond the source image) a pixel has no source and must come out black.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from egoclean.core import atomic, jsonin
from egoclean.core.errors import IntrinsicsError

FIELDS = ("image_width", "image_height", "fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")
DIST_FIELDS = ("k1", "k2", "k3", "k4")

# A rectified focal length outside [1/MAX_FOCAL_RATIO, MAX_FOCAL_RATIO] x the source's
# is not a camera anyone wants (OpenCV returns ~0 or NaN when the frame edges lie past
# the invertible range); fewer valid pixels than this is a black video, not a result.
MAX_FOCAL_RATIO = 20.0
# A clip scaled from the calibrated size has each side rounded to whole pixels (to even
# ones for yuv420p): 1920x1080 x 0.237 is 455.1 x 256, stored as 456x256. A side may miss
# the common scale factor by this many pixels; more is another aspect ratio.
SCALE_ROUNDING_PX = 1.0
MIN_VALID_FRACTION = 0.05
# Rays a little short of the curve's peak: near the peak the inverse is so steep that
# neighbouring output pixels sample the same source pixel (smeared, not informative).
PEAK_MARGIN = 0.999
# Where invalid output pixels are sent: far enough outside the source that bilinear
# interpolation with BORDER_CONSTANT touches no real pixel, small enough for int16 maps.
OUTSIDE = -64.0


def read_json(path: Path, what: str, finite: bool = True, missing: str = "") -> Any:
    """Parse an intrinsics JSON file (bounded, see egoclean.core.jsonin); every failure is one
    IntrinsicsError naming `what` and the file (`missing` adds a hint when it is absent)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IntrinsicsError(f"{what} {path}: file not found{missing}") from None
    except OSError as e:
        raise IntrinsicsError(f"{what} {path}: cannot be read ({e})") from None
    return jsonin.loads(raw, f"{what} {path}", IntrinsicsError, finite=finite)


def number_field(d: Mapping[str, Any], key: str, source: str) -> float:
    """Field `key` of a calibration object as a finite float; an IntrinsicsError naming `source` otherwise."""
    if key not in d:
        raise IntrinsicsError(f"intrinsics {source}: field {key!r} is missing")
    v = d[key]
    # bool is an int subclass in Python; true/false in a calibration is a typo, not 1/0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise IntrinsicsError(f"intrinsics {source}: field {key!r} must be a number, got {str(v)[:40]!r}")
    try:
        f = float(v)  # a Python int of hundreds of digits overflows here
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise IntrinsicsError(f"intrinsics {source}: field {key!r} must be finite, got {str(v)[:40]}")
    return f


@dataclass(frozen=True)
class FisheyeIntrinsics:
    """An OpenCV fisheye (Kannala-Brandt) camera: K from fx, fy, cx, cy; D = k1..k4."""

    image_width: int
    image_height: int
    fx: float
    fy: float
    cx: float
    cy: float
    k1: float
    k2: float
    k3: float
    k4: float
    source: str = field(default="<dict>", compare=False)

    def __post_init__(self) -> None:
        src = self.source
        if self.image_width <= 0 or self.image_height <= 0:
            raise IntrinsicsError(
                f"intrinsics {src}: image size {self.image_width}x{self.image_height} must be positive"
            )
        for key in ("fx", "fy"):
            if not getattr(self, key) > 0:
                raise IntrinsicsError(f"intrinsics {src}: focal length {key}={getattr(self, key)} must be positive")
        if not (0.0 <= self.cx <= self.image_width):
            raise IntrinsicsError(
                f"intrinsics {src}: principal point cx={self.cx} lies outside the image width {self.image_width}"
            )
        if not (0.0 <= self.cy <= self.image_height):
            raise IntrinsicsError(
                f"intrinsics {src}: principal point cy={self.cy} lies outside the image height {self.image_height}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> "FisheyeIntrinsics":
        """Validate an `intrinsics.json` object; `source` names it in error messages."""
        if not isinstance(d, Mapping):
            raise IntrinsicsError(f"intrinsics {source}: expected a JSON object, got {type(d).__name__}")
        if "model" not in d:
            raise IntrinsicsError(f"intrinsics {source}: field 'model' is missing (expected 'fisheye')")
        if d["model"] != "fisheye":
            raise IntrinsicsError(
                f"intrinsics {source}: field 'model' is {d['model']!r}; "
                "only 'fisheye' (OpenCV Kannala-Brandt) is supported"
            )
        values = {k: number_field(d, k, source) for k in FIELDS}
        for key in ("image_width", "image_height"):
            if not values[key].is_integer():
                raise IntrinsicsError(f"intrinsics {source}: field {key!r} must be an integer, got {d[key]!r}")
            if values[key] <= 0:
                raise IntrinsicsError(f"intrinsics {source}: field {key!r} must be positive, got {d[key]!r}")
        values["image_width"] = int(values["image_width"])
        values["image_height"] = int(values["image_height"])
        return cls(**values, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FisheyeIntrinsics":
        """Read and validate an `intrinsics.json` file."""
        path = Path(path)
        # NaN/Infinity pass the parser: from_dict names the field they are in.
        d = read_json(path, "intrinsics", finite=False)
        return cls.from_dict(d, source=str(path))

    @property
    def K(self) -> np.ndarray:
        """3x3 camera matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def D(self) -> np.ndarray:
        """Distortion coefficients k1..k4, shape (4,) float64 (OpenCV fisheye order)."""
        return np.array([self.k1, self.k2, self.k3, self.k4], dtype=np.float64)

    @property
    def size(self) -> tuple[int, int]:
        return self.image_width, self.image_height

    def scaled_to(self, width: int, height: int) -> "FisheyeIntrinsics":
        """The same lens at another resolution: fx, cx scale by the width ratio, fy, cy
        by the height ratio; distortion (in normalised coordinates) is unchanged.

        Only a uniform scale of the calibrated frame is accepted (each side within
        SCALE_ROUNDING_PX of one common factor); another aspect ratio is an IntrinsicsError."""
        if int(width) <= 0 or int(height) <= 0:
            raise IntrinsicsError(f"intrinsics {self.source}: cannot scale to {width}x{height}")
        if (width, height) == self.size:
            return self
        sx, sy = width / self.image_width, height / self.image_height
        # The only valid change of size is a uniform scale of the whole frame: one factor
        # s with each side equal to s times the calibrated side, up to rounding it to
        # whole pixels (SCALE_ROUNDING_PX). Another aspect ratio is a crop, a stretch, a
        # rotated camera or the wrong calibration; scaling fx and fy apart would bend the
        # image silently.
        tol = SCALE_ROUNDING_PX
        lo = max((width - tol) / self.image_width, (height - tol) / self.image_height)
        hi = min((width + tol) / self.image_width, (height + tol) / self.image_height)
        if lo > hi:
            rotated = (width > height) != (self.image_width > self.image_height) and width != height
            raise IntrinsicsError(
                f"intrinsics {self.source}: calibrated at {self.image_width}x{self.image_height}, "
                f"cannot describe a {width}x{height} clip (aspect ratio differs: "
                + ("rotated? use the calibration of this orientation)" if rotated else
                   f"{self.image_width / self.image_height:.4g} against {width / height:.4g}; only a uniform "
                   "scale of the calibrated frame is the same camera: use the calibration of this size)")
            )
        return FisheyeIntrinsics(
            int(width), int(height), self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy,
            self.k1, self.k2, self.k3, self.k4, source=f"{self.source} scaled to {width}x{height}",
        )

    def to_dict(self) -> dict:
        """The `intrinsics.json` form."""
        return {"model": "fisheye", **{k: getattr(self, k) for k in FIELDS}}

    def theta_max(self) -> float:
        """The largest ray angle (radians from the optical axis) the model can invert:
        the first peak of r_d(theta), or pi/2 when the curve rises that far (a pinhole
        output never sees rays at or beyond pi/2)."""
        # d r_d / d theta = 1 + 3 k1 t + 5 k2 t^2 + 7 k3 t^3 + 9 k4 t^4 with t = theta^2
        coeffs = [9 * self.k4, 7 * self.k3, 5 * self.k2, 3 * self.k1, 1.0]
        while coeffs and coeffs[0] == 0.0:
            coeffs.pop(0)
        limit = math.pi / 2
        if len(coeffs) > 1:
            for t in np.roots(coeffs):
                if abs(t.imag) < 1e-9 * max(1.0, abs(t.real)) and t.real > 0:
                    limit = min(limit, math.sqrt(t.real))
        return limit

    def distort_radius(self, theta: np.ndarray | float) -> np.ndarray:
        """r_d(theta) in normalised units (multiply by f for pixels)."""
        t2 = np.square(theta)
        return theta * (1 + t2 * (self.k1 + t2 * (self.k2 + t2 * (self.k3 + t2 * self.k4))))


@dataclass(frozen=True)
class RectifiedIntrinsics:
    """The pinhole camera of the rectified frames and the fisheye it was derived from.

    `fisheye` is the model at the clip's resolution (`width` x `height`, what the maps
    sample); `original` is the model as given in intrinsics.json. The rectified frames
    are `out_width` x `out_height`: the input size, trimmed to even sides for yuv420p
    (trimming the last column/row keeps K_new exact).
    """

    fisheye: FisheyeIntrinsics
    K_new: np.ndarray
    width: int
    height: int
    balance: float = 0.0
    original: FisheyeIntrinsics | None = None
    valid_fraction: float = 1.0
    fov_scale: float = 1.0

    @property
    def out_width(self) -> int:
        return self.width - self.width % 2

    @property
    def out_height(self) -> int:
        return self.height - self.height % 2

    def float_maps(
        self, width: int | None = None, height: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(map_x, map_y, valid) float32/bool for an output of `width` x `height`
        (default: out_width x out_height); invalid pixels are sent to OUTSIDE."""
        w = self.out_width if width is None else width
        h = self.out_height if height is None else height
        fe = self.fisheye
        map_x, map_y = cv2.fisheye.initUndistortRectifyMap(
            fe.K, fe.D, np.eye(3), self.K_new, (w, h), cv2.CV_32FC1
        )
        # the ray of each output pixel: theta = atan(|K_new^-1 (u, v, 1)|)
        kn = self.K_new
        x = (np.arange(w, dtype=np.float32) - np.float32(kn[0, 2])) / np.float32(kn[0, 0])
        y = (np.arange(h, dtype=np.float32) - np.float32(kn[1, 2])) / np.float32(kn[1, 1])
        r2 = np.square(x)[None, :] + np.square(y)[:, None]
        tan_max = math.tan(min(fe.theta_max() * PEAK_MARGIN, math.pi / 2 * PEAK_MARGIN))
        valid = r2 <= np.float32(tan_max * tan_max)
        valid &= np.isfinite(map_x) & np.isfinite(map_y)
        valid &= (map_x >= 0) & (map_x <= fe.image_width - 1) & (map_y >= 0) & (map_y <= fe.image_height - 1)
        map_x[~valid] = OUTSIDE
        map_y[~valid] = OUTSIDE
        return map_x, map_y, valid

    def to_dict(self) -> dict:
        """JSON form: the rectified pinhole camera plus the fisheye it came from."""
        kn = self.K_new
        return {
            "model": "pinhole",
            "image_width": self.out_width,
            "image_height": self.out_height,
            "fx": float(kn[0, 0]),
            "fy": float(kn[1, 1]),
            "cx": float(kn[0, 2]),
            "cy": float(kn[1, 2]),
            "K": [[float(v) for v in row] for row in kn],
            "distortion": None,
            "balance": self.balance,
            "fov_scale": self.fov_scale,
            "valid_fraction": round(self.valid_fraction, 6),
            "input_width": self.width,
            "input_height": self.height,
            "fisheye_source": (self.original or self.fisheye).to_dict(),
            "fisheye_scaled": self.fisheye.to_dict(),
            "fisheye_theta_max_deg": math.degrees(self.fisheye.theta_max()),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write `to_dict()` atomically."""
        return atomic.write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> "RectifiedIntrinsics":
        """Rebuild what `to_dict` wrote: the same K_new, balance and fov_scale, with the
        fisheye scaled to the clip exactly as `rectified_intrinsics` scaled it."""
        if not isinstance(d, Mapping):
            raise IntrinsicsError(f"rectified intrinsics {source}: expected a JSON object, got {type(d).__name__}")
        missing = [k for k in ("K", "input_width", "input_height", "fisheye_source") if k not in d]
        if missing:
            raise IntrinsicsError(f"rectified intrinsics {source}: field(s) {', '.join(missing)} missing")
        original = FisheyeIntrinsics.from_dict(d["fisheye_source"], source=source)
        try:
            k_new = np.asarray(d["K"], dtype=np.float64)
            width, height = int(d["input_width"]), int(d["input_height"])
            balance, fov_scale = float(d.get("balance", 0.0)), float(d.get("fov_scale", 1.0))
            valid_fraction = float(d.get("valid_fraction", 1.0))
        except (TypeError, ValueError) as e:
            raise IntrinsicsError(f"rectified intrinsics {source}: {e}") from None
        if k_new.shape != (3, 3) or not np.all(np.isfinite(k_new)):
            raise IntrinsicsError(f"rectified intrinsics {source}: K must be a finite 3x3 matrix")
        return cls(original.scaled_to(width, height), k_new, width, height, balance, original=original,
                   valid_fraction=valid_fraction, fov_scale=fov_scale)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RectifiedIntrinsics":
        """Read a file written by `save`."""
        p = Path(path)
        return cls.from_dict(read_json(p, "rectified intrinsics"), source=str(p))


def rectified_intrinsics(
    fisheye: FisheyeIntrinsics,
    width: int | None = None,
    height: int | None = None,
    balance: float = 0.0,
    fov_scale: float = 1.0,
) -> RectifiedIntrinsics:
    """The pinhole camera for rectifying `width` x `height` frames (default: the
    calibration's size) with OpenCV's new-camera-matrix estimate at `balance` (0: crop
    to valid pixels, 1: keep the whole field of view). Raises IntrinsicsError when the
    result is degenerate (non-finite, absurd focal length or centre, almost no valid
    pixels) instead of letting it produce a black video. `fov_scale` > 1 widens the
    view beyond OpenCV's estimate (OpenCV's parameter of the same name)."""
    src = fisheye.source
    width = fisheye.image_width if width is None else int(width)
    height = fisheye.image_height if height is None else int(height)
    if width < 2 or height < 2:
        raise IntrinsicsError(f"intrinsics {src}: frame size {width}x{height} is too small to rectify")
    if isinstance(balance, bool) or not isinstance(balance, (int, float)) or not (0.0 <= balance <= 1.0):
        raise IntrinsicsError(f"intrinsics {src}: balance must be a number in [0, 1], got {balance!r}")
    if isinstance(fov_scale, bool) or not isinstance(fov_scale, (int, float)) or not (0.1 <= fov_scale <= 10.0):
        raise IntrinsicsError(f"intrinsics {src}: fov_scale must be a number in [0.1, 10], got {fov_scale!r}")
    scaled = fisheye.scaled_to(width, height)
    try:
        k_new = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            scaled.K, scaled.D, (width, height), np.eye(3), balance=float(balance), fov_scale=float(fov_scale)
        )
    except cv2.error as e:
        raise IntrinsicsError(f"intrinsics {src}: OpenCV cannot estimate a rectified camera ({e})") from None
    k_new = np.asarray(k_new, dtype=np.float64)
    what = f"intrinsics {src}: rectification at {width}x{height}, balance {balance} is degenerate"
    if not np.all(np.isfinite(k_new)):
        raise IntrinsicsError(
            f"{what}: the new camera matrix is not finite (the frame edges lie beyond the range the "
            f"distortion model can invert; check k1..k4 and the focal lengths)"
        )
    for i, name in ((0, "fx"), (1, "fy")):
        ratio = k_new[i, i] / scaled.K[i, i]
        if not (1.0 / MAX_FOCAL_RATIO <= ratio <= MAX_FOCAL_RATIO):
            raise IntrinsicsError(
                f"{what}: new focal length {name}={k_new[i, i]:.4g} px is {ratio:.3g}x the source's "
                f"{scaled.K[i, i]:.4g} px (allowed {1 / MAX_FOCAL_RATIO:g}x..{MAX_FOCAL_RATIO:g}x); try another balance"
            )
    if not (0.0 <= k_new[0, 2] <= width and 0.0 <= k_new[1, 2] <= height):
        raise IntrinsicsError(
            f"{what}: new principal point ({k_new[0, 2]:.4g}, {k_new[1, 2]:.4g}) lies outside the frame"
        )
    rect = RectifiedIntrinsics(
        scaled, k_new, width, height, float(balance), original=fisheye, fov_scale=float(fov_scale)
    )
    frac = _check_valid_fraction(rect, src)
    return RectifiedIntrinsics(
        scaled, k_new, width, height, float(balance), original=fisheye, valid_fraction=frac, fov_scale=float(fov_scale)
    )


def _check_valid_fraction(rect: RectifiedIntrinsics, src: str) -> float:
    """The fraction of output pixels with a valid source; IntrinsicsError when it is
    too small to be a video rather than a black frame."""
    _, _, valid = rect.float_maps()
    frac = float(valid.mean())
    if frac < MIN_VALID_FRACTION:
        raise IntrinsicsError(
            f"intrinsics {src}: rectification at {rect.width}x{rect.height}, balance {rect.balance} is "
            f"degenerate: only {frac:.1%} of the output pixels have a valid source "
            f"(need {MIN_VALID_FRACTION:.0%}); the video would be black"
        )
    return frac
