"""A process SIGKILLed in the middle of fetching, rectifying and embedding: the rerun finishes
and gives the same outputs as an uninterrupted run, and no partial output ever sits under
a final name (atomic temp + rename: only `.NAME.part-PID-XXXX` files are left by a kill).

The real CLI runs in a subprocess; it is killed only once it is demonstrably mid-way (a
temporary output with bytes in it exists, or the progress bar has moved).
"""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pytest

from egoclean.media.video import probe

from .conftest import cli, decoded, part_files, popen_cli, write_clip

INTR = {"model": "fisheye", "image_width": 160, "image_height": 96, "fx": 70.0, "fy": 70.0,
        "cx": 80.0, "cy": 48.0, "k1": 0.02, "k2": 0.0, "k3": 0.0, "k4": 0.0}


def kill_when(proc, ready, what: str, limit: float = 120.0) -> None:
    """SIGKILL `proc` as soon as `ready()` holds; fail if it ends first (nothing was proven)."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (rc {proc.returncode}) before it was seen {what}")
        if time.monotonic() - t0 > limit:
            proc.kill()
            pytest.fail(f"the process was never seen {what}")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def test_kill_mid_fetch_then_rerun(hub, synth_dataset, tmp_path):
    from tests.support.hubstub import HubStub

    key = synth_dataset["keys"][1]
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = {"HF_ENDPOINT": "", "EGOCLEAN_CACHE": str(cache), "HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": ""}
    with HubStub(synth_dataset["source"]) as stub:
        env["HF_ENDPOINT"] = stub.endpoint
        args = ["fetch", key, "-o", str(out), "--source", stub.url]
        # The clip's body is cut after 4 KB every time: the client keeps what it has in its
        # temporary file and backs off before resuming, so it sits mid-fetch for seconds.
        stub.short(times=None, keep=4096, match=r"\.tar$")
        proc = popen_cli(args, tmp_path / "log", env)
        kill_when(proc, lambda: any(p.suffix == ".mp4" and p.stat().st_size > 0 for p in part_files(out)),
                  "with part of the clip in a temporary file")
        assert not (out / f"{key}.mp4").exists() and not (out / f"{key}.json").exists()
        left = part_files(out)
        assert left, "the kill should have left the temporary file"
        stub.clear()
        done = cli(args, env)
        assert done.returncode == 0, done.stderr
    # an uninterrupted fetch of the same clip from the dataset folder itself
    ref = cli(["fetch", key, "-o", str(tmp_path / "ref"), "--source", str(synth_dataset["source"])], env)
    assert ref.returncode == 0, ref.stderr
    for name in (f"{key}.mp4", f"{key}.json"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    # the killed run's temporary file is never taken for an output: it keeps its hidden
    # temp name, and the rerun wrote its own
    assert all(p.exists() and p.name.startswith(".") for p in left)


def test_kill_mid_rectify_then_rerun(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", 1500, w=160, h=96, codec="libx265")
    intr = tmp_path / "intrinsics.json"
    intr.write_text(__import__("json").dumps(INTR))
    out = tmp_path / "out" / "rect.mp4"
    args = ["rectify", str(clip), "--intrinsics", str(intr), "-o", str(out)]
    proc = popen_cli(args, tmp_path / "log")
    kill_when(proc, lambda: any(p.suffix == ".mp4" and p.stat().st_size > 2048 for p in part_files(out.parent)),
              "writing the rectified clip")
    assert not out.exists() and not (out.parent / "rect_intrinsics.json").exists()
    done = cli(args)
    assert done.returncode == 0, done.stderr
    ref_out = tmp_path / "ref" / "rect.mp4"
    ref = cli(["rectify", str(clip), "--intrinsics", str(intr), "-o", str(ref_out)])
    assert ref.returncode == 0, ref.stderr
    assert probe(out).n_frames == probe(ref_out).n_frames == 1500
    np.testing.assert_array_equal(decoded(out), decoded(ref_out))
    assert (out.parent / "rect_intrinsics.json").read_text() == (ref_out.parent / "rect_intrinsics.json").read_text()


def test_kill_mid_embed_then_rerun(tmp_path, tiny_model):
    from egoclean.embed.embeddings import Embeddings
    from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder

    clip = write_clip(tmp_path / "in.mp4", 1200, w=64, h=48, codec="libx265")
    prefix = tmp_path / "out" / "clip"
    args = ["embed", str(clip), "-o", str(prefix), "--model", tiny_model, "--device", "cpu", "--batch", "1"]
    log = tmp_path / "log"
    proc = popen_cli(args, log)

    def progressed() -> bool:
        m = re.findall(rb"\b(\d+)/(\d+) \[", log.read_bytes())
        return any(0 < int(a) < int(b) for a, b in m)

    kill_when(proc, progressed, "with some windows embedded")
    assert not (tmp_path / "out").exists() or [p for p in (tmp_path / "out").iterdir()] == []
    done = cli(args)
    assert done.returncode == 0, done.stderr
    got = Embeddings.load(prefix)
    ref = embed_video(clip, load_encoder(EncoderConfig(model=tiny_model, device="cpu")), progress=False)
    assert len(got) == len(ref) == (1200 - 64) // 30 + 1
    np.testing.assert_allclose(got.emb, ref.emb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.temb, ref.temb, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.ts, ref.ts)
