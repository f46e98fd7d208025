"""V-JEPA 2 frame preprocessing, equal to the hub's VJEPA2VideoProcessor without torchvision.

The hub processor (transformers + torchvision) resizes uint8 frames with torchvision's
antialiased bilinear resize, which on uint8 tensors is torch's own uint8 antialiased
`interpolate`; calling that kernel directly reproduces the processor to float rounding
(the golden test in tests/embed/test_preprocess.py checks it). Resizing float input instead
differs by up to ~0.02, because the processor rounds the resized image to uint8.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from egoclean.core import jsonin
from egoclean.core.errors import InvalidInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
# The largest resize or crop side a processor config may ask for (V-JEPA 2 uses 256-384):
# every window holds 64 frames of this size, so a huge value would exhaust memory.
MAX_SIDE = 4096
_WHAT = "preprocessing"  # how PreprocessConfig's own errors name it


@dataclass(frozen=True)
class PreprocessConfig:
    """What the hub's video processor does to a frame: resize, crop, rescale, normalise."""

    shortest_edge: int = 292
    crop: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rescale_factor: float = 1 / 255

    def to_dict(self) -> dict:
        return {
            "shortest_edge": self.shortest_edge,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "rescale_factor": self.rescale_factor,
        }

    @classmethod
    def from_processor_json(cls, path: str | os.PathLike) -> "PreprocessConfig":
        """Read a video_preprocessor_config.json; every value the processor uses must be
        stated (the class defaults differ from the hub config, so none is assumed)."""
        path = Path(path)
        where = f"preprocessor config {path}"
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise InvalidInputError(f"{where}: unreadable ({e})") from None
        d = jsonin.loads(raw, where)
        if not isinstance(d, dict):
            raise InvalidInputError(f"{where}: not a JSON object")

        def whole(v: Any, name: str) -> int:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
                raise InvalidInputError(f"{where}: {name} must be a whole number, got {str(v)[:40]}")
            if not 1 <= v <= MAX_SIDE:
                raise InvalidInputError(f"{where}: {name}={v:g} is outside 1..{MAX_SIDE}")
            return int(v)

        def real(v: Any, name: str) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidInputError(f"{where}: {name} must be a finite number, got {str(v)[:40]}")
            return float(v)

        try:
            if not d.get("do_resize", True) or not d.get("do_center_crop", True):
                raise InvalidInputError(f"{where}: resize and centre crop must be enabled")
            if not d.get("do_normalize", True) or not d.get("do_rescale", True):
                raise InvalidInputError(f"{where}: rescale and normalise must be enabled")
            if d.get("resample", 2) != 2:
                raise InvalidInputError(f"{where}: resample {str(d['resample'])[:40]} is not bilinear (2)")
            size = d["size"]
            shortest = whole(size["shortest_edge"] if isinstance(size, dict) else size, "size.shortest_edge")
            crop = d["crop_size"]
            if isinstance(crop, dict):
                if whole(crop["height"], "crop_size.height") != whole(crop["width"], "crop_size.width"):
                    raise InvalidInputError(f"{where}: non-square crop {crop}")
                crop = crop["height"]
            mean, std = d["image_mean"], d["image_std"]
            if not (isinstance(mean, list) and isinstance(std, list)):
                raise InvalidInputError(f"{where}: image_mean and image_std must be lists of 3 numbers")
            rescale = real(d.get("rescale_factor", 1 / 255), "rescale_factor")
            if rescale <= 0:
                raise InvalidInputError(f"{where}: rescale_factor must be positive, got {rescale:g}")
            values = dict(
                shortest_edge=shortest,
                crop=whole(crop, "crop_size"),
                mean=tuple(real(v, "image_mean") for v in mean),
                std=tuple(real(v, "image_std") for v in std),
                rescale_factor=rescale,
            )
        except (KeyError, TypeError) as e:
            raise InvalidInputError(f"{where}: missing or malformed field ({e!r})") from None
        try:
            return cls(**values)
        except InvalidInputError as e:  # a bad combination (__post_init__): named against the file
            raise InvalidInputError(f"{where}: {str(e).removeprefix(_WHAT + ': ')}") from None

    def __post_init__(self) -> None:
        if self.crop < 1 or self.shortest_edge < self.crop:
            raise InvalidInputError(f"{_WHAT}: shortest_edge {self.shortest_edge} must be >= crop {self.crop} >= 1")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise InvalidInputError(f"{_WHAT}: mean/std must have 3 values, std > 0 (got {self.mean}, {self.std})")


