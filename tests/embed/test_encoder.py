"""The V-JEPA 2 encoder on real H.265 clips with the tiny random-weight model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from egoclean.embed import encoder as encoder_mod
from egoclean.embed.embeddings import Embeddings
from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder, resolve_device, resolve_dtype
from egoclean.core.errors import InvalidInputError, ModelLoadError, VideoError
from egoclean.embed.preprocess import preprocess_frames
from egoclean.embed.tiny_model import TINY_CONFIG, save_tiny_model
from egoclean.media.video import VideoWriter, iter_frames

ROOT = Path(__file__).resolve().parents[2]


def write_clip(path: Path, n: int, width: int, height: int, fps: float = 30.0) -> Path:
    """A small H.265 clip whose content changes every frame (a moving bar, a ramp)."""
    yy, xx = np.mgrid[0:height, 0:width]
    with VideoWriter(path, fps, width, height, codec="libx265", crf=20, preset="ultrafast") as w:
        for i in range(n):
            f = np.empty((height, width, 3), np.uint8)
            f[..., 0] = (xx * 255 // max(1, width - 1) + 3 * i) % 256
            f[..., 1] = (yy * 255 // max(1, height - 1)) % 256
            f[..., 2] = np.where(np.abs(xx - (2 * i) % width) < 6, 250, 20)
            w.write(f)
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", seed=0)


@pytest.fixture(scope="module")
def enc(tiny_dir):
    return load_encoder(EncoderConfig(model=str(tiny_dir), device="cpu"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "land.mp4", 130, 96, 80)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "portrait.mp4", 120, 80, 96, fps=25.0)


def reference_embeddings(path: Path, model_dir: Path, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """The plain way: all frames in memory, each window preprocessed on its own, the
    full model's documented get_vision_features (predictor kept)."""
    full = load_encoder(EncoderConfig(model=str(model_dir), device="cpu", keep_predictor=True))
    frames = np.stack(list(iter_frames(path, fmt="rgb24")))
    stride = int(round(fps))
    embs, tembs = [], []
    for s in range(0, len(frames) - 64 + 1, stride):
        x = torch.from_numpy(preprocess_frames(frames[s : s + 64], full.shortest_edge, full.crop))[None]
        with torch.no_grad():
            tok = full.model.get_vision_features(x)
        t = tok.view(1, 32, (full.crop // 16) ** 2, full.hidden).mean(2)
        embs.append(tok.mean(1).numpy())
        tembs.append(t.numpy())
    return np.concatenate(embs), np.concatenate(tembs)


def test_embed_shapes_times_meta(clip, enc):
    e = embed_video(clip, enc, batch_size=3, progress=False)
    n = (130 - 64) // 30 + 1
    assert e.emb.shape == (n, 64) and e.temb.shape == (n, 32, 64) and e.ts.shape == (n,)
    np.testing.assert_allclose(e.ts, [0.0, 1.0, 2.0])
    assert e.emb.dtype == np.float32 and e.temb.dtype == np.float32
    assert np.isfinite(e.emb).all() and np.isfinite(e.temb).all()
    m = e.meta
    assert m["random_weights"] is True
    assert (m["fps"], m["n_frames"], m["stride"], m["window"], m["hidden"]) == (30.0, 130, 30, 64, 64)
    assert m["device"] == "cpu" and m["dtype"] == "float32"
    # Different windows of a changing clip give different embeddings.
    assert not np.allclose(e.emb[0], e.emb[1])
    json.dumps(m)  # meta must be JSON-serialisable for Embeddings.save


def test_streaming_equals_plain_per_window_reference(clip, enc, tiny_dir):
    e = embed_video(clip, enc, batch_size=2, progress=False)
    emb, temb = reference_embeddings(clip, tiny_dir, 30.0)
    np.testing.assert_allclose(e.emb, emb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e.temb, temb, rtol=1e-4, atol=1e-5)


def test_batch_size_and_prefetch_do_not_change_results(clip, enc):
    a = embed_video(clip, enc, batch_size=1, progress=False, prefetch=False)
    b = embed_video(clip, enc, batch_size=3, progress=False, prefetch=True, chunk=5)
    c = embed_video(clip, enc, batch_size=2, progress=False, prefetch=True, chunk=1)
    for other in (b, c):
        np.testing.assert_allclose(a.emb, other.emb, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.temb, other.temb, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a.ts, other.ts)


def test_portrait_25fps(portrait, enc, tiny_dir):
    e = embed_video(portrait, enc, batch_size=4, progress=False)
    assert e.emb.shape == (3, 64)  # (120 - 64) // 25 + 1
    np.testing.assert_allclose(e.ts, [0.0, 1.0, 2.0])
    assert e.meta["stride"] == 25 and (e.meta["width"], e.meta["height"]) == (80, 96)
    emb, _ = reference_embeddings(portrait, tiny_dir, 25.0)
    np.testing.assert_allclose(e.emb, emb, rtol=1e-4, atol=1e-5)


def test_rendition_at_shortest_edge(tmp_path, enc, tiny_dir):
    # A small rendition whose short side is already shortest_edge (73 here; 292 for
    # ViT-L) is cropped without resizing; odd sides decode and embed too.
    path = write_clip(tmp_path / "r.mp4", 70, 130, 74)
    e = embed_video(path, enc, batch_size=2, progress=False)
    assert e.emb.shape == (1, 64)
    emb, _ = reference_embeddings(path, tiny_dir, 30.0)
    np.testing.assert_allclose(e.emb, emb, rtol=1e-4, atol=1e-5)


def test_saved_files_round_trip(clip, enc, tmp_path):
    e = embed_video(clip, enc, progress=False)
    e.save(tmp_path / "x")
    back = Embeddings.load(tmp_path / "x")
    np.testing.assert_array_equal(back.temb, e.temb)
    assert back.meta["random_weights"] is True


def test_token_order_is_time_major(enc):
    """Changing only tubelet step 5 (frames 10-11) changes only time slot 5 of the
    patch embedding when reshaped the way `Encoder.encode` reshapes tokens."""
    torch.manual_seed(0)
    x = torch.randn(1, 64, 3, enc.crop, enc.crop)
    y = x.clone()
    y[:, 10:12] += 1.0
    pe = enc.model.encoder.embeddings
    with torch.no_grad():
        a = pe(x).view(1, enc.time_steps, enc.spatial, enc.hidden)
        b = pe(y).view(1, enc.time_steps, enc.spatial, enc.hidden)
    changed = (a - b).abs().amax(dim=(0, 2, 3)) > 1e-6
    assert changed.nonzero().flatten().tolist() == [5]
    # Spatially: changing one 16x16 patch (row 1, col 2) changes spatial slot 1*4+2 only.
    z = x.clone()
    z[:, :, :, 16:32, 32:48] += 1.0
    with torch.no_grad():
        c = pe(z).view(1, enc.time_steps, enc.spatial, enc.hidden)
    sp = (a - c).abs().amax(dim=(0, 1, 3)) > 1e-6
    assert sp.nonzero().flatten().tolist() == [1 * (enc.crop // enc.patch) + 2]


def test_temporal_tokens_follow_the_changed_frames(tmp_path, enc):
    """End to end: a clip that is static except frames 20-23 changes temb mostly at
    time steps 10-11 of the first window."""
    h, w = 80, 96
    path = tmp_path / "still.mp4"
    with VideoWriter(path, 30, w, h, codec="libx265", crf=10, preset="ultrafast") as vw:
        for i in range(64):
            f = np.full((h, w, 3), 90, np.uint8)
            if 20 <= i < 24:
                f[:, :, :] = 230
            vw.write(f)
    flat = path.with_name("flat.mp4")
    with VideoWriter(flat, 30, w, h, codec="libx265", crf=10, preset="ultrafast") as vw:
        for _ in range(64):
            vw.write(np.full((h, w, 3), 90, np.uint8))
    a = embed_video(path, enc, progress=False).temb[0]
    b = embed_video(flat, enc, progress=False).temb[0]
    d = np.abs(a - b).max(axis=1)
    assert set(np.argsort(d)[-2:]) == {10, 11}


def test_short_clip_is_a_clear_error(tmp_path, enc):
    path = write_clip(tmp_path / "short.mp4", 63, 96, 80)
    with pytest.raises(VideoError, match=r"short\.mp4: 63 frames at 30 fps is shorter than one 64-frame window"):
        embed_video(path, enc, progress=False)


def test_missing_and_corrupt_inputs(tmp_path, enc):
    with pytest.raises(VideoError, match="file not found"):
        embed_video(tmp_path / "nope.mp4", enc, progress=False)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="bad.mp4"):
        embed_video(bad, enc, progress=False)
    with pytest.raises(InvalidInputError, match="batch size 0"):
        embed_video(tmp_path / "nope.mp4", enc, batch_size=0, progress=False)


def test_device_and_dtype_choice():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("fp16", cpu) == torch.float16
    with pytest.raises(InvalidInputError, match="dtype 'int8'"):
        resolve_dtype("int8", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_broken_model_folders(tmp_path, tiny_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_encoder(EncoderConfig(str(empty), device="cpu"))
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_encoder(EncoderConfig(str(tmp_path / "missing" / "model"), device="cpu"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match=r"model folder .*broken: cannot be loaded"):
        load_encoder(EncoderConfig(str(broken), device="cpu"))


def test_random_weights_from_embedded_config(monkeypatch):
    # A known hub id builds its architecture from the embedded config, no hub needed
    # (gpu_vitl.py uses this for ViT-L; the tiny config keeps the test fast).
    monkeypatch.setitem(encoder_mod.KNOWN_CONFIGS, "egoclean-test/tiny", TINY_CONFIG)
    e = load_encoder(EncoderConfig("egoclean-test/tiny", device="cpu", random_weights=True))
    assert e.random_weights is True and e.hidden == 64 and e.model.predictor is None
    assert (e.shortest_edge, e.crop) == (73, 64)
    emb, temb = e.encode(torch.zeros((1, 64, 64, 64, 3), dtype=torch.uint8))
    assert emb.shape == (1, 64) and temb.shape == (1, 32, 64)


def test_unreachable_hub_gives_how_to_fix(tmp_path):
    """Offline with an empty cache: one clear line (exit 2), no traceback."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_secretvalue123"}
    env.pop("HF_HUB_CACHE", None)
    clip = write_clip(tmp_path / "c.mp4", 64, 96, 80)
    r = subprocess.run(
        [sys.executable, "-m", "egoclean.cli", "embed", str(clip), "-o", str(tmp_path / "out"),
         "--model", "facebook/vjepa2-vitl-fpc64-256"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 2, r.stderr
    err = r.stderr
    assert "Traceback" not in err
    assert "facebook/vjepa2-vitl-fpc64-256" in err
    assert "neither in the local cache nor reachable" in err
    for hint in ("HF_TOKEN", "--model DIR", "HF_HUB_OFFLINE=1"):
        assert hint in err
    assert "hf_secretvalue123" not in err + r.stdout
    assert not list(tmp_path.glob("out*"))


def test_cli_embed_tiny(tmp_path, clip, tiny_dir):
    from egoclean.cli import main

    assert main(["embed", str(clip), "-o", str(tmp_path / "e"), "--model", str(tiny_dir), "--batch", "2",
                 "--device", "cpu"]) == 0
    e = Embeddings.load(tmp_path / "e")
    assert e.emb.shape == (3, 64) and e.meta["random_weights"] is True


def _serve_tiny(root: Path, tiny_dir: Path) -> None:
    import shutil

    for f in tiny_dir.iterdir():
        shutil.copy(f, root / f.name)


def _cli_embed(tmp_path: Path, clip: Path, model: str, env: dict) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HOME": str(tmp_path / "hf")} | env
    for k in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if k not in env or env[k] is None:
            env.pop(k, None)
    return subprocess.run(
        [sys.executable, "-m", "egoclean.cli", "embed", str(clip), "-o", str(tmp_path / "out"), "--model", model,
         "--device", "cpu"],
        cwd=tmp_path, env={k: v for k, v in env.items() if v is not None}, capture_output=True, text=True,
        timeout=300,
    )


def test_hub_id_through_stand_in_hub(tmp_path, clip, tiny_dir):
    """The real huggingface_hub client downloads a gated model repo (weights, config,
    video processor config, random-weights marker) from the stand-in hub and embeds;
    without the token it is refused with a hint; the token never leaks."""
    from tests.support.hubstub import HubStub

    root = tmp_path / "repo"
    root.mkdir()
    _serve_tiny(root, tiny_dir)
    secret = "hf_gatedSecretToken42"
    with HubStub(root, repo_id="egoclean-test/tiny-vjepa2", token=secret) as hub:
        denied = _cli_embed(tmp_path, clip, "egoclean-test/tiny-vjepa2", {"HF_ENDPOINT": hub.endpoint})
        hub.requests.clear()
        ok = _cli_embed(tmp_path, clip, "egoclean-test/tiny-vjepa2", {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": secret})
        fetched = {q.path.rsplit("/", 1)[-1] for q in hub.requests if q.status in (200, 206)}
    # The cache that run filled serves an offline run (the error message's option 3).
    (tmp_path / "out_meta.json").rename(tmp_path / "online_meta.json")
    offline = _cli_embed(tmp_path, clip, "egoclean-test/tiny-vjepa2",
                         {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert json.loads((tmp_path / "out_meta.json").read_text())["random_weights"] is True
    assert denied.returncode == 2 and "Traceback" not in denied.stderr
    assert "HF_TOKEN" in denied.stderr and "egoclean-test/tiny-vjepa2" in denied.stderr
    assert "refused access" in denied.stderr
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json"} <= fetched
    e = Embeddings.load(tmp_path / "out")
    assert e.emb.shape == (3, 64)
    assert e.meta["model"] == "egoclean-test/tiny-vjepa2" and e.meta["random_weights"] is True
    assert e.meta["preprocess_source"] == "video_preprocessor_config.json" and e.meta["shortest_edge"] == 73
    for text in (denied.stderr, denied.stdout, ok.stderr, ok.stdout, (tmp_path / "online_meta.json").read_text()):
        assert secret not in text


def test_windows_stream_before_the_clip_is_decoded(tmp_path, enc):
    """Streaming, not collecting: the first batch comes out after ~64 + stride frames,
    and the ring / batch buffers have fixed sizes whatever the clip length."""
    path = write_clip(tmp_path / "long.mp4", 400, 64, 48)
    stream = encoder_mod.WindowStream(path, enc.window_shape, stride=30, batch_size=2, chunk=4)
    it = iter(stream)
    starts, batch = next(it)
    assert starts == [0, 30]
    assert tuple(batch.shape) == (2, 64, 64, 64, 3) and batch.dtype == torch.uint8
    assert stream.n_decoded <= 64 + 30 + 4  # the second window's last frame + one chunk
    rest = list(it)
    assert stream.n_decoded == 400
    assert [s for ss, _ in rest for s in ss] == list(range(60, 400 - 64 + 1, 30))
