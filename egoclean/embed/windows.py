"""Sliding-window layout of a clip: 64-frame windows every round(fps x 1 s) frames."""

from __future__ import annotations

import math

from egoclean.core.errors import VideoError

DEFAULT_WINDOW = 64


def window_stride(fps: float) -> int:
    """Frames between window starts: round(fps x 1 s) (30 at 30 fps, 25 at 25 fps)."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise VideoError(f"frame rate {fps!r}: must be a positive finite number of frames per second")
    # round() alone would give 0 for fps < 0.5; a stride of 0 would repeat one window forever.
    return max(1, int(round(fps)))


def n_windows(n_frames: int, fps: float, size: int = DEFAULT_WINDOW) -> int:
    """How many full windows fit: (n_frames - size) // stride + 1 (0 when none fits)."""
    if size < 1:
        raise VideoError(f"window size {size}: must be at least 1 frame")
    if n_frames < size:
        return 0
    return (n_frames - size) // window_stride(fps) + 1


def window_starts(n_frames: int, fps: float, size: int = DEFAULT_WINDOW) -> list[int]:
    """First frame of every window; a clip shorter than one window is a VideoError."""
    n = n_windows(n_frames, fps, size)
    if n == 0:
        raise VideoError(
            f"clip of {n_frames} frames at {fps:g} fps is shorter than one {size}-frame window "
            f"({size / fps:.2f} s): nothing to embed"
        )
    stride = window_stride(fps)
    return [k * stride for k in range(n)]


def window_times(starts: list[int], fps: float) -> list[float]:
    """Each window's time in seconds: its first frame / fps."""
    return [s / fps for s in starts]
