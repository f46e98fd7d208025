"""Fisheye -> pinhole rectification of frames and whole clips (Phase 1).

`Rectifier` builds the remap tables once per clip (fixed-point CV_16SC2, bilinear) and
applies them per frame; output pixels without a valid fisheye source are exactly black.
`rectify_video` streams a clip through it one frame at a time (decode, remap, encode
with libx264), so memory does not grow with clip length. Frames travel as yuv420p
planes end to end (luma and chroma remapped separately), which skips two colour
conversions per frame and the quality they cost; `prefetch=True` moves decoding to a
thread a few frames ahead (no gain measured on 2 cores, where x264's own threads
already fill both; it is there for machines with spare cores). docs/PERFORMANCE.md
has the measurements behind these choices and DEFAULT_PRESET / DEFAULT_CRF.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from egoclean.core import atomic

from egoclean.media import video
from egoclean.media.prefetch import read_ahead
from egoclean.core.errors import IntrinsicsError, InvalidInputError, VideoError
from egoclean.media.intrinsics import OUTSIDE, FisheyeIntrinsics, RectifiedIntrinsics, read_json, rectified_intrinsics
from egoclean.core.layout import intrinsics_beside

# Encoding dominates the cost on CPU. These defaults come from benchmarks/bench_rectify.py
# (docs/PERFORMANCE.md): x264 veryfast with trellis quantisation and a 20-frame
# lookahead, at the CRF where PSNR and size reach the target's limits (-0.2 dB, +15 %)
# against the plain "medium, CRF 28" pipe on the benchmark's 10 s clip, ~1.6-1.75x faster.
DEFAULT_PRESET = "veryfast"
DEFAULT_CRF = 26.4
DEFAULT_X264_PARAMS = "trellis=1:rc-lookahead=20"
DEFAULT_CODEC = "libx264"
OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov")
# Limited-range ("tv") yuv420p black: Y=16, U=V=128 decodes to BGR (0, 0, 0).
_Y_BLACK, _C_NEUTRAL = 16, 128
# Frames decoded ahead of the encoder: enough to absorb jitter, small enough that
# memory stays a few frames regardless of clip length.
_QUEUE_FRAMES = 4


class Rectifier:
    """Remaps fisheye frames of one size to the rectified pinhole view.

    The maps are computed once; `__call__(bgr)` returns the rectified BGR frame
    (out_width x out_height), `remap_yuv420(planes)` the same for stacked yuv420p
    planes as PyAV's `to_ndarray()` gives them. `valid_mask` (out_height, out_width)
    is True where a pixel has a fisheye source; everywhere else the output is black.
    """

    def __init__(self, rect: RectifiedIntrinsics):
        self.rect = rect
        self.in_width, self.in_height = rect.width, rect.height
        self.width, self.height = rect.out_width, rect.out_height
        map_x, map_y, valid = rect.float_maps()
        self.valid_mask = valid
        self._map1, self._map2 = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
        self._chroma = None  # built on first yuv use

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.shape[:2] != (self.in_height, self.in_width):
            raise VideoError(
                f"frame of {bgr.shape[1]}x{bgr.shape[0]} given to a rectifier built for "
                f"{self.in_width}x{self.in_height}"
            )
        return cv2.remap(bgr, self._map1, self._map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _chroma_maps(self):
        # Chroma planes are the same lens at half resolution with centre siting: a
        # chroma pixel i sits at luma (2i + 0.5), hence f/2 and (c + 0.5)/2 - 0.5.
        rect = self.rect
        fe = rect.fisheye
        cw, ch = fe.image_width // 2, fe.image_height // 2
        half = FisheyeIntrinsics(
            cw, ch, fe.fx / 2, fe.fy / 2, (fe.cx + 0.5) / 2 - 0.5, (fe.cy + 0.5) / 2 - 0.5,
            fe.k1, fe.k2, fe.k3, fe.k4, source=fe.source,
        )
        kn = rect.K_new.copy()
        kn[0, 0] /= 2
        kn[1, 1] /= 2
        kn[0, 2] = (kn[0, 2] + 0.5) / 2 - 0.5
        kn[1, 2] = (kn[1, 2] + 0.5) / 2 - 0.5
        crect = RectifiedIntrinsics(half, kn, cw, ch, rect.balance)
        ow, oh = self.width // 2, self.height // 2
        map_x, map_y, valid = crect.float_maps(ow, oh)
        # A chroma sample is kept only where its whole 2x2 luma block is valid, so every
        # luma pixel that is black gets neutral chroma and decodes to exactly (0, 0, 0).
        block = self.valid_mask.reshape(oh, 2, ow, 2).all(axis=(1, 3))
        bad = ~(valid & block)
        map_x[bad] = map_y[bad] = OUTSIDE
        m1, m2 = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
        return m1, m2

    def remap_yuv420(self, planes: np.ndarray) -> np.ndarray:
        """Rectify a stacked yuv420p frame, shape (H * 3/2, W) uint8 (even W, H)."""
        if self._chroma is None:
            if self.in_width % 2 or self.in_height % 2:
                raise VideoError(f"yuv420p frames need even sizes; rectifier input is {self.in_width}x{self.in_height}")
            self._chroma = self._chroma_maps()
        w, h, ow, oh = self.in_width, self.in_height, self.width, self.height
        if planes.shape != (h * 3 // 2, w):
            raise VideoError(f"yuv420p frame of shape {planes.shape} given to a rectifier built for {w}x{h}")
        cw, ch, ocw, och = w // 2, h // 2, ow // 2, oh // 2
        # PyAV stacks the planes in memory order: Y (h x w), then U and V (h/2 x w/2 each)
        flat = planes.reshape(-1)
        y = flat[: h * w].reshape(h, w)
        u = flat[h * w : h * w + cw * ch].reshape(ch, cw)
        v = flat[h * w + cw * ch :].reshape(ch, cw)
        out = np.empty((oh * 3 // 2, ow), np.uint8)
        oflat = out.reshape(-1)
        cv2.remap(y, self._map1, self._map2, cv2.INTER_LINEAR, dst=oflat[: oh * ow].reshape(oh, ow),
                  borderMode=cv2.BORDER_CONSTANT, borderValue=_Y_BLACK)
        m1, m2 = self._chroma
        for i, plane in enumerate((u, v)):
            start = oh * ow + i * ocw * och
            dst = oflat[start : start + ocw * och].reshape(och, ocw)
            cv2.remap(plane, m1, m2, cv2.INTER_LINEAR, dst=dst, borderMode=cv2.BORDER_CONSTANT, borderValue=_C_NEUTRAL)
        return out


def _check_output_path(in_path: Path, out_path: Path) -> None:
    if out_path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InvalidInputError(f"output {out_path}: suffix must be one of {', '.join(OUTPUT_SUFFIXES)}")
    if out_path.exists() and in_path.exists() and out_path.resolve() == in_path.resolve():
        raise InvalidInputError(f"output {out_path}: is the input file; choose another name")


def rectify_video(
    in_path: str | os.PathLike,
    rect: RectifiedIntrinsics,
    out_path: str | os.PathLike,
    crf: float | None = DEFAULT_CRF,
    preset: str | None = DEFAULT_PRESET,
    progress: bool = True,
    codec: str = DEFAULT_CODEC,
    prefetch: bool = False,
    x264_params: str | None = DEFAULT_X264_PARAMS,
    companion: tuple[Path, Callable[[Path], bytes]] | None = None,
) -> dict:
    """Rectify a clip into `out_path` (written atomically) and return what was written:
    frames, fps, duration_sec, width, height, seconds, throughput_fps, size_bytes.

    The output is probed before it is given its final name: a frame count or rate that
    differs from the input's is a VideoError and no output appears. `companion` =
    (path, make) publishes a second file with the video: `make(finished temporary
    video)` gives its bytes, and it is renamed into place just before the video
    (`egoclean.core.atomic.atomic_paths`), so neither appears without the other.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    _check_output_path(in_path, out_path)
    info = video.probe(in_path)
    if (info.width, info.height) != (rect.width, rect.height):
        raise VideoError(
            f"video {in_path}: is {info.width}x{info.height} but the rectification was set up for "
            f"{rect.width}x{rect.height}"
        )
    rectifier = Rectifier(rect)
    # Odd sizes cannot be yuv420p planes: decode to BGR and let the rectifier trim the
    # last column/row (out_width/out_height are even) instead.
    yuv = info.width % 2 == 0 and info.height % 2 == 0
    fmt = "yuv420p" if yuv else "bgr24"
    step = rectifier.remap_yuv420 if yuv else rectifier
    decoder = video.decoder_for(info.codec)  # NVDEC where it opens ($EGOCLEAN_HWACCEL), probed once
    frames = video.iter_frames(in_path, fmt=fmt)
    if prefetch:
        frames = read_ahead(frames, depth=_QUEUE_FRAMES)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=info.n_frames, unit="frame", desc=f"rectify {in_path.name}", leave=False)
    t0 = time.perf_counter()
    n = 0
    try:
        dests = [companion[0], out_path] if companion else [out_path]
        with atomic.atomic_paths(dests) as tmps:
            tmp = tmps[-1]
            with video.VideoWriter(
                tmp, info.fps, rectifier.width, rectifier.height, codec=codec, crf=crf, preset=preset,
                options={"x264-params": x264_params} if x264_params and codec == "libx264" else None,
            ) as writer:
                encoder, params_used = writer.codec, writer.x264_params
                for frame in frames:
                    writer.write(step(frame), fmt=fmt)
                    n += 1
                    if bar is not None:
                        bar.update(1)
            seconds = time.perf_counter() - t0
            out = video.probe(tmp)
            if n != info.n_frames:
                raise VideoError(
                    f"video {in_path}: decoded {n} frames but the container states {info.n_frames}; "
                    f"the file may be truncated or corrupt"
                )
            if out.n_frames != n or abs(out.fps - info.fps) > 1e-3 * info.fps:
                raise VideoError(
                    f"video {out_path}: written with {out.n_frames} frames at {out.fps:.4f} fps, "
                    f"expected {n} at {info.fps:.4f}; output discarded"
                )
            if companion:
                tmps[0].write_bytes(companion[1](tmp))
    finally:
        if bar is not None:
            bar.close()
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    return {
        "input": str(in_path),
        "output": str(out_path),
        "frames": out.n_frames,
        "fps": out.fps,
        "duration_sec": out.duration_sec,
        "width": out.width,
        "height": out.height,
        "input_width": info.width,
        "input_height": info.height,
        "seconds": seconds,
        "throughput_fps": n / seconds if seconds > 0 else float("inf"),
        "size_bytes": out_path.stat().st_size,
        "codec": codec,
        "decoder": decoder,
        "encoder": encoder,
        "crf": crf,
        "preset": preset,
        "x264_params": params_used,
        "valid_fraction": float(rectifier.valid_mask.mean()),
    }


