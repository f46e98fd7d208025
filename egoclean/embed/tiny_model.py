"""A tiny randomly initialised V-JEPA 2 saved as a local model folder (tests, demos).

Same architecture and window logic as the real model (64 frames, tubelet 2, patch 16)
but hidden 64, 2 layers, crop 64: it runs in milliseconds and loads offline. The folder
carries a marker file so everything computed with it is labelled random_weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from egoclean.core import atomic
from egoclean.embed.preprocess import IMAGENET_MEAN, IMAGENET_STD

RANDOM_WEIGHTS_MARKER = "egoclean_random_weights.json"

TINY_CONFIG = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    mlp_ratio=2.0,
    crop_size=64,
    frames_per_clip=64,
    tubelet_size=2,
    patch_size=16,
    pred_hidden_size=32,
    pred_num_hidden_layers=1,
    pred_num_attention_heads=2,
    pred_num_mask_tokens=2,
    num_pooler_layers=1,
)


def processor_config(crop: int, shortest_edge: int | None = None) -> dict:
    """A video_preprocessor_config.json for `crop`, scaled like the hub's (292 for 256)."""
    return {
        "video_processor_type": "VJEPA2VideoProcessor",
        "do_resize": True,
        "size": {"shortest_edge": shortest_edge or int(crop * 292 / 256)},
        "resample": 2,
        "do_center_crop": True,
        "crop_size": {"height": crop, "width": crop},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
    }


def save_tiny_model(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a random-weight tiny VJEPA2Model to `out_dir` (config.json,
    model.safetensors, video_preprocessor_config.json, random-weights marker)."""
    from transformers import VJEPA2Config, VJEPA2Model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = VJEPA2Model(VJEPA2Config(**TINY_CONFIG)).eval()
    # Marker first, config last: a folder interrupted half-way has no config.json and
    # does not load, rather than loading unmarked random weights.
    atomic.write_json(out / RANDOM_WEIGHTS_MARKER, {"random_weights": True, "seed": seed,
                                                    "made_by": "egoclean.embed.tiny_model.save_tiny_model"})
    atomic.write_json(out / "video_preprocessor_config.json", processor_config(TINY_CONFIG["crop_size"]))
    (out / "config.json").unlink(missing_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    return out


def is_random_weights(model_dir: str | os.PathLike) -> bool:
    """True when a local model folder is marked as holding random weights."""
    marker = Path(model_dir) / RANDOM_WEIGHTS_MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()).get("random_weights", True))
    except ValueError:
        return True  # a damaged marker still says "not trained"
