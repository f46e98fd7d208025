"""Per-clip embedding files: `<prefix>_emb.npy` (N, D), `<prefix>_temb.npy` (N, T, D),
`<prefix>_ts.npy` (N,) seconds, and `<prefix>_meta.json` (model, fps, random weights...).

The three .npy names and shapes are the ones earlier tools used; the meta file is ours.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from egoclean import atomic
from egoclean.errors import InvalidInputError

SUFFIXES = ("_emb.npy", "_temb.npy", "_ts.npy", "_meta.json")


def paths(prefix: str | os.PathLike) -> dict[str, Path]:
    """The four files of an embedding prefix, by kind (emb, temb, ts, meta)."""
    p = str(prefix)
    return {s[1:].split(".")[0]: Path(p + s) for s in SUFFIXES}


@dataclass
class Embeddings:
    """One clip's window embeddings: mean-pooled, temporal tokens, window times."""

    emb: np.ndarray  # (N, D) float32, mean over all patch tokens of each window
    temb: np.ndarray  # (N, T, D) float32, tokens averaged over space per time step
    ts: np.ndarray  # (N,) float64 seconds, first frame of each window / fps
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ts)
        if self.emb.ndim != 2 or self.temb.ndim != 3 or self.ts.ndim != 1:
            raise InvalidInputError(
                f"embeddings: bad ranks emb{self.emb.shape} temb{self.temb.shape} ts{self.ts.shape}"
            )
        if self.emb.shape[0] != n or self.temb.shape[0] != n:
            raise InvalidInputError(
                f"embeddings: window counts disagree: emb {self.emb.shape[0]}, temb {self.temb.shape[0]}, ts {n}"
            )

    def __len__(self) -> int:
        return len(self.ts)

    def save(self, prefix: str | os.PathLike) -> dict[str, Path]:
        """Write the four files atomically as a set (meta last: its presence marks completion).

        All four are written to temporary names before any is renamed, so a failed write
        (a full disk) leaves an earlier set whole instead of mixing old and new files."""
        p = paths(prefix)
        arrays = {"emb": self.emb.astype(np.float32, copy=False), "temb": self.temb.astype(np.float32, copy=False),
                  "ts": self.ts.astype(np.float64, copy=False)}
        with contextlib.ExitStack() as stack:
            # Entered first, renamed last: the meta file is replaced after the arrays.
            tmp_meta = stack.enter_context(atomic.atomic_path(p["meta"]))
            for k, a in arrays.items():
                with open(stack.enter_context(atomic.atomic_path(p[k])), "wb") as f:
                    np.save(f, a)
            tmp_meta.write_text(json.dumps(self.meta, indent=2) + "\n")
        return p

    @classmethod
    def load(cls, prefix: str | os.PathLike, mmap: bool = False) -> "Embeddings":
        """Read a prefix written by `save` (or by earlier tools: meta is optional)."""
        p = paths(prefix)
        missing = [str(p[k]) for k in ("emb", "temb", "ts") if not p[k].is_file()]
        if missing:
            raise InvalidInputError(f"embeddings {prefix}: missing file(s) {', '.join(missing)}")
        mode = "r" if mmap else None
        meta = json.loads(p["meta"].read_text()) if p["meta"].is_file() else {}
        return cls(
            emb=np.load(p["emb"], mmap_mode=mode),
            temb=np.load(p["temb"], mmap_mode=mode),
            ts=np.load(p["ts"]),
            meta=meta,
        )
