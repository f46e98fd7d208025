"""Tests of the synthetic Egocentric-10K generator: layout, tar members, sidecars,
decodable H.265 clips, planted ground truth, determinism, option checks, and the
fisheye geometry (scene lines straight after rectification, bent before)."""

from __future__ import annotations

import csv
import json
import math
import re
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from egoclean import synth
from egoclean.cli import main as cli_main
from egoclean.core.errors import InvalidInputError
from egoclean.media.video import iter_frames, probe

SIDECAR_KEYS = [
    "factory_id", "worker_id", "video_index", "duration_sec", "width", "height", "fps", "size_bytes", "codec"
]
INTRINSICS_KEYS = ["model", "image_width", "image_height", "fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"]
GT_HEADER = ["clip_id", "clip_duration_sec", "start", "end", "label"]

SMALL = synth.SynthConfig(
    factories=2, workers=1, clips=3, shards=2, duration_sec=20.0, width=160, height=120, fps=15.0, seed=7, clean_clips=1
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "ds"
    return out, synth.write_dataset(out, SMALL)


def _members(tar_path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return tar.getmembers()


def _read_member(tar_path: Path, name: str) -> bytes:
    with tarfile.open(tar_path) as tar:
        return tar.extractfile(name).read()


def _mmss(text: str) -> int:
    m, s = text.split(":")
    return int(m) * 60 + int(s)


# ------------------------------------------------------------------------- layout


def test_layout_matches_the_real_dataset(dataset):
    out, summary = dataset
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = ["ground_truth.csv"]
    for f in (1, 2):
        w = f"factory_{f:03d}/workers/worker_001"
        expected += [
            f"{w}/factory{f:03d}_worker001_part00.tar",
            f"{w}/factory{f:03d}_worker001_part01.tar",
            f"{w}/intrinsics.json",
        ]
        expected += [f"{w}/factory{f:03d}_worker001_{i:05d}.tum.txt" for i in range(3)]  # the camera paths
    assert files == sorted(expected)  # nothing else: no temp files or scratch folders left
    assert not [p for p in out.rglob(".*")]
    assert len(summary["clips"]) == 6 and len(summary["shards"]) == 4


def test_tar_members_are_mp4_then_sidecar_and_clips_continue_across_shards(dataset):
    out, _ = dataset
    for f in (1, 2):
        wdir = out / f"factory_{f:03d}" / "workers" / "worker_001"
        names = []
        for part in ("part00", "part01"):
            members = _members(wdir / f"factory{f:03d}_worker001_{part}.tar")
            assert all(m.isfile() for m in members)  # plain names, no directories
            assert all("/" not in m.name for m in members)
            names.append([m.name for m in members])
        stem = f"factory{f:03d}_worker001"
        # 3 clips over 2 shards: 00000, 00001 in part00; 00002 continues in part01
        assert names[0] == [f"{stem}_00000.mp4", f"{stem}_00000.json", f"{stem}_00001.mp4", f"{stem}_00001.json"]
        assert names[1] == [f"{stem}_00002.mp4", f"{stem}_00002.json"]


def test_sidecars_match_the_real_fields_and_member_sizes(dataset):
    out, summary = dataset
    for tar_path in map(Path, summary["shards"]):
        members = _members(tar_path)
        sizes = {m.name: m.size for m in members}
        for m in members:
            if not m.name.endswith(".json"):
                continue
            side = json.loads(_read_member(tar_path, m.name))
            stem = m.name[: -len(".json")]
            f, w, idx = re.match(r"factory(\d{3})_worker(\d{3})_(\d{5})$", stem).groups()
            assert list(side) == SIDECAR_KEYS
            assert side["factory_id"] == f"factory_{f}" and side["worker_id"] == f"worker_{w}"
            assert side["video_index"] == int(idx)
            assert side["size_bytes"] == sizes[stem + ".mp4"]
            assert (side["width"], side["height"], side["fps"], side["codec"]) == (160, 120, 15.0, "h265")
            assert side["duration_sec"] == pytest.approx(20.0)


def test_sidecar_fields_equal_the_dataset_example(shared_data):
    example = json.loads((shared_data / "egocentric10k" / "sidecar_example.json").read_text())
    assert list(example) == SIDECAR_KEYS


def test_intrinsics_json_is_the_rendering_camera(dataset, shared_data):
    out, _ = dataset
    intr = json.loads((out / "factory_001/workers/worker_001/intrinsics.json").read_text())
    card = json.loads((shared_data / "egocentric10k" / "intrinsics_card_1920x1080.json").read_text())
    assert list(intr) == INTRINSICS_KEYS == list(card)
    assert intr == synth.synth_intrinsics(160, 120)
    # the card's field of view at this resolution
    assert intr["fx"] == pytest.approx(card["fx"] * 160 / 1920, rel=1e-3)
    # every pixel, corners included, lies inside the range the model can invert:
    # r(theta) increases all the way to the corner's theta
    view = synth.FisheyeView(intr)
    corner_theta = math.atan(float(np.hypot(view.xn, view.yn).max()))
    theta = np.linspace(0, corner_theta * 1.05, 2000)
    t2 = theta**2
    r = theta * (1 + intr["k1"] * t2 + intr["k2"] * t2**2 + intr["k3"] * t2**3 + intr["k4"] * t2**4)
    assert np.all(np.diff(r) > 0)
    # and the ray of each pixel projects back onto it
    ys, xs = np.mgrid[0:120:7, 0:160:7]
    back = view.project(np.stack([view.xn[ys, xs], view.yn[ys, xs]], -1).reshape(-1, 2))
    assert np.abs(back - np.stack([xs, ys], -1).reshape(-1, 2)).max() < 1e-3


# -------------------------------------------------------------------------- clips


def test_clips_decode_as_hevc_with_the_stated_frames(dataset, tmp_path):
    _, summary = dataset
    clip = summary["clips"][2]  # the one in part01
    mp4 = tmp_path / f"{clip['clip_id']}.mp4"
    mp4.write_bytes(_read_member(Path(clip["shard"]), mp4.name))
    info = probe(mp4)
    assert (info.codec, info.width, info.height, info.fps, info.n_frames) == ("hevc", 160, 120, 15.0, 300)
    assert info.size_bytes == clip["size_bytes"]
    assert sum(1 for _ in iter_frames(mp4)) == 300


def test_ground_truth_csv_lists_the_planted_spans(dataset):
    out, summary = dataset
    with open(out / "ground_truth.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == GT_HEADER
    got = [(r[0], float(r[1]), _mmss(r[2]), _mmss(r[3]), r[4]) for r in rows[1:]]
    want = [
        (c["clip_id"], 20.0, s["start_sec"], s["end_sec"], s["label"]) for c in summary["clips"] for s in c["planted"]
    ]
    assert got == want and got
    for r in rows[1:]:
        assert re.fullmatch(r"\d\d:\d\d", r[2]) and re.fullmatch(r"\d\d:\d\d", r[3])
    by_clip: dict[str, list] = {}
    for c in summary["clips"]:
        by_clip[c["clip_id"]] = c["planted"]
    # clean_clips=1: the last clip of each worker is clean, the others have 1-2 spans
    assert by_clip["factory001_worker001_00002"] == [] and by_clip["factory002_worker001_00002"] == []
    for cid in ("factory001_worker001_00000", "factory001_worker001_00001", "factory002_worker001_00000"):
        spans = by_clip[cid]
        assert 1 <= len(spans) <= 2
        for s in spans:
            assert 0 <= s["start_sec"] < s["end_sec"] <= 20
            assert s["end_sec"] - s["start_sec"] >= synth.MIN_SPAN_SEC


def test_planted_spans_are_visibly_different_in_the_video(dataset, tmp_path):
    """The decoded frames inside a planted span differ from the work frames (a darker,
    differently coloured scene), so the ground truth describes the video."""
    _, summary = dataset
    clip = summary["clips"][0]
    span = clip["planted"][0]
    mp4 = tmp_path / "c.mp4"
    mp4.write_bytes(_read_member(Path(clip["shard"]), f"{clip['clip_id']}.mp4"))
    means = np.array([f.reshape(-1, 3).mean(0) for f in iter_frames(mp4)])
    t = np.arange(len(means)) / 15.0
    inside = (t >= span["start_sec"] + 0.2) & (t < span["end_sec"] - 0.2)
    outside = (t < span["start_sec"] - 0.2) | (t >= span["end_sec"] + 0.2)
    gap = np.linalg.norm(means[inside].mean(0) - means[outside].mean(0))
    spread_in_work = means[outside].std(0).max()
    assert gap > 40 and gap > 8 * spread_in_work


def test_off_task_scenes_and_work_cycle_render_as_planned():
    intr = synth.synth_intrinsics(96, 64)
    spans = [synth.PlantedSpan(10, 20, "floor"), synth.PlantedSpan(30, 40, "aisle"), synth.PlantedSpan(50, 60, "phone")]
    r = synth.ClipRenderer(intr, 10.0, spans, scene_seed=1, clip_seed=2)
    # the floor span is frozen once the head has turned down to it: every frame the same
    turn = int(math.ceil(synth.scene.TURN_SEC * 10))
    floor = [r.frame(i) for i in range(100 + turn, 200 - turn, 7)]
    assert all(np.array_equal(floor[0], f) for f in floor)
    R0, p0 = r.pose(100 + turn)
    assert all(np.array_equal(r.pose(i)[1], p0) and np.array_equal(r.pose(i)[0], R0)
               for i in range(100 + turn, 200 - turn))
    # the work and the aisle keep moving
    for a, b in ((12, 14), (302, 305), (502, 507)):
        assert np.abs(r.frame(a).astype(int) - r.frame(b).astype(int)).mean() > 1.0
    # the work cycle repeats: one period later the hand is back where it was. Head-bob
    # repeats every second, so the frames compared with frame 0 are one period later and
    # one period + 2 or 3 s later (same head-bob, the hand elsewhere in its cycle)
    j = int(round(r.period * 10))

    def diff(a, b):
        return np.abs(r.frame(a).astype(int) - r.frame(b).astype(int)).mean()

    same_phase = diff(0, j)
    assert same_phase < diff(0, j + 20) and same_phase < diff(0, j + 30)


def test_plan_spans_variety_and_separation():
    plans = [synth.plan_spans(60.0, k, np.random.default_rng([0, k])) for k in range(6)]
    assert all(len(p) == 1 for p in plans)
    assert any(p[0].start_sec <= 3 for p in plans)  # near the start
    assert any(p[0].end_sec == 60 for p in plans)  # running to the end
    assert any(10 < p[0].start_sec and p[0].end_sec < 55 for p in plans)  # in the middle
    assert len({p[0].kind for p in plans}) == len(synth.ANOMALY_KINDS)
    for p in plans:
        assert 15 <= p[0].end_sec - p[0].start_sec <= 24
    for duration in (90.0, 180.0, 431.0, 1200.0):
        for k in range(6):
            long = synth.plan_spans(duration, k, np.random.default_rng([1, k]))
            assert len(long) == 2, (duration, k)
            (a0, a1), (b0, b1) = [(s.start_sec, s.end_sec) for s in long]
            assert 0 <= a0 < a1 and b0 - a1 >= 15 and b1 <= duration
            assert a1 - a0 >= 0.12 * duration - 1 and b1 - b0 <= 0.2 * duration + 1
            assert long[0].kind != long[1].kind
    assert synth.plan_spans(19.0, 0, np.random.default_rng(0)) == []


# -------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_dataset(tmp_path):
    cfg = synth.SynthConfig(clips=1, duration_sec=20.0, width=64, height=48, fps=10.0, seed=3)
    a = synth.write_dataset(tmp_path / "a", cfg)
    b = synth.write_dataset(tmp_path / "b", cfg)
    c = synth.write_dataset(tmp_path / "c", synth.SynthConfig(**{**cfg.__dict__, "seed": 4}))
    rel = "factory_001/workers/worker_001/factory001_worker001_part00.tar"
    assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    tum = "factory_001/workers/worker_001/factory001_worker001_00000.tum.txt"
    assert (tmp_path / "a" / tum).read_bytes() == (tmp_path / "b" / tum).read_bytes()
    assert (tmp_path / "a" / tum).read_bytes() != (tmp_path / "c" / tum).read_bytes()
    assert (tmp_path / "a/ground_truth.csv").read_bytes() == (tmp_path / "b/ground_truth.csv").read_bytes()
    assert a["clips"][0]["planted"] == b["clips"][0]["planted"]
    assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()
    assert (a["clips"][0]["planted"], a["clips"][0]["cycle_period_sec"]) != (
        c["clips"][0]["planted"],
        c["clips"][0]["cycle_period_sec"],
    )


def test_clean_dataset_plants_nothing_and_allows_short_clips(tmp_path):
    cfg = synth.SynthConfig(clips=1, duration_sec=7.0, width=64, height=48, fps=10.0, anomalies=False)
    summary = synth.write_dataset(tmp_path / "d", cfg)
    assert summary["clips"][0]["planted"] == []
    assert (tmp_path / "d/ground_truth.csv").read_text().splitlines() == [",".join(GT_HEADER)]


# ------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    "change, option",
    [
        ({"width": 0}, "width"),
        ({"width": -160}, "width"),
        ({"width": 161}, "width"),
        ({"height": 119}, "height"),
        ({"fps": 0.0}, "fps"),
        ({"fps": -30.0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"duration_sec": 2.0}, "duration_sec"),  # 60 frames < one 64-frame window
        ({"duration_sec": 0.0}, "duration_sec"),
        ({"duration_sec": 12.0}, "duration_sec"),  # too short to plant a span
        ({"clips": 0}, "clips"),
        ({"factories": 0}, "factories"),
        ({"workers": 1000}, "workers"),
        ({"shards": 3}, "shards"),  # more shards than clips
        ({"shards": 0}, "shards"),
        ({"clean_clips": 3}, "clean_clips"),
        ({"clips": 2.5}, "clips"),
    ],
)
def test_bad_options_are_refused_before_writing(tmp_path, change, option):
    # refused when the config is made (SynthConfig.__post_init__): no bad config reaches write_dataset
    with pytest.raises(InvalidInputError, match=rf"^synth option .*\b{option}="):
        synth.write_dataset(tmp_path / "out", synth.SynthConfig(**{**synth.SynthConfig().__dict__, **change}))
    assert not (tmp_path / "out").exists()


def test_output_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    with pytest.raises(InvalidInputError, match="not a directory"):
        synth.write_dataset(f, synth.SynthConfig(duration_sec=3.0, anomalies=False))
    assert f.read_text() == "keep me"


def test_cli_synth(tmp_path, capsys):
    rc = cli_main(["synth", str(tmp_path / "cli"), "--clips", "2", "--clean-clips", "1", "--duration", "20",
                   "--width", "64", "--height", "48", "--fps", "10", "--seed", "5"])
    assert rc == 0
    # a short human summary by default (the full JSON only with --json: tests/test_cli.py)
    out = capsys.readouterr().out
    assert out.count("\n") <= 4 and "2 clip(s) of 20 s" in out and "1 planted off-task span(s)" in out
    assert cli_main(["synth", str(tmp_path / "cli"), "--clips", "2", "--clean-clips", "1", "--duration", "20",
                     "--width", "64", "--height", "48", "--fps", "10", "--seed", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c["clip_id"] for c in summary["clips"]] == ["factory001_worker001_00000", "factory001_worker001_00001"]
    assert summary["clips"][0]["planted"] and not summary["clips"][1]["planted"]
    assert cli_main(["synth", str(tmp_path / "bad"), "--width", "63"]) == 2
    err = capsys.readouterr().err
    assert "width=63" in err and "even" in err


# ------------------------------------------------------ geometry: straight lines


def _line_centres(gray: np.ndarray, pts: np.ndarray, half: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centres of a bright thin line near the predicted points `pts` (N, 2):
    the intensity centroid along the local normal of the predicted path, per point.
    Returns the centres and a mask of points where the line was found."""
    tangent = np.gradient(pts, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    u = np.arange(-half, half + 1e-9, 0.25, dtype=np.float32)
    sx = (pts[:, None, 0] + u[None, :] * normal[:, None, 0]).astype(np.float32)
    sy = (pts[:, None, 1] + u[None, :] * normal[:, None, 1]).astype(np.float32)
    prof = cv2.remap(gray, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    w = np.clip(prof - 20.0, 0, None)  # above the dark background only
    mass = w.sum(axis=1)
    found = (mass > 0.5 * np.median(mass[mass > 0])) if (mass > 0).any() else mass > 0
    off = (w * u[None, :]).sum(axis=1) / np.maximum(mass, 1e-9)
    # the line must lie well inside the search band (not clipped by its edge)
    found &= np.abs(off) < half - 2.0
    return pts + off[:, None] * normal, found


def _straightness_rms(centres: np.ndarray) -> float:
    """RMS distance of points from their best-fitting straight line (total least squares)."""
    c = centres - centres.mean(axis=0)
    return float(np.sqrt(np.linalg.svd(c, compute_uv=False)[-1] ** 2 / len(c)))


def test_rectified_scene_lines_are_straight_and_raw_ones_bend():
    """Rectified synthetic frames: scene lines straight within 1 px RMS; the raw ones are not."""
    from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics
    from egoclean.media.rectify import Rectifier

    w, h = 320, 240
    intr = synth.synth_intrinsics(w, h)
    rect = rectified_intrinsics(FisheyeIntrinsics.from_dict(intr), w, h, balance=0.0)
    rectifier = Rectifier(rect)
    view = synth.FisheyeView(intr)
    K = rect.K_new
    checked = 0
    for line in synth.lines_pattern():
        (x0, y0), (x1, y1) = line
        raw = synth.render_lines_frame(intr, lines=[line])
        rectified = rectifier(raw)
        s = np.linspace(0, 1, 600)[:, None]
        norm = np.array([x0, y0]) + s * np.array([x1 - x0, y1 - y0])
        # where the straight line must be in the rectified frame (pinhole K_new) ...
        pr = np.stack([K[0, 0] * norm[:, 0] + K[0, 2], K[1, 1] * norm[:, 1] + K[1, 2]], axis=1)
        keep = (pr[:, 0] > 8) & (pr[:, 0] < rectifier.width - 8) & (pr[:, 1] > 8) & (pr[:, 1] < rectifier.height - 8)
        # ... and where the fisheye model puts it in the raw frame
        pf = view.project(norm)
        keep_raw = (pf[:, 0] > 8) & (pf[:, 0] < w - 8) & (pf[:, 1] > 8) & (pf[:, 1] < h - 8)
        if keep.sum() < 100:
            continue  # this line lies outside the rectified view (balance 0 crops)
        gray_r = cv2.cvtColor(rectified, cv2.COLOR_BGR2GRAY).astype(np.float32)
        gray_f = cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY).astype(np.float32)
        cr, fr = _line_centres(gray_r, pr[keep])
        cf, ff = _line_centres(gray_f, pf[keep_raw])
        assert fr.mean() > 0.9 and ff.mean() > 0.9, f"line {line} not found"
        rms_rect = _straightness_rms(cr[fr])
        rms_raw = _straightness_rms(cf[ff])
        # the rendered fisheye line is where intrinsics.json says (sub-pixel)
        model_err = np.sqrt(np.mean(np.sum((cf[ff] - pf[keep_raw][ff]) ** 2, axis=1)))
        assert model_err < 0.5, f"line {line}: raw frame is {model_err:.2f} px RMS off the fisheye model"
        assert rms_rect < 1.0, f"line {line}: rectified line is {rms_rect:.2f} px RMS from straight"
        assert rms_raw > 2.0, f"line {line}: raw fisheye line is only {rms_raw:.2f} px RMS from straight"
        checked += 1
    assert checked >= 6


# ------------------------------------------------- the content the detector sees


def test_planted_spans_are_found_by_the_tiny_model_pipeline(tmp_path):
    """What the synthetic content is tuned for: the SPEC's detector on the tiny
    random-weight V-JEPA 2 finds every planted span at IoU >= 0.5 with no false
    positive (one 30 s clip per placement: middle, near the start, to the end)."""
    from egoclean.temporal.detection import detect
    from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder
    from egoclean.temporal.evaluation import evaluate, load_ground_truth, truth_for
    from egoclean.embed.tiny_model import save_tiny_model

    cfg = synth.SynthConfig(clips=3, duration_sec=30.0, width=160, height=96, seed=1)
    summary = synth.write_dataset(tmp_path / "ds", cfg)
    truth = load_ground_truth(summary["ground_truth"])
    enc = load_encoder(EncoderConfig(model=str(save_tiny_model(tmp_path / "tiny")), device="cpu"))
    for clip in summary["clips"]:
        mp4 = tmp_path / f"{clip['clip_id']}.mp4"
        mp4.write_bytes(_read_member(Path(clip["shard"]), mp4.name))
        spans = detect(embed_video(mp4, enc, progress=False)).spans
        ev = evaluate(spans, truth_for(truth, clip["clip_id"]))
        assert len(truth_for(truth, clip["clip_id"])) == 1
        assert ev.passed, (clip["clip_id"], clip["planted"], [(s.start_sec, s.end_sec) for s in spans])


# ------------------------------------------------------- the 3D scene and the true path


def test_trajectory_files_are_tum_with_one_pose_per_frame(dataset):
    """Beside every clip: its true camera path, one TUM line per frame, unit quaternions,
    read back by egoclean.motion's Trajectory as the renderer's poses."""
    from egoclean.motion.trajectory import Trajectory

    _, summary = dataset
    for clip in summary["clips"]:
        path = Path(clip["trajectory"])
        assert path.name == f"{clip['clip_id']}.tum.txt" and path.parent == Path(clip["shard"]).parent
        lines = path.read_text().splitlines()
        assert len(lines) == clip["n_frames"] == 300
        assert all(len(line.split()) == 8 for line in lines)
        traj = Trajectory.load_tum(path)
        assert np.allclose(traj.t, np.arange(300) / 15.0, atol=1e-6)
        assert np.allclose(np.linalg.norm(traj.quat, axis=1), 1.0, atol=1e-6)
    # the lines are the renderer's poses (camera-to-world)
    clip = summary["clips"][0]
    r = synth.ClipRenderer(synth.synth_intrinsics(160, 120), 15.0,
                           [synth.PlantedSpan(**{k: s[k] for k in ("start_sec", "end_sec", "kind")})
                            for s in clip["planted"]], scene_seed=[7, 1, 1], clip_seed=[7, 1, 1, 0, 2])
    traj = Trajectory.load_tum(clip["trajectory"])
    for i in (0, 37, 150, 299):
        R, p = r.pose(i)
        assert np.allclose(traj.position[i], p, atol=1e-6)
        assert np.allclose(traj.rotations()[i], R, atol=1e-6)


def _marker_scene(intr: dict, centre) -> "synth.scene.Scene":
    """A dark room with one small white cube at `centre` (world), rendered through `intr`."""
    sc = synth.scene
    room = sc.Box((-5, -5, 0), (5, 5, 4), [sc.plain((20, 20, 20))], inside=True)
    c = np.asarray(centre, float)
    cube = sc.Box(c - 0.03, c + 0.03, [sc.plain((255, 255, 255))])
    scene = sc.Scene([room, cube])
    view = synth.FisheyeView(intr)
    rays = np.dstack([view.xn, view.yn, np.ones_like(view.xn)]).astype(np.float64)
    scene.set_camera(intr, rays / np.linalg.norm(rays, axis=-1, keepdims=True))
    return scene


@pytest.mark.parametrize("yaw, pitch, roll, pos, centre", [
    (0.0, 0.0, 0.0, (0, 0, 1.6), (0.0, 1.5, 1.6)),  # straight ahead
    (0.3, -0.5, 0.1, (0.2, -0.4, 1.55), (0.4, 1.0, 0.9)),  # turned, looking down, rolled, moved
    (3.0, -0.2, -0.05, (1.0, 2.0, 1.7), (0.6, -1.0, 1.0)),  # turned round
    (-0.8, 0.1, 0.0, (-1.0, 0.5, 1.6), (1.0, 2.0, 2.2)),  # off the optical axis
])
def test_rendered_point_is_where_the_pose_and_fisheye_put_it(yaw, pitch, roll, pos, centre):
    """The image and the pose agree: a cube's centroid in the rendered frame is where
    cv2.fisheye.projectPoints puts the cube's centre, given the written pose taken as
    camera-to-world with OpenCV axes, within 0.5 px."""
    intr = synth.synth_intrinsics(320, 240)
    scene = _marker_scene(intr, centre)
    R = synth.scene.camera_rotation(yaw, pitch, roll)
    img = scene.render(R, pos)
    gray = img[..., 1].astype(np.float64)
    ys, xs = np.nonzero(gray > 128)
    assert len(xs) > 4, "the cube is not in view"
    w = gray[ys, xs] - 20
    found = np.array([np.sum(xs * w) / w.sum(), np.sum(ys * w) / w.sum()])
    K = np.array([[intr["fx"], 0, intr["cx"]], [0, intr["fy"], intr["cy"]], [0, 0, 1]])
    D = np.array([intr[k] for k in ("k1", "k2", "k3", "k4")])
    rvec, _ = cv2.Rodrigues(R.T)  # world -> camera
    tvec = -R.T @ np.asarray(pos, float)
    want, _ = cv2.fisheye.projectPoints(np.array([[centre]], float), rvec, tvec, K, D)
    assert np.linalg.norm(found - want.reshape(2)) < 0.5


def _path(r, n):
    poses = [r.pose(i) for i in range(n)]
    pos = np.array([p for _, p in poses])
    rot = np.array([R for R, _ in poses])
    return pos, rot


def test_head_path_works_turns_walks_and_comes_back():
    """At work the head bobs (centimetres, a degree or two); off task it turns round (aisle,
    floor, phone), and in an aisle span walks metres down the aisle and comes back;
    speeds and turn rates stay within what a head does (no jumps)."""
    fps = 30.0
    spans = [synth.PlantedSpan(10, 30, "aisle"), synth.PlantedSpan(40, 55, "phone"),
             synth.PlantedSpan(65, 80, "floor")]
    r = synth.ClipRenderer(synth.synth_intrinsics(64, 48), fps, spans, scene_seed=0, clip_seed=3)
    n = int(90 * fps)
    pos, rot = _path(r, n)
    t = np.arange(n) / fps
    work = (t < 10) | ((t >= 30) & (t < 40)) | ((t >= 55) & (t < 65)) | (t >= 80)
    assert np.ptp(pos[work], axis=0).max() < 0.15  # metres: standing at the bench
    fwd = rot[:, :, 2]  # the optical axis in the world
    yaw = np.degrees(np.arctan2(-fwd[:, 0], fwd[:, 1]))
    mean_fwd = fwd[work].mean(0) / np.linalg.norm(fwd[work].mean(0))
    off_axis = np.degrees(np.arccos(np.clip(fwd[work] @ mean_fwd, -1, 1)))
    assert 0.2 < off_axis.max() < 3  # head-bob: a little pitch and roll, no turning
    for lo, hi in ((40, 55), (65, 80)):  # phone, floor: turned away from the bench
        assert np.abs(yaw[(t >= lo + 2) & (t < hi - 2)]).min() > 140
    aisle = (t >= 10) & (t < 30)
    assert pos[aisle, 1].min() < -6.0  # walked down the aisle (towards -y) ...
    assert np.abs(pos[t >= 30][0] - pos[0]).max() < 0.2  # ... and came back to the bench
    assert np.abs(yaw[aisle]).max() > 170  # turned round
    # no jumps: speed and angular rate bounded, orthonormal rotations
    speed = np.linalg.norm(np.diff(pos, axis=0), axis=1) * fps
    rel = np.einsum("nji,njk->nik", rot[:-1], rot[1:])
    ang = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))) * fps
    assert speed.max() < 2.5 and ang.max() < 300
    assert np.allclose(np.einsum("nji,njk->nik", rot, rot), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(rot), 1.0)


def test_frames_have_parallax_consistent_with_the_true_poses():
    """Points tracked between two frames of a walk obey the epipolar geometry of the true
    relative pose (median Sampson error well under a pixel), and near and far points move
    differently (parallax: no rotation-only model fits them)."""
    intr = synth.synth_intrinsics(480, 270)
    fps = 30.0
    r = synth.ClipRenderer(intr, fps, [synth.PlantedSpan(10, 30, "aisle")], scene_seed=2, clip_seed=2)
    i, j = int(13.5 * fps), int(13.5 * fps) + 6  # walking down the aisle
    a, b = (cv2.cvtColor(r.frame(k), cv2.COLOR_BGR2GRAY) for k in (i, j))
    p0 = cv2.goodFeaturesToTrack(a, 400, 0.01, 6)
    p1, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, winSize=(21, 21), maxLevel=3)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, p1, None, winSize=(21, 21), maxLevel=3)
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(back - p0, axis=2).ravel() < 0.3)
    assert ok.sum() > 80
    K = np.array([[intr["fx"], 0, intr["cx"]], [0, intr["fy"], intr["cy"]], [0, 0, 1]])
    D = np.array([intr[k] for k in ("k1", "k2", "k3", "k4")])
    x0 = cv2.fisheye.undistortPoints(p0[ok], K, D).reshape(-1, 2)
    x1 = cv2.fisheye.undistortPoints(p1[ok], K, D).reshape(-1, 2)
    (Ri, ti), (Rj, tj) = r.pose(i), r.pose(j)
    R = Rj.T @ Ri  # camera i -> camera j
    t = Rj.T @ (ti - tj)
    assert np.linalg.norm(t) > 0.1  # metres between the frames
    E = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ R
    h0 = np.c_[x0, np.ones(len(x0))]
    h1 = np.c_[x1, np.ones(len(x1))]
    Ex0, Etx1 = h0 @ E.T, h1 @ E
    num = np.sum(h1 * Ex0, axis=1) ** 2
    sampson = num / (Ex0[:, 0] ** 2 + Ex0[:, 1] ** 2 + Etx1[:, 0] ** 2 + Etx1[:, 1] ** 2)
    err_px = np.sqrt(sampson) * intr["fx"]
    assert np.median(err_px) < 0.5
    # a pure rotation (the true one) leaves large residuals: the translation is visible
    rot_only = np.c_[x1, np.ones(len(x1))] - (h0 @ R.T) / (h0 @ R.T)[:, 2:3]
    assert np.median(np.linalg.norm(rot_only[:, :2], axis=1)) * intr["fx"] > 3.0
