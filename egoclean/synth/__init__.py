"""Synthetic Egocentric-10K: a small local dataset with the real layout and known truth.

Each clip is rendered through a known fisheye (Kannala-Brandt) camera: a pinhole
"canvas" of the scene (straight edges stay straight there) is mapped into the fisheye
image with `cv2.remap`, using a map computed once per clip from
`cv2.fisheye.undistortPoints` (fisheye pixel -> normalised pinhole ray). Head-bob is a
small rotation and shift of that ray field, so scene lines stay straight in pinhole space.

Content: a worker at a bench repeats a work cycle (a part carried from a bin to a press,
pressed, and put on a tray; period 4.5-5.5 s) under ~2 Hz head-bob, interrupted by
planted off-task spans whose scenes differ strongly in colour, texture, layout and
motion (walking down an aisle, idling frozen over the floor, looking at a phone). The
planted spans are written to `ground_truth.csv` in the format of the seed ground truth.

Layout (as in the real dataset): `factory_XXX/workers/worker_YYY/intrinsics.json` and
`factoryXXX_workerYYY_partNN.tar` shards of `factoryXXX_workerYYY_NNNNN.mp4` (H.265)
+ `.json` sidecar members, clip indices continuing across a worker's shards.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from egoclean.core import atomic
from egoclean.core.errors import InvalidInputError
from egoclean.core.timecode import mmss
from egoclean.media.video import VideoWriter, probe

WINDOW_FRAMES = 64  # one V-JEPA 2 window: a clip must hold at least this many frames
MIN_ANOMALY_DURATION_SEC = 20  # shortest clip that still has room for a planted span + work
MIN_SPAN_SEC = 8
SPAN_SEC_FLOOR = 15  # preferred shortest span (see plan_spans)
TWO_SPANS_MIN_SEC = 90
MIN_SIDE = 32
TAR_MTIME = 1_700_000_000  # fixed member mtime: same seed, same tar bytes

# The dataset card's 1080p focal length and principal point, as fractions of the width /
# height, so the synthetic camera has the real field of view at any resolution.
_CARD_F_PER_WIDTH = 1030.59 / 1920
_CARD_FY_OVER_FX = 1032.82 / 1030.59
_CARD_CX_PER_WIDTH = 966.69 / 1920
_CARD_CY_PER_HEIGHT = 539.69 / 1080
# Milder than the card's (-0.1166, -0.0236, 0.0694, -0.0463), whose curve peaks inside
# the image: these keep r(theta) increasing up to 90 degrees, so every pixel, corners
# included, has a ray (the equidistant fisheye itself bends straight lines strongly).
SYNTH_DISTORTION = (-0.06, -0.01, 0.02, -0.005)

# Off-task scene kinds and their ground-truth labels (no commas: they go into a CSV).
ANOMALY_LABELS = {
    "aisle": "walks away down an aisle",
    "floor": "idle (frozen view of the floor)",
    "phone": "looks at phone",
}
ANOMALY_KINDS = tuple(ANOMALY_LABELS)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SynthConfig:
    """What `write_dataset` generates: counts, clip format, seed and planted anomalies.

    `anomalies=False` plants nothing anywhere; `clean_clips=N` leaves the last N clips
    of every worker without a planted span (for false-positive measurements).
    """

    factories: int = 1
    workers: int = 1  # per factory
    clips: int = 2  # per worker
    duration_sec: float = 60.0
    width: int = 480
    height: int = 270
    fps: float = 30.0
    shards: int = 1  # per worker
    seed: int = 0
    anomalies: bool = True
    clean_clips: int = 0
    crf: int = 28
    preset: str = "fast"

    @property
    def n_frames(self) -> int:
        return int(round(self.duration_sec * self.fps))

    def __post_init__(self) -> None:
        """Raise InvalidInputError naming the first bad option."""

        def _int(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise InvalidInputError(f"synth option {name}={v!r}: must be an integer")
            if not lo <= v <= hi:
                raise InvalidInputError(f"synth option {name}={v}: must be between {lo} and {hi}")

        _int("factories", 1, 999)
        _int("workers", 1, 999)
        _int("clips", 1, 99999)
        _int("shards", 1, 100)  # partNN: two digits
        _int("width", MIN_SIDE, 7680)
        _int("height", MIN_SIDE, 4320)
        _int("clean_clips", 0, self.clips)
        _int("crf", 0, 51)
        _int("seed", 0, 2**63 - 1)
        for name in ("width", "height"):
            if getattr(self, name) % 2:
                raise InvalidInputError(
                    f"synth option {name}={getattr(self, name)}: must be even (H.265 yuv420p)"
                )
        if self.shards > self.clips:
            raise InvalidInputError(
                f"synth option shards={self.shards}: more shards than clips per worker ({self.clips})"
            )
        for name in ("fps", "duration_sec"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise InvalidInputError(f"synth option {name}={v!r}: must be a positive number")
        if self.fps > 240:
            raise InvalidInputError(f"synth option fps={self.fps}: above 240 is not supported")
        if self.n_frames < WINDOW_FRAMES:
            raise InvalidInputError(
                f"synth option duration_sec={self.duration_sec}: {self.n_frames} frames at "
                f"{self.fps:g} fps is shorter than one {WINDOW_FRAMES}-frame window"
            )
        if self.anomalies and self.clean_clips < self.clips and self.duration_sec < MIN_ANOMALY_DURATION_SEC:
            raise InvalidInputError(
                f"synth option duration_sec={self.duration_sec}: too short to plant an off-task span "
                f"(needs >= {MIN_ANOMALY_DURATION_SEC} s); use anomalies=False / --clean-clips for short clean clips"
            )
        if not isinstance(self.preset, str) or not self.preset:
            raise InvalidInputError(f"synth option preset={self.preset!r}: must be an x265 preset name")


# ---------------------------------------------------------------------- the camera


def synth_intrinsics(width: int, height: int) -> dict:
    """The synthetic fisheye camera in `intrinsics.json` form for a width x height image."""
    fx = _CARD_F_PER_WIDTH * width
    return {
        "model": "fisheye",
        "image_width": int(width),
        "image_height": int(height),
        "fx": round(fx, 4),
        "fy": round(fx * _CARD_FY_OVER_FX, 4),
        "cx": round(_CARD_CX_PER_WIDTH * width, 4),
        "cy": round(_CARD_CY_PER_HEIGHT * height, 4),
        "k1": SYNTH_DISTORTION[0],
        "k2": SYNTH_DISTORTION[1],
        "k3": SYNTH_DISTORTION[2],
        "k4": SYNTH_DISTORTION[3],
    }


def _K_D(intr: dict) -> tuple[np.ndarray, np.ndarray]:
    K = np.array([[intr["fx"], 0.0, intr["cx"]], [0.0, intr["fy"], intr["cy"]], [0.0, 0.0, 1.0]])
    D = np.array([intr["k1"], intr["k2"], intr["k3"], intr["k4"]], dtype=np.float64)
    return K, D


class FisheyeView:
    """A fisheye camera that images a pinhole canvas: each pixel's normalised ray, once."""

    def __init__(self, intrinsics: dict):
        self.intrinsics = dict(intrinsics)
        self.width = int(intrinsics["image_width"])
        self.height = int(intrinsics["image_height"])
        self.K, self.D = _K_D(intrinsics)
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        pix = np.stack([xs, ys], axis=-1).reshape(-1, 1, 2)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
        rays = cv2.fisheye.undistortPoints(pix, self.K, self.D, criteria=crit).reshape(self.height, self.width, 2)
        if not np.isfinite(rays).all():
            raise InvalidInputError("synthetic fisheye: some pixels have no ray (distortion not invertible)")
        self.xn = np.ascontiguousarray(rays[..., 0], dtype=np.float32)
        self.yn = np.ascontiguousarray(rays[..., 1], dtype=np.float32)
        self.extent = (float(np.abs(self.xn).max()), float(np.abs(self.yn).max()))

    def project(self, pts_norm: np.ndarray) -> np.ndarray:
        """Fisheye pixel positions of normalised pinhole points (N, 2) -> (N, 2)."""
        p = np.asarray(pts_norm, dtype=np.float64).reshape(-1, 1, 2)
        return cv2.fisheye.distortPoints(p, self.K, self.D).reshape(-1, 2)

    def sample(
        self,
        canvas: "Canvas",
        rot: float = 0.0,
        dx: float = 0.0,
        dy: float = 0.0,
        wrap: bool = False,
    ) -> np.ndarray:
        """The fisheye image of `canvas` seen with the view rotated by `rot` radians about
        the optical axis and shifted by (dx, dy) normalised units (head motion)."""
        c, s = math.cos(rot), math.sin(rot)
        k = canvas.scale
        mx = (k * c) * self.xn - (k * s) * self.yn + (canvas.ox + k * dx)
        my = (k * s) * self.xn + (k * c) * self.yn + (canvas.oy + k * dy)
        border = cv2.BORDER_WRAP if wrap else cv2.BORDER_REPLICATE
        return cv2.remap(canvas.img, mx, my, cv2.INTER_LINEAR, borderMode=border)


