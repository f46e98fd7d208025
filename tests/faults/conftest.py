"""Shared inputs of the fault-injection suite: tiny real clips, a synthetic dataset, the tiny model.

Everything is small (160x96 or less, a few seconds) so the whole suite runs in CI; the
clips are real H.265/H.264 files written with PyAV, decoded by the real code paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKED_TOKEN = "hf_EGOCLEANSECRET0123456789abcdefghij"


def pattern(i: int, w: int, h: int) -> np.ndarray:
    """Frame i of a moving-bar pattern (BGR): every frame differs, so frame order shows."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (np.arange(w)[None, :] * 3 + i * 5) % 256
    img[..., 1] = (np.arange(h)[:, None] * 4) % 256
    x = (i * 3) % max(1, w - 8)
    img[:, x : x + 8, 2] = 255
    return img


def write_clip(path: Path, n: int, w: int = 64, h: int = 48, fps: int = 30, codec: str = "libx265",
               pts: list[int] | None = None, pix_fmt: str = "yuv420p") -> Path:
    """A real clip written with PyAV; `pts` (in 1/90000 s) makes it variable-frame-rate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=fps)
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    if codec == "libx265":
        s.options = {"x265-params": "log-level=error", "preset": "ultrafast"}
    elif codec == "libx264":
        s.options = {"preset": "ultrafast"}
    tb = Fraction(1, 90000) if pts is not None else Fraction(1, fps)
    s.codec_context.time_base = tb
    for i in range(n):
        f = av.VideoFrame.from_ndarray(pattern(i, w, h), format="bgr24")
        f.pts = pts[i] if pts is not None else i
        f.time_base = tb
        c.mux(s.encode(f))
    c.mux(s.encode(None))
    c.close()
    return path


def decoded(path: Path) -> np.ndarray:
    """All frames of a (tiny) clip, for equality checks."""
    from egoclean.video import iter_frames

    return np.stack(list(iter_frames(path)))


def cli(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run the real `egoclean` command line in a fresh process."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "egoclean.cli", *args], env=e, capture_output=True,
                          text=True, timeout=300, **kw)


def popen_cli(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start the real `egoclean` command line; stdout+stderr go to `log` (polled by kill tests)."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "egoclean.cli", *args], env=e,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def part_files(folder: Path) -> list[Path]:
    """Temporary (not yet renamed) outputs under `folder`."""
    from egoclean.atomic import is_temp_name

    return [p for p in Path(folder).rglob("*") if is_temp_name(p)]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from egoclean.tiny_model import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny-vjepa2")))


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> dict:
    """Two 30 s synthetic clips (160x96, H.265, planted off-task spans) in the real layout."""
    from egoclean.synth import SynthConfig, write_dataset

    base = tmp_path_factory.mktemp("faults-synth")
    summary = write_dataset(base / "source", SynthConfig(clips=2, duration_sec=30.0, width=160, height=96))
    return {"base": base, "source": base / "source", "summary": summary,
            "keys": [c["clip_id"] for c in summary["clips"]]}


def graph_resources(source, root: Path, db: Path, model: str, ground_truth: str | None = None, **source_kw) -> dict:
    """The real resources of the definitions, pointed at test folders."""
    from egoclean_assets.io_manager import ClipIOManager, ClipStorage
    from egoclean_assets.resources import (DetectionResource, EncoderResource, GroundTruthResource,
                                           RectifyResource, SourceResource, StoreResource)

    storage = ClipStorage(data_root=str(root))
    return {
        "source": SourceResource(url=str(source), **source_kw),
        "encoder": EncoderResource(model=model, device="cpu", batch_size=4),
        "rectify": RectifyResource(),
        "detection": DetectionResource(),
        "store": StoreResource(path=str(db)),
        "ground_truth": GroundTruthResource(include_seed=False, paths=[ground_truth] if ground_truth else []),
        "storage": storage,
        "io_manager": ClipIOManager(storage=storage),
    }
