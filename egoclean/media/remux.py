"""Frame ranges of videos copied into one MP4 without re-encoding (PyAV stream copy).

A compressed frame can only be decoded from the keyframe before it, so a range
[first, end) of a source is copied as whole groups of pictures: from the last
keyframe at or before `first` up to (not including) the first keyframe at or after
`end` (or the end of the file). The extra lead-in and tail frames are there for the
decoder; the caller addresses its range by the times `RangeCopier` reports. Ranges
from several sources follow each other in one file, their timestamps shifted so
presentation times keep one frame step throughout; all of them must share the
codec, its parameters (extradata) and the frame size, which `compatible` checks.

Memory: one pass over a source's packet headers keeps three integers per frame
(about 100 bytes per frame: a 20-minute clip at 30 fps is a few MB); the copy itself
streams packet by packet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from egoclean.core.errors import VideoError


@dataclass(frozen=True)
class StreamShape:
    """What must agree for ranges of two sources to share one file."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    extradata: bytes
    frame_step: Fraction  # seconds per frame

    def describe(self) -> str:
        return f"{self.codec} {self.width}x{self.height} {self.pix_fmt} at {float(1 / self.frame_step):g} fps"


@dataclass
class PacketIndex:
    """The frames of a video stream: presentation times (stream ticks) in order and keyframe frame indices."""

    pts: np.ndarray  # (n_frames,) int64, sorted
    keyframes: np.ndarray  # frame indices (into pts) of keyframes, sorted
    time_base: Fraction
    shape: StreamShape

    @property
    def n_frames(self) -> int:
        return len(self.pts)

    def gop_range(self, first: int, end: int) -> tuple[int, int]:
        """The frames [g0, g1) of the whole groups of pictures covering [first, end)."""
        if not 0 <= first < end <= self.n_frames:
            raise VideoError(f"frame range [{first}, {end}) outside the video's {self.n_frames} frames")
        k = self.keyframes
        g0 = int(k[np.searchsorted(k, first, side="right") - 1]) if len(k) and k[0] <= first else 0
        i = np.searchsorted(k, end, side="left")
        g1 = int(k[i]) if i < len(k) else self.n_frames
        return g0, g1