def intrinsics_path_for(out_path: str | os.PathLike) -> Path:
    """Where `rectify_file` writes the rectified intrinsics: `<out stem>_intrinsics.json`."""
    return intrinsics_beside(out_path)


def _check_not_an_input(outputs: list[Path], inputs: list[Path]) -> None:
    """Refuse an output that is (the same file as) an input: it would be replaced."""
    for out in outputs:
        for given in inputs:
            same = out.exists() and given.exists() and os.path.samefile(out, given)
            if same or out.absolute() == given.absolute():
                raise InvalidInputError(
                    f"output {out} would overwrite the input {given}; choose another output name"
                )


def _pair_json(rect: RectifiedIntrinsics, out_path: Path) -> Callable[[Path], bytes]:
    def make(tmp_video: Path) -> bytes:
        d = rect.to_dict()
        # The video this camera describes: a reader can tell a pair from two runs apart.
        d["video"] = {
            "file": out_path.name, "bytes": tmp_video.stat().st_size, "sha256": atomic.sha256_file(tmp_video),
        }
        return (json.dumps(d, indent=2) + "\n").encode()

    return make


def load_rectified(video_path: str | os.PathLike) -> dict:
    """The rectified intrinsics written by `rectify_file` beside `video_path`, checked to
    describe that very video (IntrinsicsError when they belong to another run)."""
    video_path = Path(video_path)
    intr = intrinsics_path_for(video_path)
    with atomic.folder_lock(video_path.parent, shared=True):
        d = read_json(intr, "intrinsics", missing=f" (none beside {video_path})")
        rec = d.get("video") if isinstance(d, dict) else None
        if not isinstance(rec, dict):
            raise IntrinsicsError(f"intrinsics {intr}: records no video (not written by egoclean rectify)")
        actual = (video_path.stat().st_size, atomic.sha256_file(video_path)) if video_path.is_file() else None
        if actual != (rec.get("bytes"), rec.get("sha256")):
            raise IntrinsicsError(
                f"intrinsics {intr}: do not describe the video {video_path} beside them "
                "(written by another run, or a run was interrupted while publishing); rectify again"
            )
    return d


