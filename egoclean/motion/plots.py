"""The camera-trajectory picture of a clip (PNG, matplotlib's Agg canvas, atomic writes).

Three panels: the path seen from above coloured by time, with the frames inside
anomalous spans ringed in red and each segment's start marked; the height over time;
the heading (the optical axis' direction on the ground plane) over time. A segment
whose floor was found has z up (ground x, y); one without keeps its first camera's axes
(ground x, z; height -y). Anomalous
spans are shaded in the time panels, tracking gaps left empty. As in
egoclean.temporal.plots: no pyplot, the title in the PNG's `Title` text chunk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from egoclean.motion.trajectory import Trajectory
from egoclean.temporal.plots import _save

# The top-down panel draws at most this many points (the path is subsampled evenly).
MAX_POINTS = 20_000


def _z_up(traj: Trajectory) -> np.ndarray:
    """Per frame: its segment's world has z up (the floor was found: metric); else the world is the
    segment's first camera (OpenCV axes: y down, z forward)."""
    metric = {s.id: s.metric for s in traj.segments}
    return np.array([metric.get(int(s), False) for s in traj.segment], bool)


def ground_and_height(traj: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the two ground-plane coordinates and the height (x, y, z where z is up; else x, z, -y)."""
    p = traj.position
    up = _z_up(traj)
    return (p[:, 0], np.where(up, p[:, 1], p[:, 2]), np.where(up, p[:, 2], -p[:, 1]))


def heading_deg(traj: Trajectory) -> np.ndarray:
    """Per frame, the direction of the optical axis on the ground plane (degrees); NaN untracked."""
    fwd = traj.rotations()[:, :, 2]
    up = _z_up(traj)
    return np.degrees(np.arctan2(np.where(up, fwd[:, 1], fwd[:, 2]), fwd[:, 0]))


def _gaps_as_nan(traj: Trajectory, values: np.ndarray) -> np.ndarray:
    """`values` with a NaN where a segment changes, so lines do not join across gaps."""
    v = np.array(values, dtype=np.float64, copy=True)
    v[~traj.tracked] = np.nan
    return v


def plot_trajectory(traj: Trajectory, path: str | os.PathLike, title: str,
                    spans: Sequence[tuple[float, float]] = ()) -> Path:
    """Write the trajectory picture of `traj` to `path`; `spans`: anomalous (start, end) seconds."""
    fig = Figure(figsize=(13, 7.5))
    gs = fig.add_gridspec(2, 2, width_ratios=(1.1, 1.0))
    top = fig.add_subplot(gs[:, 0])
    hax = fig.add_subplot(gs[0, 1])
    yax = fig.add_subplot(gs[1, 1], sharex=hax)
    t = traj.t
    ok = traj.tracked & np.all(np.isfinite(traj.position), axis=1)
    in_span = np.zeros(len(traj), bool)
    for a, b in spans:
        in_span |= (t >= a) & (t < b)
    unit = "m" if traj.summary()["metric"] else "clip units"
    if ok.any():
        idx = np.flatnonzero(ok)
        if len(idx) > MAX_POINTS:
            idx = idx[np.linspace(0, len(idx) - 1, MAX_POINTS).astype(int)]
        gx, gy, height = ground_and_height(traj)
        p = np.stack([gx, gy], axis=1)
        sc = top.scatter(p[idx, 0], p[idx, 1], c=t[idx], cmap="viridis", s=4, linewidths=0, zorder=2)
        fig.colorbar(sc, ax=top, fraction=0.046, pad=0.04, label="time (s)")
        hot = idx[in_span[idx]]
        if len(hot):
            top.scatter(p[hot, 0], p[hot, 1], s=30, facecolors="none", edgecolors="tab:red", linewidths=0.5,
                        label="anomalous span", zorder=1)
        for seg in traj.segments:
            if 0 <= seg.first < len(traj) and ok[seg.first]:
                top.plot(p[seg.first, 0], p[seg.first, 1], marker="^", color="black", ms=7)
        top.plot([], [], marker="^", color="black", ls="none", label="segment start")
        top.legend(loc="best", fontsize=9)
        top.set_aspect("equal", adjustable="datalim")
    else:
        top.text(0.5, 0.5, "no tracked frame", ha="center", va="center", transform=top.transAxes)
    top.set_title("path from above (colour: time)")
    top.set_xlabel(f"x ({unit})")
    top.set_ylabel(f"y, or z without a floor ({unit})")
    hax.plot(t, _gaps_as_nan(traj, ground_and_height(traj)[2]), color="tab:blue", lw=1)
    hax.set_ylabel(f"height ({unit})")
    hax.set_title("height and heading over time")
    yax.plot(t, _gaps_as_nan(traj, heading_deg(traj)), color="tab:green", lw=1)
    yax.set_ylabel("heading (deg)")
    yax.set_xlabel("time (s)")
    for ax in (hax, yax):
        for a, b in spans:
            ax.axvspan(a, b, color="tab:red", alpha=0.15, lw=0)
        ax.grid(alpha=0.3)
    s = traj.summary()
    fig.suptitle(f"{title}\n{s['tracked_fraction']:.1%} of {s['frames']} frames tracked, {s['segments']} segment(s), "
                 f"path {s['path_length']:.2f} {unit}")
    fig.tight_layout()
    return _save(fig, path, title)
