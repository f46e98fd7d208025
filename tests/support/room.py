"""A tiny ray-cast renderer of a textured room for visual odometry tests and benchmarks.

The room: floor (z = 0), four walls, a bench and two bins, each a textured rectangle;
a pinhole camera (OpenCV axes) moves along a known path. Every pixel's ray is cut with
every rectangle and takes the nearest hit (an exact z-buffer), its colour sampled from
the rectangle's texture with bilinear interpolation. Paths are camera-to-world poses
(`R` (N, 3, 3), `C` (N, 3)) with world z up and the floor at z = 0.

Kept small on purpose: a stand-in until the project's synthetic generator with true 3D
motion (egoclean.synth) renders the fisheye clips; tests here render a few dozen frames
of 160..320 pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class Rect:
    """A textured rectangle: corner `o`, edge vectors `a` and `b` (world, metres)."""

    o: tuple[float, float, float]
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    seed: int
    texture: str = "noise"  # "noise" or "flat"


def texture(seed: int, size: int = 512, kind: str = "noise") -> np.ndarray:
    """A deterministic grey texture with detail at several scales (corners for KLT)."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return np.full((size, size), 90 + seed % 60, np.float32)
    img = np.zeros((size, size), np.float32)
    for cells, w in ((3, 0.8), (10, 0.8), (32, 1.0)):
        small = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
        img += w * cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) / (img.max() - img.min())
    lo = 10 + (seed * 37) % 60  # each surface its own brightness range: edges between them show
    return cv2.GaussianBlur(img * 170 + lo, (0, 0), 1.0)


def room(flat: bool = False) -> list[Rect]:
    """A 6 x 5 x 3 m room with a bench (0.9 m high) and two bins; `flat`: untextured."""
    kind = "flat" if flat else "noise"
    W, D, H = 6.0, 5.0, 3.0
    rects = [
        Rect((-W / 2, -1.5, 0), (W, 0, 0), (0, D, 0), 1, kind),          # floor
        Rect((-W / 2, D - 1.5, 0), (W, 0, 0), (0, 0, H), 2, kind),       # far wall
        Rect((-W / 2, -1.5, 0), (W, 0, 0), (0, 0, H), 3, kind),          # near wall
        Rect((-W / 2, -1.5, 0), (0, D, 0), (0, 0, H), 4, kind),          # left wall
        Rect((W / 2, -1.5, 0), (0, D, 0), (0, 0, H), 5, kind),           # right wall
        Rect((-W / 2, -1.5, H), (W, 0, 0), (0, D, 0), 6, kind),          # ceiling
        Rect((-1.0, 2.0, 0.9), (2.0, 0, 0), (0, 0.7, 0), 7, kind),       # bench top
        Rect((-1.0, 2.0, 0.0), (2.0, 0, 0), (0, 0, 0.9), 8, kind),       # bench front
        Rect((1.4, 1.6, 0.0), (0.5, 0, 0), (0, 0, 0.6), 9, kind),        # bin 1 front
        Rect((1.4, 1.6, 0.6), (0.5, 0, 0), (0, 0.5, 0), 10, kind),       # bin 1 top
        Rect((-2.0, 1.2, 0.0), (0.6, 0, 0), (0, 0, 0.5), 11, kind),      # bin 2 front
        Rect((-2.0, 1.2, 0.5), (0.6, 0, 0), (0, 0.5, 0), 12, kind),      # bin 2 top
    ]
    return rects


