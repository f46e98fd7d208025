"""Preprocessing equals the hub's VJEPA2VideoProcessor (golden reference, no torchvision)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from egoclean.core.errors import InvalidInputError
from egoclean.embed.preprocess import (
    PreprocessConfig,
    normalize,
    preprocess_frames,
    resize_crop_uint8,
    resized_size,
)


@pytest.mark.parametrize("case", ["f1080p", "f640x360"])
def test_matches_hub_processor_golden(shared_data, case):
    z = np.load(shared_data / "vjepa2" / "preprocess_golden.npz")
    frames = z[f"{case}_input_rgb_uint8_THWC"]
    ref = z[f"{case}_output_float32_TCHW"]
    out = preprocess_frames(frames, shortest_edge=292, crop=256)
    assert out.shape == ref.shape == (len(frames), 3, 256, 256)
    assert out.dtype == np.float32
    diff = np.abs(out - ref)
    assert diff.max() < 0.02, f"max abs diff {diff.max():.4f}"
    # The uint8 kernel is the processor's own: equal to float rounding, not just close.
    assert diff.max() < 1e-4


def test_rgb_order_is_kept(shared_data):
    # Swapping R and B (a BGR mix-up) must move the result far from the reference.
    z = np.load(shared_data / "vjepa2" / "preprocess_golden.npz")
    frames = z["f640x360_input_rgb_uint8_THWC"]
    ref = z["f640x360_output_float32_TCHW"]
    bgr = np.ascontiguousarray(frames[..., ::-1])
    assert np.abs(preprocess_frames(bgr) - ref).max() > 0.5


@pytest.mark.parametrize(
    "hw,expected",
    [((1080, 1920), (292, 519)), ((360, 640), (292, 519)), ((1920, 1080), (519, 292)), ((80, 96), (73, 87)),
     ((97, 81), (87, 73)), ((292, 520), (292, 520))],
)
def test_resized_size(hw, expected):
    short = 73 if min(hw) < 200 else 292
    assert resized_size(*hw, short) == expected


def test_short_side_already_at_target_is_identity_then_crop():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 292, 520, 3), dtype=np.uint8)
    out = resize_crop_uint8(frames, 292, 256).numpy()
    top, left = (292 - 256) // 2, (520 - 256) // 2
    np.testing.assert_array_equal(out, frames[:, top : top + 256, left : left + 256])


@pytest.mark.parametrize("hw", [(81, 97), (97, 81), (33, 200)])
def test_odd_and_portrait_sizes_give_crop_squares(hw):
    frames = np.full((2, *hw, 3), 128, np.uint8)
    out = preprocess_frames(frames, shortest_edge=73, crop=64)
    assert out.shape == (2, 3, 64, 64)
    # A flat grey frame stays flat through resize and crop: (128/255 - mean) / std.
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, :, 5, 5], (128 / 255 - mean) / std, atol=1e-5)


def test_normalize_layout_and_values():
    x = torch.zeros((1, 4, 4, 3), dtype=torch.uint8)
    x[..., 0] = 255
    y = normalize(x)
    assert y.shape == (1, 3, 4, 4)
    assert torch.allclose(y[0, 0], torch.full((4, 4), (1 - 0.485) / 0.229))
    assert torch.allclose(y[0, 2], torch.full((4, 4), (0 - 0.406) / 0.225))


def test_bad_frames_are_rejected():
    with pytest.raises(InvalidInputError, match="uint8"):
        preprocess_frames(np.zeros((2, 10, 10, 3), np.float32))
    with pytest.raises(InvalidInputError, match=r"\(T, H, W, 3\)"):
        preprocess_frames(np.zeros((10, 10, 3), np.uint8))


def test_processor_json_is_read_and_checked(tmp_path):
    from egoclean.embed.tiny_model import processor_config

    p = tmp_path / "video_preprocessor_config.json"
    p.write_text(json.dumps(processor_config(256)))
    cfg = PreprocessConfig.from_processor_json(p)
    assert (cfg.shortest_edge, cfg.crop) == (292, 256)
    bad = processor_config(256)
    del bad["image_std"]
    p.write_text(json.dumps(bad))
    with pytest.raises(InvalidInputError, match="image_std"):
        PreprocessConfig.from_processor_json(p)
    p.write_text(json.dumps(processor_config(256) | {"size": {"shortest_edge": 200}}))
    with pytest.raises(InvalidInputError, match="shortest_edge 200 must be >= crop 256"):
        PreprocessConfig.from_processor_json(p)


@pytest.mark.parametrize("hw", [(1080, 1920), (1920, 1080), (360, 640), (301, 455)])
def test_square_rendition_reproduces_the_crop_exactly(hw):
    from egoclean.embed.preprocess import rendition_uint8

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(2, *hw, 3), dtype=np.uint8)
    rend = rendition_uint8(frames, 292, 256)
    assert rend.shape == (2, 292, 292, 3)
    np.testing.assert_array_equal(
        resize_crop_uint8(rend.numpy(), 292, 256).numpy(), resize_crop_uint8(frames, 292, 256).numpy()
    )
