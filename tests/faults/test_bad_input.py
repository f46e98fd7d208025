"""Bad input end to end: the real CLI (rectify, embed, fetch) refuses it in one line, exit 2,
naming the input and the problem, and leaves no output and no temporary file behind.

Single-module cases already proven elsewhere are cited in docs/RELIABILITY.md, not
repeated here (tar: tests/ingest/test_source.py, tests/ingest/test_tarindex.py; intrinsics fields:
tests/media/test_intrinsics.py; ground truth: tests/temporal/test_evaluation.py; SQL: tests/store/test_store.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from egoclean.cli import main
from egoclean.core.errors import VideoError
from egoclean.media.video import probe

from .conftest import decoded, part_files, write_clip

INTR = {"model": "fisheye", "image_width": 64, "image_height": 48, "fx": 30.0, "fy": 30.0,
        "cx": 32.0, "cy": 24.0, "k1": 0.01, "k2": 0.0, "k3": 0.0, "k4": 0.0}


def bad_clip(kind: str, d: Path) -> Path:
    p = d / f"{kind}.mp4"
    if kind == "truncated":
        full = write_clip(d / "full.mp4", 80)
        p.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "not-a-video":
        p.write_text("this is not a video\n" * 50)
    elif kind == "zero-frames":
        import av

        c = av.open(str(p), "w")
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
        c.close()
    elif kind == "mpeg4":
        write_clip(p, 80, codec="mpeg4")
    elif kind == "mjpeg":
        write_clip(p, 80, codec="mjpeg", pix_fmt="yuvj420p")
    elif kind == "vfr":
        # 80 frames 1/60, 1/30 or 1/15 s apart: a phone-style variable-frame-rate clip
        gaps = np.random.default_rng(0).choice([1500, 3000, 6000], size=79)
        write_clip(p, 80, codec="libx264", pts=[0, *np.cumsum(gaps).tolist()])
    return p


PROBLEM = {
    "truncated": "cannot be opened",  # the moov atom is at the end: a cut file has none
    "empty": "cannot be opened",
    "not-a-video": "cannot be opened",
    "zero-frames": "no",  # "holds no video stream" / "holds no frames"
    "mpeg4": "codec 'mpeg4' is not H.264/H.265",
    "mjpeg": "codec 'mjpeg' is not H.264/H.265",
    "vfr": "variable frame rate",
}


def run(args, capsys) -> tuple[int, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.err


@pytest.mark.parametrize("kind", list(PROBLEM))
def test_rectify_refuses_bad_video(kind, tmp_path, capsys):
    clip = bad_clip(kind, tmp_path)
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR))
    out = tmp_path / "out" / "rect.mp4"
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)], capsys)
    assert rc == 2
    line = err.replace("\r", "\n").strip().splitlines()[-1]  # after any progress bar
    assert line.startswith("egoclean rectify: error: video ")
    assert str(clip) in line and PROBLEM[kind] in line, line
    assert not out.exists() and not out.with_name("rect_intrinsics.json").exists()
    assert part_files(tmp_path) == []


@pytest.mark.parametrize("kind", ["truncated", "mpeg4", "vfr", "zero-frames"])
def test_embed_refuses_bad_video(kind, tmp_path, capsys, tiny_model):
    clip = bad_clip(kind, tmp_path)
    prefix = tmp_path / "out" / "clip"
    rc, err = run(["embed", str(clip), "-o", str(prefix), "--model", tiny_model, "--device", "cpu"], capsys)
    assert rc == 2
    assert str(clip) in err and PROBLEM[kind] in err, err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_vfr_refused_where_frames_are_read_not_only_at_probe(tmp_path):
    """VFR is found from the frame timestamps, so a caller that skips probe is protected too."""
    from egoclean.media.video import iter_frames

    clip = bad_clip("vfr", tmp_path)
    assert probe(clip).n_frames == 80  # the header looks fine
    with pytest.raises(VideoError, match=r"vfr\.mp4: variable frame rate \(frame \d+ at [0-9.]+ s comes"):
        for _ in iter_frames(clip):
            pass


def test_constant_rate_clips_with_reordered_frames_are_accepted(tmp_path):
    """B-frames (x265 default) decode out of order internally; the pts grid check must not trip."""
    clip = write_clip(tmp_path / "b.mp4", 40, codec="libx265")
    assert decoded(clip).shape == (40, 48, 64, 3)
    assert probe(clip).codec == "hevc"


def test_odd_sized_clip_is_rectified_to_the_even_size_below(tmp_path, capsys):
    clip = write_clip(tmp_path / "odd.mp4", 12, w=65, h=49, codec="libx264", pix_fmt="yuv444p")
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR | {"image_width": 65, "image_height": 49}))
    out = tmp_path / "rect.mp4"
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)], capsys)
    assert rc == 0, err
    info = probe(out)
    assert (info.width, info.height, info.n_frames) == (64, 48, 12)


def test_portrait_clip_with_portrait_intrinsics(tmp_path, capsys):
    clip = write_clip(tmp_path / "portrait.mp4", 12, w=48, h=64, codec="libx264")  # x265 aborts below 64 px wide
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR | {"image_width": 48, "image_height": 64, "cx": 24.0, "cy": 32.0}))
    out = tmp_path / "rect.mp4"
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)], capsys)
    assert rc == 0, err
    info = probe(out)
    assert (info.width, info.height, info.n_frames) == (48, 64, 12)
    assert json.loads((tmp_path / "rect_intrinsics.json").read_text())["image_height"] == 64


@pytest.mark.parametrize("change, problem", [
    ({"model": "pinhole"}, "fisheye"),
    ({"fx": float("nan")}, "fx"),
    ({"k1": float("inf")}, "k1"),
    ({"cx": 640.0}, "cx"),  # principal point far outside the 64x48 image
    ({"fy": "thirty"}, "fy"),
    ({"fx": 0.001, "fy": 0.001}, "degenerate"),  # a rectification with nothing valid in it
], ids=["not-fisheye", "nan", "inf", "principal-point-outside", "non-numeric", "degenerate"])
def test_rectify_refuses_bad_intrinsics_and_keeps_old_output(change, problem, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", 8)
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR | change))  # NaN / Infinity as Python writes them
    out = tmp_path / "rect.mp4"
    out.write_bytes(b"an earlier output")
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)], capsys)
    assert rc == 2
    assert "intrinsics" in err and problem in err, err
    assert out.read_bytes() == b"an earlier output"
    assert part_files(tmp_path) == []


def test_rectify_refuses_missing_intrinsics_file(tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", 8)
    rc, err = run(["rectify", str(clip), "--intrinsics", str(tmp_path / "nope.json"), "-o",
                   str(tmp_path / "r.mp4")], capsys)
    assert rc == 2 and "nope.json" in err, err


@pytest.mark.parametrize("key", ["factory1_worker1_1", "factory001_worker001_0001", "../etc/passwd",
                                 "factory001_worker001_00001.mp4", "FACTORY001_WORKER001_00001"])
def test_cli_fetch_refuses_bad_clip_ids(key, tmp_path, capsys):
    rc, err = run(["fetch", key, "--source", str(tmp_path), "-o", str(tmp_path / "o")], capsys)
    assert rc == 2 and "invalid clip id" in err and "factoryXXX_workerYYY_NNNNN" in err, err
    assert not (tmp_path / "o").exists()


def test_portrait_clip_with_landscape_intrinsics_is_refused(tmp_path, capsys):
    """Scaling a 64x48 calibration to a 48x64 clip would scale fx and fy apart (a bent image)."""
    clip = write_clip(tmp_path / "portrait.mp4", 8, w=48, h=64, codec="libx264")
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR))
    out = tmp_path / "rect.mp4"
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)], capsys)
    assert rc == 2
    assert "calibrated at 64x48" in err and "48x64" in err and "aspect ratio" in err, err
    assert not out.exists() and part_files(tmp_path) == []


PEAK_RSS = """
import resource, sys
from egoclean.cli import main
rc = main(sys.argv[1:])
print("PEAK_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "RC", rc)
"""


def _rectify_peak_mb(clip: Path, intr: Path, out: Path) -> int:
    import subprocess
    import sys

    from .conftest import ROOT

    done = subprocess.run([sys.executable, "-c", PEAK_RSS, "rectify", str(clip), "--intrinsics", str(intr),
                           "-o", str(out)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("PEAK_MB")]
    assert line and line[0].endswith("RC 0"), done.stderr[-2000:]
    return int(line[0].split()[1])


def test_4k_clip_is_streamed_with_bounded_memory(tmp_path):
    """A very large frame size is accepted and streamed: a 3840x2160 clip rectifies with the
    right frame count, and at 1280x720 five times the frames do not raise peak memory by
    more than a few frames' worth (holding them all would add ~330 MB)."""
    big = write_clip(tmp_path / "4k.mp4", 4, w=3840, h=2160, codec="libx264")
    intr = tmp_path / "4k.json"
    intr.write_text(json.dumps(INTR | {"image_width": 3840, "image_height": 2160, "fx": 1200.0, "fy": 1200.0,
                                       "cx": 1920.0, "cy": 1080.0}))
    peak_4k = _rectify_peak_mb(big, intr, tmp_path / "4k_rect.mp4")
    assert probe(tmp_path / "4k_rect.mp4").n_frames == 4
    assert peak_4k < 2048, f"{peak_4k} MB for four 4K frames"

    intr720 = tmp_path / "720.json"
    intr720.write_text(json.dumps(INTR | {"image_width": 1280, "image_height": 720, "fx": 400.0, "fy": 400.0,
                                          "cx": 640.0, "cy": 360.0}))
    peaks = {}
    for n in (30, 150):
        clip = write_clip(tmp_path / f"720_{n}.mp4", n, w=1280, h=720, codec="libx264")
        peaks[n] = _rectify_peak_mb(clip, intr720, tmp_path / f"720_{n}_rect.mp4")
        assert probe(tmp_path / f"720_{n}_rect.mp4").n_frames == n
    assert peaks[150] - peaks[30] < 80, peaks  # 120 more BGR frames held would be +330 MB


# ---------------------------------------------------------------- geometry and size limits
def test_calibration_of_another_aspect_ratio_is_refused(tmp_path, capsys):
    """A square calibration on a 4:3 clip (same orientation) would be scaled with fx
    stretched against fy: refused, naming both sizes."""
    clip = write_clip(tmp_path / "clip.mp4", 8)  # 64x48
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR | {"image_width": 96, "image_height": 96, "cx": 48.0, "cy": 48.0}))
    out = tmp_path / "rect.mp4"
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)], capsys)
    assert rc == 2
    assert "calibrated at 96x96" in err and "64x48" in err and "aspect ratio" in err, err
    assert not out.exists() and part_files(tmp_path) == []


