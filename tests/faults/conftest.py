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
    from egoclean.media.video import iter_frames

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
    from egoclean.core.atomic import is_temp_name

    return [p for p in Path(folder).rglob("*") if is_temp_name(p)]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from egoclean.embed.tiny_model import save_tiny_model

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
    """The real resources of the definitions, pointed at test folders (source_kw: SourceResource fields)."""
    from egoclean_assets.resources import SourceResource, build_resources

    env = {"EGOCLEAN_SOURCE": str(source), "EGOCLEAN_MODEL": model, "EGOCLEAN_DEVICE": "cpu",
           "EGOCLEAN_DB": str(db), "EGOCLEAN_DATA_ROOT": str(root), "EGOCLEAN_EXPORT": str(Path(root) / "lerobot"),
           "EGOCLEAN_GROUND_TRUTH": ground_truth or "", "EGOCLEAN_GROUND_TRUTH_SEED": "0"}
    res = build_resources(env)
    if source_kw:  # fault tests tune retries, timeouts, the token... beyond what the environment sets
        res["source"] = SourceResource(**(res["source"].model_dump() | source_kw))
    return res


# ---------------------------------------------------------------- a header that lies about its size
class _BitReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


class _BitWriter:
    def __init__(self):
        self.bits: list[int] = []

    def u(self, n: int, v: int) -> None:
        self.bits += [(v >> (n - 1 - k)) & 1 for k in range(n)]

    def ue(self, v: int) -> None:
        v += 1
        self.u(v.bit_length() - 1, 0)
        self.u(v.bit_length(), v)

    def bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[k : k + 8])), 2) for k in range(0, len(bits), 8))


def _unescape(b: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for x in b:
        if zeros >= 2 and x == 3:
            zeros = 0
            continue
        out.append(x)
        zeros = zeros + 1 if x == 0 else 0
    return bytes(out)


def _escape(b: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for x in b:
        if zeros >= 2 and x <= 3:
            out.append(3)
            zeros = 0
        out.append(x)
        zeros = zeros + 1 if x == 0 else 0
    return bytes(out)


def _resize_sps(rbsp: bytes, width: int, height: int) -> bytes:
    """An H.264 sequence parameter set rewritten to declare width x height (multiples of 16)."""
    r, w = _BitReader(rbsp), _BitWriter()
    profile = r.u(8)
    w.u(8, profile)
    w.u(16, r.u(16))  # constraint flags, level
    w.ue(r.ue())  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        w.ue(chroma)
        if chroma == 3:
            w.u(1, r.u(1))
        w.ue(r.ue())
        w.ue(r.ue())
        w.u(1, r.u(1))
        scaling = r.u(1)
        assert scaling == 0, "x264 writes no scaling matrix by default"
        w.u(1, scaling)
    w.ue(r.ue())  # log2_max_frame_num_minus4
    poc = r.ue()
    w.ue(poc)
    assert poc in (0, 2)
    if poc == 0:
        w.ue(r.ue())
    w.ue(r.ue())  # max_num_ref_frames
    w.u(1, r.u(1))
    r.ue(), r.ue()
    w.ue(width // 16 - 1)
    w.ue(height // 16 - 1)
    last = len(rbsp) * 8 - 1
    while not (rbsp[last >> 3] >> (7 - (last & 7))) & 1:
        last -= 1  # the rbsp stop bit
    while r.pos < last:
        w.u(1, r.u(1))
    w.u(1, 1)
    return w.bytes()


def write_h264_declaring(path: Path, width: int, height: int, n: int = 2) -> Path:
    """A real raw H.264 stream of `n` 64x48 frames whose SPS declares `width` x `height`:
    a file of a few hundred bytes that a decoder would allocate full-size frames for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    c = av.open(str(path), "w", format="h264")
    s = c.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    s.options = {"preset": "ultrafast"}
    for i in range(n):
        f = av.VideoFrame.from_ndarray(pattern(i, 64, 48), format="bgr24")
        f.pts = i
        c.mux(s.encode(f))
    c.mux(s.encode(None))
    c.close()
    out = bytearray()
    for k, nal in enumerate(path.read_bytes().split(b"\x00\x00\x00\x01")):
        if k:
            out += b"\x00\x00\x00\x01"
        if nal and nal[0] & 0x1F == 7:  # the sequence parameter set
            nal = nal[:1] + _escape(_resize_sps(_unescape(nal[1:]), width, height))
        out += nal
    path.write_bytes(bytes(out))
    return path
