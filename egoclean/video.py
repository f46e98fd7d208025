"""Streaming video I/O with PyAV: probe, frame iteration and an H.264/H.265 writer.

Frames are yielded one at a time, so memory does not grow with clip length.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, asdict
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from egoclean import defaults
from egoclean.errors import VideoError
from egoclean.options import env_whole

# The pipeline's video contract: Egocentric-10K clips are H.265 and the rectified clips
# H.264; anything else (mpeg4, mjpeg, ...) is refused by `probe` unless a caller opts out.
SUPPORTED_CODECS = ("h264", "hevc")
# The largest frame (width x height) a video may declare: 8K UHD. Every frame, remap
# table and encoder buffer is allocated at the declared size, so a tiny file claiming
# 16000x16000 would take gigabytes; it is refused from its header instead. Override
# with the environment variable MAX_PIXELS_ENV (a positive integer).
DEFAULT_MAX_PIXELS = defaults.MAX_PIXELS
MAX_PIXELS_ENV = "EGOCLEAN_MAX_PIXELS"


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds: frame count, rate, size, codec."""

    path: str
    n_frames: int
    fps: float
    width: int
    height: int
    codec: str
    size_bytes: int

    @property
    def duration_sec(self) -> float:
        return self.n_frames / self.fps if self.fps > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "duration_sec": self.duration_sec}


def max_pixels() -> int:
    """The frame-size limit: $EGOCLEAN_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    return env_whole(os.environ, MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS, 1, 10**12)


def _open(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video {path}: file not found")
    limit = max_pixels()
    try:
        try:
            # The decoder's own limit stops FFmpeg allocating a frame while it probes the
            # stream (find_stream_info decodes one); the check below then names the problem.
            container = av.open(str(path), stream_options=[{"max_pixels": str(limit)}] * 16)
        except ValueError:
            # Formats that show their streams only after probing (MPEG-TS, an empty MP4)
            # take no per-stream options; the check below still refuses before decoding.
            container = av.open(str(path))
    except av.FFmpegError as e:
        raise VideoError(f"video {path}: cannot be opened as a video container ({e})") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"video {path}: holds no video stream")
    ctx = container.streams.video[0].codec_context
    if ctx.width * ctx.height > limit:
        container.close()
        raise VideoError(
            f"video {path}: declares {ctx.width}x{ctx.height} frames ({ctx.width * ctx.height / 1e6:.1f} megapixels), "
            f"more than the limit of {limit} pixels; raise {MAX_PIXELS_ENV} if this size is intended"
        )
    return container


def probe(path: str | os.PathLike, codecs: tuple[str, ...] | None = SUPPORTED_CODECS) -> VideoInfo:
    """Read a video's header; the frame count is exact (counted from packets when the
    container does not state it). A codec outside `codecs` (None: any) or a stream
    without frames is a VideoError."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not fps or not math.isfinite(fps):
            raise VideoError(f"video {path}: no frame rate in the stream")
        n = int(stream.frames or 0)
        if n <= 0:
            try:
                n = sum(1 for p in container.demux(stream) if p.size > 0)
            except av.FFmpegError as e:
                raise VideoError(f"video {path}: corrupt while counting frames ({e})") from e
        ctx = stream.codec_context
        if codecs and ctx.name not in codecs:
            raise VideoError(
                f"video {path}: codec {ctx.name!r} is not H.264/H.265 (Egocentric-10K clips are H.265); "
                f"re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4"
            )
        if n <= 0:
            raise VideoError(f"video {path}: holds no frames")
        return VideoInfo(
            path=str(path),
            n_frames=n,
            fps=fps,
            width=int(ctx.width),
            height=int(ctx.height),
            codec=str(ctx.name),
            size_bytes=Path(path).stat().st_size,
        )
    finally:
        container.close()


def iter_frames(path: str | os.PathLike, fmt: str = "bgr24") -> Iterator[np.ndarray]:
    """Decode frames in order (threaded decoder) as HxWx3 uint8 arrays in `fmt`.

    Frames must sit on a constant-rate grid: the pipeline counts time in frames (window
    stride, span times, the rectified output's rate), so a variable-frame-rate clip would
    give wrong times silently. A gap between consecutive frames that is more than half a
    frame away from the average frame duration is a VideoError. (Each gap is compared on
    its own, so a long constant-rate clip whose stated average is slightly off never
    accumulates into a false alarm.)
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        tick = float(1 / (rate * stream.time_base)) if rate and stream.time_base else None
        prev = None
        try:
            for i, frame in enumerate(container.decode(stream)):
                if tick and frame.pts is not None:
                    gap = None if prev is None else (frame.pts - prev) / tick
                    prev = frame.pts
                    if gap is not None and abs(gap - 1.0) > 0.5:
                        raise VideoError(
                            f"video {path}: variable frame rate "
                            f"(frame {i} at {float(frame.pts * stream.time_base):.3f} s "
                            f"comes {gap:.2f} frame durations after the previous one, at {float(rate):g} fps on "
                            f"average); re-encode at a constant rate, e.g. ffmpeg -i IN -fps_mode cfr OUT.mp4"
                        )
                yield frame.to_ndarray(format=fmt)
        except av.FFmpegError as e:
            raise VideoError(f"video {path}: decoding failed ({e}); the file may be truncated or corrupt") from e
    finally:
        container.close()


class VideoWriter:
    """Encode BGR frames to an MP4 (libx264 by default; libx265, h264_nvenc also work)."""

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        width: int,
        height: int,
        codec: str = "libx264",
        crf: int | None = 23,
        preset: str | None = "veryfast",
        pix_fmt: str = "yuv420p",
        options: dict[str, str] | None = None,
    ):
        if width % 2 or height % 2:
            raise VideoError(f"video {path}: {width}x{height} has an odd side; yuv420p needs even sizes")
        self.path = Path(path)
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width = width
        self.stream.height = height
        self.stream.pix_fmt = pix_fmt
        opts: dict[str, str] = {}
        if crf is not None and codec in ("libx264", "libx265"):
            opts["crf"] = str(crf)
        if preset is not None:
            opts["preset"] = preset
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        opts.update(options or {})
        self.stream.options = opts
        self.stream.thread_type = "AUTO"
        self._time_base = Fraction(1, 1) / Fraction(fps).limit_denominator(1001)
        self.stream.codec_context.time_base = self._time_base
        self.n_frames = 0

    def write(self, frame_bgr: np.ndarray, fmt: str = "bgr24") -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format=fmt)
        frame.pts = self.n_frames
        frame.time_base = self._time_base
        self.container.mux(self.stream.encode(frame))
        self.n_frames += 1

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.mux(self.stream.encode(None))
            finally:
                self.container.close()
                self.container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self.container is not None:
            # Already failing (often a full disk): closing may fail the same way, and that
            # second error must not hide the first.
            try:
                self.container.close()
            except (av.FFmpegError, OSError):
                pass
            self.container = None
