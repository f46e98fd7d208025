"""The tiny random-weight V-JEPA 2 folder: contents, marker, offline loading."""

from __future__ import annotations

import json

import torch

from egoclean.embed.encoder import EncoderConfig, load_encoder
from egoclean.embed.preprocess import PreprocessConfig
from egoclean.embed.tiny_model import RANDOM_WEIGHTS_MARKER, TINY_CONFIG, is_random_weights, save_tiny_model


def test_folder_contents_and_consistent_processor(tmp_path):
    out = save_tiny_model(tmp_path / "tiny", seed=0)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", RANDOM_WEIGHTS_MARKER} <= names
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "vjepa2"
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["crop_size"]) == (64, 2, 64)
    assert (cfg["frames_per_clip"], cfg["tubelet_size"], cfg["patch_size"]) == (64, 2, 16)
    pre = PreprocessConfig.from_processor_json(out / "video_preprocessor_config.json")
    assert pre.crop == cfg["crop_size"] == 64
    assert pre.shortest_edge == int(64 * 292 / 256) == 73
    assert is_random_weights(out)


def test_loads_offline_marked_random(tmp_path):
    out = save_tiny_model(tmp_path / "tiny", seed=0)
    enc = load_encoder(EncoderConfig(model=str(out), device="cpu"))
    assert enc.random_weights is True
    assert (enc.frames_per_window, enc.crop, enc.shortest_edge) == (64, 64, 73)
    assert (enc.hidden, enc.tubelet, enc.patch, enc.time_steps, enc.spatial) == (64, 2, 16, 32, 16)
    assert enc.model.predictor is None  # the predictor is never materialised for inference
    assert enc.model.config._attn_implementation == "sdpa"
    assert enc.dtype == torch.float32 and enc.device.type == "cpu"


def test_seed_decides_the_weights(tmp_path):
    a = load_encoder(EncoderConfig(str(save_tiny_model(tmp_path / "a", seed=0)), device="cpu")).model
    b = load_encoder(EncoderConfig(str(save_tiny_model(tmp_path / "b", seed=0)), device="cpu")).model
    c = load_encoder(EncoderConfig(str(save_tiny_model(tmp_path / "c", seed=1)), device="cpu")).model
    wa, wb, wc = (m.encoder.embeddings.patch_embeddings.proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_unmarked_folder_is_not_random(tmp_path):
    out = save_tiny_model(tmp_path / "tiny")
    (out / RANDOM_WEIGHTS_MARKER).unlink()
    assert not is_random_weights(out)
    assert load_encoder(EncoderConfig(str(out), device="cpu")).random_weights is False


def test_tiny_config_is_the_real_architecture_scaled_down():
    assert TINY_CONFIG["frames_per_clip"] == 64  # same window logic as ViT-L
    assert TINY_CONFIG["hidden_size"] % TINY_CONFIG["num_attention_heads"] == 0


def test_cli_writes_the_folder(tmp_path, capsys):
    from egoclean.cli import main

    assert main(["tiny-model", str(tmp_path / "m"), "--seed", "3"]) == 0
    assert "random-weight" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / RANDOM_WEIGHTS_MARKER).read_text())["seed"] == 3
