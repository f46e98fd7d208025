"""The embed step of one clip: V-JEPA 2 embeddings of its rectified video (`embed`), and their facts (`Embedded`).

The `vjepa_embeddings` asset calls `embed` with an encoder in its own process; the Ray
embed task sends the same windows (egoclean.embed.encoder.embed_stream) to a resident
actor and builds the same `Embedded` with `embedded`. See egoclean.ingest.steps.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace


def model_label(model: str, random_weights: bool) -> str:
    """The model as shown to people: its id, with " (random weights)" when it has no trained weights."""
    return f"{model} (random weights)" if random_weights else model


def encoder_facts(encoder) -> dict:
    """What the metadata says about a loaded encoder: model, random_weights, device, dtype, load_id."""
    return {"model": encoder.model_id, "random_weights": bool(encoder.random_weights), "device": str(encoder.device),
            "dtype": str(encoder.dtype).replace("torch.", ""), "load_id": encoder.load_id}


@dataclass(frozen=True)
class Embedded:
    """A clip's embeddings written (`files`: emb, temb, ts, meta), with the facts of the windows and the encoder."""

    files: dict[str, str]
    video: dict  # the rectified video's facts (egoclean.media.steps.Rectified.video): the check's window count
    windows: int
    emb_shape: tuple[int, ...]
    temb_shape: tuple[int, ...]
    stride: int  # frames between window starts
    encoder: dict  # encoder_facts() of the encoder that ran the windows
    seconds: float  # decoding and the forward passes

    @property
    def model(self) -> str:
        return self.encoder["model"]

    @property
    def random_weights(self) -> bool:
        return bool(self.encoder["random_weights"])

    def info(self) -> dict:
        return {"video": self.video, "model": self.model, "random_weights": self.random_weights,
                "windows": self.windows}

    def moved(self, files: dict[str, str]) -> "Embedded":
        """The same result with its files where an executor put them."""
        return replace(self, files=dict(files))


def embedded(emb, files: dict, encoder: dict, video: dict, seconds: float) -> Embedded:
    """The facts of embeddings `emb` (egoclean.embed.embeddings.Embeddings) saved as `files`."""
    return Embedded(files={k: str(v) for k, v in files.items()}, video=dict(video), windows=len(emb),
                    emb_shape=tuple(int(x) for x in emb.emb.shape), temb_shape=tuple(int(x) for x in emb.temb.shape),
                    stride=int(emb.meta.get("stride", 0)), encoder=dict(encoder), seconds=float(seconds))


def embed(video_path: str | os.PathLike, encoder, prefix: str | os.PathLike, video: dict,
          batch_size: int = 4) -> Embedded:
    """Embed the rectified clip at `video_path` with `encoder` (loaded in this process), save at `prefix`."""
    from egoclean.embed.encoder import embed_video  # at use: torch

    t0 = time.perf_counter()
    emb = embed_video(video_path, encoder, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - t0
    return embedded(emb, emb.save(prefix), encoder_facts(encoder), video, seconds)
