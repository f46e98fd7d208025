"""V-JEPA 2 encoder: load the model (hub id or folder) and embed a clip in sliding windows.

The clip is decoded once, in order; each frame needed by a window is resized and
cropped once (uint8) into a ring buffer of the last `frames_per_window` frames; every
completed window is copied out of the ring into a batch, and batches go through the
encoder only (the predictor is dropped after loading). A background thread decodes and
preprocesses while the model runs. Memory is constant in clip length: the ring, one
small chunk of full-resolution frames and at most two queued batches.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from egoclean.core import defaults
from egoclean.embed.embeddings import Embeddings
from egoclean.core.errors import InvalidInputError, ModelLoadError, VideoError
from egoclean.media.prefetch import read_ahead
from egoclean.embed.preprocess import PROCESSOR_FILES, PreprocessConfig, normalize, resize_crop_uint8
from egoclean.core.secrets import hf_token, redact
from egoclean.embed.tiny_model import RANDOM_WEIGHTS_MARKER, is_random_weights
from egoclean.media.video import iter_frames, probe
from egoclean.embed.windows import n_windows, window_stride

log = logging.getLogger(__name__)


# facebook/vjepa2-vitl-fpc64-256's architecture, so a random-weight ViT-L can be built
# without the hub (GPU benchmark); kept explicit rather than trusting class defaults.
VITL_FPC64_256 = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4.0, patch_size=16,
    tubelet_size=2, crop_size=256, frames_per_clip=64, in_chans=3, qkv_bias=True, hidden_act="gelu",
    layer_norm_eps=1e-6, pred_hidden_size=384, pred_num_hidden_layers=12, pred_num_attention_heads=12,
    pred_num_mask_tokens=10, pred_mlp_ratio=4.0, num_pooler_layers=3,
)
KNOWN_CONFIGS = {defaults.MODEL_ID: VITL_FPC64_256}

DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
}


@dataclass
class EncoderConfig:
    """Which V-JEPA 2 to load and where to run it."""

    model: str = defaults.MODEL_ID  # hub id or local folder
    revision: str | None = None
    device: str = "auto"  # auto (cuda, then mps, then cpu), cuda, cuda:N, mps, cpu
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 elsewhere), bf16, fp16, fp32
    random_weights: bool = False  # build the architecture from its config, load no weights
    keep_predictor: bool = False  # the predictor is never run; dropped unless asked


@dataclass
class Encoder:
    """A loaded V-JEPA 2 encoder and the preprocessing that goes with it."""

    model: torch.nn.Module
    model_id: str
    revision: str | None
    random_weights: bool
    device: torch.device
    dtype: torch.dtype
    frames_per_window: int
    crop: int
    shortest_edge: int
    hidden: int
    tubelet: int
    patch: int
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    # A new one per load: which load embedded a clip shows in its metadata (a restarted actor is visible).
    load_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def window_shape(self) -> "WindowShape":
        """How this encoder's inputs are cut from a clip."""
        return WindowShape(self.frames_per_window, self.crop, self.shortest_edge)

    @property
    def time_steps(self) -> int:
        """Temporal token slots per window (frames / tubelet: 32 for ViT-L)."""
        return self.frames_per_window // self.tubelet

    @property
    def spatial(self) -> int:
        """Spatial tokens per time step ((crop / patch)^2: 256 for ViT-L)."""
        return (self.crop // self.patch) ** 2

    @torch.inference_mode()
    def tokens(self, windows_u8: torch.Tensor) -> torch.Tensor:
        """Encoder output tokens (B, T*S, hidden) for uint8 windows (B, F, crop, crop, 3)."""
        b = windows_u8.shape[0]
        expect = (b, self.frames_per_window, self.crop, self.crop, 3)
        if tuple(windows_u8.shape) != expect or windows_u8.dtype != torch.uint8:
            raise InvalidInputError(
                f"windows: expected uint8 {expect}, got {windows_u8.dtype} {tuple(windows_u8.shape)}"
            )
        x = windows_u8
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        p = self.preprocess
        x = normalize(x, p.mean, p.std, p.rescale_factor, dtype=self.dtype)  # (B, F, 3, crop, crop)
        out = self.model.encoder(pixel_values_videos=x).last_hidden_state
        if tuple(out.shape) != (b, self.time_steps * self.spatial, self.hidden):
            raise ModelLoadError(
                f"model {self.model_id}: encoder gave tokens {tuple(out.shape)}, expected "
                f"{(b, self.time_steps * self.spatial, self.hidden)} (config and weights disagree?)"
            )
        return out

    @torch.inference_mode()
    def encode(self, windows_u8: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(emb (B, hidden), temb (B, T, hidden)) float32 for uint8 windows (B, F, crop, crop, 3).

        Tokens are ordered time-major (the patch embedding's Conv3d output (T, H, W)
        flattened), so a (T, S) reshape groups each tubelet time step's spatial tokens.
        """
        tok = self.tokens(windows_u8).float()
        b = tok.shape[0]
        per_t = tok.view(b, self.time_steps, self.spatial, self.hidden).mean(2)
        # Every time step has the same number of tokens: the mean of the per-step means
        # is the mean over all tokens.
        emb = per_t.mean(1)
        return emb.cpu().numpy(), per_t.cpu().numpy()

    def describe(self) -> dict:
        return {
            "model": self.model_id,
            "revision": self.revision,
            "random_weights": self.random_weights,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "window": self.frames_per_window,
            "hidden": self.hidden,
            "tubelet": self.tubelet,
            "patch": self.patch,
            "crop": self.crop,
            "shortest_edge": self.shortest_edge,
            "time_steps": self.time_steps,
            "preprocess": self.preprocess.to_dict(),
        }


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; an explicit device must be available."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise InvalidInputError(f"device {name!r}: not a torch device (use auto, cuda, cuda:N, mps or cpu)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {name!r}: CUDA is not available in this torch build / machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidInputError(f"device {name!r}: MPS is not available on this machine")
    return dev


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' -> bf16 on CUDA, fp32 elsewhere; else bf16, fp16 or fp32."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise InvalidInputError(f"dtype {name!r}: use auto, bf16, fp16 or fp32")
    return DTYPES[name]


def _how_to_fix(cfg: EncoderConfig) -> str:
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    return (
        "To fix: (1) if the hub is reachable but the repo is gated or private, set HF_TOKEN; "
        "(2) or pass a local model folder with --model DIR (e.g. a `hf download "
        f"{cfg.model}` snapshot, or `egoclean tiny-model DIR` for a random-weight test model); "
        f"(3) or, offline, set HF_HUB_OFFLINE=1 with a cache already holding the model ({cache})."
    )


def _refused(e: BaseException) -> bool:
    """True when the hub answered but refused access (gated, private, bad token)."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, GatedRepoError):
            return True
        if isinstance(e, HfHubHTTPError) and getattr(e.response, "status_code", None) in (401, 403):
            return True
        if "gated repo" in str(e).lower():
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _cause(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return redact(f"{type(e).__name__}: {first[:300]}")


def _processor_config(src: str, cfg: EncoderConfig, is_local: bool, crop: int) -> tuple[PreprocessConfig, str]:
    """The model's own video_preprocessor_config.json; else the hub formula for its crop."""
    for name in PROCESSOR_FILES:
        if is_local:
            path = Path(src) / name
            if path.is_file():
                return PreprocessConfig.from_processor_json(path), str(path.name)
            continue
        from huggingface_hub import hf_hub_download

        path = None
        # Cache first: the weights may have come from a cache while the hub is away.
        for cached_only in (True, False):
            try:
                path = hf_hub_download(src, name, revision=cfg.revision, token=hf_token(),
                                       local_files_only=cached_only)
                break
            except Exception as e:  # not cached / not in the repo / not reachable
                log.debug("no %s for %s (cached_only=%s): %s", name, src, cached_only, _cause(e))
        if path is not None:
            return PreprocessConfig.from_processor_json(path), name
    # The hub's VJEPA2VideoProcessor derives the short side from the crop as
    # int(crop * 256 / 224) (292 for 256); mean/std are ImageNet's.
    derived = PreprocessConfig(shortest_edge=int(crop * 256 / 224), crop=crop)
    log.warning("model %s: no video_preprocessor_config.json found; using shortest_edge %d, crop %d",
                src, derived.shortest_edge, crop)
    return derived, "derived from crop_size"


def _hub_marked_random(src: str, cfg: EncoderConfig) -> bool:
    """True when a hub repo carries the random-weights marker (a pushed tiny model)."""
    from huggingface_hub import hf_hub_download

    for cached_only in (True, False):
        try:
            path = hf_hub_download(src, RANDOM_WEIGHTS_MARKER, revision=cfg.revision, token=hf_token(),
                                   local_files_only=cached_only)
        except Exception:  # absent (the normal case) or unreachable: the weights load decides
            continue
        return is_random_weights(Path(path).parent)
    return False


def load_encoder(cfg: EncoderConfig) -> Encoder:
    """Load V-JEPA 2 (encoder only, SDPA attention) from a hub id or local folder.

    Weights neither cached nor reachable raise ModelLoadError saying how to fix it.
    """
    from transformers import VJEPA2Config, VJEPA2Model

    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    src = str(cfg.model)
    local = Path(src).expanduser()
    is_local = local.is_dir()
    if is_local:
        src = str(local)
        if not (local / "config.json").is_file():
            raise ModelLoadError(f"model folder {local}: has no config.json (not a saved transformers model)")
    elif src.startswith((".", "/", "~")) or src.count("/") > 1 or os.sep == "\\" and "\\" in src:
        raise ModelLoadError(f"model {src!r}: no such folder (and not a hub id of the form owner/name)")
    token = None if is_local else hf_token()
    random_weights = bool(cfg.random_weights) or (is_local and is_random_weights(local))

    try:
        if cfg.random_weights:
            # A known id's architecture is embedded, so no hub access is needed for it.
            if src in KNOWN_CONFIGS and not is_local:
                config = VJEPA2Config(**KNOWN_CONFIGS[src])
            else:
                config = VJEPA2Config.from_pretrained(src, revision=cfg.revision, token=token)
            config._attn_implementation = "sdpa"
            # Initialising on the target device: ViT-L takes ~12 s on 2 CPU cores.
            with torch.device(device):
                model = VJEPA2Model(config)
        else:
            model = VJEPA2Model.from_pretrained(
                src, revision=cfg.revision, token=token, dtype=dtype, attn_implementation="sdpa"
            )
    except Exception as e:  # the boundary: whatever transformers / the hub raised
        where = f"model folder {src}" if is_local else f"model {src!r}" + (f" @ {cfg.revision}" if cfg.revision else "")
        if is_local:
            raise ModelLoadError(f"{where}: cannot be loaded ({_cause(e)})") from None
        if _refused(e):
            raise ModelLoadError(
                f"{where}: the hub refused access ({_cause(e)}). To fix: set HF_TOKEN to a token that "
                "has access (for a gated repo, accept its terms on the hub first), or pass a local model "
                "folder with --model DIR."
            ) from None
        raise ModelLoadError(
            f"{where}: weights are neither in the local cache nor reachable ({_cause(e)}). {_how_to_fix(cfg)}"
        ) from None

    if not random_weights and not is_local:
        # After the load, so an unreachable hub has already been reported.
        random_weights = _hub_marked_random(src, cfg)

    c = model.config
    patch = c.patch_size if isinstance(c.patch_size, int) else int(c.patch_size[0])
    if c.frames_per_clip % c.tubelet_size or c.crop_size % patch:
        raise ModelLoadError(
            f"model {src}: frames_per_clip {c.frames_per_clip} / tubelet {c.tubelet_size} or crop "
            f"{c.crop_size} / patch {patch} is not a whole number of tokens"
        )
    if not cfg.keep_predictor:
        # Only the encoder runs; dropping the predictor frees its memory (ViT-L: ~22 M
        # parameters) before the model moves to the device.
        model.predictor = None
    model = model.to(device=device, dtype=dtype).eval()

    if cfg.random_weights and src in KNOWN_CONFIGS and not is_local:
        # No hub access at all for an embedded architecture: the hub formula below gives
        # the hub config's values (292 / 256 for ViT-L).
        pre = PreprocessConfig(shortest_edge=int(c.crop_size * 256 / 224), crop=int(c.crop_size))
        pre_src = "derived from crop_size"
    else:
        pre, pre_src = _processor_config(src, cfg, is_local, int(c.crop_size))
    if pre.crop != c.crop_size:
        raise ModelLoadError(
            f"model {src}: preprocessor crop {pre.crop} differs from the model's crop_size {c.crop_size}"
        )
    enc = Encoder(
        model=model, model_id=src, revision=cfg.revision, random_weights=random_weights, device=device,
        dtype=dtype, frames_per_window=int(c.frames_per_clip), crop=int(c.crop_size),
        shortest_edge=pre.shortest_edge, hidden=int(c.hidden_size), tubelet=int(c.tubelet_size),
        patch=patch, preprocess=pre,
    )
    enc.preprocess_source = pre_src  # type: ignore[attr-defined]
    return enc


@dataclass(frozen=True)
class WindowShape:
    """How a clip is cut into model inputs: frames per window, the square crop, the shortest edge resized to."""

    frames_per_window: int
    crop: int
    shortest_edge: int


class WindowStream:
    """Decode a clip once and yield batches of uint8 windows (B, F, crop, crop, 3) with their start frames.

    Streaming: a ring of the last F preprocessed frames and one batch buffer, whatever the
    clip's length. `n_decoded` counts the frames decoded so far."""

    def __init__(self, path, shape: WindowShape, stride: int, batch_size: int, chunk: int = 8):
        self.path, self.shape, self.stride = path, shape, stride
        self.batch_size, self.chunk = batch_size, max(1, chunk)
        self.n_decoded = 0
        self.n_windows = 0

    def __iter__(self) -> Iterator[tuple[list[int], torch.Tensor]]:
        e, F, stride = self.shape, self.shape.frames_per_window, self.stride
        ring = torch.empty((F, e.crop, e.crop, 3), dtype=torch.uint8)
        shape = (self.batch_size, F, e.crop, e.crop, 3)
        batch, starts = torch.empty(shape, dtype=torch.uint8), []
        pending: list[tuple[int, np.ndarray]] = []

        def flush():
            nonlocal batch, starts
            if not pending:
                return
            small = resize_crop_uint8(np.stack([f for _, f in pending]), e.shortest_edge, e.crop)
            for (i, _), frame in zip(pending, small):
                ring[i % F] = frame
                s = i + 1 - F
                if s >= 0 and s % stride == 0:
                    # Ring slot of frame s is s % F; rotating puts frames s..s+F-1 in order.
                    k = s % F
                    batch[len(starts), : F - k] = ring[k:]
                    batch[len(starts), F - k :] = ring[:k]
                    starts.append(s)
                    self.n_windows += 1
                    if len(starts) == self.batch_size:
                        yield starts, batch
                        batch, starts = torch.empty(shape, dtype=torch.uint8), []
            pending.clear()

        for i, rgb in enumerate(iter_frames(self.path, fmt="rgb24")):
            self.n_decoded = i + 1
            # Frame i lies in a window iff i % stride < F (only skips when stride > F).
            if i % stride >= F:
                continue
            if pending and pending[0][1].shape != rgb.shape:
                yield from flush()
            pending.append((i, rgb))
            if len(pending) >= self.chunk:
                yield from flush()
        yield from flush()
        if starts:
            yield starts, batch[: len(starts)].clone()


# encode(windows) -> a callable that returns (emb, temb) for those windows: at once for an
# encoder in this process, when the answer arrives for one in another (a Ray actor).
Encode = Callable[[torch.Tensor], Callable[[], tuple[np.ndarray, np.ndarray]]]


def embed_stream(path: str | os.PathLike, shape: WindowShape, described: dict, preprocess_source: str | None,
                 encode: Encode, batch_size: int = 4, in_flight: int = 1, progress: bool = False,
                 prefetch: bool = True, chunk: int = 8) -> Embeddings:
    """Embed a clip in F-frame windows every round(fps) frames, whatever runs the model: the one sequence.

    Decodes the clip once, streaming (`WindowStream`), hands each batch of `batch_size`
    windows to `encode` and keeps up to `in_flight` batches outstanding; `described` (the
    encoder's `describe()`) and `preprocess_source` go into the embeddings' meta. Both
    `embed_video` (the encoder in this process) and the Ray embed task (windows sent to a
    resident actor) are this function."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise InvalidInputError(f"batch size {batch_size}: must be at least 1")
    info = probe(path)
    F = shape.frames_per_window
    stride = window_stride(info.fps)
    expected = n_windows(info.n_frames, info.fps, F)
    if expected == 0:
        raise VideoError(
            f"video {path}: {info.n_frames} frames at {info.fps:g} fps is shorter than one "
            f"{F}-frame window ({F / info.fps:.2f} s): nothing to embed"
        )
    stream = WindowStream(path, shape, stride, batch_size, chunk)
    batches = read_ahead(stream) if prefetch else iter(stream)
    embs, tembs, starts = [], [], []
    pending: deque = deque()
    with tqdm(total=expected, unit="win", desc=Path(path).name, disable=not progress) as bar:

        def collect_one() -> None:
            s, result = pending.popleft()
            emb, temb = result()
            embs.append(emb)
            tembs.append(temb)
            starts.extend(s)
            bar.update(len(s))

        for s, windows in batches:
            pending.append((list(s), encode(windows)))
            while len(pending) >= max(1, in_flight):
                collect_one()
        while pending:
            collect_one()
    if not starts:
        raise VideoError(
            f"video {path}: decoded only {stream.n_decoded} frames (header says {info.n_frames}); "
            f"fewer than one {F}-frame window"
        )
    if stream.n_decoded != info.n_frames:
        log.warning("video %s: decoded %d frames, header says %d", path, stream.n_decoded, info.n_frames)
    ts = np.asarray(starts, dtype=np.float64) / info.fps
    meta = embedding_meta(described, preprocess_source, path, info, stream.n_decoded, stride, len(starts))
    return Embeddings(emb=np.concatenate(embs), temb=np.concatenate(tembs), ts=ts, meta=meta)


def embed_video(path: str | os.PathLike, encoder: Encoder, batch_size: int = 4, progress: bool = True,
                prefetch: bool = True, chunk: int = 8) -> Embeddings:
    """Embed a clip in 64-frame windows every round(fps) frames: emb (N, hidden),
    temb (N, T, hidden), ts (N,) seconds, meta. Decodes the clip once, streaming."""

    def encode(windows: torch.Tensor):
        emb, temb = encoder.encode(windows)
        return lambda: (emb, temb)

    return embed_stream(path, encoder.window_shape, encoder.describe(), getattr(encoder, "preprocess_source", None),
                        encode, batch_size=batch_size, progress=progress, prefetch=prefetch, chunk=chunk)


def embedding_meta(described: dict, preprocess_source: str | None, path, info, n_decoded: int, stride: int,
                   n: int) -> dict:
    """The `_meta.json` of a clip's embeddings: the encoder's `describe()` plus the clip's facts.

    Written by `embed_stream`, the one sequence of the in-process path (`embed_video`) and
    the Ray path (`egoclean.cluster.ray_pipeline`, windows encoded in another process)."""
    return described | {
        "source": str(path),
        "fps": info.fps,
        "n_frames": n_decoded,
        "n_frames_header": info.n_frames,
        "width": info.width,
        "height": info.height,
        "stride": stride,
        "n_windows": n,
        "preprocess_source": preprocess_source,
    }
