"""The diagnostics and detection pictures (PNG, matplotlib's Agg canvas, atomic writes).

No pyplot and no global backend switch: each picture is its own `Figure` on an Agg
canvas, so this works headless and inside any host process. The title is also stored
in the PNG's `Title` text chunk so tools (and tests) can read it without OCR.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from egoclean.core import atomic
from egoclean.temporal.analysis import Analysis

# Matrix panels are shown at most this many cells a side: a 20,000-window matrix would
# be 400 M cells, far more than the picture has pixels.
MAX_DISPLAY = 512


def _save(fig: Figure, path: str | os.PathLike, title: str) -> Path:
    FigureCanvasAgg(fig)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Title": title, "Software": "egoclean"})
    return Path(path)


def _display_matrix(m: np.ndarray, ts: np.ndarray, limit: int = MAX_DISPLAY) -> tuple[np.ndarray, np.ndarray]:
    """Block-average a square matrix down to at most `limit` cells a side (times likewise)."""
    n = m.shape[0]
    if n <= limit:
        return m, ts
    f = -(-n // limit)  # ceil: cells per display block
    pad = (-n) % f
    mp = np.pad(m.astype(np.float64), ((0, pad), (0, pad)), constant_values=np.nan)
    blocks = mp.reshape(mp.shape[0] // f, f, mp.shape[1] // f, f)
    tp = np.pad(np.asarray(ts, dtype=np.float64), (0, pad), constant_values=np.nan)
    return np.nanmean(blocks, axis=(1, 3)), np.nanmean(tp.reshape(-1, f), axis=1)


def _matrix_panel(ax, m: np.ndarray | None, ts: np.ndarray | None, name: str, subsampled: bool) -> None:
    if m is None or ts is None or len(ts) == 0:
        ax.text(0.5, 0.5, f"{name}: not computed", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name)
        return
    shown, st = _display_matrix(m, ts)
    half = (st[-1] - st[0]) / max(1, len(st) - 1) / 2 if len(st) > 1 else 0.5
    extent = (st[0] - half, st[-1] + half, st[-1] + half, st[0] - half)
    im = ax.imshow(shown, cmap="viridis", extent=extent, interpolation="nearest", aspect="auto")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")
    note = f" ({len(ts)} of the windows)" if subsampled else ""
    ax.set_title(name + note)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("time (s)")


def plot_diagnostics(analysis: Analysis, path: str | os.PathLike, title: str) -> Path:
    """4 panels: change signal, mean-embedding similarity, autocorrelation, temporal-token similarity."""
    fig = Figure(figsize=(13, 10))
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    if len(analysis.change):
        ax.plot(analysis.ts[1:], analysis.change, color="tab:blue", lw=0.8)
    ax.set_title("consecutive cosine distance (mean embeddings)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("1 - cos(e_i, e_i+1)")

    sub = analysis.matrices_subsampled
    _matrix_panel(axes[0, 1], analysis.sim_mean, analysis.matrix_ts, "mean-embedding similarity", sub)

    ax = axes[1, 0]
    if len(analysis.autocorr):
        ax.plot(analysis.lags_sec, analysis.autocorr, color="tab:purple", lw=0.8)
    ax.axhline(0.0, color="grey", lw=0.5)
    if analysis.period_sec is not None:
        ax.axvline(analysis.period_sec, color="red", ls="--", lw=1.0, label=f"period {analysis.period_sec:.1f} s")
        ax.legend(loc="upper right")
        ax.set_title(f"autocorrelation of the change signal (period {analysis.period_sec:.1f} s)")
    else:
        ax.set_title("autocorrelation of the change signal (no clear period)")
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("autocorrelation")

    _matrix_panel(axes[1, 1], analysis.sim_temporal, analysis.matrix_ts, "temporal-token similarity", sub)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path, title)


def _truth_intervals(truth: Sequence[Any] | None) -> list[tuple[float, float]]:
    out = []
    for t in truth or []:
        if hasattr(t, "start_sec"):
            out.append((float(t.start_sec), float(t.end_sec)))
        else:
            a, b = t
            out.append((float(a), float(b)))
    return out


def plot_detection(detection: Any, path: str | os.PathLike, title: str, truth: Sequence[Any] | None = None) -> Path:
    """Raw and smoothed score, thresholds, median, detected spans (red), ground truth (green)."""
    det = detection
    fig = Figure(figsize=(14, 4.5))
    ax = fig.subplots()
    ax.plot(det.ts, det.score, color="grey", lw=0.7, alpha=0.8, label="score (1 - typicality)")
    ax.plot(det.ts, det.smoothed, color="tab:blue", lw=1.3, label=f"EMA (alpha {det.params.ema_alpha})")
    # No thresholds when the score is constant (inf in a Detection, null in its JSON).
    if det.theta_on is not None and np.isfinite(det.theta_on):
        ax.axhline(det.theta_on, color="red", lw=1.0, label=f"theta_on {det.theta_on:.4f}")
        ax.axhline(det.theta_off, color="orange", lw=1.0, label=f"theta_off {det.theta_off:.4f}")
    ax.axhline(det.median, color="black", ls=":", lw=1.0, label=f"median {det.median:.4f}")
    for i, s in enumerate(det.spans):
        ax.axvspan(s.start_sec, s.end_sec, color="red", alpha=0.2, lw=0, label="detected" if i == 0 else None)
    ymin, ymax = ax.get_ylim()
    for i, (a, b) in enumerate(_truth_intervals(truth)):
        # Outlined and hatched, so it stays visible where it overlaps a detection.
        ax.add_patch(
            Rectangle(
                (a, ymin), b - a, ymax - ymin, fill=False, hatch="//", edgecolor="green", lw=1.2,
                label="ground truth" if i == 0 else None,
            )
        )
    ax.set_ylim(ymin, ymax)
    if len(det.ts):
        ax.set_xlim(float(det.ts[0]), float(det.ts[-1]) if len(det.ts) > 1 else float(det.ts[0]) + 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("anomaly score")
    extra = " - suppressed by the separation guard" if getattr(det, "suppressed", False) else ""
    ax.set_title(f"{title}: {len(det.spans)} anomalous span(s){extra}")
    # Below the axes: inside, it would hide spans near the start of the clip.
    # 11 pt: still ~10 px high in the 1,000 px copy the UI shows (DETECTION_THUMBNAIL_WIDTH)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=11, ncol=7, frameon=False)
    fig.tight_layout()
    return _save(fig, path, title)


# The picture shown inline in the UI: narrow enough for Dagster's metadata dialog, and
# small, because it is stored in the event log of every run (docs/SCALE.md); the full
# picture stays a file in the data root.
THUMBNAIL_WIDTH = 640
# The detection picture is a wide strip (14 x 4.5 in): at 640 px its legend was ~5 px high,
# unreadable; at 1,000 px a 64-colour PNG of it is still ~35 KB.
DETECTION_THUMBNAIL_WIDTH = 1000
THUMBNAIL_COLORS = 64
THUMBNAIL_MAX_BYTES = 40_000


def thumbnail(path: str | os.PathLike, width: int = THUMBNAIL_WIDTH,
              max_bytes: int = THUMBNAIL_MAX_BYTES) -> tuple[bytes, str]:
    """A reduced copy of a picture, at most `width` pixels wide and `max_bytes`: (bytes, MIME type).

    A 64-colour PNG keeps plot lines and text sharp and is ~20 KB for a plot; a picture
    that does not compress that way (noise-like matrices) becomes a JPEG, narrower
    until it fits.
    """
    import io

    from PIL import Image  # Pillow comes with matplotlib

    with Image.open(path) as im:
        rgb = im.convert("RGB")

    def encode(w: int, fmt: str) -> bytes:
        small = rgb.copy()
        small.thumbnail((w, w * 10), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if fmt == "PNG":
            # fast octree keeps the plot's few line colours (median cut, the default, turned the
            # blue EMA green and the red threshold brown beside large hatched areas) and is smaller
            small.quantize(THUMBNAIL_COLORS, method=Image.Quantize.FASTOCTREE).save(out, format="PNG", optimize=True)
        else:
            small.save(out, format="JPEG", quality=75, optimize=True)
        return out.getvalue()

    data = encode(width, "PNG")
    if len(data) <= max_bytes:
        return data, "image/png"
    w = width
    while True:
        data = encode(w, "JPEG")
        if len(data) <= max_bytes or w <= 160:
            return data, "image/jpeg"
        w = int(w * 0.75)
