"""A 3D workshop for the synthetic clips: textured boxes ray-cast through the fisheye camera.

The scene is a room (floor, walls at different distances, ceiling) holding axis-aligned
boxes: a work bench, a bin with parts, a press, a tray, a shelf with cardboard boxes, a
rubber mat, and racks along an aisle behind the worker. Boxes may also move per frame
(the worker's glove, forearm, the carried part, the press piston) or be fixed to the
camera (a phone held in front of it).

Rendering (`Scene.render`): each output pixel's ray is computed once per clip from the
fisheye model (`cv2.fisheye.undistortPoints`, the same camera as `intrinsics.json`);
per frame the rays are turned into the world, the room's walls are hit analytically
(the ray's exit from the room box) and every box whose projection can reach the image
is slab-tested inside its pixel bounding box, keeping the nearest hit (a depth buffer).
Every face's texture lives in one atlas with a mip pyramid; a pixel's hit point maps
linearly to atlas coordinates and `cv2.remap` samples the level that matches the
pixel's footprint on the surface (no aliasing far away). Everything is vectorised
numpy on float32: cost is a few dozen passes over the image per frame.

World frame: metres, z up, floor at z = 0; the worker stands near the origin facing +y
(the bench); the aisle runs towards -y. Poses are camera-to-world with OpenCV camera
axes (x right, y down, z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

MIP_LEVELS = 5
PAD = 1 << (MIP_LEVELS - 1)  # texels around each atlas tile so coarse mip levels do not bleed
ATLAS_WIDTH = 2048
# The camera-facing convention of `camera_rotation`: yaw 0 looks along +y with x right.
_BASE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

WORLD, CAMERA = 0, 1  # the frame a box is fixed in


# --------------------------------------------------------------------------- poses


def camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (OpenCV camera axes) of a head turned by `yaw` about the
    world's z axis (0 = looking along +y, positive = to the left), tilted by `pitch`
    (positive = up) and rolled by `roll` about the optical axis."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    rr = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return rz @ rx @ _BASE @ rr


# -------------------------------------------------------------------------- textures


def noise(rng: np.random.Generator, h: int, w: int, cell: float, aniso: float = 1.0) -> np.ndarray:
    """Value noise in [0, 1], (h, w) float32, features about `cell` texels wide (`aniso`
    times longer along the width), by cubic upsampling of a small random grid."""
    gh = max(2, int(round(h / max(cell, 1e-6))))
    gw = max(2, int(round(w / max(cell * aniso, 1e-6))))
    small = rng.random((gh, gw)).astype(np.float32)
    return cv2.resize(small, (max(1, w), max(1, h)), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def tinted(color, mod: np.ndarray) -> np.ndarray:
    """`color` (BGR) times a modulation image (h, w) as uint8 (h, w, 3)."""
    c = np.asarray(color, np.float32)[None, None, :]
    return np.clip(c * mod[..., None], 0, 255).astype(np.uint8)


def plain(color) -> np.ndarray:
    """A flat 4 x 4 texel tile."""
    img = np.empty((4, 4, 3), np.uint8)
    img[:] = np.asarray(color, np.uint8)
    return img


class Painter:
    """Draws on a face texture in metres (origin top-left, v down), `ppm` texels per metre."""

    def __init__(self, img: np.ndarray, ppm: float):
        self.img = img
        self.ppm = float(ppm)

    def _p(self, u: float, v: float) -> tuple[int, int]:
        return int(round(u * self.ppm * 16)), int(round(v * self.ppm * 16))

    def rect(self, u0, v0, u1, v1, color, thickness: int = -1) -> None:
        cv2.rectangle(self.img, self._p(u0, v0), self._p(u1, v1), tuple(int(c) for c in color), thickness,
                      cv2.LINE_AA, 4)

    def circle(self, u, v, r, color) -> None:
        cv2.circle(self.img, self._p(u, v), max(1, int(round(r * self.ppm * 16))), tuple(int(c) for c in color),
                   -1, cv2.LINE_AA, 4)

    def line(self, u0, v0, u1, v1, color, width_m: float) -> None:
        cv2.line(self.img, self._p(u0, v0), self._p(u1, v1), tuple(int(c) for c in color),
                 max(1, int(round(width_m * self.ppm))), cv2.LINE_AA, 4)

    def poly(self, pts, color) -> None:
        arr = np.array([self._p(u, v) for u, v in pts], np.int32)
        cv2.fillPoly(self.img, [arr], tuple(int(c) for c in color), cv2.LINE_AA, 4)


def surface(rng: np.random.Generator, w_m: float, h_m: float, ppm: float, color, detail: float = 0.15,
            grain: float = 0.0, speckle: float = 0.05) -> tuple[np.ndarray, Painter]:
    """A `w_m` x `h_m` metre texture at `ppm` texels per metre: `color` modulated by
    blotches (20 cm), finer noise (3 cm, or wood grain when `grain` > 0) and speckle."""
    w, h = max(4, int(round(w_m * ppm))), max(4, int(round(h_m * ppm)))
    mod = 1.0 + detail * (2 * noise(rng, h, w, 0.2 * ppm) - 1)
    if grain:
        mod += grain * (2 * noise(rng, h, w, 0.004 * ppm, aniso=25) - 1)
    else:
        mod += 0.6 * detail * (2 * noise(rng, h, w, 0.03 * ppm) - 1)
    if speckle:
        mod += speckle * (2 * rng.random((h, w), dtype=np.float32) - 1)
    img = tinted(color, mod)
    return img, Painter(img, ppm)


def scatter_marks(rng: np.random.Generator, p: Painter, w_m: float, h_m: float, n: int, size: float,
                  colors: Sequence) -> None:
    """Small random rectangles and dots (labels, bolts, stains): corners to track."""
    for _ in range(n):
        u, v = rng.uniform(0, w_m), rng.uniform(0, h_m)
        s = size * rng.uniform(0.4, 1.0)
        col = colors[int(rng.integers(len(colors)))]
        if rng.random() < 0.5:
            p.rect(u, v, u + s, v + s * rng.uniform(0.3, 1.0), col)
        else:
            p.circle(u, v, s / 2, col)


def light(y: np.ndarray) -> np.ndarray:
    """Baked lighting along the room (world y): the bench is lit, the aisle is dim."""
    u = np.clip((np.asarray(y, np.float32) - AISLE_DARK_Y) / (BENCH_LIT_Y - AISLE_DARK_Y), 0, 1)
    return DIM + (1 - DIM) * u * u * (3 - 2 * u)


def lit(img: np.ndarray, axis: int, y0: float, y1: float) -> np.ndarray:
    """`img` under `light`, its `axis` running from world y0 (index 0) to y1 (the end)."""
    n = img.shape[axis]
    g = light(np.linspace(y0, y1, n))
    shape = [1, 1, 1]
    shape[axis] = n
    return np.clip(img.astype(np.float32) * g.reshape(shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------- the scene


@dataclass(eq=False)
class Box:
    """An axis-aligned box with one texture per face (order -x, +x, -y, +y, -z, +z).

    A face's texture spans it with u along the first other axis (x, or y for x faces) and
    v along the second (rows run down z on walls, along +y on floors and tops).
    `inside`: seen from within (the room). `frame`: WORLD or CAMERA (fixed to the camera)."""

    lo: Sequence[float]
    hi: Sequence[float]
    faces: Sequence[np.ndarray]
    name: str = ""
    frame: int = WORLD
    inside: bool = False
    dynamic: bool = False
    window: dict = field(default_factory=dict)

    def __post_init__(self):
        self.lo = np.asarray(self.lo, np.float64)
        self.hi = np.asarray(self.hi, np.float64)
        if len(self.faces) == 1:
            self.faces = list(self.faces) * 6
        if len(self.faces) != 6 or not np.all(self.hi > self.lo):
            raise ValueError(f"box {self.name}: needs 6 faces and hi > lo")

    def move_to(self, lo: Sequence[float]) -> None:
        """Translate a dynamic box so its low corner is at `lo` (size unchanged)."""
        size = self.hi - self.lo
        self.lo = np.asarray(lo, np.float64)
        self.hi = self.lo + size


_UV = {0: (1, 2), 1: (0, 2), 2: (0, 1)}  # face axis -> (u axis, v axis)


def _pack(tiles: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Shelf-pack padded tiles into one atlas; positions aligned to PAD."""
    order = sorted(range(len(tiles)), key=lambda i: -tiles[i].shape[0])
    pos: list[tuple[int, int]] = [(0, 0)] * len(tiles)
    x = y = shelf = 0
    for i in order:
        h, w = tiles[i].shape[:2]
        W, H = w + 2 * PAD, h + 2 * PAD
        W, H = -(-W // PAD) * PAD, -(-H // PAD) * PAD
        if W > ATLAS_WIDTH:
            raise ValueError(f"texture {w} texels wide exceeds the atlas")
        if x + W > ATLAS_WIDTH:
            x, y, shelf = 0, y + shelf, 0
        pos[i] = (x + PAD, y + PAD)
        x += W
        shelf = max(shelf, H)
    height = -(-(y + shelf) // PAD) * PAD
    atlas = np.zeros((height, ATLAS_WIDTH, 3), np.uint8)
    for i, t in enumerate(tiles):
        x0, y0 = pos[i]
        h, w = t.shape[:2]
        padded = cv2.copyMakeBorder(t, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
        atlas[y0 - PAD : y0 + h + PAD, x0 - PAD : x0 + w + PAD] = padded
    return atlas, pos


class Scene:
    """Boxes in one texture atlas, rendered through a fisheye camera (see the module doc)."""

    def __init__(self, boxes: Sequence[Box]):
        self.boxes = list(boxes)
        if not self.boxes or not self.boxes[0].inside:
            raise ValueError("the first box must be the room (inside=True)")
        unique: dict[int, int] = {}
        tiles: list[np.ndarray] = []
        for b in self.boxes:
            for f in b.faces:
                if id(f) not in unique:
                    unique[id(f)] = len(tiles)
                    tiles.append(f)
        atlas, upos = _pack(tiles)
        pos = [upos[unique[id(f)]] for b in self.boxes for f in b.faces]
        # the mip pyramid side by side in one image, so one remap samples every level
        levels = [atlas]
        for _ in range(1, MIP_LEVELS):
            a = levels[-1]
            levels.append(cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA))
        self.mip = np.zeros((atlas.shape[0], sum(lv.shape[1] for lv in levels), 3), np.uint8)
        x_off = np.cumsum([0] + [lv.shape[1] for lv in levels[:-1]])
        for lv, x in zip(levels, x_off):
            self.mip[: lv.shape[0], x : x + lv.shape[1]] = lv
        self._lvl_x = np.zeros(256, np.float32)
        self._lvl_x[:MIP_LEVELS] = x_off
        self._lvl_scale = np.ones(256, np.float32)
        self._lvl_scale[:MIP_LEVELS] = [1.0 / (1 << L) for L in range(MIP_LEVELS)]
        n = len(self.boxes)
        self._scroll: dict[tuple[int, int], tuple[float, float, float]] = {}
        # Per face (6 per box): atlas x = ax0 + axu * q[u]; atlas y = ay0 + ayv * q[v]
        # (q = hit point - box low corner, u and v the face's two axes); texels per metre (for mips).
        if 6 * n > 256:
            raise ValueError(f"{n} boxes: at most 42 (face ids are looked up as uint8)")
        self.f_ax0, self.f_axu, self.f_ay0, self.f_ayv, self.f_ppm = (np.zeros(256, np.float32) for _ in range(5))
        for b_i, b in enumerate(self.boxes):
            ext = b.hi - b.lo
            for k in range(6):
                f = 6 * b_i + k
                axis = k // 2
                u, v = _UV[axis]
                h, w = b.faces[k].shape[:2]
                su, sv = w / ext[u], h / ext[v]
                x0, y0 = pos[f]
                if k in b.window:  # a window of the tile, `window[k]` texels per metre, moved by scroll()
                    su = sv = b.window[k]
                    self._scroll[(b_i, k)] = (y0 - 0.5, sv, (h - ext[v] * sv) / sv)
                if v == 2:  # walls: row 0 at the top
                    coef = (x0, su, y0 + h, -sv)
                else:
                    coef = (x0, su, y0, sv)
                # remap samples texel centres at integer coordinates: shift by half a texel
                self.f_ax0[f], self.f_axu[f] = coef[0] - 0.5, coef[1]
                self.f_ay0[f], self.f_ayv[f] = coef[2] - 0.5, coef[3]
                self.f_ppm[f] = math.sqrt(su * sv)
        self._cam_boxes = [i for i, b in enumerate(self.boxes) if b.frame == CAMERA]
        self._is_cam = np.zeros(256, np.uint8)
        self._is_cam[self._cam_boxes] = 1

    def scroll(self, box: Box, k: int, offset_m: float) -> None:
        """Move face `k`'s texture window of `box` by `offset_m` metres along v (wraps)."""
        b_i = next(i for i, b in enumerate(self.boxes) if b is box)
        base, sv, span = self._scroll[(b_i, k)]
        self.f_ay0[6 * b_i + k] = base + (offset_m % span) * sv

    # ---- the camera

    def set_camera(self, intrinsics: dict, rays: np.ndarray) -> None:
        """Fix the output camera: `rays` (H, W, 3) unit rays in camera coordinates."""
        self.intrinsics = intrinsics
        self.height, self.width = rays.shape[:2]
        self.rays = np.ascontiguousarray(np.moveaxis(rays, -1, 0), dtype=np.float32)  # (3, H, W)
        # a pixel's angular size (radians), for the mip level
        gx = np.linalg.norm(np.diff(rays, axis=1), axis=-1)
        gy = np.linalg.norm(np.diff(rays, axis=0), axis=-1)
        gx = np.concatenate([gx, gx[:, -1:]], axis=1)
        gy = np.concatenate([gy, gy[-1:, :]], axis=0)
        self.pix_angle = np.maximum(gx, gy).astype(np.float32)
        self.cam_inv = [self._inv(self.rays[a]) for a in range(3)]
        self._K = np.array([[intrinsics["fx"], 0, intrinsics["cx"]], [0, intrinsics["fy"], intrinsics["cy"]],
                            [0, 0, 1.0]])
        self._D = np.array([intrinsics[k] for k in ("k1", "k2", "k3", "k4")], np.float64)

    @staticmethod
    def _inv(d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            inv = 1.0 / d
        inv[~np.isfinite(inv)] = 1e30
        return inv.astype(np.float32)

    def _project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fisheye pixel positions (Kannala-Brandt, as cv2.fisheye) of camera-frame points."""
        r = np.hypot(x, y)
        theta = np.arctan2(r, z)
        t2 = theta * theta
        k1, k2, k3, k4 = self._D
        td = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        s = td / np.maximum(r, 1e-12)
        K = self._K
        return K[0, 0] * x * s + K[0, 2], K[1, 1] * y * s + K[1, 2]

    def _bboxes(self, R: np.ndarray, o: np.ndarray) -> list[tuple[int, int, int, int, int]]:
        """(box, y0, y1, x0, x1) for every box that can reach the image: its pixel bounding box
        from points along its edges (the fisheye bends edges outwards between corners)."""
        lo = np.array([b.lo for b in self.boxes[1:]])
        hi = np.array([b.hi for b in self.boxes[1:]])
        pts = lo[:, None, :] + _EDGE_SAMPLES[None] * (hi - lo)[:, None, :]  # (B, S, 3)
        cam_frame = np.array([b.frame == CAMERA for b in self.boxes[1:]])
        cam = np.where(cam_frame[:, None, None], pts, (pts - o) @ R)  # world -> camera: R^T (p - o)
        z = cam[..., 2]
        inside = ~cam_frame & np.all((o > lo) & (o < hi), axis=1)
        behind = np.all(z <= 1e-3, axis=1) | (~cam_frame & (hi[:, 2] < 0))  # or put away under the floor
        partial = np.any(z <= 0.05, axis=1) | inside
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = self._project(cam[..., 0], cam[..., 1], np.maximum(z, 0.05))
        x0 = np.floor(u.min(1)).astype(int) - 2
        x1 = np.ceil(u.max(1)).astype(int) + 3
        y0 = np.floor(v.min(1)).astype(int) - 2
        y1 = np.ceil(v.max(1)).astype(int) + 3
        out = []
        H, W = self.height, self.width
        for i in range(len(lo)):
            if behind[i]:
                continue
            if partial[i]:
                out.append((i + 1, 0, H, 0, W))
                continue
            a, b_, c, d = max(0, y0[i]), min(H, y1[i]), max(0, x0[i]), min(W, x1[i])
            if a < b_ and c < d:
                out.append((i + 1, a, b_, c, d))
        return out

    # ---- rendering

    def render(self, R: np.ndarray, o: Sequence[float]) -> np.ndarray:
        """The fisheye BGR uint8 image seen from camera-to-world rotation `R` at position `o`."""
        R = np.asarray(R, np.float64)
        o = np.asarray(o, np.float64)
        rx, ry, rz = self.rays
        # world rays, written out: a (3, 3) @ (3, N) product through BLAS is far slower here
        d = [np.float32(R[a, 0]) * rx + np.float32(R[a, 1]) * ry + np.float32(R[a, 2]) * rz for a in range(3)]
        inv = [self._inv(d[a]) for a in range(3)]
        room = self.boxes[0]
        # the room: where each ray leaves it
        t = None
        for a in range(3):
            bound = np.where(d[a] > 0, np.float32(room.hi[a] - o[a]), np.float32(room.lo[a] - o[a]))
            ta = np.abs(bound * inv[a])  # |.|: a ray parallel to a wall (inv = 1e30) never leaves through it
            t = ta if t is None else np.minimum(t, ta, out=t)
        obj = np.zeros((self.height, self.width), np.uint8)
        for b_i, y0, y1, x0, x1 in self._bboxes(R, o):
            box = self.boxes[b_i]
            origin, invs = ((0.0, 0.0, 0.0), self.cam_inv) if box.frame == CAMERA else (o, inv)
            tn = tf = None
            for a in range(3):
                ia = invs[a][y0:y1, x0:x1]
                t_lo = np.float32(box.lo[a] - origin[a]) * ia
                t_hi = np.float32(box.hi[a] - origin[a]) * ia
                mn = np.minimum(t_lo, t_hi)
                mx = np.maximum(t_lo, t_hi, out=t_hi)
                tn = mn if tn is None else np.maximum(tn, mn, out=tn)
                tf = mx if tf is None else np.minimum(tf, mx, out=tf)
            tsub = t[y0:y1, x0:x1]
            hit = (tn <= tf) & (tn > 0) & (tn < tsub)
            np.copyto(tsub, tn, where=hit)
            np.copyto(obj[y0:y1, x0:x1], b_i, where=hit)
        return self._shade(d, o, t, obj)

    def _shade(self, d: list[np.ndarray], o: np.ndarray, t: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """Texture each pixel from the face its ray hit: per-box and per-face numbers are
        looked up with cv2.LUT (ids are uint8), then one remap samples the mip atlas."""
        lo = np.zeros((256, 3), np.float32)
        ext = np.zeros((256, 3), np.float32)
        lo[: len(self.boxes)] = [b.lo for b in self.boxes]
        ext[: len(self.boxes)] = [b.hi - b.lo for b in self.boxes]
        cam_mask = None
        if self._cam_boxes:
            cam_mask = cv2.LUT(obj, self._is_cam) > 0
            if not cam_mask.any():
                cam_mask = None
        q, rays = [], []
        for a in range(3):
            p = np.float32(o[a]) + t * d[a]
            ray = d[a]
            if cam_mask is not None:
                p = np.where(cam_mask, t * self.rays[a], p)
                ray = np.where(cam_mask, self.rays[a], ray)
            q.append(p - cv2.LUT(obj, lo[:, a]))
            rays.append(ray)
        # which face: the bound the hit point lies on (the nearest of the six)
        best = np.abs(q[0])
        k = np.zeros(obj.shape, np.uint8)
        for j in range(1, 6):
            a = j // 2
            dist = np.abs(q[a] - cv2.LUT(obj, ext[:, a])) if j % 2 else np.abs(q[a])
            closer = dist < best
            np.copyto(best, dist, where=closer)
            np.copyto(k, j, where=closer)
        face = obj * np.uint8(6) + k
        axis = k >> 1
        x_axis, z_axis = axis == 0, axis == 2
        qu = np.where(x_axis, q[1], q[0])
        qv = np.where(z_axis, q[1], q[2])
        mx = cv2.LUT(face, self.f_ax0) + cv2.LUT(face, self.f_axu) * qu
        my = cv2.LUT(face, self.f_ay0) + cv2.LUT(face, self.f_ayv) * qv
        # mip level from the pixel's footprint on the face, in texels
        cosi = np.abs(np.where(x_axis, rays[0], np.where(z_axis, rays[2], rays[1])))
        foot = t * self.pix_angle * cv2.LUT(face, self.f_ppm) / np.sqrt(np.maximum(cosi, np.float32(0.05)))
        level = np.floor(np.log2(np.maximum(foot, np.float32(1e-6))) + np.float32(0.5))
        level = np.clip(level, 0, MIP_LEVELS - 1).astype(np.uint8)
        # level L texel centres: x_L = (x_0 + 0.5) / 2^L - 0.5, then the level's place in the mip atlas
        scale = cv2.LUT(level, self._lvl_scale)
        mx = (mx + np.float32(0.5)) * scale - np.float32(0.5) + cv2.LUT(level, self._lvl_x)
        my = (my + np.float32(0.5)) * scale - np.float32(0.5)
        return cv2.remap(self.mip, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _edge_samples(n: int = 9) -> np.ndarray:
    """Points along the 12 edges of the unit cube, (12 n, 3)."""
    s = np.linspace(0.0, 1.0, n)
    out = []
    for a in range(3):
        b1, b2 = [x for x in range(3) if x != a]
        for c1 in (0.0, 1.0):
            for c2 in (0.0, 1.0):
                p = np.empty((n, 3))
                p[:, a], p[:, b1], p[:, b2] = s, c1, c2
                out.append(p)
    return np.concatenate(out)


_EDGE_SAMPLES = _edge_samples()


# ------------------------------------------------------------------ the workshop


@dataclass
class Workshop:
    """The workshop scene and its moving parts for one worker (deterministic from `seed`)."""

    scene: Scene
    glove: Box
    arm: list[Box]
    part: Box
    piston: Box
    phone: list[Box]
    hand_home: np.ndarray = field(default_factory=lambda: np.zeros(3))


ROOM_LO = (-5.0, -14.0, 0.0)
ROOM_HI = (5.0, 1.3, 4.0)
BENCH_TOP = 0.9
# Baked light: full at the bench (y >= BENCH_LIT_Y), DIM of it from AISLE_DARK_Y down the aisle.
BENCH_LIT_Y, AISLE_DARK_Y, DIM = 0.0, -2.5, 0.3
EYE_HEIGHT = 1.6
MAT_LO, MAT_HI = (-3.0, -4.0, 0.0), (3.0, -0.3, 0.012)  # the rubber mat the worker stands on
PHONE_DEPTH = 0.2  # metres in front of the camera
PHONE_HALF = (0.05, 0.1)
SCREEN_PPM = 1000.0  # texels per metre of the phone's screen
SCREEN_PERIOD_M = 0.8  # length of the scrolling feed before it repeats
HIDDEN = (0.0, 0.0, -50.0)  # where a dynamic box waits while not in the scene (under the floor)


def build_workshop(seed, ppm_scale: float = 1.0) -> Workshop:
    """The workshop of one worker: room, bench, bin, press, tray, shelf, mat, racks.

    `ppm_scale` scales every texture's resolution (texels per metre)."""
    rng = np.random.default_rng(seed)
    j = rng.uniform(-10, 10, size=3)
    s = ppm_scale
    boxes: list[Box] = []

    def tex(w_m, h_m, ppm, color, **kw):
        img, _ = surface(rng, w_m, h_m, ppm * s, np.asarray(color) + j / 2, **kw)
        return img

    lx, ly, lz = ROOM_LO
    hx, hy, hz = ROOM_HI
    W, D, Hh = hx - lx, hy - ly, hz - lz

    # ---- room faces (-x, +x, -y, +y, -z, +z)
    def side_wall():
        ppm = 40 * s
        img, p = surface(rng, D, Hh, ppm, (120, 118, 112), detail=0.1)
        for v in np.arange(0.0, Hh, 0.2):  # block wall: mortar courses
            p.line(0, v, D, v, (70, 70, 68), 0.012)
            off = 0.2 if int(round(v / 0.2)) % 2 else 0.0
            for u in np.arange(off, D, 0.4):
                p.line(u, v, u, v + 0.2, (70, 70, 68), 0.012)
        scatter_marks(rng, p, D, Hh, 40, 0.4, [(40, 120, 200), (200, 200, 200), (30, 30, 140), (60, 60, 60)])
        return lit(img, 1, ly, hy)  # u runs along +y

    def bench_wall():
        ppm = 80 * s
        img, p = surface(rng, W, Hh, ppm, (168, 160, 148), detail=0.06)
        for u in np.arange(0.02, W, 0.05):  # pegboard
            for v in np.arange(Hh - 2.3, Hh - 0.95, 0.05):
                p.circle(u, v, 0.006, (92, 88, 84))
        for _ in range(14):  # hanging tools
            u, v = rng.uniform(W / 2 - 1.8, W / 2 + 1.8), rng.uniform(Hh - 2.2, Hh - 1.3)
            col = [(40, 40, 40), (30, 30, 180), (160, 90, 20), (0, 160, 220)][int(rng.integers(4))]
            p.rect(u, v, u + rng.uniform(0.02, 0.05), v + rng.uniform(0.12, 0.3), col)
            p.circle(u + 0.015, v, 0.025, col)
        for _ in range(6):  # notices
            u, v = rng.uniform(0.3, W - 0.8), rng.uniform(0.4, 1.4)
            p.rect(u, v, u + 0.3, v + 0.42, (235, 235, 230))
            for k in range(6):
                p.rect(u + 0.03, v + 0.05 + 0.06 * k, u + 0.03 + rng.uniform(0.1, 0.24), v + 0.08 + 0.06 * k,
                       (40, 40, 40))
        return img

    def far_wall():
        ppm = 25 * s
        img, p = surface(rng, W, Hh, ppm, (60, 62, 66), detail=0.15)
        p.rect(W / 2 - 1.5, Hh - 3.2, W / 2 + 1.5, Hh, (70, 75, 80))  # roll-up door
        for v in np.arange(Hh - 3.2, Hh, 0.1):
            p.line(W / 2 - 1.5, v, W / 2 + 1.5, v, (40, 42, 45), 0.02)
        p.rect(W / 2 - 1.2, 0.3, W / 2 + 1.2, 0.6, (30, 140, 200))  # exit sign band
        return img

    def floor():
        ppm = 40 * s
        img, p = surface(rng, W, D, ppm, (110, 115, 118), detail=0.2, speckle=0.08)
        scatter_marks(rng, p, W, D, 220, 0.12, [(60, 65, 70), (30, 35, 40), (150, 155, 160)])
        for x in (-1.6, 1.6):  # yellow lane lines along the aisle
            u = x - lx
            p.rect(u - 0.05, 0, u + 0.05, D - 2.0, (0, 180, 220))
        for y in np.arange(0.5, D - 2.0, 1.0):  # dashes across
            p.rect(W / 2 - 0.3, y, W / 2 + 0.3, y + 0.08, (0, 140, 180))
        return lit(img, 0, ly, hy)  # v runs along +y

    def ceiling():
        ppm = 20 * s
        img, p = surface(rng, W, D, ppm, (50, 50, 52), detail=0.1)
        for y in np.arange(0.5, D, 2.0):
            p.rect(0, y, W, y + 0.25, (35, 35, 38))
            p.rect(W / 2 - 0.6, y + 0.8, W / 2 + 0.6, y + 1.0, (120, 125, 125))
        return lit(img, 0, ly, hy)

    boxes.append(Box(ROOM_LO, ROOM_HI, [side_wall(), side_wall(), far_wall(), bench_wall(), floor(), ceiling()],
                     name="room", inside=True))

    # ---- the bench: top, front panel, legs
    wood = (70, 118, 168)

    def bench_top():
        ppm = 300 * s
        img, p = surface(rng, 3.0, 0.75, ppm, wood, detail=0.1, grain=0.18, speckle=0.03)
        scatter_marks(rng, p, 3.0, 0.75, 160, 0.025, [(30, 40, 50), (150, 150, 150), (20, 60, 110), (200, 200, 200)])
        p.rect(1.8, 0.05, 2.4, 0.09, (0, 200, 230))  # a ruler
        for k in range(30):
            p.line(1.8 + 0.02 * k, 0.05, 1.8 + 0.02 * k, 0.07, (20, 20, 20), 0.002)
        return img

    top = bench_top()
    front = (150, 165, 178)  # a pale laminate front: the bench is the bright part of the view
    edge = tex(3.0, 0.9, 60, front, detail=0.08)
    boxes.append(Box((-1.5, 0.45, 0.0), (1.5, 1.2, BENCH_TOP),
                     [tex(0.75, 0.9, 60, front), tex(0.75, 0.9, 60, front), edge,
                      plain((30, 36, 44)), plain((30, 36, 44)), top], name="bench"))

    # ---- bin with parts (left)
    binc = (120, 88, 56)
    bin_side = tex(0.45, 0.15, 200, binc, detail=0.15)
    boxes.append(Box((-0.85, 0.55, BENCH_TOP), (-0.4, 0.9, BENCH_TOP + 0.15),
                     [tex(0.35, 0.15, 200, binc), tex(0.35, 0.15, 200, binc), bin_side, bin_side,
                      plain(binc), tex(0.45, 0.35, 200, (70, 50, 30), detail=0.2)], name="bin"))
    orange = (0, 140, 255)

    def part_faces():
        top_img, p = surface(rng, 0.12, 0.08, 400 * s, orange, detail=0.08)
        p.rect(0.04, 0.025, 0.08, 0.055, (0, 90, 170))
        side = tex(0.12, 0.05, 400, (0, 120, 230), detail=0.05)
        return [side, side, side, side, plain((0, 100, 200)), top_img]

    for px_ in (-0.8, -0.66, -0.52):
        boxes.append(Box((px_, 0.62, BENCH_TOP + 0.15), (px_ + 0.1, 0.7, BENCH_TOP + 0.19), part_faces(),
                         name="part"))

    # ---- press (right): base with hazard stripes, back column, head
    steel = (150, 150, 144)

    def hazard(w_m, h_m):
        img, p = surface(rng, w_m, h_m, 200 * s, (0, 210, 240), detail=0.05)
        for u in np.arange(-h_m, w_m, 0.08):
            p.poly([(u, h_m), (u + 0.04, h_m), (u + 0.04 + h_m, 0), (u + h_m, 0)], (20, 20, 20))
        return img

    def steel_face(w_m, h_m):
        img, p = surface(rng, w_m, h_m, 200 * s, steel, detail=0.08)
        for u in np.arange(0.03, w_m, 0.1):
            for v in (0.03, h_m - 0.03):
                p.circle(u, v, 0.008, (90, 90, 90))
        p.rect(w_m * 0.3, h_m * 0.3, w_m * 0.3 + 0.08, h_m * 0.3 + 0.05, (0, 200, 255))  # warning label
        return img

    hz_front = hazard(0.45, 0.1)
    boxes.append(Box((0.4, 0.7, BENCH_TOP), (0.85, 1.2, BENCH_TOP + 0.1),
                     [hazard(0.5, 0.1), hazard(0.5, 0.1), hz_front, hz_front, plain(steel), steel_face(0.45, 0.5)],
                     name="press base"))
    col_f = steel_face(0.45, 0.9)
    boxes.append(Box((0.4, 1.05, BENCH_TOP + 0.1), (0.85, 1.2, BENCH_TOP + 1.0),
                     [steel_face(0.15, 0.9), steel_face(0.15, 0.9), col_f, col_f, plain(steel), plain(steel)],
                     name="press column"))
    head_f = steel_face(0.45, 0.2)
    boxes.append(Box((0.4, 0.75, BENCH_TOP + 0.6), (0.85, 1.05, BENCH_TOP + 0.8),
                     [steel_face(0.3, 0.2), steel_face(0.3, 0.2), head_f, head_f, plain((55, 58, 60)), plain(steel)],
                     name="press head"))
    piston = Box((0.57, 0.85, BENCH_TOP + 0.35), (0.68, 0.96, BENCH_TOP + 0.6),
                 [tex(0.11, 0.25, 300, (175, 178, 180), detail=0.05)] * 4 + [plain((90, 95, 100))] * 2,
                 name="piston", dynamic=True)
    boxes.append(piston)

    # ---- output tray (front middle)
    boxes.append(Box((-0.17, 0.5, BENCH_TOP), (0.21, 0.72, BENCH_TOP + 0.04),
                     [plain((60, 140, 60))] * 5 + [tex(0.38, 0.22, 300, (45, 110, 45), detail=0.15)], name="tray"))

    # ---- shelf on the bench wall with cardboard boxes
    boxes.append(Box((-1.6, 1.0, 1.85), (1.6, 1.3, 1.9), [tex(3.2, 0.05, 100, (40, 60, 90))] * 4
                     + [plain((30, 45, 70))] * 2, name="shelf"))

    def cardboard(w_m, h_m):
        img, p = surface(rng, w_m, h_m, 200 * s, (95, 140, 190), detail=0.08)
        p.rect(0, h_m * 0.45, w_m, h_m * 0.55, (70, 110, 160))  # tape
        u = rng.uniform(0.02, max(0.03, w_m - 0.12))
        p.rect(u, 0.03, u + 0.1, 0.09, (240, 240, 240))  # label with a barcode
        for k in range(12):
            if rng.random() < 0.6:
                p.rect(u + 0.01 + 0.007 * k, 0.045, u + 0.014 + 0.007 * k, 0.08, (20, 20, 20))
        return img

    for bx, bw, bh, bd in ((-1.3, 0.35, 0.3, 0.25), (-0.85, 0.25, 0.22, 0.2), (-0.2, 0.4, 0.34, 0.25),
                           (0.9, 0.3, 0.26, 0.25)):
        front = cardboard(bw, bh)
        boxes.append(Box((bx, 1.28 - bd, 1.9), (bx + bw, 1.28, 1.9 + bh),
                         [cardboard(bd, bh), cardboard(bd, bh), front, front, plain((95, 140, 190)),
                          cardboard(bw, bd)], name="carton"))

    # ---- rubber mat where the worker stands, boots on it
    def mat():
        ppm = 120 * s
        mw, md = MAT_HI[0] - MAT_LO[0], MAT_HI[1] - MAT_LO[1]
        img, p = surface(rng, mw, md, ppm, (34, 32, 36), detail=0.3, speckle=0.2)
        for u in np.arange(0.03, mw, 0.06):
            for v in np.arange(0.03, md, 0.06):
                p.circle(u, v, 0.012, (60, 58, 62))
        for k in range(-40, 60):  # red / black hazard stripes over the part behind the worker
            u = 0.15 * k
            p.poly([(u, 0.0), (u + 0.07, 0.0), (u + 0.07 + 3.6, 3.6), (u + 3.6, 3.6)],
                   (20, 20, 190) if k % 2 else (10, 10, 10))
        return img

    boxes.append(Box(MAT_LO, MAT_HI, [plain((30, 30, 32))] * 5 + [mat()], name="mat"))
    boot = [tex(0.3, 0.12, 300, (40, 50, 75), detail=0.2)] * 5 + [tex(0.11, 0.3, 300, (40, 50, 75), detail=0.2)]
    boots = [tex(0.11, 0.12, 300, (40, 50, 75))] * 2 + [tex(0.11, 0.12, 300, (40, 50, 75))] * 2
    boxes.append(Box((-0.2, -0.2, 0.012), (-0.09, 0.1, 0.12), boots + boot[4:], name="boot"))
    boxes.append(Box((0.09, -0.2, 0.012), (0.2, 0.1, 0.12), boots + boot[4:], name="boot"))

    # ---- racks along the aisle: red uprights, shelves of red / orange / magenta boxes
    palette = [(40, 30, 210), (20, 90, 230), (130, 20, 180), (30, 30, 150), (60, 60, 240)]

    def rack_face(w_m, h_m):
        ppm = 60 * s
        img, p = surface(rng, w_m, h_m, ppm, (30, 22, 28), detail=0.3)
        for v0, v1 in ((0.1, 0.75), (0.85, 1.5), (1.6, 2.25)):
            u = 0.08
            while u < w_m - 0.2:
                bw = rng.uniform(0.2, 0.5)
                col = palette[int(rng.integers(len(palette)))]
                p.rect(u, v0 + rng.uniform(0.0, 0.2), min(u + bw, w_m - 0.08), v1, col)
                p.rect(u + 0.05, v1 - 0.25, u + 0.15, v1 - 0.17, (200, 200, 210))  # labels
                u += bw + rng.uniform(0.03, 0.1)
            p.rect(0, v1, w_m, v1 + 0.06, (20, 20, 170))  # beam
        for u in np.arange(0.0, w_m, 1.0):
            p.rect(u, 0, u + 0.06, h_m, (10, 10, 120))  # uprights
        return (img * float(light(AISLE_DARK_Y))).astype(np.uint8)  # down the dim aisle

    for side in (-1, 1):
        for y0 in (-3.5, -7.0, -10.5):
            x_in, x_out = 2.0 * side, 2.9 * side
            face = rack_face(3.0, 2.4)
            end = rack_face(0.9, 2.4)
            lo = (min(x_in, x_out), y0 - 3.0, 0.0)
            hi = (max(x_in, x_out), y0, 2.4)
            faces = [face, face, end, end, plain((25, 20, 25)), plain((25, 20, 60))]
            boxes.append(Box(lo, hi, faces, name="rack"))
    for k, (x, y) in enumerate(((-1.2, -5.0), (1.1, -8.5), (-0.9, -11.5))):  # pallets in the aisle
        c = palette[k % len(palette)]
        f = rack_face(0.8, 0.9)
        boxes.append(Box((x - 0.4, y - 0.4, 0.0), (x + 0.4, y + 0.4, 0.9), [f, f, f, f, plain(c), plain(c)],
                         name="pallet"))

    # ---- the worker's moving parts: glove, forearm segments, carried part
    glove = Box(HIDDEN, np.add(HIDDEN, (0.1, 0.08, 0.06)), [tex(0.1, 0.08, 300, (200, 110, 40), detail=0.15)],
                name="glove", dynamic=True)
    arm = [Box(HIDDEN, np.add(HIDDEN, (0.06, 0.06, 0.06)), [tex(0.06, 0.06, 300, (70, 75, 80), detail=0.2)],
               name="forearm", dynamic=True) for _ in range(3)]
    part = Box(HIDDEN, np.add(HIDDEN, (0.12, 0.08, 0.05)), part_faces(), name="carried part", dynamic=True)
    boxes += [glove, *arm, part]

    # ---- the phone and the hand holding it (fixed to the camera; hidden unless raised)
    def screen():
        # a feed SCREEN_PERIOD_M long, then its first screen height again, so scrolling wraps seamlessly
        ppm = SCREEN_PPM * s
        w_m, h_m = 2 * PHONE_HALF[0], SCREEN_PERIOD_M
        img, p = surface(rng, w_m, h_m, ppm, (18, 16, 20), detail=0.05, speckle=0.0)
        p.rect(0, 0, 0.006, h_m, (10, 10, 10))
        p.rect(w_m - 0.006, 0, w_m, h_m, (10, 10, 10))
        v = 0.0
        while v < h_m - 0.03:
            bh = rng.uniform(0.01, 0.025)
            col = palette[int(rng.integers(len(palette)))]
            p.rect(0.01, v + 0.003, w_m - 0.01, v + bh, col)
            p.rect(0.014, v + 0.005, 0.026, v + 0.012, (220, 220, 220))
            v += bh + 0.008
        rows = int(round(2 * PHONE_HALF[1] * ppm)) + 2
        return np.concatenate([img, img[:rows]], axis=0)

    body = plain((10, 10, 10))
    phone = Box(HIDDEN, np.add(HIDDEN, (2 * PHONE_HALF[0], 2 * PHONE_HALF[1], 0.01)),
                [body] * 4 + [screen(), body], name="phone", frame=CAMERA, dynamic=True,
                window={4: SCREEN_PPM * s})
    hand = Box(HIDDEN, np.add(HIDDEN, (0.14, 0.1, 0.06)), [tex(0.14, 0.1, 300, (120, 150, 205), detail=0.1)],
               name="hand", frame=CAMERA, dynamic=True)
    boxes += [phone, hand]
    return Workshop(Scene(boxes), glove, arm, part, piston, [phone, hand],
                    hand_home=np.array([0.05, 0.62, BENCH_TOP + 0.05]))



# ------------------------------------------------------------------ the head's path

TURN_SEC = 1.2  # a head turn into or out of an off-task span (peak ~240 deg/s for a half turn)
WORK_PITCH = math.radians(-35.0)
# head yaw per metre of the hand's sideways position at work (rad/m): a glance of about 1 degree either way
GAZE_YAW_PER_M = 0.03
WALK_SPEED = 1.0  # m/s on average (minimum-jerk profile: peaks at 1.9 m/s)
WALK_MAX_M = 8.0  # down the aisle at most this far, then look around at the racks
WALK_BACK_YAW = 0.8  # walking back: looking at the racks on the left (rad)
# Head-bob at the bench (m, rad): ~2 Hz vertical and roll, ~1 Hz lateral; walking is 3x stronger.
BOB_HZ = 2.0
BOB_Z, BOB_X, BOB_ROLL, BOB_PITCH = 0.012, 0.008, math.radians(0.6), math.radians(0.5)
WALK_BOB = 3.0
STAND = np.array([0.0, -0.05, EYE_HEIGHT])


def _ease(u: float) -> float:
    """Cosine ease-in/out of u in [0, 1]."""
    return 0.5 - 0.5 * math.cos(math.pi * min(max(u, 0.0), 1.0))


def _min_jerk(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * u * (10 - 15 * u + 6 * u * u)


@dataclass(frozen=True)
class HeadState:
    """Where the head is (m, world) and how it is turned (rad; see camera_rotation)."""

    pos: np.ndarray
    yaw: float
    pitch: float
    roll: float

    def blend(self, other: "HeadState", u: float) -> "HeadState":
        return HeadState(self.pos + (other.pos - self.pos) * u, self.yaw + (other.yaw - self.yaw) * u,
                         self.pitch + (other.pitch - self.pitch) * u, self.roll + (other.roll - self.roll) * u)

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(R, position): camera-to-world."""
        return camera_rotation(self.yaw, self.pitch, self.roll), np.asarray(self.pos, np.float64)
