"""Per-clip embedding files: `<prefix>_emb.npy` (N, D), `<prefix>_temb.npy` (N, T, D),
`<prefix>_ts.npy` (N,) seconds, and `<prefix>_meta.json` (model, fps, random weights...).

The three .npy names and shapes are the ones earlier tools used; the meta file is ours.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import numpy as np

from egoclean.core import atomic, jsonin
from egoclean.core.errors import InvalidInputError

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
        """Write the four files as one set, all or nothing.

        All four are written to temporary names first, then renamed together under an
        exclusive lock on their folder, the meta file last (`atomic.atomic_paths`): a
        failed write leaves the earlier set whole, and two writers of one prefix leave
        one writer's whole set, never a mix. The meta file records each array file's
        size and SHA-256, so `load` also refuses a set that a crash between two renames
        left half-replaced."""
        p = paths(prefix)
        arrays = {"emb": self.emb.astype(np.float32, copy=False), "temb": self.temb.astype(np.float32, copy=False),
                  "ts": self.ts.astype(np.float64, copy=False)}
        order = [*arrays, "meta"]
        with atomic.atomic_paths([p[k] for k in order]) as tmps:
            tmp = dict(zip(order, tmps))
            files = {}
            for k, a in arrays.items():
                with open(tmp[k], "wb") as f:
                    np.save(f, a)
                files[k] = {"bytes": tmp[k].stat().st_size, "sha256": atomic.sha256_file(tmp[k])}
            meta = {k: v for k, v in self.meta.items() if k != SET_KEY} | {SET_KEY: files}
            tmp["meta"].write_text(json.dumps(meta, indent=2) + "\n")
        return p

    @classmethod
    def load(cls, prefix: str | os.PathLike, mmap: bool = False) -> "Embeddings":
        """Read a prefix written by `save` (or by earlier tools: meta is optional).

        Under a shared lock on the folder (no writer renames meanwhile). When the meta
        file records the array files (`save` does), each must match its size and
        SHA-256; a damaged file is an InvalidInputError naming it, never a traceback."""
        p = paths(prefix)
        missing = [str(p[k]) for k in ("emb", "temb", "ts") if not p[k].is_file()]
        if missing:
            raise InvalidInputError(f"embeddings {prefix}: missing file(s) {', '.join(missing)}")
        mode = "r" if mmap else None
        with atomic.folder_lock(p["emb"].parent, shared=True):
            meta: dict = {}
            if p["meta"].is_file():
                try:
                    raw = p["meta"].read_bytes()
                except OSError as e:
                    raise InvalidInputError(f"embeddings {p['meta']}: cannot be read ({e})") from None
                meta = jsonin.loads(raw, f"embeddings {p['meta']}")
                if not isinstance(meta, dict):
                    raise InvalidInputError(f"embeddings {p['meta']}: not a JSON object")
            recorded = meta.pop(SET_KEY, None)
            if recorded is not None:
                _check_set(p, recorded)
            arrays = {k: load_npy(p[k], mode if k != "ts" else None) for k in ("emb", "temb", "ts")}
        return cls(**arrays, meta=meta)


# The meta file's record of the array files it was saved with (sizes and digests).
SET_KEY = "files"


def _check_set(p: dict[str, Path], recorded: Any) -> None:
    """Refuse array files that are not the ones the meta file was saved with."""
    if not isinstance(recorded, dict):
        raise InvalidInputError(f"embeddings {p['meta']}: field {SET_KEY!r} is not an object")
    for k in ("emb", "temb", "ts"):
        rec = recorded.get(k)
        f = p[k]
        same = isinstance(rec, dict) and f.stat().st_size == rec.get("bytes")
        if not (same and atomic.sha256_file(f) == rec.get("sha256")):
            raise InvalidInputError(
                f"embeddings {f}: not one set with {p['meta'].name} (another save replaced it, or a save was "
                "interrupted while publishing); embed the clip again"
            )


def load_npy(path: str | os.PathLike, mode: str | None = None, what: str = "embeddings") -> np.ndarray:
    """np.load of a numeric array, every way a damaged file fails turned into one
    InvalidInputError naming it (pickled objects are never loaded)."""
    try:
        a = np.load(path, mmap_mode=mode, allow_pickle=False)
    except (ValueError, EOFError, OSError, UnpicklingError, TypeError) as e:
        raise InvalidInputError(f"{what} {path}: not a readable .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        raise InvalidInputError(f"{what} {path}: holds {getattr(a, 'dtype', type(a))}, not numbers")
    return a
