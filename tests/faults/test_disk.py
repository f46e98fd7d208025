"""The disk fills up while an output is being written: a clear one-line error, the earlier
output under that name intact, no temporary file left behind.

A real full filesystem (a 256 KiB tmpfs) is used where this machine lets us mount one
(root in a container that allows it); everywhere, the same faults are also injected as
OSError(ENOSPC) from the real writers (fsync, np.save, the video muxer) so the test runs
in CI too.
"""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from egoclean.cli import main
from egoclean.embed.embeddings import Embeddings
from egoclean_assets.assets import ALL_ASSETS
from egoclean_assets.partitions import add_clip_partitions

from .conftest import graph_resources, part_files, write_clip

INTR = {"model": "fisheye", "image_width": 160, "image_height": 96, "fx": 70.0, "fy": 70.0,
        "cx": 80.0, "cy": 48.0, "k1": 0.02, "k2": 0.0, "k3": 0.0, "k4": 0.0}


def enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def last_line(err: str) -> str:
    return err.replace("\r", "\n").strip().splitlines()[-1]


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs, or a skip saying why none can be mounted here."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'}); "
                    "the injected-ENOSPC tests cover this case")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_real_full_disk_while_rectifying(small_fs, tmp_path, capsys):
    clip = write_clip(tmp_path / "in.mp4", 300, w=160, h=96, codec="libx265")
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR))
    out = small_fs / "rect.mp4"
    out.write_bytes(b"an earlier rectified clip")
    (small_fs / "filler").write_bytes(bytes(200_000))
    rc = main(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out), "--crf", "0"])
    err = last_line(capsys.readouterr().err)
    assert rc == 1
    assert err.startswith("egoclean rectify: error: [Errno 28] No space left on device") and "free some space" in err
    assert out.read_bytes() == b"an earlier rectified clip"
    assert part_files(small_fs) == [] and not (small_fs / "rect_intrinsics.json").exists()


def test_full_disk_while_rectifying_injected(tmp_path, capsys, monkeypatch):
    from egoclean.media import video

    clip = write_clip(tmp_path / "in.mp4", 60, w=160, h=96, codec="libx265")
    intr = tmp_path / "intrinsics.json"
    intr.write_text(json.dumps(INTR))
    out = tmp_path / "rect.mp4"
    out.write_bytes(b"an earlier rectified clip")
    real_write = video.VideoWriter.write

    def write(self, frame, fmt="bgr24"):
        if self.n_frames == 20:  # mid-clip
            enospc()
        real_write(self, frame, fmt=fmt)

    monkeypatch.setattr(video.VideoWriter, "write", write)
    rc = main(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)])
    err = last_line(capsys.readouterr().err)
    assert rc == 1 and "No space left on device" in err and "free some space" in err, err
    assert out.read_bytes() == b"an earlier rectified clip"
    assert part_files(tmp_path) == []


def test_full_disk_at_fsync_while_fetching(synth_dataset, tmp_path, capsys, monkeypatch):
    from egoclean.core import atomic

    key = synth_dataset["keys"][0]
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{key}.mp4").write_bytes(b"earlier mp4")
    (out / f"{key}.json").write_bytes(b"earlier json")
    monkeypatch.setattr(atomic.os, "fsync", enospc)  # delayed allocation: the data only fails to land at fsync
    rc = main(["fetch", key, "-o", str(out), "--source", str(synth_dataset["source"])])
    err = last_line(capsys.readouterr().err)
    assert rc == 1 and "No space left on device" in err, err
    assert (out / f"{key}.mp4").read_bytes() == b"earlier mp4"
    assert (out / f"{key}.json").read_bytes() == b"earlier json"
    assert part_files(out) == []


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_full_disk_while_saving_embeddings_keeps_the_earlier_set(tmp_path, monkeypatch, fail_at):
    rng = np.random.default_rng(0)
    old = Embeddings(rng.random((5, 8), np.float32), rng.random((5, 4, 8), np.float32), np.arange(5.0), {"v": 1})
    new = Embeddings(rng.random((7, 8), np.float32), rng.random((7, 4, 8), np.float32), np.arange(7.0), {"v": 2})
    prefix = tmp_path / "clip"
    files = old.save(prefix)
    before = {k: Path(v).read_bytes() for k, v in files.items()}
    calls = {"n": 0}
    real = np.save

    def save(f, a, *args, **kw):
        calls["n"] += 1
        if calls["n"] == fail_at:
            enospc()
        real(f, a, *args, **kw)

    monkeypatch.setattr(np, "save", save)
    with pytest.raises(OSError, match="No space left"):
        new.save(prefix)
    assert {k: Path(v).read_bytes() for k, v in files.items()} == before
    assert part_files(tmp_path) == []
    assert Embeddings.load(prefix).meta == {"v": 1}


def test_full_disk_inside_the_graph_keeps_the_earlier_rectified_clip(synth_dataset, tmp_path, monkeypatch):
    """Rematerializing rectified_clip on a full disk: the step fails saying so, the earlier
    rectified clip and its manifest are untouched, and the raw clip stays for the retry."""
    from egoclean.media import video

    key = synth_dataset["keys"][0]
    instance = DagsterInstance.ephemeral()
    add_clip_partitions(instance, [key])
    root = tmp_path / "data"
    res = graph_resources(synth_dataset["source"], root, tmp_path / "db.duckdb", "unused",
                          cache_dir=str(tmp_path / "cache"))
    sel = AssetSelection.assets("raw_tar", "intrinsics", "rectified_clip")
    assert materialize(ALL_ASSETS, instance=instance, resources=res, partition_key=key, selection=sel).success
    d = root / "factory_001" / "worker_001" / key
    rect = d / f"{key}_rectified.mp4"
    manifest = d / "_manifests" / "rectified_clip.json"
    before = (rect.read_bytes(), manifest.read_bytes())

    real_write = video.VideoWriter.write

    def write(self, frame, fmt="bgr24"):
        if self.n_frames == 100:
            enospc()
        real_write(self, frame, fmt=fmt)

    monkeypatch.setattr(video.VideoWriter, "write", write)
    result = materialize(ALL_ASSETS, instance=instance, resources=res, partition_key=key, selection=sel,
                         raise_on_error=False)
    assert not result.success
    (fail,) = [e for e in result.all_events if e.is_step_failure]
    assert fail.step_key == "rectified_clip"
    assert "No space left on device" in fail.event_specific_data.error.to_string()
    assert (rect.read_bytes(), manifest.read_bytes()) == before
    assert (d / "raw" / f"{key}.mp4").is_file()  # kept for the retry
    assert part_files(root) == []
