"""`egoclean trajectory VIDEO (--intrinsics FILE | --camera fx,fy,cx,cy) -o OUT` on real H.264 files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from egoclean.cli import main
from egoclean.media.intrinsics import FisheyeIntrinsics
from egoclean.motion.evaluation import rpe
from egoclean.motion.trajectory import Trajectory
from tests.support.room import scenario, write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 45-frame 240x180 H.264 clip of a head turning, its camera JSON and ground truth."""
    frames, gt, cam = scenario("turn", 45, 240)
    d = tmp_path_factory.mktemp("clip")
    video = d / "turn.mp4"
    write_clip(video, frames)
    (d / "cam.json").write_text(json.dumps(cam.to_dict()))
    return video, d / "cam.json", gt, cam


def test_tum_and_parquet_outputs(clip, tmp_path, capsys):
    video, cam_json, gt, cam = clip
    assert main(["trajectory", str(video), "--intrinsics", str(cam_json), "-o", str(tmp_path / "t.txt"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "45/45 frame(s) tracked in 1 segment(s)" in out
    tum = Trajectory.load_tum(tmp_path / "t.txt")
    assert len(tum) == 45
    assert rpe(tum, gt, delta=10).rot_rmse_deg < 0.5  # through H.264, still the true rotation
    camera = f"{cam.fx},{cam.fy},{cam.cx},{cam.cy}"
    assert main(["trajectory", str(video), "--camera", camera, "-o", str(tmp_path / "t.parquet"), "-q"]) == 0
    table = Trajectory.load_parquet(tmp_path / "t.parquet")
    assert len(table) == 45 and table.tracked.all()
    np.testing.assert_allclose(table.position[table.tracked], tum.position, atol=1e-9)


def test_progress_bar_counts_frames(clip, tmp_path, capsys):
    video, cam_json, _, _ = clip
    assert main(["trajectory", str(video), "--intrinsics", str(cam_json), "-o", str(tmp_path / "t.txt")]) == 0
    assert "45/45" in capsys.readouterr().err


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("egoclean trajectory: error: "), err
    return err


def test_bad_input_is_one_line(clip, tmp_path, capsys):
    video, cam_json, _, cam = clip
    out = tmp_path / "t.txt"
    out.write_text("earlier\n")
    # intrinsics of another size
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**cam.to_dict(), "image_width": 640, "image_height": 480}))
    err = _error(["trajectory", str(video), "--intrinsics", str(other), "-o", str(out)], capsys)
    assert "640x480" in err and "240x180" in err
    # a fisheye calibration: the clip must be rectified first
    fish = tmp_path / "intrinsics.json"
    fish.write_text(json.dumps(FisheyeIntrinsics(240, 180, 100, 100, 120, 90, 0.1, 0, 0, 0).to_dict()))
    assert "fisheye" in _error(["trajectory", str(video), "--intrinsics", str(fish), "-o", str(out)], capsys)
    # a clip too short to initialise
    short = tmp_path / "short.mp4"
    write_clip(short, scenario("turn", 45, 240)[0][:4])
    assert "needs at least" in _error(["trajectory", str(short), "--intrinsics", str(cam_json), "-o", str(out)],
                                      capsys)
    # a corrupted video
    broken = tmp_path / "broken.mp4"
    data = video.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    err = _error(["trajectory", str(broken), "--intrinsics", str(cam_json), "-o", str(out)], capsys)
    assert str(broken) in err
    # a malformed --camera, an output of unknown kind
    assert "fx,fy,cx,cy" in _error(["trajectory", str(video), "--camera", "1,2", "-o", str(out)], capsys)
    assert ".parquet" in _error(["trajectory", str(video), "--camera", "1,1,1,1", "-o", str(tmp_path / "t.csv")],
                                capsys)
    assert out.read_text() == "earlier\n"  # nothing overwritten by a failed run


def test_the_readme_command_runs(clip, tmp_path, monkeypatch, capsys):
    import shlex
    import shutil
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("egoclean trajectory "))
    argv = shlex.split(line)[1:]
    video, cam_json, _, _ = clip
    monkeypatch.chdir(tmp_path)
    Path(argv[1]).parent.mkdir(parents=True)
    shutil.copy(video, argv[1])
    shutil.copy(cam_json, argv[argv.index("--intrinsics") + 1])
    assert main([*argv, "-q"]) == 0
    out = Path(argv[argv.index("-o") + 1])
    assert len(Trajectory.load_tum(out)) == 45
