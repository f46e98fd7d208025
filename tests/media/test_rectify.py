"""Tests for egoclean.media.rectify: the remap (black invalid region, straight lines on real
fisheye photos), whole-clip rectification of real H.265 files, atomicity and the CLI."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from egoclean.media import video
from egoclean.cli import main
from egoclean.core.errors import IntrinsicsError, InvalidInputError, VideoError
from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics
from egoclean.media.rectify import Rectifier, intrinsics_path_for, rectify_file, rectify_video

CARD = {"model": "fisheye", "image_width": 1920, "image_height": 1080, "fx": 1030.59, "fy": 1032.82,
        "cx": 966.69, "cy": 539.69, "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463}
W, H, N, FPS = 320, 180, 12, 30


def smooth_image(w: int, h: int, t: float = 0.0) -> np.ndarray:
    """A smooth, bright colour pattern (nothing black), moving with t."""
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    b = 140 + 100 * np.sin(2 * math.pi * (1.5 * x + 0.3 * y + t))
    g = 140 + 100 * np.cos(2 * math.pi * (0.4 * x + 1.2 * y - t))
    r = 140 + 100 * np.sin(2 * math.pi * (x * y + 0.5 * t))
    return np.clip(np.dstack([b, g, r]), 20, 255).astype(np.uint8)


def write_h265(path: Path, n: int = N, w: int = W, h: int = H, fps: float = FPS) -> Path:
    with video.VideoWriter(path, fps, w, h, codec="libx265", crf=20, preset="ultrafast") as vw:
        for i in range(n):
            frame = smooth_image(w, h, i / n)
            cv2.putText(frame, f"{i:02d}", (w // 2 - 20, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
            vw.write(frame)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_h265(tmp_path_factory.mktemp("clips") / "factory001_worker001_00000.mp4")


@pytest.fixture
def card_json(tmp_path) -> Path:
    p = tmp_path / "intrinsics.json"
    p.write_text(json.dumps(CARD))
    return p


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = cv2.norm(a, b, cv2.NORM_L2SQR) / a.size
    return 10 * math.log10(255**2 / mse) if mse else float("inf")


# ------------------------------------------------------------------ frames


@pytest.mark.parametrize("balance,fov_scale", [(1.0, 1.0), (1.0, 1.25)])
def test_invalid_region_exactly_black_and_valid_pixels_correct(balance, fov_scale):
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, 960, 540, balance=balance, fov_scale=fov_scale)
    rectifier = Rectifier(rect)
    src = smooth_image(960, 540)
    out = rectifier(src)
    valid = rectifier.valid_mask
    assert out.shape == (540, 960, 3) and valid.shape == (540, 960)
    assert 0.3 < valid.mean() < 0.95
    # no source: exactly black; with a source: a real (never black) pixel of the image
    assert not out[~valid].any()
    assert out[valid].min(axis=1).min() > 0
    # valid pixels equal a float-map reference remap up to fixed-point rounding
    mx, my, _ = rect.float_maps()
    ref = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff[valid].max() <= 3
    assert not ref[~valid].any()


def test_rays_beyond_the_peak_are_black_not_folded_garbage():
    fe = FisheyeIntrinsics.from_dict(CARD).scaled_to(960, 540)
    rect = rectified_intrinsics(fe, 960, 540, balance=1.0, fov_scale=1.25)
    kn = rect.K_new
    x = (np.arange(960) - kn[0, 2]) / kn[0, 0]
    y = (np.arange(540) - kn[1, 2]) / kn[1, 1]
    beyond = np.arctan(np.hypot(x[None, :], y[:, None])) > fe.theta_max()
    src = smooth_image(960, 540)
    # plain OpenCV maps sample real image content for those rays (folded back)...
    ox, oy = cv2.fisheye.initUndistortRectifyMap(fe.K, fe.D, np.eye(3), kn, (960, 540), cv2.CV_16SC2)
    plain = cv2.remap(src, ox, oy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    assert (plain[beyond].max(axis=1) > 0).mean() > 0.5
    # ...ours makes every one of them black
    out = Rectifier(rect)(src)
    assert beyond.mean() > 0.03 and not out[beyond].any()


def test_yuv420_path_matches_bgr_path():
    fe = FisheyeIntrinsics.from_dict(CARD)
    rectifier = Rectifier(rectified_intrinsics(fe, 640, 360, balance=1.0, fov_scale=1.25))
    src = smooth_image(640, 360)
    planes = cv2.cvtColor(src, cv2.COLOR_BGR2YUV_I420)  # same stacked Y, U, V layout as PyAV
    out = rectifier.remap_yuv420(planes)
    assert out.shape == (540, 640) and out.dtype == np.uint8
    bgr = cv2.cvtColor(out, cv2.COLOR_YUV2BGR_I420)
    expected = rectifier(src)
    valid = rectifier.valid_mask
    # black stays exactly black through limited-range YUV (Y=16, U=V=128)
    assert not bgr[~valid].any()
    assert psnr(bgr, expected) > 33


def test_rectifier_refuses_wrong_frame_size():
    rectifier = Rectifier(rectified_intrinsics(FisheyeIntrinsics.from_dict(CARD), 320, 180))
    with pytest.raises(VideoError, match="640x360.*320x180"):
        rectifier(np.zeros((360, 640, 3), np.uint8))
    with pytest.raises(VideoError, match="yuv420p"):
        rectifier.remap_yuv420(np.zeros((360 * 3 // 2, 640), np.uint8))


def _line_rms(corners: np.ndarray) -> float:
    """RMS distance of chessboard corners (15 x 9) from the line fitted to their row or column."""
    c = corners.reshape(9, 15, 2).astype(np.float64)
    residuals = []
    for line in list(c) + list(c.transpose(1, 0, 2)):
        centred = line - line.mean(axis=0)
        normal = np.linalg.svd(centred)[2][1]
        residuals.append(centred @ normal)
    return float(np.sqrt(np.mean(np.square(np.concatenate(residuals)))))


def _board_rms(gray: np.ndarray) -> float | None:
    ok, corners = cv2.findChessboardCorners(
        gray, (15, 9), flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    )
    if not ok:
        return None
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01)
    return _line_rms(cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), crit))


def test_real_fisheye_photos_chessboard_lines_become_straight(shared_data):
    root = shared_data / "fisheye_gopro"
    photos = sorted((root / "imgs").glob("*.JPG"))
    assert len(photos) == 24
    fe = FisheyeIntrinsics.load(root / "intrinsics.json")
    # balance 1 keeps the whole board in view (balance 0 crops most boards)
    rectifier = Rectifier(rectified_intrinsics(fe, 1000, 750, balance=1.0))
    raw, rect = [], []
    for p in photos:
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        assert gray.shape == (750, 1000)
        for img, found in ((gray, raw), (rectifier(gray), rect)):
            r = _board_rms(img)
            if r is not None:
                found.append(r)
    assert len(raw) >= 18 and len(rect) >= 18
    assert np.median(rect) < 0.5
    assert np.median(raw) > 1.5 and np.median(raw) > 10 * np.median(rect)


# ------------------------------------------------------------------ video


def test_rectify_video_real_h265(clip, tmp_path):
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, W, H, balance=0.5)
    out = tmp_path / "out" / "rect.mp4"
    res = rectify_video(clip, rect, out, crf=18, preset="ultrafast", progress=False)
    info_in, info_out = video.probe(clip), video.probe(out)
    assert info_in.codec == "hevc" and info_out.codec == "h264"
    assert info_out.n_frames == info_in.n_frames == N == res["frames"]
    assert info_out.fps == pytest.approx(FPS) and res["fps"] == pytest.approx(FPS)
    assert res["duration_sec"] == pytest.approx(N / FPS)
    assert (res["width"], res["height"]) == (info_out.width, info_out.height) == (W, H)
    assert res["size_bytes"] == out.stat().st_size > 0
    assert res["throughput_fps"] > 0 and res["seconds"] > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["rect.mp4"]
    # the decoded output is the rectified input frame by frame
    rectifier = Rectifier(rect)
    scores = [psnr(rectifier(a), b) for a, b in zip(video.iter_frames(clip), video.iter_frames(out))]
    assert len(scores) == N and min(scores) > 30


def test_rectify_video_with_decode_thread_and_size_mismatch(clip, tmp_path):
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, W, H)
    res = rectify_video(clip, rect, tmp_path / "a.mp4", preset="ultrafast", progress=False, prefetch=True)
    assert res["frames"] == N
    plain = rectify_video(clip, rect, tmp_path / "b.mp4", preset="ultrafast", progress=False, prefetch=False)
    # the same frames in the same order, whichever thread decodes them
    for a, b in zip(video.iter_frames(tmp_path / "a.mp4"), video.iter_frames(tmp_path / "b.mp4")):
        np.testing.assert_array_equal(a, b)
    assert plain["size_bytes"] == res["size_bytes"]
    with pytest.raises(VideoError, match=rf"{W}x{H}.*640x360"):
        rectify_video(clip, rectified_intrinsics(fe, 640, 360), tmp_path / "c.mp4", progress=False)
    assert not (tmp_path / "c.mp4").exists()


def test_failure_midway_leaves_no_output_and_keeps_old_file(clip, tmp_path, monkeypatch):
    out = tmp_path / "rect.mp4"
    out.write_bytes(b"previous rectified clip")
    real_iter = video.iter_frames

    def failing(path, fmt="bgr24"):
        for i, frame in enumerate(real_iter(path, fmt=fmt)):
            if i == 5:
                raise VideoError(f"video {path}: decoding failed (simulated)")
            yield frame

    monkeypatch.setattr(video, "iter_frames", failing)
    rect = rectified_intrinsics(FisheyeIntrinsics.from_dict(CARD), W, H)
    with pytest.raises(VideoError, match="simulated"):
        rectify_video(clip, rect, out, preset="ultrafast", progress=False)
    assert out.read_bytes() == b"previous rectified clip"
    with pytest.raises(VideoError, match="simulated"):  # the same through the decode thread
        rectify_video(clip, rect, out, preset="ultrafast", progress=False, prefetch=True)
    assert out.read_bytes() == b"previous rectified clip"
    assert [p.name for p in tmp_path.iterdir()] == ["rect.mp4"]  # no temp file left
    # the same for a fresh name: nothing appears
    with pytest.raises(VideoError):
        rectify_video(clip, rect, tmp_path / "new.mp4", preset="ultrafast", progress=False)
    assert not (tmp_path / "new.mp4").exists()


def test_odd_input_size_is_trimmed_to_even(tmp_path):
    # yuv420p cannot hold odd sizes, so the source here is 4:4:4 H.264 at 161x91
    src = tmp_path / "odd.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(25))
        s.width, s.height, s.pix_fmt = 161, 91, "yuv444p"
        s.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(smooth_image(161, 91, i / 6), format="bgr24")
            frame.pts = i
            c.mux(s.encode(frame.reformat(format="yuv444p")))
        c.mux(s.encode(None))
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(CARD))
    res = rectify_file(src, intr, tmp_path / "odd_rect.mp4", preset="ultrafast", progress=False)
    info = video.probe(tmp_path / "odd_rect.mp4")
    assert (info.width, info.height) == (160, 90) and info.n_frames == 6 and info.fps == pytest.approx(25)
    d = json.loads((tmp_path / "odd_rect_intrinsics.json").read_text())
    assert (d["image_width"], d["image_height"], d["input_width"], d["input_height"]) == (160, 90, 161, 91)
    assert res["frames"] == 6


def test_rectify_file_writes_video_and_intrinsics(clip, card_json, tmp_path):
    out = tmp_path / "factory001_worker001_00000.mp4"
    res = rectify_file(clip, card_json, out, balance=0.25, crf=30, preset="ultrafast", progress=False)
    assert intrinsics_path_for(out) == tmp_path / "factory001_worker001_00000_intrinsics.json"
    d = json.loads(intrinsics_path_for(out).read_text())
    assert res["intrinsics"] == str(intrinsics_path_for(out))
    assert d["model"] == "pinhole" and d["balance"] == 0.25
    assert (d["image_width"], d["image_height"]) == (W, H)
    assert d["fisheye_source"] == CARD
    assert d["fisheye_scaled"]["fx"] == pytest.approx(CARD["fx"] * W / 1920)
    assert d["fisheye_scaled"]["fy"] == pytest.approx(CARD["fy"] * H / 1080)
    expected = rectified_intrinsics(FisheyeIntrinsics.from_dict(CARD), W, H, balance=0.25)
    np.testing.assert_allclose(d["K"], expected.K_new)
    assert video.probe(out).n_frames == N and res["crf"] == 30 and res["preset"] == "ultrafast"


def test_rectify_file_bad_inputs(clip, card_json, tmp_path):
    with pytest.raises(IntrinsicsError, match="missing.json.*not found"):
        rectify_file(clip, tmp_path / "missing.json", tmp_path / "o.mp4", progress=False)
    with pytest.raises(VideoError, match="nope.mp4.*not found"):
        rectify_file(tmp_path / "nope.mp4", card_json, tmp_path / "o.mp4", progress=False)
    with pytest.raises(InvalidInputError, match="suffix"):
        rectify_file(clip, card_json, tmp_path / "o.avi", progress=False)
    with pytest.raises(InvalidInputError, match="is the input file"):
        rectify_file(clip, card_json, clip, progress=False)
    degenerate = tmp_path / "bad_intrinsics.json"
    degenerate.write_text(json.dumps(dict(CARD, fx=400.0, fy=400.0)))
    with pytest.raises(IntrinsicsError, match="bad_intrinsics.json.*degenerate"):
        rectify_file(clip, degenerate, tmp_path / "o.mp4", progress=False)
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o_intrinsics.json").exists()


def test_cli_rectify(clip, card_json, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    rc = main(["rectify", str(clip), "--intrinsics", str(card_json), "-o", str(out),
               "--balance", "0.5", "--crf", "30", "--preset", "ultrafast"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["frames"] == N and printed["output"] == str(out)
    assert video.probe(out).n_frames == N
    assert json.loads((tmp_path / "cli_intrinsics.json").read_text())["balance"] == 0.5

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(CARD, model="pinhole")))
    rc = main(["rectify", str(clip), "--intrinsics", str(bad), "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.json" in err and "model" in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


# ------------------------------------------------------------------ the output pair
def test_rectify_refuses_to_overwrite_its_own_inputs(clip, card_json, tmp_path, capsys):
    out = tmp_path / "rect.mp4"
    own = intrinsics_path_for(out)  # rect_intrinsics.json
    own.write_bytes(card_json.read_bytes())
    link = tmp_path / "calib_link.json"
    link.symlink_to(own)
    for given in (own, link):
        rc = main(["rectify", str(clip), "--intrinsics", str(given), "-o", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and "overwrite" in err and str(given) in err and "Traceback" not in err, err
        assert own.read_bytes() == card_json.read_bytes() and not out.exists()
    # an output whose intrinsics name is the input video's is refused the same way
    video_named_like_intrinsics = tmp_path / "v_intrinsics.json"
    video_named_like_intrinsics.write_bytes(clip.read_bytes())
    with pytest.raises(InvalidInputError, match="overwrite"):
        rectify_file(video_named_like_intrinsics, card_json, tmp_path / "v.mp4", progress=False)
    assert video_named_like_intrinsics.read_bytes() == clip.read_bytes()


def test_a_failure_writing_the_intrinsics_leaves_the_earlier_pair(clip, card_json, tmp_path, monkeypatch):
    out = tmp_path / "rect.mp4"
    rectify_file(clip, card_json, out, preset="ultrafast", progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("rect*")}
    from egoclean.media.intrinsics import RectifiedIntrinsics

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RectifiedIntrinsics, "to_dict", full_disk)
    with pytest.raises(OSError, match="No space"):
        rectify_file(clip, card_json, out, balance=0.5, preset="ultrafast", progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("rect*")} == before  # no new video without its intrinsics
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_pair_is_published_together_and_checked_on_load(clip, card_json, tmp_path, monkeypatch):
    from egoclean.core import atomic
    from egoclean.media.rectify import load_rectified

    out = tmp_path / "rect.mp4"
    rectify_file(clip, card_json, out, preset="ultrafast", progress=False)
    rect = load_rectified(out)
    assert rect["video"]["bytes"] == out.stat().st_size and rect["image_width"] == W
    old_video = out.read_bytes()
    # A crash between the two renames (intrinsics first, then the video): the new
    # intrinsics sit beside the old video, and a reader is told so instead of trusting them.
    real = atomic.os.replace
    calls = []

    def crash_on_the_video(src, dst):
        calls.append(Path(dst).name)
        if Path(dst) == out:
            raise OSError(5, "Input/output error (simulated crash)")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash_on_the_video)
    with pytest.raises(OSError, match="simulated"):
        rectify_file(clip, card_json, out, balance=0.5, preset="ultrafast", progress=False)
    monkeypatch.undo()
    assert calls == ["rect_intrinsics.json", "rect.mp4"]  # the video is published last
    assert out.read_bytes() == old_video
    with pytest.raises(IntrinsicsError, match="rect_intrinsics.json.*do not describe.*rect.mp4"):
        load_rectified(out)


# ------------------------------------------------------------------ reproducibility

_SHA_SCRIPT = """
import hashlib, json, os, sys
from egoclean.media.rectify import rectify_file
clip, card, out_dir, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sums = []
for i in range(runs):
    out = f"{out_dir}/run{i}/clip_rectified.mp4"  # one name: the intrinsics record it
    os.makedirs(os.path.dirname(out))
    r = rectify_file(clip, card, out, progress=False)
    sums.append([hashlib.sha256(open(p, "rb").read()).hexdigest() for p in (out, r["intrinsics"])] + [r["x264_params"]])
