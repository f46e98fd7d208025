"""Stream copy of frame ranges: whole groups of pictures, bit-identical frames, one frame step throughout."""

from __future__ import annotations

import numpy as np
import pytest

from egoclean.core.errors import VideoError
from egoclean.media.remux import RangeCopier, frame_times, index_packets
from egoclean.media.video import VideoWriter, iter_frames


def _video(path, n=120, size=(64, 48), gop=30, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    with VideoWriter(path, 30, size[0], size[1], options={"g": str(gop), "keyint_min": str(gop),
                                                           "sc_threshold": "0"}) as w:
        for i in range(n):
            w.write(np.roll(base, 2 * i, axis=1))  # every frame differs
    return path


def test_ranges_from_two_sources_decode_to_the_same_frames(tmp_path):
    a, b = _video(tmp_path / "a.mp4"), _video(tmp_path / "b.mp4", seed=1)
    ia, ib = index_packets(a), index_packets(b)
    assert ia.keyframes.tolist() == [0, 30, 60, 90]
    assert ia.gop_range(35, 50) == (30, 60) and ia.gop_range(95, 120) == (90, 120)
    ranges = [(a, ia, 35, 50), (b, ib, 61, 100), (a, ia, 0, 10)]
    with RangeCopier(tmp_path / "out.mp4", ia.shape, a) as rc:
        placed = [rc.add(src, idx, first, end) for src, idx, first, end in ranges]
    assert [n for _, n in placed] == [30, 60, 30]  # whole groups of pictures
    out = list(iter_frames(tmp_path / "out.mp4"))
    src = {a: list(iter_frames(a)), b: list(iter_frames(b))}
    for (path, _, first, end), (at, _) in zip(ranges, placed):
        for k in range(end - first):
            assert np.array_equal(out[at + k], src[path][first + k])
    t = frame_times(tmp_path / "out.mp4")
    assert len(t) == 120 and t[0] == 0
    np.testing.assert_allclose(np.diff(t), 1 / 30, atol=1e-6)


def test_a_source_of_another_shape_cannot_join(tmp_path):
    a, c = _video(tmp_path / "a.mp4"), _video(tmp_path / "c.mp4", size=(32, 48))
    ia, ic = index_packets(a), index_packets(c)
    with RangeCopier(tmp_path / "out.mp4", ia.shape, a) as rc:
        assert not rc.compatible(ic.shape)
        with pytest.raises(VideoError, match="cannot join"):
            rc.add(c, ic, 0, 10)
        rc.add(a, ia, 0, 10)


def test_bad_ranges_and_files_are_named(tmp_path):
    ia = index_packets(_video(tmp_path / "a.mp4"))
    with pytest.raises(VideoError, match="outside"):
        ia.gop_range(100, 130)
    with pytest.raises(VideoError, match="not found"):
        index_packets(tmp_path / "missing.mp4")
