"""Window layout: stride round(fps), count (n - 64) // stride + 1, times start / fps."""

from __future__ import annotations

import pytest

from egoclean.core.errors import VideoError
from egoclean.embed.windows import n_windows, window_starts, window_stride, window_times


@pytest.mark.parametrize("fps,stride", [(30, 30), (25, 25), (29.97, 30), (24, 24), (59.94, 60), (0.4, 1)])
def test_stride_is_rounded_fps(fps, stride):
    assert window_stride(fps) == stride


def test_exactly_one_window():
    assert window_starts(64, 30.0) == [0]
    assert window_times([0], 30.0) == [0.0]


def test_one_frame_short_is_a_clear_error():
    with pytest.raises(VideoError, match=r"63 frames at 30 fps is shorter than one 64-frame window"):
        window_starts(63, 30.0)
    assert n_windows(63, 30.0) == 0


@pytest.mark.parametrize(
    "n_frames,fps,expected",
    [
        (93, 30.0, 1),  # one frame short of a second window
        (94, 30.0, 2),
        (30 * 180, 30.0, (5400 - 64) // 30 + 1),  # a median 180 s clip: 178 windows
        (25 * 60, 25.0, (1500 - 64) // 25 + 1),
        (1000, 29.97, (1000 - 64) // 30 + 1),
    ],
)
def test_window_count_and_times(n_frames, fps, expected):
    starts = window_starts(n_frames, fps)
    stride = window_stride(fps)
    assert len(starts) == expected == n_windows(n_frames, fps)
    assert starts == list(range(0, stride * expected, stride))
    assert starts[-1] + 64 <= n_frames < starts[-1] + 64 + stride
    times = window_times(starts, fps)
    assert times[1] == pytest.approx(stride / fps) if len(times) > 1 else times == [0.0]


def test_25fps_times_are_whole_seconds():
    assert window_times(window_starts(25 * 10, 25.0), 25.0) == [float(k) for k in range(8)]


def test_29_97_times_drift_from_whole_seconds():
    # stride 30 at 29.97 fps: window k starts at 30k / 29.97 s, slightly after k s.
    t = window_times(window_starts(400, 29.97), 29.97)
    assert t[10] == pytest.approx(300 / 29.97) and t[10] > 10.0


@pytest.mark.parametrize("fps", [0, -30, float("nan"), float("inf")])
def test_bad_fps_is_an_error(fps):
    with pytest.raises(VideoError, match="frame rate"):
        window_stride(fps)


def test_other_window_size():
    assert window_starts(40, 30.0, size=16) == [0]
    with pytest.raises(VideoError, match="16-frame window"):
        window_starts(15, 30.0, size=16)