def look_at(c: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation of a camera at `c` looking at `target`, no roll (z up)."""
    z = target - c
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def head_path(n: int, kind: str = "walk", fps: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(R, C) of `n` frames: `walk` (steps toward the bench with head bob, looking at it),
    `work` (at the bench: small head motions, looking down at the work), `turn` (pure
    rotation about the vertical, no translation), `static` (no motion), `fast` (walk at
    four times the speed)."""
    t = np.arange(n) / fps
    rng = np.random.default_rng(seed)
    ph = rng.uniform(0, 2 * np.pi, 6)
    if kind in ("walk", "fast"):
        speed = 0.6 if kind == "walk" else 2.4
        s = np.minimum(t * speed, 2.0)
        C = np.stack([0.5 * np.sin(0.8 * t + ph[0]) * 0.6, -0.8 + s * 0.5, 1.6 + 0.02 * np.sin(2 * np.pi * 1.8 * t)], 1)
        targets = np.stack([0.4 * np.sin(0.9 * t + ph[1]), np.full(n, 2.4), 0.95 + 0.1 * np.sin(0.7 * t)], 1)
    elif kind == "work":
        C = np.stack([0.06 * np.sin(1.3 * t + ph[0]), 1.2 + 0.05 * np.sin(0.9 * t + ph[1]),
                      1.6 + 0.02 * np.sin(2.1 * t + ph[2])], 1)
        targets = np.stack([0.3 * np.sin(1.1 * t + ph[3]), np.full(n, 2.3), 0.9 + 0.05 * np.sin(1.7 * t)], 1)
    elif kind in ("turn", "static"):
        C = np.tile([0.0, 0.0, 1.6], (n, 1))
        yaw = 0.9 * np.sin(t * 0.8) if kind == "turn" else np.zeros(n)
        targets = C + np.stack([np.sin(yaw), np.cos(yaw), np.full(n, -0.4)], 1)
    else:
        raise ValueError(kind)
    R = np.stack([look_at(c, g) for c, g in zip(C, targets)])
    return R, C


class Renderer:
    """Render the room seen by a pinhole camera K of `width` x `height`."""

    def __init__(self, K: np.ndarray, width: int, height: int, rects: list[Rect] | None = None):
        self.K, self.width, self.height = np.asarray(K, float), width, height
        self.rects = rects if rects is not None else room()
        self.tex = [texture(r.seed, kind=r.texture) for r in self.rects]
        u, v = np.meshgrid(np.arange(width) + 0.0, np.arange(height) + 0.0)
        rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(self.K).T
        self.rays = rays.reshape(-1, 3)

    def render(self, R: np.ndarray, C: np.ndarray, noise: float = 0.0, rng: np.random.Generator | None = None,
               blur: float = 0.0) -> np.ndarray:
        """A BGR uint8 frame of the camera with rotation `R` (camera-to-world) at `C`;
        `noise`: std of added sensor noise (grey levels); `blur`: motion blur length (px)."""
        d = self.rays @ R.T  # world directions
        best = np.full(len(d), np.inf)
        out = np.zeros(len(d), np.float32)
        for rect, tex in zip(self.rects, self.tex):
            o, a, b = (np.asarray(v, float) for v in (rect.o, rect.a, rect.b))
            n = np.cross(a, b)
            denom = d @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                t = ((o - C) @ n) / denom
            ok = (t > 0.05) & (t < best)
            if not ok.any():
                continue
            p = C + t[ok, None] * d[ok]
            ua = (p - o) @ a / (a @ a)
            vb = (p - o) @ b / (b @ b)
            inside = (ua >= 0) & (ua <= 1) & (vb >= 0) & (vb <= 1)
            idx = np.flatnonzero(ok)[inside]
            if not len(idx):
                continue
            size = tex.shape[0] - 1
            # one texture tile per 2 m of the longer edge (~4 mm texels)
            reps = max(1.0, max(np.linalg.norm(a), np.linalg.norm(b)) / 2.0)
            mx = ((ua[inside] * reps) % 1.0 * size).astype(np.float32)
            my = ((vb[inside] * reps) % 1.0 * size).astype(np.float32)
            vals = _sample(tex, mx, my)
            out[idx] = vals
            best[idx] = t[ok][inside]
        img = out.reshape(self.height, self.width)
        if blur > 0:
            k = max(1, int(round(blur)))
            img = cv2.filter2D(img, -1, np.full((1, k), 1.0 / k, np.float32))
        if noise > 0:
            img = img + (rng or np.random.default_rng(0)).normal(0, noise, img.shape).astype(np.float32)
        g = np.clip(img, 0, 255).astype(np.uint8)
        return cv2.merge([g, g, g])


def _sample(tex: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """Bilinear texture samples at (mx, my); the maps are laid out in rows of 1024 (remap's
    sides must stay under 32767)."""
    n = len(mx)
    cols = 1024
    pad = (-n) % cols
    mx = np.pad(mx, (0, pad)).reshape(-1, cols)
    my = np.pad(my, (0, pad)).reshape(-1, cols)
    return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).ravel()[:n]


def poses_to_tum(t: np.ndarray, R: np.ndarray, C: np.ndarray):
    """The ground-truth path as an egoclean Trajectory (every frame tracked)."""
    from egoclean.motion.trajectory import Trajectory

    return Trajectory.from_frames(t, C, Rotation.from_matrix(R).as_quat(), metric=True)


def default_camera(width: int, height: int, hfov_deg: float = 90.0) -> np.ndarray:
    """K of a pinhole camera with the given horizontal field of view (rectified head camera)."""
    f = width / 2 / np.tan(np.radians(hfov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


def write_clip(path, frames, fps: float = 30.0) -> None:
    """Encode BGR frames to an H.264 file with egoclean's writer (a real video for the CLI)."""
    from egoclean.media.video import VideoWriter

    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    frames = [first, *frames]
    with VideoWriter(path, fps, w, h, codec="libx264", crf=12, hw="cpu") as wr:
        for f in frames:
            wr.write(f)


@functools.lru_cache(maxsize=16)
def scenario(kind: str, n: int, width: int, blur: float = 0.0, flat: bool = False, noise: float = 2.0):
    """(frames, ground truth Trajectory, PinholeCamera) of a rendered head path, cached per
    process (rendering is the slow part of the tests). Frames are read-only BGR arrays."""
    from egoclean.motion.trajectory import PinholeCamera

    height = width * 3 // 4
    K = default_camera(width, height)
    r = Renderer(K, width, height, room(flat=flat))
    R, C = head_path(n, kind)
    rng = np.random.default_rng(1)
    frames = []
    for a, c in zip(R, C):
        f = r.render(a, c, noise=noise, rng=rng, blur=blur)
        f.flags.writeable = False
        frames.append(f)
    cam = PinholeCamera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height, source="render")
    return tuple(frames), poses_to_tum(np.arange(n) / 30.0, R, C), cam


def with_hands(frames, seed: int = 5):
    """The frames with a textured blob (a hand holding a part) moving on its own in the lower
    middle of the view: it covers ~1/8 of the frame and moves against the scene."""
    out = []
    h, w = frames[0].shape[:2]
    tex = texture(seed, size=max(h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    for i, f in enumerate(frames):
        cx = w * (0.5 + 0.12 * np.sin(i * 0.35))
        cy = h * (0.8 + 0.06 * np.cos(i * 0.5))
        m = ((xx - cx) / (0.18 * w)) ** 2 + ((yy - cy) / (0.16 * h)) ** 2 < 1
        shift = np.roll(np.roll(tex, int(i * 3), 0), int(i * 5), 1)[:h, :w]
        g = f[:, :, 0].copy()
        g[m] = shift[m].astype(np.uint8)
        out.append(cv2.merge([g, g, g]))
    return out