print(json.dumps(sums))
"""


def test_x264_params_turn_mbtree_off_only_where_its_rows_are_not_whole_groups():
    # 1920 px = 120 macroblocks (a multiple of 8): the measured defaults stay as they are
    assert video.x264_params(1920, "trellis=1") == "trellis=1"
    assert video.x264_params(1024, None) is None
    assert video.x264_params(480, "trellis=1:rc-lookahead=20") == "trellis=1:rc-lookahead=20:mbtree=0"
    assert video.x264_params(1904, None) == "mbtree=0"
    assert video.x264_params(480, "mbtree=1") == "mbtree=1"  # an explicit choice is the caller's


def test_the_same_clip_gives_the_same_bytes_run_after_run(card_json, tmp_path):
    """Three runs in one process and one run in each of three processes whose heaps start
    filled differently (MALLOC_PERTURB_): x264's AVX-512 MB-tree read memory it had not
    written at this width (20 macroblocks), and gave two or three different files."""
    import subprocess
    import sys

    src = write_h265(tmp_path / "factory001_worker001_00000.mp4", n=48)  # B-frames and a full lookahead
    root = Path(__file__).resolve().parents[2]
    sums = []
    for perturb, runs in (("0", 3), ("85", 1), ("170", 1)):
        out_dir = tmp_path / f"p{perturb}"
        out_dir.mkdir()
        env = {**__import__("os").environ, "MALLOC_PERTURB_": perturb, "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-c", _SHA_SCRIPT, str(src), str(card_json), str(out_dir), str(runs)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        sums += json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(sums) == 5
    assert all(s == sums[0] for s in sums), sums
    assert "mbtree=0" in sums[0][2]