def _stream(container, path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(f"video {path}: holds no video stream")
    return container.streams.video[0]


def index_packets(path: str | os.PathLike) -> PacketIndex:
    """Demux (no decoding) a video's first stream: frame times, keyframes and its shape."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video {path}: file not found")
    try:
        with av.open(str(path)) as c:
            s = _stream(c, path)
            pts, keys = [], []
            for p in c.demux(s):
                if p.pts is None:  # the flush packet
                    continue
                pts.append(int(p.pts))
                if p.is_keyframe:
                    keys.append(int(p.pts))
            cc = s.codec_context
            tb = Fraction(s.time_base)
            order = np.sort(np.asarray(pts, dtype=np.int64))
            step = Fraction(int(np.median(np.diff(order)))) * tb if len(order) > 1 else (
                1 / Fraction(s.average_rate) if s.average_rate else Fraction(1, 30))
            shape = StreamShape(cc.name, cc.width, cc.height, str(cc.pix_fmt), bytes(cc.extradata or b""), step)
    except av.FFmpegError as e:
        raise VideoError(f"video {path}: cannot be read ({e})") from e
    if len(order) == 0:
        raise VideoError(f"video {path}: holds no frames")
    key_idx = np.searchsorted(order, np.asarray(sorted(keys), dtype=np.int64))
    return PacketIndex(order, key_idx.astype(np.int64), tb, shape)


class RangeCopier:
    """Writes frame ranges of sources into one MP4 by stream copy; `add` returns where each range landed.

    Use as a context manager; after `close()`, `frame_times()` gives every frame's
    presentation time in the written file (seconds, read back from its packets), which is
    what a reader seeks by.
    """

    def __init__(self, path: str | os.PathLike, shape: StreamShape, template: str | os.PathLike):
        self.path = Path(path)
        self.shape = shape
        self._out = av.open(str(self.path), mode="w")
        with av.open(str(template)) as t:
            self._stream = self._out.add_stream_from_template(_stream(t, template))
        self._tb: Fraction | None = None
        self._cursor = Fraction(0)  # seconds: presentation time of the next range's first frame
        self._last_dts: int | None = None
        self.frames = 0  # frames written (lead-in and tail included)
        self.bytes_in = 0

    def compatible(self, shape: StreamShape) -> bool:
        return shape == self.shape

    def add(self, src: str | os.PathLike, index: PacketIndex, first: int, end: int) -> tuple[int, int]:
        """Copy the groups of pictures covering source frames [first, end); returns the
        file frame index of source frame `first` and the number of frames copied."""
        if not self.compatible(index.shape):
            raise VideoError(f"video {src}: {index.shape.describe()} cannot join a file of {self.shape.describe()}")
        g0, g1 = index.gop_range(first, end)
        lo, hi = int(index.pts[g0]), int(index.pts[g1]) if g1 < index.n_frames else None
        tb_in = index.time_base
        if self._tb is None:
            self._tb = Fraction(self._stream.time_base) if self._stream.time_base else tb_in
        tb_out = self._tb
        step = self.shape.frame_step
        start_frame = self.frames
        offset = self._cursor
        with av.open(str(src)) as c:
            s = _stream(c, src)
            c.seek(lo, stream=s, backward=True, any_frame=False)
            started = False
            shift = None
            for p in c.demux(s):
                if p.pts is None or p.dts is None:
                    continue
                if not started:
                    if p.pts < lo:
                        continue
                    if not (p.is_keyframe and p.pts == lo):
                        raise VideoError(f"video {src}: no keyframe at {float(lo * tb_in):.3f} s after seeking")
                    started = True
                # Packets in decode order: the range ends at the next group's keyframe.
                if hi is not None and p.is_keyframe and p.pts >= hi:
                    break
                if shift is None:
                    shift = int(round((offset - Fraction(lo) * tb_in) / tb_out))
                    dts_out = int(round(Fraction(p.dts) * tb_in / tb_out)) + shift
                    if self._last_dts is not None and dts_out <= self._last_dts:
                        # A deeper reorder delay than the range before: leave a gap of
                        # whole frames so decode times keep increasing.
                        gap = self._last_dts - dts_out + 1
                        frames_gap = int(-(-Fraction(gap) * tb_out // step))
                        offset += frames_gap * step
                        shift = int(round((offset - Fraction(lo) * tb_in) / tb_out))
                p.pts = int(round(Fraction(p.pts) * tb_in / tb_out)) + shift
                p.dts = int(round(Fraction(p.dts) * tb_in / tb_out)) + shift
                p.time_base = tb_out
                self._last_dts = p.dts
                self.bytes_in += p.size
                p.stream = self._stream
                self._out.mux(p)
        copied = g1 - g0
        self._cursor = offset + copied * step
        self.frames += copied
        return start_frame + (first - g0), copied

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def abort(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError):
                pass
            self._out = None

    def __enter__(self) -> RangeCopier:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def frame_times(path: str | os.PathLike) -> np.ndarray:
    """Presentation time (seconds, float64) of every frame of a video, in order, from its packets."""
    idx = index_packets(path)
    return idx.pts.astype(np.float64) * float(idx.time_base)


def decode_range(path: str | os.PathLike, index: PacketIndex, first: int, end: int) -> Iterator[tuple[int, np.ndarray]]:
    """(source frame index, RGB frame) for frames [first, end) of `path`, decoding from the keyframe before `first`."""
    g0, _ = index.gop_range(first, end)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        c.seek(int(index.pts[g0]), stream=s, backward=True)
        for frame in c.decode(s):
            if frame.pts is None:
                continue
            i = int(np.searchsorted(index.pts, frame.pts))
            if i >= end:
                return
            if i >= first:
                yield i, frame.to_ndarray(format="rgb24")