def test_calibration_scaled_uniformly_is_accepted(tmp_path, capsys):
    """The same camera at twice the size: every length scales by one factor."""
    clip = write_clip(tmp_path / "clip.mp4", 8)  # 64x48
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR | {"image_width": 128, "image_height": 96, "fx": 60.0, "fy": 60.0,
                                       "cx": 64.0, "cy": 48.0}))
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(tmp_path / "rect.mp4")], capsys)
    assert rc == 0, err
    scaled = json.loads((tmp_path / "rect_intrinsics.json").read_text())["fisheye_scaled"]
    assert scaled["fx"] == scaled["fy"] == 30.0


# VmHWM (this process's own peak), not ru_maxrss: that one keeps the parent's peak across exec.
PEAK_PROBE = """
import sys
from egoclean.cli import main
rc = main(sys.argv[1:])
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print("PEAK_MB", int(hwm) // 1024, "RC", rc)
"""


@pytest.mark.parametrize("command", ["rectify", "embed"])
def test_a_file_declaring_a_huge_frame_is_refused_before_allocating(command, tmp_path):
    """A 654-byte H.264 stream whose header declares 16000x16000: refused from the header,
    without decoding a frame (one such frame is 384 MB; opening it unguarded takes 1.2 GB)."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT, write_h264_declaring

    clip = write_h264_declaring(tmp_path / "huge.h264", 16000, 16000)
    assert clip.stat().st_size < 2000
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR | {"image_width": 16000, "image_height": 16000, "cx": 8000.0, "cy": 8000.0,
                                       "fx": 8000.0, "fy": 8000.0}))
    args = (["rectify", str(clip), "--intrinsics", str(intr), "-o", str(tmp_path / "r.mp4")] if command == "rectify"
            else ["embed", str(clip), "-o", str(tmp_path / "emb" / "x"), "--model", str(tmp_path / "no-model")])
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "RC 2" in done.stdout, done.stdout + done.stderr[-2000:]
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "16000x16000" in err and "EGOCLEAN_MAX_PIXELS" in err, err
    peak = int(done.stdout.split("PEAK_MB")[1].split()[0])
    assert peak < 600, f"{peak} MB to refuse a 16000x16000 header"
    assert part_files(tmp_path) == [] and not (tmp_path / "r.mp4").exists()


def test_the_frame_size_limit_is_configurable(tmp_path, capsys, monkeypatch):
    clip = write_clip(tmp_path / "clip.mp4", 4)  # 64x48 = 3072 pixels
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR))
    args = ["rectify", str(clip), "--intrinsics", str(intr), "-o", str(tmp_path / "r.mp4")]
    monkeypatch.setenv("EGOCLEAN_MAX_PIXELS", "3071")
    rc, err = run(args, capsys)
    assert rc == 2 and "64x48" in err and "3071" in err, err
    monkeypatch.setenv("EGOCLEAN_MAX_PIXELS", "3072")
    rc, err = run(args, capsys)
    assert rc == 0, err
    for bad in ("lots", "-5", "0", "1e400", "9" * 5000):
        monkeypatch.setenv("EGOCLEAN_MAX_PIXELS", bad)
        rc, err = run(args, capsys)
        assert rc == 2 and "EGOCLEAN_MAX_PIXELS" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("preset", ["bogus", "VeryFast", "fast; rm -rf /", ""])
def test_rectify_refuses_an_unknown_preset_and_keeps_old_output(preset, tmp_path, capsys):
    """`--preset` is checked against the encoder's preset names before anything is written."""
    clip = write_clip(tmp_path / "clip.mp4", 8)
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR))
    out = tmp_path / "rect.mp4"
    out.write_bytes(b"an earlier output")
    rc, err = run(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out), "--preset", preset], capsys)
    assert rc == 2, err
    assert f"encoder preset {preset!r}" in err and "must be one of ultrafast, " in err and "\n" not in err.strip()
    assert out.read_bytes() == b"an earlier output"
    assert part_files(tmp_path) == []


@pytest.mark.parametrize("option, value, expected", [
    ("--resolution", "8000", "a whole number from 16 to 4320"),
    ("--resolution", "8", "a whole number from 16 to 4320"),
    ("--max-sec", "1e-7", "a number in [0.5, 3600]"),
    ("--min-sec", "-3", "a number in [0, 3600]"),
    ("--margin", "inf", "a number in [0, 600]"),
    ("--cycles", "0", "a whole number from 1 to 1000"),
    ("--timeout", "nan", "a number"),
    ("--timeout", "0", "a number"),
])
def test_export_number_options_have_ranges(option, value, expected, tmp_path, capsys):
    """Out-of-range export options are refused before anything runs (before: `--resolution 8000` and
    `--max-sec 1e-7` ran out of memory after a minute; `--timeout nan` was accepted)."""
    with pytest.raises(SystemExit) as e:
        main(["export", "--db", str(tmp_path / "e.duckdb"), "--out", str(tmp_path / "ds"), option, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {option}: expected {expected}" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ds").exists()
