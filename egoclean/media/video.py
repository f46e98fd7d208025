"""Streaming video I/O with PyAV: probe, frame iteration and an H.264/H.265 writer.

Frames are yielded one at a time, so memory does not grow with clip length.

Hardware codecs: PyAV's bundled FFmpeg has NVDEC decoders (`hevc_cuvid`, `h264_cuvid`)
and NVENC encoders (`h264_nvenc`, `hevc_nvenc`); they exist everywhere but open only on
a node with an NVIDIA GPU and driver. $EGOCLEAN_HWACCEL chooses (`hwaccel()`): `auto`
uses them when they open and the CPU codecs otherwise, `cpu` never tries them, `nvidia`
requires them. Each hardware codec is probed once per process (`hw_available`).
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

from egoclean.core import defaults
from egoclean.core.errors import EgoCleanError, InvalidInputError, VideoError
from egoclean.settings import current as current_settings

# The pipeline's video contract: Egocentric-10K clips are H.265 and the rectified clips
# H.264; anything else (mpeg4, mjpeg, ...) is refused by `probe` unless a caller opts out.
SUPPORTED_CODECS = ("h264", "hevc")
# The largest frame (width x height) a video may declare: 8K UHD. Every frame, remap
# table and encoder buffer is allocated at the declared size, so a tiny file claiming
# 16000x16000 would take gigabytes; it is refused from its header instead. Override
# with the environment variable MAX_PIXELS_ENV (a positive integer).
DEFAULT_MAX_PIXELS = defaults.MAX_PIXELS
MAX_PIXELS_ENV = "EGOCLEAN_MAX_PIXELS"
HWACCEL_ENV = "EGOCLEAN_HWACCEL"
# The NVDEC decoder for each input codec, the NVENC encoder for each CPU encoder.
NVDEC = {"hevc": "hevc_cuvid", "h264": "h264_cuvid"}
NVENC = {"libx264": "h264_nvenc", "libx265": "hevc_nvenc"}
# x264/x265 presets -> NVENC's p1 (fastest) .. p7 (best); rate control: constant quality
# (-cq) at the CRF value, which NVENC reads on about the same 0-51 scale.
_NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
                  "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7"}
# The preset names libx264/libx265 know (NVENC takes them too, through the map above).
X264_PRESETS = tuple(_NVENC_PRESETS)
# Hardware codec name -> None (it opens here) or why it does not; probed once per process.
_HW_PROBED: dict[str, str | None] = {}
# x264's AVX-512 MB-tree propagation (mbtree_propagate_list) works on 8 macroblocks at a
# time and, when a row's macroblock count is not a multiple of 8, also propagates the
# uninitialised scratch entries past the row's end: the output then depends on what was
# in memory, and the same frames give a different file run after run (measured on the
# bundled x264: 480, 448, 496, 960 and 1904 px wide change with MALLOC_PERTURB_; 384,
# 512, 1024 and 1920 never do; without AVX-512, or with MB-tree off, all are stable).
_X264_MBTREE_GROUP = 8


def x264_params(width: int, params: str | None) -> str | None:
    """The x264-params `VideoWriter` gives libx264 for frames `width` pixels wide: `params`,
    plus `mbtree=0` where x264's MB-tree would make the output depend on memory contents
    (a macroblock row that is not a multiple of 8 macroblocks; see _X264_MBTREE_GROUP)."""
    if ((width + 15) // 16) % _X264_MBTREE_GROUP == 0:
        return params
    keys = {kv.split("=", 1)[0].strip() for kv in (params or "").split(":") if kv}
    if "mbtree" in keys or "no-mbtree" in keys:
        return params
    return f"{params}:mbtree=0" if params else "mbtree=0"


class HardwareCodecError(EgoCleanError):
    """EGOCLEAN_HWACCEL=nvidia, but an NVDEC/NVENC codec does not open on this node."""


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
    """The frame-size limit: $EGOCLEAN_MAX_PIXELS, else DEFAULT_MAX_PIXELS (egoclean.settings reads it)."""
    return current_settings().max_pixels


def hwaccel(choice: str | None = None) -> str:
    """The hardware choice: `choice` if given, else $EGOCLEAN_HWACCEL (egoclean.settings reads it), else
    defaults.HWACCEL."""
    if choice is None:
        return current_settings().hwaccel
    value = choice.strip().lower() or defaults.HWACCEL
    if value not in defaults.HWACCEL_CHOICES:
        raise InvalidInputError(
            f"hardware choice {choice[:40]!r}: expected one of {', '.join(defaults.HWACCEL_CHOICES)}")
    return value


def _probe_hw(name: str, mode: str) -> str | None:
    """Open hardware codec `name` once; None if it opens, else the reason (cached per process)."""
    if name not in _HW_PROBED:
        try:
            ctx = av.CodecContext.create(name, mode)
            if mode == "w":
                ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 256, "yuv420p", Fraction(1, 30)
            ctx.open()
            ctx.close()
            _HW_PROBED[name] = None
        except (av.FFmpegError, OSError, ValueError) as e:
            _HW_PROBED[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
    return _HW_PROBED[name]


def hw_available(name: str, mode: str = "r") -> bool:
    """Whether hardware codec `name` (e.g. hevc_cuvid, mode "r"; h264_nvenc, mode "w") opens here."""
    return _probe_hw(name, mode) is None


def _hw_refused(name: str, reason: str) -> HardwareCodecError:
    return HardwareCodecError(
        f"{HWACCEL_ENV}=nvidia: {name} does not open on this node ({reason}); use auto or cpu without an NVIDIA GPU"
    )


def _choose(codec: str, table: dict[str, str], mode: str, kind: str, choice: str | None) -> str:
    """The hardware codec for CPU codec `codec` from `table` when the choice allows and it
    opens here, else `codec`; under `nvidia` a missing or unopenable one is an error."""
    hw = hwaccel(choice)
    name = table.get(codec)
    if hw == "cpu" or name is None:
        if hw == "nvidia":
            raise _hw_refused(f"an {kind} for {codec}", "none exists")
        return codec
    reason = _probe_hw(name, mode)
    if reason is None:
        return name
    if hw == "nvidia":
        raise _hw_refused(name, reason)
    return codec


def decoder_for(codec: str, choice: str | None = None) -> str:
    """The decoder `iter_frames` uses for a stream of `codec` under the hardware choice."""
    return _choose(codec, NVDEC, "r", "NVDEC decoder", choice)


def encoder_for(codec: str, choice: str | None = None) -> str:
    """The encoder `VideoWriter` uses for CPU encoder `codec` (libx264...) under the hardware choice."""
    return _choose(codec, NVENC, "w", "NVENC encoder", choice)


def _hw_frames(container, stream, name: str):
    """Decode the stream's packets with NVDEC decoder `name`; frames come back as CPU frames."""
    ctx = av.CodecContext.create(name, "r")
    if stream.codec_context.extradata:
        ctx.extradata = stream.codec_context.extradata
    ctx.open()
    try:
        for packet in container.demux(stream):
            if packet.size:
                yield from ctx.decode(packet)
        yield from ctx.decode(None)
    finally:
        ctx.close()


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