def rectify_file(
    in_path: str | os.PathLike,
    intrinsics_json: str | os.PathLike,
    out_path: str | os.PathLike,
    balance: float = 0.0,
    crf: float | None = None,
    preset: str | None = None,
    progress: bool = True,
    codec: str = DEFAULT_CODEC,
    x264_params: str | None = DEFAULT_X264_PARAMS,
) -> dict:
    """Rectify `in_path` with the fisheye calibration in `intrinsics_json` (scaled to
    the clip's size); write `out_path` and `<out stem>_intrinsics.json` beside it.

    The two are published together (intrinsics renamed in just before the video); the
    intrinsics record the video's size and SHA-256, checked by `load_rectified`. An
    output that is one of the inputs is refused before anything is read."""
    in_path, out_path, intrinsics_json = Path(in_path), Path(out_path), Path(intrinsics_json)
    intr_out = intrinsics_path_for(out_path)
    _check_output_path(in_path, out_path)
    _check_not_an_input([out_path, intr_out], [in_path, intrinsics_json])
    fisheye = FisheyeIntrinsics.load(intrinsics_json)
    info = video.probe(in_path)
    rect = rectified_intrinsics(fisheye, info.width, info.height, balance=balance)
    result = rectify_video(
        in_path, rect, out_path,
        crf=DEFAULT_CRF if crf is None else crf,
        preset=DEFAULT_PRESET if preset is None else preset,
        progress=progress, codec=codec, x264_params=x264_params,
        companion=(intr_out, _pair_json(rect, out_path)),
    )
    result["intrinsics"] = str(intr_out)
    result["K_new"] = rect.to_dict()["K"]
    return result
