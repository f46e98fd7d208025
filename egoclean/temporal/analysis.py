"""Temporal-structure analysis of a clip's window embeddings (pure numpy).

Gives the change signal (consecutive cosine distance of the mean embeddings), the
cosine self-similarity matrices of the mean embeddings and of the flattened temporal
tokens, the autocorrelation of the change signal with its lags in seconds and the
dominant repeating period, and `typicality`: the row means of the temporal-token
similarity matrix computed in O(N) memory (the detection score's basis).

The similarity matrices are N x N and only exist for the pictures and the
similarity asset; long clips get them on evenly spaced windows (`max_matrix`).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from egoclean.core import atomic
from egoclean.embed.embeddings import Embeddings, load_npy
from egoclean.core.errors import InvalidInputError

# Rows per chunk are chosen so one float64 chunk stays near this size: memory stays
# flat whatever the clip length, and chunks are big enough for BLAS to be efficient.
CHUNK_BYTES = 32 * 1024 * 1024
# Matrices above this many windows are computed on an even subsample of windows.
DEFAULT_MAX_MATRIX = 2048
# An autocorrelation peak must reach this to count as a repeating period.
DEFAULT_PERIOD_MIN_PEAK = 0.3
# The files Analysis.save writes after its prefix and Analysis.load reads (what a copy needs).
FILE_SUFFIXES = ("_sim_mean.npy", "_sim_temporal.npy", "_analysis.npz")


@dataclass
class Analysis:
    """The diagnostics of one clip; matrices are None when not requested."""

    ts: np.ndarray  # (N,) window times, seconds
    change: np.ndarray  # (N-1,) cosine distance between window i and i+1
    sim_mean: np.ndarray | None  # (M, M) cosine similarity of the mean embeddings
    sim_temporal: np.ndarray | None  # (M, M) cosine similarity of flattened temporal tokens
    autocorr: np.ndarray  # (N-1,) autocorrelation of the change signal, lag 0 = 1
    lags_sec: np.ndarray  # (N-1,) lag of each autocorrelation value, seconds
    period_sec: float | None  # dominant repeating period, None without a clear peak
    matrix_ts: np.ndarray | None = None  # (M,) times of the matrix rows (M = N unless subsampled)
    step_sec: float = 0.0  # window step: median difference of ts

    @property
    def matrices_subsampled(self) -> bool:
        return self.matrix_ts is not None and len(self.matrix_ts) < len(self.ts)

    def save(self, prefix: str | os.PathLike) -> dict[str, Path]:
        """Write `<prefix>_sim_mean.npy`, `<prefix>_sim_temporal.npy` (float32) and
        `<prefix>_analysis.npz` (the series and scalars), each atomically."""
        if self.sim_mean is None or self.sim_temporal is None:
            raise InvalidInputError("analysis: save needs the similarity matrices (analyse(matrices=True))")
        p = str(prefix)
        files = {
            "sim_mean": atomic.save_npy(p + "_sim_mean.npy", self.sim_mean.astype(np.float32)),
            "sim_temporal": atomic.save_npy(p + "_sim_temporal.npy", self.sim_temporal.astype(np.float32)),
        }
        series = {k: getattr(self, k) for k in ("ts", "change", "autocorr", "lags_sec", "matrix_ts")}
        series = {k: v for k, v in series.items() if v is not None}
        scalars = {"step_sec": self.step_sec, "period_sec": np.nan if self.period_sec is None else self.period_sec}
        with atomic.atomic_path(p + "_analysis.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **series, **scalars)
        files["analysis"] = Path(p + "_analysis.npz")
        return files

    @classmethod
    def load(cls, prefix: str | os.PathLike) -> "Analysis":
        """Read what `save` wrote."""
        p = str(prefix)
        try:
            with np.load(p + "_analysis.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            period = float(arrays.pop("period_sec"))
            series = {k: arrays[k] for k in ("ts", "change", "autocorr", "lags_sec")}
            step = float(arrays["step_sec"])
        except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as e:
            raise InvalidInputError(
                f"analysis {p}_analysis.npz: damaged or incomplete ({type(e).__name__}: {e})") from None
        return cls(
            **series,
            sim_mean=load_npy(p + "_sim_mean.npy", what="analysis"),
            sim_temporal=load_npy(p + "_sim_temporal.npy", what="analysis"),
            period_sec=None if np.isnan(period) else period,
            matrix_ts=arrays.get("matrix_ts"),
            step_sec=step,
        )


def _flat(x: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, F) without copying (a memory-mapped array stays mapped)."""
    x = x if isinstance(x, np.ndarray) else np.asarray(x)  # keeps a memmap mapped
    if x.ndim < 2:
        raise InvalidInputError(f"embedding array has shape {x.shape}: expected (N, D) or (N, T, D)")
    return x.reshape(x.shape[0], -1)


