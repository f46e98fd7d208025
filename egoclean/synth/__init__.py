"""Synthetic Egocentric-10K: a small local dataset with the real layout and known truth.

Each clip is rendered in 3D (egoclean.synth.scene): a workshop of textured boxes (floor,
walls at 1.3-14 m, bench, bin, press, tray, shelf, mat, racks along an aisle) ray-cast
through a known fisheye (Kannala-Brandt) camera, the same model as `intrinsics.json`
(each pixel's ray from `cv2.fisheye.undistortPoints`, once per clip). The head moves in
the room, so near and far things move differently (parallax), and its true path is
written beside each clip in TUM format (`<clip_id>.tum.txt`: timestamp tx ty tz qx qy qz
qw, camera-to-world, OpenCV camera axes, metres; world z up, floor at z = 0).

Content: a worker at a bench repeats a work cycle (a part carried from a bin to a press,
pressed, and put on a tray; period 4.5-5.5 s) under ~2 Hz head-bob, interrupted by planted off-task spans whose scenes
differ strongly in colour, texture, layout and motion: turning round and walking down
an aisle between red racks and back, idling frozen over the floor mat, looking at a
phone. The planted spans are written to `ground_truth.csv` in the format of the seed
ground truth.

Layout (as in the real dataset): `factory_XXX/workers/worker_YYY/intrinsics.json` and
`factoryXXX_workerYYY_partNN.tar` shards of `factoryXXX_workerYYY_NNNNN.mp4` (H.265)
+ `.json` sidecar members, clip indices continuing across a worker's shards; the
camera paths (`<clip_id>.tum.txt`) lie beside the shards.
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

from egoclean.core import atomic, defaults
from egoclean.core.errors import InvalidInputError
from egoclean.core.timecode import mmss
from egoclean.media.video import VideoWriter, probe
from egoclean.synth import scene

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

    def px(self, x: float, y: float) -> tuple[int, int]:
        """Fixed-point pixel coordinates for cv2 drawing (shift=SHIFT)."""
        f = 1 << self.SHIFT
        return int(round((self.ox + self.scale * x) * f)), int(round((self.oy + self.scale * y) * f))

    def length(self, v: float) -> int:
        return max(1, int(round(v * self.scale)))

    def line(self, x0, y0, x1, y1, color, width: float) -> None:
        cv2.line(self.img, self.px(x0, y0), self.px(x1, y1), color, self.length(width), cv2.LINE_AA, self.SHIFT)


# ------------------------------------------------------------------------ the clips


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
    """Renders one synthetic clip frame by frame (memory independent of its length), and
    the camera's true path: a head in the 3D workshop of `egoclean.synth.scene`.

    At work the head stands at the bench and bobs (~2 Hz: +-1.2 cm up and down, +-0.8 cm
    sideways, +-0.6 degree roll and pitch); the hand carries a part from the bin to the press,
    presses it and puts it on the tray (period 4.5-5.5 s). Off-task spans: "aisle" turns
    round, walks down the aisle between the racks, looks around, walks back; "floor"
    turns round and stares at the rubber mat (a frozen view); "phone" turns away and
    holds a phone in front of the camera. Turns take `scene.TURN_SEC` inside the span.

    `scene_seed` fixes the worker's workshop; `clip_seed` the cycle period/phase and
    head-bob phases. `spans` are the planted off-task spans (seconds). `pose(i)` is
    frame i's camera-to-world pose (R, position in metres; OpenCV camera axes)."""

    def __init__(
        self,
        intrinsics: dict,
        fps: float,
        spans: Sequence[PlantedSpan] = (),
        scene_seed: int | Sequence[int] = 0,
        clip_seed: int | Sequence[int] = 0,
        gaze_yaw_per_m: float = scene.GAZE_YAW_PER_M,
    ):
        self.view = FisheyeView(intrinsics)
        self.gaze_yaw_per_m = float(gaze_yaw_per_m)  # 0: head-bob alone at work
        self.fps = float(fps)
        self.spans = list(spans)
        clip_rng = np.random.default_rng(clip_seed)
        self.period = float(clip_rng.uniform(4.5, 5.5))
        self.phase0 = float(clip_rng.uniform(0, 1))
        self.bob_phase = clip_rng.uniform(0, 2 * math.pi, size=3)
        # texture detail follows the output resolution (texels ~ pixels at the bench)
        detail = min(2.0, max(0.25, float(intrinsics["fx"]) / 258.0))
        self.workshop = scene.build_workshop(scene_seed, ppm_scale=detail)
        rays = np.dstack([self.view.xn, self.view.yn, np.ones_like(self.view.xn)]).astype(np.float64)
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        self.workshop.scene.set_camera(intrinsics, rays)
        self._last: tuple | None = None

    # ---- the work cycle

    def span_at(self, t: float) -> PlantedSpan | None:
        for sp in self.spans:
            if sp.start_sec <= t < sp.end_sec:
                return sp
        return None

    def _cycle(self, t: float) -> tuple[np.ndarray, bool, float]:
        """Hand position (world), whether it carries a part, piston travel in [0, 1]."""
        ph = ((t / self.period) + self.phase0) % 1.0
        z = scene.BENCH_TOP
        home, bin_ = np.array([0.05, 0.62, z + 0.05]), np.array([-0.66, 0.66, z + 0.22])
        press, tray = np.array([0.58, 0.88, z + 0.12]), np.array([0.0, 0.58, z + 0.07])
        wait = np.array([0.28, 0.6, z + 0.1])

        def lerp(a, b, u):
            return a + (b - a) * scene._ease(u)

        def arc(a, b, u, lift=0.25):
            p = lerp(a, b, u)
            p[2] += lift * math.sin(math.pi * min(max(u, 0.0), 1.0))
            return p

        carry, piston = False, 0.0
        if ph < 0.15:
            hand = lerp(home, bin_, ph / 0.15)
        elif ph < 0.2:
            hand, carry = bin_, True
        elif ph < 0.45:
            hand, carry = arc(bin_, press, (ph - 0.2) / 0.25), True
        elif ph < 0.5:
            hand, carry = press, True
        elif ph < 0.55:
            hand = lerp(press, wait, (ph - 0.5) / 0.05)
        elif ph < 0.72:
            hand, piston = wait, math.sin(math.pi * (ph - 0.55) / 0.17)
        elif ph < 0.78:
            hand = lerp(wait, press, (ph - 0.72) / 0.06)
        elif ph < 0.95:
            hand, carry = arc(press, tray, (ph - 0.78) / 0.17, lift=0.12), True
        else:
            hand = lerp(tray, home, (ph - 0.95) / 0.05)
        return np.asarray(hand, np.float64), carry, piston

    def _bob(self, t: float, gain: float) -> tuple[np.ndarray, float, float]:
        """Head-bob: position offset (m), roll and pitch offsets (rad)."""
        p = self.bob_phase
        w = 2 * math.pi * scene.BOB_HZ * t
        off = np.array([gain * scene.BOB_X * math.sin(0.5 * w + p[1]), 0.0, gain * scene.BOB_Z * math.sin(w + p[2])])
        return off, gain * scene.BOB_ROLL * math.sin(w + p[0]), gain * scene.BOB_PITCH * math.sin(w + p[2] + 1.0)

    def _work_state(self, t: float) -> scene.HeadState:
        # Head-bob at work, and a glance of about a degree after the hand. A head turning
        # fully with the work cycle makes each 64-frame window look different from the next
        # (the tiny random-weight model's similarity drops from ~0.99 to ~0.7) and the work
        # would no longer be the typical part of a clip; without any glance the hand alone
        # is too small in the centre crop for the cycle's period to be measured (the export
        # cuts episodes at it). Head-bob averages out within a window.
        off, roll, pitch = self._bob(t, 1.0)
        yaw = self.gaze_yaw_per_m * float(self._cycle(t)[0][0])
        return scene.HeadState(scene.STAND + off, yaw, scene.WORK_PITCH + pitch, roll)

    # ---- the head's path

    def _state(self, t: float) -> tuple[scene.HeadState, float, float]:
        """Head state, work weight (1 at work, 0 off task) and phone raise (0 away, 1 held)."""
        work = self._work_state(t)
        sp = self.span_at(t)
        if sp is None:
            return work, 1.0, 0.0
        s, e = float(sp.start_sec), float(sp.end_sec)
        T = min(scene.TURN_SEC, (e - s) / 4)
        u_in, u_out = scene._ease((t - s) / T), scene._ease((t - (e - T)) / T)
        weight = (1 - u_in) if t < s + T else (u_out if t >= e - T else 0.0)
        if sp.kind == "floor":
            body = scene.HeadState(scene.STAND + np.array([0.0, -0.3, -0.02]), math.pi - 0.3, math.radians(-70), 0.0)
            raise_ = 0.0
        elif sp.kind == "phone":
            off, roll, pitch = self._bob(t, 0.4)
            body = scene.HeadState(scene.STAND + off, math.pi - 0.5, math.radians(-50) + pitch, roll)
            raise_ = 1.0 - weight
        else:
            body = self._aisle_state(t, s, e, T)
            raise_ = 0.0
        if t < s + T:
            return work.blend(body, u_in), weight, raise_
        if t >= e - T:
            return body.blend(work, u_out), weight, raise_
        return body, weight, raise_

    def _aisle_state(self, t: float, s: float, e: float, T: float) -> scene.HeadState:
        """Turn round, walk down the aisle, look around at the racks, turn, walk back."""
        L = e - s
        walk = min(scene.WALK_MAX_M / scene.WALK_SPEED, (L - 3 * T) / 2)
        dwell = max(0.0, L - 3 * T - 2 * walk)
        dist = scene.WALK_SPEED * walk
        pitch = math.radians(-12)
        u = t - s
        t_out, t_dwell, t_turn, t_back = T, T + walk, T + walk + dwell, 2 * T + walk + dwell
        p0 = scene.STAND
        if u < t_out:
            return scene.HeadState(p0.copy(), math.pi, pitch, 0.0)
        if u < t_dwell:
            v = (u - t_out) / walk
            y = -dist * scene._min_jerk(v)
            gain = scene.WALK_BOB * math.sin(math.pi * v) ** 2
        elif u < t_back:
            y, gain = -dist, 0.0
        else:
            v = min(1.0, (u - t_back) / walk)
            y = -dist * (1 - scene._min_jerk(v))
            gain = scene.WALK_BOB * math.sin(math.pi * v) ** 2
        off, roll, bp = self._bob(t, gain)
        pos = p0 + np.array([0.0, y, 0.0]) + off
        # walking back the head looks at the racks on its left, not at the bench ahead
        back_yaw, back_pitch = scene.WALK_BACK_YAW, math.radians(-20)
        if u < t_turn:
            yaw = math.pi
            if t_dwell <= u and dwell > 0:
                v = (u - t_dwell) / dwell
                # a slow look left and right (smaller when the stay is short: no whip-turns)
                yaw += 0.6 * min(1.0, dwell / 4.0) * math.sin(2 * math.pi * v) * math.sin(math.pi * v)
        elif u < t_back:
            v = scene._ease((u - t_turn) / T)
            yaw, pitch = math.pi + (back_yaw - math.pi) * v, pitch + (back_pitch - pitch) * v
        else:
            yaw, pitch = back_yaw, back_pitch
        return scene.HeadState(pos, yaw, pitch + bp, roll)

    def pose(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame `i`'s camera-to-world pose: rotation (3, 3) and position (3,), metres."""
        return self._state(i / self.fps)[0].pose()

    def trajectory(self, n_frames: int):
        """The true camera path of frames 0..n-1 as an `egoclean.motion.Trajectory` (metric)."""
        from egoclean.motion.trajectory import Trajectory, matrix_to_quat

        t = np.arange(n_frames) / self.fps
        pos = np.empty((n_frames, 3))
        rot = np.empty((n_frames, 3, 3))
        for i in range(n_frames):
            rot[i], pos[i] = self.pose(i)
        return Trajectory.from_frames(t, pos, matrix_to_quat(rot), metric=True,
                                      meta={"source": "egoclean.synth ground truth"})

    # ---- frames

    def _place(self, t: float, weight: float, raise_: float, head: scene.HeadState) -> None:
        """Put the moving boxes where they are at time t."""
        ws = self.workshop
        hand, carry, piston = self._cycle(t)
        home = ws.hand_home
        hand = home + weight * (hand - home)
        at_work = weight > 0.02
        ws.piston.move_to((0.57, 0.85, scene.BENCH_TOP + 0.35 - 0.25 * weight * piston))
        ws.glove.move_to(hand - np.array([0.05, 0.04, 0.03]) if at_work else scene.HIDDEN)
        shoulder = head.pos + np.array([0.22, 0.05, -0.35])
        for k, box in enumerate(ws.arm):
            c = hand + (shoulder - hand) * (0.12 + 0.12 * k)
            box.move_to(c - (box.hi - box.lo) / 2 if at_work else scene.HIDDEN)
        ws.part.move_to(hand - np.array([0.06, 0.04, 0.05]) if at_work and carry else scene.HIDDEN)
        phone, grip = ws.phone
        if raise_ > 0:
            y = 0.45 * (1 - raise_)
            hw, hh = scene.PHONE_HALF
            phone.move_to((-hw, -hh + y, scene.PHONE_DEPTH))
            grip.move_to((-0.07, hh - 0.03 + y, scene.PHONE_DEPTH + 0.01))
            ws.scene.scroll(phone, 4, 0.03 * t)
        else:
            phone.move_to(scene.HIDDEN)
            grip.move_to(scene.HIDDEN)

    def frame(self, i: int) -> np.ndarray:
        """Frame `i` of the clip as a fisheye BGR uint8 image."""
        t = i / self.fps
        head, weight, raise_ = self._state(t)
        self._place(t, weight, raise_, head)
        R, pos = head.pose()
        sc = self.workshop.scene
        key = (R.tobytes(), pos.tobytes(), b"".join(b.lo.tobytes() for b in sc.boxes if b.dynamic),
               sc.f_ay0.tobytes() if raise_ > 0 else b"")
        if self._last is not None and self._last[0] == key:
            return self._last[1]  # nothing moved (a frozen stretch): the same image
        img = cv2.GaussianBlur(sc.render(R, pos), (0, 0), 0.6)  # the lens: no perfectly sharp edges
        self._last = (key, img)
        return img

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
                                clip = _write_one(tar, scratch, wdir, f, w, idx, cfg, intr, n_frames)
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


def _write_one(tar, scratch: Path, wdir: Path, f: int, w: int, idx: int, cfg: SynthConfig, intr: dict,
               n_frames: int) -> dict:
    clip_id = f"factory{f:03d}_worker{w:03d}_{idx:05d}"
    clean = not cfg.anomalies or idx >= cfg.clips - cfg.clean_clips
    plan_rng = np.random.default_rng([cfg.seed, f, w, idx, 1])
    spans = [] if clean else plan_spans(n_frames / cfg.fps, idx, plan_rng)
    renderer = ClipRenderer(
        intr, cfg.fps, spans, scene_seed=[cfg.seed, f, w], clip_seed=[cfg.seed, f, w, idx, 2]
    )
    mp4 = scratch / f"{clip_id}.mp4"
    info = write_clip(mp4, renderer, n_frames, crf=cfg.crf, preset=cfg.preset)
    poses = renderer.trajectory(info["n_frames"]).save_tum(wdir / f"{clip_id}{defaults.SYNTH_TRAJECTORY_SUFFIX}")
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
        "trajectory": str(poses),
        "planted": [sp.as_dict() for sp in spans],
    }