def resized_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """(h, w) after resizing the short side to `shortest_edge`; the long side is
    int(long * shortest_edge / short), as transformers computes it."""
    if height < 1 or width < 1:
        raise InvalidInputError(f"frame size {width}x{height}: must be at least 1x1")
    if height <= width:
        return shortest_edge, int(width * shortest_edge / height)
    return int(height * shortest_edge / width), shortest_edge


def _resized_nchw(rgb: np.ndarray | torch.Tensor, shortest_edge: int) -> torch.Tensor:
    """RGB uint8 (T, H, W, 3) -> uint8 (T, 3, H', W') with the short side resized to
    `shortest_edge` (antialiased bilinear in uint8, like the processor); a frame already
    at that size is not resized (as torchvision does)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)) if isinstance(rgb, np.ndarray) else rgb
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise InvalidInputError(f"frames: expected uint8 (T, H, W, 3) RGB, got {tuple(x.shape)} {x.dtype}")
    nh, nw = resized_size(x.shape[1], x.shape[2], shortest_edge)
    # NCHW view of HWC memory is channels_last: the layout torch's fast uint8 AA kernel uses.
    x = x.permute(0, 3, 1, 2)
    if (nh, nw) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    return x


def _centre_crop(x: torch.Tensor, crop: int, size: int | None = None) -> torch.Tensor:
    """The `size` x `size` window (default `crop`) of NCHW `x` whose centre `crop` x `crop`
    is the processor's centre crop, as (T, size, size, 3)."""
    size = crop if size is None else size
    nh, nw = x.shape[2:]
    inner = int((size - crop) / 2.0)
    top, left = int((nh - crop) / 2.0) - inner, int((nw - crop) / 2.0) - inner
    out = x[:, :, top : top + size, left : left + size].permute(0, 2, 3, 1)
    assert out.shape == (x.shape[0], size, size, 3), out.shape
    return out


def resize_crop_uint8(rgb: np.ndarray | torch.Tensor, shortest_edge: int = 292, crop: int = 256) -> torch.Tensor:
    """Resize (antialiased bilinear, uint8 like the processor) and centre-crop RGB frames
    (T, H, W, 3) uint8 to (T, crop, crop, 3) uint8. A frame whose short side already
    equals `shortest_edge` is not resized (as torchvision does)."""
    if shortest_edge < crop:
        raise InvalidInputError(f"preprocessing: shortest_edge {shortest_edge} < crop {crop}")
    return _centre_crop(_resized_nchw(rgb, shortest_edge), crop)


def normalize(frames_u8: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD, rescale_factor: float = 1 / 255,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W): scale by 1/255, subtract mean, divide
    by std (computed in float32 as the processor does; cast to `dtype` last)."""
    x = frames_u8.to(torch.float32)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device) / rescale_factor
    s = torch.tensor(std, dtype=torch.float32, device=x.device) / rescale_factor
    x = (x - m) / s
    return x.movedim(-1, -3).contiguous().to(dtype)


def preprocess_frames(rgb: np.ndarray | torch.Tensor, shortest_edge: int = 292, crop: int = 256,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """RGB uint8 (T, H, W, 3) -> float32 (T, 3, crop, crop), as the hub's video processor
    makes it (resize short side, centre crop, 1/255, ImageNet mean/std)."""
    out = normalize(resize_crop_uint8(rgb, shortest_edge, crop), mean, std)
    return out.numpy()


def rendition_uint8(rgb: np.ndarray | torch.Tensor, shortest_edge: int = 292, crop: int = 256) -> torch.Tensor:
    """A small square rendition (T, S, S, 3) uint8, S = shortest_edge, from which
    `resize_crop_uint8` reproduces the processor's crop of the full frame exactly.

    It is the processor's resized frame cut to S x S around the crop (so the identity
    resize and centre crop of the rendition land on the same pixels). A pipeline that
    cannot decode full-resolution frames fast enough can store this (~24x fewer pixels
    than 1080p) and embed it instead; a lossy codec adds its own small error.
    """
    return _centre_crop(_resized_nchw(rgb, shortest_edge), crop, size=shortest_edge)