def _chunk_rows(n_features: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, chunk_bytes // (8 * max(1, n_features)))


def _normalised_chunks(x2: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, float64 rows scaled to unit length); zero rows stay zero.

    Non-finite values are refused here, where each row is read anyway.
    """
    rows = _chunk_rows(x2.shape[1], chunk_bytes)
    for i in range(0, x2.shape[0], rows):
        c = np.array(x2[i : i + rows], dtype=np.float64)
        if not np.isfinite(c).all():
            bad = i + int(np.flatnonzero(~np.isfinite(c).all(axis=1))[0])
            raise InvalidInputError(f"embeddings: window {bad} holds NaN or infinite values")
        norms = np.sqrt(np.einsum("ij,ij->i", c, c))
        # A zero vector has no direction: its cosine with anything is defined as 0.
        c /= np.where(norms > 0, norms, 1.0)[:, None]
        yield i, c


def normalise_rows(x: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Rows of `x` (flattened to (N, F)) scaled to unit length in float64; zero rows stay zero."""
    x2 = _flat(x)
    out = np.empty(x2.shape, dtype=np.float64)
    for i, c in _normalised_chunks(x2, chunk_bytes):
        out[i : i + len(c)] = c
    return out


def typicality(x: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Row means of the cosine self-similarity matrix of `x` without its diagonal.

    `x` is (N, D) or (N, T, D) (flattened to T*D per row; may be memory-mapped). With
    rows x_i scaled to unit length, mean_{j != i} x_i . x_j = (x_i . s - x_i . x_i) / (N - 1)
    where s = sum_j x_j, so two streaming passes over `x` in chunks suffice: memory is
    O(N + chunk), never N x N. Zero rows have similarity 0 to everything (typicality 0).
    Needs N >= 2 (with one window there is nothing to compare against).
    """
    x2 = _flat(x)
    n = x2.shape[0]
    if n < 2:
        raise InvalidInputError(f"typicality needs at least 2 windows, got {n}")
    total = np.zeros(x2.shape[1], dtype=np.float64)
    for _, c in _normalised_chunks(x2, chunk_bytes):
        total += c.sum(axis=0)
    out = np.empty(n, dtype=np.float64)
    for i, c in _normalised_chunks(x2, chunk_bytes):
        self_dot = np.einsum("ij,ij->i", c, c)  # 1 for a non-zero row, 0 for a zero row
        out[i : i + len(c)] = (c @ total - self_dot) / (n - 1)
    return out


def cosine_similarity_matrix(
    x: np.ndarray, rows: np.ndarray | None = None, chunk_bytes: int = CHUNK_BYTES
) -> np.ndarray:
    """Cosine self-similarity (float32, M x M) of the rows of `x` (or of `x[rows]`).

    The Gram matrix is accumulated over blocks of feature columns, so besides the
    M x M result only an M x block slice is in memory (a memory-mapped `x` is read
    block by block); the norms are its diagonal. Zero rows have similarity 0 to
    everything, themselves included.
    """
    x2 = _flat(x)
    idx = np.arange(x2.shape[0]) if rows is None else np.asarray(rows)
    m, f = len(idx), x2.shape[1]
    gram = np.zeros((m, m), dtype=np.float64)
    cols = max(1, chunk_bytes // (8 * max(1, m)))
    contiguous = rows is None
    for c0 in range(0, f, cols):
        block = x2[:, c0 : c0 + cols] if contiguous else x2[idx, c0 : c0 + cols]
        block = np.asarray(block, dtype=np.float64)
        if not np.isfinite(block).all():
            bad = int(idx[np.flatnonzero(~np.isfinite(block).all(axis=1))[0]])
            raise InvalidInputError(f"embeddings: window {bad} holds NaN or infinite values")
        gram += block @ block.T
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return (gram * inv[:, None] * inv[None, :]).astype(np.float32)


def change_signal(emb: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Cosine distance 1 - cos(e_i, e_(i+1)) between consecutive windows, length N-1."""
    x2 = _flat(emb)
    n = x2.shape[0]
    out = np.empty(max(0, n - 1), dtype=np.float64)
    prev_last = None
    for i, c in _normalised_chunks(x2, chunk_bytes):
        # Chunks overlap by one row through `prev_last` so pairs across chunks are counted.
        block = c if prev_last is None else np.vstack([prev_last, c])
        start = i if prev_last is None else i - 1
        d = 1.0 - np.einsum("ij,ij->i", block[:-1], block[1:])
        out[start : start + len(d)] = d
        prev_last = c[-1:]
    return out


def autocorrelation(signal: np.ndarray) -> np.ndarray:
    """Autocorrelation of `signal` (mean removed, divided by lag 0 so r[0] = 1), all lags.

    The biased estimator (sum over the overlap divided by the full-length energy) is
    used so long lags, which overlap little, are damped rather than noisy. Computed by
    FFT (O(N log N)). A constant signal gives r = [1, 0, 0, ...].
    """
    x = np.asarray(signal, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0)
    scale = float(np.abs(x).max())
    x = x - x.mean()
    energy = float(x @ x)
    r = np.zeros(n)
    r[0] = 1.0
    # What is left of a constant after removing its mean is rounding noise, not signal.
    if energy <= n * (1e-12 * scale) ** 2:
        return r
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, size)
    full = np.fft.irfft(f * np.conj(f), size)[:n]
    return full / full[0]


def dominant_period(
    autocorr: np.ndarray, step_sec: float, min_peak: float = DEFAULT_PERIOD_MIN_PEAK
) -> float | None:
    """The lag (seconds) of the highest autocorrelation peak after the first zero crossing.

    A peak is a local maximum (r[k-1] < r[k] >= r[k+1]) at a lag of at most half the
    signal (so the pattern repeats at least twice) reaching `min_peak`. None when the
    autocorrelation never crosses zero or no peak qualifies.
    """
    r = np.asarray(autocorr, dtype=np.float64)
    n = len(r)
    below = np.flatnonzero(r <= 0)
    if n < 4 or len(below) == 0:
        return None
    first_zero = int(below[0])
    hi = min(n - 2, n // 2)
    k = np.arange(max(first_zero, 1), hi + 1)
    if len(k) == 0:
        return None
    peaks = k[(r[k - 1] < r[k]) & (r[k] >= r[k + 1]) & (r[k] >= min_peak)]
    if len(peaks) == 0:
        return None
    best = int(peaks[np.argmax(r[peaks])])
    return float(best * step_sec)


def window_step(ts: np.ndarray) -> float:
    """The window step in seconds: the median difference of the window times (0 for N < 2)."""
    ts = np.asarray(ts, dtype=np.float64)
    return float(np.median(np.diff(ts))) if len(ts) >= 2 else 0.0


def matrix_rows(n: int, max_matrix: int | None) -> np.ndarray:
    """Indices of the windows the similarity matrices are computed on (evenly spaced)."""
    if max_matrix is None or n <= max_matrix:
        return np.arange(n)
    if max_matrix < 2:
        raise InvalidInputError(f"max_matrix must be at least 2, got {max_matrix}")
    return np.unique(np.linspace(0, n - 1, max_matrix).round().astype(np.int64))


def analyse(
    embeddings: Embeddings,
    matrices: bool = True,
    max_matrix: int | None = DEFAULT_MAX_MATRIX,
    period_min_peak: float = DEFAULT_PERIOD_MIN_PEAK,
) -> Analysis:
    """Change signal, autocorrelation and period, and (optionally) the similarity matrices.

    `matrices=False` skips the two N x N matrices (detection never needs them);
    otherwise clips longer than `max_matrix` windows get them on `max_matrix` evenly
    spaced windows (`Analysis.matrix_ts` gives their times), so memory stays bounded.
    """
    ts = np.asarray(embeddings.ts, dtype=np.float64)
    n = len(ts)
    if n < 1:
        raise InvalidInputError("analysis: the embeddings hold no windows")
    step = window_step(ts)
    change = change_signal(embeddings.emb)
    ac = autocorrelation(change)
    lags = np.arange(len(ac), dtype=np.float64) * step
    period = dominant_period(ac, step, period_min_peak)
    sim_mean = sim_temporal = mts = None
    if matrices:
        rows = matrix_rows(n, max_matrix)
        sim_mean = cosine_similarity_matrix(embeddings.emb, rows)
        sim_temporal = cosine_similarity_matrix(embeddings.temb, rows)
        mts = ts[rows]
    return Analysis(
        ts=ts,
        change=change,
        sim_mean=sim_mean,
        sim_temporal=sim_temporal,
        autocorr=ac,
        lags_sec=lags,
        period_sec=period,
        matrix_ts=mts,
        step_sec=step,
    )