class Canvas:
    """A pinhole-space image: normalised coordinate (x, y) sits at pixel (ox + s x, oy + s y)."""

    SHIFT = 4  # cv2 drawing with 1/16-pixel precision

    def __init__(self, half_w: float, half_h: float, scale: float, fill=(0, 0, 0), img: np.ndarray | None = None):
        self.scale = float(scale)
        w = int(math.ceil(2 * half_w * scale)) + 2
        h = int(math.ceil(2 * half_h * scale)) + 2
        self.ox, self.oy = w / 2.0, h / 2.0
        if img is None:
            img = np.empty((h, w, 3), np.uint8)
            img[:] = fill
        self.img = img

    def copy(self) -> "Canvas":
        other = Canvas.__new__(Canvas)
        other.scale, other.ox, other.oy = self.scale, self.ox, self.oy
        other.img = self.img.copy()
        return other

    def copy_into(self, other: "Canvas") -> "Canvas":
        np.copyto(other.img, self.img)
        return other

    @property
    def size(self) -> tuple[int, int]:
        return self.img.shape[1], self.img.shape[0]

    def px(self, x: float, y: float) -> tuple[int, int]:
        """Fixed-point pixel coordinates for cv2 drawing (shift=SHIFT)."""
        f = 1 << self.SHIFT
        return int(round((self.ox + self.scale * x) * f)), int(round((self.oy + self.scale * y) * f))

    def ipx(self, x: float, y: float) -> tuple[int, int]:
        return int(round(self.ox + self.scale * x)), int(round(self.oy + self.scale * y))

    def length(self, v: float) -> int:
        return max(1, int(round(v * self.scale)))

    def rect(self, x0, y0, x1, y1, color, thickness=-1) -> None:
        cv2.rectangle(self.img, self.px(x0, y0), self.px(x1, y1), color, thickness, cv2.LINE_AA, self.SHIFT)

    def poly(self, pts, color) -> None:
        arr = np.array([self.px(x, y) for x, y in pts], np.int32)
        cv2.fillPoly(self.img, [arr], color, cv2.LINE_AA, self.SHIFT)

    def line(self, x0, y0, x1, y1, color, width: float) -> None:
        cv2.line(self.img, self.px(x0, y0), self.px(x1, y1), color, self.length(width), cv2.LINE_AA, self.SHIFT)

    def ellipse(self, x, y, ax, ay, angle_deg, color) -> None:
        f = 1 << self.SHIFT
        axes = (int(round(ax * self.scale * f)), int(round(ay * self.scale * f)))
        cv2.ellipse(self.img, self.px(x, y), axes, angle_deg, 0, 360, color, -1, cv2.LINE_AA, self.SHIFT)

    def region(self, x0, y0, x1, y1) -> tuple[slice, slice]:
        """Numpy slices of the canvas pixels inside a normalised rectangle (clipped)."""
        h, w = self.img.shape[:2]
        a, b = self.ipx(x0, y0)
        c, d = self.ipx(x1, y1)
        return slice(max(0, b), min(h, d)), slice(max(0, a), min(w, c))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float, aniso: float = 1.0) -> np.ndarray:
    """Value noise in [0, 1] with features about `cell` pixels wide (`aniso` x longer
    horizontally), made by upsampling a small random grid."""
    gh = max(2, int(round(h / cell)))
    gw = max(2, int(round(w / (cell * aniso))))
    small = rng.random((gh, gw)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _tint(img_region: np.ndarray, color, noise: np.ndarray, depth: float) -> None:
    """Fill a region with `color` modulated by noise in [0, 1] (+/- depth)."""
    mod = (1.0 - depth) + 2.0 * depth * noise[..., None]
    img_region[:] = np.clip(np.asarray(color, np.float32)[None, None, :] * mod, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------ the scenes

# Head-bob: walking/working sway the view at ~2 Hz (vertical + roll) and ~1 Hz (lateral).
BOB_HZ = 2.0
BOB_Y, BOB_X, BOB_ROLL = 0.015, 0.010, math.radians(0.6)
MARGIN = 0.2  # normalised units of canvas beyond the view, for head motion


@dataclass(frozen=True)
class PlantedSpan:
    """A planted off-task span of one clip, in whole seconds."""

    start_sec: int
    end_sec: int
    kind: str

    @property
    def label(self) -> str:
        return ANOMALY_LABELS[self.kind]

    def as_dict(self) -> dict:
        return {"start_sec": self.start_sec, "end_sec": self.end_sec, "kind": self.kind, "label": self.label}


def plan_spans(duration_sec: float, clip_number: int, rng: np.random.Generator) -> list[PlantedSpan]:
    """Where the off-task spans of a clip go, in whole seconds, deterministic from `rng`.

    One span (two in clips of >= 90 s) of 12-20 % of the clip but at least 15 s (never
    more than 40 % of the clip, never under 8 s), with >= 15 s of work between two spans.
    The detector's EMA lags a step by ~2 s on and ~8 s off, so shorter spans could not
    reach IoU 0.5 however clear they are. The placement cycles with the clip number:
    in the middle, near the start, running to the clip's end."""
    D = int(math.floor(duration_sec))
    if D < MIN_ANOMALY_DURATION_SEC:
        return []

    def length() -> int:
        L = max(SPAN_SEC_FLOOR, round(rng.uniform(0.12, 0.2) * D))
        return int(max(MIN_SPAN_SEC, min(L, int(0.4 * D))))

    mode = clip_number % 3
    k0 = clip_number + clip_number // 3  # every kind in every placement over 9 clips
    kinds = [ANOMALY_KINDS[(k0 + j) % len(ANOMALY_KINDS)] for j in range(2)]
    L = length()
    two = D >= TWO_SPANS_MIN_SEC
    if mode == 0:  # in the middle (in the first third when a second span follows)
        a, b = (0.1, 0.3) if two else (0.3, 0.6)
        lo, hi = int(a * D), max(int(a * D), int(b * D) - L)
        s = int(rng.integers(lo, hi + 1))
    elif mode == 1:  # near the start
        s = int(rng.integers(1, 3))
    else:  # running to the end of the clip
        s = D - L
    spans = [(s, s + L)]
    if two:
        L2 = length()
        gap = max(15, L2)
        if mode == 2:  # another one before the end span
            hi = spans[0][0] - gap - L2
            lo = max(3, hi - D // 8)
            if hi >= lo:
                s2 = int(rng.integers(lo, hi + 1))
                spans.insert(0, (s2, s2 + L2))
        else:  # another one after the first, with work after it
            lo = spans[0][1] + gap
            hi = D - L2 - 10
            if hi >= lo:
                s2 = int(rng.integers(lo, min(hi, lo + D // 8) + 1))
                spans.append((s2, s2 + L2))
    return [PlantedSpan(a, b, kinds[j]) for j, (a, b) in enumerate(spans)]


class ClipRenderer:
    """Renders one synthetic clip frame by frame (memory independent of its length).

    `scene_seed` fixes the worker's bench scene; `clip_seed` the cycle period/phase.
    `spans` are the planted off-task spans (seconds)."""

    def __init__(
        self,
        intrinsics: dict,
        fps: float,
        spans: Sequence[PlantedSpan] = (),
        scene_seed: int | Sequence[int] = 0,
        clip_seed: int | Sequence[int] = 0,
        canvas_scale: float = 0.8,
    ):
        self.view = FisheyeView(intrinsics)
        self.fps = float(fps)
        self.spans = list(spans)
        f = float(intrinsics["fx"])
        self.scale = canvas_scale * f  # canvas px per normalised unit (~fisheye px near the centre)
        hw, hh = self.view.extent
        self.half = (hw + MARGIN, hh + MARGIN)
        scene_rng = np.random.default_rng(scene_seed)
        clip_rng = np.random.default_rng(clip_seed)
        self.period = float(clip_rng.uniform(4.5, 5.5))
        self.phase0 = float(clip_rng.uniform(0, 1))
        self.bob_phase = clip_rng.uniform(0, 2 * math.pi, size=3)
        self._work = self._build_work(scene_rng)
        self._frame = self._work.copy()
        self._aisle = self._build_aisle(scene_rng)
        self._floor = self._build_floor(scene_rng)
        self._phone = self._build_phone(scene_rng)
        self._phone_frame = self._phone.copy()
        self._floor_cache: dict[int, np.ndarray] = {}

    # ---- static backgrounds (built once per clip)

    def _build_work(self, rng: np.random.Generator) -> Canvas:
        """The work scene: pegboard wall, shelf, wooden bench, bin, press, tray, floor."""
        jitter = rng.uniform(-12, 12, size=3)
        c = Canvas(*self.half, self.scale)
        H, W = c.img.shape[:2]
        wall = np.array([168, 160, 148]) + jitter
        bench_y0, bench_y1, edge_y1 = 0.12, 0.95, 1.06
        # wall: pale blue-grey with soft blotches, a pegboard of dark holes
        ys = c.region(-99, -99, 99, bench_y0)
        _tint(c.img[ys], wall, _smooth_noise(rng, H, W, 0.6 * self.scale)[ys], 0.06)
        step = 0.1
        for gx in np.arange(-math.floor(self.half[0] / step) * step, self.half[0], step):
            for gy in np.arange(-math.floor(self.half[1] / step) * step, bench_y0 - 0.03, step):
                cv2.circle(c.img, c.px(gx, gy), max(1, int(0.012 * self.scale * 16)), (92, 88, 84), -1,
                           cv2.LINE_AA, c.SHIFT)
        # shelf with cardboard boxes
        c.rect(-1.6, -0.58, 1.6, -0.52, (40, 60, 90))
        for bx, bw, bh in ((-1.3, 0.35, 0.3), (-0.85, 0.25, 0.22), (-0.2, 0.4, 0.34), (0.9, 0.3, 0.26)):
            c.rect(bx, -0.58 - bh, bx + bw, -0.58, (95, 140, 190))
            c.line(bx, -0.58 - bh / 2, bx + bw, -0.58 - bh / 2, (70, 110, 160), 0.015)
        # bench top: wood with horizontal grain
        ys = c.region(-99, bench_y0, 99, bench_y1)
        grain = _smooth_noise(rng, H, W, 0.05 * self.scale, aniso=12)
        _tint(c.img[ys], np.array([70, 118, 168]) + jitter / 2, grain[ys], 0.18)
        c.rect(-99, bench_y1, 99, edge_y1, (38, 46, 58))
        ys = c.region(-99, edge_y1, 99, 99)
        _tint(c.img[ys], (78, 84, 90), _smooth_noise(rng, H, W, 0.15 * self.scale)[ys], 0.15)
        # bin with parts (left)
        c.rect(-0.82, -0.04, -0.38, 0.3, (120, 88, 56))
        c.rect(-0.78, -0.02, -0.42, 0.08, (70, 50, 30))
        for px_ in (-0.74, -0.62, -0.5):
            c.rect(px_, -0.01, px_ + 0.09, 0.05, (0, 130, 240))
        # press (right): steel frame, dark opening, hazard base
        c.rect(0.36, -1.05, 0.84, 0.34, (150, 150, 144))
        c.rect(0.45, -0.38, 0.75, 0.25, (55, 58, 60))
        c.rect(0.36, 0.25, 0.84, 0.34, (0, 210, 240))
        for sx in np.arange(0.36, 0.84, 0.08):
            c.poly([(sx, 0.34), (sx + 0.04, 0.34), (sx + 0.07, 0.25), (sx + 0.03, 0.25)], (20, 20, 20))
        c.rect(0.55, -1.05, 0.65, -0.38, (120, 120, 116))
        # output tray (front middle)
        c.rect(-0.16, 0.5, 0.22, 0.74, (60, 140, 60))
        c.rect(-0.13, 0.53, 0.19, 0.71, (45, 110, 45))
        return c

    def _build_aisle(self, rng: np.random.Generator) -> Canvas:
        """A dim warehouse aisle: red racks with red/orange/magenta boxes over a dark
        floor; horizontally periodic so panning can wrap around."""
        spacing = 0.5
        half_w = math.ceil((self.half[0] + 0.5) / spacing) * spacing
        # The width must be a whole number of rack bays in pixels for a seamless wrap.
        bays = int(round(2 * half_w / spacing))
        bay_px = max(8, int(round(spacing * self.scale)))
        c = Canvas(half_w, self.half[1], self.scale)
        H = c.img.shape[0]
        c.img = np.zeros((H, bays * bay_px, 3), np.uint8)
        c.ox = c.img.shape[1] / 2.0
        W = c.img.shape[1]
        _tint(c.img, (30, 22, 28), _smooth_noise(rng, H, W, 0.2 * self.scale), 0.4)
        ys = c.region(-99, 0.25, 99, 99)
        _tint(c.img[ys], (22, 26, 26), _smooth_noise(rng, H, W, 0.08 * self.scale)[ys], 0.35)
        palette = [(40, 30, 210), (20, 90, 230), (130, 20, 180), (30, 30, 150), (60, 60, 240)]
        for b in range(bays):
            x0 = -c.ox / c.scale + b * bay_px / c.scale
            for level, (y0, y1) in enumerate(((-1.3, -0.75), (-0.7, -0.2), (-0.15, 0.2))):
                n = 1 + (b + level) % 3
                w = (spacing - 0.1) / n
                for i in range(n):
                    col = palette[int(rng.integers(len(palette)))]
                    c.rect(x0 + 0.06 + i * w, y0 + 0.05 + 0.1 * ((b + i) % 2), x0 + 0.04 + (i + 1) * w, y1, col)
                c.rect(x0, y1, x0 + spacing, y1 + 0.05, (20, 20, 170))
            c.rect(x0, -99, x0 + 0.05, 0.3, (10, 10, 120))
        # dim lane lines on the floor
        c.rect(-99, 0.55, 99, 0.6, (0, 110, 140))
        c.rect(-99, 1.1, 99, 1.18, (0, 110, 140))
        return c

    def _build_floor(self, rng: np.random.Generator) -> Canvas:
        """Looking down at a black rubber floor mat: studded texture, red/black hazard
        tape across it, boots."""
        c = Canvas(*self.half, self.scale)
        H, W = c.img.shape[:2]
        speck = rng.random((H, W)).astype(np.float32)
        base = 0.6 * _smooth_noise(rng, H, W, 0.3 * self.scale) + 0.4 * speck
        _tint(c.img, (34, 32, 36), base, 0.45)
        step = 0.12
        for gx in np.arange(-self.half[0], self.half[0], step):
            for gy in np.arange(-self.half[1], self.half[1], step):
                cv2.circle(c.img, c.px(gx, gy), max(1, int(0.02 * self.scale * 16)), (60, 58, 62), -1,
                           cv2.LINE_AA, c.SHIFT)
        for i in range(-6, 7):
            x = i * 0.3
            c.poly([(x - 2, 1.5), (x - 1.85, 1.5), (x + 0.15, -1.5), (x, -1.5)],
                   (20, 20, 190) if i % 2 else (10, 10, 10))
        c.ellipse(-0.35, 0.75, 0.2, 0.42, 8, (40, 50, 75))
        c.ellipse(0.35, 0.78, 0.2, 0.42, -8, (40, 50, 75))
        return c

    def _build_phone(self, rng: np.random.Generator) -> Canvas:
        """Dark surroundings, a hand-held phone; the screen is redrawn per frame."""
        c = Canvas(*self.half, self.scale)
        H, W = c.img.shape[:2]
        _tint(c.img, (40, 28, 30), _smooth_noise(rng, H, W, 0.4 * self.scale), 0.5)
        c.ellipse(0.0, 0.85, 0.55, 0.35, 0, (120, 150, 205))  # hand / fingers
        c.rect(-0.42, -0.62, 0.42, 0.82, (10, 10, 10))  # phone body
        self._screen = (-0.36, -0.54, 0.36, 0.72)
        # a dark-mode feed: black rows between warm-coloured posts
        palette = np.array([(40, 40, 220), (30, 120, 240), (150, 40, 200), (60, 60, 160)], np.uint8)
        self._feed = np.zeros((64, 3), np.uint8)
        self._feed[:] = (18, 16, 20)
        self._feed[1::2] = palette[rng.integers(len(palette), size=32)]
        return c

    # ---- per-frame content

    def span_at(self, t: float) -> PlantedSpan | None:
        for sp in self.spans:
            if sp.start_sec <= t < sp.end_sec:
                return sp
        return None

    def _bob(self, t: float, gain: float = 1.0) -> tuple[float, float, float]:
        p = self.bob_phase
        w = 2 * math.pi * BOB_HZ * t
        return (
            gain * BOB_ROLL * math.sin(w + p[0]),
            gain * BOB_X * math.sin(0.5 * w + p[1]),
            gain * BOB_Y * math.sin(w + p[2]),
        )

    def _work_frame(self, t: float) -> Canvas:
        c = self._work.copy_into(self._frame)
        ph = ((t / self.period) + self.phase0) % 1.0
        home, bin_, press, tray = (0.05, 0.62), (-0.6, 0.02), (0.6, 0.12), (0.03, 0.6)

        def lerp(a, b, u):
            u = 0.5 - 0.5 * math.cos(math.pi * min(max(u, 0.0), 1.0))  # ease in/out
            return a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u

        def arc(a, b, u, lift=0.3):
            x, y = lerp(a, b, u)
            return x, y - lift * math.sin(math.pi * min(max(u, 0.0), 1.0))

        part = None
        piston = 0.0
        if ph < 0.15:
            hand = lerp(home, bin_, ph / 0.15)
        elif ph < 0.2:
            hand = bin_
            part = bin_
        elif ph < 0.45:
            hand = arc(bin_, press, (ph - 0.2) / 0.25)
            part = hand
        elif ph < 0.5:
            hand = part = press
        elif ph < 0.55:
            hand, part = lerp(press, (0.25, 0.45), (ph - 0.5) / 0.05), press
        elif ph < 0.72:
            hand, part = (0.25, 0.45), press
            piston = math.sin(math.pi * (ph - 0.55) / 0.17)
        elif ph < 0.78:
            hand, part = lerp((0.25, 0.45), press, (ph - 0.72) / 0.06), press
        elif ph < 0.95:
            hand = arc(press, tray, (ph - 0.78) / 0.17, lift=0.15)
            part = hand
        else:
            hand = lerp(tray, home, (ph - 0.95) / 0.05)
        # piston between the press jaws
        c.rect(0.5, -0.38, 0.7, -0.3 + 0.45 * piston, (175, 178, 180))
        c.rect(0.48, -0.32 + 0.45 * piston, 0.72, -0.26 + 0.45 * piston, (90, 95, 100))
        if ph >= 0.95 or ph < 0.15:
            c.rect(tray[0] - 0.06, tray[1] - 0.04, tray[0] + 0.06, tray[1] + 0.04, (0, 140, 255))
        if part is not None:
            x, y = part
            c.rect(x - 0.07, y - 0.045, x + 0.07, y + 0.045, (0, 140, 255))
            c.rect(x - 0.03, y - 0.02, x + 0.03, y + 0.02, (0, 90, 170))
        # forearm from the bottom right, blue glove at the hand
        hx, hy = hand
        c.poly([(hx - 0.07, hy + 0.02), (hx + 0.07, hy - 0.02), (0.95 + 0.2 * hx, 2.2), (0.55 + 0.2 * hx, 2.2)],
               (70, 75, 80))
        c.ellipse(hx, hy + 0.02, 0.11, 0.08, -25, (200, 110, 40))
        return c

    def _phone_frame_at(self, t: float) -> Canvas:
        c = self._phone.copy_into(self._phone_frame)
        x0, y0, x1, y1 = self._screen
        ys, xs = c.region(x0, y0, x1, y1)
        h = ys.stop - ys.start
        band = max(2, int(round(0.09 * self.scale)))
        offset = int(t * 0.35 * self.scale)  # scrolling feed
        rows = ((np.arange(h) + offset) // band) % len(self._feed)
        c.img[ys, xs] = self._feed[rows][:, None, :]
        return c

    def frame(self, i: int) -> np.ndarray:
        """Frame `i` of the clip as a fisheye BGR uint8 image."""
        t = i / self.fps
        sp = self.span_at(t)
        if sp is None:
            return self.view.sample(self._work_frame(t), *self._bob(t))
        if sp.kind == "aisle":
            rot, dx, dy = self._bob(t, gain=3.0)
            return self.view.sample(self._aisle, rot, dx + 0.45 * (t - sp.start_sec), dy, wrap=True)
        if sp.kind == "floor":
            # everything stops: one frame, held for the whole span
            key = id(sp)
            if key not in self._floor_cache:
                self._floor_cache = {key: self.view.sample(self._floor, *self._bob(sp.start_sec, gain=0.5))}
            return self._floor_cache[key]
        return self.view.sample(self._phone_frame_at(t), *self._bob(t, gain=0.4))

    def frames(self, n_frames: int) -> Iterator[np.ndarray]:
        for i in range(n_frames):
            yield self.frame(i)


# ---------------------------------------------------------------- straight-line test


def lines_pattern() -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The straight lines of the lines-only test pattern, as endpoints in normalised
    pinhole coordinates (x/z, y/z); none passes through the optical centre, so the
    fisheye bends all of them."""
    lines = []
    for y in (-0.55, -0.3, 0.3, 0.55):
        lines.append(((-1.4, y), (1.4, y)))
    for x in (-0.9, -0.5, 0.5, 0.9):
        lines.append(((x, -0.8), (x, 0.8)))
    lines.append(((-1.2, -0.7), (0.6, 0.75)))  # one oblique line
    return lines


def render_lines_frame(
    intrinsics: dict,
    lines: Sequence[tuple[tuple[float, float], tuple[float, float]]] | None = None,
    canvas_scale: float = 2.0,
    width_px: float = 1.6,
) -> np.ndarray:
    """A fisheye BGR frame of straight lines (default `lines_pattern()`): thin white
    lines on black, rendered through the same pinhole-canvas -> fisheye mapping as the
    clips. `width_px` is the line width in fisheye pixels near the image centre."""
    view = FisheyeView(intrinsics)
    scale = canvas_scale * float(intrinsics["fx"])
    c = Canvas(view.extent[0] + 0.05, view.extent[1] + 0.05, scale)
    for (x0, y0), (x1, y1) in lines_pattern() if lines is None else lines:
        c.line(x0, y0, x1, y1, (255, 255, 255), width_px / float(intrinsics["fx"]))
    # Soften the canvas so the fisheye's peripheral minification samples it without aliasing.
    c.img = cv2.GaussianBlur(c.img, (0, 0), 0.5 * canvas_scale)
    return view.sample(c)


# ------------------------------------------------------------------------ the dataset


def _sidecar(factory: int, worker: int, index: int, n_frames: int, cfg: SynthConfig, size: int) -> dict:
    return {
        "factory_id": f"factory_{factory:03d}",
        "worker_id": f"worker_{worker:03d}",
        "video_index": index,
        "duration_sec": round(n_frames / cfg.fps, 6),
        "width": cfg.width,
        "height": cfg.height,
        "fps": float(cfg.fps),
        "size_bytes": size,
        "codec": "h265",
    }


def _add_member(tar: tarfile.TarFile, name: str, size: int, fileobj) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, fileobj)


def write_clip(
    path: str | os.PathLike, renderer: ClipRenderer, n_frames: int, crf: int = 28, preset: str = "fast"
) -> dict:
    """Render and encode one clip (H.265) to `path` atomically; returns its probe."""
    r = renderer.view
    with atomic.atomic_path(path) as tmp:
        with VideoWriter(tmp, renderer.fps, r.width, r.height, codec="libx265", crf=crf, preset=preset) as w:
            for frame in renderer.frames(n_frames):
                w.write(frame)
    return probe(path).as_dict()


def write_dataset(out_dir: str | os.PathLike, cfg: SynthConfig | None = None) -> dict:
    """Write a synthetic dataset with the Egocentric-10K layout under `out_dir`.

    Every file is written atomically; files already there under the same names are
    replaced, other files are left alone (use a fresh folder for a clean dataset).
    Returns a summary: the config, intrinsics and shard paths, every clip (id, shard,
    frames, duration, size, planted spans) and the ground-truth CSV path."""
    cfg = cfg or SynthConfig()
    if not isinstance(cfg, SynthConfig):
        raise InvalidInputError(f"synth config: expected SynthConfig, got {type(cfg).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"synth output {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    intr = synth_intrinsics(cfg.width, cfg.height)
    n_frames = cfg.n_frames
    summary: dict = {
        "out_dir": str(out),
        "config": asdict(cfg),
        "intrinsics": [],
        "shards": [],
        "clips": [],
        "ground_truth": str(out / "ground_truth.csv"),
    }
    gt_rows: list[list] = []
    scratch = Path(tempfile.mkdtemp(prefix=".synth-", dir=out))
    try:
        for f in range(1, cfg.factories + 1):
            for w in range(1, cfg.workers + 1):
                wdir = out / f"factory_{f:03d}" / "workers" / f"worker_{w:03d}"
                atomic.write_json(wdir / "intrinsics.json", intr)
                summary["intrinsics"].append(str(wdir / "intrinsics.json"))
                groups = np.array_split(np.arange(cfg.clips), cfg.shards)
                for part, indices in enumerate(groups):
                    tar_path = wdir / f"factory{f:03d}_worker{w:03d}_part{part:02d}.tar"
                    with atomic.atomic_path(tar_path) as tmp_tar:
                        with tarfile.open(tmp_tar, "w", format=tarfile.USTAR_FORMAT) as tar:
                            for idx in indices.tolist():
                                clip = _write_one(tar, scratch, f, w, idx, cfg, intr, n_frames)
                                clip["shard"] = str(tar_path)
                                summary["clips"].append(clip)
                                for sp in clip["planted"]:
                                    gt_rows.append(
                                        [clip["clip_id"], f"{clip['duration_sec']:g}", mmss(sp["start_sec"]),
                                         mmss(sp["end_sec"]), sp["label"]]
                                    )
                    summary["shards"].append(str(tar_path))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_id", "clip_duration_sec", "start", "end", "label"])
    writer.writerows(gt_rows)
    atomic.write_bytes(out / "ground_truth.csv", buf.getvalue().encode())
    return summary


def _write_one(tar, scratch: Path, f: int, w: int, idx: int, cfg: SynthConfig, intr: dict, n_frames: int) -> dict:
    clip_id = f"factory{f:03d}_worker{w:03d}_{idx:05d}"
    clean = not cfg.anomalies or idx >= cfg.clips - cfg.clean_clips
    plan_rng = np.random.default_rng([cfg.seed, f, w, idx, 1])
    spans = [] if clean else plan_spans(n_frames / cfg.fps, idx, plan_rng)
    renderer = ClipRenderer(
        intr, cfg.fps, spans, scene_seed=[cfg.seed, f, w], clip_seed=[cfg.seed, f, w, idx, 2]
    )
    mp4 = scratch / f"{clip_id}.mp4"
    info = write_clip(mp4, renderer, n_frames, crf=cfg.crf, preset=cfg.preset)
    size = mp4.stat().st_size
    sidecar = _sidecar(f, w, idx, info["n_frames"], cfg, size)
    with open(mp4, "rb") as fh:
        _add_member(tar, f"{clip_id}.mp4", size, fh)
    side_bytes = json.dumps(sidecar).encode()
    _add_member(tar, f"{clip_id}.json", len(side_bytes), io.BytesIO(side_bytes))
    mp4.unlink()
    return {
        "clip_id": clip_id,
        "n_frames": info["n_frames"],
        "duration_sec": sidecar["duration_sec"],
        "size_bytes": size,
        "cycle_period_sec": round(renderer.period, 3),
        "planted": [sp.as_dict() for sp in spans],
    }