def iter_frames(path: str | os.PathLike, fmt: str = "bgr24", hw: str | None = None) -> Iterator[np.ndarray]:
    """Decode frames in order (NVDEC or the threaded CPU decoder, per `decoder_for` and the
    hardware choice `hw`, default $EGOCLEAN_HWACCEL) as HxWx3 uint8 arrays in `fmt`.

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
        decoder = decoder_for(stream.codec_context.name, hw)
        rate = stream.average_rate or stream.guessed_rate
        tick = float(1 / (rate * stream.time_base)) if rate and stream.time_base else None
        prev = None
        try:
            decoded = container.decode(stream) if decoder == stream.codec_context.name else (
                _hw_frames(container, stream, decoder))
            for i, frame in enumerate(decoded):
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
    """Encode BGR frames to an MP4 (libx264 by default; libx265, h264_nvenc also work).

    Under the hardware choice `hw` (default $EGOCLEAN_HWACCEL) libx264/libx265 become
    h264_nvenc/hevc_nvenc where those open (`encoder_for`); `codec` says which is used.
    libx264 gets `x264_params(width, ...)` (MB-tree off where x264 would make the output
    depend on memory contents), so the same frames always give the same bytes;
    `x264_params` says what it was given.
    """

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
        hw: str | None = None,
    ):
        if width % 2 or height % 2:
            raise VideoError(f"video {path}: {width}x{height} has an odd side; yuv420p needs even sizes")
        if preset is not None and codec in ("libx264", "libx265") and preset not in X264_PRESETS:
            # A misspelt preset would otherwise fail inside the encoder (or run as NVENC's p4).
            raise InvalidInputError(f"encoder preset {preset!r} for {path}: must be one of {', '.join(X264_PRESETS)}")
        self.path = Path(path)
        requested = codec
        codec = self.codec = encoder_for(codec, hw)
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width = width
        self.stream.height = height
        self.stream.pix_fmt = pix_fmt
        opts: dict[str, str] = {}
        if crf is not None and codec in ("libx264", "libx265"):
            opts["crf"] = str(crf)
        if codec in NVENC.values():
            # Same quality bound as the CRF: constant-quality VBR at that value.
            if crf is not None:
                opts.update({"rc": "vbr", "cq": str(crf), "b": "0"})
            opts["preset"] = _NVENC_PRESETS.get(preset or "medium", "p4")
        elif preset is not None:
            opts["preset"] = preset
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        if codec == requested:  # CPU-encoder options (x264-params...) mean nothing to NVENC
            opts.update(options or {})
        if codec == "libx264":
            params = x264_params(width, opts.get("x264-params"))
            if params:
                opts["x264-params"] = params
        self.x264_params = opts.get("x264-params") if codec == "libx264" else None
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
